//! Durable storage: the user directory, mailboxes, the queue of accepted messages,
//! through sqlx on SQLite (embedded default), PostgreSQL or MySQL/MariaDB, with
//! message bodies content-addressed by SHA-256: small ones inline in their blob row,
//! larger ones as files in a blob folder.
//!
//! The one promise this module keeps for everybody else: when [`Store::accept`]
//! returns `Ok`, the body and the message's records are durable, so the session
//! may answer 250. An inline body (at most [`StoreOptions::inline_body_limit`]
//! octets) is committed in the same transaction as the records — one fsync; a
//! larger body is fsynced in the blob folder (file, then folder) before that
//! transaction. SQLite runs in WAL mode with `synchronous = FULL`, which makes
//! every commit durable (NORMAL would not).
//!
//! Blob reference counts live in SQL (`blobs.refcount`: mailbox entries plus
//! queue records not yet final: `pending` or `deferred`). [`Store::collect_garbage`] removes rows whose count
//! reached zero, with their files, and files without a row (a crash between the
//! file write and the commit) once older than a grace period; the node runs it at
//! start and periodically. A path that adds a reference to a file body must claim
//! the row and then check the file inside its transaction, as `acceptance` does.
//!
//! Modules, each using only those listed before it (besides the facade's types
//! here): `sql` (the pool and SQL dialects), `migrate` (embedded schemas), `blob`
//! (the blob folder), `password` (argon2id), `owned` (the SQL form of core's "the
//! queue still owns this record"), `directory` (domains, users, aliases, groups,
//! lookups), `mailbox` (folders, messages, MODSEQs and expunge tombstones,
//! subscriptions, Junk events: the SQL twin of `sluice_core::mailbox`),
//! `queue_columns` (the stored text forms of the queue's
//! DSN parameters and recipient states), `acceptance` (placing an accepted
//! message's body and staging its records), `append` (IMAP APPEND with its body),
//! `delivery_queue` (the delivery queue's
//! durable side: restore, bodies for attempts, listings, staging its decisions with
//! their notices), `commit` (the group commit every accepted message and every queue
//! decision goes through; on an SQLite file accepted messages are committed by a
//! writer thread with its own connection, and router lookups read through
//! connections of the store's own on the calling thread, because through sqlx every
//! statement costs two thread wake-ups), `garbage` (garbage collection of bodies),
//! `retention` (pruning the records of local copies once old).

mod acceptance;
mod append;
mod blob;
mod commit;
mod delivery_queue;
mod directory;
mod garbage;
mod mailbox;
mod migrate;
mod owned;
mod password;
mod queue_columns;
mod retention;
mod sql;
mod watch;

pub use append::Append;
pub use delivery_queue::QueuedBody;
pub use garbage::{Garbage, GarbageReport};
pub use mailbox::StoredJunkEvent;
pub use retention::PruneReport;
pub use sluice_core::node::{IncomingMessage, QueuedCopy, RoutedRecipient};
pub use sql::SqlEngine;
pub use watch::{MailboxListener, MailboxWatch};

use blob::BlobStore;
use commit::Committer;
use delivery_queue::QueueSelection;
use directory::Kind;
use sluice_core::directory::{DirectoryAnswer, DirectoryQuery};
use sluice_core::mailbox::{
    Changes, FolderEntry, FolderStatus, MailboxError, MailboxLimits, MessageObservation,
    Observation, Operation, Outcome, UserObservation,
};
use sluice_core::queue::{QueuedMessage, RecipientChange};
use sql::Db;
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a store operation failed. Names the thing that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite writer of the group commit, which has its own connection.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("blob store error at {path}: {source}")]
    Blob {
        path: String,
        source: std::io::Error,
    },
    /// Garbage collection removed a file body before its message committed
    /// (it was unreferenced then); `accept` writes it again.
    #[error("blob {0} was removed by garbage collection while its message was stored")]
    BlobRemoved(String),
    #[error("unsupported database URL {0:?}: use sqlite:, postgres: or mysql:")]
    UnsupportedUrl(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// A mailbox operation the mailbox model refuses (no such folder, …).
    #[error("{0}")]
    Mailbox(#[from] MailboxError),
    /// The store's background committer is gone (the runtime is shutting down).
    #[error("the store is shutting down")]
    Closed,
}

/// One message in a user's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub uid: u32,
    pub folder: String,
    pub queue_id: String,
    /// SHA-256 of the body, hex: the blob's name.
    pub blob: String,
    pub size: u64,
    pub flags: Vec<String>,
    pub internal_date_ms: i64,
    pub modseq: u64,
    /// The envelope sender (no angle brackets; empty for the null reverse-path
    /// and for APPEND): core's `mailbox::return_path_field` makes Return-Path of it.
    pub reverse_path: String,
}

