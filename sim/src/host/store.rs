//! The durable state of a Sluice host as the simulated disk holds it: stored
//! messages with their queue records, and the mailboxes (core's mailbox model,
//! whose delivery is idempotent per delivery key). A `Write` is one transaction,
//! applied whole when its fsync completes — net's store transactions in miniature.
//! I/O, not a decision (net's `store::Store::accept`, `persist_queue`,
//! `remove_queued`, `queued_messages`): core's record of an accepted message is
//! written as it stands, local copies with its delivery key in the same transaction
//! as the queue record.

use sluice_core::mailbox::{MailboxModel, Operation, Outcome};
use sluice_core::node::{IncomingMessage as Incoming, RoutedRecipient};
use sluice_core::queue::{QueuedMessage, QueuedRecipient, RecipientChange};
use std::collections::BTreeMap;

/// One stored message.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub data: Vec<u8>,
    /// The message was accepted with SMTPUTF8 and needs it onward.
    pub smtputf8: bool,
    /// The queue's record while it has queued copies.
    pub queued: Option<QueuedMessage>,
}

/// One transaction.
#[derive(Clone, Debug)]
pub enum Write {
    /// An accepted message: its local copies delivered and its queue record, together.
    Accept {
        incoming: Incoming,
        queued: Option<QueuedMessage>,
    },
    /// Recipient states of a queued message and, with them, a notice to store.
    Persist {
        queue_id: String,
        changes: Vec<RecipientChange>,
        /// Recipients dropped from the record (only the deliberate bug does this).
        dropped: Vec<String>,
        notice: Option<(Incoming, Option<QueuedMessage>)>,
        /// Every recipient is final: the message goes in this same write (as net
        /// deletes it in the same transaction).
        remove: bool,
    },
    Remove {
        queue_id: String,
    },
    /// An IMAP session's request that changes the mailboxes, carried out when the
    /// write is durable (`answer_imap`), at the host's clock when it was asked.
    Imap {
        user: String,
        request: sluice_core::imap::request::MailboxRequest,
        now_ms: i64,
    },
}

/// A delivery into a local mailbox, as the commit of a write made it.
#[derive(Clone, Debug)]
pub struct MailboxDelivery {
    pub user: String,
    pub queue_id: String,
    /// False when the delivery key had been delivered before (idempotent redelivery).
    pub new: bool,
}

/// The durable state.
#[derive(Debug, Default)]
pub struct Store {
    pub messages: BTreeMap<String, StoredMessage>,
    pub mailboxes: MailboxModel,
    /// Mailbox contents by (user, queue id of the stored copy): the data delivered.
    pub delivered: BTreeMap<(String, String), Vec<u8>>,
    /// The bodies the mailboxes' messages name, by blob: a delivered message's
    /// queue id, or an appended one's own name.
    pub bodies: BTreeMap<String, Vec<u8>>,
    /// Bodies appended so far (their blob names are numbered).
    pub appended: u64,
}

impl Store {
    /// A store whose mailboxes hold `users`.
    pub fn with_users(users: &[String]) -> Store {
        let mut store = Store::default();
        for (index, user) in users.iter().enumerate() {
            let _ = store.mailboxes.apply(&Operation::AddUser {
                user: user.clone(),
                uidvalidity_base: u32::try_from(index * 16 + 1).unwrap_or(1),
            });
        }
        store
    }

    /// Applies a committed write; the mailbox deliveries it made.
    pub fn apply(&mut self, write: Write) -> Vec<MailboxDelivery> {
        match write {
            Write::Accept { incoming, queued } => self.accept(incoming, queued),
            Write::Persist {
                queue_id,
                changes,
                dropped,
                notice,
                remove,
            } => {
                if let Some(record) = self
                    .messages
                    .get_mut(&queue_id)
                    .and_then(|message| message.queued.as_mut())
                {
                    for change in changes {
                        if let Some(recipient) = record
                            .recipients
                            .iter_mut()
                            .find(|recipient| recipient.address == change.address)
                        {
                            recipient.state = change.state;
                            recipient.delay_notified = change.delay_notified;
                            recipient.success_owed = change.success_owed;
                        }
                    }
                    record
                        .recipients
                        .retain(|recipient| !dropped.contains(&recipient.address));
                }
                if remove {
                    self.messages.remove(&queue_id);
                }
                match notice {
                    Some((incoming, queued)) => self.accept(incoming, queued),
                    None => Vec::new(),
                }
            }
            Write::Remove { queue_id } => {
                self.messages.remove(&queue_id);
                Vec::new()
            }
            Write::Imap {
                user,
                request,
                now_ms,
            } => {
                // The answer goes to the session that asked (see `synced`).
                let _ = self.answer_imap(&user, request, now_ms);
                Vec::new()
            }
        }
    }

    fn accept(
        &mut self,
        incoming: Incoming,
        queued: Option<QueuedMessage>,
    ) -> Vec<MailboxDelivery> {
        let mut deliveries = Vec::new();
        for recipient in &incoming.recipients {
            if let RoutedRecipient::Local { user, .. } = recipient {
                let outcome = self.mailboxes.apply(&Operation::Deliver {
                    user: user.clone(),
                    delivery_key: incoming.delivery_key.clone(),
                    blob: incoming.queue_id.clone(),
                    size: incoming.data.len() as u64,
                    internal_date_ms: incoming.received_at_ms,
                    reverse_path: incoming.envelope_sender().to_owned(),
                });
                let new = matches!(outcome, Ok(Outcome::Delivered { .. }));
                if new {
                    self.delivered.insert(
                        (user.clone(), incoming.queue_id.clone()),
                        incoming.data.clone(),
                    );
                    self.bodies
                        .entry(incoming.queue_id.clone())
                        .or_insert_with(|| incoming.data.clone());
                }
                deliveries.push(MailboxDelivery {
                    user: user.clone(),
                    queue_id: incoming.queue_id.clone(),
                    new,
                });
            }
        }
        self.messages.insert(
            incoming.queue_id.clone(),
            StoredMessage {
                smtputf8: incoming.smtputf8,
                data: incoming.data,
                queued,
            },
        );
        deliveries
    }

    /// The queue records to restore after a restart: messages with a recipient the
    /// queue still owns (core's `still_owned`, as net's `queued_messages` query).
    pub fn to_restore(&self) -> Vec<QueuedMessage> {
        self.messages
            .values()
            .filter_map(|message| message.queued.clone())
            .filter(|queued| {
                queued
                    .recipients
                    .iter()
                    .any(QueuedRecipient::is_still_owned)
            })
            .collect()
    }
}
