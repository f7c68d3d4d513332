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
    General {
        tag: String,
        content: String,
    },
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

/// RFC 5321 §4.5.3.1.1: the longest local part, in octets (counted on the decoded text,
/// so that every `LocalPart` that can be built can also be parsed back).
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: the longest domain, in octets (also applied to address literals).
const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4: the longest label of a domain, in octets.
const MAX_LABEL: usize = 63;
/// RFC 5321 §4.5.3.1.3: the longest path, brackets and source route included.
const MAX_PATH: usize = 256;

/// A read position over text that only ever advances by whole characters, so that
/// every slice taken from it falls on a character boundary.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, position: usize) -> Self {
        Cursor { text, position }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.position..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek()?;
        self.position += next.len_utf8();
        Some(next)
    }

    /// Advances over the longest run of characters matching `accept` and returns it.
    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> &'a str {
        let start = self.position;
        while self.peek().is_some_and(&accept) {
            self.bump();
        }
        self.text.get(start..self.position).unwrap_or("")
    }
}

/// RFC 5321 `atext` (via RFC 5322), with RFC 6531's UTF8-non-ascii.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// RFC 5321 `qtextSMTP`, with RFC 6531's UTF8-non-ascii.
fn is_qtext(c: char) -> bool {
    matches!(c, ' ' | '!' | '#'..='[' | ']'..='~') || !c.is_ascii()
}

/// Whether `text` is a valid RFC 5321 `Dot-string`: atoms joined by single dots.
fn is_dot_string(text: &str) -> bool {
    text.split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// A character that may appear in a domain as written: letters and digits (RFC 6531
/// U-labels admit non-ASCII letters), hyphens, and the dots between labels.
fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.' || (!c.is_ascii() && c.is_alphanumeric())
}

fn check_domain(text: &str) -> Result<(), AddressError> {
    if text.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c != '.' && is_domain_char(c))
    };
    if text.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(AddressError::BadDomain)
    }
}

/// RFC 5321 `Snum`: one to three decimal digits up to 255. Leading zeros are read
/// as decimal (as the grammar says; SMTP has no octal) and disappear on output.
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Reads colon-separated `IPv6-hex` groups, the last of which may be an IPv4 address
/// when `allow_ipv4` holds. Returns the 16-bit groups and how many were hex groups.
fn parse_ipv6_groups(text: &str, allow_ipv4: bool) -> Option<(Vec<u16>, usize)> {
    let mut groups = Vec::new();
    if text.is_empty() {
        return Some((groups, 0));
    }
    let mut hex_groups = 0;
    let mut pieces = text.split(':').peekable();
    while let Some(piece) = pieces.next() {
        // Eight groups is the most any form holds; stop early on absurd input.
        if groups.len() >= 8 {
            return None;
        }
        if allow_ipv4 && pieces.peek().is_none() && piece.contains('.') {
            let [a, b, c, d] = parse_ipv4(piece)?.octets();
            groups.push(u16::from_be_bytes([a, b]));
            groups.push(u16::from_be_bytes([c, d]));
        } else {
            if piece.is_empty() || piece.len() > 4 || !piece.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return None;
            }
            groups.push(u16::from_str_radix(piece, 16).ok()?);
            hex_groups += 1;
        }
    }
    Some((groups, hex_groups))
}

/// The four IPv6 forms of RFC 5321 §4.1.3: full, compressed (`::` standing for at least
/// two zero groups, at most six others), and both with a trailing IPv4 address.
fn parse_ipv6(text: &str) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    if let Some((head, tail)) = text.split_once("::") {
        if tail.contains("::") {
            return None;
        }
        let (head, head_hex) = parse_ipv6_groups(head, false)?;
        let (tail, tail_hex) = parse_ipv6_groups(tail, true)?;
        let has_ipv4 = tail.len() > tail_hex;
        let limit = if has_ipv4 { 4 } else { 6 };
        if head_hex + tail_hex > limit {
            return None;
        }
        groups.get_mut(..head.len())?.copy_from_slice(&head);
        groups.get_mut(8 - tail.len()..)?.copy_from_slice(&tail);
    } else {
        let (all, _) = parse_ipv6_groups(text, true)?;
        if all.len() != 8 {
            return None;
        }
        groups.copy_from_slice(&all);
    }
    Some(Ipv6Addr::from(groups))
}

