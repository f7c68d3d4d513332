//! Streaming a stored message as a POP3 multi-line response (RFC 1939 §3): bare LF
//! becomes CRLF, a line starting with "." gets another, the response ends with
//! CRLF "." CRLF; for TOP, the output stops after the header and n body lines.
//! Constant state between chunks: the session never holds a whole message.

/// Where a TOP read stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Top {
    /// Still in the header; this many body lines follow the blank line.
    Header { body_lines: u64 },
    /// In the body; this many lines are still to be sent.
    Body { remaining: u64 },
}

/// The encoder of one message's multi-line response body.
#[derive(Debug)]
pub(super) struct MessageStream {
    at_line_start: bool,
    /// The last byte sent was a CR: a following LF already has it.
    pending_cr: bool,
    /// Bytes of the current line so far, its CRs included.
    line_length: usize,
    top: Option<Top>,
}

impl MessageStream {
    /// The whole message (RETR).
    pub(super) fn whole() -> MessageStream {
        MessageStream {
            at_line_start: true,
            pending_cr: false,
            line_length: 0,
            top: None,
        }
    }

    /// The header and the first `body_lines` lines of the body (TOP).
    pub(super) fn top(body_lines: u64) -> MessageStream {
        MessageStream {
            top: Some(Top::Header { body_lines }),
            ..MessageStream::whole()
        }
    }

    /// Whether TOP has sent every line it needs: the rest of the message is not read.
    pub(super) fn is_complete(&self) -> bool {
        self.at_line_start && self.top == Some(Top::Body { remaining: 0 })
    }

    /// Encodes the next bytes of the message into `out`, up to where TOP stops.
    pub(super) fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        out.reserve(bytes.len() + bytes.len() / 16);
        for &byte in bytes {
            if self.is_complete() {
                return;
            }
            if self.at_line_start {
                if byte == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
            }
            match byte {
                b'\n' => {
                    if !self.pending_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    let empty = self.line_length == 0 || (self.line_length == 1 && self.pending_cr);
                    self.end_line(empty);
                }
                b'\r' => {
                    out.push(b'\r');
                    self.pending_cr = true;
                    self.line_length += 1;
                }
                other => {
                    out.push(other);
                    self.pending_cr = false;
                    self.line_length += 1;
                }
            }
        }
    }

    fn end_line(&mut self, empty: bool) {
        self.at_line_start = true;
        self.pending_cr = false;
        self.line_length = 0;
        self.top = match self.top {
            Some(Top::Header { body_lines }) if empty => Some(Top::Body {
                remaining: body_lines,
            }),
            Some(Top::Body { remaining }) => Some(Top::Body {
                remaining: remaining.saturating_sub(1),
            }),
            other => other,
        };
    }

    /// Ends the response: the last line's CRLF if the message lacked it, then ".".
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            if !self.pending_cr {
                out.push(b'\r');
            }
            out.push(b'\n');
            self.at_line_start = true;
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// A multi-line response's lines (already free of CR and LF) with their stuffing
/// and terminator, for listings built by the session itself.
pub(super) fn stuffed_lines(lines: &[String], out: &mut Vec<u8>) {
    for line in lines {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(mut stream: MessageStream, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            stream.feed(chunk, &mut out);
        }
        stream.finish(&mut out);
        out
    }

    #[test]
    fn dots_are_stuffed_and_bare_lf_normalised() {
        assert_eq!(
            encode(MessageStream::whole(), &[b".a\n..b\r\nc.\n.\n"]),
            b"..a\r\n...b\r\nc.\r\n..\r\n.\r\n"
        );
    }

    #[test]
    fn a_missing_last_line_end_is_added() {
        assert_eq!(encode(MessageStream::whole(), &[b"abc"]), b"abc\r\n.\r\n");
        assert_eq!(encode(MessageStream::whole(), &[b"abc\r"]), b"abc\r\n.\r\n");
        assert_eq!(encode(MessageStream::whole(), &[b""]), b".\r\n");
    }

    #[test]
    fn a_crlf_split_between_chunks_stays_one_line_end() {
        assert_eq!(
            encode(MessageStream::whole(), &[b"a\r", b"\n.b\r", b"\n"]),
            b"a\r\n..b\r\n.\r\n"
        );
    }

    #[test]
    fn top_sends_the_header_and_n_body_lines() {
        let message: &[u8] = b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\nthree\r\n";
        assert_eq!(
            encode(MessageStream::top(0), &[message]),
            b"Subject: x\r\nFrom: y\r\n\r\n.\r\n"
        );
        assert_eq!(
            encode(MessageStream::top(2), &[message]),
            b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\n.\r\n"
        );
        assert_eq!(
            encode(MessageStream::top(10), &[message]),
            [message, b".\r\n"].concat()
        );
        let mut stream = MessageStream::top(1);
        let mut out = Vec::new();
        stream.feed(b"A: b\n\nbody\n", &mut out);
        assert!(stream.is_complete());
        assert!(!MessageStream::top(1).is_complete());
    }

    #[test]
    fn top_without_a_blank_line_is_all_header() {
        assert_eq!(
            encode(MessageStream::top(0), &[b"A: b\r\nC: d\r\n"]),
            b"A: b\r\nC: d\r\n.\r\n"
        );
    }

    #[test]
    fn listings_are_stuffed_too() {
        let mut out = Vec::new();
        stuffed_lines(&["1 a".into(), ".x".into()], &mut out);
        assert_eq!(out, b"1 a\r\n..x\r\n.\r\n");
    }
}
