//! The real binary against real clients: Python's smtplib (plain, STARTTLS, implicit
//! TLS, AUTH PLAIN and LOGIN), swaks and curl. Every accepted message is read back
//! from the store and must be byte-identical to what was sent, after the Received
//! header the server prepends.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::clients::{self, Auth, Security, Submission};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::smtp::SmtpClient;
use sluice_tests::tools::require_tool;
use sluice_tests::{message_id_of, prepended_trace, test_message};
use std::path::PathBuf;

const USER: &str = "user@sluice.test";
const PASSWORD: &str = "correct horse";
const OTHER: &str = "other@sluice.test";

fn setup() -> ServerSetup {
    ServerSetup {
        users: vec![
            (USER.to_owned(), PASSWORD.to_owned()),
            (OTHER.to_owned(), "battery staple".to_owned()),
        ],
        ..ServerSetup::default()
    }
}

/// Writes a fresh test message into the server's folder; returns its path and bytes.
fn message_file(server: &Server, name: &str, to: &str) -> (PathBuf, Vec<u8>) {
    let message = test_message(&format!("{name}@client.test"), to, 3000);
    let path = server.folder().join(format!("{name}.eml"));
    std::fs::write(&path, &message).unwrap();
    (path, message)
}

/// The message with `sent`'s Message-ID must be in `user`'s INBOX exactly once, and be
/// `sent` preceded only by Received fields.
async fn assert_stored_once(server: &Server, user: &str, sent: &[u8]) {
    let id = message_id_of(sent).unwrap();
    let inbox = server.folder_contents(user, "INBOX").await.unwrap();
    let copies: Vec<&Vec<u8>> = inbox
        .iter()
        .filter(|stored| message_id_of(stored).as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "{id} in {user}'s INBOX {} times",
        copies.len()
    );
    let stored = copies[0];
    let trace = prepended_trace(stored, sent).unwrap_or_else(|| {
        panic!(
            "{id}: stored message is not the sent one after Received fields:\n{}",
            String::from_utf8_lossy(stored)
        )
    });
    assert!(
        trace.contains("mx.sluice.test"),
        "Received names the server: {trace}"
    );
}

#[tokio::test]
async fn smtplib_plain_to_the_mx_listener() {
    let server = Server::start(&setup()).unwrap();
    let (path, sent) = message_file(&server, "smtplib-plain", USER);
    let mut submission = Submission::new(server.address("mx").unwrap(), "a@client.test", USER);
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.error(), None, "{}", report.raw);
    assert_eq!(report.code("ehlo"), Some(250), "{}", report.raw);
    let extensions = report.extensions();
    assert!(extensions.iter().any(|e| e == "STARTTLS"), "{extensions:?}");
    assert!(
        !extensions.iter().any(|e| e == "AUTH"),
        "the MX listener offers no AUTH: {extensions:?}"
    );
    assert_eq!(report.code("mail"), Some(250), "{}", report.raw);
    assert_eq!(report.codes("rcpt"), vec![250], "{}", report.raw);
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    assert_stored_once(&server, USER, &sent).await;
}

#[tokio::test]
async fn smtplib_starttls_and_auth_plain_on_submission() {
    let server = Server::start(&setup()).unwrap();
    let (path, sent) = message_file(&server, "smtplib-starttls", OTHER);
    let mut submission = Submission::new(server.address("submission").unwrap(), USER, OTHER);
    submission.security = Security::StartTls;
    submission.auth = Auth::Plain;
    submission.user = USER;
    submission.password = PASSWORD;
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.error(), None, "{}", report.raw);
    assert_eq!(report.code("starttls"), Some(220), "{}", report.raw);
    assert!(
        report.extensions().iter().any(|e| e == "AUTH"),
        "AUTH offered after STARTTLS: {}",
        report.raw
    );
    assert_eq!(report.code("auth"), Some(235), "{}", report.raw);
    assert_eq!(report.code("mail"), Some(250), "{}", report.raw);
    assert_eq!(report.codes("rcpt"), vec![250], "{}", report.raw);
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    assert_stored_once(&server, OTHER, &sent).await;
}

