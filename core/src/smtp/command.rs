//! SMTP command lines (RFC 5321 §4.1.1, plus STARTTLS, AUTH and BDAT), parsed from
//! raw bytes without the trailing CRLF, and serialised in normalised form.
//!
//! Verbs are case-insensitive and serialise upper case. The parser checks syntax
//! only; whether a command is allowed *now* is the session's decision.

use super::address::{AddressError, Domain, ForwardPath, Host, ReversePath};
use super::params::{MailParameters, ParamError, RcptParameters};
use core::fmt;

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// EHLO with a domain or an address literal.
    Ehlo(Host),
    /// HELO with a domain (an address literal is accepted too, as real clients send one).
    Helo(Host),
    Mail { from: ReversePath, params: MailParameters },
    Rcpt { to: ForwardPath, params: RcptParameters },
    Data,
    /// BDAT chunk-size [LAST] (RFC 3030).
    Bdat { size: u64, last: bool },
    Rset,
    /// NOOP with its optional, ignored argument.
    Noop(Option<String>),
    Quit,
    /// VRFY with its string argument.
    Vrfy(String),
    /// EXPN with its string argument.
    Expn(String),
    /// HELP with its optional topic.
    Help(Option<String>),
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954 §4). The mechanism is upper-cased.
    Auth { mechanism: String, initial_response: Option<InitialResponse> },
}

/// The initial response of AUTH: base64 text, or `=` for an empty response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitialResponse {
    Empty,
    /// Still base64-encoded; the session decodes it.
    Base64(String),
}

/// Why a command line was rejected, in enough detail for the right reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The verb is not a command this server knows (500 5.5.2).
    #[error("command not recognised")]
    UnknownCommand,
    /// A verb used by other protocols (HTTP's GET, POST, CONNECT...): a cross-protocol attack.
    #[error("command of another protocol")]
    ForeignProtocol,
    /// The line is not valid UTF-8.
    #[error("command line is not valid UTF-8")]
    InvalidUtf8,
    /// The line holds a NUL, a bare CR or a bare LF.
    #[error("command line holds a control character")]
    ControlCharacter,
    /// Wrong arguments for a known verb (501 5.5.4).
    #[error("syntax error in arguments: {0}")]
    Syntax(&'static str),
    /// A malformed reverse-path (501 5.1.7).
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    /// A malformed forward-path (501 5.1.3).
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    /// A malformed EHLO/HELO argument (501 5.5.4).
    #[error("bad HELO/EHLO domain: {0}")]
    BadHelo(AddressError),
    /// A malformed or unknown MAIL/RCPT parameter.
    #[error("parameter error: {0}")]
    Parameter(ParamError),
}

impl Command {
    /// Parses one command line, without its CRLF. Never panics, whatever the bytes.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        todo!("grammar")
    }

    /// The upper-case verb, e.g. `"MAIL"`.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop(_) => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}

impl fmt::Display for Command {
    /// The normalised command line without CRLF, e.g. `MAIL FROM:<a@b.example> SIZE=10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("grammar")
    }
}

/// Convenience for tests and the client side: the domain argument of EHLO, if a domain.
pub fn helo_domain(host: &Host) -> Option<&Domain> {
    match host {
        Host::Domain(domain) => Some(domain),
        Host::Literal(_) => None,
    }
}
