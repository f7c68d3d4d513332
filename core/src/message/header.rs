//! The header block of a message or MIME part, split into fields by byte offsets.
//!
//! mail-parser decodes header values but does not keep each field's exact bytes in a
//! form IMAP needs (HEADER.FIELDS returns the fields as stored, folding and all, and
//! ENVELOPE keeps encoded-words undecoded), so the split is done here, over offsets
//! into the stored bytes: nothing is copied. Bare LF is accepted as a line end.

use std::ops::Range;

/// One header field: where it starts, where its name ends, and where it ends
/// (after its last line's terminator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's first byte.
    pub start: usize,
    /// The end of the name (the colon's offset); equal to `start` for a line with
    /// no colon, which has no name and matches no lookup.
    pub name_end: usize,
    /// After the last line terminator of the field (or the end of the block).
    pub end: usize,
}

impl Field {
    /// The field name as stored (without the colon), possibly with trailing blanks.
    pub fn name<'m>(&self, bytes: &'m [u8]) -> &'m [u8] {
        bytes.get(self.start..self.name_end).unwrap_or_default()
    }

    /// Whether the field's name is `name`, compared case-insensitively (RFC 5322
    /// field names are ASCII; blanks before the colon are tolerated).
    pub fn is_named(&self, bytes: &[u8], name: &[u8]) -> bool {
        trim_blanks(self.name(bytes)).eq_ignore_ascii_case(name)
    }

    /// The raw value: after the colon, to the end of the field without its final
    /// line terminator; folding is kept.
    pub fn raw_value<'m>(&self, bytes: &'m [u8]) -> &'m [u8] {
        let value_start = if self.name_end == self.start {
            self.start
        } else {
            self.name_end + 1
        };
        let value = bytes.get(value_start..self.end).unwrap_or_default();
        strip_line_end(value)
    }

    /// The value unfolded as Dovecot reports it in ENVELOPE and BODYSTRUCTURE: the
    /// blanks right after the colon dropped, then every CR and LF removed
    /// (RFC 5322 §2.2.3), the folding whitespace itself kept.
    pub fn unfolded_value(&self, bytes: &[u8]) -> Vec<u8> {
        let raw = self.raw_value(bytes);
        let first = raw
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(raw.len());
        raw.get(first..)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect()
    }

    /// A token value (Content-Transfer-Encoding): unfolded, trimmed, lowercase.
    pub fn token_value(&self, bytes: &[u8]) -> Vec<u8> {
        trim_blanks(&self.unfolded_value(bytes)).to_ascii_lowercase()
    }

    /// The field's bytes as stored, with its terminator.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// A header block: its fields and where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    /// The fields in order; at most `max_fields` are indexed, but the block's range
    /// still covers every byte of the header.
    pub fields: Vec<Field>,
    /// The header's bytes including the blank line that ends it, if there is one.
    pub range: Range<usize>,
    /// Whether an empty line ends the block (a message without one has no body).
    pub ends_with_blank_line: bool,
}

impl HeaderBlock {
    /// The first field named `name`.
    pub fn first<'h>(&'h self, bytes: &[u8], name: &[u8]) -> Option<&'h Field> {
        self.fields.iter().find(|field| field.is_named(bytes, name))
    }

    /// The body's first byte: the end of the header block.
    pub fn body_start(&self) -> usize {
        self.range.end
    }
}

/// Splits the header block of `bytes[range]`. The header ends after the first empty
/// line (CRLF or LF alone); without one, the whole range is header and the body is
/// empty. Work is linear in the header's length; at most `max_fields` fields are
/// indexed (the rest still belong to the block).
pub fn parse_header(bytes: &[u8], range: Range<usize>, max_fields: usize) -> HeaderBlock {
    let end = range.end.min(bytes.len());
    let start = range.start.min(end);
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = start;
    while pos < end {
        let line_end = next_line_end(bytes, pos, end);
        let line = strip_line_end(bytes.get(pos..line_end).unwrap_or_default());
        if line.is_empty() && line_end > pos {
            let is_terminated = bytes.get(line_end - 1) == Some(&b'\n');
            if is_terminated {
                return HeaderBlock {
                    fields,
                    range: start..line_end,
                    ends_with_blank_line: true,
                };
            }
        }
        let continues = matches!(line.first(), Some(b' ' | b'\t'));
        let indexed = fields.len();
        match fields.last_mut() {
            Some(last) if continues && last.end == pos => last.end = line_end,
            _ if indexed < max_fields => {
                let name_end = line
                    .iter()
                    .position(|&b| b == b':')
                    .map_or(pos, |colon| pos + colon);
                fields.push(Field {
                    start: pos,
                    name_end,
                    end: line_end,
                });
            }
            _ => {}
        }
        pos = line_end;
    }
    HeaderBlock {
        fields,
        range: start..end,
        ends_with_blank_line: false,
    }
}

/// The offset after the next LF at or after `pos` (or `end`).
pub fn next_line_end(bytes: &[u8], pos: usize, end: usize) -> usize {
    bytes
        .get(pos..end)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(end, |lf| pos + lf + 1)
}

/// `line` without its final LF or CRLF.
pub fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `bytes` without leading and trailing spaces and tabs.
pub fn trim_blanks(bytes: &[u8]) -> &[u8] {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_blank(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_fold_and_the_blank_line_ends_the_header() {
        let message = b"Subject: a\r\n b\r\nFrom: x@y\r\n\r\nbody\r\n";
        let header = parse_header(message, 0..message.len(), 100);
        assert_eq!(header.fields.len(), 2);
        assert_eq!(header.range, 0..29);
        let subject = header.first(message, b"subject").expect("subject");
        assert_eq!(subject.raw_value(message), b" a\r\n b");
        assert_eq!(subject.unfolded_value(message), b"a b");
        let folded = b"Message-ID:\r\n <x@y>\r\n\r\n";
        let folded_header = parse_header(folded, 0..folded.len(), 100);
        assert_eq!(folded_header.fields[0].unfolded_value(folded), b" <x@y>");
        assert_eq!(&message[header.body_start()..], b"body\r\n");
    }

    #[test]
    fn a_header_without_blank_line_takes_everything() {
        let message = b"Subject: a\nFrom: b";
        let header = parse_header(message, 0..message.len(), 100);
        assert_eq!(header.range, 0..message.len());
        assert_eq!(header.fields.len(), 2);
        assert_eq!(
            header
                .first(message, b"FROM")
                .map(|f| f.unfolded_value(message)),
            Some(b"b".to_vec())
        );
    }

    #[test]
    fn bare_lf_blank_line_and_a_line_without_colon() {
        let message = b"junk line\nX: 1\n\nrest";
        let header = parse_header(message, 0..message.len(), 100);
        assert_eq!(header.range, 0..16);
        assert_eq!(header.fields[0].name(message), b"");
        assert!(header.first(message, b"x").is_some());
    }

    #[test]
    fn fields_past_the_bound_are_not_indexed() {
        let message = b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let header = parse_header(message, 0..message.len(), 2);
        assert_eq!(header.fields.len(), 2);
        assert_eq!(header.range.end, message.len());
    }
}