#[tokio::test]
async fn smtplib_implicit_tls_and_auth_login_on_submissions() {
    let server = Server::start(&setup()).unwrap();
    let (path, sent) = message_file(&server, "smtplib-tls", OTHER);
    let mut submission = Submission::new(server.address("submissions").unwrap(), USER, OTHER);
    submission.security = Security::ImplicitTls;
    submission.auth = Auth::Login;
    submission.user = USER;
    submission.password = PASSWORD;
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.error(), None, "{}", report.raw);
    assert!(
        !report.extensions().iter().any(|e| e == "STARTTLS"),
        "no STARTTLS inside TLS: {}",
        report.raw
    );
    assert_eq!(report.code("auth"), Some(235), "{}", report.raw);
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    assert_stored_once(&server, OTHER, &sent).await;
}

#[tokio::test]
async fn submission_refuses_auth_before_tls_bad_passwords_and_anonymous_mail() {
    let server = Server::start(&setup()).unwrap();
    let address = server.address("submission").unwrap();

    // AUTH over plaintext: not offered, and refused when tried anyway.
    let mut submission = Submission::new(address, USER, OTHER);
    submission.auth = Auth::Plain;
    submission.user = USER;
    submission.password = PASSWORD;
    submission.to.clear();
    let report = clients::smtplib(&submission).unwrap();
    assert!(
        !report.extensions().iter().any(|e| e == "AUTH"),
        "AUTH offered before TLS: {}",
        report.raw
    );
    assert_eq!(report.code("auth"), Some(538), "{}", report.raw);

    // A wrong password, over TLS.
    for auth in [Auth::Plain, Auth::Login] {
        let mut submission = Submission::new(address, USER, OTHER);
        submission.security = Security::StartTls;
        submission.auth = auth;
        submission.user = USER;
        submission.password = "wrong password";
        submission.to.clear();
        let report = clients::smtplib(&submission).unwrap();
        assert_eq!(report.code("auth"), Some(535), "{auth:?}: {}", report.raw);
    }
    // Both are in the audit log, the second held back by the first (core's login guard).
    let audit: Vec<String> = server
        .stderr_all()
        .lines()
        .filter(|line| line.contains(r#""target":"sluice::audit""#))
        .map(str::to_owned)
        .collect();
    assert_eq!(audit.len(), 2, "{audit:#?}");
    for line in &audit {
        // The server logs JSON lines.
        for field in [
            r#""event":"login""#,
            r#""protocol":"smtp""#,
            r#""result":"failed""#,
            r#""address":"127.0.0.1""#,
        ] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
    }
    assert!(audit[0].contains(r#""delayed_ms":0"#), "{}", audit[0]);
    assert!(audit[1].contains(r#""delayed_ms":2000"#), "{}", audit[1]);

    // Mail without authentication, with and without TLS.
    for security in [Security::Plain, Security::StartTls] {
        let mut submission = Submission::new(address, USER, OTHER);
        submission.security = security;
        let report = clients::smtplib(&submission).unwrap();
        assert_eq!(
            report.code("mail"),
            Some(530),
            "{security:?}: {}",
            report.raw
        );
        assert!(
            report.codes("rcpt").iter().all(|code| *code >= 500),
            "{security:?}: {}",
            report.raw
        );
    }
    let inbox = server.folder_contents(OTHER, "INBOX").await.unwrap();
    assert!(inbox.is_empty(), "nothing may have been stored");
}

#[tokio::test]
async fn authenticated_submission_may_send_to_external_addresses() {
    let server = Server::start(&setup()).unwrap();
    let (path, _) = message_file(&server, "smtplib-outbound", "friend@external.example");
    let mut submission = Submission::new(
        server.address("submission").unwrap(),
        USER,
        "friend@external.example",
    );
    submission.security = Security::StartTls;
    submission.auth = Auth::Plain;
    submission.user = USER;
    submission.password = PASSWORD;
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.codes("rcpt"), vec![250], "{}", report.raw);
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    let store = server.open_store().await.unwrap();
    let queue = store.queue_entries().await.unwrap();
    // The harness's DNS answers nothing, so the copy waits in the queue: queued,
    // or deferred once its first attempt found no MX answer.
    assert!(
        queue
            .iter()
            .any(|entry| entry.recipient.contains("friend@external.example")
                && (entry.state == "pending" || entry.state == "deferred")),
        "queued for delivery: {queue:?}"
    );
}

#[tokio::test]
async fn unknown_users_are_refused_at_rcpt() {
    let server = Server::start(&setup()).unwrap();
    let (mut client, greeting) = SmtpClient::connect(server.address("mx").unwrap())
        .await
        .unwrap();
    assert_eq!(greeting.code, 220, "{greeting}");
    assert_eq!(client.command("EHLO client.test").await.unwrap().code, 250);
    let sent = test_message("unknown-mixed@client.test", USER, 1000);
    let transaction = client
        .send_mail("a@client.test", &["nobody@sluice.test", USER], &sent)
        .await
        .unwrap();
    let nobody = &transaction.recipients[0];
    assert_eq!(nobody.code, 550, "{nobody}");
    assert!(nobody.text().starts_with("5.1.1"), "{nobody}");
    assert_eq!(transaction.recipients[1].code, 250);
    assert!(transaction.accepted().is_some(), "{transaction:?}");

    // Only unknown recipients: DATA has nobody to deliver to.
    let transaction = client
        .send_mail("a@client.test", &["nobody@sluice.test"], &sent)
        .await
        .unwrap();
    assert_eq!(transaction.recipients[0].code, 550);
    assert!(transaction.end_of_data.is_none());
    client.quit().await;
    assert_stored_once(&server, USER, &sent).await;
}

#[tokio::test]
async fn swaks_plain_starttls_and_implicit_tls() {
    if !require_tool("swaks") {
        return;
    }
    let server = Server::start(&setup()).unwrap();
    let cases = [
        ("mx", Security::Plain, Auth::None),
        ("submission", Security::StartTls, Auth::Plain),
        ("submissions", Security::ImplicitTls, Auth::Login),
    ];
    for (listener, security, auth) in cases {
        let name = format!("swaks-{listener}");
        let (path, sent) = message_file(&server, &name, USER);
        // swaks ends the data with CRLF.CRLF after the file's last line, so a file
        // ending in CRLF would gain an empty line: give it the message without it.
        std::fs::write(&path, sent.strip_suffix(b"\r\n").unwrap()).unwrap();
        let mut submission = Submission::new(server.address(listener).unwrap(), USER, USER);
        submission.security = security;
        submission.auth = auth;
        submission.user = USER;
        submission.password = PASSWORD;
        submission.message = Some(&path);
        let finished = clients::swaks(&submission).unwrap();
        assert!(
            finished.success,
            "swaks via {listener}: {}\n{}",
            finished.stdout, finished.stderr
        );
        assert_stored_once(&server, USER, &sent).await;
    }
}

#[tokio::test]
async fn curl_plain_starttls_and_implicit_tls() {
    if !require_tool("curl") {
        return;
    }
    let server = Server::start(&setup()).unwrap();
    let cases = [
        ("mx", Security::Plain, Auth::None),
        ("submission", Security::StartTls, Auth::Plain),
        ("submissions", Security::ImplicitTls, Auth::Login),
    ];
    for (listener, security, auth) in cases {
        let name = format!("curl-{listener}");
        let (path, sent) = message_file(&server, &name, OTHER);
        let mut submission = Submission::new(server.address(listener).unwrap(), USER, OTHER);
        submission.security = security;
        submission.auth = auth;
        submission.user = USER;
        submission.password = PASSWORD;
        submission.message = Some(&path);
        let finished = clients::curl(&submission).unwrap();
        assert!(
            finished.success,
            "curl via {listener} ({:?}): {}\n{}",
            finished.code, finished.stdout, finished.stderr
        );
        assert_stored_once(&server, OTHER, &sent).await;
    }
}
