//! The store test suite: the same tests on SQLite always, and on PostgreSQL and
//! MariaDB/MySQL when `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` are set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestDatabase;
use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use sluice_net::store::{IncomingMessage, RoutedRecipient, Store, StoreError};
use std::collections::BTreeSet;

per_backend!(
    open_and_migrate_twice,
    domains_crud_and_errors,
    users_crud_and_errors,
    aliases_and_groups,
    catch_all,
    verify_credentials,
    query_answers,
    accept_local_and_external,
    one_body_for_a_hundred_recipients,
    accept_twice_stores_nothing_new,
    failed_blob_write_leaves_no_records,
    unknown_local_user_fails_whole_message,
    concurrent_accepts_get_distinct_uids,
    concurrent_accepts_from_two_stores,
    removing_a_user_releases_its_blob_references,
    a_bad_message_does_not_fail_its_neighbours,
);

fn local(user: &str) -> RoutedRecipient {
    RoutedRecipient::Local {
        user: user.to_owned(),
        original: user.to_owned(),
    }
}

fn external(address: &str) -> RoutedRecipient {
    RoutedRecipient::External {
        address: address.to_owned(),
        original: address.to_owned(),
    }
}

fn message(queue_id: &str, recipients: Vec<RoutedRecipient>, body: &str) -> IncomingMessage {
    IncomingMessage {
        queue_id: queue_id.to_owned(),
        reverse_path: "<sender@remote.test>".to_owned(),
        received_at_ms: 1_764_400_000_000,
        recipients,
        data: body.as_bytes().to_vec(),
    }
}

/// Every file under the blob folder that is a finished blob (not a temp file).
fn blob_files(database: &TestDatabase) -> Vec<std::path::PathBuf> {
    fn walk(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&database.blob_dir(), &mut out);
    out
}

async fn store_with_domain(database: &TestDatabase) -> Store {
    let store = database.open().await;
    store.add_domain("example.org").await.unwrap();
    store
}

async fn open_and_migrate_twice(database: TestDatabase) {
    let store = database.open().await;
    store.add_domain("example.org").await.unwrap();
    drop(store);
    let again = database.open().await;
    assert_eq!(again.list_domains().await.unwrap(), vec!["example.org"]);
    let third = database.open().await;
    assert_eq!(third.list_domains().await.unwrap(), vec!["example.org"]);
}

async fn domains_crud_and_errors(database: TestDatabase) {
    let store = database.open().await;
    store.add_domain("Example.ORG").await.unwrap();
    store.add_domain("b.test").await.unwrap();
    assert_eq!(
        store.list_domains().await.unwrap(),
        vec!["b.test", "example.org"]
    );
    assert!(matches!(
        store.add_domain("example.org").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_domain("not a domain").await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store.remove_domain("nowhere.test").await,
        Err(StoreError::NotFound(_))
    ));
    store.add_user("u@b.test", "pw").await.unwrap();
    assert!(matches!(
        store.remove_domain("b.test").await,
        Err(StoreError::Invalid { .. })
    ));
    store.remove_user("u@b.test").await.unwrap();
    store.remove_domain("B.test").await.unwrap();
    assert_eq!(store.list_domains().await.unwrap(), vec!["example.org"]);
}