/// RFC 5321 `Ldh-str`: letters, digits and hyphens, not ending in a hyphen.
fn is_ldh_str(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !text.ends_with('-')
}

/// RFC 5321 `dcontent`: printable ASCII except `[`, `\` and `]`.
fn is_dcontent(c: char) -> bool {
    matches!(c, '!'..='Z' | '^'..='~')
}

impl AddressLiteral {
    /// Parses a whole address literal, brackets included: `[192.0.2.1]`,
    /// `[IPv6:2001:db8::1]` (tag in any case) or `[tag:content]`.
    pub fn parse(text: &str) -> Result<AddressLiteral, AddressError> {
        if text.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        let inner = text
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .ok_or(AddressError::BadAddressLiteral)?;
        let literal = match inner.split_once(':') {
            Some((tag, address)) if tag.eq_ignore_ascii_case("IPv6") => {
                parse_ipv6(address).map(AddressLiteral::V6)
            }
            Some((tag, content))
                if is_ldh_str(tag) && !content.is_empty() && content.chars().all(is_dcontent) =>
            {
                Some(AddressLiteral::General {
                    tag: tag.to_owned(),
                    content: content.to_owned(),
                })
            }
            Some(_) => None,
            None => parse_ipv4(inner).map(AddressLiteral::V4),
        };
        literal.ok_or(AddressError::BadAddressLiteral)
    }
}

impl Host {
    /// Parses a whole domain or address literal (no surrounding text), as in EHLO.
    pub fn parse(text: &str) -> Result<Host, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        let mut cursor = Cursor::new(text, 0);
        let host = parse_host(&mut cursor)?;
        if cursor.position == text.len() {
            Ok(host)
        } else {
            Err(AddressError::TrailingGarbage)
        }
    }
}

fn parse_host(cursor: &mut Cursor<'_>) -> Result<Host, AddressError> {
    if cursor.peek() == Some('[') {
        let start = cursor.position;
        cursor.take_while(|c| c != ']');
        if cursor.bump() != Some(']') {
            return Err(AddressError::BadAddressLiteral);
        }
        let literal = cursor.text.get(start..cursor.position).unwrap_or("");
        return AddressLiteral::parse(literal).map(Host::Literal);
    }
    let domain = cursor.take_while(is_domain_char);
    // A character that cannot end a domain (`_`, a symbol) makes the domain bad rather
    // than leaving "garbage" after a shortened, valid-looking one.
    if domain.is_empty() || cursor.peek().is_some_and(|c| c != '>' && c != ' ') {
        return Err(AddressError::BadDomain);
    }
    check_domain(domain)?;
    Ok(Host::Domain(Domain(domain.to_owned())))
}

fn parse_local_part(cursor: &mut Cursor<'_>) -> Result<LocalPart, AddressError> {
    let decoded = if cursor.peek() == Some('"') {
        cursor.bump();
        let mut decoded = String::new();
        loop {
            match cursor.bump() {
                Some('"') => break,
                Some('\\') => match cursor.bump() {
                    Some(c @ ' '..='~') => decoded.push(c),
                    _ => return Err(AddressError::BadLocalPart),
                },
                Some(c) if is_qtext(c) => decoded.push(c),
                _ => return Err(AddressError::BadLocalPart),
            }
            // Bail out as soon as the limit is passed rather than after reading it all.
            if decoded.len() > MAX_LOCAL_PART {
                return Err(AddressError::LocalPartTooLong);
            }
        }
        decoded
    } else {
        let dot_string = cursor.take_while(|c| c == '.' || is_atext(c));
        if !is_dot_string(dot_string) {
            return Err(AddressError::BadLocalPart);
        }
        dot_string.to_owned()
    };
    if decoded.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong);
    }
    Ok(LocalPart(decoded))
}

