//! Durable storage: the user directory, mailboxes, the queue of accepted messages,
//! through sqlx on SQLite (embedded default), PostgreSQL or MySQL/MariaDB, with
//! message bodies as content-addressed files in a blob folder.
//!
//! The one promise this module keeps for everybody else: when [`Store::accept`]
//! returns `Ok`, the body is fsynced in the blob folder and the message's records
//! are committed, so the session may answer 250.

use sluice_core::directory::{DirectoryAnswer, DirectoryQuery};
use std::path::Path;

/// Why a store operation failed. Names the thing that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("blob store error at {path}: {source}")]
    Blob {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported database URL {0:?}: use sqlite:, postgres: or mysql:")]
    UnsupportedUrl(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// A message the SMTP side accepted, routed, ready to be made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The queue id the session will announce (`250 2.0.0 ok: queued as <id>`).
    pub queue_id: String,
    /// `<>` or `<mailbox>`, as on the wire.
    pub reverse_path: String,
    /// When the message was accepted, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    pub recipients: Vec<RoutedRecipient>,
    /// The whole message as stored: the Received header followed by what the client sent.
    pub data: Vec<u8>,
}

/// Where one envelope recipient goes, as decided by the core router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutedRecipient {
    /// Into the INBOX of a local user (canonical address); `original` is the RCPT address.
    Local { user: String, original: String },
    /// To an external address, queued for the delivery tier.
    External { address: String, original: String },
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
}

/// One recipient record of the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub queue_id: String,
    pub reverse_path: String,
    pub recipient: String,
    /// `delivered` (to a local mailbox) or `pending` (external, awaiting delivery).
    pub state: String,
    pub received_at_ms: i64,
}

/// The store: a connection pool and the blob folder.
#[derive(Debug, Clone)]
pub struct Store {}

impl Store {
    /// Connects to `database_url` (`sqlite:PATH?mode=rwc`, `postgres://…`, `mysql://…`),
    /// runs the migrations for that backend, and opens the blob folder.
    pub async fn open(database_url: &str, blob_dir: &Path) -> Result<Store, StoreError> {
        let _ = (database_url, blob_dir);
        todo!("store")
    }

    /// Answers one router lookup.
    pub async fn query(&self, query: &DirectoryQuery) -> Result<DirectoryAnswer, StoreError> {
        let _ = query;
        todo!("store")
    }

    /// Checks a password; the user's canonical address if it is right.
    pub async fn verify_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, StoreError> {
        let _ = (username, password);
        todo!("store")
    }

    /// Makes a message durable: body to the blob folder (fsynced), then in one
    /// transaction the queue records and, for local recipients, the mailbox entries.
    /// Idempotent per (queue id, recipient): a retried call never duplicates.
    pub async fn accept(&self, message: &IncomingMessage) -> Result<(), StoreError> {
        let _ = message;
        todo!("store")
    }

    /// The messages in one folder of a user, by UID.
    pub async fn folder_messages(
        &self,
        user: &str,
        folder: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let _ = (user, folder);
        todo!("store")
    }

    /// A body by its blob name.
    pub async fn read_blob(&self, blob: &str) -> Result<Vec<u8>, StoreError> {
        let _ = blob;
        todo!("store")
    }

    /// Every queue record, oldest first.
    pub async fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        todo!("store")
    }

    // Administration: domains, users, aliases, groups.

    pub async fn add_domain(&self, name: &str) -> Result<(), StoreError> {
        let _ = name;
        todo!("store")
    }
    pub async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        let _ = name;
        todo!("store")
    }
    pub async fn list_domains(&self) -> Result<Vec<String>, StoreError> {
        todo!("store")
    }
    /// Sets the catch-all target of a domain (None removes it).
    pub async fn set_catch_all(
        &self,
        domain: &str,
        target: Option<&str>,
    ) -> Result<(), StoreError> {
        let _ = (domain, target);
        todo!("store")
    }
    /// Creates a user (argon2id hash) with INBOX, Sent, Drafts, Junk, Trash and Archive.
    pub async fn add_user(&self, address: &str, password: &str) -> Result<(), StoreError> {
        let _ = (address, password);
        todo!("store")
    }
    pub async fn set_password(&self, address: &str, password: &str) -> Result<(), StoreError> {
        let _ = (address, password);
        todo!("store")
    }
    pub async fn remove_user(&self, address: &str) -> Result<(), StoreError> {
        let _ = address;
        todo!("store")
    }
    pub async fn list_users(&self) -> Result<Vec<String>, StoreError> {
        todo!("store")
    }
    pub async fn add_alias(&self, alias: &str, targets: &[String]) -> Result<(), StoreError> {
        let _ = (alias, targets);
        todo!("store")
    }
    pub async fn remove_alias(&self, alias: &str) -> Result<(), StoreError> {
        let _ = alias;
        todo!("store")
    }
    /// Every alias with its targets.
    pub async fn list_aliases(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        todo!("store")
    }
    pub async fn add_group(&self, group: &str, members: &[String]) -> Result<(), StoreError> {
        let _ = (group, members);
        todo!("store")
    }
    pub async fn add_group_member(&self, group: &str, member: &str) -> Result<(), StoreError> {
        let _ = (group, member);
        todo!("store")
    }
    pub async fn remove_group_member(&self, group: &str, member: &str) -> Result<(), StoreError> {
        let _ = (group, member);
        todo!("store")
    }
    pub async fn remove_group(&self, group: &str) -> Result<(), StoreError> {
        let _ = group;
        todo!("store")
    }
    /// Every group with its members.
    pub async fn list_groups(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        todo!("store")
    }
}
