//! Durable acceptance of a message: placing its body — small ones inline, for the
//! blob row of the same transaction as the records; larger ones first as a durable
//! file in the blob folder — and staging its records (queue records, INBOX copies,
//! the queue's envelope row) inside a write transaction of the group commit.
//!
//! This module only stages; `commit` batches staged writes into transactions and
//! answers each caller once its write is durable. A file body is trusted only once
//! its blob row is locked in the committing transaction and the file is seen to
//! exist: garbage collection removes files only while it holds the same row (see
//! `garbage`), so the two can never cross.

use super::blob::{BlobStore, blob_name};
use super::directory::lookup_key;
pub(super) use super::mailbox::InboxDelivery;
use super::mailbox::{change_blob_refs, deliver_to_inbox};
use super::queue_columns::{StateColumns, notify_text, orcpt_text, ret_text};
use super::sql::{Db, SqlEngine, WriteTx};
use super::{IncomingMessage, QueuedCopy, RoutedRecipient, StoreError};
use sluice_core::delivery::Destination;
use sluice_core::mailbox::{MailboxError, Outcome};
use sluice_core::node;
use sluice_core::queue::RecipientState;
use sluice_core::smtp::params::{Notify, OriginalRecipient};
use std::sync::Arc;

mod batch;
pub(super) use batch::{Batched, stage_batch};

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

/// A message whose body is placed, ready for its records.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item<'a> {
    pub(super) message: &'a IncomingMessage,
    pub(super) size: i64,
    pub(super) blob: &'a str,
    pub(super) content: Option<&'a [u8]>,
}

/// The statements an acceptance runs inside one write transaction, for one way of
/// reaching the database: sqlx on every engine ([`SqlxStatements`]) and, for
/// SQLite, the group commit's own connection on its writer thread
/// (`commit::sqlite`). [`stage_with`] is the one algorithm over them; each
/// statement keeps the meaning documented on the sqlx version.
pub(super) trait AcceptStatements {
    /// See [`claim_blob`].
    async fn claim_blob(&mut self, item: &Item<'_>, references: i64) -> Result<(), StoreError>;
    /// Whether the file body `blob` is in the blob folder.
    async fn file_exists(&mut self, blob: &str) -> Result<bool, StoreError>;
    /// See [`record_queue_entry`].
    async fn record_queue_entry(
        &mut self,
        message: &IncomingMessage,
        entry: &QueueRecord<'_>,
        blob: &str,
    ) -> Result<bool, StoreError>;
    /// See [`deliver_to_inbox`].
    async fn deliver_to_inbox(
        &mut self,
        delivery: &InboxDelivery<'_>,
    ) -> Result<Result<Outcome, MailboxError>, StoreError>;
    /// See [`insert_queue_message`].
    async fn insert_queue_message(
        &mut self,
        message: &IncomingMessage,
        size: i64,
        blob: &str,
    ) -> Result<(), StoreError>;
    /// Adds `delta` (not 0) to the body's reference count.
    async fn change_blob_refs(&mut self, blob: &str, delta: i64) -> Result<(), StoreError>;
}

/// The acceptance's statements through sqlx, inside `tx`.
struct SqlxStatements<'a, 'b> {
    db: &'a Db,
    blobs: &'a BlobStore,
    tx: &'a mut WriteTx<'b>,
}

impl AcceptStatements for SqlxStatements<'_, '_> {
    async fn claim_blob(&mut self, item: &Item<'_>, references: i64) -> Result<(), StoreError> {
        claim_blob(self.db, self.tx, item, references).await
    }

    async fn file_exists(&mut self, blob: &str) -> Result<bool, StoreError> {
        file_exists(self.blobs, blob).await
    }

    async fn record_queue_entry(
        &mut self,
        message: &IncomingMessage,
        entry: &QueueRecord<'_>,
        blob: &str,
    ) -> Result<bool, StoreError> {
        record_queue_entry(self.db, self.tx, message, entry, blob).await
    }

    async fn deliver_to_inbox(
        &mut self,
        delivery: &InboxDelivery<'_>,
    ) -> Result<Result<Outcome, MailboxError>, StoreError> {
        deliver_to_inbox(self.db, self.tx, delivery).await
    }

    async fn insert_queue_message(
        &mut self,
        message: &IncomingMessage,
        size: i64,
        blob: &str,
    ) -> Result<(), StoreError> {
        insert_queue_message(self.db, self.tx, message, size, blob).await
    }

