//! The store test suite: the same tests on SQLite always, and on PostgreSQL and
//! MariaDB/MySQL when `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` are set;
//! tests about bodies once with bodies inline in the database and once as files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Placement, TestDatabase};
use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use sluice_core::mailbox::{MailboxError, Outcome, return_path_field};
use sluice_net::store::{Append, Garbage, GarbageReport, QueuedCopy};
use sluice_net::store::{IncomingMessage, RoutedRecipient, Store, StoreError, StoreOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const HOUR: Duration = Duration::from_secs(3600);

per_engine!(
    open_and_migrate_twice,
    domains_crud_and_errors,
    users_crud_and_errors,
    aliases_and_groups,
    catch_all,
    verify_credentials,
    query_answers,
    failed_blob_write_leaves_no_records,
    an_inline_body_needs_no_blob_folder,
    placement_follows_the_inline_limit,
    a_body_keeps_its_placement_when_the_limit_changes,
    garbage_collection_removes_only_old_crash_leftovers,
    an_orphan_file_used_again_after_the_scan_survives,
    delivery_records_are_pruned_after_their_retention,
);

per_engine_and_placement!(
    accept_local_and_external,
    one_body_for_a_hundred_recipients,
    accept_twice_stores_nothing_new,
    unknown_local_user_fails_whole_message,
    concurrent_accepts_get_distinct_uids,
    concurrent_accepts_from_two_stores,
    removing_a_user_releases_its_blob_references,
    a_bad_message_does_not_fail_its_neighbours,
    garbage_collection_removes_unreferenced_bodies,
    garbage_collection_keeps_bodies_in_use,
    a_body_referenced_again_after_the_scan_survives,
    garbage_collection_races_accepts_safely,
    append_stores_its_body_and_answers_appenduid,
);

fn local(user: &str) -> RoutedRecipient {
    RoutedRecipient::local(user, user)
}

fn external(address: &str) -> RoutedRecipient {
    RoutedRecipient::Queued(QueuedCopy::to_mx(address, address))
}

fn message(queue_id: &str, recipients: Vec<RoutedRecipient>, body: &str) -> IncomingMessage {
    IncomingMessage::new(
        queue_id,
        "<sender@remote.test>",
        1_764_400_000_000,
        recipients,
        body.as_bytes().to_vec(),
    )
}

/// Blob files one stored body leaves in the test's placement.
fn files_per_body(database: &TestDatabase) -> usize {
    match database.placement {
        Placement::Inline => 0,
        Placement::File => 1,
    }
}

/// Every file under the blob folder.
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
    let inline = database.placement == Placement::Inline;
    assert_eq!(
        store.blob_is_inline(&inbox[0].blob).await.unwrap(),
        Some(inline)
    );
    assert_eq!(store.blob_path(&inbox[0].blob).unwrap().is_file(), !inline);
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
    assert_eq!(files.len(), files_per_body(&database), "{files:?}");
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
    assert_eq!(blob_files(&database).len(), files_per_body(&database));
    assert_eq!(
        store.read_blob(&inbox[0].blob).await.unwrap(),
        incoming.data
    );
}

async fn failed_blob_write_leaves_no_records(database: TestDatabase) {
    let database = database.with_placement(Placement::File);
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

/// A small body goes to the database only: a broken blob folder does not stop it.
async fn an_inline_body_needs_no_blob_folder(database: TestDatabase) {
    let database = database.with_placement(Placement::Inline);
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    std::fs::remove_dir_all(database.blob_dir()).unwrap();
    std::fs::write(database.blob_dir(), b"not a folder").unwrap();
    let incoming = message("Q3i", vec![local("alice@example.org")], "small\r\n");
    store.accept(&incoming).await.unwrap();
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(
        store.read_blob(&inbox[0].blob).await.unwrap(),
        incoming.data
    );
}

/// Bodies up to the limit are inline, one octet more is a file; both read back.
async fn placement_follows_the_inline_limit(database: TestDatabase) {
    let store = database
        .open_with(StoreOptions {
            inline_body_limit: 100,
            ..StoreOptions::default()
        })
        .await;
    store.add_domain("example.org").await.unwrap();
    store.add_user("alice@example.org", "pw").await.unwrap();
    let at_limit = "a".repeat(98) + "\r\n";
    let over_limit = "b".repeat(99) + "\r\n";
    for (queue_id, body) in [("L1", &at_limit), ("L2", &over_limit)] {
        store
            .accept(&message(queue_id, vec![local("alice@example.org")], body))
            .await
            .unwrap();
    }
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2);
    assert_eq!(
        store.blob_is_inline(&inbox[0].blob).await.unwrap(),
        Some(true)
    );
    assert!(!store.blob_path(&inbox[0].blob).unwrap().exists());
    assert_eq!(
        store.blob_is_inline(&inbox[1].blob).await.unwrap(),
        Some(false)
    );
    assert!(store.blob_path(&inbox[1].blob).unwrap().is_file());
    assert_eq!(
        store.read_blob(&inbox[0].blob).await.unwrap(),
        at_limit.as_bytes()
    );
    assert_eq!(
        store.read_blob(&inbox[1].blob).await.unwrap(),
        over_limit.as_bytes()
    );
    let too_large = StoreOptions {
        inline_body_limit: sluice_net::store::MAX_INLINE_BODY_LIMIT + 1,
        ..StoreOptions::default()
    };
    assert!(matches!(
        Store::open_with(&database.url, &database.blob_dir(), too_large).await,
        Err(StoreError::Invalid { .. })
    ));
}

