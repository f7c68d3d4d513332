//! The delivery queue's durable state on every database and body placement: what
//! accept queues comes back as core's queue types; the queue's decisions and the
//! notice they carry are written in one transaction; blob references follow the
//! records; finished messages go away, with their last decision; an administrator's
//! flush reaches the store; concurrent writes share the group commit, each answered
//! about its own write.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestDatabase;
use sluice_core::delivery::{DeliveryPath, Destination, Diagnostic, Failure, TlsPolicy};
use sluice_core::queue::{RecipientChange, RecipientState};
use sluice_core::smtp::params::{Notify, OriginalRecipient, Ret};
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::time::Instant;
use sluice_net::store::{IncomingMessage, QueuedCopy, RoutedRecipient, Store};

per_engine_and_placement!(
    queued_copies_come_back_as_the_queue_had_them,
    decisions_and_their_notice_commit_together,
    finished_messages_release_their_body,
    a_flush_without_a_server_is_kept_for_the_next_start,
    concurrent_writes_are_each_answered_and_a_bad_one_fails_alone,
    a_last_decision_stores_its_notice_and_removes_the_message,
    a_local_copy_owes_its_success_notice_until_the_queue_stores_it,
);

const ARRIVAL_MS: i64 = 1_764_400_000_000;

async fn store_with_users(database: &TestDatabase) -> Store {
    let store = database.open().await;
    store.add_domain("example.org").await.unwrap();
    store.add_user("alice@example.org", "pw").await.unwrap();
    store
}

fn relay() -> Destination {
    Destination {
        path: DeliveryPath::Relay {
            host: "smart.example.net".to_owned(),
            port: 587,
        },
        tls: TlsPolicy::Required,
    }
}

/// From alice, to a local copy for alice and two queued copies with DSN parameters.
fn message(queue_id: &str) -> IncomingMessage {
    let mut far = QueuedCopy::to_mx("bob@far.test", "bob@far.test");
    far.notify = Some(Notify::On {
        success: true,
        failure: true,
        delay: false,
    });
    far.orcpt = Some(OriginalRecipient {
        address_type: "rfc822".to_owned(),
        address: "Bob@Far.Test".to_owned(),
    });
    let mut smart = QueuedCopy::to_mx("carol@partner.test", "carol@partner.test");
    smart.destination = relay();
    smart.notify = Some(Notify::Never);
    let mut incoming = IncomingMessage::new(
        queue_id,
        "<alice@example.org>",
        ARRIVAL_MS,
        vec![
            RoutedRecipient::local("alice@example.org", "alice@example.org"),
            RoutedRecipient::Queued(far),
            RoutedRecipient::Queued(smart),
        ],
        b"Received: from a\r\nReceived: from b\r\nSubject: q\r\n\r\nbody\r\n".to_vec(),
    );
    incoming.envid = Some("env-1".to_owned());
    incoming.ret = Some(Ret::Headers);
    incoming.smtputf8 = true;
    incoming.received_headers = 2;
    incoming
}

fn deferred(attempts: u32, next_ms: u64) -> RecipientState {
    RecipientState::Deferred {
        attempts,
        next_attempt: Instant::from_millis(next_ms),
        last_failure: Failure {
            status: EnhancedStatus::new(4, 2, 0),
            remote_mta: Some("mx.far.test".to_owned()),
            diagnostic: Diagnostic::Reply(Reply::new(
                450,
                EnhancedStatus::new(4, 2, 0),
                "mailbox busy",
            )),
        },
        last_attempt_at: Instant::from_millis(next_ms - 300_000),
    }
}