fn parse_mailbox(cursor: &mut Cursor<'_>) -> Result<Mailbox, AddressError> {
    let local_part = parse_local_part(cursor)?;
    match cursor.bump() {
        Some('@') => {}
        // A local part alone (`<postmaster>` in MAIL, `user` in AUTH=) lacks its domain.
        None | Some('>') => return Err(AddressError::BadDomain),
        Some(_) => return Err(AddressError::BadLocalPart),
    }
    let host = parse_host(cursor)?;
    Ok(Mailbox { local_part, host })
}

/// What may sit between angle brackets; each caller admits its own subset.
enum Path {
    Null,
    Postmaster,
    Mailbox(Mailbox),
}

/// Parses `<>`, `<Postmaster>`, `<mailbox>` or `<A-d-l:mailbox>` at the start of `text`.
///
/// The brackets are required: RFC 5321 makes them part of `Path`, and although many
/// servers accept `MAIL FROM:user@example.com`, a bare address is ambiguous once
/// parameters follow, so Sluice rejects it with `MissingAngleBrackets`.
fn parse_path(text: &str) -> Result<(Path, usize), AddressError> {
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    if !text.starts_with('<') {
        return Err(AddressError::MissingAngleBrackets);
    }
    let mut cursor = Cursor::new(text, 1);
    if cursor.peek() == Some('>') {
        return Ok((Path::Null, 2));
    }
    let mut routed = false;
    if cursor.peek() == Some('@') {
        // RFC 5321 §4.1.1.3 and Appendix C: the source route is accepted and ignored.
        routed = true;
        loop {
            if cursor.bump() != Some('@') {
                return Err(AddressError::BadSourceRoute);
            }
            let domain = cursor.take_while(is_domain_char);
            if domain.is_empty() || check_domain(domain).is_err() {
                return Err(AddressError::BadSourceRoute);
            }
            match cursor.bump() {
                Some(',') => continue,
                Some(':') => break,
                _ => return Err(AddressError::BadSourceRoute),
            }
        }
    }
    let is_postmaster = !routed
        && cursor
            .rest()
            .as_bytes()
            .get(..11)
            .is_some_and(|word| word.eq_ignore_ascii_case(b"postmaster>"));
    let path = if is_postmaster {
        cursor.position += 10;
        Path::Postmaster
    } else {
        Path::Mailbox(parse_mailbox(&mut cursor)?)
    };
    match cursor.bump() {
        Some('>') => {}
        None => return Err(AddressError::MissingAngleBrackets),
        Some(_) => return Err(AddressError::TrailingGarbage),
    }
    // The limit holds for the path as received and as Sluice would write it (which a
    // canonical IPv6 literal can make longer), so that normalising never breaks it.
    let written = match &path {
        Path::Mailbox(mailbox) => mailbox.to_string().len() + 2,
        Path::Null | Path::Postmaster => 0,
    };
    if cursor.position > MAX_PATH || written > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    Ok((path, cursor.position))
}

