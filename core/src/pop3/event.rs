//! The POP3 session's event stream, for logs, metrics and the audit log. Events
//! never carry secrets (no passwords, no message content).

/// One thing worth logging or counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The greeting was sent.
    Connected,
    /// TLS became active through STLS.
    TlsStarted,
    /// Credentials were accepted (`mechanism` is `USER` or `PLAIN`): the audit log's line.
    LoginSucceeded {
        mechanism: &'static str,
        user: String,
    },
    /// A failed login; `user` is what the client claimed, if it got that far. The
    /// driver counts these per client.
    LoginFailed {
        mechanism: String,
        user: Option<String>,
    },
    /// The maildrop is locked and open: the session is in TRANSACTION.
    MaildropOpened {
        user: String,
        messages: usize,
        octets: u64,
    },
    /// The maildrop could not be opened; the session stays in AUTHORIZATION.
    MaildropRefused {
        user: String,
        reason: MaildropRefusal,
    },
    /// The deletions of the session were committed at QUIT.
    DeletionsCommitted { count: usize },
    /// The deletions asked for at QUIT failed or timed out.
    DeletionsFailed { count: usize },
    /// A command was answered `-ERR`.
    CommandRejected { verb: String },
    /// The session ended, and why.
    Disconnected { reason: DisconnectReason },
}

/// Why a maildrop was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaildropRefusal {
    /// Another session holds its lock.
    Locked,
    /// The store failed, or did not answer in time.
    TemporaryFailure,
    /// More messages than `Limits::maildrop_messages`.
    TooLarge,
    /// The driver listed a unique id POP3 cannot carry (RFC 1939 §7), or one twice.
    MalformedListing,
}

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// QUIT (after UPDATE, if the session was in TRANSACTION).
    Quit,
    PeerClosed,
    /// The autologout timer (RFC 1939 §3), or a TLS handshake that never ended.
    Timeout,
    Shutdown,
    TooManyBadCommands,
    TooManyAuthFailures,
    /// Bytes pipelined after STLS, or plaintext during the TLS handshake.
    StartTlsInjection,
    TlsFailed,
    /// More input than twice `Limits::pipeline_buffer` while the session waited.
    InputOverflow,
    /// A message read failed or timed out after part of it was sent.
    ReadFailed,
}
