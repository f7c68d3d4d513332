//! The host's durable store as core's `imap::backend::MailboxBackend`: the facts
//! IMAP reads and the operations it applies, on the store's `MailboxModel` and the
//! bodies it keeps. I/O, not a decision: core's `answer` turns each request into
//! these calls (net's SQL store implements the same trait), and the host calls it
//! only on what is durable (`imap.rs`).

use super::store::Store;
use sluice_core::imap::backend::{self, BackendError, FolderEntry, MailboxBackend, NewMessage};
use sluice_core::imap::request::{MailboxAnswer, MailboxRequest, UidSet};
use sluice_core::mailbox::{Changes, FolderStatus, MessageObservation, Operation, Outcome};

impl Store {
    /// Core's answer to one IMAP request of `user`, on this store now.
    pub fn answer_imap(
        &mut self,
        user: &str,
        request: MailboxRequest,
        now_ms: i64,
    ) -> MailboxAnswer {
        backend::answer_now(self, user, request, now_ms)
    }

    /// A copy of the mailboxes without the bodies or queue records, to answer a
    /// flag change on (the `ack-flags-before-durability` bug).
    pub fn scratch_copy(&self) -> Store {
        Store {
            mailboxes: self.mailboxes.clone(),
            ..Store::default()
        }
    }
}

/// The `renumber-uids-after-restart` bug: the mailboxes rebuilt from the messages
/// they hold, each folder numbered from 1 again under its old UIDVALIDITY (as a
/// store that re-indexes its mail and forgets UIDNEXT would).
pub(super) fn renumbered(store: &Store, users: &[String]) -> sluice_core::mailbox::MailboxModel {
    let before = store.mailboxes.observe();
    let mut rebuilt = Store::with_users(users).mailboxes;
    for (user, account) in &before.users {
        for (name, folder) in &account.folders {
            for message in &folder.messages {
                let delivered = rebuilt.apply(&Operation::Deliver {
                    user: user.clone(),
                    delivery_key: format!("{name}/{}/{}", message.uid, message.blob),
                    blob: message.blob.clone(),
                    size: message.size,
                    internal_date_ms: message.internal_date_ms,
                    reverse_path: message.reverse_path.clone(),
                });
                let Ok(Outcome::Delivered { uid }) = delivered else {
                    continue;
                };
                let uid = if name == sluice_core::mailbox::INBOX {
                    uid
                } else {
                    match rebuilt.apply(&Operation::Move {
                        user: user.clone(),
                        from: sluice_core::mailbox::INBOX.to_owned(),
                        to: name.clone(),
                        uids: vec![uid],
                        at_ms: 0,
                    }) {
                        Ok(Outcome::Moved { uids, .. }) => uids.first().map_or(uid, |pair| pair.1),
                        _ => continue,
                    }
                };
                let _ = rebuilt.apply(&Operation::StoreFlags {
                    user: user.clone(),
                    folder: name.clone(),
                    uids: vec![uid],
                    mode: sluice_core::mailbox::FlagMode::Set,
                    flags: message.flags.clone(),
                    unchanged_since: None,
                });
            }
        }
    }
    rebuilt
}

impl MailboxBackend for Store {
    async fn apply(&mut self, operation: Operation) -> Result<Outcome, BackendError> {
        Ok(self.mailboxes.apply(&operation)?)
    }

    async fn append(&mut self, message: NewMessage) -> Result<Outcome, BackendError> {
        self.appended += 1;
        let blob = format!("appended-{}", self.appended);
        let size = message.bytes.len() as u64;
        let outcome = self.mailboxes.apply(&Operation::Append {
            user: message.user,
            folder: message.folder,
            flags: message.flags,
            internal_date_ms: message.internal_date_ms,
            blob: blob.clone(),
            size,
        })?;
        self.bodies.insert(blob, message.bytes);
        Ok(outcome)
    }

    async fn status(&mut self, user: &str, folder: &str) -> Result<FolderStatus, BackendError> {
        Ok(self.mailboxes.status(user, folder)?)
    }

    async fn changes_since(
        &mut self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, BackendError> {
        Ok(self.mailboxes.changes_since(user, folder, modseq)?)
    }

    async fn folders(&mut self, user: &str) -> Result<Vec<FolderEntry>, BackendError> {
        Ok(self.mailboxes.folders(user)?)
    }

    async fn subscriptions(&mut self, user: &str) -> Result<Vec<String>, BackendError> {
        Ok(self.mailboxes.subscriptions(user)?)
    }

    async fn messages(
        &mut self,
        user: &str,
        folder: &str,
        uids: Option<&UidSet>,
    ) -> Result<Vec<MessageObservation>, BackendError> {
        Ok(self
            .mailboxes
            .messages(user, folder, |uid| uids.is_none_or(|set| set.contains(uid)))?)
    }

    async fn content(&mut self, blob: &str) -> Result<Vec<u8>, BackendError> {
        self.bodies
            .get(blob)
            .cloned()
            .ok_or_else(|| BackendError::Unavailable(format!("no body {blob}")))
    }
}
