//! What a Sluice host's durability means for it: a write's fsync completing (the
//! write applied, whoever waited told), a crash (the volatile state and unsynced
//! writes gone) and a restart (the queue rebuilt from what was durable). The world
//! decides when these happen (fsync latency, I/O errors, crash faults); the host
//! carries them out.

use super::imap::ImapAnswer;
use super::io::HostIo;
use super::store::{Store, Write};
use super::{NoticeFacts, SluiceHost, Waiter};
use sluice_core::machine::Token;
use sluice_core::queue::{Input as QueueInput, Queue};
use sluice_core::smtp::server::StoreOutcome;

/// A reception's durability answer, for the world to carry to the connection that
/// holds the reception (`Persisted` with this token and outcome).
#[derive(Debug)]
pub struct PersistedAnswer {
    pub conn: u64,
    pub token: Token,
    pub outcome: StoreOutcome,
}

/// What a write's durability asks of the world: a reception's answer, an IMAP
/// session's answer, and whether the host's IMAP sessions must hear that its
/// mailboxes changed.
#[derive(Debug, Default)]
pub struct Synced {
    pub persisted: Option<PersistedAnswer>,
    pub imap: Option<ImapAnswer>,
    pub mailboxes_changed: bool,
}

impl SluiceHost {
    /// The fsync of `write_id` finished: the write is durable (or `failed` with an
    /// injected I/O error), and whoever waited is told, in the order core's
    /// `Acceptance` names (queue, success notice, then `Persisted`) and net's
    /// `delivery::service::finished` keeps (Persisted / PersistFailed, then the
    /// notice). A session's answer comes back for the world to carry to its
    /// connection. I/O, not a decision.
    pub fn synced(&mut self, io: &mut dyn HostIo, write_id: u64, failed: bool) -> Synced {
        let Some(write) = self.disk.synced(write_id) else {
            return Synced::default();
        };
        let waiter = self.waiters.remove(&write_id);
        if let Write::Imap {
            user,
            request,
            now_ms,
        } = write
        {
            return self.imap_synced(io, write_id, waiter, failed, (&user, request, now_ms));
        }
        let mut changed = false;
        let persisted = self.write_synced(io, write_id, write, waiter, failed, &mut changed);
        Synced {
            persisted,
            imap: None,
            mailboxes_changed: changed && !io.bugs().no_idle_push,
        }
    }

    /// An IMAP session's write is durable (or failed): carried out on the durable
    /// store, and its answer made for the session that waited.
    fn imap_synced(
        &mut self,
        io: &mut dyn HostIo,
        write_id: u64,
        waiter: Option<Waiter>,
        failed: bool,
        (user, request, now_ms): (&str, sluice_core::imap::request::MailboxRequest, i64),
    ) -> Synced {
        use sluice_core::imap::request::{MailboxAnswer, MailboxRefusal};
        let answer = if failed {
            MailboxAnswer::Refused(MailboxRefusal::Unavailable)
        } else {
            self.disk.durable.answer_imap(user, request, now_ms)
        };
        let name = io.name().to_owned();
        io.record(&format!(
            "{name} write {write_id} {}",
            if failed {
                "failed (I/O error)"
            } else {
                "durable"
            }
        ));
        let imap = match waiter {
            Some(Waiter::Imap {
                conn,
                token,
                answered: false,
            }) => Some(ImapAnswer {
                conn,
                input: sluice_core::imap::Input::MailboxAnswered { token, answer },
            }),
            _ => None,
        };
        Synced {
            persisted: None,
            imap,
            mailboxes_changed: !failed && !io.bugs().no_idle_push,
        }
    }

