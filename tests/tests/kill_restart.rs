//! Lifecycle under fire: concurrent SMTP sessions against the real binary while it is
//! SIGKILLed at seeded random moments and restarted on the same data folder. What the
//! clients were promised (250 after DATA) must be in the mailboxes exactly once; what
//! got no answer may or may not be there, but never twice.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::rng::{SeededRng, seed_from_env};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::smtp::SmtpClient;
use sluice_tests::{message_id_of, test_message};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

const CLIENTS: u64 = 8;
const KILLS: usize = 16;
const RECIPIENTS: [&str; 2] = ["first@kill.test", "second@kill.test"];

/// What one client knows about one message it sent.
#[derive(Debug)]
struct Attempt {
    message_id: String,
    recipients: Vec<&'static str>,
    /// The queue id from `250 ... queued as <id>`: the promise.
    promised: Option<String>,
}

async fn client(
    number: u64,
    seed: u64,
    address: Arc<RwLock<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
) -> Vec<Attempt> {
    let mut rng = SeededRng::new(seed ^ (number + 1).wrapping_mul(0x9e37_79b9));
    let mut attempts = Vec::new();
    let mut sequence = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let current = *address.read().unwrap();
        let Some(current) = current else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let connected =
            tokio::time::timeout(Duration::from_secs(5), SmtpClient::connect(current)).await;
        let Ok(Ok((mut connection, greeting))) = connected else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if greeting.code != 220 {
            continue;
        }
        let ehlo = tokio::time::timeout(
            Duration::from_secs(5),
            connection.command("EHLO client.kill.test"),
        )
        .await;
        if !matches!(ehlo, Ok(Ok(ref reply)) if reply.code == 250) {
            continue;
        }
        // Some sessions carry many messages, some one: both paths must keep promises.
        let per_connection = rng.range(1, 12);
        for _ in 0..per_connection {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            sequence += 1;
            let message_id = format!("kill-{number}-{sequence}@client.kill.test");
            let recipients: Vec<&'static str> = match rng.range(0, 3) {
                0 => vec![RECIPIENTS[0]],
                1 => vec![RECIPIENTS[1]],
                _ => RECIPIENTS.to_vec(),
            };
            let size = rng.range(300, 24_000) as usize;
            let message = test_message(&message_id, recipients[0], size);
            let sent = tokio::time::timeout(
                Duration::from_secs(20),
                connection.send_mail("sender@client.kill.test", &recipients, &message),
            )
            .await;
            match sent {
                Ok(Ok(transaction)) => {
                    let data_started = transaction.end_of_data.is_some();
                    let promised = transaction.accepted().and_then(|reply| reply.queue_id());
                    if transaction.accepted().is_some() {
                        assert!(
                            promised.is_some(),
                            "250 without a queue id: {transaction:?}"
                        );
                    }
                    if data_started {
                        attempts.push(Attempt {
                            message_id,
                            recipients,
                            promised,
                        });
                    }
                    if transaction.accepted().is_none() {
                        break;
                    }
                }
                // No answer: the message may or may not have been stored.
                Ok(Err(_)) | Err(_) => {
                    attempts.push(Attempt {
                        message_id,
                        recipients,
                        promised: None,
                    });
                    break;
                }
            }
        }
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promised_messages_survive_sigkill_exactly_once() {
    let seed = seed_from_env();
    println!("seed {seed} (replay the schedule with SLUICE_TEST_SEED={seed})");
    let mut rng = SeededRng::new(seed);
    let setup = ServerSetup {
        hostname: "mx.kill.test".to_owned(),
        domains: vec!["kill.test".to_owned()],
        users: RECIPIENTS
            .iter()
            .map(|address| ((*address).to_owned(), "secret".to_owned()))
            .collect(),
        ..ServerSetup::default()
    };
    let mut server = tokio::task::block_in_place(|| Server::start(&setup)).unwrap();
    let test_started = std::time::Instant::now();

    let address = Arc::new(RwLock::new(Some(server.address("mx").unwrap())));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| tokio::spawn(client(number, seed, address.clone(), stop.clone())))
        .collect();

    for kill in 0..KILLS {
        let alive_for = Duration::from_millis(rng.range(200, 1500));
        tokio::time::sleep(alive_for).await;
        *address.write().unwrap() = None;
        tokio::task::block_in_place(|| server.kill());
        println!("kill {} after {alive_for:?}", kill + 1);
        tokio::time::sleep(Duration::from_millis(rng.range(0, 100))).await;
        let launched = std::time::Instant::now();
        tokio::task::block_in_place(|| server.launch()).unwrap();
        *address.write().unwrap() = Some(server.address("mx").unwrap());
        println!("restart {} ready in {:?}", kill + 1, launched.elapsed());
    }
    // A last stretch without a kill, so sessions in flight finish normally.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    println!("{:?}: stopping clients", test_started.elapsed());
    let mut attempts = Vec::new();
    for handle in clients {
        attempts.extend(handle.await.unwrap());
    }
    println!("{:?}: clients done", test_started.elapsed());
    tokio::task::block_in_place(|| server.terminate()).unwrap();
    println!("{:?}: server stopped", test_started.elapsed());

    let store = server.open_store().await.unwrap();
    let by_id: HashMap<&str, &Attempt> = attempts
        .iter()
        .map(|attempt| (attempt.message_id.as_str(), attempt))
        .collect();
    let promised = attempts.iter().filter(|a| a.promised.is_some()).count();
    println!(
        "{} messages sent, {promised} promised, {} without an answer",
        attempts.len(),
        attempts.len() - promised
    );
    assert!(promised > 0, "no message was ever accepted");

    for recipient in RECIPIENTS {
        let stored = store.folder_messages(recipient, "INBOX").await.unwrap();
        let uids: HashSet<u32> = stored.iter().map(|message| message.uid).collect();
        assert_eq!(uids.len(), stored.len(), "{recipient}: a UID was reused");
        let mut copies: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for message in &stored {
            let body = store.read_blob(&message.blob).await.unwrap();
            assert_eq!(
                body.len() as u64,
                message.size,
                "{recipient}: size mismatch"
            );
            let id = message_id_of(&body).expect("stored message without Message-ID");
            copies.entry(id).or_default().push(message.queue_id.clone());
        }
        for (id, queue_ids) in &copies {
            assert_eq!(
                queue_ids.len(),
                1,
                "{recipient}: {id} stored {} times (queue ids {queue_ids:?})",
                queue_ids.len()
            );
            let attempt = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{recipient}: {id} stored but never sent"));
            assert!(
                attempt.recipients.contains(&recipient),
                "{recipient}: {id} was not addressed to it"
            );
        }
        for attempt in attempts
            .iter()
            .filter(|a| a.recipients.contains(&recipient))
        {
            if let Some(queue_id) = &attempt.promised {
                let stored = copies.get(&attempt.message_id).unwrap_or_else(|| {
                    panic!(
                        "{recipient}: {} was promised (queued as {queue_id}) but is lost",
                        attempt.message_id
                    )
                });
                assert_eq!(
                    &stored[0], queue_id,
                    "{recipient}: {} stored under another queue id",
                    attempt.message_id
                );
            }
        }
        println!(
            "{:?}: {recipient}: {} messages stored, none twice",
            test_started.elapsed(),
            copies.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_keeps_the_mail() {
    let setup = ServerSetup {
        hostname: "mx.kill.test".to_owned(),
        domains: vec!["kill.test".to_owned()],
        users: vec![(RECIPIENTS[0].to_owned(), "secret".to_owned())],
        ..ServerSetup::default()
    };
    let mut server = tokio::task::block_in_place(|| Server::start(&setup)).unwrap();
    let mut queue_ids = Vec::new();
    for round in 0..2 {
        let (mut client, _) = SmtpClient::connect(server.address("mx").unwrap())
            .await
            .unwrap();
        assert_eq!(client.command("EHLO client.test").await.unwrap().code, 250);
        let message = test_message(&format!("term-{round}@client.test"), RECIPIENTS[0], 2000);
        let transaction = client
            .send_mail("a@client.test", &[RECIPIENTS[0]], &message)
            .await
            .unwrap();
        queue_ids.push(transaction.accepted().unwrap().queue_id().unwrap());
        client.quit().await;
        // An idle session must not hold the shutdown beyond its grace period.
        let (_idle, _) = SmtpClient::connect(server.address("mx").unwrap())
            .await
            .unwrap();
        let status = tokio::task::block_in_place(|| server.terminate()).unwrap();
        assert!(status.success(), "exit after SIGTERM: {status}");
        let logs = server.stderr_all();
        assert!(!logs.contains("panicked"), "{logs}");
        tokio::task::block_in_place(|| server.launch()).unwrap();
    }
    assert_ne!(
        queue_ids[0], queue_ids[1],
        "queue ids are unique across restarts"
    );
    let store = server.open_store().await.unwrap();
    let stored = store.folder_messages(RECIPIENTS[0], "INBOX").await.unwrap();
    let stored_ids: Vec<&str> = stored.iter().map(|m| m.queue_id.as_str()).collect();
    assert_eq!(stored_ids, queue_ids, "both messages, once each, in order");
    assert!(stored[0].uid < stored[1].uid, "UIDs grow across restarts");
}
