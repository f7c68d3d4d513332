//! The real binary's POP3 listeners against real clients: Python's poplib over STLS
//! and over POP3S (USER/PASS and AUTH PLAIN), and curl's pop3:// and pop3s://.
//! Mail is delivered over SMTP first; what a client retrieves must be the stored
//! message (the sent one after its Received field) with the Return-Path field
//! naming the envelope sender, and the INBOX is read back through the store.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::clients::{self, Pop3Security, Pop3Session, Pop3Step, Submission};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::tools::require_tool;
use sluice_tests::{message_id_of, prepended_trace, test_message};

const USER: &str = "user@sluice.test";
const PASSWORD: &str = "correct horse";
const SENDER: &str = "a@client.test";

fn setup(extra_toml: &str) -> ServerSetup {
    ServerSetup {
        extra_toml: extra_toml.to_owned(),
        ..ServerSetup::default()
    }
}

/// Sends a message of about `size` bytes to USER over SMTP; returns what was sent.
/// smtplib returns after the 250, which comes only once the INBOX copy is durable.
fn deliver(server: &Server, name: &str, size: usize) -> Vec<u8> {
    let message = test_message(&format!("{name}@client.test"), USER, size);
    let path = server.folder().join(format!("{name}.eml"));
    std::fs::write(&path, &message).unwrap();
    let mut submission = Submission::new(server.address("mx").unwrap(), SENDER, USER);
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.error(), None, "{}", report.raw);
    message
}

fn session(server: &Server, security: Pop3Security, steps: &[&str]) -> Pop3Session<'static> {
    let listener = match security {
        Pop3Security::Stls => "pop3",
        Pop3Security::ImplicitTls => "pop3s",
    };
    Pop3Session {
        server: server.address(listener).unwrap(),
        security,
        user: USER,
        password: PASSWORD,
        auth_plain: false,
        drop_at_end: false,
        steps: steps.iter().map(|step| (*step).to_owned()).collect(),
    }
}

