//! Guarantee 8 against the real binary: an unauthenticated client can never relay.
//! Every classic relay trick is tried on the MX and (unauthenticated) submission
//! listeners; each must be refused with a 5xx at RCPT or earlier, and afterwards the
//! store must hold nothing for anyone.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::smtp::SmtpClient;
use sluice_tests::test_message;

/// Forms that would reach `user@external.example` if the server honoured them, and
/// plain external addresses.
const RELAY_ATTEMPTS: &[&str] = &[
    "user@external.example",
    "USER@EXTERNAL.EXAMPLE",
    "postmaster@external.example",
    // The percent hack: local part `user%external.example` of a local domain.
    "user%external.example@sluice.test",
    "user%external.example@mx.sluice.test",
    // UUCP bang paths.
    "external.example!user@sluice.test",
    "external.example!user",
    // Source routes (RFC 5321 §4.1.1.3: ignore the route, so this is external).
    "@sluice.test:user@external.example",
    "@mx.sluice.test,@sluice.test:user@external.example",
    // Quoted local parts holding the real target.
    "\"user@external.example\"@sluice.test",
    "\"user%external.example\"@sluice.test",
    "\"external.example!user\"@sluice.test",
    // Lookalike domains.
    "user@sluice.test.external.example",
    "user@external.example.sluice.test.invalid",
    "user@notsluice.test",
    // Address literals that are not this server's.
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    // Two at-signs, which a careless parser splits at the wrong one.
    "user@external.example@sluice.test",
    "user@sluice.test@external.example",
];

fn setup() -> ServerSetup {
    ServerSetup {
        hostname: "mx.sluice.test".to_owned(),
        domains: vec!["sluice.test".to_owned()],
        users: vec![("user@sluice.test".to_owned(), "correct horse".to_owned())],
        ..ServerSetup::default()
    }
}

/// Tries every relay form on `listener`, each on a fresh connection (the session
/// rightly hangs up after too many errors), and returns the failures as readable lines.
async fn battery(server: &Server, listener: &str, sender: &str) -> Vec<String> {
    let address = server.address(listener).unwrap();
    let mut failures = Vec::new();
    for target in RELAY_ATTEMPTS {
        let (mut client, greeting) = SmtpClient::connect(address).await.unwrap();
        assert_eq!(greeting.code, 220, "{greeting}");
        let ehlo = client.command("EHLO attacker.example").await.unwrap();
        assert_eq!(ehlo.code, 250, "{ehlo}");
        let mail = client
            .command(&format!("MAIL FROM:<{sender}>"))
            .await
            .unwrap();
        let rcpt = client
            .command(&format!("RCPT TO:<{target}>"))
            .await
            .unwrap();
        println!("{listener} <{sender}> -> <{target}>: MAIL {mail}; RCPT {rcpt}");
        if !rcpt.is_permanent_failure() {
            failures.push(format!(
                "{listener}: RCPT TO:<{target}> got {rcpt} (after MAIL: {mail})"
            ));
        }
        // Even if RCPT had been wrongly accepted, DATA must find no recipient.
        let data = client.command("DATA").await.unwrap();
        if data.code == 354 {
            let reply = client
                .send_data(&test_message("relay@attacker.example", target, 500))
                .await
                .unwrap();
            failures.push(format!(
                "{listener}: DATA for <{target}> was accepted, end of data got {reply}"
            ));
        }
        client.quit().await;
    }
    failures
}

#[tokio::test]
async fn unauthenticated_clients_cannot_relay() {
    let server = Server::start(&setup()).unwrap();
    let mut failures = Vec::new();
    for sender in ["attacker@evil.example", "user@sluice.test", ""] {
        failures.extend(battery(&server, "mx", sender).await);
        failures.extend(battery(&server, "submission", sender).await);
    }
    assert!(
        failures.is_empty(),
        "relay attempts not refused with 5xx:\n{}",
        failures.join("\n")
    );

    let store = server.open_store().await.unwrap();
    let queue = store.queue_entries().await.unwrap();
    assert!(queue.is_empty(), "nothing may be queued: {queue:?}");
    let inbox = store
        .folder_messages("user@sluice.test", "INBOX")
        .await
        .unwrap();
    assert!(inbox.is_empty(), "nothing may be delivered: {inbox:?}");
}

#[tokio::test]
async fn a_local_recipient_does_not_open_the_door_for_an_external_one() {
    let server = Server::start(&setup()).unwrap();
    let (mut client, _) = SmtpClient::connect(server.address("mx").unwrap())
        .await
        .unwrap();
    assert_eq!(
        client.command("EHLO attacker.example").await.unwrap().code,
        250
    );
    let message = test_message("mixed@attacker.example", "user@sluice.test", 800);
    let transaction = client
        .send_mail(
            "attacker@evil.example",
            &[
                "user@sluice.test",
                "user@external.example",
                "user%external.example@sluice.test",
            ],
            &message,
        )
        .await
        .unwrap();
    assert_eq!(transaction.recipients[0].code, 250);
    assert!(transaction.recipients[1].is_permanent_failure());
    assert!(transaction.recipients[2].is_permanent_failure());
    assert!(transaction.accepted().is_some(), "{transaction:?}");
    client.quit().await;

    let store = server.open_store().await.unwrap();
    let queue = store.queue_entries().await.unwrap();
    assert!(
        queue
            .iter()
            .all(|entry| entry.recipient.contains("user@sluice.test")
                && !entry.recipient.contains("external")),
        "only the local recipient may be queued: {queue:?}"
    );
    assert!(
        queue.iter().all(|entry| entry.state != "pending"),
        "nothing may await external delivery: {queue:?}"
    );
}
