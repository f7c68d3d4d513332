//! The store's group commit for mail: one task commits, in one transaction, every
//! write that arrived while the previous transaction was committing — accepted
//! messages and the delivery queue's decisions alike — and answers each caller
//! separately, only once its write is durable. One fsync serves many sessions and
//! deliveries; a failed batch is retried write by write, so that one bad write does
//! not fail its neighbours.
//!
//! On an SQLite file, accepted messages go to a writer thread of their own instead
//! (`sqlite`), with the same batching and answers: through sqlx each statement
//! would cost two thread wake-ups, more CPU than the acceptance itself.
//!
//! What a write stages is defined below this module, by `acceptance` (a message's
//! records) and `delivery_queue` (a queue decision); `accept` and `persist_queue`
//! place a body and hand the write to the committer, for the `Store` facade.

use super::acceptance::{self, Batched, Item, Placed, place_body};
use super::blob::BlobStore;
use super::delivery_queue::{self, QueueWrite};
use super::sql::{Db, SqlEngine, WriteTx, is_connection_failure, with_retries};
use super::{IncomingMessage, StoreError};
use sluice_core::queue::RecipientChange;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction: bounds the transaction's size and the
/// latency of the last caller in a batch.
const MAX_BATCH: usize = 64;
/// Waiting writes beyond which callers wait for room (back-pressure).
const QUEUE_DEPTH: usize = 1024;
/// Attempts to store a file body that garbage collection removed under us (it
/// can only do so while the body was unreferenced, so a second try succeeds
/// unless the collector runs back to back with a grace period of zero).
const BODY_ATTEMPTS: u32 = 4;

/// One write the committer makes durable.
#[derive(Debug)]
pub(super) enum Write {
    /// An accepted message: its records, mailbox copies and inline body.
    Accept(Placed),
    /// A delivery queue decision about one queued message.
    Queue(QueueWrite),
}

#[derive(Debug)]
struct Request {
    write: Write,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to the group commit: the sqlx task, and on an SQLite file the
/// writer thread that commits accepted messages (see `sqlite`).
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    sender: mpsc::Sender<Request>,
    accepts: Option<mpsc::Sender<sqlite::AcceptRequest>>,
}

impl Committer {
    /// Starts the task (and the SQLite writer); they end when the last handle is
    /// dropped.
    pub(crate) fn spawn(db: Db, blobs: Arc<BlobStore>) -> Result<Committer, StoreError> {
        let accepts = match db.sqlite_file() {
            Some(path) => {
                let connection = sqlite::open(path)?;
                let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
                let writer_blobs = Arc::clone(&blobs);
                let writer_slot = db.writer_slot();
                std::thread::Builder::new()
                    .name("sluice-sqlite-writer".to_owned())
                    .spawn(move || {
                        sqlite::run(
                            connection,
                            writer_blobs,
                            writer_slot,
                            receiver,
                            Arc::default(),
                        );
                    })
                    .map_err(|source| StoreError::Blob {
                        path: "(SQLite writer thread)".to_owned(),
                        source,
                    })?;
                Some(sender)
            }
            None => None,
        };
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(db, blobs, receiver, Arc::default()));
        Ok(Committer { sender, accepts })
    }

    /// Makes `write` durable, in a transaction shared with whatever else is
    /// waiting: `Ok` only once it is committed.
    pub(super) async fn commit(&self, write: Write) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        match (write, &self.accepts) {
            (Write::Accept(placed), Some(accepts)) => accepts
                .send(sqlite::AcceptRequest { placed, reply })
                .await
                .map_err(|_| StoreError::Closed)?,
            (write, _) => self
                .sender
                .send(Request { write, reply })
                .await
                .map_err(|_| StoreError::Closed)?,
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Makes a message durable; see [`super::Store::accept`]. Bodies of at most
/// `inline_body_limit` octets (when it is not 0) go into the blob row.
pub(crate) async fn accept(
    blobs: &Arc<BlobStore>,
    committer: &Committer,
    inline_body_limit: usize,
    message: &IncomingMessage,
) -> Result<(), StoreError> {
    commit_placed(blobs, committer, inline_body_limit, message, Write::Accept).await
}

/// Places `message`'s body and commits the write `write_of` makes of it, placing
/// the body again if garbage collection removed it before the commit.
async fn commit_placed(
    blobs: &Arc<BlobStore>,
    committer: &Committer,
    inline_body_limit: usize,
    message: &IncomingMessage,
    write_of: impl Fn(Placed) -> Write,
) -> Result<(), StoreError> {
    let size = i64::try_from(message.data.len()).map_err(|_| StoreError::Invalid {
        what: "message size",
        reason: message.data.len().to_string(),
    })?;
    let inline = inline_body_limit > 0 && message.data.len() <= inline_body_limit;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (blob, content) = place_body(blobs, inline, &message.data).await?;
        let placed = Placed {
            message: IncomingMessage {
                queue_id: message.queue_id.clone(),
                reverse_path: message.reverse_path.clone(),
                received_at_ms: message.received_at_ms,
                delivery_key: message.delivery_key.clone(),
                envid: message.envid.clone(),
                ret: message.ret,
                smtputf8: message.smtputf8,
                received_headers: message.received_headers,
                recipients: message.recipients.clone(),
                data: Vec::new(),
            },
            size,
            blob,
            content,
        };
        match committer.commit(write_of(placed)).await {
            Err(StoreError::BlobRemoved(blob)) if attempt < BODY_ATTEMPTS => {
                tracing::debug!(%blob, attempt, "body removed by garbage collection; storing it again");
            }
            other => return other,
        }
    }
}

