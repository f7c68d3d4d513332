//! The message body on the wire: every bare CR or LF becomes CRLF (RFC 5321 §2.3.8
//! allows no other line ending, and a bare one is what SMTP smuggling exploits), the
//! body ends in CRLF, and for DATA a line starting with "." gets another (§4.5.2).
//! The body is encoded block by block, so a message of tens of MiB is never copied whole.

use std::sync::Arc;

/// How the data is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// DATA: dot-stuffed, ended by "." (the session writes the terminator).
    Data,
    /// BDAT chunks (RFC 3030): the octets as they are, no stuffing.
    Chunks,
}

/// Streams a body out in blocks of bounded size.
#[derive(Debug)]
pub(super) struct BodyEncoder {
    body: Arc<[u8]>,
    position: usize,
    /// Whether the last octet written ended a line (true at the start: an empty body
    /// needs no CRLF, and a first line starting with "." is stuffed).
    at_line_start: bool,
    framing: Framing,
    finished: bool,
}

const CRLF: &[u8] = b"\r\n";

/// The octets at the start of `rest` that end a line, if any: CRLF, or a bare CR or LF.
fn line_ending_length(rest: &[u8]) -> Option<usize> {
    match rest {
        [b'\r', b'\n', ..] => Some(2),
        [b'\r' | b'\n', ..] => Some(1),
        _ => None,
    }
}

/// The length of the run of octets at the start of `rest` holding no CR or LF.
fn plain_run(rest: &[u8]) -> usize {
    rest.iter()
        .position(|&octet| octet == b'\r' || octet == b'\n')
        .unwrap_or(rest.len())
}

/// The size of the body once its line endings are CRLF and it ends in CRLF, without
/// dot-stuffing: the message size that SIZE= declares (RFC 1870 §3).
pub(super) fn normalised_len(body: &[u8]) -> u64 {
    let mut length: u64 = 0;
    let mut position = 0;
    let mut at_line_start = true;
    while let Some(rest) = body.get(position..).filter(|rest| !rest.is_empty()) {
        if let Some(ending) = line_ending_length(rest) {
            length += 2;
            position += ending;
            at_line_start = true;
        } else {
            let run = plain_run(rest);
            length += run as u64;
            position += run;
            at_line_start = false;
        }
    }
    if !at_line_start {
        length += 2;
    }
    length
}

/// Whether the body holds any octet above 127 (and so needs 8BITMIME, RFC 6152).
pub(super) fn has_eight_bit(body: &[u8]) -> bool {
    !body.is_ascii()
}

impl BodyEncoder {
    pub(super) fn new(body: Arc<[u8]>, framing: Framing) -> BodyEncoder {
        BodyEncoder {
            body,
            position: 0,
            at_line_start: true,
            framing,
            finished: false,
        }
    }

