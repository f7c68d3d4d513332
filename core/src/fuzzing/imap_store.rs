//! A test store: answers the IMAP session's mailbox requests from core's reference
//! `MailboxModel`, through `imap::backend` (the same answering every store uses),
//! with message bytes kept by blob name. Shared by the session's unit tests, the
//! `imap_session` fuzz target and the IMAP conformance vectors (sluice-spec), so that
//! all three answer requests the same way.

use crate::imap::backend::{self, BackendError, FolderEntry, MailboxBackend, NewMessage};
use crate::imap::request::{MailboxAnswer, MailboxRequest, UidSet};
use crate::mailbox::{
    Changes, FolderStatus, MailboxError, MailboxModel, MessageObservation, Operation, Outcome,
};
use std::collections::BTreeMap;

/// The time every test store answer is given at (APPEND's default date).
const NOW_MS: i64 = 1_700_000_000_000;

/// The store: the model, and the bytes of each blob. Panics on a failed delivery
/// (test code).
#[derive(Debug, Default)]
pub struct TestStore {
    model: MailboxModel,
    blobs: BTreeMap<String, Vec<u8>>,
    deliveries: u64,
    /// How many times a message's bytes were asked for (SEARCH on metadata asks none).
    pub content_requests: u64,
}

impl TestStore {
    pub fn with_user(user: &str) -> TestStore {
        let mut store = TestStore::default();
        store
            .apply(&Operation::AddUser {
                user: user.to_owned(),
                uidvalidity_base: 1000,
            })
            .expect("user added");
        store
    }

    /// A message delivered to INBOX, as the SMTP side would.
    pub fn deliver(&mut self, user: &str, bytes: &[u8]) -> u32 {
        self.deliver_from(user, "", bytes)
    }

    /// A message delivered to INBOX with this envelope sender.
    pub fn deliver_from(&mut self, user: &str, sender: &str, bytes: &[u8]) -> u32 {
        let blob = self.keep(bytes);
        match self.apply(&Operation::Deliver {
            reverse_path: sender.to_owned(),
            user: user.to_owned(),
            delivery_key: blob.clone(),
            blob,
            size: bytes.len() as u64,
            internal_date_ms: NOW_MS,
        }) {
            Ok(Outcome::Delivered { uid }) => uid,
            other => panic!("delivery failed: {other:?}"),
        }
    }

    /// Keeps a body under a fresh blob name.
    fn keep(&mut self, bytes: &[u8]) -> String {
        self.deliveries += 1;
        let blob = format!("blob-{}", self.deliveries);
        self.blobs.insert(blob.clone(), bytes.to_vec());
        blob
    }

    /// The UIDs in the user's INBOX now.
    pub fn inbox_uids(&self, user: &str) -> Vec<u32> {
        self.model
            .observe()
            .users
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(user))
            .and_then(|(_, account)| account.folders.get("INBOX"))
            .map(|folder| folder.messages.iter().map(|m| m.uid).collect())
            .unwrap_or_default()
    }

    /// Applies an operation directly (another session's doing).
    pub fn apply(&mut self, operation: &Operation) -> Result<Outcome, MailboxError> {
        self.model.apply(operation)
    }

    /// The answer to one request, as a driver would give it.
    pub fn answer(&mut self, user: &str, request: MailboxRequest) -> MailboxAnswer {
        backend::answer_now(self, user, request, NOW_MS)
    }
}

impl MailboxBackend for TestStore {
    async fn apply(&mut self, operation: Operation) -> Result<Outcome, BackendError> {
        Ok(self.model.apply(&operation)?)
    }

    async fn append(&mut self, message: NewMessage) -> Result<Outcome, BackendError> {
        let blob = self.keep(&message.bytes);
        Ok(self.model.apply(&Operation::Append {
            user: message.user,
            folder: message.folder,
            flags: message.flags,
            internal_date_ms: message.internal_date_ms,
            size: message.bytes.len() as u64,
            blob,
        })?)
    }

    async fn status(&mut self, user: &str, folder: &str) -> Result<FolderStatus, BackendError> {
        Ok(self.model.status(user, folder)?)
    }

    async fn changes_since(
        &mut self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, BackendError> {
        Ok(self.model.changes_since(user, folder, modseq)?)
    }

    async fn folders(&mut self, user: &str) -> Result<Vec<FolderEntry>, BackendError> {
        Ok(self.model.folders(user)?)
    }

    async fn subscriptions(&mut self, user: &str) -> Result<Vec<String>, BackendError> {
        Ok(self.model.subscriptions(user)?)
    }

    async fn messages(
        &mut self,
        user: &str,
        folder: &str,
        uids: Option<&UidSet>,
    ) -> Result<Vec<MessageObservation>, BackendError> {
        Ok(self
            .model
            .messages(user, folder, |uid| uids.is_none_or(|set| set.contains(uid)))?)
    }

    async fn content(&mut self, blob: &str) -> Result<Vec<u8>, BackendError> {
        self.content_requests += 1;
        self.blobs
            .get(blob)
            .cloned()
            .ok_or_else(|| BackendError::Unavailable(format!("no blob {blob}")))
    }
}
