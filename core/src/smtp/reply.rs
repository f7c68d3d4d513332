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

/// Reads one to three decimal digits at the start of `bytes`; a fourth digit means the
/// number is not a status component at all.
fn status_number(bytes: &[u8]) -> Option<(u16, usize)> {
    let length = bytes
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if length == 0 || length > 3 {
        return None;
    }
    let value = bytes
        .iter()
        .take(length)
        .fold(0u16, |value, digit| value * 10 + u16::from(digit - b'0'));
    Some((value, length))
}

impl EnhancedStatus {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }
    /// Parses `c.sss.ddd` at the start of `text`; returns it and the bytes consumed.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedStatus, usize)> {
        let bytes = text.as_bytes();
        let class = match bytes.first()? {
            b'2' => 2,
            b'4' => 4,
            b'5' => 5,
            _ => return None,
        };
        if bytes.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, subject_length) = status_number(bytes.get(2..)?)?;
        let dot = 2 + subject_length;
        if bytes.get(dot) != Some(&b'.') {
            return None;
        }
        let (detail, detail_length) = status_number(bytes.get(dot + 1..)?)?;
        Some((
            EnhancedStatus {
                class,
                subject,
                detail,
            },
            dot + 1 + detail_length,
        ))
    }
}

/// The enhanced status at the start of a reply line's text, when its class matches the
/// reply code and it stands alone (followed by a space or nothing). Returns the status
/// and the bytes it takes up, its trailing space included.
fn status_of_line(text: &str, code_class: u8) -> Option<(EnhancedStatus, usize)> {
    let (status, length) = EnhancedStatus::parse_prefix(text)?;
    if status.class != code_class {
        return None;
    }
    match text.as_bytes().get(length) {
        None => Some((status, length)),
        Some(b' ') => Some((status, length + 1)),
        Some(_) => None,
    }
}

/// One reply line's code, whether it is the last line, and its text.
fn parse_line(line: &[u8]) -> Result<(u16, bool, &str), ReplyError> {
    let code = match line {
        [
            first @ b'2'..=b'5',
            second @ b'0'..=b'9',
            third @ b'0'..=b'9',
            ..,
        ] => {
            u16::from(first - b'0') * 100 + u16::from(second - b'0') * 10 + u16::from(third - b'0')
        }
        _ => return Err(ReplyError::BadCode),
    };
    let (last, text) = match line.get(3..) {
        // RFC 5321 §4.2: the final line's text is optional, and so is its space.
        Some([]) | None => (true, &[][..]),
        Some([b' ', text @ ..]) => (true, text),
        Some([b'-', text @ ..]) => (false, text),
        Some(_) => return Err(ReplyError::BadSeparator),
    };
    let text = core::str::from_utf8(text).map_err(|_| ReplyError::InvalidUtf8)?;
    Ok((code, last, text))
}

impl Reply {
    /// A single-line reply with an enhanced status code.
    pub fn new(code: u16, status: EnhancedStatus, text: impl Into<String>) -> Reply {
        Reply {
            code: ReplyCode(code),
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// The wire form: every line but the last as `CODE-`, the last as `CODE `, the
    /// enhanced status code (if any) at the start of each line's text, CRLF endings.
    ///
    /// A CR or LF inside a line (which `lines` must not hold) is written as a space, so
    /// that no text can ever inject a line of its own; an empty `lines` writes one empty line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let code = self.code.to_string();
        let status = self.status.map(|status| status.to_string());
        let count = self.lines.len().max(1);
        let mut bytes = Vec::new();
        for index in 0..count {
            let text = self.lines.get(index).map_or("", String::as_str);
            bytes.extend_from_slice(code.as_bytes());
            bytes.push(if index + 1 < count { b'-' } else { b' ' });
            if let Some(status) = &status {
                bytes.extend_from_slice(status.as_bytes());
                if !text.is_empty() {
                    bytes.push(b' ');
                }
            }
            bytes.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            bytes.extend_from_slice(b"\r\n");
        }
        bytes
    }

    /// The length of each line as [`Reply::to_bytes`] writes it, without CRLF.
    fn written_line_lengths(&self) -> impl Iterator<Item = usize> + '_ {
        let status = self.status.map_or(0, |status| status.to_string().len());
        self.lines.iter().map(move |text| {
            let status = if status > 0 && !text.is_empty() {
                status + 1
            } else {
                status
            };
            4 + status + text.len()
        })
    }

