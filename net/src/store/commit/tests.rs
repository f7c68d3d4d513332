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

/// A database of its own on the server `variable` names (`SLUICE_TEST_MYSQL_URL`,
/// `SLUICE_TEST_POSTGRES_URL`), dropped with this; None (after saying so) when the
/// variable is not set. The batched statements run on these engines only.
struct ServerDatabase {
    fixture: Fixture,
    admin_url: String,
    name: String,
    postgres: bool,
}

static SERVER_DATABASES: AtomicU64 = AtomicU64::new(0);

async fn server_fixture(variable: &str) -> Option<ServerDatabase> {
    use sqlx::{Connection, Executor};
    let server = match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => {
            println!("skipped: {variable} not set");
            return None;
        }
    };
    sqlx::any::install_default_drivers();
    let postgres = server.starts_with("postgres");
    let admin_url = if postgres {
        format!("{server}/postgres")
    } else {
        server.clone()
    };
    let name = format!(
        "sluice_commit_{}_{}",
        std::process::id(),
        SERVER_DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let _ = admin.close().await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("{server}/{name}")).await.unwrap();
    migrate::run(&db).await.unwrap();
    let blobs = Arc::new(BlobStore::open(&dir.path().join("blobs")).unwrap());
    Some(ServerDatabase {
        fixture: Fixture {
            _dir: dir,
            db,
            blobs,
        },
        admin_url,
        name,
        postgres,
    })
}

impl Drop for ServerDatabase {
    fn drop(&mut self) {
        use sqlx::{Connection, Executor};
        let admin_url = self.admin_url.clone();
        let statement = if self.postgres {
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
        } else {
            format!("DROP DATABASE IF EXISTS {}", self.name)
        };
        // Drop runs inside the test's runtime: the cleanup gets a thread and a
        // small runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url).await {
                    let _ = admin.execute(statement.as_str()).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A message from `queue_id` into the INBOX of each of `users`, plus a queued copy.
fn to_users(queue_id: &str, users: &[&str]) -> IncomingMessage {
    let mut recipients: Vec<RoutedRecipient> = users
        .iter()
        .map(|user| RoutedRecipient::local(user, user))
        .collect();
    recipients.push(RoutedRecipient::Queued(QueuedCopy::to_mx(
        "bob@far.test",
        "bob@far.test",
    )));
    IncomingMessage::new(
        queue_id,
        "<alice@a.test>",
        1_764_400_000_000,
        recipients,
        format!("Subject: {queue_id}\r\n\r\nbody\r\n").into_bytes(),
    )
}

async fn add_users(fixture: &Fixture, users: &[&str]) {
    fixture.db.add_domain("here.test").await.unwrap();
    for user in users {
        fixture.db.add_user_with_hash(user, None, 1).await.unwrap();
    }
}

/// The INBOX of `user`: (UID, queue id), by UID.
async fn inbox(fixture: &Fixture, user: &str) -> Vec<(i64, String)> {
    use sqlx::Row;
    sqlx::query(&fixture.db.sql(
        "SELECT m.uid, m.queue_id FROM messages m JOIN folders f ON f.id = m.folder_id \
         WHERE f.user_key = ? AND f.name = 'INBOX' ORDER BY m.uid",
    ))
    .bind(user)
    .fetch_all(&fixture.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.try_get("uid").unwrap(),
            row.try_get("queue_id").unwrap(),
        )
    })
    .collect()
}

/// The references all blob rows hold.
async fn references(fixture: &Fixture) -> i64 {
    use sqlx::Row;
    // Summed here: the engines' SUM of a BIGINT is a decimal, which sqlx's Any
    // driver does not read.
    sqlx::query("SELECT refcount FROM blobs")
        .fetch_all(&fixture.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<i64, _>("refcount").unwrap())
        .sum()
}

/// What the batched statements alone make of `writes` (accepts only), rolled back
/// after: whether the batch stays on the common path.
async fn batched(fixture: &Fixture, writes: &[Write]) -> Batched {
    let items: Vec<Item<'_>> = writes
        .iter()
        .filter_map(|write| match write {
            Write::Accept(placed) => Some(placed.item()),
            Write::Queue(_) => None,
        })
        .collect();
    let mut tx = fixture.db.begin_write().await.unwrap();
    let answer = acceptance::stage_batch(&fixture.db, &fixture.blobs, &mut tx, &items)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    answer
}

