//! Model-based test of the SQL store: random sequences of mailbox operations go
//! to `sluice_core::mailbox::MailboxModel` and to the store; every outcome, every
//! observation (MODSEQs, tombstones and subscriptions included), every answer to
//! STATUS and CHANGEDSINCE, and the log of Junk events must be identical. Small
//! bounds on tombstones and subscriptions make sequences reach them. Some deliveries go through the real
//! accept path with real bodies (inline or file, by size and placement), which
//! must read back; a final garbage collection must remove exactly the bodies the
//! model no longer uses. SQLite always; PostgreSQL and MariaDB/MySQL when their
//! test URLs are set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, Placement, TestDatabase};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sluice_core::mailbox::{
    FlagMode, JunkEvent, MailboxError, MailboxLimits, MailboxModel, Operation, Outcome,
};
use sluice_net::store::{IncomingMessage, RoutedRecipient, Store, StoreError, StoreOptions};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

const USERS: [&str; 2] = ["u0@example.org", "u1@example.org"];
/// Includes a differently-cased spelling of a user and an unknown one.
const USER_NAMES: [&str; 4] = [
    "u0@example.org",
    "u1@example.org",
    "U0@EXAMPLE.org",
    "ghost@example.org",
];
/// Standard folders, INBOX in another case, new names, and invalid ones.
const FOLDERS: [&str; 11] = [
    "INBOX", "inbox", "Sent", "Trash", "Junk", "Archive", "Work", "work", "Lists", "bad*", "",
];
/// Envelope senders: `<>`'s empty one among them.
const SENDERS: [&str; 3] = ["", "bob@remote.test", "Carol@Remote.Test"];
/// Small enough that sequences reach them.
const LIMITS: MailboxLimits = MailboxLimits {
    tombstones_per_folder: 1,
    subscriptions_per_user: 4,
};
const FLAGS: [&str; 10] = [
    "\\Seen",
    "\\seen",
    "\\Deleted",
    "\\Deleted",
    "\\Flagged",
    "\\Answered",
    "\\Draft",
    "$Junk",
    "\\Recent",
    "two words",
];
const BLOBS: [(&str, u64); 3] = [
    (
        "1111111111111111111111111111111111111111111111111111111111111111",
        10,
    ),
    (
        "2222222222222222222222222222222222222222222222222222222222222222",
        2_000,
    ),
    (
        "3333333333333333333333333333333333333333333333333333333333333333",
        35_000,
    ),
];

/// Real bodies for accepted messages: under the default inline limit, and one
/// over it (a file even with the default options).
static BODIES: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(|| {
    [10_usize, 2_000, 35_000, 70_000]
        .iter()
        .enumerate()
        .map(|(n, size)| {
            let body: Vec<u8> = (0..*size)
                .map(|index| b"abcdefghij"[(index + n) % 10])
                .collect();
            (sha256_hex(&body), body)
        })
        .collect()
});

fn sha256_hex(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

/// One step: a mailbox operation, a message through `Store::accept` to one
/// local user, which the model sees as the `Deliver` it amounts to, or a read of
/// one folder's state and changes after a MODSEQ.
#[derive(Clone, Debug)]
enum Step {
    Mailbox(Operation),
    Accept {
        user: String,
        queue_id: String,
        body: usize,
        received_at_ms: i64,
        sender: usize,
    },
    Changes {
        user: String,
        folder: String,
        modseq: u64,
    },
}

impl Step {
    /// What the model applies for this step, if it changes anything.
    fn model_operation(&self) -> Option<Operation> {
        match self {
            Step::Mailbox(operation) => Some(operation.clone()),
            Step::Accept {
                user,
                queue_id,
                body,
                received_at_ms,
                sender,
            } => Some(Operation::Deliver {
                user: user.clone(),
                delivery_key: queue_id.clone(),
                blob: BODIES[*body].0.clone(),
                size: BODIES[*body].1.len() as u64,
                internal_date_ms: *received_at_ms,
                reverse_path: SENDERS[*sender].to_owned(),
            }),
            Step::Changes { .. } => None,
        }
    }
}

fn user() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0..2_usize).prop_map(|n| USER_NAMES[n].to_owned()),
        1 => (2..4_usize).prop_map(|n| USER_NAMES[n].to_owned()),
    ]
}