    /// Any other write is durable (or failed): applied, and whoever waited told.
    fn write_synced(
        &mut self,
        io: &mut dyn HostIo,
        write_id: u64,
        write: Write,
        waiter: Option<Waiter>,
        failed: bool,
        changed: &mut bool,
    ) -> Option<PersistedAnswer> {
        let at = io.now();
        let deliveries = if failed {
            Vec::new()
        } else {
            let data_of = |store: &Store, queue_id: &str| {
                store
                    .messages
                    .get(queue_id)
                    .map(|message| message.data.clone())
            };
            let deliveries = self.disk.durable.apply(write);
            deliveries
                .into_iter()
                .map(|delivery| {
                    let data = data_of(&self.disk.durable, &delivery.queue_id);
                    (delivery, data)
                })
                .collect()
        };
        let stored_tag = match &waiter {
            Some(Waiter::Session { queue_id, .. }) if !failed => self
                .disk
                .durable
                .messages
                .get(queue_id)
                .and_then(|message| crate::check::message_tag(&message.data)),
            _ => None,
        };
        let local = io.local_now();
        let name = io.name().to_owned();
        io.record(&format!(
            "{name} write {write_id} {}",
            if failed {
                "failed (I/O error)"
            } else {
                "durable"
            }
        ));
        for (delivery, data) in deliveries {
            *changed |= delivery.new;
            let data = data.unwrap_or_default();
            io.obs()
                .mailbox_delivered(at, &name, &delivery.user, &data, delivery.new);
        }
        match waiter {
            Some(Waiter::Session {
                conn,
                token,
                queue_id,
                queued,
                answered,
            }) => {
                if failed {
                    return (!answered).then_some(PersistedAnswer {
                        conn,
                        token,
                        outcome: StoreOutcome::Failed,
                    });
                }
                let facts = crate::check::StoredFacts {
                    tag: stored_tag,
                    null_sender: queued
                        .as_ref()
                        .is_some_and(|queued| queued.reverse_path.is_none()),
                    arrival: queued.as_ref().map_or(local, |queued| queued.arrival),
                    no_failure_notice: queued
                        .as_ref()
                        .map(|queued| {
                            queued
                                .recipients
                                .iter()
                                .filter(|recipient| {
                                    matches!(
                                        recipient.notify,
                                        Some(sluice_core::smtp::params::Notify::Never)
                                            | Some(sluice_core::smtp::params::Notify::On {
                                                failure: false,
                                                ..
                                            })
                                    )
                                })
                                .map(|recipient| recipient.address.to_ascii_lowercase())
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                io.obs().stored(&name, &queue_id, facts);
                if let Some(queued) = queued {
                    self.queue_input(io, QueueInput::Enqueue(queued));
                }
                (!answered).then_some(PersistedAnswer {
                    conn,
                    token,
                    outcome: StoreOutcome::Stored { queue_id },
                })
            }
            Some(Waiter::Persist {
                token,
                queue_id,
                notice,
                failed: failed_recipients,
            }) => {
                if failed {
                    self.queue_input(io, QueueInput::PersistFailed { token });
                    return None;
                }
                for recipient in &failed_recipients {
                    io.obs().failed_durable(at, &name, &queue_id, recipient);
                }
                self.queue_input(io, QueueInput::Persisted { token });
                if let Some(notice) = notice {
                    self.notice_committed(io, &queue_id, notice);
                }
                None
            }
            Some(Waiter::Imap { .. }) | None => None,
        }
    }

    /// A notice became durable: observed, and its copies for the queue enqueued.
    fn notice_committed(&mut self, io: &mut dyn HostIo, queue_id: &str, notice: NoticeFacts) {
        let name = io.name().to_owned();
        let at = io.now();
        let local = io.local_now();
        if let Some(notice_id) = &notice.notice_id {
            // The notice's arrival is when it was built, before its write was durable.
            let arrival = notice
                .queued
                .as_ref()
                .map_or(local, |queued| queued.arrival);
            let facts = crate::check::StoredFacts {
                tag: None,
                null_sender: true,
                arrival,
                no_failure_notice: std::collections::BTreeSet::new(),
            };
            io.obs().stored(&name, notice_id, facts);
        }
        io.record(&format!(
            "{name} notice {:?} about {queue_id} for {} durable",
            notice.kind,
            notice.recipients.join(",")
        ));
        io.obs()
            .notice_durable(at, &name, queue_id, notice.kind, &notice.recipients, local);
        if let Some(queued) = notice.queued {
            self.queue_input(io, QueueInput::Enqueue(queued));
        }
    }

    /// A crash: the queue, the writes' waiters, the attempts and the pool are gone,
    /// and so is every write not yet durable. How many writes were lost.
    pub fn crash(&mut self) -> usize {
        self.queue = None;
        self.waiters.clear();
        self.attempts.clear();
        self.pool.clear();
        self.disk.crash()
    }

    /// A restart: the queue is rebuilt from what the disk made durable. I/O, not a
    /// decision (net's `delivery::service::start`: `store.queued_messages()` enqueued).
    pub fn restart(&mut self, io: &mut dyn HostIo) {
        self.queue = Queue::new(self.queue_config.clone()).ok();
        if io.bugs().renumber_uids_after_restart {
            self.disk.durable.mailboxes =
                super::mailbox_backend::renumbered(&self.disk.durable, &self.directory.users);
        }
        let mut restored = self.disk.durable.to_restore();
        if io.bugs().forget_deferred_on_restart {
            restored.retain(|message| {
                !message.recipients.iter().any(|recipient| {
                    matches!(
                        recipient.state,
                        sluice_core::queue::RecipientState::Deferred { .. }
                    )
                })
            });
        }
        let name = io.name().to_owned();
        io.record(&format!(
            "{name} restarts, {} queued messages restored",
            restored.len()
        ));
        for message in restored {
            self.queue_input(io, QueueInput::Enqueue(message));
        }
    }

    /// A disk-full fault starts or ends; whether that changed anything.
    pub fn set_disk_full(&mut self, full: bool) -> bool {
        let changed = self.disk.full != full;
        self.disk.full = full;
        changed
    }
}