async fn users_crud_and_errors(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("Alice@Example.org", "secret").await.unwrap();
    assert_eq!(store.list_users().await.unwrap(), vec!["Alice@example.org"]);
    assert!(matches!(
        store.add_user("alice@EXAMPLE.org", "x").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_user("bob@elsewhere.test", "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.add_user("no at sign", "x").await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store.add_user("x@[127.0.0.1]", "x").await,
        Err(StoreError::Invalid { .. })
    ));
    let folders: BTreeSet<String> = store
        .observe_user("alice@example.org")
        .await
        .unwrap()
        .folders
        .into_keys()
        .collect();
    let expected: BTreeSet<String> = ["INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(folders, expected);
    assert!(matches!(
        store.set_password("nobody@example.org", "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_user("nobody@example.org").await,
        Err(StoreError::NotFound(_))
    ));
    store.remove_user("ALICE@example.org").await.unwrap();
    assert!(store.list_users().await.unwrap().is_empty());
}

async fn aliases_and_groups(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let targets = vec!["alice@example.org".to_owned(), "x@Remote.TEST".to_owned()];
    store
        .add_alias("Postmaster@example.org", &targets)
        .await
        .unwrap();
    assert_eq!(
        store.list_aliases().await.unwrap(),
        vec![(
            "Postmaster@example.org".to_owned(),
            vec!["alice@example.org".to_owned(), "x@remote.test".to_owned()]
        )]
    );
    assert!(matches!(
        store.add_alias("alice@example.org", &targets).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_alias("empty@example.org", &[]).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store
            .add_alias("bad@example.org", &["not an address".to_owned()])
            .await,
        Err(StoreError::Invalid { .. })
    ));
    store
        .add_group("team@example.org", &["alice@example.org".to_owned()])
        .await
        .unwrap();
    store
        .add_group_member("team@example.org", "bob@remote.test")
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_group_member("team@example.org", "BOB@remote.test")
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store
            .add_group_member("nogroup@example.org", "a@b.test")
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.list_groups().await.unwrap(),
        vec![(
            "team@example.org".to_owned(),
            vec!["alice@example.org".to_owned(), "bob@remote.test".to_owned()]
        )]
    );
    store
        .remove_group_member("team@example.org", "alice@example.org")
        .await
        .unwrap();
    assert!(matches!(
        store
            .remove_group_member("team@example.org", "alice@example.org")
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.remove_group("team@example.org").await.unwrap();
    assert!(matches!(
        store.remove_group("team@example.org").await,
        Err(StoreError::NotFound(_))
    ));
    // An alias is not a group: removing it as one is not found.
    assert!(matches!(
        store.remove_group("postmaster@example.org").await,
        Err(StoreError::NotFound(_))
    ));
    store.remove_alias("postmaster@example.org").await.unwrap();
    assert!(store.list_aliases().await.unwrap().is_empty());
    assert!(store.list_groups().await.unwrap().is_empty());
}

async fn catch_all(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store
        .set_catch_all("example.org", Some("Alice@Example.org"))
        .await
        .unwrap();
    let domain = |name: &str| DirectoryQuery::Domain {
        domain: name.to_owned(),
    };
    assert_eq!(
        store.query(&domain("EXAMPLE.org")).await.unwrap(),
        DirectoryAnswer::Domain(Some(DomainEntry {
            name: "example.org".to_owned(),
            catch_all: Some("Alice@example.org".to_owned()),
        }))
    );
    store.set_catch_all("example.org", None).await.unwrap();
    assert_eq!(
        store.query(&domain("example.org")).await.unwrap(),
        DirectoryAnswer::Domain(Some(DomainEntry {
            name: "example.org".to_owned(),
            catch_all: None,
        }))
    );
    assert!(matches!(
        store.set_catch_all("nowhere.test", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_catch_all("example.org", Some("junk")).await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn verify_credentials(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("Alice@example.org", "s3cret").await.unwrap();
    assert_eq!(
        store
            .verify_credentials("Alice@example.org", "s3cret")
            .await
            .unwrap(),
        Some("Alice@example.org".to_owned())
    );
    assert_eq!(
        store
            .verify_credentials("alice@EXAMPLE.ORG", "s3cret")
            .await
            .unwrap(),
        Some("Alice@example.org".to_owned())
    );
    assert_eq!(
        store
            .verify_credentials("alice@example.org", "wrong")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .verify_credentials("nobody@example.org", "s3cret")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.verify_credentials("", "").await.unwrap(), None);
    store
        .set_password("alice@example.org", "n3w")
        .await
        .unwrap();
    assert_eq!(
        store
            .verify_credentials("alice@example.org", "s3cret")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .verify_credentials("alice@example.org", "n3w")
            .await
            .unwrap()
            .is_some()
    );
}

async fn query_answers(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("Alice@example.org", "pw").await.unwrap();
    store
        .add_alias("info@example.org", &["alice@example.org".to_owned()])
        .await
        .unwrap();
    store
        .add_group(
            "all@example.org",
            &["alice@example.org".to_owned(), "x@remote.test".to_owned()],
        )
        .await
        .unwrap();
    let address = |text: &str| DirectoryQuery::Address {
        address: text.to_owned(),
    };
    assert_eq!(
        store.query(&address("ALICE@example.org")).await.unwrap(),
        DirectoryAnswer::Address(Some(AddressEntry::User {
            address: "Alice@example.org".to_owned()
        }))
    );
    assert_eq!(
        store.query(&address("Info@Example.org")).await.unwrap(),
        DirectoryAnswer::Address(Some(AddressEntry::Alias {
            targets: vec!["alice@example.org".to_owned()]
        }))
    );
    assert_eq!(
        store.query(&address("all@example.org")).await.unwrap(),
        DirectoryAnswer::Address(Some(AddressEntry::Group {
            members: vec!["alice@example.org".to_owned(), "x@remote.test".to_owned()]
        }))
    );
    assert_eq!(
        store.query(&address("nobody@example.org")).await.unwrap(),
        DirectoryAnswer::Address(None)
    );
    assert_eq!(
        store.query(&address("garbage")).await.unwrap(),
        DirectoryAnswer::Address(None)
    );
    assert_eq!(
        store
            .query(&DirectoryQuery::Domain {
                domain: "remote.test".to_owned()
            })
            .await
            .unwrap(),
        DirectoryAnswer::Domain(None)
    );
}

async fn accept_local_and_external(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let incoming = message(
        "Q1",
        vec![local("alice@example.org"), external("bob@remote.test")],
        "Subject: hi\r\n\r\nhello\r\n",
    );
    store.accept(&incoming).await.unwrap();
    let inbox = store
        .folder_messages("alice@example.org", "inbox")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].uid, 1);
    assert_eq!(inbox[0].queue_id, "Q1");
    assert_eq!(inbox[0].size, incoming.data.len() as u64);
    assert_eq!(inbox[0].internal_date_ms, incoming.received_at_ms);
    assert!(inbox[0].flags.is_empty());
    assert_eq!(
        store.read_blob(&inbox[0].blob).await.unwrap(),
        incoming.data
    );
    let queue = store.queue_entries().await.unwrap();
    let states: Vec<(&str, &str)> = queue
        .iter()
        .map(|entry| (entry.recipient.as_str(), entry.state.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("alice@example.org", "delivered"),
            ("bob@remote.test", "pending")
        ]
    );
    assert!(queue.iter().all(|entry| entry.queue_id == "Q1"
        && entry.reverse_path == "<sender@remote.test>"
        && entry.received_at_ms == incoming.received_at_ms));
    assert_eq!(store.blob_refcount(&inbox[0].blob).await.unwrap(), Some(2));
    assert!(store.blob_path(&inbox[0].blob).unwrap().is_file());
    assert!(matches!(
        store.read_blob("../../etc/passwd").await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn one_body_for_a_hundred_recipients(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    let hash = Store::hash_password("pw").await.unwrap();
    let mut recipients = Vec::new();
    for n in 0..100 {
        let user = format!("user{n}@example.org");
        store.add_user_with_hash(&user, &hash).await.unwrap();
        recipients.push(local(&user));
    }
    store
        .accept(&message("Q100", recipients, "one body for all\r\n"))
        .await
        .unwrap();
    let files = blob_files(&database);
    assert_eq!(files.len(), 1, "{files:?}");
    let first = store
        .folder_messages("user0@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(
        store.blob_refcount(&first[0].blob).await.unwrap(),
        Some(100)
    );
    for n in 0..100 {
        let inbox = store
            .folder_messages(&format!("user{n}@example.org"), "INBOX")
            .await
            .unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].blob, first[0].blob);
    }
    assert_eq!(store.queue_entries().await.unwrap().len(), 100);
}

async fn accept_twice_stores_nothing_new(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let incoming = message(
        "Q2",
        vec![
            local("alice@example.org"),
            local("ALICE@example.org"),
            external("bob@remote.test"),
        ],
        "twice\r\n",
    );
    store.accept(&incoming).await.unwrap();
    let observed = store.observe().await.unwrap();
    let queue = store.queue_entries().await.unwrap();
    store.accept(&incoming).await.unwrap();
    assert_eq!(store.observe().await.unwrap(), observed);
    assert_eq!(store.queue_entries().await.unwrap(), queue);
    assert_eq!(queue.len(), 2);
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(store.blob_refcount(&inbox[0].blob).await.unwrap(), Some(2));
    assert_eq!(blob_files(&database).len(), 1);
}

async fn failed_blob_write_leaves_no_records(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    // Tests run as root, where permissions stop nothing: make the blob folder a
    // plain file so that creating its sub-folders must fail.
    std::fs::remove_dir_all(database.blob_dir()).unwrap();
    std::fs::write(database.blob_dir(), b"not a folder").unwrap();
    let result = store
        .accept(&message(
            "Q3",
            vec![local("alice@example.org"), external("bob@remote.test")],
            "doomed\r\n",
        ))
        .await;
    assert!(matches!(result, Err(StoreError::Blob { .. })), "{result:?}");
    assert!(store.queue_entries().await.unwrap().is_empty());
    assert!(
        store
            .folder_messages("alice@example.org", "INBOX")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn unknown_local_user_fails_whole_message(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let result = store
        .accept(&message(
            "Q4",
            vec![local("alice@example.org"), local("ghost@example.org")],
            "half\r\n",
        ))
        .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    assert!(store.queue_entries().await.unwrap().is_empty());
    assert!(
        store
            .folder_messages("alice@example.org", "INBOX")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_accepts_get_distinct_uids(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    store.add_user("bob@example.org", "pw").await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let recipients = if n % 2 == 0 {
                vec![local("alice@example.org"), local("bob@example.org")]
            } else {
                vec![local("bob@example.org"), local("alice@example.org")]
            };
            store
                .accept(&message(
                    &format!("C{n}"),
                    recipients,
                    &format!("body {n}\r\n"),
                ))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for user in ["alice@example.org", "bob@example.org"] {
        let uids: Vec<u32> = store
            .folder_messages(user, "INBOX")
            .await
            .unwrap()
            .iter()
            .map(|stored| stored.uid)
            .collect();
        assert_eq!(uids, (1..=20).collect::<Vec<u32>>());
        let inbox = &store.observe_user(user).await.unwrap().folders["INBOX"];
        assert_eq!(inbox.uidnext, 21);
    }
    assert_eq!(store.queue_entries().await.unwrap().len(), 40);
}

/// Two stores on one database (two pools, two committers: as two processes would
/// be) racing into the same INBOXes: row locking, not the in-process batcher,
/// must keep UIDs distinct.
async fn concurrent_accepts_from_two_stores(database: TestDatabase) {
    let first = store_with_domain(&database).await;
    let second = database.open().await;
    first.add_user("alice@example.org", "pw").await.unwrap();
    first.add_user("bob@example.org", "pw").await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let incoming = message(
                &format!("T{n}"),
                vec![local("bob@example.org"), local("alice@example.org")],
                &format!("racing {n}\r\n"),
            );
            store.accept(&incoming).await?;
            // A retry through the other store must find everything in place.
            store.accept(&incoming).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for user in ["alice@example.org", "bob@example.org"] {
        let uids: Vec<u32> = second
            .folder_messages(user, "INBOX")
            .await
            .unwrap()
            .iter()
            .map(|stored| stored.uid)
            .collect();
        assert_eq!(uids, (1..=20).collect::<Vec<u32>>());
    }
    assert_eq!(first.queue_entries().await.unwrap().len(), 40);
}

async fn removing_a_user_releases_its_blob_references(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    store.add_user("bob@example.org", "pw").await.unwrap();
    store
        .accept(&message(
            "Q5",
            vec![local("alice@example.org"), local("bob@example.org")],
            "shared\r\n",
        ))
        .await
        .unwrap();
    let blob = store
        .folder_messages("bob@example.org", "INBOX")
        .await
        .unwrap()[0]
        .blob
        .clone();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(2));
    store.remove_user("alice@example.org").await.unwrap();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(1));
    assert!(matches!(
        store.folder_messages("alice@example.org", "INBOX").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Concurrent accepts share transactions; one message that cannot be stored must
/// fail alone, and every other caller still gets its own `Ok`.
async fn a_bad_message_does_not_fail_its_neighbours(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let recipient = if n == 7 {
                local("ghost@example.org")
            } else {
                local("alice@example.org")
            };
            let result = store
                .accept(&message(
                    &format!("B{n}"),
                    vec![recipient],
                    &format!("b{n}\r\n"),
                ))
                .await;
            (n, result)
        }));
    }
    for task in tasks {
        let (n, result) = task.await.unwrap();
        if n == 7 {
            assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
        } else {
            assert!(result.is_ok(), "message {n}: {result:?}");
        }
    }
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 15);
    assert_eq!(store.queue_entries().await.unwrap().len(), 15);
}

/// An in-memory SQLite (handy for tools and tests) keeps its one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite::memory:", &dir.path().join("blobs"))
        .await
        .unwrap();
    store.add_domain("example.org").await.unwrap();
    store.add_user("alice@example.org", "pw").await.unwrap();
    store
        .set_catch_all("example.org", Some("alice@example.org"))
        .await
        .unwrap();
    store
        .accept(&message("M1", vec![local("alice@example.org")], "mem\r\n"))
        .await
        .unwrap();
    assert_eq!(
        store
            .folder_messages("alice@example.org", "INBOX")
            .await
            .unwrap()
            .len(),
        1
    );
}