/// The same body accepted under a different limit (a changed configuration)
/// shares one row and reads back whichever way it was stored first.
async fn a_body_keeps_its_placement_when_the_limit_changes(database: TestDatabase) {
    let file_store = database.open_with(Placement::File.options()).await;
    file_store.add_domain("example.org").await.unwrap();
    file_store
        .add_user("alice@example.org", "pw")
        .await
        .unwrap();
    let body = "changed limits\r\n";
    file_store
        .accept(&message("P1", vec![local("alice@example.org")], body))
        .await
        .unwrap();
    let inline_store = database.open_with(Placement::Inline.options()).await;
    inline_store
        .accept(&message("P2", vec![local("alice@example.org")], body))
        .await
        .unwrap();
    let inbox = inline_store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[0].blob, inbox[1].blob);
    let blob = &inbox[0].blob;
    assert_eq!(inline_store.blob_refcount(blob).await.unwrap(), Some(2));
    // The later inline accept stored the body in the row as well: it no longer
    // depends on the file.
    assert_eq!(inline_store.blob_is_inline(blob).await.unwrap(), Some(true));
    std::fs::remove_file(inline_store.blob_path(blob).unwrap()).unwrap();
    assert_eq!(file_store.read_blob(blob).await.unwrap(), body.as_bytes());
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
    assert!(
        matches!(
            result,
            Err(StoreError::Mailbox(MailboxError::NoSuchUser(ref user))) if user == "ghost@example.org"
        ),
        "{result:?}"
    );
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
        // Batched or not, each copy took the next MODSEQ, in UID order.
        assert_eq!(inbox.highestmodseq, 21);
        let modseqs: Vec<u64> = inbox
            .messages
            .iter()
            .map(|message| message.modseq)
            .collect();
        assert_eq!(modseqs, (2..=21).collect::<Vec<u64>>());
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
            assert!(
                matches!(
                    result,
                    Err(StoreError::Mailbox(MailboxError::NoSuchUser(_)))
                ),
                "{result:?}"
            );
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

/// Sets a file's modification time `age` into the past.
fn age_file(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// Writes a file into the blob folder as a crash would leave it: `name` under its
/// shard folders, `age` old.
fn leave_file(
    database: &TestDatabase,
    shard_of: &str,
    name: &str,
    body: &[u8],
    age: Duration,
) -> PathBuf {
    let folder = database
        .blob_dir()
        .join(&shard_of[0..2])
        .join(&shard_of[2..4]);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, body).unwrap();
    age_file(&path, age);
    path
}