    async fn change_blob_refs(&mut self, blob: &str, delta: i64) -> Result<(), StoreError> {
        change_blob_refs(self.db, self.tx, blob, delta).await
    }
}

/// Writes one message's body claim and records inside `tx`.
pub(super) async fn stage(
    db: &Db,
    blobs: &BlobStore,
    tx: &mut WriteTx<'_>,
    item: &Item<'_>,
) -> Result<(), StoreError> {
    stage_with(&mut SqlxStatements { db, blobs, tx }, item).await
}

/// Writes one message's body claim and records with `statements`.
pub(super) async fn stage_with(
    statements: &mut impl AcceptStatements,
    item: &Item<'_>,
) -> Result<(), StoreError> {
    let copies = Copies::of(item.message);
    // The claim counts every copy as a new reference at once, which saves a
    // statement on the common path; copies an earlier attempt already recorded
    // are taken back off at the end.
    let expected = copies.references();
    statements.claim_blob(item, expected).await?;
    // Inside the transaction, after the claim: a collector that removed the
    // file has committed by now, and none can remove it before we commit.
    if item.content.is_none() && !statements.file_exists(item.blob).await? {
        return Err(StoreError::BlobRemoved(item.blob.to_owned()));
    }
    let recorded = record(statements, item, &copies).await?;
    let delta = recorded - expected;
    if delta != 0 {
        statements.change_blob_refs(item.blob, delta).await?;
    }
    Ok(())
}

pub(super) async fn file_exists(blobs: &BlobStore, blob: &str) -> Result<bool, StoreError> {
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

/// Creates the blob row with `references`, or adds them to the existing row and so
/// locks it until commit (an upsert locks the row on PostgreSQL and MySQL; SQLite
/// has one writer anyway). An inline body is stored unless the row has one
/// already; a file body leaves `content` alone.
async fn claim_blob(
    db: &Db,
    tx: &mut WriteTx<'_>,
    item: &Item<'_>,
    references: i64,
) -> Result<(), StoreError> {
    let statement = db.sql(&format!(
        "{CLAIM_BLOB_INTO} VALUES (?, ?, ?, ?) {}",
        claim_blob_conflict(db)
    ));
    sqlx::query(&statement)
        .bind(item.blob)
        .bind(item.size)
        .bind(references)
        .bind(item.content)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// The head of a blob claim, before its rows (blob, size, references, content).
pub(super) const CLAIM_BLOB_INTO: &str = "INSERT INTO blobs (blob_sha256, size, refcount, content)";

/// What a blob claim does with a row that exists: adds the references, and
/// stores the inline body unless the row has one.
pub(super) fn claim_blob_conflict(db: &Db) -> &'static str {
    match db.engine {
        SqlEngine::Sqlite | SqlEngine::Postgres => {
            "ON CONFLICT (blob_sha256) DO UPDATE SET refcount = blobs.refcount + excluded.refcount, \
             content = COALESCE(blobs.content, excluded.content)"
        }
        SqlEngine::Mysql => {
            "ON DUPLICATE KEY UPDATE refcount = refcount + VALUES(refcount), \
             content = COALESCE(content, VALUES(content))"
        }
    }
}

/// A message's copies, each named once: local users by lookup key (sorted, so
/// concurrent transactions lock INBOX rows in the same order, which keeps
/// PostgreSQL and MySQL free of deadlocks) and queued copies by address.
#[derive(Debug)]
struct Copies<'a> {
    locals: Vec<LocalCopy<'a>>,
    queued: Vec<&'a QueuedCopy>,
}

/// A copy written into a local mailbox now.
#[derive(Debug)]
struct LocalCopy<'a> {
    key: String,
    /// The canonical address.
    user: &'a str,
    /// The RCPT address.
    original: &'a str,
    notify: Option<Notify>,
    orcpt: Option<&'a OriginalRecipient>,
    /// It owes a success notice: its record holds the body until the notice is stored.
    owes_success: bool,
}

