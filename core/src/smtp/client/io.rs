//! The inputs a client session accepts, the outputs it asks its driver to carry
//! out, and what it reports: per recipient, per message and for the connection.
//! Session-level failures (try the next host) and the server's per-recipient
//! answers (final for this attempt) are distinct types, so no caller can mix them up.

use super::event::ClientEvent;
use super::message::OutgoingMessage;
use crate::delivery::{Failure, RecipientResult};

/// Something that happened to the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes read from the server, in order. Any split is allowed.
    Bytes(Vec<u8>),
    /// Every [`Output::Send`] polled so far has been written to the connection. The
    /// session needs it while it streams a message body: it hands out the next block
    /// only then (bounded memory, and the RFC 5321 §4.5.3.2.5 data-block timeout runs
    /// per write). At other times it is ignored, so a driver may give it after every write.
    Written,
    /// The handshake asked for by [`Output::StartTls`] completed.
    TlsEstablished,
    /// The handshake failed; the connection is unusable.
    TlsFailed,
    /// The next message to deliver. Give it after [`Output::Ready`], or right after
    /// creating the session (it is held until the greeting and EHLO are done). A message
    /// given while another is already held is not attempted: it is reported at once,
    /// every recipient [`RecipientOutcome::Unresolved`].
    Message(OutgoingMessage),
    /// No more messages: the session says QUIT once the current transaction ends.
    Finish,
    /// The server closed the connection or it broke.
    PeerClosed,
    /// The deadline from `next_deadline` was reached.
    Tick,
}

/// Something the session wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the server. Always whole CRLF-terminated lines or a whole
    /// BDAT chunk; never a bare CR or LF.
    Send(Vec<u8>),
    /// Begin the TLS handshake now, verifying the certificate for `server_name` when
    /// `verify` holds; answer with [`Input::TlsEstablished`] or [`Input::TlsFailed`].
    /// No plaintext byte read after the STARTTLS reply may be given to the session.
    StartTls { server_name: String, verify: bool },
    /// The connection is idle: give the next [`Input::Message`], or [`Input::Finish`].
    Ready,
    /// A message's results, once per message given, one outcome per recipient.
    Report(MessageReport),
    /// Close the connection (after writing everything sent before). The last output.
    Close(SessionOutcome),
    /// Something worth logging or counting happened.
    Event(ClientEvent),
}

/// What became of one message on this connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageReport {
    pub queue_id: String,
    /// One per recipient, in the order of [`OutgoingMessage::recipients`].
    pub recipients: Vec<RecipientOutcome>,
    /// How far the transaction got: what the delivery walk needs to tell a stale
    /// pooled connection (retry at once elsewhere) from a message the server may
    /// already hold (RFC 5321 §4.1.1.4: never send it again at once).
    pub progress: TransactionProgress,
}

impl MessageReport {
    /// A message nothing of which was sent (the session failed first, or a pooled
    /// connection closed before taking it): every recipient unresolved with
    /// `failure`, for the delivery walk to try elsewhere.
    pub fn unattempted(message: &OutgoingMessage, failure: &Failure) -> MessageReport {
        MessageReport {
            queue_id: message.queue_id.clone(),
            recipients: message
                .recipients
                .iter()
                .map(|_| RecipientOutcome::Unresolved(failure.clone()))
                .collect(),
            progress: TransactionProgress::NotStarted,
        }
    }
}

/// How far one message's transaction got on this connection before its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransactionProgress {
    /// Nothing of it was sent: the session failed first, or refused it locally.
    #[default]
    NotStarted,
    /// Commands went out and no reply to any of them came back (a 421 answering
    /// the first of them counts as none: it is the server closing the session).
    Unanswered,
    /// The server answered some of it and the end of the data was not sent.
    Answered,
    /// The end of the data was sent and a final reply it owes never came: the
    /// server may have taken the message (RFC 5321 §4.1.1.4, RFC 1047).
    AwaitingFinalReply,
    /// Every reply of the transaction was read.
    Finished,
}

/// What this connection learned about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientOutcome {
    /// The server's answer for this recipient (RCPT refused, or the reply after the
    /// data), or our own refusal before sending it (bad address, message too big,
    /// 8-bit or UTF-8 content the server cannot take): final for this attempt.
    Final(RecipientResult),
    /// The session failed before this recipient's final answer: the [`SessionOutcome`]
    /// in [`Output::Close`] says where to try next. `Failure` is the temporary failure
    /// to record if no other host remains.
    Unresolved(Failure),
}

impl RecipientOutcome {
    /// The outcome as the queue records it when no other host is tried.
    pub fn result(&self) -> RecipientResult {
        match self {
            RecipientOutcome::Final(result) => result.clone(),
            RecipientOutcome::Unresolved(failure) => RecipientResult::Temporary(failure.clone()),
        }
    }
}

/// How the connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOutcome {
    /// QUIT was said: every message given has its final results.
    Completed,
    /// This host failed us: recipients left [`RecipientOutcome::Unresolved`] should be
    /// tried on the next MX host (or recorded as temporary failures).
    Failed(SessionFailure),
    /// The opportunistic TLS handshake failed and the connection is dead: reconnect to
    /// this same host with TLS disabled (RFC 3207 §4.1 leaves the fallback to the client).
    RetryWithoutTls(SessionFailure),
}

/// A failure of the whole session rather than an answer about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFailure {
    pub kind: SessionFailureKind,
    /// Always a temporary failure (class 4): another host, or a later attempt, may work.
    pub failure: Failure,
}

/// Why the session failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionFailureKind {
    /// The greeting was not 220 (RFC 5321 §3.1: a 554 greeting means no service here).
    GreetingRefused,
    /// EHLO and then HELO (or LHLO) were refused.
    HelloRefused,
    /// The server said 421: it is closing the connection (RFC 5321 §3.8).
    ServiceClosing,
    /// TLS was required but not offered, or STARTTLS was refused.
    TlsRequired,
    /// The TLS handshake failed.
    TlsFailed,
    /// The connection closed before the final reply.
    ConnectionLost,
    /// A deadline passed without the reply or write the session waited for.
    Timeout,
    /// The server sent something that is not a well-formed, expected reply, or one
    /// over the limits.
    ProtocolViolation,
    /// AUTH could not be done now: refused with a 4xx, not offered, or not allowed
    /// without TLS. Temporary.
    AuthFailed,
    /// AUTH was refused with a 5xx (535: the credentials are wrong): the waiting
    /// message's recipients failed permanently.
    AuthRejected,
}