fn sha256_hex(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

/// Rows at zero go with their bodies, whatever their age; rows in use stay.
async fn garbage_collection_removes_unreferenced_bodies(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    store.add_user("bob@example.org", "pw").await.unwrap();
    let released = message(
        "G1",
        vec![local("alice@example.org"), local("bob@example.org")],
        "released soon\r\n",
    );
    store.accept(&released).await.unwrap();
    store
        .accept(&message(
            "G2",
            vec![external("x@remote.test")],
            "pending\r\n",
        ))
        .await
        .unwrap();
    let blob = sha256_hex(&released.data);
    store.remove_user("alice@example.org").await.unwrap();
    assert_eq!(
        store.collect_garbage(HOUR).await.unwrap(),
        GarbageReport::default()
    );
    store.remove_user("bob@example.org").await.unwrap();
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(0));
    let report = store.collect_garbage(HOUR).await.unwrap();
    let size = released.data.len() as u64;
    assert_eq!(
        report,
        GarbageReport {
            rows: 1,
            files: files_per_body(&database) as u64,
            bytes: size,
        }
    );
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), None);
    assert!(!store.blob_path(&blob).unwrap().exists());
    assert!(matches!(
        store.read_blob(&blob).await,
        Err(StoreError::NotFound(_))
    ));
    // The pending body is untouched and a second run finds nothing.
    let pending = sha256_hex(b"pending\r\n");
    assert_eq!(store.blob_refcount(&pending).await.unwrap(), Some(1));
    assert_eq!(store.read_blob(&pending).await.unwrap(), b"pending\r\n");
    assert_eq!(blob_files(&database).len(), files_per_body(&database));
    assert_eq!(
        store.collect_garbage(Duration::ZERO).await.unwrap(),
        GarbageReport::default()
    );
}

/// Files of bodies in use are kept however old they are.
async fn garbage_collection_keeps_bodies_in_use(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let incoming = message("K1", vec![local("alice@example.org")], "kept\r\n");
    store.accept(&incoming).await.unwrap();
    for path in blob_files(&database) {
        age_file(&path, 24 * HOUR);
    }
    assert_eq!(
        store.collect_garbage(Duration::ZERO).await.unwrap(),
        GarbageReport::default()
    );
    assert_eq!(blob_files(&database).len(), files_per_body(&database));
    let blob = sha256_hex(&incoming.data);
    assert_eq!(store.read_blob(&blob).await.unwrap(), incoming.data);
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(1));
}

/// Crash leftovers (a body file without a row, a temp file) go once older than
/// the grace period; young ones, and files that are not the store's, stay.
async fn garbage_collection_removes_only_old_crash_leftovers(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    let old_body = b"left by a crash\r\n";
    let old_blob = sha256_hex(old_body);
    let young_body = b"being accepted right now\r\n";
    let young_blob = sha256_hex(young_body);
    let old_file = leave_file(&database, &old_blob, &old_blob, old_body, 2 * HOUR);
    let temp_name = format!(".tmp-{}-1-1", &old_blob[..16]);
    let temp_file = leave_file(&database, &old_blob, &temp_name, b"half", 2 * HOUR);
    let young_file = leave_file(
        &database,
        &young_blob,
        &young_blob,
        young_body,
        Duration::ZERO,
    );
    let foreign = leave_file(&database, &old_blob, "README", b"not ours", 2 * HOUR);
    let found = store.find_garbage(HOUR, 100).await.unwrap();
    assert_eq!(
        found,
        vec![
            Garbage::OrphanFile {
                blob: old_blob.clone(),
                bytes: old_body.len() as u64
            },
            Garbage::TempFile {
                path: temp_file.clone(),
                bytes: 4
            },
        ]
    );
    let report = store.collect_garbage(HOUR).await.unwrap();
    assert_eq!(
        report,
        GarbageReport {
            rows: 0,
            files: 2,
            bytes: old_body.len() as u64 + 4,
        }
    );
    assert!(!old_file.exists());
    assert!(!temp_file.exists());
    assert!(young_file.exists());
    assert!(foreign.exists());
    // Claiming the name left no row behind.
    assert_eq!(store.blob_refcount(&old_blob).await.unwrap(), None);
    // Once old enough, the other leftover goes too.
    let report = store.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.files, 1);
    assert!(!young_file.exists());
    assert!(foreign.exists());
}

/// A body whose row is at zero when the collector scans, and that a new message
/// uses before the collector removes it, survives with its file.
async fn a_body_referenced_again_after_the_scan_survives(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    store.add_user("bob@example.org", "pw").await.unwrap();
    let first = message("R1", vec![local("alice@example.org")], "again\r\n");
    store.accept(&first).await.unwrap();
    store.remove_user("alice@example.org").await.unwrap();
    let blob = sha256_hex(&first.data);
    let found = store.find_garbage(HOUR, 100).await.unwrap();
    assert!(
        found
            .iter()
            .any(|garbage| matches!(garbage, Garbage::UnreferencedRow { blob: name, .. } if *name == blob)),
        "{found:?}"
    );
    store
        .accept(&message("R2", vec![local("bob@example.org")], "again\r\n"))
        .await
        .unwrap();
    assert_eq!(
        store.remove_garbage(&found).await.unwrap(),
        GarbageReport::default()
    );
    assert_eq!(store.blob_refcount(&blob).await.unwrap(), Some(1));
    assert_eq!(store.read_blob(&blob).await.unwrap(), first.data);
    assert_eq!(blob_files(&database).len(), files_per_body(&database));
}