/// INBOX (where deliveries land) and Junk more often than the others, so that
/// sequences reach the tombstone bound and cross the Junk folder's boundary.
fn folder() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("INBOX".to_owned()),
        1 => Just("Junk".to_owned()),
        6 => (0..FOLDERS.len()).prop_map(|n| FOLDERS[n].to_owned()),
    ]
}

fn uids() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(1..10_u32, 0..5)
}

fn flags() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            12 => (0..8_usize).prop_map(|n| FLAGS[n].to_owned()),
            1 => (8..10_usize).prop_map(|n| FLAGS[n].to_owned()),
        ],
        0..3,
    )
}

fn operation() -> impl Strategy<Value = Operation> {
    let mode = prop_oneof![
        Just(FlagMode::Set),
        Just(FlagMode::Add),
        Just(FlagMode::Remove)
    ];
    prop_oneof![
        6 => (user(), 0..6_u32, 0..BLOBS.len(), 0..1_000_i64, 0..SENDERS.len()).prop_map(
            |(user, key, blob, date, sender)| Operation::Deliver {
                user,
                delivery_key: format!("d{key}"),
                blob: BLOBS[blob].0.to_owned(),
                size: BLOBS[blob].1,
                internal_date_ms: 1_700_000_000_000 + date,
                reverse_path: SENDERS[sender].to_owned(),
            }
        ),
        2 => (user(), folder(), flags(), 0..BLOBS.len(), 0..1_000_i64).prop_map(
            |(user, folder, flags, blob, date)| Operation::Append {
                user,
                folder,
                flags,
                internal_date_ms: 1_600_000_000_000 + date,
                blob: BLOBS[blob].0.to_owned(),
                size: BLOBS[blob].1,
            }
        ),
        4 => (user(), folder(), uids(), mode, flags(), proptest::option::of(0..12_u64)).prop_map(
            |(user, folder, uids, mode, flags, unchanged_since)| Operation::StoreFlags {
                user,
                folder,
                uids,
                mode,
                flags,
                unchanged_since,
            }
        ),
        3 => (user(), folder(), proptest::option::of(uids())).prop_map(|(user, folder, uids)| Operation::Expunge { user, folder, uids }),
        2 => (user(), folder(), folder(), uids(), 0..1_000_i64).prop_map(
            |(user, from, to, uids, at)| Operation::Copy {
                user,
                from,
                to,
                uids,
                at_ms: 1_800_000_000_000 + at,
            }
        ),
        2 => (user(), folder(), folder(), uids(), 0..1_000_i64).prop_map(
            |(user, from, to, uids, at)| Operation::Move {
                user,
                from,
                to,
                uids,
                at_ms: 1_800_000_000_000 + at,
            }
        ),
        1 => (user(), folder()).prop_map(|(user, name)| Operation::Subscribe { user, name }),
        1 => (user(), folder()).prop_map(|(user, name)| Operation::Unsubscribe { user, name }),
        2 => (user(), folder()).prop_map(|(user, name)| Operation::CreateFolder { user, name }),
        1 => (user(), folder()).prop_map(|(user, name)| Operation::DeleteFolder { user, name }),
        1 => (user(), folder(), folder())
            .prop_map(|(user, from, to)| Operation::RenameFolder { user, from, to }),
        1 => (user(), 1..5_u32).prop_map(|(user, base)| Operation::AddUser {
            user,
            uidvalidity_base: base * 100,
        }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => operation().prop_map(Step::Mailbox),
        2 => (user(), 0..6_u32, 0..BODIES.len(), 0..1_000_i64, 0..SENDERS.len()).prop_map(
            |(user, key, body, date, sender)| Step::Accept {
                user,
                // Shares the key space of `Deliver`: both are delivery keys.
                queue_id: format!("d{key}"),
                body,
                received_at_ms: 1_700_000_000_000 + date,
                sender,
            }
        ),
        2 => (user(), folder(), 0..14_u64).prop_map(|(user, folder, modseq)| Step::Changes {
            user,
            folder,
            modseq,
        }),
    ]
}

fn store_result<T>(result: Result<T, StoreError>) -> Result<T, MailboxError> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(StoreError::Mailbox(refusal)) => Err(refusal),
        Err(other) => panic!("storage failure: {other}"),
    }
}