/// Makes one queue decision durable through the group commit; see
/// [`super::Store::persist_queue`]. Answers once it is committed.
pub(crate) async fn persist_queue(
    blobs: &Arc<BlobStore>,
    committer: &Committer,
    inline_body_limit: usize,
    queue_id: &str,
    changes: &[RecipientChange],
    notice: Option<&IncomingMessage>,
    remove: bool,
) -> Result<(), StoreError> {
    let write = |notice: Option<Placed>| {
        Write::Queue(QueueWrite {
            queue_id: queue_id.to_owned(),
            changes: changes.to_vec(),
            notice,
            remove,
        })
    };
    match notice {
        Some(message) => {
            commit_placed(blobs, committer, inline_body_limit, message, |placed| {
                write(Some(placed))
            })
            .await
        }
        None => committer.commit(write(None)).await,
    }
}

/// Commits until every handle is gone, counting the transactions committed (batches
/// and lone retries alike) in `transactions`, for the log and the tests.
async fn run(
    db: Db,
    blobs: Arc<BlobStore>,
    mut receiver: mpsc::Receiver<Request>,
    transactions: Arc<AtomicU64>,
) {
    let held = HeldConnection::default();
    while let Some(first) = receiver.recv().await {
        // Whatever arrived while the previous transaction was committing joins
        // this one: that is the whole group-commit policy, with no added delay.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&db, &blobs, &held, batch, &transactions).await;
    }
}

/// The connection the committer writes through on PostgreSQL and MySQL, kept from
/// one transaction to the next: taking one from the pool for each transaction
/// would cost two more round trips (sqlx pings a connection when it hands it out
/// and again when it takes it back). After a failure it goes back to the pool,
/// and the next transaction starts on a connection the pool has tested. A mutex,
/// though only the committer's task uses it, so that a retried transaction can
/// borrow it anew on each attempt.
#[derive(Debug, Default)]
struct HeldConnection(tokio::sync::Mutex<Option<PoolConnection<Any>>>);

