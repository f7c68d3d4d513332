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

use super::blob::BlobStore;
use super::outbound::{self, QueueWrite};
use super::queue::{self, Item};
use super::sql::{Db, with_retries};
use super::{IncomingMessage, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction: bounds the transaction's size and the
/// latency of the last caller in a batch.
const MAX_BATCH: usize = 64;
/// Waiting writes beyond which callers wait for room (back-pressure).
const QUEUE_DEPTH: usize = 1024;

/// A message whose body is placed, waiting for its records. `message.data` is left
/// empty; `content` holds an inline body, None a file body that is already durable
/// in the blob folder. `size` is the body's length.
#[derive(Debug)]
pub(super) struct Placed {
    pub(super) message: IncomingMessage,
    pub(super) size: i64,
    pub(super) blob: String,
    pub(super) content: Option<Vec<u8>>,
}

impl Placed {
    pub(super) fn item(&self) -> Item<'_> {
        Item {
            message: &self.message,
            size: self.size,
            blob: &self.blob,
            content: self.content.as_deref(),
        }
    }
}

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

/// Commits until every handle is gone, counting the transactions committed (batches
/// and lone retries alike) in `transactions`, for the log and the tests.
async fn run(
    db: Db,
    blobs: Arc<BlobStore>,
    mut receiver: mpsc::Receiver<Request>,
    transactions: Arc<AtomicU64>,
) {
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
        commit_batch(&db, &blobs, batch, &transactions).await;
    }
}

async fn commit_batch(db: &Db, blobs: &BlobStore, batch: Vec<Request>, transactions: &AtomicU64) {
    let writes: Vec<&Write> = batch.iter().map(|request| &request.write).collect();
    let together = commit_with_retries(db, blobs, &writes, transactions).await;
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
                let result = commit_with_retries(db, blobs, &[&request.write], transactions).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

async fn commit_with_retries(
    db: &Db,
    blobs: &BlobStore,
    writes: &[&Write],
    transactions: &AtomicU64,
) -> Result<(), StoreError> {
    with_retries(|| commit(db, blobs, writes)).await?;
    transactions.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn commit(db: &Db, blobs: &BlobStore, writes: &[&Write]) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    for write in writes {
        match write {
            Write::Accept(placed) => queue::stage(db, blobs, &mut tx, &placed.item()).await?,
            Write::Queue(decision) => outbound::stage(db, blobs, &mut tx, decision).await?,
        }
    }
    tx.commit().await
}

mod sqlite;
#[cfg(test)]
mod tests;
