//! The message body reader for DATA (dot-stuffed, ended by CRLF "." CRLF) and BDAT
//! (raw chunks): it buffers the body within `message_size` and judges every line end.
//!
//! # Line ends and SMTP smuggling
//!
//! Only CRLF ends a line, and only CRLF "." CRLF ends DATA (RFC 5321 §2.3.8,
//! §4.1.1.4). A bare CR or bare LF anywhere in the body marks the whole message as
//! bad: the reader keeps going until the real end of data and the session then
//! refuses it with 554 5.6.0. That closes the SMTP smuggling class (a receiver and
//! a forwarder disagreeing about where DATA ends, e.g. on `LF.LF` or `CR.CR`)
//! without guessing what the client meant.
//!
//! Postfix's `smtpd_forbid_bare_newline = normalize` instead accepts a bare LF as a
//! line end and rewrites it to CRLF, and its `reject` setting answers 521 and
//! disconnects; Exim and Sendmail now reject bare LF before the dot. Rewriting
//! keeps messages from broken clients flowing, but it changes the message and
//! still requires every hop to agree; refusing is simpler, and a transaction
//! refusal (rather than a disconnect) lets a well-meaning client see why.

use super::event::RejectReason;
use core::fmt;

/// How the body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// DATA: dot-stuffed lines, ended by CRLF "." CRLF (RFC 5321 §4.5.2).
    Dot,
    /// BDAT: counted chunks, taken verbatim (RFC 3030).
    Chunked,
}

/// Where the reader is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// At the start of a line (DATA only; chunks never look at the first byte).
    LineStart,
    /// A line start followed by ".".
    Dot,
    /// A line start followed by "." and CR: an LF now ends the data.
    DotCr,
    /// Inside a line.
    Inside,
    /// Inside a line, just after a CR.
    Cr,
}

/// Reads one message body, whichever the framing.
pub(super) struct BodyReader {
    framing: Framing,
    position: Position,
    body: Vec<u8>,
    /// Octets of body seen, stored or not.
    size: u64,
    /// Octets of the current line so far, CRLF included, a stuffed dot excluded.
    line_length: usize,
    max_line: usize,
    max_size: u64,
    bare_line_ending: bool,
    long_line: bool,
    too_big: bool,
}

/// What one call to [`BodyReader::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fed {
    /// Bytes of the input consumed.
    pub(super) consumed: usize,
    /// Whether the DATA terminator was consumed; always false for chunks.
    pub(super) ended: bool,
}

/// A complete body that passed every check.
#[derive(Debug)]
pub(super) struct Body {
    pub(super) data: Vec<u8>,
    pub(super) size: u64,
}

impl BodyReader {
    pub(super) fn new(framing: Framing, max_line: usize, max_size: u64) -> BodyReader {
        BodyReader {
            framing,
            position: match framing {
                Framing::Dot => Position::LineStart,
                Framing::Chunked => Position::Inside,
            },
            body: Vec::new(),
            size: 0,
            line_length: 0,
            max_line,
            max_size,
            bare_line_ending: false,
            long_line: false,
            too_big: false,
        }
    }

    /// Bytes of body held in memory (never more than `message_size`).
    pub(super) fn buffered(&self) -> usize {
        self.body.len()
    }

