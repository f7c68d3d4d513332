//! Mailboxes and their parts, per RFC 5321 §4.1.2 and §4.1.3, extended to UTF-8 by RFC 6531.
//!
//! Values hold the *decoded* form (a quoted local part without its quotes and
//! escapes); `Display` writes the normalised wire form (quoting only when the
//! local part is not a valid Dot-string).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// Why an address could not be parsed. The session maps each to a reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is not enclosed in angle brackets")]
    MissingAngleBrackets,
    #[error("malformed local part")]
    BadLocalPart,
    #[error("malformed domain")]
    BadDomain,
    #[error("malformed address literal")]
    BadAddressLiteral,
    #[error("malformed source route")]
    BadSourceRoute,
    #[error("local part longer than 64 octets")]
    LocalPartTooLong,
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    #[error("path longer than 256 octets")]
    PathTooLong,
    #[error("unexpected characters after the address")]
    TrailingGarbage,
}

/// A domain name: dot-separated sub-domains of letters, digits and hyphens
/// (RFC 5321 `Domain`), or UTF-8 U-labels (RFC 6531). Stored as written; compare
/// with [`Domain::eq_ignore_case`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Domain(String);

/// An address literal in square brackets (RFC 5321 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressLiteral {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// `[tag:content]` for a registered standardized tag other than IPv6.
    General { tag: String, content: String },
}

/// The part after `@`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(Domain),
    Literal(AddressLiteral),
}

/// A local part in decoded form (RFC 5321 `Local-part`: Dot-string or Quoted-string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalPart(String);

/// `Local-part "@" ( Domain / address-literal )`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub local_part: LocalPart,
    pub host: Host,
}

/// The argument of MAIL FROM: a mailbox, or the null path `<>` used by notices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

/// The argument of RCPT TO: a mailbox, or the bare `<Postmaster>` (RFC 5321 §4.5.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    Postmaster,
    Mailbox(Mailbox),
}

impl Domain {
    /// Parses a whole domain (no surrounding text).
    pub fn parse(text: &str) -> Result<Domain, AddressError> {
        todo!("grammar")
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether every label is ASCII (false for U-labels, which need SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
    /// Domains compare case-insensitively (ASCII case folding).
    pub fn eq_ignore_case(&self, other: &Domain) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl LocalPart {
    /// Builds a local part from its decoded text; fails if it cannot be written
    /// even as a Quoted-string (control characters) or is longer than 64 octets.
    pub fn new(decoded: &str) -> Result<LocalPart, AddressError> {
        todo!("grammar")
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
    /// Whether the wire form needs quotes (the text is not a valid Dot-string).
    pub fn needs_quoting(&self) -> bool {
        todo!("grammar")
    }
}

impl Mailbox {
    /// Parses `local@host` without angle brackets.
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        todo!("grammar")
    }
    /// Whether the whole mailbox is ASCII; a non-ASCII mailbox needs SMTPUTF8.
    pub fn is_ascii(&self) -> bool {
        self.local_part.is_ascii()
            && match &self.host {
                Host::Domain(domain) => domain.is_ascii(),
                Host::Literal(_) => true,
            }
    }
}

impl ReversePath {
    /// Parses `<>`, `<mailbox>` or `<@route,@route:mailbox>` (the route is ignored).
    /// Returns the path and the number of bytes consumed, so that parameters may follow.
    pub fn parse_prefix(text: &str) -> Result<(ReversePath, usize), AddressError> {
        todo!("grammar")
    }
}

impl ForwardPath {
    /// Parses `<Postmaster>` (any case), `<mailbox>` or `<@route:mailbox>`.
    /// Returns the path and the number of bytes consumed.
    pub fn parse_prefix(text: &str) -> Result<(ForwardPath, usize), AddressError> {
        todo!("grammar")
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("grammar")
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(domain) => domain.fmt(f),
            Host::Literal(literal) => literal.fmt(f),
        }
    }
}

impl fmt::Display for LocalPart {
    /// The wire form: the Dot-string as is, or a Quoted-string with `\` escapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("grammar")
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.host)
    }
}

impl fmt::Display for ReversePath {
    /// `<>` or `<mailbox>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(mailbox) => write!(f, "<{mailbox}>"),
        }
    }
}

impl fmt::Display for ForwardPath {
    /// `<Postmaster>` or `<mailbox>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(mailbox) => write!(f, "<{mailbox}>"),
        }
    }
}
