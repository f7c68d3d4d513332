//! Model-based test of the SQL store: random sequences of mailbox operations go
//! to `sluice_core::mailbox::MailboxModel` and to the store; every outcome and
//! every observation must be identical. SQLite always; PostgreSQL and
//! MariaDB/MySQL when their test URLs are set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, TestDatabase};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sluice_core::mailbox::{FlagMode, MailboxError, MailboxModel, Operation, Outcome};
use sluice_net::store::{Store, StoreError};
use std::collections::BTreeMap;

const USERS: [&str; 2] = ["u0@example.org", "u1@example.org"];
/// Includes a differently-cased spelling of a user and an unknown one.
const USER_NAMES: [&str; 4] = [
    "u0@example.org",
    "u1@example.org",
    "U0@EXAMPLE.org",
    "ghost@example.org",
];
/// Standard folders, INBOX in another case, new names, and invalid ones.
const FOLDERS: [&str; 10] = [
    "INBOX", "inbox", "Sent", "Trash", "Archive", "Work", "work", "Lists", "bad*", "",
];
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

fn user() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0..2_usize).prop_map(|n| USER_NAMES[n].to_owned()),
        1 => (2..4_usize).prop_map(|n| USER_NAMES[n].to_owned()),
    ]
}

fn folder() -> impl Strategy<Value = String> {
    (0..FOLDERS.len()).prop_map(|n| FOLDERS[n].to_owned())
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
        6 => (user(), 0..6_u32, 0..BLOBS.len(), 0..1_000_i64).prop_map(
            |(user, key, blob, date)| Operation::Deliver {
                user,
                delivery_key: format!("d{key}"),
                blob: BLOBS[blob].0.to_owned(),
                size: BLOBS[blob].1,
                internal_date_ms: 1_700_000_000_000 + date,
            }
        ),
        4 => (user(), folder(), uids(), mode, flags()).prop_map(
            |(user, folder, uids, mode, flags)| Operation::StoreFlags {
                user,
                folder,
                uids,
                mode,
                flags,
            }
        ),
        2 => (user(), folder()).prop_map(|(user, folder)| Operation::Expunge { user, folder }),
        2 => (user(), folder(), folder(), uids())
            .prop_map(|(user, from, to, uids)| Operation::Copy { user, from, to, uids }),
        2 => (user(), folder(), folder(), uids())
            .prop_map(|(user, from, to, uids)| Operation::Move { user, from, to, uids }),
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

fn store_result(result: Result<Outcome, StoreError>) -> Result<Outcome, MailboxError> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(StoreError::Mailbox(refusal)) => Err(refusal),
        Err(other) => panic!("storage failure: {other}"),
    }
}

/// Applies one sequence to a fresh store and a fresh model, comparing as it goes.
async fn run_sequence(database: &TestDatabase, operations: &[Operation]) {
    let store = database.open().await;
    store.add_domain("example.org").await.unwrap();
    let mut model = MailboxModel::new();
    let setup: Vec<Operation> = USERS
        .iter()
        .enumerate()
        .map(|(n, user)| Operation::AddUser {
            user: (*user).to_owned(),
            uidvalidity_base: 1 + 1_000 * n as u32,
        })
        .collect();
    for (step, operation) in setup.iter().chain(operations).enumerate() {
        let expected = model.apply(operation);
        let actual = store_result(store.apply(operation).await);
        assert_eq!(actual, expected, "step {step}: {operation:?}");
        let observed = store.observe().await.unwrap();
        assert_eq!(observed, model.observe(), "step {step}: {operation:?}");
    }
    check_refcounts(&store, &model).await;
}

/// Every blob's reference count equals the number of messages that use it.
async fn check_refcounts(store: &Store, model: &MailboxModel) {
    let mut uses: BTreeMap<String, i64> = BTreeMap::new();
    for user in model.observe().users.values() {
        for folder in user.folders.values() {
            for message in &folder.messages {
                *uses.entry(message.blob.clone()).or_default() += 1;
            }
        }
    }
    for (blob, _) in BLOBS {
        let expected = uses.get(blob).copied();
        let actual = store.blob_refcount(blob).await.unwrap();
        assert_eq!(
            actual.filter(|count| *count != 0),
            expected,
            "refcount of {blob}"
        );
    }
}

fn model_test(engine: Engine, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Probe once: an engine without a configured server skips the whole test.
    if runtime.block_on(TestDatabase::create(engine)).is_none() {
        return;
    }
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(operation(), 20..40);
    runner
        .run(&strategy, |operations| {
            runtime.block_on(async {
                let database = TestDatabase::create(engine).await.unwrap();
                run_sequence(&database, &operations).await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn sqlite_store_matches_the_model() {
    model_test(Engine::Sqlite, 32);
}

#[test]
fn postgres_store_matches_the_model() {
    model_test(Engine::Postgres, 32);
}

#[test]
fn mysql_store_matches_the_model() {
    model_test(Engine::Mysql, 32);
}

/// A fixed sequence at the flag bound: the longest allowed flag column fits every
/// backend, and one flag more is refused identically.
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
        };
        let operations = vec![
            Operation::Deliver {
                user: USERS[0].to_owned(),
                delivery_key: "d".to_owned(),
                blob: BLOBS[0].0.to_owned(),
                size: BLOBS[0].1,
                internal_date_ms: 1,
            },
            store_flags(FlagMode::Set, keywords('a', 24)),
            store_flags(FlagMode::Add, keywords('b', 1)),
            store_flags(FlagMode::Remove, keywords('a', 1)),
            store_flags(FlagMode::Add, keywords('b', 1)),
        ];
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
