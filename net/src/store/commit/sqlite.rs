//! The group commit of accepted messages on SQLite, on one thread of its own with
//! its own connection.
//!
//! Through sqlx every SQL statement is a hand-off to the connection's worker thread
//! and a wake-up back, and an acceptance runs several: the thread wake-ups and
//! context switches cost more CPU than the acceptance itself. Here one batch of
//! accepted messages (whatever waited while the previous one committed) is one
//! transaction run from start to end on this thread with prepared, cached
//! statements, and each caller is woken once, by its own answer, after the commit.
//!
//! Durability is unchanged: the connection runs in WAL mode with
//! `synchronous = FULL`, so the commit has fsynced the log before any caller hears
//! `Ok`. The thread takes the store's writer slot (`Db::writer_slot`) for each
//! transaction, so it never contends in SQLite's busy handler with the store's
//! other writers, which go through sqlx. Queue decisions stay on the sqlx
//! committer: they are rarer and write far more kinds of rows.
//!
//! The statements are those of `acceptance::AcceptStatements`; the algorithm that runs
//! them is `acceptance::stage_with`, shared with every other engine.

use super::MAX_BATCH;
use crate::store::StoreError;
use crate::store::acceptance::{self, AcceptStatements, InboxDelivery, Item, Placed, QueueRecord};
use crate::store::blob::BlobStore;
use crate::store::queue_columns::{StateColumns, notify_text, orcpt_text, ret_text};
use crate::store::sql::{TRANSACTION_ATTEMPTS, WAL_AUTOCHECKPOINT, is_retryable, run_ready};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use sluice_core::delivery::Destination;
use sluice_core::mailbox::{MailboxError, Outcome};
use sluice_core::node::IncomingMessage;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};