impl<'a> Copies<'a> {
    fn of(message: &'a IncomingMessage) -> Copies<'a> {
        let mut locals = Vec::new();
        let mut queued: Vec<&QueuedCopy> = Vec::new();
        for recipient in &message.recipients {
            match recipient {
                RoutedRecipient::Local {
                    user,
                    original,
                    notify,
                    orcpt,
                } => locals.push(LocalCopy {
                    key: lookup_key(user),
                    user,
                    original,
                    notify: *notify,
                    orcpt: orcpt.as_ref(),
                    owes_success: message.owes_success_notice(recipient),
                }),
                RoutedRecipient::Queued(copy) => {
                    if !queued.iter().any(|seen| seen.address == copy.address) {
                        queued.push(copy);
                    }
                }
            }
        }
        locals.sort_by(|a, b| a.key.cmp(&b.key));
        locals.dedup_by(|a, b| a.key == b.key);
        Copies { locals, queued }
    }

    /// The references to the body the copies make: one per mailbox entry, per
    /// queued copy and per local copy owing a notice.
    fn references(&self) -> i64 {
        let owing = self
            .locals
            .iter()
            .filter(|local| local.owes_success)
            .count();
        i64::try_from(self.locals.len() + owing + self.queued.len()).unwrap_or(i64::MAX)
    }
}

/// One queue record of a message, before it is written.
#[derive(Clone, Debug)]
pub(super) struct QueueRecord<'a> {
    pub(super) recipient: &'a str,
    pub(super) original: &'a str,
    /// Pending for a queued copy, delivered for one written into a mailbox now.
    pub(super) state: RecipientState,
    /// None for a copy written into a mailbox that owes nothing.
    pub(super) destination: Option<&'a Destination>,
    pub(super) notify: Option<Notify>,
    pub(super) orcpt: Option<&'a OriginalRecipient>,
    pub(super) success_owed: bool,
}

impl<'a> QueueRecord<'a> {
    fn queued(copy: &'a QueuedCopy) -> QueueRecord<'a> {
        QueueRecord {
            recipient: &copy.address,
            original: &copy.original,
            state: RecipientState::Pending,
            destination: Some(&copy.destination),
            notify: copy.notify,
            orcpt: copy.orcpt.as_ref(),
            success_owed: false,
        }
    }

    fn local(copy: &LocalCopy<'a>, destination: &'a Destination, at_ms: i64) -> QueueRecord<'a> {
        QueueRecord {
            recipient: copy.user,
            original: copy.original,
            state: node::delivered_at_acceptance(at_ms),
            destination: copy.owes_success.then_some(destination),
            notify: copy.notify,
            orcpt: copy.orcpt,
            success_owed: copy.owes_success,
        }
    }
}

/// Writes a queue record unless (queue id, recipient) has one: whether it wrote.
/// Every step of `record` is conditional on this, which is what makes `accept`
/// idempotent. A queued copy's record carries its destination and DSN parameters.
async fn record_queue_entry(
    db: &Db,
    tx: &mut WriteTx<'_>,
    message: &IncomingMessage,
    entry: &QueueRecord<'_>,
    blob: &str,
) -> Result<bool, StoreError> {
    const VALUES: &str = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";
    let statement = match db.engine {
        // No ON CONFLICT on MySQL, and INSERT IGNORE would also turn a too-long
        // value into a silent truncation: the insert itself skips an existing key,
        // in the same round trip.
        SqlEngine::Mysql => format!(
            "INSERT INTO {QUEUE_RECORD_COLUMNS} SELECT {VALUES} FROM DUAL WHERE NOT EXISTS \
             (SELECT 1 FROM queue_records WHERE queue_id = ? AND recipient = ?)"
        ),
        SqlEngine::Sqlite | SqlEngine::Postgres => {
            db.insert_or_skip(&format!("{QUEUE_RECORD_COLUMNS} VALUES ({VALUES})"))
        }
    };
    let mut insert = bind_queue_record(sqlx::query(&statement), message, entry, blob);
    if db.engine == SqlEngine::Mysql {
        insert = insert.bind(&message.queue_id).bind(entry.recipient);
    }
    let inserted = insert.execute(&mut *tx.tx).await?.rows_affected();
    Ok(inserted == 1)
}

/// A query of the sqlx Any driver, with its arguments.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The table and columns of a queue record, in the order [`bind_queue_record`]
/// binds them.
const QUEUE_RECORD_COLUMNS: &str = "queue_records (queue_id, recipient, original_recipient, \
     reverse_path, state, blob_sha256, received_at_ms, destination, notify, orcpt, \
     last_attempt_ms, final_at_ms, status, diagnostic, diagnostic_is_reply, success_owed)";

/// Binds the sixteen values of one queue record.
fn bind_queue_record<'q>(
    query: AnyQuery<'q>,
    message: &'q IncomingMessage,
    entry: &QueueRecord<'q>,
    blob: &'q str,
) -> AnyQuery<'q> {
    let columns = StateColumns::of(&entry.state);
    query
        .bind(&message.queue_id)
        .bind(entry.recipient)
        .bind(entry.original)
        .bind(&message.reverse_path)
        .bind(columns.state)
        .bind(blob)
        .bind(message.received_at_ms)
        .bind(entry.destination.map(Destination::to_string))
        .bind(entry.notify.map(notify_text))
        .bind(entry.orcpt.map(orcpt_text))
        .bind(columns.last_attempt_ms)
        .bind(columns.final_at_ms)
        .bind(columns.status)
        .bind(columns.diagnostic)
        .bind(i32::from(columns.diagnostic_is_reply))
        .bind(i32::from(entry.success_owed))
}

