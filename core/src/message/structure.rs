//! The MIME tree of a message as byte ranges: every part's header and body offsets,
//! its content type, and its children (multipart) or encapsulated message
//! (message/rfc822).
//!
//! mail-parser's tree decodes bodies and does not give IMAP's exact part bounds
//! (the CRLF before a boundary belongs to the boundary, RFC 2046 §5.1.1; an
//! encapsulated message's own header and body), so the tree is built here over
//! offsets. Work: every nesting level scans its own range once for its boundary, so
//! O(size × depth), depth bounded by [`Limits::max_depth`]; the number of parts is
//! bounded by [`Limits::max_parts`]. Past a bound a part is kept as an opaque leaf.

use super::Limits;
use super::header::{HeaderBlock, next_line_end, parse_header, strip_line_end};
use super::params::{ValueWithParams, parse_value_with_params};
use std::ops::Range;

/// One MIME part (or a whole message, which is its own top part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's header (for the top part, the message header).
    pub header: HeaderBlock,
    /// The part's body.
    pub body: Range<usize>,
    /// Content-Type as written, or the default when absent or unusable.
    pub content_type: ContentType,
    /// What the body holds.
    pub kind: PartKind,
}

/// What a part's body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    /// A leaf: its body is content.
    Leaf,
    /// A multipart: its parts, at least one (an empty or unterminated multipart gets
    /// one empty text/plain part, as Dovecot reports it).
    Multipart(Vec<Part>),
    /// A message/rfc822 (or message/global): the encapsulated message.
    Message(Box<Part>),
}

/// A part's media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// The type as written (e.g. `TEXT`), or the default's.
    pub main: Vec<u8>,
    /// The subtype as written, or the default's.
    pub sub: Vec<u8>,
    /// Parameters as written.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether the part had no usable Content-Type and took the default.
    pub defaulted: bool,
}

impl ContentType {
    fn default_for(parent_is_digest: bool) -> Self {
        if parent_is_digest {
            // RFC 2046 §5.1.5: in multipart/digest the default is message/rfc822.
            ContentType {
                main: b"message".to_vec(),
                sub: b"rfc822".to_vec(),
                params: Vec::new(),
                defaulted: true,
            }
        } else {
            // RFC 2045 §5.2: the default is text/plain; charset=us-ascii.
            ContentType {
                main: b"text".to_vec(),
                sub: b"plain".to_vec(),
                params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
                defaulted: true,
            }
        }
    }

    /// Whether the type is `main` (case-insensitive).
    pub fn is(&self, main: &[u8]) -> bool {
        self.main.eq_ignore_ascii_case(main)
    }

    /// Whether the type is `main/sub` (case-insensitive).
    pub fn is_type(&self, main: &[u8], sub: &[u8]) -> bool {
        self.is(main) && self.sub.eq_ignore_ascii_case(sub)
    }