fn step<'a>(steps: &'a [Pop3Step], name: &str) -> &'a Pop3Step {
    steps
        .iter()
        .find(|step| step.step == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

/// A retrieved message must be the Return-Path field, then `sent` after Received.
fn assert_retrieved(retrieved: &[u8], sent: &[u8]) {
    let field = format!("Return-Path: <{SENDER}>\r\n");
    let rest = retrieved.strip_prefix(field.as_bytes()).unwrap_or_else(|| {
        panic!(
            "no Return-Path first:\n{}",
            String::from_utf8_lossy(retrieved)
        )
    });
    let trace = prepended_trace(rest, sent)
        .unwrap_or_else(|| panic!("not the sent message:\n{}", String::from_utf8_lossy(rest)));
    assert!(trace.contains("mx.sluice.test"), "{trace}");
}

async fn inbox_ids(server: &Server) -> Vec<String> {
    server
        .folder_contents(USER, "INBOX")
        .await
        .unwrap()
        .iter()
        .filter_map(|message| message_id_of(message))
        .collect()
}

/// Logs in until the maildrop lock of a session that just ended is free (its
/// server side notices the close a moment after the client), then runs `steps`.
fn session_after_release(server: &Server, steps: &[&str]) -> Vec<Pop3Step> {
    for _ in 0..200 {
        let result = clients::poplib(&session(server, Pop3Security::Stls, steps)).unwrap();
        let login = step(&result, "login");
        if login.ok {
            return result;
        }
        assert!(login.text().contains("[IN-USE]"), "{result:?}");
        std::thread::yield_now();
    }
    panic!("the maildrop lock was never released");
}

#[tokio::test]
async fn poplib_over_stls_lists_reads_and_deletes_at_quit() {
    if !require_tool("python3") {
        return;
    }
    let server = Server::start(&setup("")).unwrap();
    let first = deliver(&server, "pop-first", 3000);
    let second = deliver(&server, "pop-second", 5000);
    let steps = [
        "capa", "stat", "list", "uidl", "top:1:0", "retr:1", "retr:2", "dele:1", "retr:1",
    ];
    let result = clients::poplib(&session(&server, Pop3Security::Stls, &steps)).unwrap();
    assert!(step(&result, "login").ok, "{result:?}");
    let capa = step(&result, "capa").text();
    assert!(capa.contains("UIDL") && capa.contains("TOP"), "{capa}");

    let retr1 = step(&result, "retr:1").value.clone();
    let retr2 = step(&result, "retr:2");
    assert_retrieved(&retr1, &first);
    assert_retrieved(&retr2.value, &second);
    let stat = step(&result, "stat").text();
    let expected = format!("2 {}", retr1.len() + retr2.value.len());
    assert_eq!(stat, expected, "STAT counts the octets a client receives");
    let list = step(&result, "list").text();
    assert_eq!(
        list,
        format!("1 {}|2 {}", retr1.len(), retr2.value.len()),
        "LIST sizes are what RETR delivers"
    );
    let uidl = step(&result, "uidl").text();
    let ids: Vec<&str> = uidl
        .split('|')
        .map(|line| line.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert!(
        ids.iter().all(|id| id
            .split_once('.')
            .is_some_and(|(v, u)| { v.parse::<u32>().is_ok() && u.parse::<u32>().is_ok() })),
        "{uidl}"
    );
    let top = step(&result, "top:1:0").value.clone();
    let header_end = retr1.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        top,
        retr1[..header_end],
        "TOP n 0 is the header and the blank line"
    );
    // A deleted message cannot be read again in the session.
    let again: Vec<&Pop3Step> = result.iter().filter(|s| s.step == "retr:1").collect();
    assert!(!again[1].ok, "{result:?}");
    assert!(step(&result, "quit").ok, "{result:?}");

    // QUIT committed the deletion before its +OK: the first message is gone.
    assert_eq!(
        inbox_ids(&server).await,
        vec!["pop-second@client.test".to_owned()]
    );
    // And a new session numbers the rest from 1 with the same unique id.
    let later = clients::poplib(&session(&server, Pop3Security::Stls, &["uidl"])).unwrap();
    assert_eq!(step(&later, "uidl").text(), format!("1 {}", ids[1]));
}

#[tokio::test]
async fn rset_and_a_dropped_connection_delete_nothing() {
    if !require_tool("python3") {
        return;
    }
    let server = Server::start(&setup("")).unwrap();
    deliver(&server, "pop-kept", 2000);
    let result = clients::poplib(&session(
        &server,
        Pop3Security::Stls,
        &["dele:1", "rset", "stat"],
    ))
    .unwrap();
    assert!(step(&result, "dele:1").ok, "{result:?}");
    assert_eq!(step(&result, "stat").text().split(' ').next(), Some("1"));
    assert!(step(&result, "quit").ok, "{result:?}");
    assert_eq!(inbox_ids(&server).await.len(), 1, "RSET unmarked it");

    let mut dropped = session(&server, Pop3Security::Stls, &["dele:1"]);
    dropped.drop_at_end = true;
    let result = clients::poplib(&dropped).unwrap();
    assert!(step(&result, "dele:1").ok, "{result:?}");
    assert!(step(&result, "drop").ok, "{result:?}");
    // Once the server has seen the close (the lock is free again), nothing is gone.
    let after = session_after_release(&server, &["stat"]);
    assert_eq!(step(&after, "stat").text().split(' ').next(), Some("1"));
    assert_eq!(inbox_ids(&server).await.len(), 1);
}

#[tokio::test]
async fn poplib_over_pop3s_with_auth_plain_and_a_second_session_in_use() {
    if !require_tool("python3") {
        return;
    }
    // Bodies in blob files, read in chunks: this one spans several.
    let server = Server::start(&setup("\n[storage]\ninline_body_limit = 0\n")).unwrap();
    let sent = deliver(&server, "pop-large", 300_000);
    let mut secure = session(
        &server,
        Pop3Security::ImplicitTls,
        &["second", "retr:1", "dele:1"],
    );
    secure.auth_plain = true;
    let result = clients::poplib(&secure).unwrap();
    assert!(step(&result, "login").ok, "{result:?}");
    let second = step(&result, "second");
    assert!(!second.ok, "{result:?}");
    assert!(second.text().contains("[IN-USE]"), "{result:?}");
    assert_retrieved(&step(&result, "retr:1").value, &sent);
    assert!(step(&result, "quit").ok, "{result:?}");
    assert!(inbox_ids(&server).await.is_empty());
}

#[tokio::test]
async fn wrong_password_is_refused() {
    if !require_tool("python3") {
        return;
    }
    let server = Server::start(&setup("")).unwrap();
    let mut wrong = session(&server, Pop3Security::Stls, &["stat"]);
    wrong.password = "wrong";
    let result = clients::poplib(&wrong).unwrap();
    assert!(!step(&result, "login").ok, "{result:?}");
    assert!(
        step(&result, "login").text().contains("[AUTH]"),
        "{result:?}"
    );
}

#[tokio::test]
async fn curl_lists_and_retrieves_over_stls_and_pop3s() {
    if !require_tool("curl") || !require_tool("python3") {
        return;
    }
    let server = Server::start(&setup("")).unwrap();
    let sent = deliver(&server, "pop-curl", 2500);
    for (security, listener) in [
        (Pop3Security::Stls, "pop3"),
        (Pop3Security::ImplicitTls, "pop3s"),
    ] {
        let address = server.address(listener).unwrap();
        let listing = clients::curl_pop3(address, security, USER, PASSWORD, "")
            .unwrap()
            .ok("curl list")
            .unwrap();
        let line = listing.stdout.trim_end();
        let (number, size) = line.split_once(' ').unwrap();
        assert_eq!(number, "1", "{listing:?}");
        let retrieved = clients::curl_pop3(address, security, USER, PASSWORD, "1")
            .unwrap()
            .ok("curl retrieve")
            .unwrap();
        assert_eq!(size.parse::<usize>().unwrap(), retrieved.stdout.len());
        assert_retrieved(retrieved.stdout.as_bytes(), &sent);
    }
}
