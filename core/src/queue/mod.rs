//! The queue machine: durable per-recipient delivery state, the retry schedule,
//! expiry, and which delay, failure and success notices are due (RFC 3461, RFC 3464).
//! It decides; its driver starts attempts, writes state and reports back.
//!
//! A driver uses it so:
//!
//! 1. At start, build a [`Queue`] and hand it every stored message with its persisted
//!    recipient states ([`Input::Enqueue`]); a deferred recipient keeps its
//!    `next_attempt`, so the schedule survives restarts. New messages are enqueued
//!    once they are durable. Times are milliseconds since the Unix epoch.
//! 2. Drain [`Queue::poll`] after every input. [`Output::StartAttempt`]: run one
//!    delivery attempt (one message, one destination) and answer
//!    [`Input::AttemptFinished`] with a result per recipient. [`Output::Persist`]:
//!    write the recipient changes *and* store the notice (if any) as a new message with
//!    the null reverse-path in one transaction, then answer [`Input::Persisted`] or
//!    [`Input::PersistFailed`]; a write marked `remove` is the message's last, and
//!    deletes the message in that same transaction. [`Output::Remove`]: delete the
//!    message.
//! 3. Wake the queue with [`Input::Tick`] at [`Queue::next_deadline`].
//!
//! Every attempt has a deadline (`QueueLimits::attempt_timeout`): an attempt the
//! driver never answers is deferred then, and its late result, if any, is applied by
//! the rule documented on [`Queue`].
//!
//! Rules: attempts follow the [`RetrySchedule`] (see there for the exact expiry rule);
//! recipients of one message due for one destination share an attempt (up to
//! `max_recipients_per_attempt`); destinations get attempts oldest-due first within
//! their concurrency and rate limits. A failure notice lists exactly the recipients
//! that failed together (one attempt, one expiry) and asked for it; a delay notice at
//! most once per recipient; a success notice for NOTIFY=SUCCESS when the remote did
//! not take the DSN duty over. Nothing goes to the null reverse-path. A message with a
//! write outstanding starts no attempts until the write is acknowledged; a failed
//! write is retried unchanged (same token) with a bounded backoff. In-flight attempts
//! and unacknowledged writes are memory only: after a crash the last persisted state
//! is all there is, and a notice is durable exactly when its recipients' states are.
//!
//! ```
//! use sluice_core::delivery::{Destination, Diagnostic, Failure, RecipientResult};
//! use sluice_core::machine::Machine;
//! use sluice_core::queue::{Input, Output, Queue, QueueConfig, QueuedMessage, QueuedRecipient};
//! use sluice_core::smtp::reply::{EnhancedStatus, Reply};
//! use sluice_core::time::{Duration, Instant};
//!
//! let mut queue = Queue::new(QueueConfig::default()).expect("valid");
//! let arrival = Instant::from_millis(1_700_000_000_000);
//! queue.handle(arrival, Input::Enqueue(QueuedMessage {
//!     queue_id: "Q1".into(),
//!     reverse_path: Some("alice@a.test".into()),
//!     envid: None,
//!     ret: None,
//!     arrival,
//!     size: 1200,
//!     received_headers: 1,
//!     recipients: vec![QueuedRecipient::new("bob@b.example", Destination::mx("b.example"))],
//! }));
//! let Some(Output::StartAttempt { token, recipients, .. }) = queue.poll() else { panic!() };
//! assert_eq!(recipients, ["bob@b.example"]);
//! while queue.poll().is_some() {}
//!
//! // The remote answers 451: deferred, retried five minutes later.
//! let busy = Failure {
//!     status: EnhancedStatus::new(4, 3, 0),
//!     remote_mta: Some("mx.b.example".into()),
//!     diagnostic: Diagnostic::Reply(Reply::new(451, EnhancedStatus::new(4, 3, 0), "busy")),
//! };
//! let results = vec![("bob@b.example".to_owned(), RecipientResult::Temporary(busy))];
//! queue.handle(arrival, Input::AttemptFinished { token, results });
//! let persist = std::iter::from_fn(|| queue.poll())
//!     .find_map(|output| match output { Output::Persist { token, .. } => Some(token), _ => None });
//! queue.handle(arrival, Input::Persisted { token: persist.expect("a write") });
//! assert_eq!(queue.next_deadline(), Some(arrival + Duration::from_mins(5)));
//! ```

mod config;
mod entry;
mod limits;
mod machine;
mod notices;
mod schedule;
mod state;
mod throttle;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, QueueConfig};
pub use limits::{AttemptRate, QueueLimits};
pub use machine::Queue;
#[cfg(feature = "planted-bugs")]
pub use schedule::PlantedScheduleBug;
pub use schedule::RetrySchedule;
pub use state::{QueuedMessage, QueuedRecipient, RecipientChange, RecipientState, still_owned};