/// The message's envelope row for the queue, once (a retried commit skips it).
async fn insert_queue_message(
    db: &Db,
    tx: &mut WriteTx<'_>,
    message: &IncomingMessage,
    size: i64,
    blob: &str,
) -> Result<(), StoreError> {
    let statement = db.insert_ignore(&format!(
        "{QUEUE_MESSAGE_COLUMNS} VALUES ({QUEUE_MESSAGE_ROW})"
    ));
    bind_queue_message(sqlx::query(&statement), message, size, blob)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// The table and columns of a message's envelope row, in the order
/// [`bind_queue_message`] binds them, and the placeholders of one row.
const QUEUE_MESSAGE_COLUMNS: &str = "queue_messages (queue_id, reverse_path, envid, ret, \
     smtputf8, received_headers, size, blob_sha256, arrival_ms)";
const QUEUE_MESSAGE_ROW: &str = "?, ?, ?, ?, ?, ?, ?, ?, ?";

fn bind_queue_message<'q>(
    query: AnyQuery<'q>,
    message: &'q IncomingMessage,
    size: i64,
    blob: &'q str,
) -> AnyQuery<'q> {
    query
        .bind(&message.queue_id)
        .bind(bare_reverse_path(&message.reverse_path))
        .bind(message.envid.as_deref())
        .bind(message.ret.map(ret_text))
        .bind(i32::from(message.smtputf8))
        .bind(i64::from(message.received_headers))
        .bind(size)
        .bind(blob)
        .bind(message.received_at_ms)
}

/// The reverse-path as the queue's message row keeps it: without its brackets.
pub(super) fn bare_reverse_path(reverse_path: &str) -> &str {
    reverse_path.trim_start_matches('<').trim_end_matches('>')
}

/// The records of one message: how many new references to its body they hold.
/// Every step skips what a previous attempt of the same message already
/// committed, which is what makes `accept` idempotent. A local copy names the
/// user the router found; a user removed since then has no INBOX any more, which
/// fails the delivery and with it the transaction.
async fn record(
    statements: &mut impl AcceptStatements,
    item: &Item<'_>,
    copies: &Copies<'_>,
) -> Result<i64, StoreError> {
    let Item {
        message,
        size,
        blob,
        content: _,
    } = *item;
    let mut references = 0_i64;
    let local = node::local_destination();
    for copy in &copies.locals {
        let entry = QueueRecord::local(copy, &local, message.received_at_ms);
        if !statements.record_queue_entry(message, &entry, blob).await? {
            continue;
        }
        if copy.owes_success {
            references += 1;
        }
        let delivery = InboxDelivery {
            user_key: &copy.key,
            delivery_key: &message.delivery_key,
            blob,
            size,
            internal_date_ms: message.received_at_ms,
            queue_id: &message.queue_id,
            reverse_path: message.envelope_sender(),
        };
        match statements.deliver_to_inbox(&delivery).await? {
            Ok(Outcome::Delivered { .. }) => references += 1,
            Ok(_) => {}
            Err(error) => return Err(StoreError::Mailbox(error)),
        }
    }
    let owing = copies.locals.iter().any(|copy| copy.owes_success);
    if !copies.queued.is_empty() || owing {
        statements.insert_queue_message(message, size, blob).await?;
    }
    for &copy in &copies.queued {
        let entry = QueueRecord::queued(copy);
        if statements.record_queue_entry(message, &entry, blob).await? {
            references += 1;
        }
    }
    Ok(references)
}

/// Bodies up to this size are hashed on the calling task: cheaper than the hand-off
/// to a blocking thread, which a lone session would wait for on every message.
const HASH_IN_PLACE: usize = 16 * 1024;

/// Names the body and, for a file body, makes the file durable first: after a
/// crash before the commit an unreferenced file is harmless garbage, whereas a
/// record without its body would be a lost message. Writing (and hashing a large
/// body) runs on a blocking thread. Returns the blob name and the inline content,
/// if inline.
pub(super) async fn place_body(
    blobs: &Arc<BlobStore>,
    inline: bool,
    data: &[u8],
) -> Result<(String, Option<Vec<u8>>), StoreError> {
    if inline && data.len() <= HASH_IN_PLACE {
        return Ok((blob_name(data), Some(data.to_vec())));
    }
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