/// An old orphan file that an accept adopts between the scan and the removal
/// (the accept finds the file in place and does not rewrite it) is kept.
async fn an_orphan_file_used_again_after_the_scan_survives(database: TestDatabase) {
    let database = database.with_placement(Placement::File);
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let body = b"orphan adopted\r\n";
    let blob = sha256_hex(body);
    let file = leave_file(&database, &blob, &blob, body, 2 * HOUR);
    let found = store.find_garbage(HOUR, 100).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    store
        .accept(&message(
            "O1",
            vec![local("alice@example.org")],
            std::str::from_utf8(body).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(
        store.remove_garbage(&found).await.unwrap(),
        GarbageReport::default()
    );
    assert!(file.is_file());
    assert_eq!(store.read_blob(&blob).await.unwrap(), body);
}

/// Accepts of a few shared bodies race a collector that runs back to back with no
/// grace period while users keep dropping their references: every accepted body
/// reads back while referenced, and at the end everything unreferenced is gone.
async fn garbage_collection_races_accepts_safely(database: TestDatabase) {
    let store = store_with_domain(&database).await;
    let hash = Store::hash_password("pw").await.unwrap();
    let users: Vec<String> = (0..4).map(|n| format!("racer{n}@example.org")).collect();
    for user in &users {
        store.add_user_with_hash(user, &hash).await.unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let store = store.clone();
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut removed = GarbageReport::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                removed += store.collect_garbage(Duration::ZERO).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            removed
        })
    };
    let mut racers = Vec::new();
    for (n, user) in users.iter().enumerate() {
        let store = store.clone();
        let user = user.clone();
        racers.push(tokio::spawn(async move {
            for round in 0..15 {
                let body = format!("shared body {}\r\n", round % 2);
                let incoming = message(&format!("Z{n}-{round}"), vec![local(&user)], &body);
                store.accept(&incoming).await.unwrap();
                let inbox = store.folder_messages(&user, "INBOX").await.unwrap();
                let stored = inbox.last().unwrap();
                assert_eq!(store.read_blob(&stored.blob).await.unwrap(), incoming.data);
                let uids: Vec<u32> = inbox.iter().map(|stored| stored.uid).collect();
                for operation in [
                    sluice_core::mailbox::Operation::StoreFlags {
                        user: user.clone(),
                        folder: "INBOX".to_owned(),
                        uids,
                        mode: sluice_core::mailbox::FlagMode::Add,
                        flags: vec!["\\Deleted".to_owned()],
                        unchanged_since: None,
                    },
                    sluice_core::mailbox::Operation::Expunge {
                        user: user.clone(),
                        folder: "INBOX".to_owned(),
                        uids: None,
                    },
                ] {
                    store.apply(&operation).await.unwrap();
                }
            }
        }));
    }
    for racer in racers {
        racer.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.await.unwrap();
    store.collect_garbage(Duration::ZERO).await.unwrap();
    for body in ["shared body 0\r\n", "shared body 1\r\n"] {
        assert_eq!(
            store
                .blob_refcount(&sha256_hex(body.as_bytes()))
                .await
                .unwrap(),
            None
        );
    }
    assert!(
        blob_files(&database).is_empty(),
        "{:?}",
        blob_files(&database)
    );
}

/// The records of local copies go once older than the retention, in any number of
/// batches; the queue's own records, newer ones and the mailbox copies stay.
async fn delivery_records_are_pruned_after_their_retention(database: TestDatabase) {
    const DAY_MS: i64 = 86_400_000;
    let store = store_with_domain(&database).await;
    store.add_user("alice@example.org", "pw").await.unwrap();
    let arrived = |queue_id: &str, recipients, at_ms| {
        let mut incoming = message(queue_id, recipients, "kept\r\n");
        incoming.received_at_ms = at_ms;
        incoming
    };
    let old_ms = 1_764_400_000_000;
    // More old local-only messages than one batch deletes.
    let old_count = 600;
    for index in 0..old_count {
        let queue_id = format!("OLD{index}");
        let incoming = arrived(&queue_id, vec![local("alice@example.org")], old_ms);
        store.accept(&incoming).await.unwrap();
    }
    let mixed = arrived(
        "MIXED",
        vec![local("alice@example.org"), external("bob@remote.test")],
        old_ms,
    );
    store.accept(&mixed).await.unwrap();
    let recent = arrived(
        "NEW",
        vec![local("alice@example.org")],
        old_ms + 10 * DAY_MS,
    );
    store.accept(&recent).await.unwrap();

    let report = store.prune_delivery_records(old_ms + DAY_MS).await.unwrap();
    assert_eq!(report.records, old_count + 1);
    assert_eq!(report.keys, old_count + 1);
    assert!(store.entries_of("OLD0").await.unwrap().is_empty());
    let mixed_left = store.entries_of("MIXED").await.unwrap();
    assert_eq!(mixed_left.len(), 1, "the queued copy stays: {mixed_left:?}");
    assert_eq!(mixed_left[0].state, "pending");
    assert_eq!(store.entries_of("NEW").await.unwrap().len(), 1);
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), old_count as usize + 2, "mailbox copies stay");
    // With their envelope sender, which the pruned queue records also held.
    assert!(
        inbox
            .iter()
            .all(|stored| stored.reverse_path == "sender@remote.test")
    );
    assert_eq!(
        return_path_field(&inbox[0].reverse_path),
        "Return-Path: <sender@remote.test>\r\n"
    );
    assert_eq!(
        store.prune_delivery_records(old_ms + DAY_MS).await.unwrap(),
        Default::default()
    );
    // The trade-off the retention documents: past it, the same message delivered
    // again is no longer recognised; within it, it is.
    store.accept(&recent).await.unwrap();
    store
        .accept(&arrived("OLD0", vec![local("alice@example.org")], old_ms))
        .await
        .unwrap();
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox.len(), old_count as usize + 3);
}