async fn queued_copies_come_back_as_the_queue_had_them(database: TestDatabase) {
    let store = store_with_users(&database).await;
    store.accept(&message("Q1")).await.unwrap();
    let queued = store.queued_messages().await.unwrap();
    assert_eq!(queued.len(), 1);
    let restored = &queued[0];
    assert_eq!(restored.queue_id, "Q1");
    assert_eq!(restored.reverse_path.as_deref(), Some("alice@example.org"));
    assert_eq!(restored.envid.as_deref(), Some("env-1"));
    assert_eq!(restored.ret, Some(Ret::Headers));
    assert_eq!(restored.received_headers, 2);
    assert_eq!(restored.arrival, Instant::from_millis(ARRIVAL_MS as u64));
    // The local copy went into the mailbox at acceptance: not the queue's.
    let addresses: Vec<&str> = restored
        .recipients
        .iter()
        .map(|recipient| recipient.address.as_str())
        .collect();
    assert_eq!(addresses, ["bob@far.test", "carol@partner.test"]);
    let bob = &restored.recipients[0];
    assert_eq!(bob.destination, Destination::mx("far.test"));
    assert_eq!(bob.state, RecipientState::Pending);
    assert_eq!(
        bob.notify,
        Some(Notify::On {
            success: true,
            failure: true,
            delay: false
        })
    );
    assert_eq!(bob.original.as_ref().unwrap().address, "Bob@Far.Test");
    assert_eq!(restored.recipients[1].destination, relay());
    assert_eq!(restored.recipients[1].notify, Some(Notify::Never));
    let body = store.queued_message("Q1").await.unwrap();
    assert!(body.smtputf8);
    assert_eq!(body.data, message("Q1").data);

    // A deferral is restored with its schedule, reply and all.
    let change = RecipientChange {
        address: "bob@far.test".to_owned(),
        state: deferred(1, ARRIVAL_MS as u64 + 600_000),
        delay_notified: true,
        success_owed: false,
    };
    store
        .persist_queue("Q1", std::slice::from_ref(&change), None)
        .await
        .unwrap();
    let queued = store.queued_messages().await.unwrap();
    let bob = &queued[0].recipients[0];
    assert_eq!(bob.state, change.state);
    assert!(bob.delay_notified);
}

async fn decisions_and_their_notice_commit_together(database: TestDatabase) {
    let store = store_with_users(&database).await;
    store.accept(&message("Q2")).await.unwrap();
    let failed = RecipientState::Failed {
        at: Instant::from_millis(ARRIVAL_MS as u64 + 1000),
        failure: Failure {
            status: EnhancedStatus::new(5, 1, 1),
            remote_mta: Some("mx.far.test".to_owned()),
            diagnostic: Diagnostic::Reply(Reply::new(
                550,
                EnhancedStatus::new(5, 1, 1),
                "no such user",
            )),
        },
    };
    let notice = IncomingMessage::new(
        "N2",
        "<>",
        ARRIVAL_MS + 1000,
        vec![RoutedRecipient::local(
            "alice@example.org",
            "alice@example.org",
        )],
        b"From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail\r\n\r\nsorry\r\n".to_vec(),
    );
    let change = RecipientChange {
        address: "bob@far.test".to_owned(),
        state: failed.clone(),
        delay_notified: false,
        success_owed: false,
    };
    store
        .persist_queue("Q2", std::slice::from_ref(&change), Some(&notice))
        .await
        .unwrap();
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2, "the message's own copy and the notice");
    assert_eq!(store.read_blob(&inbox[1].blob).await.unwrap(), notice.data);
    let entries = store.queue_entries().await.unwrap();
    let bob = entries
        .iter()
        .find(|entry| entry.recipient == "bob@far.test")
        .unwrap();
    assert_eq!(bob.state, "failed");
    assert_eq!(bob.status.as_deref(), Some("5.1.1"));
    assert_eq!(bob.remote_mta.as_deref(), Some("mx.far.test"));
    assert!(bob.diagnostic.as_deref().unwrap().contains("no such user"));
    // Writing the same decision again (a retried write) stores nothing twice.
    store
        .persist_queue("Q2", &[change], Some(&notice))
        .await
        .unwrap();
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2);
    // Carol is still pending, so the message is still the queue's.
    let queued = store.queued_messages().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].recipients[0].state, failed);
}

