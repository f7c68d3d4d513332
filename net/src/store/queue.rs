//! Durable acceptance: `accept` writes the body to the blob folder, then hands the
//! records to a group-commit task that commits every waiting message in one
//! transaction (one fsync for many sessions) and answers each caller separately.

use super::blob::BlobStore;
use super::directory::{Kind, lookup_key};
use super::mailbox::{change_blob_refs, deliver, ensure_blob};
use super::sql::{Db, WriteTx, int, is_retryable};
use super::{IncomingMessage, QueueEntry, RoutedRecipient, StoreError};
use sluice_core::mailbox::MailboxError;
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most messages committed in one transaction: bounds the transaction's size and
/// the latency of the last caller in a batch.
const MAX_BATCH: usize = 64;
/// Waiting callers beyond which `accept` waits for room (back-pressure).
const QUEUE_DEPTH: usize = 1024;
/// Attempts for a transaction that hit a deadlock or a concurrent duplicate.
const ATTEMPTS: u32 = 5;

/// One message whose body is durable, waiting for its records to be committed.
/// `message.data` is left empty (the body is in the blob); `size` is its length.
#[derive(Debug)]
struct CommitRequest {
    message: IncomingMessage,
    size: i64,
    blob: String,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to the group-commit task.
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    sender: mpsc::Sender<CommitRequest>,
}

impl Committer {
    /// Starts the task; it ends when the last handle is dropped.
    pub(crate) fn spawn(db: Db) -> Committer {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(db, receiver));
        Committer { sender }
    }
}

async fn run(db: Db, mut receiver: mpsc::Receiver<CommitRequest>) {
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
        commit_batch(&db, batch).await;
    }
}