    /// Whether the whole body, its final CRLF included, has been handed out.
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next block of at most `max` octets (`max` is raised to 4 so that every call
    /// makes progress). Empty once finished.
    pub(super) fn next_block(&mut self, max: usize) -> Vec<u8> {
        let max = max.max(4);
        let remaining = self.body.len().saturating_sub(self.position);
        let mut block = Vec::with_capacity(max.min(remaining.saturating_add(3)));
        while !self.finished {
            let rest = self.body.get(self.position..).unwrap_or_default();
            let room = max.saturating_sub(block.len());
            if rest.is_empty() {
                if !self.at_line_start {
                    if room < CRLF.len() {
                        break;
                    }
                    block.extend_from_slice(CRLF);
                    self.at_line_start = true;
                }
                self.finished = true;
                break;
            }
            // The largest single step writes three octets ("." and one more, or CRLF).
            if room < 3 {
                break;
            }
            if let Some(ending) = line_ending_length(rest) {
                block.extend_from_slice(CRLF);
                self.position += ending;
                self.at_line_start = true;
                continue;
            }
            if self.at_line_start && self.framing == Framing::Data && rest.first() == Some(&b'.') {
                block.push(b'.');
            }
            let room = max.saturating_sub(block.len());
            let run = plain_run(rest).min(room);
            block.extend_from_slice(rest.get(..run).unwrap_or_default());
            self.position += run;
            self.at_line_start = false;
        }
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(body: &[u8], framing: Framing, block: usize) -> Vec<u8> {
        let mut encoder = BodyEncoder::new(Arc::from(body), framing);
        let mut out = Vec::new();
        let mut calls = 0;
        while !encoder.is_finished() {
            let next = encoder.next_block(block);
            assert!(next.len() <= block.max(4), "block over its bound");
            out.extend_from_slice(&next);
            calls += 1;
            assert!(calls <= body.len() + 4, "no progress");
        }
        assert!(encoder.next_block(block).is_empty());
        out
    }

    #[test]
    fn bare_line_endings_become_crlf_and_the_body_ends_in_crlf() {
        assert_eq!(
            encode(b"a\nb\rc\r\nd", Framing::Chunks, 1000),
            b"a\r\nb\r\nc\r\nd\r\n"
        );
        assert_eq!(encode(b"a\r\r\n", Framing::Chunks, 1000), b"a\r\n\r\n");
        assert_eq!(encode(b"\n\n", Framing::Chunks, 1000), b"\r\n\r\n");
        assert_eq!(encode(b"", Framing::Data, 1000), b"");
        assert_eq!(encode(b"x\r\n", Framing::Data, 1000), b"x\r\n");
    }

    #[test]
    fn data_framing_stuffs_leading_dots_chunks_do_not() {
        let body = b".a\r\n..b\r\nc.\r\n.";
        assert_eq!(
            encode(body, Framing::Data, 1000),
            b"..a\r\n...b\r\nc.\r\n..\r\n"
        );
        assert_eq!(
            encode(body, Framing::Chunks, 1000),
            b".a\r\n..b\r\nc.\r\n.\r\n"
        );
        // A dot after a bare LF starts a line too.
        assert_eq!(encode(b"a\n.\n", Framing::Data, 1000), b"a\r\n..\r\n");
    }

    #[test]
    fn tiny_blocks_give_the_same_bytes_as_one_big_block() {
        let body = b".x\r\n\n.\ryy\r\r\n..\nlast line without ending";
        for framing in [Framing::Data, Framing::Chunks] {
            let whole = encode(body, framing, 1 << 20);
            for block in 1..12 {
                assert_eq!(encode(body, framing, block), whole, "block {block}");
            }
        }
    }

    #[test]
    fn normalised_length_is_the_unstuffed_encoding_length() {
        for body in [&b""[..], b"a", b"a\r\n", b"a\nb\rc", b"\r\r\n\n", b".\r\n."] {
            assert_eq!(
                normalised_len(body),
                encode(body, Framing::Chunks, 7).len() as u64,
                "{body:?}"
            );
        }
        assert!(has_eight_bit("é".as_bytes()));
        assert!(!has_eight_bit(b"plain\r\n"));
    }

    /// The blocks the encoder hands out for `body`, each asked with bound `max`.
    fn blocks(body: &[u8], framing: Framing, max: usize) -> Vec<Vec<u8>> {
        let mut encoder = BodyEncoder::new(Arc::from(body), framing);
        let mut blocks = Vec::new();
        while !encoder.is_finished() {
            blocks.push(encoder.next_block(max));
            assert!(blocks.len() <= body.len() + 4, "no progress");
        }
        blocks
    }

    #[test]
    fn a_plain_line_fills_every_block_to_its_bound() {
        // Fewer, fuller blocks: BDAT chunks and writes of the size the limits ask for.
        let sizes: Vec<usize> = blocks(&[b'x'; 25], Framing::Chunks, 10)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [10, 10, 5 + 2]);
    }

    #[test]
    fn a_block_stops_short_only_when_the_next_step_does_not_fit() {
        // After "a" three octets are left: CRLF still fits. After it one is left, and
        // no step (CRLF, or a stuffed dot with its octet) is split across blocks.
        let blocks = blocks(b"a\nbcd", Framing::Data, 4);
        assert_eq!(blocks, [&b"a\r\n"[..], b"bcd", b"\r\n"]);
    }
}
