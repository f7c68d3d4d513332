//! The inputs an IMAP session accepts and the outputs it asks its driver to carry out.

use crate::imap::event::SessionEvent;
use crate::imap::request::{MailboxAnswer, MailboxRequest};
use crate::machine::Token;
pub use crate::smtp::server::{CredentialOutcome, Credentials};

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
    /// The answer to [`Output::Mailbox`].
    MailboxAnswered { token: Token, answer: MailboxAnswer },
    /// The selected mailbox changed (another session, a delivery). A hint: the
    /// session asks for the changes at its next moment to report them (at once
    /// while in IDLE). Drivers without notifications never send it; NOOP still works.
    MailboxChanged,
    /// The deadline from `next_deadline` was reached.
    Tick,
    /// The client closed the connection or it broke.
    PeerClosed,
    /// The server is shutting down: BYE now (RFC 9051 §7.1.5).
    Shutdown,
}

/// Something the session wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Begin the TLS handshake now (the tagged OK has been sent before this). Answer
    /// with [`Input::TlsEstablished`] or [`Input::TlsFailed`]; no plaintext byte read
    /// after this point may be given to the session.
    StartTls,
    /// Check a username and password (from LOGIN or AUTHENTICATE PLAIN).
    CheckCredentials {
        token: Token,
        credentials: Credentials,
    },
    /// A request about the authenticated user's mailboxes.
    Mailbox {
        token: Token,
        user: String,
        request: MailboxRequest,
    },
    /// Close the connection (after writing everything sent before).
    Close,
    /// Something worth logging or counting happened.
    Event(SessionEvent),
}