/// APPEND stores its body as an accepted message's (inline or file), answers
/// APPENDUID's values, keeps no envelope sender, and refuses a missing folder
/// (TRYCREATE) without a record; a delivered copy of the null reverse-path
/// keeps an empty one.
async fn append_stores_its_body_and_answers_appenduid(database: TestDatabase) {
    let store = database.open().await;
    store.add_domain("example.org").await.unwrap();
    store.add_user("alice@example.org", "pw").await.unwrap();
    let body = b"Subject: draft\r\n\r\nnot sent yet\r\n";
    let flags = vec!["\\seen".to_owned(), "$Draft".to_owned()];
    let append = |folder| Append {
        user: "Alice@example.org",
        folder,
        flags: &flags,
        internal_date_ms: 1_600_000_000_000,
        body,
    };
    let drafts = store
        .observe_user("alice@example.org")
        .await
        .unwrap()
        .folders["Drafts"]
        .clone();
    assert_eq!(
        store.append(&append("Drafts")).await.unwrap(),
        Outcome::Appended {
            uidvalidity: drafts.uidvalidity,
            uid: 1
        }
    );
    assert!(matches!(
        store.append(&append("Nope")).await,
        Err(StoreError::Mailbox(MailboxError::NoSuchFolder(_)))
    ));
    let stored = store
        .folder_messages("alice@example.org", "Drafts")
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].flags,
        vec!["$Draft".to_owned(), "\\Seen".to_owned()]
    );
    assert_eq!(stored[0].reverse_path, "");
    assert_eq!(stored[0].internal_date_ms, 1_600_000_000_000);
    assert_eq!(stored[0].modseq, drafts.highestmodseq + 1);
    assert_eq!(store.read_blob(&stored[0].blob).await.unwrap(), body);
    assert_eq!(store.blob_refcount(&stored[0].blob).await.unwrap(), Some(1));
    assert_eq!(
        store.blob_path(&stored[0].blob).unwrap().is_file(),
        files_per_body(&database) == 1
    );
    let mut bounced = message("N1", vec![local("alice@example.org")], "notice\r\n");
    bounced.reverse_path = "<>".to_owned();
    store.accept(&bounced).await.unwrap();
    let inbox = store
        .folder_messages("alice@example.org", "INBOX")
        .await
        .unwrap();
    assert_eq!(inbox[0].reverse_path, "");
}
