//! ARCHITECTURE.md's quick test of the one rule, for the simulator: outside its
//! tests, `sim` contains no SMTP reply code; every reply is core's. (The only retry
//! arithmetic in `sim` is the simulated clients' own backoff, a model of other MTAs,
//! and the retry checker's model of the configured schedule in `check/retry.rs`,
//! written apart from core's on purpose: it judges core, it decides nothing.)

use std::path::{Path, PathBuf};

fn sources(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The code before the file's test module.
fn production_code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// A string literal starting with a reply code: `"250 `, `"451-`, `b"554 `.
fn has_reply_code(code: &str) -> Option<String> {
    let bytes = code.as_bytes();
    for (index, window) in bytes.windows(5).enumerate() {
        let quoted = window[0] == b'"';
        let digits = window[1..4].iter().all(u8::is_ascii_digit);
        let class = matches!(window[1], b'2'..=b'5');
        let separator = window[4] == b' ' || window[4] == b'-';
        if quoted && digits && class && separator {
            let end = (index + 30).min(code.len());
            return Some(code[index..end].to_owned());
        }
    }
    None
}

#[test]
fn the_simulator_writes_no_smtp_reply_code() {
    let mut files = Vec::new();
    sources(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    assert!(files.len() > 10);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        if let Some(found) = has_reply_code(production_code(&text)) {
            panic!("{}: a reply code in the simulator: {found}", file.display());
        }
    }
}

#[test]
fn the_detector_sees_a_reply_code() {
    assert!(has_reply_code(r#"send("250 ok")"#).is_some());
    assert!(has_reply_code(r#"b"451-busy""#).is_some());
    assert!(has_reply_code(r#"format!("{x} 250")"#).is_none());
}

/// Names whose handling is a decision core makes: the outcome of a recipient in a
/// session (`RecipientOutcome::Final`/`Unresolved`, the walk's), the TLS fallback
/// (`RetryWithoutTls`), how an accepted message is placed (`delivery_set`),
/// its trace field and delivery key (`ReceivedFields`, `count_received`), whether a
/// local copy owes a success notice (`owes_success_notice`) and a notice's route check
/// (`MAILER-DAEMON`). None of them belongs in the simulator's sources, except in
/// the workload's clients (`world/client.rs`), which model other MTAs and read a
/// report as any sender would.
const DECISIONS: &[&str] = &[
    "RecipientOutcome::Final",
    "RecipientOutcome::Unresolved",
    "RetryWithoutTls",
    "delivery_set(",
    "ReceivedFields",
    "count_received",
    "owes_success_notice",
    "MAILER-DAEMON",
    "MIRRORS NET",
];

#[test]
fn the_simulator_copies_no_decision_of_the_node() {
    let mut files = Vec::new();
    sources(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for file in files {
        if file.ends_with("world/client.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let code = production_code(&text);
        for name in DECISIONS {
            assert!(
                !code.contains(name),
                "{}: `{name}` in the simulator; that decision is core's",
                file.display()
            );
        }
    }
}