    /// A parameter's value (case-insensitive name).
    pub fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

impl Part {
    /// Whether this part encapsulates a message (message/rfc822 or message/global).
    pub fn is_message(&self) -> bool {
        self.content_type.is_type(b"message", b"rfc822")
            || self.content_type.is_type(b"message", b"global")
    }
}

/// Parses the message `bytes` into its MIME tree.
pub(super) fn parse_message(bytes: &[u8], limits: &Limits) -> Part {
    let mut budget = limits.max_parts;
    parse_part(bytes, 0..bytes.len(), false, 0, limits, &mut budget)
}

fn parse_part(
    bytes: &[u8],
    range: Range<usize>,
    parent_is_digest: bool,
    depth: usize,
    limits: &Limits,
    budget: &mut usize,
) -> Part {
    let header = parse_header(bytes, range.clone(), limits.max_header_fields);
    let body = header.body_start()..range.end;
    let content_type = header
        .first(bytes, b"content-type")
        .map(|field| parse_value_with_params(field.raw_value(bytes)))
        .and_then(content_type_of)
        .unwrap_or_else(|| ContentType::default_for(parent_is_digest));
    let mut part = Part {
        header,
        body,
        content_type,
        kind: PartKind::Leaf,
    };
    // A part past the nesting or part-count bound stays an opaque leaf.
    if depth >= limits.max_depth || *budget == 0 {
        return part;
    }
    if part.content_type.is(b"multipart") {
        let is_digest = part.content_type.is_type(b"multipart", b"digest");
        let ranges = match part.content_type.param(b"boundary") {
            Some(boundary) if !boundary.is_empty() => {
                split_multipart(bytes, part.body.clone(), boundary)
            }
            _ => Vec::new(),
        };
        let mut children = Vec::new();
        for (child, delimiter_start) in ranges {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            children.push(parse_child(
                bytes,
                child,
                delimiter_start,
                is_digest,
                depth,
                limits,
                budget,
            ));
        }
        if children.is_empty() {
            // IMAP's body-type-mpart needs at least one part; Dovecot reports an
            // empty text/plain part at the end of the body.
            let at = part.body.end;
            children.push(Part {
                header: HeaderBlock {
                    fields: Vec::new(),
                    range: at..at,
                    ends_with_blank_line: false,
                },
                body: at..at,
                content_type: ContentType::default_for(false),
                kind: PartKind::Leaf,
            });
        }
        part.kind = PartKind::Multipart(children);
    } else if part.is_message() {
        *budget -= 1;
        let inner = parse_part(bytes, part.body.clone(), false, depth + 1, limits, budget);
        part.kind = PartKind::Message(Box::new(inner));
    }
    part
}

/// A multipart's child. The line end before the next delimiter belongs to that
/// delimiter (RFC 2046 §5.1.1), except, as Dovecot counts, when the child ends with
/// the close delimiter of a multipart inside it: that line's end was read with the
/// close delimiter, so the child keeps it. The child is parsed once; only the ends
/// of the parts that end where it ends move.
fn parse_child(
    bytes: &[u8],
    range: Range<usize>,
    delimiter_start: usize,
    parent_is_digest: bool,
    depth: usize,
    limits: &Limits,
    budget: &mut usize,
) -> Part {
    let end = range.end;
    let close = last_line_close_delimiter(bytes, &range);
    let mut child = parse_part(bytes, range, parent_is_digest, depth + 1, limits, budget);
    if let Some(inner_boundary) = close
        && delimiter_start > end
        && ends_with_multipart_of(&child, inner_boundary)
    {
        extend_end(&mut child, end, delimiter_start);
    }
    child
}

/// Moves the end of `part`, and of the parts inside it that end at `old_end`,
/// to `new_end`. Empty parts stay empty.
fn extend_end(part: &mut Part, old_end: usize, new_end: usize) {
    if part.body.end != old_end || part.body.start >= old_end {
        return;
    }
    part.body.end = new_end;
    match &mut part.kind {
        PartKind::Message(inner) => extend_end(inner, old_end, new_end),
        PartKind::Multipart(children) => {
            if let Some(last) = children.last_mut() {
                extend_end(last, old_end, new_end);
            }
        }
        PartKind::Leaf => {}
    }
}

/// The boundary named by the last line of `range` if it looks like a close
/// delimiter (`--X--`).
fn last_line_close_delimiter<'b>(bytes: &'b [u8], range: &Range<usize>) -> Option<&'b [u8]> {
    let content = bytes.get(range.clone())?;
    let line_start = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |lf| lf + 1);
    let line = content.get(line_start..)?;
    let line = super::header::trim_blanks(line);
    let inner = line.strip_prefix(b"--")?.strip_suffix(b"--")?;
    (!inner.is_empty()).then_some(inner)
}

/// Whether `part` is, or encapsulates, a multipart with `boundary` (its last part
/// closing it).
fn ends_with_multipart_of(part: &Part, boundary: &[u8]) -> bool {
    match &part.kind {
        PartKind::Multipart(children) => {
            part.content_type.param(b"boundary") == Some(boundary)
                || children
                    .last()
                    .is_some_and(|last| ends_with_multipart_of(last, boundary))
        }
        PartKind::Message(inner) => ends_with_multipart_of(inner, boundary),
        PartKind::Leaf => false,
    }
}

fn content_type_of(parsed: ValueWithParams) -> Option<ContentType> {
    let slash = parsed.value.iter().position(|&b| b == b'/')?;
    let main = parsed.value.get(..slash)?.to_vec();
    let sub = parsed.value.get(slash + 1..)?.to_vec();
    let is_token = |t: &[u8]| !t.is_empty() && t.iter().all(|b| b.is_ascii_graphic() && *b != b'/');
    if !is_token(&main) || !is_token(&sub) {
        return None;
    }
    Some(ContentType {
        main,
        sub,
        params: parsed.params,
        defaulted: false,
    })
}

/// The body parts of a multipart body `range`: each from after a delimiter line to
/// before the line end that precedes the next delimiter (RFC 2046 §5.1.1). The
/// preamble and epilogue are not parts. Without a close delimiter the last part runs
/// to the end of the range.
/// Each part comes with where its closing delimiter line starts (its line end before).
fn split_multipart(
    bytes: &[u8],
    range: Range<usize>,
    boundary: &[u8],
) -> Vec<(Range<usize>, usize)> {
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut pos = range.start;
    while pos < range.end {
        let line_end = next_line_end(bytes, pos, range.end);
        let line = bytes.get(pos..line_end).unwrap_or_default();
        if let Some(is_close) = delimiter(line, boundary) {
            if let Some(start) = open.take() {
                // The line end before the delimiter belongs to the delimiter.
                let mut end = pos;
                if end > start && bytes.get(end - 1) == Some(&b'\n') {
                    end -= 1;
                    if end > start && bytes.get(end - 1) == Some(&b'\r') {
                        end -= 1;
                    }
                }
                parts.push((start..end.max(start), pos));
            }
            if is_close {
                return parts;
            }
            open = Some(line_end);
        }
        pos = line_end;
    }
    if let Some(start) = open {
        parts.push((start..range.end, range.end));
    }
    parts
}