/// One recipient record of the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub queue_id: String,
    pub reverse_path: String,
    pub recipient: String,
    /// `pending`, `deferred`, `delivered` or `failed`.
    pub state: String,
    pub received_at_ms: i64,
    /// Where a queued copy goes (core's text form); None for a copy written into a
    /// local mailbox at acceptance.
    pub destination: Option<String>,
    /// Temporary failures so far.
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
    /// The last outcome: status, the server that gave it, and its text.
    pub status: Option<String>,
    pub remote_mta: Option<String>,
    pub diagnostic: Option<String>,
}

/// The default of [`StoreOptions::inline_body_limit`]: 64 KiB holds most mail
/// (bodies the size of typical text and HTML messages) while keeping rows small.
pub const DEFAULT_INLINE_BODY_LIMIT: usize = 64 * 1024;
/// The largest [`StoreOptions::inline_body_limit`]: well below MySQL's default
/// `max_allowed_packet` (16 MiB), and large bodies belong in files anyway.
pub const MAX_INLINE_BODY_LIMIT: usize = 1024 * 1024;

/// How a store keeps bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bodies of at most this many octets are stored in the database, in the
    /// transaction that commits their records; larger ones are files. 0: every
    /// body is a file.
    pub inline_body_limit: usize,
    /// The bounds of mailbox state that grows with use (expunge tombstones,
    /// subscriptions), as core's mailbox model keeps them.
    pub mailbox_limits: MailboxLimits,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            inline_body_limit: DEFAULT_INLINE_BODY_LIMIT,
            mailbox_limits: MailboxLimits::default(),
        }
    }
}

/// The store: a connection pool, the blob folder and the group-commit task.
/// Cloning is cheap and shares all three.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    blobs: Arc<BlobStore>,
    committer: Committer,
    options: StoreOptions,
    watch: MailboxWatch,
}

/// Runs blocking blob-folder work off the async worker threads.
pub(crate) async fn blob_task<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Blob {
            path: "(blob folder task)".to_owned(),
            source: std::io::Error::other(error.to_string()),
        })?
}

/// Runs argon2 off the async worker threads.
async fn hash_password(password: &str) -> Result<String, StoreError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|error| error.to_string())
        .and_then(|hashed| hashed)
        .map_err(|reason| StoreError::Invalid {
            what: "password",
            reason,
        })
}

/// Seconds since the Unix epoch: the UIDVALIDITY base of a new user, so that a
/// user removed and created again does not reuse old UIDVALIDITY values.
fn uidvalidity_base_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX / 2))
        .unwrap_or(1)
}

impl Store {
    /// Connects to `database_url` (`sqlite:PATH?mode=rwc`, `postgres://…`, `mysql://…`),
    /// runs the migrations for that engine, and opens the blob folder, with the
    /// default [`StoreOptions`].
    /// Must be called inside a tokio runtime (it starts the group-commit task).
    pub async fn open(database_url: &str, blob_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(database_url, blob_dir, StoreOptions::default()).await
    }

    /// Like [`Store::open`], with options.
    pub async fn open_with(
        database_url: &str,
        blob_dir: &Path,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        if options.inline_body_limit > MAX_INLINE_BODY_LIMIT {
            return Err(StoreError::Invalid {
                what: "inline body limit",
                reason: format!(
                    "{} octets is above the maximum of {MAX_INLINE_BODY_LIMIT}",
                    options.inline_body_limit
                ),
            });
        }
        let blobs = Arc::new(BlobStore::open(blob_dir)?);
        let db = Db::connect(database_url).await?;
        migrate::run(&db).await?;
        Ok(Store {
            committer: Committer::spawn(db.clone(), Arc::clone(&blobs))?,
            db,
            blobs,
            options,
            watch: MailboxWatch::default(),
        })
    }

