//! LMTP (RFC 2033) at the end of data: one reply per accepted recipient, in RCPT
//! order, built from the driver's per-recipient store answer. The rest of LMTP's
//! differences (LHLO as the only hello, 503 for DATA without recipients, no STARTTLS
//! or AUTH) are single decisions made where SMTP makes them.
//!
//! RFC 2033 §4.2: a 2xx among these replies is a promise of delivery for that
//! recipient alone, so it is given only for a recipient the driver reports durable.

use super::{
    ListenerKind, RecipientStoreOutcome, RejectReason, ServerSession, SessionEvent, StoreOutcome,
    replies,
};
use crate::smtp::address::{ForwardPath, ReversePath};
use crate::smtp::reply::{Reply, ReplyCode};

impl ServerSession {
    /// A verdict on the whole message (too big, a bare line ending, not stored): SMTP
    /// sends it once, LMTP once per accepted recipient (RFC 2033 §4.2), since its
    /// client counts one reply per recipient.
    pub(super) fn send_end_of_data_reply(&mut self, reply: &Reply, recipients: usize) {
        let count = if self.config.kind == ListenerKind::Lmtp {
            recipients.max(1)
        } else {
            1
        };
        for _ in 0..count {
            self.send(reply);
        }
    }

    /// LMTP's BDAT LAST with no accepted recipient: no reply at all (RFC 2033 §4.3),
    /// and the transaction, which the client considers over, ends.
    pub(super) fn end_without_recipients(&mut self, unsent: &Reply) {
        if self.transaction.take().is_some() {
            self.event(SessionEvent::TransactionRejected {
                code: unsent.code,
                reason: RejectReason::NoValidRecipients,
            });
        } else {
            self.event(SessionEvent::CommandRejected {
                verb: "BDAT".to_owned(),
                code: unsent.code,
            });
        }
    }

    /// The store's answer (`None`: it timed out) turned into one reply per recipient.
    pub(super) fn answer_each_recipient(
        &mut self,
        reverse_path: ReversePath,
        recipients: Vec<ForwardPath>,
        size: u64,
        outcome: Option<StoreOutcome>,
    ) {
        let total = recipients.len();
        let answer = PerRecipient::from_outcome(outcome, total);
        let mut stored = Vec::new();
        let mut first_refusal: Option<ReplyCode> = None;
        for (recipient, result) in recipients.into_iter().zip(answer.outcomes) {
            let reply = match result {
                RecipientStoreOutcome::Stored => {
                    replies::recipient_stored(&recipient, &answer.queue_id)
                }
                RecipientStoreOutcome::TemporaryFailure => {
                    replies::recipient_not_stored(&recipient)
                }
                RecipientStoreOutcome::MailboxFull => replies::mailbox_full(&recipient),
                RecipientStoreOutcome::UnknownUser => replies::user_unknown(&recipient),
            };
            self.send(&reply);
            if result == RecipientStoreOutcome::Stored {
                stored.push(recipient);
            } else {
                first_refusal.get_or_insert(reply.code);
                self.event(SessionEvent::RecipientRejected {
                    recipient,
                    code: reply.code,
                });
            }
        }
        if stored.is_empty() {
            let code = first_refusal.unwrap_or(replies::not_stored().code);
            self.event(SessionEvent::TransactionRejected {
                code,
                reason: answer.failure,
            });
        } else {
            self.event(SessionEvent::TransactionAccepted {
                queue_id: answer.queue_id,
                reverse_path,
                recipients: total,
                stored,
                size,
            });
        }
    }
}

/// The driver's answer as one outcome per recipient.
#[derive(Debug, PartialEq, Eq)]
struct PerRecipient {
    /// Empty when nothing was stored (it then appears in no reply).
    queue_id: String,
    /// Exactly one per recipient.
    outcomes: Vec<RecipientStoreOutcome>,
    /// Why, if no recipient was stored.
    failure: RejectReason,
}

impl PerRecipient {
    fn from_outcome(outcome: Option<StoreOutcome>, recipients: usize) -> PerRecipient {
        let every = |outcome| vec![outcome; recipients];
        match outcome {
            Some(StoreOutcome::Stored { queue_id }) => PerRecipient {
                queue_id,
                outcomes: every(RecipientStoreOutcome::Stored),
                failure: RejectReason::StoreFailed,
            },
            Some(StoreOutcome::Failed) => PerRecipient {
                queue_id: String::new(),
                outcomes: every(RecipientStoreOutcome::TemporaryFailure),
                failure: RejectReason::StoreFailed,
            },
            Some(StoreOutcome::PerRecipient {
                queue_id,
                recipients: mut outcomes,
            }) => {
                // A short answer is a driver bug: the recipients it left out get no
                // promise, only a temporary failure, so the client tries them again.
                outcomes.resize(recipients, RecipientStoreOutcome::TemporaryFailure);
                PerRecipient {
                    queue_id,
                    outcomes,
                    failure: RejectReason::StoreFailed,
                }
            }
            None => PerRecipient {
                queue_id: String::new(),
                outcomes: every(RecipientStoreOutcome::TemporaryFailure),
                failure: RejectReason::StoreTimedOut,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecipientStoreOutcome::{MailboxFull, Stored, TemporaryFailure, UnknownUser};

    #[test]
    fn whole_message_answers_cover_every_recipient() {
        let stored = PerRecipient::from_outcome(
            Some(StoreOutcome::Stored {
                queue_id: "Q1".to_owned(),
            }),
            3,
        );
        assert_eq!(stored.outcomes, vec![Stored; 3]);
        assert_eq!(stored.queue_id, "Q1");
        let failed = PerRecipient::from_outcome(Some(StoreOutcome::Failed), 2);
        assert_eq!(failed.outcomes, vec![TemporaryFailure; 2]);
        assert_eq!(failed.failure, RejectReason::StoreFailed);
        let timed_out = PerRecipient::from_outcome(None, 2);
        assert_eq!(timed_out.outcomes, vec![TemporaryFailure; 2]);
        assert_eq!(timed_out.failure, RejectReason::StoreTimedOut);
    }

    #[test]
    fn a_short_answer_promises_nothing_for_the_rest_and_a_long_one_is_cut() {
        let short = PerRecipient::from_outcome(
            Some(StoreOutcome::PerRecipient {
                queue_id: "Q1".to_owned(),
                recipients: vec![Stored],
            }),
            3,
        );
        assert_eq!(
            short.outcomes,
            vec![Stored, TemporaryFailure, TemporaryFailure]
        );
        let long = PerRecipient::from_outcome(
            Some(StoreOutcome::PerRecipient {
                queue_id: "Q1".to_owned(),
                recipients: vec![MailboxFull, UnknownUser, Stored],
            }),
            2,
        );
        assert_eq!(long.outcomes, vec![MailboxFull, UnknownUser]);
    }
}