async fn commit_batch(db: &Db, batch: Vec<CommitRequest>) {
    let items: Vec<Item<'_>> = batch
        .iter()
        .map(|request| Item {
            message: &request.message,
            size: request.size,
            blob: &request.blob,
        })
        .collect();
    let together = commit_with_retries(db, &items).await;
    tracing::debug!(
        messages = items.len(),
        ok = together.is_ok(),
        "group commit"
    );
    drop(items);
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
            // One bad message must not fail its neighbours: retry each alone so
            // that every caller gets the answer about its own message.
            for request in batch {
                let item = Item {
                    message: &request.message,
                    size: request.size,
                    blob: &request.blob,
                };
                let result = commit_with_retries(db, &[item]).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

/// A message of a batch, borrowed from its request.
#[derive(Clone, Copy, Debug)]
struct Item<'a> {
    message: &'a IncomingMessage,
    size: i64,
    blob: &'a str,
}

async fn commit_with_retries(db: &Db, items: &[Item<'_>]) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match commit(db, items).await {
            Err(error) if attempt < ATTEMPTS && is_retryable(&error) => {
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

async fn commit(db: &Db, items: &[Item<'_>]) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    for item in items {
        record(db, &mut tx, item).await?;
    }
    tx.commit().await
}

async fn queue_record_exists(
    db: &Db,
    tx: &mut WriteTx,
    queue_id: &str,
    recipient: &str,
) -> Result<bool, StoreError> {
    let row =
        sqlx::query(&db.sql("SELECT id FROM queue_records WHERE queue_id = ? AND recipient = ?"))
            .bind(queue_id)
            .bind(recipient)
            .fetch_optional(&mut *tx.tx)
            .await?;
    Ok(row.is_some())
}

async fn insert_queue_record(
    db: &Db,
    tx: &mut WriteTx,
    message: &IncomingMessage,
    recipient: &str,
    original: &str,
    state: &str,
    blob: &str,
) -> Result<(), StoreError> {
    sqlx::query(&db.sql(
        "INSERT INTO queue_records (queue_id, recipient, original_recipient, reverse_path, \
         state, blob_sha256, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(&message.queue_id)
    .bind(recipient)
    .bind(original)
    .bind(&message.reverse_path)
    .bind(state)
    .bind(blob)
    .bind(message.received_at_ms)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// The records of one message. Every step skips what a previous attempt of the
/// same message already committed, which is what makes `accept` idempotent.
async fn record(db: &Db, tx: &mut WriteTx, item: &Item<'_>) -> Result<(), StoreError> {
    let Item {
        message,
        size,
        blob,
    } = *item;
    ensure_blob(db, tx, blob, size).await?;
    // Local recipients in key order: concurrent transactions then lock INBOX rows
    // in the same order, which keeps PostgreSQL and MySQL free of deadlocks.
    let mut locals: Vec<(String, &str)> = Vec::new();
    let mut externals: Vec<(&str, &str)> = Vec::new();
    for recipient in &message.recipients {
        match recipient {
            RoutedRecipient::Local { user, original } => locals.push((lookup_key(user), original)),
            RoutedRecipient::External { address, original } => {
                externals.push((address.as_str(), original.as_str()));
            }
        }
    }
    locals.sort();
    let mut seen = BTreeSet::new();
    let mut references = 0_i64;
    for (user_key, original) in locals {
        if !seen.insert(user_key.clone()) {
            continue;
        }
        let canonical = match db.address_kind_in(tx, &user_key).await? {
            Some((Kind::User, canonical)) => canonical,
            _ => return Err(StoreError::NotFound(format!("user {user_key}"))),
        };
        if queue_record_exists(db, tx, &message.queue_id, &canonical).await? {
            continue;
        }
        match deliver(
            db,
            tx,
            &user_key,
            &message.queue_id,
            blob,
            size,
            message.received_at_ms,
            &message.queue_id,
        )
        .await?
        {
            Ok(_) => {}
            Err(MailboxError::NoSuchUser(_)) => {
                return Err(StoreError::NotFound(format!("user {canonical}")));
            }
            Err(error) => return Err(StoreError::Mailbox(error)),
        }
        insert_queue_record(db, tx, message, &canonical, original, "delivered", blob).await?;
    }
    for (address, original) in externals {
        if !seen.insert(format!("external:{address}")) {
            continue;
        }
        if queue_record_exists(db, tx, &message.queue_id, address).await? {
            continue;
        }
        insert_queue_record(db, tx, message, address, original, "pending", blob).await?;
        references += 1;
    }
    change_blob_refs(db, tx, blob, references).await
}

/// Makes a message durable; see [`super::Store::accept`].
pub(crate) async fn accept(
    blobs: &Arc<BlobStore>,
    committer: &Committer,
    message: &IncomingMessage,
) -> Result<(), StoreError> {
    // Body first: after a crash between the two steps an unreferenced blob is
    // harmless, whereas a record without its body would be a lost message.
    let size = i64::try_from(message.data.len()).map_err(|_| StoreError::Invalid {
        what: "message size",
        reason: message.data.len().to_string(),
    })?;
    let writer = Arc::clone(blobs);
    let data = message.data.clone();
    let blob = tokio::task::spawn_blocking(move || writer.put(&data))
        .await
        .map_err(|error| StoreError::Blob {
            path: "(blob writer)".to_owned(),
            source: std::io::Error::other(error.to_string()),
        })??;
    let (reply, answer) = oneshot::channel();
    let request = CommitRequest {
        message: IncomingMessage {
            queue_id: message.queue_id.clone(),
            reverse_path: message.reverse_path.clone(),
            received_at_ms: message.received_at_ms,
            recipients: message.recipients.clone(),
            data: Vec::new(),
        },
        size,
        blob,
        reply,
    };
    committer
        .sender
        .send(request)
        .await
        .map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}

impl Db {
    /// Like `address_kind`, inside a write transaction.
    pub(crate) async fn address_kind_in(
        &self,
        tx: &mut WriteTx,
        key: &str,
    ) -> Result<Option<(Kind, String)>, StoreError> {
        let row =
            sqlx::query(&self.sql("SELECT kind, address FROM addresses WHERE address_key = ?"))
                .bind(key)
                .fetch_optional(&mut *tx.tx)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind")?;
        let address: String = row.try_get("address")?;
        Ok(Kind::parse(&kind).map(|kind| (kind, address)))
    }

    pub(crate) async fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue_id, reverse_path, recipient, state, received_at_ms FROM queue_records \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueEntry {
                    queue_id: row.try_get("queue_id")?,
                    reverse_path: row.try_get("reverse_path")?,
                    recipient: row.try_get("recipient")?,
                    state: row.try_get("state")?,
                    received_at_ms: int(row, "received_at_ms")?,
                })
            })
            .collect()
    }
}
