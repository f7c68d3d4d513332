//! The client input buffer of a line-based server session, and splitting it into
//! lines: only CRLF ends a line (RFC 5321 §2.3.8, RFC 1939 §3), and no line may be
//! longer than the session's command-line limit. Shared by SMTP and POP3.

use core::fmt;

/// What the start of the unprocessed input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// No complete line yet, and not too long yet.
    Incomplete,
    /// A line: its content is `..content_end`; `consumed` includes the CRLF.
    Line { content_end: usize, consumed: usize },
    /// A line ended by a bare LF, or holding a bare CR; `consumed` runs through the LF.
    BareLineEnding { consumed: usize },
    /// No LF within `max` octets: the line is too long.
    TooLong,
}

/// Looks for the next line in `input`; `max` counts the CRLF.
pub(crate) fn scan(input: &[u8], max: usize) -> Scan {
    let window = &input[..input.len().min(max)];
    match window.iter().position(|&byte| byte == b'\n') {
        Some(lf) => {
            let consumed = lf + 1;
            match lf.checked_sub(1) {
                Some(cr) if input[cr] == b'\r' && !input[..cr].contains(&b'\r') => Scan::Line {
                    content_end: cr,
                    consumed,
                },
                _ => Scan::BareLineEnding { consumed },
            }
        }
        None if input.len() >= max => Scan::TooLong,
        None => Scan::Incomplete,
    }
}

/// How many leading bytes to drop while discarding an overlong line: through the
/// next LF, or everything there is.
pub(crate) fn discard(input: &[u8]) -> (usize, bool) {
    match input.iter().position(|&byte| byte == b'\n') {
        Some(lf) => (lf + 1, true),
        None => (input.len(), false),
    }
}

/// Unprocessed client input, consumed from the front.
pub(crate) struct InputBuffer {
    bytes: Vec<u8>,
    start: usize,
}

impl InputBuffer {
    pub(crate) fn new() -> InputBuffer {
        InputBuffer {
            bytes: Vec::new(),
            start: 0,
        }
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub(crate) fn consume(&mut self, count: usize) {
        self.start = (self.start + count).min(self.bytes.len());
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.bytes.extend_from_slice(bytes);
    }

    /// Drops consumed bytes, and gives back memory a burst of input left behind.
    pub(crate) fn compact(&mut self) {
        if self.start > 0 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        if self.bytes.capacity() > 64 * 1024 && self.bytes.len() < self.bytes.capacity() / 4 {
            self.bytes.shrink_to_fit();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bytes = Vec::new();
        self.start = 0;
    }
}

impl fmt::Debug for InputBuffer {
    /// The length only: the buffer may hold AUTH responses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputBuffer")
            .field("pending", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_lines() {
        assert_eq!(
            scan(b"NOOP\r\nQUIT\r\n", 512),
            Scan::Line {
                content_end: 4,
                consumed: 6
            }
        );
        assert_eq!(
            scan(b"\r\n", 512),
            Scan::Line {
                content_end: 0,
                consumed: 2
            }
        );
        assert_eq!(scan(b"NOOP\r", 512), Scan::Incomplete);
        assert_eq!(scan(b"", 512), Scan::Incomplete);
    }

    #[test]
    fn bare_endings() {
        assert_eq!(
            scan(b"NOOP\nQUIT\r\n", 512),
            Scan::BareLineEnding { consumed: 5 }
        );
        assert_eq!(
            scan(b"NO\rOP\r\n", 512),
            Scan::BareLineEnding { consumed: 7 }
        );
        assert_eq!(scan(b"\n", 512), Scan::BareLineEnding { consumed: 1 });
    }

    #[test]
    fn length_limit_includes_crlf() {
        assert_eq!(
            scan(b"1234\r\n", 6),
            Scan::Line {
                content_end: 4,
                consumed: 6
            }
        );
        assert_eq!(scan(b"12345\r\n", 6), Scan::TooLong);
        assert_eq!(scan(b"12345", 6), Scan::Incomplete);
        assert_eq!(scan(b"123456", 6), Scan::TooLong);
    }

    #[test]
    fn discarding() {
        assert_eq!(discard(b"abc\ndef"), (4, true));
        assert_eq!(discard(b"abc"), (3, false));
    }
}