/// Twenty messages, each to two users and one queued copy, in one transaction
/// through the batched statements: every UID taken once, in batch order, and
/// every copy holding its reference to its body.
async fn a_batch_takes_consecutive_uids_in_one_transaction(variable: &str) {
    let Some(server) = server_fixture(variable).await else {
        return;
    };
    let fixture = &server.fixture;
    add_users(fixture, &["ann@here.test", "ben@here.test"]).await;
    let writes = (0..20)
        .map(|n| {
            Write::Accept(placed(to_users(
                &format!("Q{n:02}"),
                &["ann@here.test", "ben@here.test"],
            )))
        })
        .collect::<Vec<Write>>();
    assert_eq!(batched(fixture, &writes).await, Batched::Staged);
    let (results, transactions) = commit_all(fixture, writes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(transactions, 1);
    let expected: Vec<(i64, String)> = (0..20).map(|n| (n + 1, format!("Q{n:02}"))).collect();
    assert_eq!(inbox(fixture, "ann@here.test").await, expected);
    assert_eq!(inbox(fixture, "ben@here.test").await, expected);
    assert_eq!(states(fixture).await.len(), 60);
    assert_eq!(references(fixture).await, 60);
}

/// A batch off the common path: an accept already committed, and two messages
/// with one delivery key (as LMTP keys them, by content) for the same user. The
/// batch falls back to one message at a time, in the same transaction's place:
/// nothing is stored twice and every caller hears `Ok`.
async fn a_batch_off_the_common_path_is_staged_one_by_one(variable: &str) {
    let Some(server) = server_fixture(variable).await else {
        return;
    };
    let fixture = &server.fixture;
    add_users(fixture, &["ann@here.test"]).await;
    let first = || Write::Accept(placed(to_users("Q1", &["ann@here.test"])));
    let (results, _) = commit_all(fixture, vec![first()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let same_key = |queue_id: &str| {
        let mut message = to_users(queue_id, &["ann@here.test"]);
        message.delivery_key = "same content".to_owned();
        Write::Accept(placed(message))
    };
    assert_eq!(batched(fixture, &[first()]).await, Batched::Conflict);
    assert_eq!(
        batched(fixture, &[same_key("Q2"), same_key("Q3")]).await,
        Batched::Conflict
    );
    let writes = vec![first(), same_key("Q2"), same_key("Q3")];
    let (results, transactions) = commit_all(fixture, writes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(transactions, 1);
    assert_eq!(
        inbox(fixture, "ann@here.test").await,
        [(1, "Q1".to_owned()), (2, "Q2".to_owned())]
    );
    // Q1's two records once; Q2's and Q3's each (Q3's copy was delivered before).
    assert_eq!(states(fixture).await.len(), 6);
    // Q1: INBOX + queued; Q2: INBOX + queued; Q3: queued only.
    assert_eq!(references(fixture).await, 5);
}

async fn on_a_server_one_bad_write_fails_alone(variable: &str) {
    let Some(server) = server_fixture(variable).await else {
        return;
    };
    let mut writes: Vec<Write> = (0..20).map(|n| accept(&format!("Q{n:03}"))).collect();
    writes.insert(7, bad_accept("BAD"));
    let (results, transactions) = commit_all(&server.fixture, writes).await;
    only_the_bad_write_failed(&server.fixture, &results, transactions).await;
}

const MYSQL: &str = "SLUICE_TEST_MYSQL_URL";
const POSTGRES: &str = "SLUICE_TEST_POSTGRES_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_a_batch_takes_consecutive_uids_in_one_transaction() {
    a_batch_takes_consecutive_uids_in_one_transaction(MYSQL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_batch_takes_consecutive_uids_in_one_transaction() {
    a_batch_takes_consecutive_uids_in_one_transaction(POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_a_batch_off_the_common_path_is_staged_one_by_one() {
    a_batch_off_the_common_path_is_staged_one_by_one(MYSQL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_batch_off_the_common_path_is_staged_one_by_one() {
    a_batch_off_the_common_path_is_staged_one_by_one(POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_one_bad_write_fails_alone() {
    on_a_server_one_bad_write_fails_alone(MYSQL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_one_bad_write_fails_alone() {
    on_a_server_one_bad_write_fails_alone(POSTGRES).await;
}

/// The committer keeps its connection between transactions; when the server has
/// closed it meanwhile (a restart, its idle timeout), the next write still
/// commits, on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_a_kept_connection_closed_by_the_server_is_replaced() {
    use sqlx::{Connection, Executor, Row};
    let Some(server) = server_fixture(MYSQL).await else {
        return;
    };
    let fixture = &server.fixture;
    let committer = Committer::spawn(fixture.db.clone(), Arc::clone(&fixture.blobs)).unwrap();
    committer.commit(accept("Q1")).await.unwrap();
    // Every connection to the test's database goes, the committer's among them.
    let mut admin = sqlx::AnyConnection::connect(&server.admin_url)
        .await
        .unwrap();
    let ids = sqlx::query("SELECT id FROM information_schema.processlist WHERE db = ?")
        .bind(&server.name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert!(!ids.is_empty());
    for row in ids {
        let id: i64 = row.try_get("id").unwrap();
        admin
            .execute(format!("KILL CONNECTION {id}").as_str())
            .await
            .unwrap();
    }
    let _ = admin.close().await;
    committer.commit(accept("Q2")).await.unwrap();
    assert_eq!(states(fixture).await.len(), 2);
}