impl Domain {
    /// Parses a whole domain (no surrounding text).
    pub fn parse(text: &str) -> Result<Domain, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        check_domain(text)?;
        Ok(Domain(text.to_owned()))
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

impl core::str::FromStr for Domain {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<Domain, AddressError> {
        Domain::parse(text)
    }
}

impl LocalPart {
    /// Builds a local part from its decoded text; fails if it cannot be written
    /// even as a Quoted-string (control characters) or is longer than 64 octets.
    pub fn new(decoded: &str) -> Result<LocalPart, AddressError> {
        if decoded.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalPartTooLong);
        }
        if decoded.chars().any(|c| c < ' ' || c == '\u{7f}') {
            return Err(AddressError::BadLocalPart);
        }
        Ok(LocalPart(decoded.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
    /// Whether the wire form needs quotes (the text is not a valid Dot-string).
    pub fn needs_quoting(&self) -> bool {
        !is_dot_string(&self.0)
    }
}

impl Mailbox {
    /// Parses `local@host` without angle brackets.
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        let mut cursor = Cursor::new(text, 0);
        let mailbox = parse_mailbox(&mut cursor)?;
        if cursor.position == text.len() {
            Ok(mailbox)
        } else {
            Err(AddressError::TrailingGarbage)
        }
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

impl core::str::FromStr for Mailbox {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<Mailbox, AddressError> {
        Mailbox::parse(text)
    }
}

impl ReversePath {
    /// Parses `<>`, `<mailbox>` or `<@route,@route:mailbox>` (the route is ignored).
    /// Returns the path and the number of bytes consumed, so that parameters may follow.
    pub fn parse_prefix(text: &str) -> Result<(ReversePath, usize), AddressError> {
        match parse_path(text)? {
            (Path::Null, consumed) => Ok((ReversePath::Null, consumed)),
            (Path::Mailbox(mailbox), consumed) => Ok((ReversePath::Mailbox(mailbox), consumed)),
            // `<Postmaster>` is special only as a recipient; as a sender it lacks a domain.
            (Path::Postmaster, _) => Err(AddressError::BadDomain),
        }
    }
}

impl ForwardPath {
    /// Parses `<Postmaster>` (any case), `<mailbox>` or `<@route:mailbox>`.
    /// Returns the path and the number of bytes consumed.
    pub fn parse_prefix(text: &str) -> Result<(ForwardPath, usize), AddressError> {
        match parse_path(text)? {
            (Path::Null, _) => Err(AddressError::Empty),
            (Path::Postmaster, consumed) => Ok((ForwardPath::Postmaster, consumed)),
            (Path::Mailbox(mailbox), consumed) => Ok((ForwardPath::Mailbox(mailbox), consumed)),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressLiteral::V4(address) => write!(f, "[{address}]"),
            AddressLiteral::V6(address) => write!(f, "[IPv6:{address}]"),
            AddressLiteral::General { tag, content } => write!(f, "[{tag}:{content}]"),
        }
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
        if !self.needs_quoting() {
            return f.write_str(&self.0);
        }
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Mailbox {
        Mailbox::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    fn reverse(text: &str) -> Result<(ReversePath, usize), AddressError> {
        ReversePath::parse_prefix(text)
    }

    fn forward(text: &str) -> Result<(ForwardPath, usize), AddressError> {
        ForwardPath::parse_prefix(text)
    }

    #[test]
    fn dot_string_local_parts() {
        let parsed = mailbox("John.Doe@example.com");
        assert_eq!(parsed.local_part.as_str(), "John.Doe");
        assert_eq!(parsed.host, Host::Domain(Domain("example.com".into())));
        assert_eq!(parsed.to_string(), "John.Doe@example.com");
        assert_eq!(
            mailbox("!#$%&'*+-/=?^_`{|}~@x").local_part.as_str(),
            "!#$%&'*+-/=?^_`{|}~"
        );
        for bad in [
            "John..Doe@example.com",
            ".a@b",
            "a.@b",
            "@b",
            "a b@c",
            "a(b)@c",
            "a\"b@c",
        ] {
            assert_eq!(
                Mailbox::parse(bad),
                Err(AddressError::BadLocalPart),
                "{bad}"
            );
        }
    }

    #[test]
    fn quoted_local_parts_decode_and_requote_minimally() {
        let parsed = mailbox("\"John..Doe\"@example.com");
        assert_eq!(parsed.local_part.as_str(), "John..Doe");
        assert!(parsed.local_part.needs_quoting());
        assert_eq!(parsed.to_string(), "\"John..Doe\"@example.com");

        let escaped = mailbox(r#""a\"b\\c\ d"@x"#);
        assert_eq!(escaped.local_part.as_str(), r#"a"b\c d"#);
        assert_eq!(escaped.to_string(), r#""a\"b\\c d"@x"#);

        // A quoted Dot-string needs no quotes: normalised away.
        assert_eq!(mailbox("\"simple\"@x").to_string(), "simple@x");
        assert_eq!(mailbox("\"\"@x").local_part.as_str(), "");
        assert_eq!(mailbox("\"\"@x").to_string(), "\"\"@x");

        for bad in [
            "\"unterminated@x",
            "\"a\\\u{1}\"@x",
            "\"tab\there\"@x",
            "\"a\"b@x",
            "\"a\\é\"@x",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn utf8_addresses() {
        let parsed = mailbox("用户@例子.广告");
        assert_eq!(parsed.local_part.as_str(), "用户");
        assert!(!parsed.is_ascii());
        assert!(!parsed.local_part.is_ascii());
        assert_eq!(parsed.to_string(), "用户@例子.广告");
        let quoted = mailbox("\"josé smith\"@bücher.example");
        assert_eq!(quoted.local_part.as_str(), "josé smith");
        assert!(mailbox("a@b.example").is_ascii());
        // Non-alphanumeric symbols are not letters of a U-label.
        assert_eq!(Mailbox::parse("a@b☃.example"), Err(AddressError::BadDomain));
        assert_eq!(Domain::parse("b☃.example"), Err(AddressError::BadDomain));
    }

    #[test]
    fn local_part_constructor() {
        assert_eq!(LocalPart::new("a b").unwrap().to_string(), "\"a b\"");
        assert_eq!(LocalPart::new("a.b").unwrap().to_string(), "a.b");
        assert!(!LocalPart::new("a.b").unwrap().needs_quoting());
        assert!(LocalPart::new("").unwrap().needs_quoting());
        assert_eq!(LocalPart::new("a\u{0}b"), Err(AddressError::BadLocalPart));
        assert_eq!(LocalPart::new("a\u{7f}b"), Err(AddressError::BadLocalPart));
        assert_eq!(LocalPart::new("a\nb"), Err(AddressError::BadLocalPart));
        assert!(LocalPart::new(&"a".repeat(64)).is_ok());
        assert_eq!(
            LocalPart::new(&"a".repeat(65)),
            Err(AddressError::LocalPartTooLong)
        );
        assert_eq!(
            LocalPart::new(&"é".repeat(33)),
            Err(AddressError::LocalPartTooLong)
        );
    }

    #[test]
    fn size_limits() {
        assert!(Mailbox::parse(&format!("{}@x", "a".repeat(64))).is_ok());
        assert_eq!(
            Mailbox::parse(&format!("{}@x", "a".repeat(65))),
            Err(AddressError::LocalPartTooLong)
        );
        assert_eq!(
            Mailbox::parse(&format!("\"{}\"@x", "a ".repeat(40))),
            Err(AddressError::LocalPartTooLong)
        );
        let label = "a".repeat(63);
        let domain_255 = format!("{label}.{label}.{label}.{}", "b".repeat(63));
        assert_eq!(domain_255.len(), 255);
        assert!(Domain::parse(&domain_255).is_ok());
        assert_eq!(
            Domain::parse(&format!("{domain_255}c")),
            Err(AddressError::DomainTooLong)
        );
        assert_eq!(
            Domain::parse(&format!("{}.x", "a".repeat(64))),
            Err(AddressError::BadDomain)
        );

        // 1 + 64 + 1 + 189 + 1 = 256 octets fits; one more does not.
        let domain = |len: usize| {
            let mut text = "a".repeat(len);
            for index in (63..len).step_by(64) {
                text.replace_range(index..=index, ".");
            }
            text
        };
        let fits = format!("<{}@{}>", "l".repeat(64), domain(189));
        assert_eq!(fits.len(), 256);
        assert_eq!(reverse(&fits).unwrap().1, 256);
        let too_long = format!("<{}@{}>", "l".repeat(64), domain(190));
        assert_eq!(reverse(&too_long), Err(AddressError::PathTooLong));
    }

    #[test]
    fn domains() {
        for good in [
            "example.com",
            "a",
            "a-b.c",
            "123.example",
            "EXAMPLE.Com",
            "xn--bcher-kva.example",
            "例子.广告",
        ] {
            assert_eq!(Domain::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(Domain::parse(""), Err(AddressError::Empty));
        for bad in [
            "example.com.",
            ".example.com",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b",
            "a@b",
            "[1.2.3.4]",
        ] {
            assert_eq!(Domain::parse(bad), Err(AddressError::BadDomain), "{bad}");
        }
        assert!(
            Domain::parse("Example.COM")
                .unwrap()
                .eq_ignore_case(&Domain::parse("example.com").unwrap())
        );
        assert!("example.com".parse::<Domain>().is_ok());
        assert_eq!(Mailbox::parse("a@"), Err(AddressError::BadDomain));
        assert_eq!(Mailbox::parse("a@b."), Err(AddressError::BadDomain));
        assert_eq!(Mailbox::parse("postmaster"), Err(AddressError::BadDomain));
        assert_eq!(Mailbox::parse(""), Err(AddressError::Empty));
    }

    #[test]
    fn ipv4_literals() {
        let parsed = mailbox("user@[192.0.2.1]");
        assert_eq!(
            parsed.host,
            Host::Literal(AddressLiteral::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(parsed.to_string(), "user@[192.0.2.1]");
        // Leading zeros are decimal, as Snum says, and normalise away.
        assert_eq!(
            AddressLiteral::parse("[010.000.2.1]").unwrap().to_string(),
            "[10.0.2.1]"
        );
        for bad in [
            "[256.0.0.1]",
            "[1.2.3]",
            "[1.2.3.4.5]",
            "[1.2.3.]",
            "[1.2.3.0001]",
            "[1.2.3.-1]",
            "[]",
            "[1.2.3.4",
            "1.2.3.4]",
        ] {
            assert_eq!(
                AddressLiteral::parse(bad),
                Err(AddressError::BadAddressLiteral),
                "{bad}"
            );
        }
        assert_eq!(
            Mailbox::parse("a@[1.2.3.4"),
            Err(AddressError::BadAddressLiteral)
        );
        assert_eq!(
            Mailbox::parse("a@[1.2.3.4]x"),
            Err(AddressError::TrailingGarbage)
        );
    }

    #[test]
    fn ipv6_literals() {
        let v6 = |text: &str| match AddressLiteral::parse(text) {
            Ok(AddressLiteral::V6(address)) => address,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            mailbox("user@[IPv6:2001:db8::1]").to_string(),
            "user@[IPv6:2001:db8::1]"
        );
        assert_eq!(v6("[ipv6:2001:DB8:0:0:0:0:0:1]").to_string(), "2001:db8::1");
        assert_eq!(
            AddressLiteral::parse("[ipv6:2001:DB8:0:0:0:0:0:1]")
                .unwrap()
                .to_string(),
            "[IPv6:2001:db8::1]"
        );
        assert_eq!(v6("[IPv6:::]"), Ipv6Addr::UNSPECIFIED);
        assert_eq!(v6("[IPv6:::1]"), Ipv6Addr::LOCALHOST);
        assert_eq!(v6("[IPv6:1::]").segments(), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            v6("[IPv6:1:2:3:4:5:6::]").segments(),
            [1, 2, 3, 4, 5, 6, 0, 0]
        );
        assert_eq!(
            v6("[IPv6:::ffff:192.0.2.1]").to_string(),
            "::ffff:192.0.2.1"
        );
        assert_eq!(
            v6("[IPv6:1:2:3:4:5:6:1.2.3.4]").segments(),
            [1, 2, 3, 4, 5, 6, 0x102, 0x304]
        );
        assert_eq!(
            v6("[IPv6:1:2:3:4::1.2.3.4]").segments(),
            [1, 2, 3, 4, 0, 0, 0x102, 0x304]
        );
        assert_eq!(
            v6("[IPv6:1::2:3:4:1.2.3.4]").segments(),
            [1, 0, 0, 2, 3, 4, 0x102, 0x304]
        );
        for bad in [
            "[IPv6:1:2:3:4:5:6:7::]",   // `::` must stand for at least two groups
            "[IPv6:1:2:3:4:5::6:7]",    // likewise
            "[IPv6:1:2:3:4:5:6:7]",     // seven groups
            "[IPv6:1:2:3:4:5:6:7:8:9]", // nine groups
            "[IPv6:1::2::3]",
            "[IPv6::1:2]",
            "[IPv6:12345::]",
            "[IPv6:g::]",
            "[IPv6:1:2:3:4:5::1.2.3.4]", // v4-comp allows four hex groups at most
            "[IPv6:1.2.3.4::]",
            "[IPv6:::1.2.3.256]",
            "[IPv6:]",
            "[IPv6:1:2:3:4:5:6:7:1.2.3.4]",
        ] {
            assert_eq!(
                AddressLiteral::parse(bad),
                Err(AddressError::BadAddressLiteral),
                "{bad}"
            );
        }
    }

    #[test]
    fn general_literals() {
        let literal = AddressLiteral::parse("[x-tag:some!content~]").unwrap();
        assert_eq!(
            literal,
            AddressLiteral::General {
                tag: "x-tag".into(),
                content: "some!content~".into()
            }
        );
        assert_eq!(literal.to_string(), "[x-tag:some!content~]");
        assert!(AddressLiteral::parse("[tag:a:b]").is_ok());
        for bad in [
            "[tag-:x]",
            "[:x]",
            "[tag:]",
            "[tag:a b]",
            "[tag:a\\b]",
            "[t_g:x]",
            "[tag:a[b]",
        ] {
            assert_eq!(
                AddressLiteral::parse(bad),
                Err(AddressError::BadAddressLiteral),
                "{bad}"
            );
        }
    }

    #[test]
    fn reverse_paths() {
        assert_eq!(reverse("<>"), Ok((ReversePath::Null, 2)));
        assert_eq!(reverse("<> SIZE=10"), Ok((ReversePath::Null, 2)));
        let (path, consumed) = reverse("<a@b.example> BODY=8BITMIME").unwrap();
        assert_eq!(path, ReversePath::Mailbox(mailbox("a@b.example")));
        assert_eq!(consumed, 13);
        assert_eq!(path.to_string(), "<a@b.example>");
        let (routed, consumed) = reverse("<@hosta.int,@jkl.org:userc@d.bar.org>").unwrap();
        assert_eq!(routed.to_string(), "<userc@d.bar.org>");
        assert_eq!(consumed, 37);
        // A quoted `>` does not end the path.
        assert_eq!(reverse("<\"a>b\"@c>").unwrap().1, 9);
        assert_eq!(reverse(""), Err(AddressError::Empty));
        assert_eq!(reverse("a@b"), Err(AddressError::MissingAngleBrackets));
        assert_eq!(reverse("<a@b"), Err(AddressError::MissingAngleBrackets));
        assert_eq!(reverse("<"), Err(AddressError::BadLocalPart));
        assert_eq!(reverse("<a@b c>"), Err(AddressError::TrailingGarbage));
        assert_eq!(reverse("<Postmaster>"), Err(AddressError::BadDomain));
        assert_eq!(reverse("<a@b>>").unwrap().1, 5);
    }

    #[test]
    fn forward_paths() {
        assert_eq!(forward("<Postmaster>"), Ok((ForwardPath::Postmaster, 12)));
        assert_eq!(
            forward("<POSTMASTER> NOTIFY=NEVER"),
            Ok((ForwardPath::Postmaster, 12))
        );
        assert_eq!(
            forward("<postmaster>").unwrap().0.to_string(),
            "<Postmaster>"
        );
        let (domain_postmaster, _) = forward("<Postmaster@example.com>").unwrap();
        assert_eq!(
            domain_postmaster,
            ForwardPath::Mailbox(mailbox("Postmaster@example.com"))
        );
        assert_eq!(
            forward("<@a.example:Postmaster>"),
            Err(AddressError::BadDomain)
        );
        assert_eq!(forward("<>"), Err(AddressError::Empty));
        let (routed, _) = forward("<@a.example:u@b.example>").unwrap();
        assert_eq!(routed, ForwardPath::Mailbox(mailbox("u@b.example")));
    }

    #[test]
    fn source_routes() {
        for bad in [
            "<@:a@b>",
            "<@a.example>",
            "<@a.example,a@b>",
            "<@a.example;x:a@b>",
            "<@-a:a@b>",
            "<@a,b:c@d>",
            "<@[1.2.3.4]:a@b>",
        ] {
            assert_eq!(reverse(bad), Err(AddressError::BadSourceRoute), "{bad}");
        }
        assert_eq!(reverse("<@a:>"), Err(AddressError::BadLocalPart));
    }

    #[test]
    fn host_parse() {
        assert_eq!(
            Host::parse("mail.example").unwrap().to_string(),
            "mail.example"
        );
        assert_eq!(
            Host::parse("[192.0.2.1]").unwrap().to_string(),
            "[192.0.2.1]"
        );
        assert_eq!(Host::parse(""), Err(AddressError::Empty));
        assert_eq!(Host::parse("a b"), Err(AddressError::TrailingGarbage));
    }
}