async fn commit_batch(
    db: &Db,
    blobs: &BlobStore,
    held: &HeldConnection,
    batch: Vec<Request>,
    transactions: &AtomicU64,
) {
    let writes: Vec<&Write> = batch.iter().map(|request| &request.write).collect();
    let together = commit_with_retries(db, blobs, held, &writes, transactions).await;
    tracing::debug!(
        writes = writes.len(),
        ok = together.is_ok(),
        transactions = transactions.load(Ordering::Relaxed),
        "group commit"
    );
    drop(writes);
    match together {
        Ok(()) => {
            for request in batch {
                let _ = request.reply.send(Ok(()));
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some(request) = batch.into_iter().next() {
                let _ = request.reply.send(Err(error));
            }
        }
        Err(_) => {
            // One bad write must not fail its neighbours: retry each alone so that
            // every caller gets the answer about its own write.
            for request in batch {
                let result =
                    commit_with_retries(db, blobs, held, &[&request.write], transactions).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

async fn commit_with_retries(
    db: &Db,
    blobs: &BlobStore,
    held: &HeldConnection,
    writes: &[&Write],
    transactions: &AtomicU64,
) -> Result<(), StoreError> {
    with_retries(|| commit(db, blobs, held, writes)).await?;
    transactions.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn commit(
    db: &Db,
    blobs: &BlobStore,
    held: &HeldConnection,
    writes: &[&Write],
) -> Result<(), StoreError> {
    if db.engine == SqlEngine::Sqlite {
        // One writer at a time anyway, each statement in microseconds: SQLite
        // gains nothing from the connection kept or the batched statements.
        let mut tx = db.begin_write().await?;
        stage_one_by_one(db, blobs, &mut tx, writes).await?;
        return tx.commit().await;
    }
    let mut slot = held.0.lock().await;
    let reused = slot.is_some();
    let mut result = commit_on(db, blobs, &mut slot, writes).await;
    if reused && result.as_ref().is_err_and(is_connection_failure) {
        // The kept connection died while idle (a server restart, its idle
        // timeout): a new one from the pool. Trying again is safe even if the
        // COMMIT itself was lost on the way back: every write skips what a
        // committed attempt wrote.
        *slot = None;
        result = commit_on(db, blobs, &mut slot, writes).await;
    }
    if result.is_err() {
        *slot = None;
    }
    result
}

/// Commits `writes` on the kept connection (taken from the pool first if there is
/// none): the accepted messages through the batched statements, falling back to
/// one message at a time when the batch leaves the common path.
async fn commit_on(
    db: &Db,
    blobs: &BlobStore,
    slot: &mut Option<PoolConnection<Any>>,
    writes: &[&Write],
) -> Result<(), StoreError> {
    let connection: &mut AnyConnection = match slot {
        Some(connection) => connection,
        None => slot.insert(db.pool.acquire().await?),
    };
    let accepts: Vec<Item<'_>> = writes
        .iter()
        .filter_map(|write| match write {
            Write::Accept(placed) => Some(placed.item()),
            Write::Queue(_) => None,
        })
        .collect();
    if !accepts.is_empty() {
        let mut tx = db.begin_write_on(&mut *connection).await?;
        if acceptance::stage_batch(db, blobs, &mut tx, &accepts).await? == Batched::Staged {
            for write in writes {
                if let Write::Queue(decision) = write {
                    delivery_queue::stage(db, blobs, &mut tx, decision).await?;
                }
            }
            return tx.commit().await;
        }
        tx.rollback().await?;
    }
    let mut tx = db.begin_write_on(connection).await?;
    stage_one_by_one(db, blobs, &mut tx, writes).await?;
    tx.commit().await
}

/// Stages each write on its own, in order: every case off the common path is
/// decided here, one message at a time.
async fn stage_one_by_one(
    db: &Db,
    blobs: &BlobStore,
    tx: &mut WriteTx<'_>,
    writes: &[&Write],
) -> Result<(), StoreError> {
    for write in writes {
        match write {
            Write::Accept(placed) => acceptance::stage(db, blobs, tx, &placed.item()).await?,
            Write::Queue(decision) => delivery_queue::stage(db, blobs, tx, decision).await?,
        }
    }
    Ok(())
}

mod sqlite;
#[cfg(test)]
mod tests;
