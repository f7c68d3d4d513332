//! The session's event stream: what happened, for logs and metrics. Events never
//! carry secrets (no passwords, no message content).

/// One thing worth logging or counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The greeting was sent.
    Connected,
    /// TLS became active through STARTTLS.
    TlsStarted,
    AuthSucceeded {
        mechanism: &'static str,
        identity: String,
    },
    /// A failed LOGIN or AUTHENTICATE; `username` is what the client claimed, if any.
    AuthFailed {
        mechanism: String,
        username: Option<String>,
    },
    /// A command was answered NO or BAD.
    CommandRejected { command: String, bad: bool },
    /// A mailbox was selected (read-only for EXAMINE).
    Selected { mailbox: String, read_only: bool },
    /// The session is closing, and why.
    Disconnected { reason: DisconnectReason },
}

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    Logout,
    PeerClosed,
    /// The autologout timer expired.
    Timeout,
    /// The driver did not answer a request in time.
    DriverTimeout,
    Shutdown,
    TooManyBadCommands,
    TooManyAuthFailures,
    /// Bytes pipelined after STARTTLS, or plaintext after the TLS switch.
    StartTlsInjection,
    TlsFailed,
    /// The client sent more than the input bound while the session waited.
    InputOverflow,
    /// The selected mailbox went away or its UIDVALIDITY changed.
    MailboxGone,
}
