//! The host's durable store as core's `imap::backend::MailboxBackend` (through
//! core's `ModelStore`: the store's `MailboxModel` and the bodies it keeps). I/O, not a decision: core's `answer` turns each request into
//! these calls (net's SQL store implements the same trait), and the host calls it
//! only on what is durable (`imap.rs`).

use super::store::Store;
use sluice_core::imap::backend::{self, ModelStore};
use sluice_core::imap::request::{MailboxAnswer, MailboxRequest};
use sluice_core::mailbox::{MailboxModel, Operation, Outcome};

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

impl ModelStore for Store {
    fn model(&mut self) -> &mut MailboxModel {
        &mut self.mailboxes
    }

    fn new_blob_name(&mut self) -> String {
        self.appended += 1;
        format!("appended-{}", self.appended)
    }

    fn keep_body(&mut self, blob: String, bytes: Vec<u8>) {
        self.bodies.insert(blob, bytes);
    }

    fn body(&mut self, blob: &str) -> Option<Vec<u8>> {
        self.bodies.get(blob).cloned()
    }
}
