//! The boundary between the simulated world and its Sluice hosts (issue 10, item 7):
//! a host reaches its surroundings only through its context, `host::HostIo`, which
//! the world implements. So nothing under `sim/src/host/` may name the world's
//! module or its type; the dependency runs one way, world to host.

use std::path::{Path, PathBuf};

/// What a host's source must not contain: the world's module by any path, its type.
const FORBIDDEN: &[&str] = &["crate::world", "super::super", "sluice_sim::world"];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("the host's source folder reads");
    for entry in entries {
        let path = entry.expect("a folder entry reads").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Whether `text` holds `word` standing alone (not inside a longer identifier).
fn has_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[test]
fn hosts_do_not_know_the_world() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/host");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() >= 5, "the host's sources were not found");
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a source file reads");
        for (number, line) in text.lines().enumerate() {
            let named = FORBIDDEN
                .iter()
                .copied()
                .filter(|forbidden| line.contains(forbidden))
                .chain(has_word(line, "World").then_some("World"));
            for name in named {
                violations.push(format!("{}:{}: {name}", file.display(), number + 1));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_detector_finds_what_it_looks_for() {
    assert!(has_word("impl World {", "World"));
    assert!(has_word("use crate::world::World;", "World"));
    assert!(!has_word("a HelloWorld or a World_map", "World"));
}
