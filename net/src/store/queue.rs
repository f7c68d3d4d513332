//! Durable acceptance: `accept` places the body — small ones inline, in the blob
//! row of the same transaction as the records; larger ones first as a durable file
//! in the blob folder — then hands the records to the group commit (`commit`),
//! which commits every waiting write in one transaction (one fsync for many
//! sessions) and answers each caller separately.
//!
//! A file body is trusted only once its blob row is locked in the committing
//! transaction and the file is seen to exist: garbage collection removes files only
//! while it holds the same row (see `garbage`), so the two can never cross.

use super::blob::{BlobStore, blob_name};
use super::commit::{Committer, Placed, Write};
use super::directory::{Kind, lookup_key};
use super::mailbox::{change_blob_refs, deliver_to_inbox};
use super::outbound;
use super::sql::{Backend, Db, WriteTx, int};
use super::{IncomingMessage, QueueEntry, QueuedCopy, RoutedRecipient, StoreError};
use sluice_core::mailbox::Outcome;
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Attempts to store a file body that garbage collection removed under us (it
/// can only do so while the body was unreferenced, so a second try succeeds
/// unless the collector runs back to back with a grace period of zero).
const BODY_ATTEMPTS: u32 = 4;

/// A message whose body is placed, ready for its records.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item<'a> {
    pub(super) message: &'a IncomingMessage,
    pub(super) size: i64,
    pub(super) blob: &'a str,
    pub(super) content: Option<&'a [u8]>,
}

/// Writes one message's body claim and records inside `tx`.
pub(super) async fn stage(
    db: &Db,
    blobs: &BlobStore,
    tx: &mut WriteTx,
    item: &Item<'_>,
) -> Result<(), StoreError> {
    claim_blob(db, tx, item).await?;
    // Inside the transaction, after the claim: a collector that removed the
    // file has committed by now, and none can remove it before we commit.
    if item.content.is_none() && !file_exists(blobs, item.blob).await? {
        return Err(StoreError::BlobRemoved(item.blob.to_owned()));
    }
    record(db, tx, item).await
}

async fn file_exists(blobs: &BlobStore, blob: &str) -> Result<bool, StoreError> {
    let Some(path) = blobs.path(blob) else {
        return Ok(false);
    };
    tokio::fs::try_exists(&path)
        .await
        .map_err(|source| StoreError::Blob {
            path: path.display().to_string(),
            source,
        })
}

/// Creates the blob row, or locks the existing one until commit (an upsert locks
/// the row on PostgreSQL and MySQL; SQLite has one writer anyway). An inline body
/// is stored unless the row has one already; a file body leaves `content` alone.
async fn claim_blob(db: &Db, tx: &mut WriteTx, item: &Item<'_>) -> Result<(), StoreError> {
    let statement = match db.backend {
        Backend::Sqlite | Backend::Postgres => db.sql(
            "INSERT INTO blobs (blob_sha256, size, refcount, content) VALUES (?, ?, 0, ?) \
             ON CONFLICT (blob_sha256) DO UPDATE SET content = COALESCE(blobs.content, excluded.content)",
        ),
        Backend::Mysql => "INSERT INTO blobs (blob_sha256, size, refcount, content) \
             VALUES (?, ?, 0, ?) ON DUPLICATE KEY UPDATE content = COALESCE(content, VALUES(content))"
            .to_owned(),
    };
    sqlx::query(&statement)
        .bind(item.blob)
        .bind(item.size)
        .bind(item.content)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// One queue record of a message, before it is written.
#[derive(Clone, Copy, Debug)]
struct QueueRecord<'a> {
    recipient: &'a str,
    original: &'a str,
    state: &'a str,
    /// A copy for the queue; None for one written into a mailbox now.
    queued: Option<&'a QueuedCopy>,
}

