//! Every file in the fuzz corpora runs as a regular test, so that a crash once found
//! by the fuzzer stays fixed, without needing the nightly toolchain.

use std::fs;
use std::path::PathBuf;

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("cannot read corpus {}: {error}", folder.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", folder.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for file in corpus_files(target) {
        let data = fs::read(&file).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "corpus file {} fails target {target}",
            file.display()
        );
    }
}

#[test]
fn smtp_command_corpus_passes() {
    replay("smtp_command", sluice_core::fuzzing::smtp_command);
}

#[test]
fn smtp_session_corpus_passes() {
    replay("smtp_session", sluice_core::fuzzing::smtp_session);
}

#[test]
fn pop3_session_corpus_passes() {
    replay("pop3_session", sluice_core::fuzzing::pop3_session);
}

#[test]
fn imap_session_corpus_passes() {
    replay("imap_session", sluice_core::fuzzing::imap_session);
}
