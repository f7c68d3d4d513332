//! Delivery attempts against scripted SMTP servers on loopback: connections are
//! reused for consecutive messages to one host, an MX host that refuses the session
//! hands its recipients to the next one, and a server that answers per recipient is
//! reported per recipient. (Real peers — Postfix, smtp-sink, another Sluice — are in
//! tests/tests/delivery_*.rs.)

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_core::delivery::{DeliveryPath, Destination, RecipientResult, TlsPolicy};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{Limits, OutgoingMessage, OutgoingRecipient};
use sluice_net::delivery::{ClientTls, Deliverer};
use sluice_net::dkim::DkimKeyStore;
use sluice_net::dns::{OverrideEntry, OverrideTable, Resolver, ResolverSettings};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How a scripted server answers.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// 250 to everything.
    Accept,
    /// 554 instead of the greeting: no service here.
    RefuseSession,
    /// Like `Accept`, but a connection's second MAIL is met with a close: a pooled
    /// connection the server dropped while it was idle.
    CloseOnSecondMail,
    /// Like `Accept`, but a connection's second message is kept and the connection
    /// closed instead of the final reply: the reply is lost (RFC 5321 §4.1.1.4).
    LoseSecondFinalReply,
}

/// A minimal SMTP server on loopback; counts connections and messages.
struct Scripted {
    port: u16,
    connections: Arc<AtomicUsize>,
    messages: Arc<AtomicUsize>,
}

async fn scripted(script: Script) -> Scripted {
    scripted_on("127.0.0.1:0", script).await
}

async fn scripted_on(address: &str, script: Script) -> Scripted {
    let listener = TcpListener::bind(address).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let messages = Arc::new(AtomicUsize::new(0));
    let (counted, delivered) = (Arc::clone(&connections), Arc::clone(&messages));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let delivered = Arc::clone(&delivered);
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut lines = BufReader::new(reader).lines();
                if matches!(script, Script::RefuseSession) {
                    let _ = writer.write_all(b"554 5.3.2 no service here\r\n").await;
                    return;
                }
                let _ = writer.write_all(b"220 scripted ESMTP\r\n").await;
                let mut in_data = false;
                let mut transactions = 0;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if in_data {
                        if line == "." {
                            in_data = false;
                            delivered.fetch_add(1, Ordering::SeqCst);
                            if matches!(script, Script::LoseSecondFinalReply) && transactions == 2 {
                                return;
                            }
                            b"250 2.0.0 accepted\r\n"
                        } else {
                            continue;
                        }
                    } else {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" => b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                            "MAIL" => {
                                transactions += 1;
                                if matches!(script, Script::CloseOnSecondMail) && transactions == 2
                                {
                                    return;
                                }
                                b"250 2.0.0 ok\r\n"
                            }
                            "DATA" => {
                                in_data = true;
                                b"354 go on\r\n"
                            }
                            "QUIT" => {
                                let _ = writer.write_all(b"221 2.0.0 bye\r\n").await;
                                return;
                            }
                            _ => b"250 2.0.0 ok\r\n",
                        }
                    };
                    if writer.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Scripted {
        port,
        connections,
        messages,
    }
}

/// A deliverer whose DNS answers only from `overrides`.
fn deliverer(overrides: OverrideTable, mx_port: u16) -> Deliverer {
    let settings = ResolverSettings {
        // Nothing listens on the discard port: DNS is never needed here.
        nameservers: Some(vec!["127.0.0.1:9".parse().unwrap()]),
        timeout: Duration::from_millis(200),
        attempts: 1,
        overrides,
        limits: Default::default(),
    };
    Deliverer {
        dns: Resolver::new(settings).unwrap(),
        tls: ClientTls::new(None).unwrap(),
        hostname: Domain::parse("sender.test").unwrap(),
        mx_port,
        connect_timeout: Duration::from_secs(5),
        limits: Limits::default(),
        dkim: DkimKeyStore::new(),
        pool: Arc::default(),
        relay_credentials: Default::default(),
    }
}

