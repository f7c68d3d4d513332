//! SMTP replies (RFC 5321 §4.2): a three-digit code, optional enhanced status code
//! (RFC 2034, RFC 3463) and one or more text lines, serialised as `250-...` lines
//! followed by a final `250 ...` line, each ending in CRLF.

use core::fmt;

/// A reply code, 200..=599 in practice; the parser accepts 2xx–5xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyCode(pub u16);

/// The class of a reply code: positive completion, intermediate, transient or permanent failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyClass {
    PositiveCompletion,
    PositiveIntermediate,
    TransientNegative,
    PermanentNegative,
}

/// An enhanced status code `class.subject.detail` (RFC 3463), e.g. 5.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2, 4 or 5.
    pub class: u8,
    /// 0..=999.
    pub subject: u16,
    /// 0..=999.
    pub detail: u16,
}

/// A whole reply. `lines` is never empty; each line holds no CR or LF.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reply {
    pub code: ReplyCode,
    pub status: Option<EnhancedStatus>,
    pub lines: Vec<String>,
}

/// Why reply bytes could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line does not start with a three-digit code")]
    BadCode,
    #[error("reply line has neither a space nor a hyphen after the code")]
    BadSeparator,
    #[error("lines of one reply carry different codes")]
    MixedCodes,
    #[error("reply line does not end in CRLF")]
    BadLineEnding,
    #[error("reply is not valid UTF-8")]
    InvalidUtf8,
    #[error("reply line too long")]
    LineTooLong,
    #[error("reply has too many lines")]
    TooManyLines,
}

impl ReplyCode {
    pub fn class(self) -> ReplyClass {
        match self.0 / 100 {
            2 => ReplyClass::PositiveCompletion,
            3 => ReplyClass::PositiveIntermediate,
            4 => ReplyClass::TransientNegative,
            _ => ReplyClass::PermanentNegative,
        }
    }
}

impl EnhancedStatus {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedStatus { class, subject, detail }
    }
    /// Parses `c.sss.ddd` at the start of `text`; returns it and the bytes consumed.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedStatus, usize)> {
        todo!("grammar")
    }
}

impl Reply {
    /// A single-line reply with an enhanced status code.
    pub fn new(code: u16, status: EnhancedStatus, text: impl Into<String>) -> Reply {
        Reply { code: ReplyCode(code), status: Some(status), lines: vec![text.into()] }
    }

    /// The wire form: every line but the last as `CODE-`, the last as `CODE `, the
    /// enhanced status code (if any) at the start of each line's text, CRLF endings.
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!("grammar")
    }

    /// Parses one complete reply from the start of `bytes`. Returns `Ok(None)` if more
    /// bytes are needed, else the reply and the number of bytes consumed. An enhanced
    /// status code is recognised when the first line's text starts with one whose class
    /// matches the reply code's first digit; it is then stripped from every line.
    pub fn parse(bytes: &[u8], max_line: usize, max_lines: usize) -> Result<Option<(Reply, usize)>, ReplyError> {
        todo!("grammar")
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}
