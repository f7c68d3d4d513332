//! The SQL store as core's IMAP [`MailboxBackend`]: each fact core's `answer`
//! asks for, read or written through [`Store`]. I/O only; how a request becomes
//! these calls, and their results an answer, is core's (`imap::backend`).

use crate::store::{Append, Store, StoreError};
use sluice_core::imap::backend::{BackendError, FolderEntry, MailboxBackend, NewMessage};
use sluice_core::imap::request::UidSet;
use sluice_core::mailbox::{Changes, FolderStatus, MessageObservation, Operation, Outcome};

/// One session's access to the store.
#[derive(Clone, Debug)]
pub struct StoreBackend {
    pub store: Store,
}

/// A refusal of the mailbox rules stays one; anything else is the store failing.
fn backend_error(error: StoreError) -> BackendError {
    match error {
        StoreError::Mailbox(refusal) => BackendError::Refused(refusal),
        other => {
            tracing::warn!(error = %other, "mailbox store failed");
            BackendError::Unavailable(other.to_string())
        }
    }
}

impl MailboxBackend for StoreBackend {
    async fn apply(&mut self, operation: Operation) -> Result<Outcome, BackendError> {
        self.store.apply(&operation).await.map_err(backend_error)
    }

    async fn append(&mut self, message: NewMessage) -> Result<Outcome, BackendError> {
        self.store
            .append(&Append {
                user: &message.user,
                folder: &message.folder,
                flags: &message.flags,
                internal_date_ms: message.internal_date_ms,
                body: &message.bytes,
            })
            .await
            .map_err(backend_error)
    }

    async fn status(&mut self, user: &str, folder: &str) -> Result<FolderStatus, BackendError> {
        self.store
            .folder_status(user, folder)
            .await
            .map_err(backend_error)
    }

    async fn changes_since(
        &mut self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, BackendError> {
        self.store
            .changes_since(user, folder, modseq)
            .await
            .map_err(backend_error)
    }

    async fn folders(&mut self, user: &str) -> Result<Vec<FolderEntry>, BackendError> {
        self.store.folder_entries(user).await.map_err(backend_error)
    }

    async fn subscriptions(&mut self, user: &str) -> Result<Vec<String>, BackendError> {
        self.store.subscriptions(user).await.map_err(backend_error)
    }

    /// One range query from the set's lowest to its highest UID, filtered here: a
    /// session's sets are mostly one range (`1:*`, a FETCH batch).
    async fn messages(
        &mut self,
        user: &str,
        folder: &str,
        uids: Option<&UidSet>,
    ) -> Result<Vec<MessageObservation>, BackendError> {
        let (from, to) = match uids.map(UidSet::ranges) {
            None => (1, u32::MAX),
            Some([]) => return Ok(Vec::new()),
            Some(ranges) => (ranges[0].0, ranges[ranges.len() - 1].1),
        };
        let mut messages = self
            .store
            .folder_observations(user, folder, from, to)
            .await
            .map_err(backend_error)?;
        if let Some(uids) = uids {
            messages.retain(|message| uids.contains(message.uid));
        }
        Ok(messages)
    }

    async fn content(&mut self, blob: &str) -> Result<Vec<u8>, BackendError> {
        self.store.read_blob(blob).await.map_err(backend_error)
    }
}
