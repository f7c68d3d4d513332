//! The session's event stream: what happened, for logs and metrics. Events never
//! carry secrets (no passwords, no message content).

use crate::smtp::address::{ForwardPath, Host, ReversePath};
use crate::smtp::reply::ReplyCode;

/// One thing worth logging or counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The greeting was sent.
    Connected,
    /// EHLO, HELO or LHLO accepted (`esmtp` for EHLO and LHLO).
    Helo { host: Host, esmtp: bool },
    /// TLS became active through STARTTLS.
    TlsStarted,
    AuthSucceeded {
        mechanism: &'static str,
        identity: String,
    },
    /// A failed AUTH attempt; `username` is what the client claimed, if it got that far.
    AuthFailed {
        mechanism: String,
        username: Option<String>,
    },
    /// A recipient refused at RCPT, or (LMTP) not stored at the end of data.
    RecipientRejected {
        recipient: ForwardPath,
        code: ReplyCode,
    },
    /// A message was made durable and acknowledged with 250: for all its recipients
    /// (SMTP), or for those in `stored` (LMTP, where the others got a 4xx/5xx reply and
    /// a `RecipientRejected` event each).
    TransactionAccepted {
        queue_id: String,
        reverse_path: ReversePath,
        /// The recipients of the transaction (accepted at RCPT).
        recipients: usize,
        /// The recipients the message was stored for, in RCPT order.
        stored: Vec<ForwardPath>,
        size: u64,
    },
    /// A transaction ended without acceptance (at DATA's end or BDAT LAST, or DATA
    /// refused for want of recipients), and why. On LMTP, `code` is the first
    /// recipient's reply; a BDAT LAST without recipients is answered with no reply at
    /// all (RFC 2033 §4.3) and reports the 503 that DATA would have had.
    TransactionRejected {
        code: ReplyCode,
        reason: RejectReason,
    },
    /// A command was answered 4xx/5xx (syntax, sequence, policy, a driver verdict, a
    /// 421 that closes). Sent beside the more specific events (`RecipientRejected`,
    /// `AuthFailed`); the verdict on a whole message is `TransactionRejected` instead.
    CommandRejected { verb: String, code: ReplyCode },
    /// A limit was reached or a deadline passed, and the session is closing.
    Disconnected { reason: DisconnectReason },
}

/// Why a transaction was refused at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    MessageTooBig,
    TextLineTooLong,
    /// A bare CR or LF in message data (the SMTP smuggling class).
    BareLineEnding,
    NoValidRecipients,
    StoreFailed,
    StoreTimedOut,
}

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    Quit,
    PeerClosed,
    Timeout,
    /// The server is shutting down (after the current transaction, if any).
    Shutdown,
    /// The connection was refused at once: the client has too many open connections.
    TooManyConnections,
    TooManyBadCommands,
    TooManyAuthFailures,
    TooManyTransactions,
    /// Bytes pipelined after STARTTLS, or plaintext after the TLS switch.
    StartTlsInjection,
    TlsFailed,
    /// A command of another protocol (HTTP) was sent.
    ForeignProtocol,
    /// The client sent more than the input buffer bound while the session waited.
    InputOverflow,
    /// A BDAT command whose chunk size could not be read: the stream cannot be resynchronised.
    MalformedBdat,
}
