//! The group commit with many writers: writes that wait while a transaction commits
//! share the next one, every caller gets its own answer, and one bad write fails
//! alone. The task is started only after the writes are queued, so how they batch
//! does not depend on timing.

use super::*;
use crate::store::blob::blob_name;
use crate::store::{QueuedCopy, RoutedRecipient, migrate};
use sluice_core::mailbox::MailboxError;
use sluice_core::queue::{RecipientChange, RecipientState};
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::time::Instant;

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    blobs: Arc<BlobStore>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("d.db").display());
    let db = Db::connect(&url).await.unwrap();
    migrate::run(&db).await.unwrap();
    let blobs = Arc::new(BlobStore::open(&dir.path().join("blobs")).unwrap());
    Fixture {
        _dir: dir,
        db,
        blobs,
    }
}

/// An accepted message with one queued copy, its body inline.
fn accept(queue_id: &str) -> Write {
    Write::Accept(accepted(queue_id))
}

fn accepted(queue_id: &str) -> Placed {
    let data = format!("Subject: {queue_id}\r\n\r\nbody\r\n").into_bytes();
    placed(IncomingMessage::new(
        queue_id,
        "<alice@a.test>",
        1_764_400_000_000,
        vec![RoutedRecipient::Queued(QueuedCopy::to_mx(
            "bob@far.test",
            "bob@far.test",
        ))],
        data,
    ))
}

/// A message for a local user who does not exist: its write fails.
fn bad_accept(queue_id: &str) -> Write {
    Write::Accept(bad_accepted(queue_id))
}

fn bad_accepted(queue_id: &str) -> Placed {
    let message = IncomingMessage::new(
        queue_id,
        "<alice@a.test>",
        1_764_400_000_000,
        vec![RoutedRecipient::local(
            "nobody@nowhere.test",
            "nobody@nowhere.test",
        )],
        b"Subject: bad\r\n\r\nbody\r\n".to_vec(),
    );
    placed(message)
}

fn placed(mut message: IncomingMessage) -> Placed {
    let data = std::mem::take(&mut message.data);
    Placed {
        message,
        size: i64::try_from(data.len()).unwrap(),
        blob: blob_name(&data),
        content: Some(data),
    }
}

/// Bob of `queue_id` delivered; with `remove`, the message's last write.
fn delivered(queue_id: &str, remove: bool) -> Write {
    Write::Queue(QueueWrite {
        queue_id: queue_id.to_owned(),
        changes: vec![RecipientChange {
            address: "bob@far.test".to_owned(),
            state: RecipientState::Delivered {
                at: Instant::from_millis(1_764_400_001_000),
                remote_mta: Some("mx.far.test".to_owned()),
                reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "ok"),
                notify_passed_on: false,
            },
            delay_notified: false,
            success_owed: false,
        }],
        notice: None,
        remove,
    })
}

/// Queues `writes` before the committer starts, then runs it until every answer is
/// in: the answers in order, and the transactions committed.
async fn commit_all(fixture: &Fixture, writes: Vec<Write>) -> (Vec<Result<(), StoreError>>, u64) {
    let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
    let mut answers = Vec::new();
    for write in writes {
        let (reply, answer) = oneshot::channel();
        sender.try_send(Request { write, reply }).unwrap();
        answers.push(answer);
    }
    drop(sender);
    let transactions = Arc::new(AtomicU64::new(0));
    run(
        fixture.db.clone(),
        Arc::clone(&fixture.blobs),
        receiver,
        Arc::clone(&transactions),
    )
    .await;
    let mut results = Vec::new();
    for answer in answers {
        results.push(answer.await.unwrap());
    }
    (results, transactions.load(Ordering::Relaxed))
}