    /// Reads from `bytes`; with DATA framing it stops right after the terminator.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Fed {
        let mut index = 0;
        while index < bytes.len() {
            if self.position == Position::Inside {
                // Fast path: ordinary text up to the next CR or LF changes no state but
                // the counters, so take the whole run at once.
                let rest = &bytes[index..];
                let run = rest
                    .iter()
                    .position(|&byte| byte == b'\r' || byte == b'\n')
                    .unwrap_or(rest.len());
                if run > 0 {
                    self.take_text(&rest[..run]);
                    index += run;
                    continue;
                }
            }
            let byte = bytes[index];
            index += 1;
            if self.step(byte) {
                return Fed {
                    consumed: index,
                    ended: true,
                };
            }
        }
        Fed {
            consumed: bytes.len(),
            ended: false,
        }
    }

    /// A run of text holding no CR or LF, inside a line: the same accounting as
    /// [`Self::count_line_octet`] and [`Self::store`] byte by byte, in bulk.
    fn take_text(&mut self, run: &[u8]) {
        if !self.long_line {
            self.line_length = self.line_length.saturating_add(run.len());
            if self.line_length > self.max_line {
                self.long_line = true;
            }
        }
        let length = u64::try_from(run.len()).unwrap_or(u64::MAX);
        self.size = self.size.saturating_add(length);
        if self.too_big {
            return;
        }
        if self.size > self.max_size {
            self.too_big = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(run);
        }
    }

    /// Ends the body (after the terminator, or at BDAT LAST) and judges it. A bare
    /// line ending outranks size and line length: it is the one that may be an attack.
    pub(super) fn finish(mut self) -> Result<Body, RejectReason> {
        if self.position == Position::Cr {
            // A chunked body ending in CR: no LF will ever complete it.
            self.bare_line_ending = true;
        }
        if self.bare_line_ending {
            Err(RejectReason::BareLineEnding)
        } else if self.too_big {
            Err(RejectReason::MessageTooBig)
        } else if self.long_line {
            Err(RejectReason::TextLineTooLong)
        } else {
            Ok(Body {
                data: self.body,
                size: self.size,
            })
        }
    }

    /// Consumes one wire byte; true when it completed the DATA terminator.
    fn step(&mut self, byte: u8) -> bool {
        // The dot added for transparency is not part of the text line (RFC 5321 §4.5.2),
        // so a line at the limit stays within it once stuffed.
        if !(self.position == Position::LineStart && byte == b'.') {
            self.count_line_octet();
        }
        match self.position {
            Position::LineStart => match byte {
                b'.' => self.position = Position::Dot,
                _ => self.inside(byte),
            },
            // The stuffed dot is dropped (RFC 5321 §4.5.2), whatever follows it.
            Position::Dot => match byte {
                b'\r' => self.position = Position::DotCr,
                _ => self.inside(byte),
            },
            Position::DotCr => {
                if byte == b'\n' {
                    return true;
                }
                self.bare_line_ending = true;
                self.store(b'\r');
                self.inside(byte);
            }
            Position::Inside => self.inside(byte),
            Position::Cr => {
                if byte == b'\n' {
                    self.store(b'\r');
                    self.store(b'\n');
                    self.line_length = 0;
                    self.position = match self.framing {
                        Framing::Dot => Position::LineStart,
                        Framing::Chunked => Position::Inside,
                    };
                } else {
                    self.bare_line_ending = true;
                    self.store(b'\r');
                    self.inside(byte);
                }
            }
        }
        false
    }

    /// A byte inside a line: a CR may start a line end, an LF on its own never does.
    fn inside(&mut self, byte: u8) {
        match byte {
            b'\r' => self.position = Position::Cr,
            b'\n' => {
                self.bare_line_ending = true;
                self.store(byte);
                self.position = Position::Inside;
            }
            _ => {
                self.store(byte);
                self.position = Position::Inside;
            }
        }
    }

    fn count_line_octet(&mut self) {
        if !self.long_line {
            self.line_length += 1;
            if self.line_length > self.max_line {
                self.long_line = true;
            }
        }
    }

    fn store(&mut self, byte: u8) {
        self.size = self.size.saturating_add(1);
        if self.too_big {
            return;
        }
        if self.size > self.max_size {
            // Keep counting to the end of data, but hold nothing more.
            self.too_big = true;
            self.body = Vec::new();
        } else {
            self.body.push(byte);
        }
    }
}

impl fmt::Debug for BodyReader {
    /// Sizes and flags only: message content stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyReader")
            .field("framing", &self.framing)
            .field("position", &self.position)
            .field("buffered", &self.body.len())
            .field("size", &self.size)
            .field("bare_line_ending", &self.bare_line_ending)
            .field("long_line", &self.long_line)
            .field("too_big", &self.too_big)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    fn read_data(wire: &[u8]) -> (Fed, BodyReader) {
        let mut reader = BodyReader::new(Framing::Dot, 1000, 1 << 20);
        let fed = reader.feed(wire);
        (fed, reader)
    }

