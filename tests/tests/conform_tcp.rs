//! `sluice-conform`'s TCP mode against live servers: the conformance vectors that a
//! live server can run (those that do not script the driver) replayed over real
//! sockets.
//!
//! - Sluice's own listeners (SMTP MX, submission, submissions, POP3, POP3S, IMAP,
//!   IMAPS; LMTP listens only in the backend role): no vector may fail; skips are
//!   counted and printed.
//! - Dovecot (IMAP, IMAPS, POP3, POP3S) and Postfix (SMTP): the run completes and
//!   the failing vectors are exactly those listed in `tests/conform/*.txt`, so a
//!   change on either side shows up. Why each differs is spec/README.md's table.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_spec::live::{self, LiveOptions, LiveResult};
use sluice_spec::{Vector, default_vectors_dir, load_dir};
use sluice_tests::dovecot::Dovecot;
use sluice_tests::postfix::{Postfix, PostfixRole, require_postfix};
use sluice_tests::server::{Server, ServerSetup};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The account every vector logs in as (`alice`/`secret`, replaced by these).
const PASSWORD: &str = "secret";

/// What one listener's run gave.
#[derive(Default)]
struct Tally {
    passed: Vec<String>,
    /// `listener vector: failure`, for the message.
    failed: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
}

/// Runs every vector of `listener` against `address`.
fn run_listener(
    vectors: &[Vector],
    address: SocketAddr,
    protocol: &str,
    listener: &str,
    implicit_tls: bool,
    user: &str,
    timeout: Duration,
) -> Tally {
    let options = LiveOptions {
        address,
        protocol: protocol.to_owned(),
        listener: Some(listener.to_owned()),
        implicit_tls,
        account: Some((user.to_owned(), PASSWORD.to_owned())),
        timeout,
    };
    live::validate(&options).unwrap();
    let mut tally = Tally::default();
    for vector in vectors.iter().filter(|v| live::selects(&options, v)) {
        let outcome = live::run_one(vector, &options);
        let name = format!("{listener} {}", outcome.name);
        match outcome.result {
            LiveResult::Passed => tally.passed.push(name),
            LiveResult::Skipped(reason) => tally.skipped.push((name, reason)),
            LiveResult::Failed(failure) => tally.failed.push((
                name,
                format!(
                    "line {}: {}\n{}",
                    failure.line, failure.message, outcome.transcript
                ),
            )),
        }
    }
    tally
}

/// One account per IMAP vector, named from `template` as the live run names it.
fn imap_users(vectors: &[Vector], template: &str) -> Vec<(String, String)> {
    vectors
        .iter()
        .filter(|vector| vector.listener.is_imap())
        .map(|vector| (live::account_user(template, vector), PASSWORD.to_owned()))
        .collect()
}

fn merge(into: &mut Tally, from: Tally) {
    into.passed.extend(from.passed);
    into.failed.extend(from.failed);
    into.skipped.extend(from.skipped);
}

fn print_summary(server: &str, tally: &Tally) {
    println!(
        "{server}: {} passed, {} failed, {} skipped",
        tally.passed.len(),
        tally.failed.len(),
        tally.skipped.len()
    );
    for (name, reason) in &tally.skipped {
        println!("  skip {name}: {reason}");
    }
    for (name, failure) in &tally.failed {
        println!(
            "  FAIL {name}: {}",
            failure.lines().next().unwrap_or_default()
        );
    }
}

/// The committed list of vectors expected to fail against a peer, one
/// `listener vector` per line (`#` comments allowed).
fn expected_failures(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conform")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// The failing vectors must be exactly the committed list; the difference says
/// which way it moved.
fn assert_failures_are(file: &str, tally: &Tally) {
    let mut failing: Vec<String> = tally.failed.iter().map(|(name, _)| name.clone()).collect();
    failing.sort();
    let expected = expected_failures(file);
    let new: Vec<&String> = failing.iter().filter(|n| !expected.contains(n)).collect();
    let gone: Vec<&String> = expected.iter().filter(|n| !failing.contains(n)).collect();
    let details: Vec<String> = tally
        .failed
        .iter()
        .filter(|(name, _)| new.contains(&name))
        .map(|(name, failure)| format!("{name}: {failure}"))
        .collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "tests/conform/{file} is out of date.\nnewly failing: {new:?}\nno longer failing: {gone:?}\n{}",
        details.join("\n")
    );
}

