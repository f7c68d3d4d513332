//! The client session's event stream: what happened, for logs and metrics. Events
//! never carry message content.

use super::io::SessionFailureKind;
use crate::smtp::reply::ReplyCode;

/// One thing worth logging or counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server greeted us with 220.
    Greeted,
    /// EHLO/LHLO (`extended`) or the HELO fallback was accepted.
    Hello { extended: bool },
    /// TLS is active; `verified` when the certificate was checked.
    TlsStarted { verified: bool },
    /// Opportunistic TLS: the server does not offer STARTTLS, or refused it with this
    /// code; the session goes on in plain text.
    TlsSkipped { refused_with: Option<ReplyCode> },
    /// The relay accepted our credentials (RFC 4954). The username is not repeated
    /// here: the configuration knows it, and logs need not.
    Authenticated,
    /// A DSN parameter could not be written as a valid command parameter and was left
    /// out (an ORCPT with a malformed address type, an over-long ENVID).
    ParameterDropped {
        queue_id: String,
        parameter: &'static str,
    },
    /// A message's transaction ended; counts of its recipients' outcomes.
    MessageFinished {
        queue_id: String,
        delivered: usize,
        temporary: usize,
        permanent: usize,
        unresolved: usize,
    },
    /// The session failed; every unanswered recipient is unresolved.
    SessionFailed { kind: SessionFailureKind },
}