fn message(queue_id: &str, recipients: &[&str]) -> OutgoingMessage {
    OutgoingMessage {
        queue_id: queue_id.to_owned(),
        reverse_path: Some("alice@sender.test".to_owned()),
        recipients: recipients
            .iter()
            .map(|address| OutgoingRecipient {
                address: (*address).to_owned(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        ret: None,
        envid: None,
        body: b"Subject: t\r\n\r\nhello\r\n".to_vec().into(),
        eight_bit: false,
        smtputf8: false,
    }
}

fn relay(port: u16) -> Destination {
    Destination {
        path: DeliveryPath::Relay {
            host: "127.0.0.1".to_owned(),
            port,
        },
        tls: TlsPolicy::Disabled,
    }
}

fn all_delivered(results: &[(String, RecipientResult)]) -> bool {
    results
        .iter()
        .all(|(_, result)| matches!(result, RecipientResult::Delivered { .. }))
}

#[tokio::test]
async fn consecutive_messages_to_one_host_share_a_connection() {
    let server = scripted(Script::Accept).await;
    let deliverer = deliverer(OverrideTable::new(), 25);
    for index in 0..3 {
        let results = deliverer
            .attempt(
                &relay(server.port),
                message(&format!("Q{index}"), &["bob@far.test"]),
                index,
            )
            .await;
        assert!(all_delivered(&results), "{results:?}");
    }
    assert_eq!(server.messages.load(Ordering::SeqCst), 3);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_host_that_refuses_the_session_hands_its_recipients_to_the_next() {
    // Two MX hosts on one port: the preferred one on 127.0.0.1 refuses the session,
    // the other on 127.0.0.2 (loopback too) accepts.
    let refusing = scripted(Script::RefuseSession).await;
    let accepting = scripted_on(&format!("127.0.0.2:{}", refusing.port), Script::Accept).await;
    let mut overrides = OverrideTable::new();
    overrides
        .insert(
            "far.test",
            OverrideEntry {
                mx: Some(vec![
                    (10, "mx1.far.test".to_owned()),
                    (20, "mx2.far.test".to_owned()),
                ]),
                addresses: None,
            },
        )
        .unwrap();
    for (host, ip) in [("mx1.far.test", "127.0.0.1"), ("mx2.far.test", "127.0.0.2")] {
        overrides
            .insert(
                host,
                OverrideEntry {
                    mx: None,
                    addresses: Some(vec![ip.parse().unwrap()]),
                },
            )
            .unwrap();
    }
    let results = deliverer(overrides, refusing.port)
        .attempt(
            &Destination::mx("far.test"),
            message("Q1", &["bob@far.test", "carol@far.test"]),
            1,
        )
        .await;
    assert!(all_delivered(&results), "{results:?}");
    assert_eq!(results.len(), 2);
    assert_eq!(refusing.connections.load(Ordering::SeqCst), 1);
    assert_eq!(accepting.messages.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_null_mx_fails_for_good_without_a_connection() {
    let mut overrides = OverrideTable::new();
    overrides
        .insert(
            "nomail.test",
            OverrideEntry {
                mx: Some(vec![(0, ".".to_owned())]),
                addresses: None,
            },
        )
        .unwrap();
    let results = deliverer(overrides, 25)
        .attempt(
            &Destination::mx("nomail.test"),
            message("Q1", &["x@nomail.test"]),
            1,
        )
        .await;
    match &results[..] {
        [(address, RecipientResult::Permanent(failure))] => {
            assert_eq!(address, "x@nomail.test");
            assert_eq!(failure.status.to_string(), "5.1.10");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn nobody_listening_is_a_temporary_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let results = deliverer(OverrideTable::new(), 25)
        .attempt(&relay(port), message("Q1", &["bob@far.test"]), 1)
        .await;
    match &results[..] {
        [(_, RecipientResult::Temporary(failure))] => {
            assert_eq!(failure.status.to_string(), "4.4.1");
        }
        other => panic!("{other:?}"),
    }
}

/// Delivers two messages in a row to one scripted relay; returns the second one's
/// results.
async fn two_in_a_row(server: &Scripted) -> Vec<(String, RecipientResult)> {
    let deliverer = deliverer(OverrideTable::new(), 25);
    let first = deliverer
        .attempt(&relay(server.port), message("Q1", &["bob@far.test"]), 1)
        .await;
    assert!(all_delivered(&first), "{first:?}");
    deliverer
        .attempt(&relay(server.port), message("Q2", &["bob@far.test"]), 2)
        .await
}

#[tokio::test]
async fn a_pooled_connection_dropped_before_any_reply_is_retried_at_once_on_a_fresh_one() {
    let server = scripted(Script::CloseOnSecondMail).await;
    let second = two_in_a_row(&server).await;
    assert!(all_delivered(&second), "{second:?}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    assert_eq!(server.messages.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_reply_lost_after_the_end_of_data_is_ambiguous_and_not_sent_again() {
    let server = scripted(Script::LoseSecondFinalReply).await;
    let second = two_in_a_row(&server).await;
    assert!(
        matches!(second.as_slice(), [(_, RecipientResult::Ambiguous(_))]),
        "{second:?}"
    );
    // The server holds the message once: no second copy on a fresh connection.
    assert_eq!(server.messages.load(Ordering::SeqCst), 2);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}