    fn data_result(wire: &[u8]) -> Result<Vec<u8>, RejectReason> {
        let (fed, reader) = read_data(wire);
        assert!(fed.ended, "no end of data in {wire:?}");
        assert_eq!(
            fed.consumed,
            wire.len(),
            "terminator must be the last bytes"
        );
        reader.finish().map(|body| body.data)
    }

    #[test]
    fn plain_message_and_terminator() {
        assert_eq!(
            data_result(b"Subject: x\r\n\r\nhello\r\n.\r\n"),
            Ok(b"Subject: x\r\n\r\nhello\r\n".to_vec())
        );
    }

    #[test]
    fn empty_message_right_after_354() {
        assert_eq!(data_result(b".\r\n"), Ok(Vec::new()));
    }

    #[test]
    fn dot_unstuffing() {
        assert_eq!(
            data_result(b"..leading\r\n.x\r\n...\r\n.\r\n"),
            Ok(b".leading\r\nx\r\n..\r\n".to_vec())
        );
    }

    #[test]
    fn stops_right_after_terminator() {
        let (fed, _) = read_data(b"a\r\n.\r\nQUIT\r\n");
        assert_eq!(
            fed,
            Fed {
                consumed: 6,
                ended: true
            }
        );
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let wire = b"a\r\n..b\r\n\r\n.\r\n";
        let mut reader = BodyReader::new(Framing::Dot, 1000, 1 << 20);
        let mut ended = false;
        for (index, byte) in wire.iter().enumerate() {
            let fed = reader.feed(&[*byte]);
            ended = fed.ended;
            assert_eq!(ended, index == wire.len() - 1);
        }
        assert!(ended);
        assert_eq!(
            reader.finish().map(|b| b.data),
            Ok(b"a\r\n.b\r\n\r\n".to_vec())
        );
    }