async fn states(fixture: &Fixture) -> Vec<(String, String)> {
    fixture
        .db
        .queue_entries(crate::store::delivery_queue::QueueSelection::All)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.queue_id, entry.state))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_writes_share_one_transaction_up_to_the_batch_limit() {
    let fixture = fixture().await;
    let writes: Vec<Write> = (0..100).map(|n| accept(&format!("Q{n:03}"))).collect();
    let (results, transactions) = commit_all(&fixture, writes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(transactions, 2, "64, then the other 36");
    assert_eq!(states(&fixture).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_decisions_and_accepts_share_a_transaction() {
    let fixture = fixture().await;
    let (results, _) = commit_all(&fixture, vec![accept("Q1"), accept("Q2")]).await;
    assert!(results.iter().all(Result::is_ok));
    // Q1 delivered and removed in one write, Q2's state written, Q3 accepted: together.
    let writes = vec![delivered("Q1", true), delivered("Q2", false), accept("Q3")];
    let (results, transactions) = commit_all(&fixture, writes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(transactions, 1);
    assert_eq!(
        states(&fixture).await,
        [
            ("Q2".to_owned(), "delivered".to_owned()),
            ("Q3".to_owned(), "pending".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_write_fails_alone() {
    let fixture = fixture().await;
    let mut writes: Vec<Write> = (0..20).map(|n| accept(&format!("Q{n:03}"))).collect();
    writes.insert(7, bad_accept("BAD"));
    let (results, transactions) = commit_all(&fixture, writes).await;
    only_the_bad_write_failed(&fixture, &results, transactions).await;
}

/// Write 7 of 21 (named `BAD`, for a user that does not exist) failed with its own
/// error, and the other 20 are stored: the failed batch rolled back, then each
/// good write committed on its own.
async fn only_the_bad_write_failed(
    fixture: &Fixture,
    results: &[Result<(), StoreError>],
    transactions: u64,
) {
    for (index, result) in results.iter().enumerate() {
        if index == 7 {
            assert!(
                matches!(
                    result,
                    Err(StoreError::Mailbox(MailboxError::NoSuchUser(_)))
                ),
                "{result:?}"
            );
        } else {
            assert!(result.is_ok(), "write {index}: {result:?}");
        }
    }
    assert_eq!(transactions, 20);
    let stored = states(fixture).await;
    assert_eq!(stored.len(), 20);
    assert!(stored.iter().all(|(queue_id, _)| queue_id != "BAD"));
}

/// Queues `accepts` for the SQLite writer before it starts, then runs it on its own
/// thread until every answer is in: the answers in order, and the transactions.
async fn commit_on_sqlite_writer(
    fixture: &Fixture,
    accepts: Vec<Placed>,
) -> (Vec<Result<(), StoreError>>, u64) {
    let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
    let mut answers = Vec::new();
    for placed in accepts {
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(sqlite::AcceptRequest { placed, reply })
            .unwrap();
        answers.push(answer);
    }
    drop(sender);
    let connection = sqlite::open(fixture.db.sqlite_file().unwrap()).unwrap();
    let transactions = Arc::new(AtomicU64::new(0));
    let blobs = Arc::clone(&fixture.blobs);
    let slot = fixture.db.writer_slot();
    let counted = Arc::clone(&transactions);
    tokio::task::spawn_blocking(move || sqlite::run(connection, blobs, slot, receiver, counted))
        .await
        .unwrap();
    let mut results = Vec::new();
    for answer in answers {
        results.push(answer.await.unwrap());
    }
    (results, transactions.load(Ordering::Relaxed))
}

/// The 250 after DATA rests on this for the SQLite writer as for the pool: WAL
/// with synchronous = FULL (2), where each commit fsyncs the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_writer_commits_durably() {
    let fixture = fixture().await;
    let connection = sqlite::open(fixture.db.sqlite_file().unwrap()).unwrap();
    let synchronous: i64 = connection
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 2);
    let journal: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_writer_shares_transactions_up_to_the_batch_limit() {
    let fixture = fixture().await;
    let accepts = (0..100).map(|n| accepted(&format!("Q{n:03}"))).collect();
    let (results, transactions) = commit_on_sqlite_writer(&fixture, accepts).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(transactions, 2, "64, then the other 36");
    assert_eq!(states(&fixture).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_sqlite_writer_one_bad_write_fails_alone() {
    let fixture = fixture().await;
    let mut accepts: Vec<Placed> = (0..20).map(|n| accepted(&format!("Q{n:03}"))).collect();
    accepts.insert(7, bad_accepted("BAD"));
    let (results, transactions) = commit_on_sqlite_writer(&fixture, accepts).await;
    only_the_bad_write_failed(&fixture, &results, transactions).await;
}

/// A write through the SQLite writer is committed when its caller hears `Ok`:
/// another connection (the pool's) reads it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_sends_accepts_on_sqlite_to_its_writer() {
    let fixture = fixture().await;
    let committer = Committer::spawn(fixture.db.clone(), Arc::clone(&fixture.blobs)).unwrap();
    assert!(committer.accepts.is_some());
    committer.commit(accept("Q1")).await.unwrap();
    assert_eq!(
        states(&fixture).await,
        [("Q1".to_owned(), "pending".to_owned())]
    );
    committer.commit(delivered("Q1", false)).await.unwrap();
    assert_eq!(
        states(&fixture).await,
        [("Q1".to_owned(), "delivered".to_owned())]
    );
}