use crate::delivery::{Destination, RecipientResult};
use crate::machine::Token;
use crate::notice::{NoticeKind, NoticeRequest};
use crate::smtp::reply::EnhancedStatus;
use crate::time::Instant;

/// Something that happened to the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A new durable message, or one restored after a restart with its persisted
    /// recipient states.
    Enqueue(QueuedMessage),
    /// The answer to [`Output::StartAttempt`]: a result per recipient, by address. A
    /// recipient of the attempt missing here failed temporarily. An answer after the
    /// attempt's deadline is a late result (see [`Queue`]).
    AttemptFinished {
        token: Token,
        results: Vec<(String, RecipientResult)>,
    },
    /// The write [`Output::Persist`] with this token is durable.
    Persisted { token: Token },
    /// The write with this token was not made (rolled back): it will be issued again.
    PersistFailed { token: Token },
    /// Admin flush: every deferred recipient of this message (or of all) is due now.
    RetryNow { queue_id: Option<String> },
    /// Admin removal without any notice (like `postsuper -d`).
    Delete { queue_id: String },
    /// The deadline from `next_deadline` was reached.
    Tick,
}

/// Something the queue wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Make one delivery attempt for these recipients of one message; answer with
    /// [`Input::AttemptFinished`] and the same token.
    StartAttempt {
        token: Token,
        queue_id: String,
        destination: Destination,
        recipients: Vec<String>,
    },
    /// In ONE transaction: write these recipient states and store `notice` (built by
    /// the notice builder) as a new message. Answer [`Input::Persisted`] or
    /// [`Input::PersistFailed`] with the same token.
    ///
    /// `remove`: with these changes every recipient is final and nothing else is
    /// outstanding, so instead of writing them the driver deletes the message in the
    /// same transaction (still storing the notice); no [`Output::Remove`] follows.
    /// One commit per finished message instead of two.
    Persist {
        token: Token,
        queue_id: String,
        changes: Vec<RecipientChange>,
        notice: Option<NoticeRequest>,
        remove: bool,
    },
    /// Every recipient is final and durable, or the message was deleted: delete it.
    Remove { queue_id: String },
    /// The message was not taken; it stays wherever the driver stored it.
    Refused { queue_id: String, reason: Refusal },
    /// For the log.
    Event(Event),
}

/// Why [`Input::Enqueue`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_messages` are held already.
    QueueFull { limit: usize },
    /// More than `max_recipients_per_message` recipients.
    TooManyRecipients { limit: usize },
    /// The queue already holds a message with this id.
    DuplicateQueueId,
    /// The same address twice in one message: results could not tell them apart.
    DuplicateRecipient { address: String },
}

/// What the queue did, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    AttemptStarted {
        token: Token,
        queue_id: String,
        destination: Destination,
        recipients: usize,
    },
    AttemptFinished {
        token: Token,
        queue_id: String,
        delivered: usize,
        deferred: usize,
        failed: usize,
    },
    /// The attempt's result did not come back by its deadline
    /// (`QueueLimits::attempt_timeout`): its recipients are deferred, and a result
    /// that comes later is a late one.
    AttemptTimedOut {
        token: Token,
        queue_id: String,
    },
    /// A result of an attempt superseded at its deadline came back. `applied`: the
    /// recipient was delivered and is now recorded so; otherwise it was ignored.
    LateResult {
        token: Token,
        queue_id: String,
        recipient: String,
        applied: bool,
    },
    Delivered {
        queue_id: String,
        recipient: String,
        remote_mta: Option<String>,
    },
    Deferred {
        queue_id: String,
        recipient: String,
        attempts: u32,
        next_attempt: Instant,
        status: EnhancedStatus,
    },
    /// The connection ended after the end of the data and before the final reply
    /// (RFC 5321 §4.1.1.4): `remote_mta` may hold the message, and the next attempt
    /// may deliver a second copy. Followed by the recipient's `Deferred` (or `Failed`
    /// at expiry).
    Ambiguous {
        queue_id: String,
        recipient: String,
        remote_mta: Option<String>,
    },
    /// Failed for good on an attempt's result (or as part of a loop).
    Failed {
        queue_id: String,
        recipient: String,
        status: EnhancedStatus,
    },
    /// Failed because the message expired.
    Expired {
        queue_id: String,
        recipient: String,
        status: EnhancedStatus,
    },
    /// More Received headers than allowed: every recipient failed (5.4.6).
    LoopDetected {
        queue_id: String,
        received_headers: u32,
    },
    /// A notice became durable together with its recipients' states.
    NoticeQueued {
        queue_id: String,
        kind: NoticeKind,
        recipients: usize,
    },
    PersistFailed {
        queue_id: String,
        token: Token,
        failures: u32,
        retry_at: Instant,
    },
    Deleted {
        queue_id: String,
    },
}
