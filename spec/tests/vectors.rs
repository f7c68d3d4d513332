//! Replays every conformance vector against the real server session, as written and
//! byte at a time, and snapshots each full transcript.

use sluice_spec::{Feed, Vector, default_vectors_dir, load_dir, run};

fn vectors() -> Vec<Vector> {
    load_dir(&default_vectors_dir()).unwrap_or_else(|error| panic!("{error}"))
}

fn replay_all(feed: Feed) {
    let vectors = vectors();
    let mut failures = Vec::new();
    for vector in &vectors {
        let outcome = run(vector, feed);
        match (&vector.known_discrepancy, outcome.passed()) {
            (None, _) => failures.extend(
                outcome
                    .failures
                    .iter()
                    .map(|f| format!("{}:{}: {}", vector.path.display(), f.line, f.message)),
            ),
            // The mark must not outlive the bug, or it would hide a regression later.
            (Some(reason), true) => failures.push(format!(
                "{}: passes now; remove its `known-discrepancy: {reason}`",
                vector.path.display()
            )),
            (Some(_), false) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed ({feed:?}):\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn every_vector_passes() {
    replay_all(Feed::AsWritten);
}

/// TCP may cut the stream anywhere; the session's answers must not depend on where.
#[test]
fn every_vector_passes_byte_at_a_time() {
    replay_all(Feed::ByteAtATime);
}

#[test]
fn there_are_enough_vectors_and_each_proves_something() {
    let vectors = vectors();
    assert!(vectors.len() >= 40, "only {} vectors", vectors.len());
    for vector in &vectors {
        assert!(
            vector
                .proves
                .iter()
                .all(|proves| proves.starts_with("RFC ") || proves.starts_with("Sluice ")),
            "{}: `proves:` should name an RFC section or a Sluice requirement",
            vector.path.display()
        );
    }
}

/// The README's list is the table of contents of the textbook; it must not fall behind.
#[test]
fn the_readme_lists_every_vector() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let missing: Vec<String> = vectors()
        .iter()
        .map(|v| v.name())
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "spec/README.md does not list: {missing:?}"
    );
}

/// Every reply REPLIES.md lists is sent in some vector, with its code, enhanced status
/// code and fixed text: the catalogue and the vectors cannot drift apart.
#[test]
fn every_reply_in_the_catalogue_is_exercised() {
    let catalogue =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/REPLIES.md")).unwrap();
    let sent: Vec<String> = vectors()
        .iter()
        .flat_map(|vector| {
            run(vector, Feed::AsWritten)
                .transcript
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.strip_prefix("S: ").map(str::to_owned))
        .collect();
    let mut missing = Vec::new();
    for row in catalogue.lines().filter(|line| line.starts_with('|')) {
        for reply in row.split('`').skip(1).step_by(2) {
            let is_reply = reply.len() >= 3
                && reply.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && matches!(reply.as_bytes().get(3), None | Some(b' ' | b'-'));
            if !is_reply {
                continue;
            }
            let pattern = reply_pattern(reply);
            if !sent.iter().any(|line| glob(&pattern, line)) {
                missing.push(format!("`{reply}` (as {pattern:?})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "replies in REPLIES.md that no vector makes the session send:\n{}",
        missing.join("\n")
    );
}

/// Every response POP3-REPLIES.md lists is sent in some POP3 vector, word for word
/// apart from its placeholders.
#[test]
fn every_pop3_response_in_the_catalogue_is_exercised() {
    let catalogue =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/POP3-REPLIES.md")).unwrap();
    let sent: Vec<String> = vectors()
        .iter()
        .filter(|vector| vector.listener.is_pop3())
        .flat_map(|vector| {
            run(vector, Feed::AsWritten)
                .transcript
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.strip_prefix("S: ").map(str::to_owned))
        .collect();
    let mut missing = Vec::new();
    let mut checked = 0;
    for row in catalogue.lines().filter(|line| line.starts_with('|')) {
        for response in row.split('`').skip(1).step_by(2) {
            if !(response.starts_with("+OK") || response.starts_with("-ERR") || response == "+ ") {
                continue;
            }
            checked += 1;
            let mut pattern = response.replace("<host>", sluice_spec::HOSTNAME);
            while let (Some(open), Some(close)) = (pattern.find('<'), pattern.find('>')) {
                if close < open {
                    break;
                }
                pattern.replace_range(open..=close, "*");
            }
            if !sent.iter().any(|line| glob(&pattern, line)) {
                missing.push(format!("`{response}` (as {pattern:?})"));
            }
        }
    }
    assert!(
        checked >= 40,
        "only {checked} responses found in POP3-REPLIES.md"
    );
    assert!(
        missing.is_empty(),
        "responses in POP3-REPLIES.md that no POP3 vector makes the session send:\n{}",
        missing.join("\n")
    );
}

/// A catalogue reply as a glob over a transcript line: the host name filled in, other
/// placeholders (`<addr>`, `<id>`, ...) and a trailing `...` matching anything.
fn reply_pattern(reply: &str) -> String {
    let mut pattern = reply.replace("<host>", sluice_spec::HOSTNAME);
    for placeholder in ["<client>", "<addr>", "<id>", "<n>", "<KEYWORD>"] {
        pattern = pattern.replace(placeholder, "*");
    }
    if let Some(open) = pattern.strip_suffix("...") {
        pattern = format!("{}*", open.trim_end());
    }
    // `334 ` is written with its significant trailing space, which the transcript keeps.
    pattern
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .filter(|&skip| text.is_char_boundary(head.len() + skip))
                    .any(|skip| glob(rest, &text[head.len() + skip..]))
        }
    }
}

#[test]
fn transcripts_match_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for vector in vectors() {
        let outcome = run(&vector, Feed::AsWritten);
        settings.set_description(format!("{} ({})", vector.title, vector.proves.join("; ")));
        settings.bind(|| insta::assert_snapshot!(vector.name(), outcome.transcript));
    }
}

/// What the IMAP vectors' sessions sent, unescaped, from every IMAP transcript.
fn imap_lines_sent() -> Vec<String> {
    vectors()
        .iter()
        .filter(|vector| vector.listener.is_imap())
        .flat_map(|vector| {
            run(vector, Feed::AsWritten)
                .transcript
                .lines()
                .filter_map(|line| line.strip_prefix("S: "))
                .filter(|line| !matches!(*line, "<close>" | "<starttls>"))
                .map(|line| {
                    let bytes = sluice_spec::escape::unescape(line)
                        .unwrap_or_else(|e| panic!("transcript line {line:?}: {e}"));
                    String::from_utf8_lossy(&bytes).into_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The responses IMAP-RESPONSES.md lists (backticked cells starting with a tag, `*` or
/// `+`), each with whether its row is in the section of responses no vector shows yet.
fn imap_catalogue() -> Vec<(String, bool)> {
    let catalogue =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/IMAP-RESPONSES.md"))
            .expect("spec/IMAP-RESPONSES.md is readable");
    let mut unexercised = false;
    let mut responses = Vec::new();
    for line in catalogue.lines() {
        if line.starts_with("## ") {
            unexercised = line.contains("Not shown by any vector");
        }
        if !line.starts_with('|') {
            continue;
        }
        for cell in line.split('`').skip(1).step_by(2) {
            if cell.starts_with("<tag> ") || cell.starts_with("* ") || cell.starts_with("+ ") {
                responses.push((cell.to_owned(), unexercised));
            }
        }
    }
    responses
}

/// A catalogue response against a line: literal text, each `<placeholder>` matching
/// any run of characters (the untagged `*` is literal here).
fn imap_matches(pattern: &str, line: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('<') {
        match rest[open..].find('>') {
            Some(close) => {
                parts.push(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    parts.push(rest);
    // `parts` always holds at least the text after the last placeholder.
    let Some((first, others)) = parts.split_first() else {
        return false;
    };
    let Some(mut remaining) = line.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = others.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

/// Every response IMAP-RESPONSES.md lists outside its "not shown" section is sent in
/// some IMAP vector.
#[test]
fn every_imap_response_in_the_catalogue_is_exercised() {
    let sent = imap_lines_sent();
    let catalogue = imap_catalogue();
    assert!(
        catalogue.len() >= 60,
        "only {} responses in IMAP-RESPONSES.md",
        catalogue.len()
    );
    let missing: Vec<&String> = catalogue
        .iter()
        .filter(|(_, unexercised)| !unexercised)
        .map(|(response, _)| response)
        .filter(|response| !sent.iter().any(|line| imap_matches(response, line)))
        .collect();
    assert!(
        missing.is_empty(),
        "responses in IMAP-RESPONSES.md that no IMAP vector makes the session send:\n{missing:#?}"
    );
    // A response in the "not shown" section that a vector now shows must move up.
    let shown: Vec<&String> = catalogue
        .iter()
        .filter(|(_, unexercised)| *unexercised)
        .map(|(response, _)| response)
        .filter(|response| sent.iter().any(|line| imap_matches(response, line)))
        .collect();
    assert!(
        shown.is_empty(),
        "listed as not shown, but a vector shows them: {shown:#?}"
    );
}

/// Every line an IMAP vector's session sends matches a row of IMAP-RESPONSES.md: a new
/// response cannot appear without its entry.
#[test]
fn every_imap_response_a_vector_shows_is_catalogued() {
    let catalogue = imap_catalogue();
    let mut uncatalogued: Vec<String> = imap_lines_sent()
        .into_iter()
        .filter(|line| {
            !catalogue
                .iter()
                .any(|(response, _)| imap_matches(response, line))
        })
        .collect();
    uncatalogued.dedup();
    assert!(
        uncatalogued.is_empty(),
        "lines IMAP vectors show that IMAP-RESPONSES.md does not list:\n{uncatalogued:#?}"
    );
}

#[test]
fn imap_catalogue_patterns_match_as_documented() {
    assert!(imap_matches(
        "<tag> OK NOOP completed",
        "a1 OK NOOP completed"
    ));
    assert!(!imap_matches(
        "<tag> OK NOOP completed",
        "a1 OK NOOP completed!"
    ));
    assert!(imap_matches("* <n> EXISTS", "* 12 EXISTS"));
    assert!(!imap_matches("* <n> EXISTS", "a 12 EXISTS"));
    assert!(imap_matches("* ENABLED<...>", "* ENABLED"));
    assert!(imap_matches("+ ", "+ "));
    assert!(!imap_matches("+ ", "+ idling"));
}