/// An accepted message for the writer, and where its answer goes.
#[derive(Debug)]
pub(super) struct AcceptRequest {
    pub(super) placed: Placed,
    pub(super) reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The mailbox every accepted local copy goes into.
const INBOX: &str = "INBOX";

/// Opens the writer's connection to the database file at `path` (already created
/// and migrated), set up like every pooled connection: WAL, `synchronous = FULL`
/// (a committed transaction survives power loss: the promise behind the 250),
/// foreign keys on, the same checkpoint interval.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.execute_batch(WAL_AUTOCHECKPOINT)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    // Enough for every statement of an acceptance, so none is prepared twice.
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

/// Commits accepted messages until every sender is gone; counts the transactions
/// committed in `transactions`. Blocks: run it on a thread of its own.
pub(super) fn run(
    mut connection: Connection,
    blobs: Arc<BlobStore>,
    writer_slot: Arc<Mutex<()>>,
    mut receiver: mpsc::Receiver<AcceptRequest>,
    transactions: Arc<AtomicU64>,
) {
    while let Some(first) = receiver.blocking_recv() {
        // Whatever arrived while the previous transaction was committing joins
        // this one, as in the sqlx committer.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let writer = writer_slot.blocking_lock();
        let answers = commit_batch(&mut connection, &blobs, &batch, &transactions);
        drop(writer);
        for (request, answer) in batch.into_iter().zip(answers) {
            let _ = request.reply.send(answer);
        }
    }
}

/// The answer to each write of `batch`: one transaction for all, or, when that
/// fails, one per write, so that one bad write does not fail its neighbours.
fn commit_batch(
    connection: &mut Connection,
    blobs: &BlobStore,
    batch: &[AcceptRequest],
    transactions: &AtomicU64,
) -> Vec<Result<(), StoreError>> {
    let items: Vec<Item<'_>> = batch.iter().map(|request| request.placed.item()).collect();
    let together = commit_with_retries(connection, blobs, &items, transactions);
    tracing::debug!(
        writes = items.len(),
        ok = together.is_ok(),
        transactions = transactions.load(Ordering::Relaxed),
        "group commit (SQLite writer)"
    );
    match together {
        Ok(()) => items.iter().map(|_| Ok(())).collect(),
        Err(error) if items.len() == 1 => vec![Err(error)],
        Err(_) => items
            .iter()
            .map(|item| commit_with_retries(connection, blobs, &[*item], transactions))
            .collect(),
    }
}

/// One transaction for `items`, tried again (after a short, growing pause) on the
/// errors a second try can cure, like `sql::with_retries`.
fn commit_with_retries(
    connection: &mut Connection,
    blobs: &BlobStore,
    items: &[Item<'_>],
    transactions: &AtomicU64,
) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match commit(connection, blobs, items) {
            Ok(()) => {
                transactions.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(error) if attempt < TRANSACTION_ATTEMPTS && is_retryable(&error) => {
                std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Stages every item in one `BEGIN IMMEDIATE` transaction and commits it; rolls
/// back (on drop) if any item fails.
fn commit(
    connection: &mut Connection,
    blobs: &BlobStore,
    items: &[Item<'_>],
) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut statements = Statements {
            transaction: &transaction,
            blobs,
        };
        for item in items {
            run_ready(acceptance::stage_with(&mut statements, item))?;
        }
    }
    transaction.commit()?;
    Ok(())
}

/// The acceptance's statements on the writer's own connection; each one is the
/// SQLite text of its sqlx twin in `acceptance` and `mailbox`.
struct Statements<'a> {
    transaction: &'a Transaction<'a>,
    blobs: &'a BlobStore,
}

impl AcceptStatements for Statements<'_> {
    async fn claim_blob(&mut self, item: &Item<'_>, references: i64) -> Result<(), StoreError> {
        self.transaction
            .prepare_cached(
                "INSERT INTO blobs (blob_sha256, size, refcount, content) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (blob_sha256) DO UPDATE SET \
                 refcount = blobs.refcount + excluded.refcount, \
                 content = COALESCE(blobs.content, excluded.content)",
            )?
            .execute(params![item.blob, item.size, references, item.content])?;
        Ok(())
    }

    async fn file_exists(&mut self, blob: &str) -> Result<bool, StoreError> {
        let Some(path) = self.blobs.path(blob) else {
            return Ok(false);
        };
        path.try_exists().map_err(|source| StoreError::Blob {
            path: path.display().to_string(),
            source,
        })
    }

    async fn record_queue_entry(
        &mut self,
        message: &IncomingMessage,
        entry: &QueueRecord<'_>,
        blob: &str,
    ) -> Result<bool, StoreError> {
        let columns = StateColumns::of(&entry.state);
        let inserted = self
            .transaction
            .prepare_cached(
                "INSERT INTO queue_records (queue_id, recipient, original_recipient, \
                 reverse_path, state, blob_sha256, received_at_ms, destination, notify, orcpt, \
                 last_attempt_ms, final_at_ms, status, diagnostic, diagnostic_is_reply, \
                 success_owed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                message.queue_id,
                entry.recipient,
                entry.original,
                message.reverse_path,
                columns.state,
                blob,
                message.received_at_ms,
                entry.destination.map(Destination::to_string),
                entry.notify.map(notify_text),
                entry.orcpt.map(orcpt_text),
                columns.last_attempt_ms,
                columns.final_at_ms,
                columns.status,
                columns.diagnostic,
                i32::from(columns.diagnostic_is_reply),
                i32::from(entry.success_owed),
            ])?;
        Ok(inserted == 1)
    }

    async fn deliver_to_inbox(
        &mut self,
        delivery: &InboxDelivery<'_>,
    ) -> Result<Result<Outcome, MailboxError>, StoreError> {
        let transaction = self.transaction;
        // The key's insert checks that the user exists; only when it writes
        // nothing does a second query tell a seen key from a missing user.
        let recorded = transaction
            .prepare_cached(
                "INSERT INTO deliveries (user_key, delivery_key, delivered_at_ms) \
                 SELECT ?, ?, ? FROM addresses WHERE address_key = ? AND kind = 'user' \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                delivery.user_key,
                delivery.delivery_key,
                delivery.internal_date_ms,
                delivery.user_key
            ])?;
        if recorded != 1 {
            let user_exists = transaction
                .prepare_cached("SELECT 1 FROM addresses WHERE address_key = ? AND kind = 'user'")?
                .query_row(params![delivery.user_key], |_| Ok(()))
                .optional()?
                .is_some();
            return Ok(if user_exists {
                Ok(Outcome::AlreadyDelivered)
            } else {
                Err(MailboxError::NoSuchUser(delivery.user_key.to_owned()))
            });
        }
        let taken = transaction
            .prepare_cached(
                "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
                 WHERE user_key = ? AND name = ? RETURNING id, uidnext, highestmodseq",
            )?
            .query_row(params![delivery.user_key, INBOX], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let Some((folder_id, uidnext, modseq)) = taken else {
            return Ok(Err(MailboxError::NoSuchFolder(INBOX.to_owned())));
        };
        // The transaction rolls the increment back with this refusal.
        if uidnext > i64::from(u32::MAX) {
            return Ok(Err(MailboxError::UidsExhausted(INBOX.to_owned())));
        }
        let uid = u32::try_from(uidnext - 1).map_err(|_| StoreError::Invalid {
            what: "uid",
            reason: (uidnext - 1).to_string(),
        })?;
        transaction
            .prepare_cached(
                "INSERT INTO messages (folder_id, uid, blob_sha256, size, flags, \
                 internal_date_ms, queue_id, modseq, reverse_path) \
                 VALUES (?, ?, ?, ?, '', ?, ?, ?, ?)",
            )?
            .execute(params![
                folder_id,
                i64::from(uid),
                delivery.blob,
                delivery.size,
                delivery.internal_date_ms,
                delivery.queue_id,
                modseq,
                delivery.reverse_path
            ])?;
        Ok(Ok(Outcome::Delivered { uid }))
    }

    async fn insert_queue_message(
        &mut self,
        message: &IncomingMessage,
        size: i64,
        blob: &str,
    ) -> Result<(), StoreError> {
        self.transaction
            .prepare_cached(
                "INSERT INTO queue_messages (queue_id, reverse_path, envid, ret, smtputf8, \
                 received_headers, size, blob_sha256, arrival_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                message.queue_id,
                acceptance::bare_reverse_path(&message.reverse_path),
                message.envid,
                message.ret.map(ret_text),
                i32::from(message.smtputf8),
                i64::from(message.received_headers),
                size,
                blob,
                message.received_at_ms
            ])?;
        Ok(())
    }

    async fn change_blob_refs(&mut self, blob: &str, delta: i64) -> Result<(), StoreError> {
        self.transaction
            .prepare_cached("UPDATE blobs SET refcount = refcount + ? WHERE blob_sha256 = ?")?
            .execute(params![delta, blob])?;
        Ok(())
    }
}
