//! The inputs a POP3 session accepts and the outputs it asks its driver to carry out.

use crate::machine::Token;
use crate::pop3::event::SessionEvent;
pub use crate::sasl::{CredentialOutcome, Credentials};

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
    /// The answer to [`Output::OpenMaildrop`].
    MaildropOpened {
        token: Token,
        outcome: MaildropOutcome,
    },
    /// Part of the answer to [`Output::ReadMessage`]: any number of `Chunk`s, then
    /// `End` (or `Failed`).
    MessageData { token: Token, data: MessageData },
    /// The answer to [`Output::CommitDeletions`].
    DeletionsCommitted {
        token: Token,
        outcome: CommitOutcome,
    },
    /// The deadline from `next_deadline` was reached.
    Tick,
    /// The client closed the connection or it broke. Deletions are not applied.
    PeerClosed,
    /// The server is shutting down: close once no request is outstanding.
    Shutdown,
}

/// Something the session wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Begin the TLS handshake now (the `+OK` to STLS was sent before this). Answer
    /// with [`Input::TlsEstablished`] or [`Input::TlsFailed`]; no plaintext byte read
    /// after this point may be given to the session.
    StartTls,
    /// Check a username and password (from USER/PASS or AUTH PLAIN).
    CheckCredentials {
        token: Token,
        credentials: Credentials,
    },
    /// Lock and open this user's maildrop (the INBOX), and answer with its messages.
    /// The lock is held until the connection closes.
    OpenMaildrop { token: Token, user: String },
    /// Read the message at `index` of the listing the driver gave, and feed it as
    /// [`Input::MessageData`] chunks. The bytes are the stored message; the session
    /// normalises bare LF to CRLF and byte-stuffs them itself.
    ReadMessage {
        token: Token,
        index: usize,
        uid: String,
    },
    /// The read with this token is no longer needed (TOP has all its lines): the
    /// driver may stop feeding it; chunks still sent are ignored.
    StopReading { token: Token },
    /// QUIT in TRANSACTION (the UPDATE state, RFC 1939 §6): remove these messages,
    /// durably, then answer. Only ever asked after a client's QUIT.
    CommitDeletions {
        token: Token,
        messages: Vec<MessageRef>,
    },
    /// Close the connection (after writing everything sent before), and release the
    /// maildrop lock if one is held.
    Close,
    /// Something worth logging or counting happened.
    Event(SessionEvent),
}

/// One message of a maildrop, as the driver lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildropEntry {
    /// A unique id that never changes for this message in this maildrop (UIDL,
    /// RFC 1939 §7: 1 to 70 characters from 0x21 to 0x7E), in the store's
    /// `<uidvalidity>.<uid>` style.
    pub uid: String,
    /// Its size in octets as the client receives it: with CRLF line ends, before
    /// byte-stuffing (RFC 1939 §5, LIST).
    pub size: u64,
}

/// The answer to [`Output::OpenMaildrop`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaildropOutcome {
    /// Locked and listed, oldest first; message 1 is the first entry.
    Opened(Vec<MaildropEntry>),
    /// Another session holds the lock (`-ERR [IN-USE]`, RFC 2449 §8.1.1).
    Locked,
    /// The store could not be asked (`-ERR [SYS/TEMP]`, RFC 3206 §4).
    TemporaryFailure,
}

/// One part of a message being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageData {
    /// The next bytes of the stored message, in order; any size (the driver's read
    /// size is the session's memory for it).
    Chunk(Vec<u8>),
    /// The message is complete.
    End,
    /// The message could not be read. Before any chunk: `-ERR [SYS/TEMP]`; after one,
    /// the session closes without the terminating dot, so the client sees the
    /// response is incomplete.
    Failed,
}

/// A message marked deleted, named both ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    /// Its index in the listing the driver gave (message number minus one).
    pub index: usize,
    pub uid: String,
}

/// The answer to [`Output::CommitDeletions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every listed message is removed, durably.
    Done,
    /// Not all were removed (`-ERR [SYS/TEMP]`).
    Failed,
}