    /// Parses one complete reply from the start of `bytes`. Returns `Ok(None)` if more
    /// bytes are needed, else the reply and the number of bytes consumed. An enhanced
    /// status code is recognised when the first line's text starts with one whose class
    /// matches the reply code's first digit; it is then stripped from every line.
    ///
    /// `max_line` counts the octets of a line without its CRLF.
    pub fn parse(
        bytes: &[u8],
        max_line: usize,
        max_lines: usize,
    ) -> Result<Option<(Reply, usize)>, ReplyError> {
        let mut consumed = 0;
        let mut code = None;
        let mut texts: Vec<&str> = Vec::new();
        loop {
            let rest = bytes.get(consumed..).unwrap_or_default();
            // Look no further than one maximal line, so that the work per call stays bounded.
            let window = rest.get(..max_line.saturating_add(2)).unwrap_or(rest);
            let Some(line_feed) = window.iter().position(|&b| b == b'\n') else {
                let stray_cr = window
                    .iter()
                    .position(|&b| b == b'\r')
                    .is_some_and(|cr| cr + 1 < window.len());
                if stray_cr {
                    return Err(ReplyError::BadLineEnding);
                }
                if window.len() > max_line.saturating_add(1) {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            let line = match window.get(..line_feed) {
                Some([line @ .., b'\r']) if !line.contains(&b'\r') => line,
                _ => return Err(ReplyError::BadLineEnding),
            };
            consumed += line_feed + 1;
            let (line_code, last, text) = parse_line(line)?;
            if *code.get_or_insert(line_code) != line_code {
                return Err(ReplyError::MixedCodes);
            }
            texts.push(text);
            if texts.len() > max_lines || (!last && texts.len() >= max_lines) {
                return Err(ReplyError::TooManyLines);
            }
            if last {
                break;
            }
        }
        let code = code.unwrap_or_default();
        // The code's first digit is 2..=5 here, so it fits a u8.
        let code_class = u8::try_from(code / 100).unwrap_or_default();
        let status = texts
            .first()
            .and_then(|first| status_of_line(first, code_class))
            .map(|(status, _)| status);
        let lines = texts
            .iter()
            .map(|text| match (status, status_of_line(text, code_class)) {
                (Some(status), Some((carried, length))) if carried == status => {
                    text.get(length..).unwrap_or_default()
                }
                _ => text,
            })
            .map(str::to_owned)
            .collect();
        let reply = Reply {
            code: ReplyCode(code),
            status,
            lines,
        };
        // Writing puts the status on every line (and a space after a bare code), which
        // can lengthen a line that lacked it; refuse here what could not be read back.
        if reply.written_line_lengths().any(|length| length > max_line) {
            return Err(ReplyError::LineTooLong);
        }
        Ok(Some((reply, consumed)))
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

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: usize = 512;
    const LINES: usize = 100;

    fn parse(bytes: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        Reply::parse(bytes, LINE, LINES)
    }

    fn complete(bytes: &[u8]) -> Reply {
        match parse(bytes) {
            Ok(Some((reply, consumed))) => {
                assert_eq!(consumed, bytes.len());
                reply
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn reply(code: u16, status: Option<EnhancedStatus>, lines: &[&str]) -> Reply {
        Reply {
            code: ReplyCode(code),
            status,
            lines: lines.iter().map(|line| line.to_string()).collect(),
        }
    }

    #[test]
    fn enhanced_status_prefix() {
        assert_eq!(
            EnhancedStatus::parse_prefix("2.1.0 ok"),
            Some((EnhancedStatus::new(2, 1, 0), 5))
        );
        assert_eq!(
            EnhancedStatus::parse_prefix("5.123.999"),
            Some((EnhancedStatus::new(5, 123, 999), 9))
        );
        assert_eq!(
            EnhancedStatus::parse_prefix("4.01.002x"),
            Some((EnhancedStatus::new(4, 1, 2), 8))
        );
        for text in [
            "3.1.0", "2.1", "2..0", "2.1.", "2.1234.0", "2.1.1234", "x", "", "2", "2-1-0", "25.1.0",
        ] {
            assert_eq!(EnhancedStatus::parse_prefix(text), None, "{text}");
        }
        assert_eq!(EnhancedStatus::new(5, 7, 1).to_string(), "5.7.1");
    }

    #[test]
    fn writes_single_and_multi_line_replies() {
        assert_eq!(
            Reply::new(250, EnhancedStatus::new(2, 1, 0), "sender ok").to_bytes(),
            b"250 2.1.0 sender ok\r\n"
        );
        let ehlo = reply(
            250,
            None,
            &["mx.example greets client", "PIPELINING", "SIZE 1000"],
        );
        assert_eq!(
            ehlo.to_bytes(),
            b"250-mx.example greets client\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
        );
        let multi = reply(
            550,
            Some(EnhancedStatus::new(5, 1, 1)),
            &["no such user", "really"],
        );
        assert_eq!(
            multi.to_bytes(),
            b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n"
        );
        assert_eq!(
            Reply::new(250, EnhancedStatus::new(2, 0, 0), "").to_bytes(),
            b"250 2.0.0\r\n"
        );
        assert_eq!(reply(334, None, &[""]).to_bytes(), b"334 \r\n");
        assert_eq!(
            reply(334, None, &["VXNlcm5hbWU6"]).to_bytes(),
            b"334 VXNlcm5hbWU6\r\n"
        );
        assert_eq!(reply(220, None, &[]).to_bytes(), b"220 \r\n");
        assert_eq!(
            reply(500, None, &["a\r\n500 b"]).to_bytes(),
            b"500 a  500 b\r\n"
        );
    }

    #[test]
    fn reads_replies_with_and_without_status() {
        assert_eq!(
            complete(b"250 2.1.0 sender ok\r\n"),
            Reply::new(250, EnhancedStatus::new(2, 1, 0), "sender ok")
        );
        assert_eq!(
            complete(b"250-mx greets you\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
            reply(250, None, &["mx greets you", "PIPELINING", "8BITMIME"])
        );
        assert_eq!(
            complete(b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n"),
            reply(
                550,
                Some(EnhancedStatus::new(5, 1, 1)),
                &["no such user", "really"]
            )
        );
        // Only lines carrying the status lose it.
        assert_eq!(
            complete(b"451-4.3.0 one\r\n451-two\r\n451 4.4.1 three\r\n"),
            reply(
                451,
                Some(EnhancedStatus::new(4, 3, 0)),
                &["one", "two", "4.4.1 three"]
            )
        );
        // A status whose class differs from the code is ordinary text.
        assert_eq!(
            complete(b"250 5.1.1 odd\r\n"),
            reply(250, None, &["5.1.1 odd"])
        );
        assert_eq!(complete(b"250 2.1.0x\r\n"), reply(250, None, &["2.1.0x"]));
        assert_eq!(
            complete(b"250 2.0.0\r\n"),
            Reply::new(250, EnhancedStatus::new(2, 0, 0), "")
        );
        assert_eq!(
            complete(b"354 end data with <CR><LF>.<CR><LF>\r\n").lines,
            ["end data with <CR><LF>.<CR><LF>"]
        );
        assert_eq!(complete(b"334 \r\n"), reply(334, None, &[""]));
        assert_eq!(complete(b"221\r\n"), reply(221, None, &[""]));
        assert_eq!(complete("250 ünïcode\r\n".as_bytes()).lines, ["ünïcode"]);
    }

    #[test]
    fn incremental_reading() {
        let wire = b"250-first\r\n250 second\r\n";
        for end in 0..wire.len() {
            assert_eq!(parse(&wire[..end]), Ok(None), "{end}");
        }
        let mut followed = wire.to_vec();
        followed.extend_from_slice(b"221 bye\r\n");
        let (first, consumed) = parse(&followed).unwrap().unwrap();
        assert_eq!(first.lines, ["first", "second"]);
        assert_eq!(consumed, wire.len());
        let (second, _) = parse(&followed[consumed..]).unwrap().unwrap();
        assert_eq!(second.code, ReplyCode(221));
    }

    #[test]
    fn rejects_malformed_replies() {
        assert_eq!(parse(b"25 ok\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse(b"abc ok\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse(b"150 ok\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse(b"650 ok\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse(b"\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse(b"250_ok\r\n"), Err(ReplyError::BadSeparator));
        assert_eq!(parse(b"2500 ok\r\n"), Err(ReplyError::BadSeparator));
        assert_eq!(parse(b"250-a\r\n251 b\r\n"), Err(ReplyError::MixedCodes));
        assert_eq!(parse(b"250 ok\n"), Err(ReplyError::BadLineEnding));
        assert_eq!(parse(b"250 o\rk\r\n"), Err(ReplyError::BadLineEnding));
        assert_eq!(parse(b"250 o\rk"), Err(ReplyError::BadLineEnding));
        assert_eq!(parse(b"250 \xff\r\n"), Err(ReplyError::InvalidUtf8));
    }

    #[test]
    fn limits() {
        let mut long = b"250 ".to_vec();
        long.extend(std::iter::repeat_n(b'x', LINE - 4));
        long.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&long), Ok(Some(_))));
        long.insert(5, b'x');
        assert_eq!(parse(&long), Err(ReplyError::LineTooLong));
        assert_eq!(parse(&long[..LINE + 2]), Err(ReplyError::LineTooLong));
        assert_eq!(parse(&long[..LINE]), Ok(None));

        assert!(matches!(
            Reply::parse(b"250-a\r\n250 b\r\n", 100, 2),
            Ok(Some(_))
        ));
        assert_eq!(
            Reply::parse(b"250-a\r\n250-b\r\n", 100, 2),
            Err(ReplyError::TooManyLines)
        );
        assert_eq!(
            Reply::parse(b"250 a\r\n", 100, 0),
            Err(ReplyError::TooManyLines)
        );
        assert!(matches!(
            Reply::parse(b"250 a\r\n", usize::MAX, usize::MAX),
            Ok(Some(_))
        ));
        // Lines must still fit once written with the status on each and a space after the code.
        assert!(matches!(
            Reply::parse(b"250-2.0.0 a\r\n250 b\r\n", 11, 10),
            Ok(Some(_))
        ));
        assert_eq!(
            Reply::parse(b"250-2.0.0 a\r\n250 bc\r\n", 11, 10),
            Err(ReplyError::LineTooLong)
        );
        assert_eq!(
            Reply::parse(b"221\r\n", 3, 10),
            Err(ReplyError::LineTooLong)
        );
    }

    #[test]
    fn round_trips() {
        for original in [
            Reply::new(250, EnhancedStatus::new(2, 1, 5), "recipient ok"),
            reply(250, None, &["mx", "SIZE 10", "8BITMIME"]),
            reply(
                552,
                Some(EnhancedStatus::new(5, 3, 4)),
                &["too big", "", "sorry"],
            ),
            reply(334, None, &[""]),
            reply(421, Some(EnhancedStatus::new(4, 7, 0)), &["4.7.0 doubled"]),
        ] {
            assert_eq!(complete(&original.to_bytes()), original);
        }
    }
}
