//! What the queue keeps durable for each message and each of its recipients: the
//! envelope facts a notice needs, and where each recipient stands (pending, deferred
//! with its schedule, delivered, failed). The driver stores these and hands them
//! back after a restart.

use crate::delivery::{Destination, Failure};
use crate::smtp::params::{Notify, OriginalRecipient, Ret};
use crate::smtp::reply::Reply;
use crate::time::Instant;

/// One accepted message in the queue. Times are milliseconds since the Unix epoch,
/// so that persisted schedules survive restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Unique among the messages the queue holds.
    pub queue_id: String,
    /// The reverse-path without angle brackets; `None` is the null reverse-path
    /// (`MAIL FROM:<>`), which never gets a notice (RFC 3461 §5.1, RFC 5321 §4.5.5).
    pub reverse_path: Option<String>,
    /// ENVID from MAIL (RFC 3461 §4.4).
    pub envid: Option<String>,
    /// RET from MAIL (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    pub arrival: Instant,
    /// Size in octets, for listings.
    pub size: u64,
    /// How many `Received:` headers the message carries (the loop count, RFC 5321 §6.3).
    pub received_headers: u32,
    /// Addresses are unique within one message.
    pub recipients: Vec<QueuedRecipient>,
}

/// One recipient of a queued message and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRecipient {
    /// The address delivered to (after routing).
    pub address: String,
    /// ORCPT from RCPT (RFC 3461 §4.2).
    pub original: Option<OriginalRecipient>,
    /// NOTIFY from RCPT; `None` when the client did not say (RFC 3461 §4.1).
    pub notify: Option<Notify>,
    pub destination: Destination,
    pub state: RecipientState,
    /// A delay notice has been queued for this recipient; there will be no other.
    pub delay_notified: bool,
    /// Delivered into a local mailbox at acceptance, with NOTIFY=SUCCESS, and the
    /// success notice not stored yet: the queue stores it on enqueue (again after a
    /// restart, until the write that clears this is durable).
    pub success_owed: bool,
}

/// Where one recipient stands. `Delivered` and `Failed` are final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientState {
    /// Not tried yet: due at once.
    Pending,
    /// Failed temporarily `attempts` times; due again at `next_attempt`.
    Deferred {
        attempts: u32,
        next_attempt: Instant,
        last_failure: Failure,
        /// When the last attempt started (`Last-Attempt-Date:`).
        last_attempt_at: Instant,
    },
    /// A server took responsibility (or the message reached its mailbox).
    Delivered {
        at: Instant,
        remote_mta: Option<String>,
        reply: Reply,
        /// The remote took over DSN duties (RFC 3461 §5.2.2), so no success notice.
        notify_passed_on: bool,
    },
    /// Given up: a permanent failure, expiry or a mail loop.
    Failed { at: Instant, failure: Failure },
}

impl RecipientState {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RecipientState::Delivered { .. } | RecipientState::Failed { .. }
        )
    }

    /// When the recipient should next be tried, if it is not final: at once (its
    /// message's arrival) when pending.
    pub fn due_at(&self, arrival: Instant) -> Option<Instant> {
        match self {
            RecipientState::Pending => Some(arrival),
            RecipientState::Deferred { next_attempt, .. } => Some(*next_attempt),
            RecipientState::Delivered { .. } | RecipientState::Failed { .. } => None,
        }
    }

    /// Temporary failures so far.
    pub fn attempts(&self) -> u32 {
        match self {
            RecipientState::Deferred { attempts, .. } => *attempts,
            _ => 0,
        }
    }
}

/// Whether the queue still owns a recipient's record (and with it a reference to the
/// message's body): while the recipient is not final, an attempt will send the body;
/// while a success notice is owed, the notice returns the body's headers or all of
/// it. A record the queue no longer owns is history, not work: it is not restored
/// after a restart and holds no body. Every driver (in-memory, on a simulated disk or
/// in SQL) asks this one function, or states exactly it in its query language.
pub fn still_owned(is_final: bool, success_owed: bool) -> bool {
    !is_final || success_owed
}

impl QueuedRecipient {
    /// [`still_owned`] for this recipient.
    pub fn is_still_owned(&self) -> bool {
        still_owned(self.state.is_final(), self.success_owed)
    }

    /// A recipient not tried yet, with no NOTIFY or ORCPT.
    pub fn new(address: impl Into<String>, destination: Destination) -> QueuedRecipient {
        QueuedRecipient {
            address: address.into(),
            original: None,
            notify: None,
            destination,
            state: RecipientState::Pending,
            delay_notified: false,
            success_owed: false,
        }
    }
}

/// One recipient's new durable state, as written by [`super::Output::Persist`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientChange {
    pub address: String,
    pub state: RecipientState,
    pub delay_notified: bool,
    pub success_owed: bool,
}

impl RecipientChange {
    pub(super) fn of(recipient: &QueuedRecipient) -> RecipientChange {
        RecipientChange {
            address: recipient.address.clone(),
            state: recipient.state.clone(),
            delay_notified: recipient.delay_notified,
            success_owed: recipient.success_owed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Destination, Diagnostic};
    use crate::smtp::reply::EnhancedStatus;

    fn failure() -> Failure {
        Failure {
            status: EnhancedStatus::new(5, 1, 1),
            remote_mta: None,
            diagnostic: Diagnostic::Local("gone".to_owned()),
        }
    }

    #[test]
    fn the_queue_owns_a_record_until_it_is_final_and_owes_nothing() {
        assert!(still_owned(false, false));
        assert!(still_owned(false, true));
        assert!(still_owned(true, true));
        assert!(!still_owned(true, false));
    }

    #[test]
    fn a_recipient_is_owned_by_its_state_and_its_debt() {
        let mut recipient = QueuedRecipient::new("a@b.test", Destination::mx("b.test"));
        assert!(recipient.is_still_owned(), "pending");
        recipient.state = RecipientState::Deferred {
            attempts: 1,
            next_attempt: Instant::from_millis(1),
            last_failure: failure(),
            last_attempt_at: Instant::from_millis(0),
        };
        assert!(recipient.is_still_owned(), "deferred");
        recipient.state = RecipientState::Failed {
            at: Instant::from_millis(2),
            failure: failure(),
        };
        assert!(!recipient.is_still_owned(), "failed, nothing owed");
        recipient.state = RecipientState::Delivered {
            at: Instant::from_millis(2),
            remote_mta: None,
            reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "ok"),
            notify_passed_on: false,
        };
        assert!(!recipient.is_still_owned(), "delivered, nothing owed");
        recipient.success_owed = true;
        assert!(recipient.is_still_owned(), "delivered, success notice owed");
    }
}