/// Checks a read step: the store's STATUS and CHANGEDSINCE answers are the model's.
async fn check_reads(store: &Store, model: &MailboxModel, step: &Step) {
    let Step::Changes {
        user,
        folder,
        modseq,
    } = step
    else {
        return;
    };
    let expected = model.changes_since(user, folder, *modseq);
    let actual = store_result(store.changes_since(user, folder, *modseq).await);
    assert_eq!(actual, expected, "{step:?}");
    let expected = model.status(user, folder);
    let actual = store_result(store.folder_status(user, folder).await);
    assert_eq!(actual, expected, "status {step:?}");
    let expected = model.subscriptions(user);
    let actual = store_result(store.subscriptions(user).await);
    assert_eq!(actual, expected, "subscriptions {step:?}");
}

/// Runs one step on the store and checks it against the model's outcome.
async fn apply_step(store: &Store, step: &Step, expected: &Result<Outcome, MailboxError>) {
    let (user, queue_id, body, received_at_ms, sender) = match step {
        Step::Mailbox(operation) => {
            let actual = store_result(store.apply(operation).await);
            assert_eq!(&actual, expected, "{operation:?}");
            return;
        }
        Step::Accept {
            user,
            queue_id,
            body,
            received_at_ms,
            sender,
        } => (user, queue_id, body, received_at_ms, sender),
        Step::Changes { .. } => return,
    };
    let reverse_path = format!("<{}>", SENDERS[*sender]);
    let incoming = IncomingMessage::new(
        queue_id,
        &reverse_path,
        *received_at_ms,
        vec![RoutedRecipient::local(user, user)],
        BODIES[*body].1.clone(),
    );
    let actual = store.accept(&incoming).await;
    match (expected, &actual) {
        (Ok(_), Ok(())) => {}
        (
            Err(MailboxError::NoSuchUser(_)),
            Err(StoreError::Mailbox(MailboxError::NoSuchUser(_))),
        ) => {}
        _ => panic!("accept {step:?}: model {expected:?}, store {actual:?}"),
    }
}

/// Applies one sequence to a fresh store and a fresh model, comparing as it goes.
async fn run_sequence(database: &TestDatabase, steps: &[Step]) {
    let store = database
        .open_with(StoreOptions {
            mailbox_limits: LIMITS,
            ..database.placement.options()
        })
        .await;
    store.add_domain("example.org").await.unwrap();
    let mut model = MailboxModel::with_limits(LIMITS);
    // The Junk events the model reported, with their users' lookup keys.
    let mut junk: Vec<(String, JunkEvent)> = Vec::new();
    let setup: Vec<Operation> = USERS
        .iter()
        .enumerate()
        .map(|(n, user)| Operation::AddUser {
            user: (*user).to_owned(),
            uidvalidity_base: 1 + 1_000 * n as u32,
        })
        .collect();
    let steps: Vec<Step> = setup
        .into_iter()
        .map(Step::Mailbox)
        .chain(steps.iter().cloned())
        .collect();
    for (number, step) in steps.iter().enumerate() {
        let Some(operation) = step.model_operation() else {
            check_reads(&store, &model, step).await;
            continue;
        };
        let expected = model.apply(&operation);
        if let Ok(Outcome::Copied { junk: events, .. } | Outcome::Moved { junk: events, .. }) =
            &expected
        {
            let user = operation.user().to_ascii_lowercase();
            junk.extend(events.iter().map(|event| (user.clone(), event.clone())));
        }
        apply_step(&store, step, &expected).await;
        let observed = store.observe().await.unwrap();
        assert_eq!(observed, model.observe(), "step {number}: {step:?}");
    }
    let logged: Vec<(String, JunkEvent)> = store
        .junk_events(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|stored| (stored.user, stored.event))
        .collect();
    assert_eq!(logged, junk, "Junk events");
    // Read in two pages, then forgotten up to the end of the first.
    let first = store.junk_events(0, 2).await.unwrap();
    let after = first.last().map_or(0, |event| event.id);
    let rest = store.junk_events(after, 10_000).await.unwrap();
    assert_eq!(first.len() + rest.len(), junk.len());
    assert_eq!(
        store.forget_junk_events(after).await.unwrap(),
        first.len() as u64
    );
    assert_eq!(store.junk_events(0, 10_000).await.unwrap(), rest);
    check_refcounts(&store, &model, false).await;
    check_bodies(database, &store, &model, false).await;
    // Garbage collection removes exactly what the model no longer uses.
    store.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(store.observe().await.unwrap(), model.observe());
    check_refcounts(&store, &model, true).await;
    check_bodies(database, &store, &model, true).await;
}