/// Writes a queue record unless (queue id, recipient) has one: whether it wrote.
/// Every step of `record` is conditional on this, which is what makes `accept`
/// idempotent. A queued copy's record carries its destination and DSN parameters.
async fn record_queue_entry(
    db: &Db,
    tx: &mut WriteTx,
    message: &IncomingMessage,
    entry: &QueueRecord<'_>,
    blob: &str,
) -> Result<bool, StoreError> {
    if db.backend == Backend::Mysql {
        // No ON CONFLICT on MySQL (and INSERT IGNORE would truncate silently).
        let row = sqlx::query("SELECT id FROM queue_records WHERE queue_id = ? AND recipient = ?")
            .bind(&message.queue_id)
            .bind(entry.recipient)
            .fetch_optional(&mut *tx.tx)
            .await?;
        if row.is_some() {
            return Ok(false);
        }
    }
    let inserted = sqlx::query(&db.insert_or_skip(
        "queue_records (queue_id, recipient, original_recipient, reverse_path, \
         state, blob_sha256, received_at_ms, destination, notify, orcpt) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(&message.queue_id)
    .bind(entry.recipient)
    .bind(entry.original)
    .bind(&message.reverse_path)
    .bind(entry.state)
    .bind(blob)
    .bind(message.received_at_ms)
    .bind(entry.queued.map(|copy| copy.destination.to_string()))
    .bind(
        entry
            .queued
            .and_then(|copy| copy.notify)
            .map(outbound::notify_text),
    )
    .bind(
        entry
            .queued
            .and_then(|copy| copy.orcpt.as_ref())
            .map(outbound::orcpt_text),
    )
    .execute(&mut *tx.tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The message's envelope row for the queue, once (a retried commit skips it).
async fn insert_queue_message(
    db: &Db,
    tx: &mut WriteTx,
    message: &IncomingMessage,
    size: i64,
    blob: &str,
) -> Result<(), StoreError> {
    let reverse_path = message
        .reverse_path
        .trim_start_matches('<')
        .trim_end_matches('>');
    sqlx::query(&db.insert_ignore(
        "queue_messages (queue_id, reverse_path, envid, ret, smtputf8, received_headers, \
         size, blob_sha256, arrival_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(&message.queue_id)
    .bind(reverse_path)
    .bind(message.envid.as_deref())
    .bind(message.ret.map(outbound::ret_text))
    .bind(i32::from(message.smtputf8))
    .bind(i64::from(message.received_headers))
    .bind(size)
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
        content: _,
    } = *item;
    // Local recipients in key order: concurrent transactions then lock INBOX rows
    // in the same order, which keeps PostgreSQL and MySQL free of deadlocks.
    let mut locals: Vec<(String, &str)> = Vec::new();
    let mut queued: Vec<&QueuedCopy> = Vec::new();
    for recipient in &message.recipients {
        match recipient {
            RoutedRecipient::Local { user, original } => locals.push((lookup_key(user), original)),
            RoutedRecipient::Queued(copy) => queued.push(copy),
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
        let entry = QueueRecord {
            recipient: &canonical,
            original,
            state: "delivered",
            queued: None,
        };
        if !record_queue_entry(db, tx, message, &entry, blob).await? {
            continue;
        }
        match deliver_to_inbox(
            db,
            tx,
            &user_key,
            &message.delivery_key,
            blob,
            size,
            message.received_at_ms,
            &message.queue_id,
        )
        .await?
        {
            Ok(Outcome::Delivered { .. }) => references += 1,
            Ok(_) => {}
            Err(error) => return Err(StoreError::Mailbox(error)),
        }
    }
    if !queued.is_empty() {
        insert_queue_message(db, tx, message, size, blob).await?;
    }
    for copy in queued {
        if !seen.insert(format!("queued:{}", copy.address)) {
            continue;
        }
        let entry = QueueRecord {
            recipient: &copy.address,
            original: &copy.original,
            state: "pending",
            queued: Some(copy),
        };
        if record_queue_entry(db, tx, message, &entry, blob).await? {
            references += 1;
        }
    }
    // One update for all of the message's new references (mailbox entries and
    // pending records), rather than one per recipient.
    change_blob_refs(db, tx, blob, references).await
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
pub(super) async fn commit_placed(
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

/// Names the body and, for a file body, makes the file durable first: after a
/// crash before the commit an unreferenced file is harmless garbage, whereas a
/// record without its body would be a lost message. Hashing and writing run on a
/// blocking thread. Returns the blob name and the inline content, if inline.
pub(super) async fn place_body(
    blobs: &Arc<BlobStore>,
    inline: bool,
    data: &[u8],
) -> Result<(String, Option<Vec<u8>>), StoreError> {
    let writer = Arc::clone(blobs);
    let data = data.to_vec();
    tokio::task::spawn_blocking(move || {
        if inline {
            Ok((blob_name(&data), Some(data)))
        } else {
            writer.put(&data).map(|blob| (blob, None))
        }
    })
    .await
    .map_err(|error| StoreError::Blob {
        path: "(blob writer)".to_owned(),
        source: std::io::Error::other(error.to_string()),
    })?
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
            "SELECT queue_id, reverse_path, recipient, state, received_at_ms, destination, \
             attempts, next_attempt_ms, status, remote_mta, diagnostic FROM queue_records \
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
                    destination: row.try_get("destination")?,
                    attempts: int(row, "attempts")?,
                    next_attempt_ms: row.try_get("next_attempt_ms")?,
                    status: row.try_get("status")?,
                    remote_mta: row.try_get("remote_mta")?,
                    diagnostic: row.try_get("diagnostic")?,
                })
            })
            .collect()
    }

    /// Makes deferred recipients (of one message, or all) due now: what `sluice
    /// queue retry|flush` does when no server is running; the next start sees it.
    pub(crate) async fn retry_now(
        &self,
        queue_id: Option<&str>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let result =
            match queue_id {
                Some(queue_id) => {
                    sqlx::query(&self.sql(
                        "UPDATE queue_records SET next_attempt_ms = ? \
                     WHERE state = 'deferred' AND queue_id = ?",
                    ))
                    .bind(now_ms)
                    .bind(queue_id)
                    .execute(&mut *tx.tx)
                    .await?
                }
                None => {
                    sqlx::query(&self.sql(
                        "UPDATE queue_records SET next_attempt_ms = ? WHERE state = 'deferred'",
                    ))
                    .bind(now_ms)
                    .execute(&mut *tx.tx)
                    .await?
                }
            };
        tx.commit().await?;
        Ok(result.rows_affected())
    }
}
