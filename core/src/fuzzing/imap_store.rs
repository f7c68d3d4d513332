//! A test store: answers the IMAP session's mailbox requests from core's reference
//! `MailboxModel`, through `imap::backend` (the same answering every store uses),
//! with message bytes kept by blob name. Shared by the session's unit tests, the
//! `imap_session` fuzz target and the IMAP conformance vectors (sluice-spec), so that
//! all three answer requests the same way.

use crate::imap::backend::{self, ModelStore};
use crate::imap::request::{MailboxAnswer, MailboxRequest};
use crate::mailbox::{MailboxError, MailboxModel, Operation, Outcome};
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
        let blob = self.new_blob_name();
        self.keep_body(blob.clone(), bytes.to_vec());
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

impl ModelStore for TestStore {
    fn model(&mut self) -> &mut MailboxModel {
        &mut self.model
    }

    fn new_blob_name(&mut self) -> String {
        self.deliveries += 1;
        format!("blob-{}", self.deliveries)
    }

    fn keep_body(&mut self, blob: String, bytes: Vec<u8>) {
        self.blobs.insert(blob, bytes);
    }

    fn body(&mut self, blob: &str) -> Option<Vec<u8>> {
        self.content_requests += 1;
        self.blobs.get(blob).cloned()
    }
}
