//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `esmtp-param`), decoded into
//! the extensions Sluice implements: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030),
//! SMTPUTF8 (RFC 6531), RET and ENVID (RFC 3461), AUTH= (RFC 4954) on MAIL, and
//! NOTIFY and ORCPT (RFC 3461) on RCPT. Keywords are case-insensitive; each may
//! appear at most once.

use super::address::Mailbox;
use core::fmt;

/// Why the parameter list of a MAIL or RCPT command was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A keyword this server does not know (answered 555 5.5.4).
    #[error("unrecognised parameter {0}")]
    Unknown(String),
    /// The same keyword twice.
    #[error("duplicate parameter {0}")]
    Duplicate(String),
    /// A known keyword with a missing or malformed value (answered 501 5.5.4).
    #[error("invalid value for parameter {keyword}: {reason}")]
    BadValue { keyword: String, reason: &'static str },
    /// Not `keyword[=value]` at all.
    #[error("malformed parameter syntax")]
    Syntax,
}

/// BODY= (RFC 6152 8BITMIME, RFC 3030 BINARYMIME).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// RET= (RFC 3461 §4.3): return the whole message or only its headers in a failure notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    Full,
    Headers,
}

/// NOTIFY= (RFC 3461 §4.1): `NEVER`, or any non-empty combination of the three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notify {
    Never,
    On { success: bool, failure: bool, delay: bool },
}

/// ORCPT= (RFC 3461 §4.2): `addr-type ";" xtext`, held decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OriginalRecipient {
    /// The address type, e.g. `rfc822` or `utf-8` (RFC 6533); compared case-insensitively.
    pub address_type: String,
    /// The decoded address.
    pub address: String,
}

/// AUTH= on MAIL (RFC 4954 §5): the authenticated submitter, or `<>` for unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthSubmitter {
    Unknown,
    Mailbox(Mailbox),
}

/// The parameters of a MAIL command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MailParameters {
    /// SIZE=n: the client's estimate of the message size in octets.
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    /// SMTPUTF8 (no value).
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID=, decoded from xtext.
    pub envid: Option<String>,
    pub auth: Option<AuthSubmitter>,
}

/// The parameters of a RCPT command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RcptParameters {
    pub notify: Option<Notify>,
    pub orcpt: Option<OriginalRecipient>,
}

impl MailParameters {
    /// Parses the space-separated parameters after the reverse-path (may be empty).
    pub fn parse(text: &str) -> Result<MailParameters, ParamError> {
        todo!("grammar")
    }
    pub fn is_empty(&self) -> bool {
        *self == MailParameters::default()
    }
}

impl RcptParameters {
    /// Parses the space-separated parameters after the forward-path (may be empty).
    pub fn parse(text: &str) -> Result<RcptParameters, ParamError> {
        todo!("grammar")
    }
    pub fn is_empty(&self) -> bool {
        *self == RcptParameters::default()
    }
}

impl fmt::Display for MailParameters {
    /// The normalised wire form: known keywords upper case in a fixed order
    /// (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH), separated by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("grammar")
    }
}

impl fmt::Display for RcptParameters {
    /// The normalised wire form: NOTIFY then ORCPT.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("grammar")
    }
}