    /// Announces the mailbox changes this store commits (IMAP IDLE's wake-ups).
    pub fn watch(&self) -> &MailboxWatch {
        &self.watch
    }

    /// Announces a change of `user`'s mailboxes.
    fn announce(&self, user: &str) {
        self.watch.announce(&directory::lookup_key(user));
    }

    /// Announces the local recipients of a stored message.
    fn announce_local(&self, message: &IncomingMessage) {
        for recipient in &message.recipients {
            if let RoutedRecipient::Local { user, .. } = recipient {
                self.announce(user);
            }
        }
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Which SQL engine this store talks to.
    pub fn engine(&self) -> SqlEngine {
        self.db.engine
    }

    /// Answers one router lookup.
    pub async fn query(&self, query: &DirectoryQuery) -> Result<DirectoryAnswer, StoreError> {
        self.db.query(query).await
    }

    /// Checks a password; the user's canonical address if it is right.
    /// The username matches ASCII-case-insensitively (local part and domain).
    pub async fn verify_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, StoreError> {
        self.db.verify_credentials(username, password).await
    }

    /// Makes a message durable: a large body to the blob folder (fsynced), then in
    /// one transaction a small body, the queue records and, for local recipients,
    /// the mailbox entries. Idempotent per (queue id, recipient): a retried call
    /// never duplicates. Concurrent calls share transactions (group commit); each
    /// gets its own result.
    pub async fn accept(&self, message: &IncomingMessage) -> Result<(), StoreError> {
        commit::accept(
            &self.blobs,
            &self.committer,
            self.options.inline_body_limit,
            message,
        )
        .await?;
        self.announce_local(message);
        Ok(())
    }

    /// Every queued message with a recipient still to deliver, for the queue at start.
    pub async fn queued_messages(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        self.db.queued_messages().await
    }

    /// A queued message's body, as an attempt sends it.
    pub async fn queued_message(&self, queue_id: &str) -> Result<QueuedBody, StoreError> {
        let (blob, smtputf8) = self.db.queued_blob(queue_id).await?;
        Ok(QueuedBody {
            data: self.read_blob(&blob).await?,
            smtputf8,
        })
    }

    /// Writes the queue's decisions about `queue_id`'s recipients and, when the queue
    /// asked for one, stores the notice as a new message: all in one transaction, so
    /// that a failure is never durable without its notice, nor a notice without its
    /// failure. Concurrent calls (and accepts) share transactions (group commit); `Ok`
    /// once committed. Idempotent for the changes.
    pub async fn persist_queue(
        &self,
        queue_id: &str,
        changes: &[RecipientChange],
        notice: Option<&IncomingMessage>,
    ) -> Result<(), StoreError> {
        self.queue_write(queue_id, changes, notice, false).await
    }

    /// The queue's last decision about a message, whose recipients are all final
    /// with it: stores the notice (if any) and deletes the message, in one
    /// transaction, instead of writing the final states and then removing them.
    pub async fn finish_queued(
        &self,
        queue_id: &str,
        notice: Option<&IncomingMessage>,
    ) -> Result<(), StoreError> {
        self.queue_write(queue_id, &[], notice, true).await
    }

    async fn queue_write(
        &self,
        queue_id: &str,
        changes: &[RecipientChange],
        notice: Option<&IncomingMessage>,
        remove: bool,
    ) -> Result<(), StoreError> {
        commit::persist_queue(
            &self.blobs,
            &self.committer,
            self.options.inline_body_limit,
            queue_id,
            changes,
            notice,
            remove,
        )
        .await?;
        if let Some(notice) = notice {
            self.announce_local(notice);
        }
        Ok(())
    }

    /// Makes deferred recipients of `queue_id` (or of every message) due now, in the
    /// store; for `sluice queue retry|flush` when no server runs. The count changed.
    pub async fn retry_now(&self, queue_id: Option<&str>, now_ms: i64) -> Result<u64, StoreError> {
        self.db.retry_now(queue_id, now_ms).await
    }

    /// Deletes a finished (or administratively deleted) message from the queue.
    pub async fn remove_queued(&self, queue_id: &str) -> Result<(), StoreError> {
        self.finish_queued(queue_id, None).await
    }

    /// The messages in one folder of a user, by UID.
    pub async fn folder_messages(
        &self,
        user: &str,
        folder: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.db.folder_messages(user, folder).await
    }

    /// A body by its blob name: from its row if stored inline, else its file.
    pub async fn read_blob(&self, blob: &str) -> Result<Vec<u8>, StoreError> {
        if !blob::is_blob_name(blob) {
            return Err(StoreError::Invalid {
                what: "blob name",
                reason: format!("{blob:?} is not a SHA-256 hex digest"),
            });
        }
        let row = sqlx::query(
            &self
                .db
                .sql("SELECT content FROM blobs WHERE blob_sha256 = ?"),
        )
        .bind(blob)
        .fetch_optional(&self.db.pool)
        .await?;
        if let Some(row) = row
            && let Some(content) = row.try_get::<Option<Vec<u8>>, _>("content")?
        {
            return Ok(content);
        }
        let blobs = Arc::clone(&self.blobs);
        let blob = blob.to_owned();
        blob_task(move || blobs.get(&blob)).await
    }

    /// Where a blob's file is or would be (None for a malformed name). A body
    /// stored inline has no file.
    pub fn blob_path(&self, blob: &str) -> Option<PathBuf> {
        self.blobs.path(blob)
    }

    /// Whether a body is stored inline in its row (None: no such row).
    pub async fn blob_is_inline(&self, blob: &str) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query(&self.db.sql(
            "SELECT CASE WHEN content IS NULL THEN 0 ELSE 1 END AS inline FROM blobs \
             WHERE blob_sha256 = ?",
        ))
        .bind(blob)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(sql::int(&row, "inline")? == 1)),
            None => Ok(None),
        }
    }

    /// Removes unreferenced bodies: blob rows at reference count 0 with their
    /// files, and files that no row names or temp files, once their modification
    /// time is at least `grace` ago (a younger one may be a body being accepted).
    /// Safe to run while accepting; works in bounded batches.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GarbageReport, StoreError> {
        garbage::collect(&self.db, &self.blobs, grace).await
    }

    /// Deletes the records of copies written into local mailboxes of messages that
    /// arrived before `arrived_before_ms` (milliseconds since the Unix epoch): their
    /// queue records and their delivery keys. A message redelivered after that is
    /// no longer recognised, so the retention must outlast any sender's retries.
    /// Records the queue still needs are kept. Safe to run while accepting.
    pub async fn prune_delivery_records(
        &self,
        arrived_before_ms: i64,
    ) -> Result<PruneReport, StoreError> {
        retention::prune(&self.db, arrived_before_ms).await
    }

    /// Up to `limit` candidates of [`Store::collect_garbage`], without removing
    /// anything (a dry run).
    pub async fn find_garbage(
        &self,
        grace: Duration,
        limit: usize,
    ) -> Result<Vec<Garbage>, StoreError> {
        garbage::find(&self.db, &self.blobs, grace, limit).await
    }

    /// Removes what [`Store::find_garbage`] found, each candidate only if it is
    /// still garbage (a body referenced again since the scan is kept).
    pub async fn remove_garbage(&self, found: &[Garbage]) -> Result<GarbageReport, StoreError> {
        garbage::remove(&self.db, &self.blobs, found).await
    }

    /// A blob's reference count (mailbox entries plus pending queue records), if known.
    pub async fn blob_refcount(&self, blob: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            &self
                .db
                .sql("SELECT refcount FROM blobs WHERE blob_sha256 = ?"),
        )
        .bind(blob)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(sql::int(&row, "refcount")?)),
            None => Ok(None),
        }
    }

    /// Every queue record, oldest first: the queue, and the record of every copy
    /// written into a local mailbox at acceptance.
    pub async fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        self.db.queue_entries(QueueSelection::All).await
    }

    /// The records of the messages still in the queue (a recipient not final, or a
    /// success notice owed), oldest first: what `sluice queue list` shows.
    pub async fn queued_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        self.db.queue_entries(QueueSelection::Outstanding).await
    }

    /// The records of one message, oldest first.
    pub async fn entries_of(&self, queue_id: &str) -> Result<Vec<QueueEntry>, StoreError> {
        self.db
            .queue_entries(QueueSelection::Message(queue_id))
            .await
    }

    // Mailboxes: the operations of `sluice_core::mailbox`, with the model's results.

    /// Applies one mailbox operation in its own transaction. A refusal
    /// ([`StoreError::Mailbox`]) changes nothing. `AddUser` creates a user
    /// without a password (it cannot log in until [`Store::set_password`]).
    pub async fn apply(&self, operation: &Operation) -> Result<Outcome, StoreError> {
        if let Operation::AddUser {
            user,
            uidvalidity_base,
        } = operation
        {
            return match self
                .db
                .add_user_with_hash(user, None, *uidvalidity_base)
                .await
            {
                Ok(_) => Ok(Outcome::UserAdded),
                Err(StoreError::AlreadyExists(_)) => {
                    Err(MailboxError::UserExists(user.clone()).into())
                }
                Err(error) => Err(error),
            };
        }
        // A deadlock or a concurrent duplicate on PostgreSQL/MySQL: try again
        // from scratch, as the accept path does.
        let outcome = sql::with_retries(|| self.apply_once(operation)).await?;
        self.announce(operation.user());
        Ok(outcome)
    }

    async fn apply_once(&self, operation: &Operation) -> Result<Outcome, StoreError> {
        let mut tx = self.db.begin_write().await?;
        match mailbox::apply(&self.db, &mut tx, &self.options.mailbox_limits, operation).await? {
            Ok(outcome) => {
                tx.commit().await?;
                Ok(outcome)
            }
            // Dropping the transaction rolls it back.
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Removes exactly these messages of a folder, durably, in one transaction
    /// (POP3's UPDATE state): other messages flagged `\Deleted` stay. UIDs already
    /// gone are skipped; returns the UIDs removed.
    pub async fn remove_messages(
        &self,
        user: &str,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>, StoreError> {
        sql::with_retries(|| async {
            let mut tx = self.db.begin_write().await?;
            let removed = mailbox::remove_uids(
                &self.db,
                &mut tx,
                &self.options.mailbox_limits,
                user,
                folder,
                uids,
            )
            .await??;
            tx.commit().await?;
            Ok(removed)
        })
        .await
        .inspect(|_| self.announce(user))
    }

    /// IMAP APPEND: stores the body (inline or as a durable file, as for an
    /// accepted message) and the message in the folder, with the flags and
    /// internal date given and no envelope sender. `Outcome::Appended` carries
    /// APPENDUID's values; a missing folder is `MailboxError::NoSuchFolder`
    /// (TRYCREATE), and a refusal stores nothing but a body file for garbage
    /// collection.
    pub async fn append(&self, append: &Append<'_>) -> Result<Outcome, StoreError> {
        let outcome = append::append(
            &self.db,
            &self.blobs,
            &self.options.mailbox_limits,
            self.options.inline_body_limit,
            append,
        )
        .await?;
        self.announce(append.user);
        Ok(outcome)
    }

    /// SELECT's and STATUS's view of a folder (UIDVALIDITY, UIDNEXT,
    /// HIGHESTMODSEQ, counts, size); a missing user or folder is the model's
    /// refusal ([`StoreError::Mailbox`]).
    pub async fn folder_status(
        &self,
        user: &str,
        folder: &str,
    ) -> Result<FolderStatus, StoreError> {
        self.db.folder_status(user, folder).await
    }

    /// What changed in a folder after `modseq` (CONDSTORE CHANGEDSINCE, QRESYNC):
    /// messages added or changed since, UIDs expunged since, the folder's status.
    pub async fn changes_since(
        &self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, StoreError> {
        self.db.changes_since(user, folder, modseq).await
    }

    /// A user's folders with their special use (LIST), by name in byte order.
    pub async fn folder_entries(&self, user: &str) -> Result<Vec<FolderEntry>, StoreError> {
        self.db.folder_entries(user).await
    }

    /// The messages of a folder whose UID is in `from..=to`, by UID (IMAP's
    /// reads of metadata); a missing user or folder is the model's refusal.
    pub async fn folder_observations(
        &self,
        user: &str,
        folder: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<MessageObservation>, StoreError> {
        self.db.folder_observations(user, folder, from, to).await
    }

    /// A user's subscribed names (LSUB, LIST (SUBSCRIBED)), in byte order.
    pub async fn subscriptions(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.db.subscriptions(user).await
    }

    /// Up to `limit` Junk events recorded after the one numbered `after_id` (0:
    /// from the first), oldest first: what the classifier reads.
    pub async fn junk_events(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredJunkEvent>, StoreError> {
        self.db.junk_events(after_id, limit).await
    }

    /// Deletes the Junk events numbered up to `up_to_id`, those the classifier
    /// has read; how many went.
    pub async fn forget_junk_events(&self, up_to_id: i64) -> Result<u64, StoreError> {
        self.db.forget_junk_events(up_to_id).await
    }

    /// One user's folders and messages, in the model's canonical form.
    pub async fn observe_user(&self, user: &str) -> Result<UserObservation, StoreError> {
        self.db.observe_user(user).await
    }

    /// Every user's folders and messages, keyed by canonical address.
    pub async fn observe(&self) -> Result<Observation, StoreError> {
        let mut observation = Observation::default();
        for user in self.db.list_kind(Kind::User).await? {
            let folders = self.db.observe_user(&user).await?;
            observation.users.insert(user, folders);
        }
        Ok(observation)
    }

    // Administration: domains, users, aliases, groups.

    pub async fn add_domain(&self, name: &str) -> Result<(), StoreError> {
        self.db.add_domain(name).await
    }
    /// Refuses (Invalid) while the domain still has users, aliases or groups.
    pub async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        self.db.remove_domain(name).await
    }
    pub async fn list_domains(&self) -> Result<Vec<String>, StoreError> {
        self.db.list_domains().await
    }
    /// Sets the catch-all target of a domain (None removes it).
    pub async fn set_catch_all(
        &self,
        domain: &str,
        target: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.set_catch_all(domain, target).await
    }
    /// Creates a user (argon2id hash) with INBOX, Sent, Drafts, Junk, Trash and Archive.
    pub async fn add_user(&self, address: &str, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password).await?;
        self.add_user_with_hash(address, &hash).await
    }
    /// Creates a user from an existing argon2 PHC string (imports, or tests that
    /// create many users without paying for a hash each).
    pub async fn add_user_with_hash(
        &self,
        address: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        self.db
            .add_user_with_hash(address, Some(password_hash), uidvalidity_base_now())
            .await
            .map(|_| ())
    }
    /// The argon2id PHC string of a password, as `add_user_with_hash` expects it.
    pub async fn hash_password(password: &str) -> Result<String, StoreError> {
        hash_password(password).await
    }
    pub async fn set_password(&self, address: &str, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password).await?;
        self.db.set_password_hash(address, &hash).await
    }
    pub async fn remove_user(&self, address: &str) -> Result<(), StoreError> {
        self.db.remove_user(address).await
    }
    pub async fn list_users(&self) -> Result<Vec<String>, StoreError> {
        self.db.list_kind(Kind::User).await
    }
    pub async fn add_alias(&self, alias: &str, targets: &[String]) -> Result<(), StoreError> {
        self.db.add_with_targets(alias, targets, Kind::Alias).await
    }
    pub async fn remove_alias(&self, alias: &str) -> Result<(), StoreError> {
        self.db.remove_with_targets(alias, Kind::Alias).await
    }
    /// Every alias with its targets.
    pub async fn list_aliases(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.db.list_with_targets(Kind::Alias).await
    }
    pub async fn add_group(&self, group: &str, members: &[String]) -> Result<(), StoreError> {
        self.db.add_with_targets(group, members, Kind::Group).await
    }
    pub async fn add_group_member(&self, group: &str, member: &str) -> Result<(), StoreError> {
        self.db.add_group_member(group, member).await
    }
    pub async fn remove_group_member(&self, group: &str, member: &str) -> Result<(), StoreError> {
        self.db.remove_group_member(group, member).await
    }
    pub async fn remove_group(&self, group: &str) -> Result<(), StoreError> {
        self.db.remove_with_targets(group, Kind::Group).await
    }
    /// Every group with its members.
    pub async fn list_groups(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.db.list_with_targets(Kind::Group).await
    }
}