    #[test]
    fn smuggling_variants_never_end_data_and_mark_it_bad() {
        for fake_end in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\n.\r",
            b".\n",
            b".\r",
        ] {
            let mut wire = b"Subject: x\r\n\r\nbody".to_vec();
            wire.extend_from_slice(fake_end);
            wire.extend_from_slice(b"MAIL FROM:<evil@example.com>\r\n");
            let (fed, _) = read_data(&wire);
            assert!(!fed.ended, "{fake_end:?} ended the data");
            wire.extend_from_slice(b"\r\n.\r\n");
            assert_eq!(
                data_result(&wire),
                Err(RejectReason::BareLineEnding),
                "{fake_end:?}"
            );
        }
    }

    #[test]
    fn bare_lf_or_cr_in_headers_and_body() {
        assert_eq!(
            data_result(b"Subject: x\nTo: y\r\n\r\nbody\r\n.\r\n"),
            Err(RejectReason::BareLineEnding)
        );
        assert_eq!(
            data_result(b"Subject: x\rTo: y\r\n\r\nbody\r\n.\r\n"),
            Err(RejectReason::BareLineEnding)
        );
        assert_eq!(
            data_result(b"Subject: x\r\n\r\nbo\ndy\r\n.\r\n"),
            Err(RejectReason::BareLineEnding)
        );
        assert_eq!(
            data_result(b"Subject: x\r\n\r\nbo\rdy\r\n.\r\n"),
            Err(RejectReason::BareLineEnding)
        );
        assert_eq!(
            data_result(b"a\r\r\n.\r\n"),
            Err(RejectReason::BareLineEnding)
        );
        assert_eq!(
            data_result(b".\r.\r\n.\r\n"),
            Err(RejectReason::BareLineEnding)
        );
    }

    #[test]
    fn text_line_limit_counts_crlf() {
        let mut reader = BodyReader::new(Framing::Dot, 10, 1 << 20);
        assert!(reader.feed(b"12345678\r\n.\r\n").ended);
        assert!(reader.finish().is_ok());
        let mut reader = BodyReader::new(Framing::Dot, 10, 1 << 20);
        assert!(reader.feed(b"123456789\r\n.\r\n").ended);
        assert_eq!(
            reader.finish().map(|b| b.data),
            Err(RejectReason::TextLineTooLong)
        );
    }

    #[test]
    fn text_line_limit_excludes_the_stuffed_dot() {
        let mut reader = BodyReader::new(Framing::Dot, 10, 1 << 20);
        assert!(reader.feed(b"..2345678\r\n.\r\n").ended);
        assert_eq!(
            reader.finish().map(|b| b.data),
            Ok(b".2345678\r\n".to_vec())
        );
        let mut reader = BodyReader::new(Framing::Dot, 10, 1 << 20);
        assert!(reader.feed(b"..23456789\r\n.\r\n").ended);
        assert_eq!(
            reader.finish().map(|b| b.data),
            Err(RejectReason::TextLineTooLong)
        );
    }

    #[test]
    fn size_limit_stops_buffering_but_keeps_reading() {
        let mut reader = BodyReader::new(Framing::Dot, 1000, 8);
        let fed = reader.feed(b"1234\r\n");
        assert!(!fed.ended);
        assert_eq!(reader.buffered(), 6);
        let fed = reader.feed(b"5678901234\r\n");
        assert!(!fed.ended);
        assert_eq!(reader.buffered(), 0);
        assert!(reader.feed(b".\r\n").ended);
        assert_eq!(
            reader.finish().map(|b| b.data),
            Err(RejectReason::MessageTooBig)
        );
    }

    #[test]
    fn exactly_max_size_is_accepted() {
        let mut reader = BodyReader::new(Framing::Dot, 1000, 6);
        assert!(reader.feed(b"1234\r\n.\r\n").ended);
        assert_eq!(reader.finish().map(|b| b.size), Ok(6));
    }

    #[test]
    fn chunks_are_verbatim_and_crlf_may_straddle() {
        let mut reader = BodyReader::new(Framing::Chunked, 1000, 1 << 20);
        assert!(!reader.feed(b".a\r").ended);
        assert!(!reader.feed(b"\n\r\n.\r\n").ended);
        assert_eq!(
            reader.finish().map(|b| b.data),
            Ok(b".a\r\n\r\n.\r\n".to_vec())
        );
    }

    #[test]
    fn chunks_reject_bare_endings() {
        for content in [&b"a\nb\r\n"[..], b"a\rb\r\n", b"a\r\n\r", b"\n.\n"] {
            let mut reader = BodyReader::new(Framing::Chunked, 1000, 1 << 20);
            reader.feed(content);
            assert_eq!(
                reader.finish().map(|b| b.data),
                Err(RejectReason::BareLineEnding),
                "{content:?}"
            );
        }
    }

    #[test]
    fn chunks_line_length_spans_chunks() {
        let mut reader = BodyReader::new(Framing::Chunked, 6, 1 << 20);
        reader.feed(b"abc");
        reader.feed(b"de\r\n");
        assert_eq!(
            reader.finish().map(|b| b.data),
            Err(RejectReason::TextLineTooLong)
        );
    }

    /// A reader's verdict on a wire stream, fed in pieces of the given sizes.
    fn verdict_in_pieces(
        framing: Framing,
        wire: &[u8],
        piece: usize,
    ) -> (usize, bool, Result<Vec<u8>, RejectReason>) {
        let mut reader = BodyReader::new(framing, 40, 200);
        let mut consumed = 0;
        let mut ended = false;
        for chunk in wire.chunks(piece.max(1)) {
            let fed = reader.feed(chunk);
            consumed += fed.consumed;
            if fed.ended {
                ended = true;
                break;
            }
        }
        (consumed, ended, reader.finish().map(|body| body.data))
    }

    proptest::proptest! {
        /// The bulk fast path for plain text must agree with the byte-by-byte state
        /// machine on everything: where data ends, what is stored, and the verdict.
        #[test]
        fn splitting_the_input_never_changes_the_outcome(
            wire in proptest::collection::vec(
                proptest::prop_oneof![
                    Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a'), proptest::num::u8::ANY
                ],
                0..400,
            ),
            piece in 2usize..64,
            chunked in proptest::bool::ANY,
        ) {
            let framing = if chunked { Framing::Chunked } else { Framing::Dot };
            let whole = verdict_in_pieces(framing, &wire, wire.len());
            proptest::prop_assert_eq!(&verdict_in_pieces(framing, &wire, 1), &whole);
            proptest::prop_assert_eq!(&verdict_in_pieces(framing, &wire, piece), &whole);
        }
    }
}