/// How many messages use each blob, by the model.
fn uses(model: &MailboxModel) -> BTreeMap<String, i64> {
    let mut uses: BTreeMap<String, i64> = BTreeMap::new();
    for user in model.observe().users.values() {
        for folder in user.folders.values() {
            for message in &folder.messages {
                *uses.entry(message.blob.clone()).or_default() += 1;
            }
        }
    }
    uses
}

/// Every blob's reference count equals the number of messages that use it;
/// after garbage collection (`collected`) an unused blob has no row at all.
async fn check_refcounts(store: &Store, model: &MailboxModel, collected: bool) {
    let uses = uses(model);
    let names = BLOBS
        .iter()
        .map(|(blob, _)| (*blob).to_owned())
        .chain(BODIES.iter().map(|(blob, _)| blob.clone()));
    for blob in names {
        let expected = uses.get(&blob).copied();
        let actual = store.blob_refcount(&blob).await.unwrap();
        let actual = if collected {
            actual
        } else {
            actual.filter(|count| *count != 0)
        };
        assert_eq!(actual, expected, "refcount of {blob}");
    }
}

/// Every real body in use reads back, from the row or from its file as the
/// placement says; after garbage collection (`collected`) an unused one is gone
/// (before it, a refused accept may have left its file).
async fn check_bodies(
    database: &TestDatabase,
    store: &Store,
    model: &MailboxModel,
    collected: bool,
) {
    let uses = uses(model);
    let limit = database.placement.options().inline_body_limit;
    for (blob, body) in BODIES.iter() {
        let inline = limit > 0 && body.len() <= limit;
        if uses.contains_key(blob) {
            assert_eq!(&store.read_blob(blob).await.unwrap(), body, "body {blob}");
            assert_eq!(
                store.blob_is_inline(blob).await.unwrap(),
                Some(inline),
                "placement of {blob}"
            );
            assert_eq!(store.blob_path(blob).unwrap().is_file(), !inline);
        } else if collected {
            assert!(!store.blob_path(blob).unwrap().exists(), "file of {blob}");
            assert!(matches!(
                store.read_blob(blob).await,
                Err(StoreError::NotFound(_))
            ));
        }
    }
}

