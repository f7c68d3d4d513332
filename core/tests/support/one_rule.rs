//! The quick test of the one rule (every decision about mail is core's), shared by
//! the drivers' guard tests: `sim/tests/no_decisions.rs` and
//! `net/tests/no_decisions.rs` include this file with `#[path]`, so both scan their
//! sources with the same detector. It lives beside core's tests because the rule is
//! core's contract; it is not a test target of its own.
//!
//! A driver's production code may hold no SMTP reply code in a string literal and
//! none of the names in [`DECISIONS`] (nor the driver's own extra names), except
//! where an [`Allowed`] entry names the file and says why. An exception that no
//! longer matches anything fails the test too, so the list only shrinks.

use std::path::{Path, PathBuf};

/// Names whose use is a decision core makes. None belongs in a driver's sources:
/// - the outcome of a recipient in a session (`RecipientOutcome::Final` /
///   `Unresolved`: the delivery walk's) and the TLS fallback (`RetryWithoutTls`);
/// - how an accepted message is placed (`delivery_set(`), its trace field and
///   delivery key (`ReceivedFields`, `count_received`), a notice's route check
///   (`MAILER-DAEMON`);
/// - the algorithms each written once in core: the router's driver loop
///   (`Router::new`: drivers run `RecipientRouting`), the MX plan's steps
///   (`hosts_to_try`, `connection_plan`: drivers run `HostPlanner`), a notice's
///   context and Message-ID (`NoticeContext`, `.notice@`: drivers pass
///   `NoticeSettings`), the queue's ownership of a record (`is_final() ||`,
///   `success_owed = 1`, `success_owed = 0`: `queue::still_owned`);
/// - replies and statuses made up outside core (`Reply::new(`,
///   `EnhancedStatus::new(`), and retry arithmetic: the schedule's own (its
///   methods, which only the queue calls) or a driver's (`pow(`, the usual shape
///   of an exponential backoff). A driver may build a `RetrySchedule` from its
///   configuration; it never computes a time from one.
pub(crate) const DECISIONS: &[&str] = &[
    "RecipientOutcome::Final",
    "RecipientOutcome::Unresolved",
    "RetryWithoutTls",
    "delivery_set(",
    "ReceivedFields",
    "count_received",
    "MAILER-DAEMON",
    "Router::new",
    "hosts_to_try",
    "connection_plan",
    "NoticeContext",
    ".notice@",
    "is_final() ||",
    "success_owed = 1",
    "success_owed = 0",
    "Reply::new(",
    "EnhancedStatus::new(",
    ".retry_interval(",
    ".next_attempt(",
    ".expires_at(",
    ".delay_warning_at(",
    ".persist_retry_delay(",
    "pow(",
];

/// A place where a name of [`DECISIONS`] is allowed, and why.
#[derive(Debug)]
pub(crate) struct Allowed {
    /// The file, as the end of its path (`world/client.rs`), or a folder ending in
    /// `/` (`check/`).
    pub(crate) file: &'static str,
    /// The name allowed there; `"*"` for every name and reply codes: a file or folder
    /// that is not driver code at all. A named exception that matches nothing fails
    /// the test (the name left, so must the exception); a `"*"` one never does.
    pub(crate) name: &'static str,
    /// Why: a reader must be able to judge the exception from this alone.
    pub(crate) why: &'static str,
}

/// Every `.rs` file under `folder`, sorted.
pub(crate) fn sources(folder: &Path) -> Vec<PathBuf> {
    fn walk(folder: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(folder).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(folder, &mut found);
    found.sort();
    found
}

/// The code before the file's test module; nothing for a file that is a test
/// module itself (`tests.rs`, included by `#[cfg(test)] mod tests;`).
pub(crate) fn production_code<'a>(file: &Path, text: &'a str) -> &'a str {
    if file.file_stem().is_some_and(|stem| stem == "tests") {
        return "";
    }
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// A string literal starting with a reply code: `"250 `, `"451-`, `b"554 `.
pub(crate) fn reply_code(code: &str) -> Option<String> {
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

/// What `file`'s production code holds that the rule forbids: reply codes and
/// names of `names`, each as `(name, excerpt)`; a reply code's name is `"reply code"`.
pub(crate) fn findings(file: &Path, text: &str, names: &[&str]) -> Vec<(String, String)> {
    let code = production_code(file, text);
    let mut found = Vec::new();
    if let Some(excerpt) = reply_code(code) {
        found.push(("reply code".to_owned(), excerpt));
    }
    for name in names {
        if let Some(line) = code.lines().find(|line| line.contains(name)) {
            found.push(((*name).to_owned(), line.trim().to_owned()));
        }
    }
    found
}

/// Scans every source under `root` for reply codes and `names`; the findings no
/// `allowed` entry covers, and the allowed entries that matched nothing.
pub(crate) fn violations(root: &Path, names: &[&str], allowed: &[Allowed]) -> Vec<String> {
    let files = sources(root);
    assert!(
        files.len() > 10,
        "{} holds the driver's sources",
        root.display()
    );
    let mut used = vec![false; allowed.len()];
    let mut violations = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (name, excerpt) in findings(&file, &text, names) {
            let exception = allowed.iter().position(|entry| {
                covers(&file, entry.file) && (entry.name == "*" || entry.name == name)
            });
            match exception {
                Some(index) => used[index] = true,
                None => violations.push(format!(
                    "{}: `{name}` ({excerpt}): that decision is core's",
                    file.display()
                )),
            }
        }
    }
    for (entry, used) in allowed.iter().zip(used) {
        if !used && entry.name != "*" {
            violations.push(format!(
                "the exception for `{}` in {} ({}) matches nothing any more: remove it",
                entry.name, entry.file, entry.why
            ));
        }
    }
    violations
}

/// Whether `place` (a path's end, or a folder ending in `/`) covers `file`.
fn covers(file: &Path, place: &str) -> bool {
    let file = file.to_string_lossy().replace('\\', "/");
    if place.ends_with('/') {
        file.contains(&format!("/{place}"))
    } else {
        file.ends_with(&format!("/{place}"))
    }
}

#[test]
fn an_exception_covers_its_file_or_folder() {
    let file = Path::new("/w/sim/src/world/client.rs");
    assert!(covers(file, "world/client.rs"));
    assert!(covers(file, "world/"));
    assert!(!covers(file, "client.rs/"));
    assert!(!covers(file, "ld/client.rs"));
}

#[test]
fn the_detector_sees_a_reply_code() {
    assert!(reply_code(r#"send("250 ok")"#).is_some());
    assert!(reply_code(r#"b"451-busy""#).is_some());
    assert!(reply_code(r#"format!("{x} 250")"#).is_none());
    assert!(reply_code(r#""600 no such class""#).is_none());
}

#[test]
fn the_detector_sees_names_only_outside_tests() {
    let file = Path::new("src/x.rs");
    let text = "let r = Reply::new(250, s, t);\n#[cfg(test)]\nmod tests { \"550 x\" }";
    let found = findings(file, text, DECISIONS);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "Reply::new(");
    assert!(findings(Path::new("src/store/tests.rs"), text, DECISIONS).is_empty());
    assert!(findings(file, "let ok = true;", DECISIONS).is_empty());
}