#[test]
fn sluice_listeners_pass_every_vector_they_can_run() {
    let vectors = load_dir(&default_vectors_dir()).unwrap();
    let user = "alice@sluice.test";
    // IMAP vectors each log in to a fresh account (`{n}`: the vector's number):
    // each assumes an empty mailbox, which an earlier APPEND would spoil.
    let imap_user = "alice{n}@sluice.test";
    let mut users = vec![(user.to_owned(), PASSWORD.to_owned())];
    users.extend(imap_users(&vectors, imap_user));
    // The vectors' wrong passwords would otherwise slow every later login from
    // this address (core::login's guard, up to 15 s each): a test of the protocol,
    // not of the guard (which net/tests/runtime_driver.rs tests).
    let server = Server::start(&ServerSetup {
        users,
        extra_toml: "[login]\nfirst_delay_ms = 0\n".to_owned(),
        ..ServerSetup::default()
    })
    .unwrap();
    let timeout = Duration::from_secs(10);
    let mut tally = Tally::default();
    for (listener, protocol, implicit) in [
        ("mx", "smtp", false),
        ("submission", "smtp", false),
        ("submissions", "smtp", true),
        ("pop3", "pop3", false),
        ("pop3s", "pop3", true),
        ("imap", "imap", false),
        ("imaps", "imap", true),
    ] {
        let address = server.address(listener).unwrap();
        let user = if protocol == "imap" { imap_user } else { user };
        let one = run_listener(
            &vectors, address, protocol, listener, implicit, user, timeout,
        );
        print_summary(&format!("sluice {listener}"), &one);
        merge(&mut tally, one);
    }
    print_summary("sluice", &tally);
    let failures: Vec<String> = tally
        .failed
        .iter()
        .map(|(name, failure)| format!("{name}: {failure}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Not vacuous: a good share of the vectors ran over TCP.
    assert!(
        tally.passed.len() >= 30,
        "only {} passed",
        tally.passed.len()
    );
}

#[test]
fn dovecot_differs_only_where_listed() {
    let vectors = load_dir(&default_vectors_dir()).unwrap();
    let mut users = vec![("alice".to_owned(), PASSWORD.to_owned())];
    users.extend(imap_users(&vectors, "alice{n}"));
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(user, password)| (user.as_str(), password.as_str()))
        .collect();
    let Some(dovecot) = Dovecot::start(&users).unwrap() else {
        return;
    };
    // Dovecot delays logins after failures from one address (its auth penalty, up
    // to 15 s); a vector that waits for an answer Dovecot never gives fails after
    // this.
    let timeout = Duration::from_secs(20);
    let mut tally = Tally::default();
    for (listener, protocol, implicit, address) in [
        ("pop3", "pop3", false, dovecot.pop3()),
        ("pop3s", "pop3", true, dovecot.pop3s()),
        ("imap", "imap", false, dovecot.imap()),
        ("imaps", "imap", true, dovecot.imaps()),
    ] {
        let user = if protocol == "imap" {
            "alice{n}"
        } else {
            "alice"
        };
        merge(
            &mut tally,
            run_listener(
                &vectors, address, protocol, listener, implicit, user, timeout,
            ),
        );
    }
    print_summary("dovecot", &tally);
    assert!(
        tally.passed.len() >= 10,
        "only {} passed",
        tally.passed.len()
    );
    assert_failures_are("dovecot-failures.txt", &tally);
}

#[test]
fn postfix_differs_only_where_listed() {
    if !require_postfix() {
        return;
    }
    let vectors = load_dir(&default_vectors_dir()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let postfix = Postfix::start(
        folder.path(),
        &PostfixRole::Remote {
            domain: "sluice.test".to_owned(),
            tempfail: Vec::new(),
            reject: Vec::new(),
        },
    )
    .unwrap();
    // Postfix is an MX here: only the MX vectors apply.
    let tally = run_listener(
        &vectors,
        postfix.address(),
        "smtp",
        "mx",
        false,
        "alice",
        Duration::from_secs(6),
    );
    print_summary("postfix", &tally);
    assert_failures_are("postfix-failures.txt", &tally);
}
