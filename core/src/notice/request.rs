//! What the queue asks the notice builder for: the contract between the two.

use crate::delivery::Failure;
use crate::smtp::params::{OriginalRecipient, Ret};

/// Which kind of notice (RFC 3464 §2.3.3 actions, one kind per notice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeKind {
    /// Recipients failed for good (a 5xx, or expiry of the retry schedule).
    Failure,
    /// Recipients are still being retried after the delay-warning time.
    Delay,
    /// Recipients were delivered, or relayed to a server without DSN, and asked
    /// for NOTIFY=SUCCESS.
    Success,
}

/// The `Action:` field of one recipient (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeAction {
    Failed,
    Delayed,
    /// Final delivery (LMTP, a local mailbox).
    Delivered,
    /// Handed to a server that does not offer DSN: no further notices will come.
    Relayed,
}

/// One recipient's part of a notice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NoticeRecipient {
    /// The address the queue delivered to: `Final-Recipient: rfc822; …`.
    pub final_recipient: String,
    /// ORCPT from the RCPT command, if the client gave one: `Original-Recipient:`.
    pub original_recipient: Option<OriginalRecipient>,
    pub action: NoticeAction,
    /// For failed and delayed recipients: status, remote MTA and diagnostic.
    /// `None` for delivered and relayed ones (their status is 2.0.0).
    pub failure: Option<Failure>,
    /// When the last attempt was made, seconds since the Unix epoch.
    pub last_attempt_at: Option<i64>,
    /// Delay notices: until when the queue keeps trying (`Will-Retry-Until:`).
    pub will_retry_until: Option<i64>,
}

/// A notice the queue wants sent for one message. Never produced for a message
/// whose reverse-path is null; every recipient in it wanted this kind of notice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NoticeRequest {
    pub kind: NoticeKind,
    /// The queue id of the message the notice is about.
    pub queue_id: String,
    /// Who gets the notice: the message's reverse-path, without angle brackets.
    pub notify: String,
    /// ENVID from MAIL, returned as `Original-Envelope-Id:`.
    pub envid: Option<String>,
    /// RET from MAIL; `None` when the client did not say.
    pub ret: Option<Ret>,
    /// When the message arrived, seconds since the Unix epoch (`Arrival-Date:`).
    pub arrived_at: i64,
    pub recipients: Vec<NoticeRecipient>,
}