fn model_test(engine: Engine, placement: Placement, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Probe once: an engine without a configured server skips the whole test.
    if runtime.block_on(TestDatabase::create(engine)).is_none() {
        return;
    }
    // A failing sequence is saved in store_model.proptest-regressions next to this
    // file (proptest's default persistence, given the source file as `proptest!`
    // gives it) and replayed first on every later run, on every engine.
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    });
    let strategy = proptest::collection::vec(step(), 20..40);
    runner
        .run(&strategy, |steps| {
            runtime.block_on(async {
                let database = TestDatabase::create(engine)
                    .await
                    .unwrap()
                    .with_placement(placement);
                run_sequence(&database, &steps).await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn sqlite_store_matches_the_model() {
    model_test(Engine::Sqlite, Placement::Inline, 32);
}

#[test]
fn sqlite_store_matches_the_model_with_file_bodies() {
    model_test(Engine::Sqlite, Placement::File, 16);
}

#[test]
fn postgres_store_matches_the_model() {
    model_test(Engine::Postgres, Placement::Inline, 32);
}

#[test]
fn postgres_store_matches_the_model_with_file_bodies() {
    model_test(Engine::Postgres, Placement::File, 16);
}

#[test]
fn mysql_store_matches_the_model() {
    model_test(Engine::Mysql, Placement::Inline, 32);
}

#[test]
fn mysql_store_matches_the_model_with_file_bodies() {
    model_test(Engine::Mysql, Placement::File, 16);
}

/// A fixed sequence at the flag bound: the longest allowed flag column fits every
/// engine, and one flag more is refused identically.
fn flag_bound_test(engine: Engine) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(database) = TestDatabase::create(engine).await else {
            return;
        };
        let keywords = |prefix: char, count: usize| -> Vec<String> {
            (0..count)
                .map(|n| format!("{prefix}{n:02}{}", "k".repeat(61)))
                .collect()
        };
        let store_flags = |mode, flags| Operation::StoreFlags {
            user: USERS[0].to_owned(),
            folder: "INBOX".to_owned(),
            uids: vec![1],
            mode,
            flags,
            unchanged_since: None,
        };
        let append = |flags| Operation::Append {
            user: USERS[0].to_owned(),
            folder: "Drafts".to_owned(),
            flags,
            internal_date_ms: 2,
            blob: BLOBS[1].0.to_owned(),
            size: BLOBS[1].1,
        };
        let operations: Vec<Step> = [
            Operation::Deliver {
                user: USERS[0].to_owned(),
                delivery_key: "d".to_owned(),
                blob: BLOBS[0].0.to_owned(),
                size: BLOBS[0].1,
                internal_date_ms: 1,
                reverse_path: "bob@remote.test".to_owned(),
            },
            append(keywords('c', 24)),
            append(keywords('d', 25)),
            store_flags(FlagMode::Set, keywords('a', 24)),
            store_flags(FlagMode::Add, keywords('b', 1)),
            store_flags(FlagMode::Remove, keywords('a', 1)),
            store_flags(FlagMode::Add, keywords('b', 1)),
        ]
        .into_iter()
        .map(Step::Mailbox)
        .collect();
        run_sequence(&database, &operations).await;
    });
}

#[test]
fn sqlite_flag_bound() {
    flag_bound_test(Engine::Sqlite);
}

#[test]
fn postgres_flag_bound() {
    flag_bound_test(Engine::Postgres);
}

#[test]
fn mysql_flag_bound() {
    flag_bound_test(Engine::Mysql);
}

/// A fixed sequence past the tombstone bound: expunges one at a time and two at
/// once (two tombstones of one MODSEQ, of which the bound keeps one), then what
/// a client far behind and one just behind are told.
fn tombstone_bound_test(engine: Engine) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(database) = TestDatabase::create(engine).await else {
            return;
        };
        let user = USERS[0].to_owned();
        let delete = |uids: Vec<u32>| {
            [
                Operation::StoreFlags {
                    user: user.clone(),
                    folder: "INBOX".to_owned(),
                    uids,
                    mode: FlagMode::Add,
                    flags: vec!["\\Deleted".to_owned()],
                    unchanged_since: None,
                },
                Operation::Expunge {
                    user: user.clone(),
                    folder: "INBOX".to_owned(),
                    uids: None,
                },
            ]
        };
        let mut steps: Vec<Step> = (0..5)
            .map(|n| {
                Step::Mailbox(Operation::Deliver {
                    user: user.clone(),
                    delivery_key: format!("d{n}"),
                    blob: BLOBS[0].0.to_owned(),
                    size: BLOBS[0].1,
                    internal_date_ms: 1,
                    reverse_path: String::new(),
                })
            })
            .collect();
        for uids in [vec![1], vec![2], vec![3, 4]] {
            steps.extend(delete(uids).into_iter().map(Step::Mailbox));
        }
        for modseq in [0, 7, 9, 10, 11] {
            steps.push(Step::Changes {
                user: user.clone(),
                folder: "INBOX".to_owned(),
                modseq,
            });
        }
        run_sequence(&database, &steps).await;
    });
}

#[test]
fn sqlite_tombstone_bound() {
    tombstone_bound_test(Engine::Sqlite);
}

#[test]
fn postgres_tombstone_bound() {
    tombstone_bound_test(Engine::Postgres);
}

#[test]
fn mysql_tombstone_bound() {
    tombstone_bound_test(Engine::Mysql);
}