/// Whether `line` is a delimiter of `boundary`: `Some(true)` for the close
/// delimiter. Only blanks may follow the boundary (transport padding), so a longer
/// boundary that starts with this one is not mistaken for it.
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = strip_line_end(line)
        .strip_prefix(b"--")?
        .strip_prefix(boundary)?;
    let (is_close, rest) = match rest.strip_prefix(b"--") {
        Some(after) => (true, after),
        None => (false, rest),
    };
    rest.iter()
        .all(|&b| b == b' ' || b == b'\t')
        .then_some(is_close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Part {
        parse_message(bytes, &Limits::default())
    }

    #[test]
    fn a_plain_message_is_one_leaf_with_the_default_type() {
        let message = b"Subject: x\r\n\r\nhello\r\n";
        let part = parse(message);
        assert_eq!(part.kind, PartKind::Leaf);
        assert!(part.content_type.defaulted);
        assert_eq!(&message[part.body.clone()], b"hello\r\n");
    }

    #[test]
    fn multipart_bounds_exclude_the_line_end_before_each_delimiter() {
        let message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b--\r\nepilogue\r\n";
        let part = parse(message);
        let PartKind::Multipart(children) = &part.kind else {
            panic!("not multipart: {part:?}");
        };
        assert_eq!(children.len(), 2);
        assert_eq!(&message[children[0].body.clone()], b"one");
        assert_eq!(&message[children[1].body.clone()], b"<p>two</p>");
        assert!(children[1].content_type.is_type(b"TEXT", b"html"));
    }

    #[test]
    fn a_longer_boundary_is_not_the_shorter_one() {
        let message = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/alternative; boundary=ab\r\n\r\n--ab\r\n\r\nx\r\n--ab--\r\n--a--\r\n";
        let part = parse(message);
        let PartKind::Multipart(children) = &part.kind else {
            panic!("not multipart");
        };
        assert_eq!(children.len(), 1);
        let PartKind::Multipart(inner) = &children[0].kind else {
            panic!("inner not multipart");
        };
        assert_eq!(&message[inner[0].body.clone()], b"x");
    }

    #[test]
    fn an_unterminated_multipart_runs_to_the_end_and_an_empty_one_gets_a_part() {
        let message = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nlast";
        let PartKind::Multipart(children) = parse(message).kind else {
            panic!("not multipart");
        };
        assert_eq!(&message[children[0].body.clone()], b"last");

        let empty = b"Content-Type: multipart/mixed; boundary=z\r\n\r\nno parts\r\n";
        let PartKind::Multipart(children) = parse(empty).kind else {
            panic!("not multipart");
        };
        assert_eq!(children.len(), 1);
        assert!(children[0].body.is_empty());
    }

    #[test]
    fn message_rfc822_holds_the_encapsulated_message_and_digest_defaults() {
        let message = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: inner\r\n\r\nbody\r\n--d--\r\n";
        let PartKind::Multipart(children) = parse(message).kind else {
            panic!("not multipart");
        };
        let PartKind::Message(inner) = &children[0].kind else {
            panic!("not a message: {:?}", children[0]);
        };
        assert!(inner.header.first(message, b"subject").is_some());
        assert_eq!(&message[inner.body.clone()], b"body");
    }

    #[test]
    fn a_part_ending_with_an_inner_close_delimiter_keeps_its_line_end() {
        let message = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\nx\r\n--i--\r\n--o\r\n\r\n--fake--\r\n--o--\r\n";
        let PartKind::Multipart(children) = parse(message).kind else {
            panic!("not multipart");
        };
        assert!(message[children[0].body.clone()].ends_with(b"--i--\r\n"));
        // A leaf whose last line only looks like a close delimiter does not.
        assert_eq!(&message[children[1].body.clone()], b"--fake--");
    }

    #[test]
    fn nesting_past_the_bound_stays_a_leaf() {
        let mut message = Vec::new();
        for _ in 0..5 {
            message.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        message.extend_from_slice(b"end");
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let part = parse_message(&message, &limits);
        let PartKind::Message(one) = &part.kind else {
            panic!("level 0")
        };
        let PartKind::Message(two) = &one.kind else {
            panic!("level 1")
        };
        assert_eq!(two.kind, PartKind::Leaf);
    }
}
