//! The inputs a server session accepts and the outputs it asks its driver to carry out.

use crate::machine::Token;
pub use crate::sasl::{CredentialOutcome, Credentials};
use crate::smtp::address::{ForwardPath, Host, ReversePath};
use crate::smtp::params::{MailParameters, RcptParameters};
use crate::smtp::server::event::SessionEvent;

/// Something that happened to the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes read from the client, in order. Any split is allowed.
    Bytes(Vec<u8>),
    /// The TLS handshake requested by [`Output::StartTls`] completed.
    TlsEstablished,
    /// The TLS handshake failed; the session closes.
    TlsFailed,
    /// The answer to [`Output::CheckCredentials`].
    CredentialsChecked {
        token: Token,
        outcome: CredentialOutcome,
    },
    /// The answer to [`Output::CheckRecipient`].
    RecipientChecked {
        token: Token,
        verdict: RecipientVerdict,
    },
    /// The answer to [`Output::StoreMessage`]: whether the message and its queue record are durable.
    MessageStored { token: Token, outcome: StoreOutcome },
    /// The deadline from `next_deadline` was reached.
    Tick,
    /// The client closed the connection or it broke.
    PeerClosed,
    /// The server is shutting down: close now if idle, else once the transaction in
    /// progress has its final reply; refuse any new MAIL.
    Shutdown,
}

/// Something the session wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Begin the TLS handshake now (the 220 reply has been sent before this). Answer
    /// with [`Input::TlsEstablished`] or [`Input::TlsFailed`]; no plaintext byte read
    /// after this point may be given to the session.
    StartTls,
    /// Check a username and password (already decoded from AUTH PLAIN or LOGIN).
    CheckCredentials {
        token: Token,
        credentials: Credentials,
    },
    /// May this recipient be accepted in this transaction?
    CheckRecipient { token: Token, check: RecipientCheck },
    /// Make this message durable (body and queue record), then answer with the token.
    StoreMessage {
        token: Token,
        message: AcceptedMessage,
    },
    /// Close the connection (after writing everything sent before).
    Close,
    /// Something worth logging or counting happened.
    Event(SessionEvent),
}

/// What the driver needs to decide on a recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientCheck {
    pub reverse_path: ReversePath,
    pub recipient: ForwardPath,
    /// The authenticated identity, if the client authenticated.
    pub authenticated: Option<String>,
}

/// The decision on one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientVerdict {
    Accept,
    /// No such local user (550 5.1.1).
    UnknownUser,
    /// An external domain and a client not allowed to relay (554 5.7.1).
    RelayDenied,
    /// The recipient cannot take mail now (450 4.2.1 / 452 4.2.2 style; 451 4.3.0 here).
    TemporaryFailure,
}

/// The answer to a store request.
///
/// On an SMTP listener the message gets one reply: `Stored` is the 250, anything
/// else 451 4.3.0. On an LMTP listener (RFC 2033 §4.2) every accepted recipient gets
/// its own reply, in RCPT order: `Stored` stands for every recipient stored, `Failed`
/// for none, and `PerRecipient` says it one by one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Durable for every recipient, under this queue id.
    Stored { queue_id: String },
    /// Not stored (a failed write); nothing was kept (451 4.3.0).
    Failed,
    /// The message is kept under `queue_id`, and `recipients` says what became of
    /// each recipient's copy, in the order of [`AcceptedMessage::recipients`]. A
    /// missing entry counts as a temporary failure (no promise is made for it), and
    /// entries beyond the recipients are ignored. On an SMTP listener, which has one
    /// reply for all, anything but every recipient stored is answered 451 4.3.0: the
    /// client then sends again, and a duplicate copy is allowed where a lost one is not.
    PerRecipient {
        queue_id: String,
        recipients: Vec<RecipientStoreOutcome>,
    },
}

/// What became of one recipient's copy of a message (LMTP's per-recipient answer).
/// The driver says what happened; the session chooses the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientStoreOutcome {
    /// Durable in the recipient's mailbox (250 2.0.0).
    Stored,
    /// Not stored now; may succeed later: a failed write, a locked mailbox (451 4.3.0).
    TemporaryFailure,
    /// The mailbox is over its quota (552 5.2.2: RFC 5321 §4.2.2's "exceeded storage
    /// allocation", RFC 3463 X.2.2).
    MailboxFull,
    /// The recipient disappeared after RCPT was accepted (550 5.1.1).
    UnknownUser,
}

/// One accepted recipient and its DSN parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeRecipient {
    pub path: ForwardPath,
    pub params: RcptParameters,
}

/// The envelope and content of a message the session wants stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedMessage {
    /// The EHLO/HELO argument.
    pub helo: Host,
    /// Whether the client said EHLO or LHLO (extensions in use) rather than HELO.
    pub esmtp: bool,
    pub tls: bool,
    pub authenticated: Option<String>,
    pub reverse_path: ReversePath,
    pub mail_params: MailParameters,
    pub recipients: Vec<EnvelopeRecipient>,
    /// The message as received: dot-unstuffed DATA or concatenated BDAT chunks, CRLF lines.
    pub data: Vec<u8>,
}