async fn finished_messages_release_their_body(database: TestDatabase) {
    let store = store_with_users(&database).await;
    store.accept(&message("Q3")).await.unwrap();
    let blob = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap()[0]
        .blob
        .clone();
    // Alice's mailbox copy and two queued copies.
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(3));
    let delivered = RecipientState::Delivered {
        at: Instant::from_millis(ARRIVAL_MS as u64 + 5000),
        remote_mta: Some("mx.far.test".to_owned()),
        reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "queued as X"),
        notify_passed_on: true,
    };
    let change = RecipientChange {
        address: "bob@far.test".to_owned(),
        state: delivered,
        delay_notified: false,
        success_owed: false,
    };
    store.persist_queue("Q3", &[change], None).await.unwrap();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(2));
    // An administrator removes the message with carol still pending.
    store.remove_queued("Q3").await.unwrap();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(1));
    assert!(store.queued_messages().await.unwrap().is_empty());
    assert!(store.queue_entries().await.unwrap().is_empty());
    // The mailbox copy is untouched.
    assert_eq!(
        store
            .folder_messages("alice@example.org", "INBOX")
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_flush_without_a_server_is_kept_for_the_next_start(database: TestDatabase) {
    let store = store_with_users(&database).await;
    store.accept(&message("Q4")).await.unwrap();
    let far_future = ARRIVAL_MS as u64 + 3_600_000;
    let change = RecipientChange {
        address: "bob@far.test".to_owned(),
        state: deferred(3, far_future),
        delay_notified: false,
        success_owed: false,
    };
    store.persist_queue("Q4", &[change], None).await.unwrap();
    let now = ARRIVAL_MS + 1000;
    assert_eq!(store.retry_now(Some("Q4"), now).await.unwrap(), 1);
    let queued = store.queued_messages().await.unwrap();
    match &queued[0].recipients[0].state {
        RecipientState::Deferred {
            attempts,
            next_attempt,
            ..
        } => {
            assert_eq!(*attempts, 3);
            assert_eq!(*next_attempt, Instant::from_millis(now as u64));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.retry_now(Some("elsewhere"), now).await.unwrap(), 0);
}

fn delivered_bob() -> RecipientChange {
    RecipientChange {
        address: "bob@far.test".to_owned(),
        state: RecipientState::Delivered {
            at: Instant::from_millis(ARRIVAL_MS as u64 + 5000),
            remote_mta: Some("mx.far.test".to_owned()),
            reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "queued as X"),
            notify_passed_on: true,
        },
        delay_notified: false,
        success_owed: false,
    }
}

/// A notice from the null reverse-path into `user`'s mailbox.
fn notice_to(queue_id: &str, user: &str) -> IncomingMessage {
    IncomingMessage::new(
        queue_id,
        "<>",
        ARRIVAL_MS + 1000,
        vec![RoutedRecipient::local(user, user)],
        format!("From: MAILER-DAEMON@example.org\r\nSubject: {queue_id}\r\n\r\nsorry\r\n")
            .into_bytes(),
    )
}

async fn concurrent_writes_are_each_answered_and_a_bad_one_fails_alone(database: TestDatabase) {
    const MESSAGES: usize = 24;
    let store = store_with_users(&database).await;
    // Accepts at once, one of them for a local user who does not exist.
    let mut accepts = Vec::new();
    for n in 0..MESSAGES {
        let store = store.clone();
        accepts.push(tokio::spawn(async move {
            store.accept(&message(&format!("C{n:02}"))).await
        }));
    }
    let bad = store.clone();
    let bad_accept = tokio::spawn(async move {
        let mut incoming = message("CBAD");
        incoming.recipients[0] = RoutedRecipient::local("nobody@example.org", "nobody@example.org");
        bad.accept(&incoming).await
    });
    for accept in accepts {
        accept.await.unwrap().unwrap();
    }
    assert!(bad_accept.await.unwrap().is_err());
    assert_eq!(store.queued_messages().await.unwrap().len(), MESSAGES);

    // Queue decisions at once: even messages get bob's state, odd ones their last
    // decision (removal), and one write carries a notice that cannot be stored.
    let mut decisions = Vec::new();
    for n in 0..MESSAGES {
        let store = store.clone();
        decisions.push(tokio::spawn(async move {
            let queue_id = format!("C{n:02}");
            if n % 2 == 0 {
                let notice = notice_to(&format!("N{n:02}"), "alice@example.org");
                store
                    .persist_queue(&queue_id, &[delivered_bob()], Some(&notice))
                    .await
            } else {
                store.finish_queued(&queue_id, None).await
            }
        }));
    }
    let bad = store.clone();
    let bad_decision = tokio::spawn(async move {
        let notice = notice_to("NBAD", "nobody@example.org");
        bad.persist_queue("C00", &[delivered_bob()], Some(&notice))
            .await
    });
    for decision in decisions {
        decision.await.unwrap().unwrap();
    }
    assert!(bad_decision.await.unwrap().is_err());

    let queued = store.queued_messages().await.unwrap();
    let mut ids: Vec<String> = queued.iter().map(|m| m.queue_id.clone()).collect();
    ids.sort();
    let expected: Vec<String> = (0..MESSAGES)
        .filter(|n| n % 2 == 0)
        .map(|n| format!("C{n:02}"))
        .collect();
    assert_eq!(ids, expected, "the odd ones were removed");
    for message in &queued {
        assert_eq!(message.recipients[0].state, delivered_bob().state);
    }
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    // Every accepted copy plus one notice per even message, none from the bad write.
    assert_eq!(inbox.len(), MESSAGES + MESSAGES / 2);
}

async fn a_last_decision_stores_its_notice_and_removes_the_message(database: TestDatabase) {
    let store = store_with_users(&database).await;
    store.accept(&message("Q5")).await.unwrap();
    let blob = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap()[0]
        .blob
        .clone();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(3));
    let notice = notice_to("N5", "alice@example.org");
    store.finish_queued("Q5", Some(&notice)).await.unwrap();
    // Both queued copies released, the mailbox copy kept; the notice delivered.
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(1));
    assert!(store.queued_messages().await.unwrap().is_empty());
    assert!(
        store
            .queue_entries()
            .await
            .unwrap()
            .iter()
            .all(|entry| entry.queue_id != "Q5")
    );
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2);
    // A retried last decision (its first commit's answer lost) changes nothing more.
    store.finish_queued("Q5", Some(&notice)).await.unwrap();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(1));
    assert_eq!(
        store
            .folder_messages("alice@example.org", "INBOX")
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Alice writes to her own mailbox and to Bob's with NOTIFY=SUCCESS: both copies go
/// into mailboxes at once, and the debt of a success notice is part of the same
/// commit, so a restart before the notice is stored finds it still owed.
async fn a_local_copy_owes_its_success_notice_until_the_queue_stores_it(database: TestDatabase) {
    let store = store_with_users(&database).await;
    store.add_user("bob@example.org", "pw").await.unwrap();
    let success = Some(Notify::On {
        success: true,
        failure: true,
        delay: false,
    });
    let orcpt = Some(OriginalRecipient {
        address_type: "rfc822".to_owned(),
        address: "Bob@Example.Org".to_owned(),
    });
    let mut incoming = IncomingMessage::new(
        "Q6",
        "<alice@example.org>",
        ARRIVAL_MS,
        vec![
            RoutedRecipient::local("alice@example.org", "alice@example.org"),
            RoutedRecipient::Local {
                user: "bob@example.org".to_owned(),
                original: "Bob@Example.Org".to_owned(),
                notify: success,
                orcpt: orcpt.clone(),
            },
        ],
        b"Subject: hello\r\n\r\nbody\r\n".to_vec(),
    );
    incoming.envid = Some("env-6".to_owned());
    store.accept(&incoming).await.unwrap();
    let blob = store
        .folder_messages("bob@example.org", "INBOX")
        .await
        .unwrap()[0]
        .blob
        .clone();
    // Two mailbox copies, and the debt holds the body for the notice.
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(3));
    let restored = store.queued_messages().await.unwrap();
    assert_eq!(restored.len(), 1, "{restored:?}");
    let owed = &restored[0];
    assert_eq!(owed.queue_id, "Q6");
    assert_eq!(owed.reverse_path.as_deref(), Some("alice@example.org"));
    assert_eq!(owed.envid.as_deref(), Some("env-6"));
    assert_eq!(owed.recipients.len(), 1, "only the copy that asked");
    let bob = &owed.recipients[0];
    assert_eq!(bob.address, "bob@example.org");
    assert!(bob.success_owed);
    assert_eq!(bob.notify, success);
    assert_eq!(bob.original, orcpt);
    assert_eq!(bob.destination.path, DeliveryPath::Local);
    let RecipientState::Delivered { at, .. } = &bob.state else {
        panic!("delivered at acceptance: {:?}", bob.state);
    };
    assert_eq!(at.as_millis(), ARRIVAL_MS as u64);
    // What the queue reads back is what core's acceptance gave it.
    assert_eq!(
        sluice_core::node::queued_part(&incoming).as_ref(),
        Some(owed)
    );

    // `sluice queue list` shows the message while it owes; a message whose copies
    // all went into mailboxes owing nothing is not in the queue, only on record.
    let quiet = IncomingMessage::new(
        "Q7",
        "<alice@example.org>",
        ARRIVAL_MS,
        vec![RoutedRecipient::local("bob@example.org", "bob@example.org")],
        b"Subject: quiet\r\n\r\nbody\r\n".to_vec(),
    );
    store.accept(&quiet).await.unwrap();
    let listed: Vec<(String, String)> = store
        .queued_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.queue_id, entry.recipient))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("Q6".to_owned(), "alice@example.org".to_owned()),
            ("Q6".to_owned(), "bob@example.org".to_owned()),
        ]
    );
    let on_record = store.entries_of("Q7").await.unwrap();
    assert_eq!(on_record.len(), 1);
    assert_eq!(on_record[0].state, "delivered");
    assert_eq!(on_record[0].status.as_deref(), Some("2.0.0"));

    // The queue stores the notice and removes the record in one commit.
    let notice = notice_to("N6", "alice@example.org");
    store.finish_queued("Q6", Some(&notice)).await.unwrap();
    assert!(store.queued_messages().await.unwrap().is_empty());
    assert!(store.queued_entries().await.unwrap().is_empty());
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(2));
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2, "her copy and the notice");
}
