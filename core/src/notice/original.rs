//! What of the original message a notice can return as its third part (RFC 3464 §2,
//! RFC 6533 §6): every line ending in CRLF, a header section cleaned of controls, and
//! the decision whether the whole message fits the limit and travels intact.

/// RFC 5322 §2.1.1: no line may exceed 998 octets before its CRLF.
const LONGEST_LINE: usize = 998;

/// What the sender asked for, or the default for the kind of notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    Message,
    Headers,
}

/// What the notice carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// The whole message: `message/rfc822`, or `message/global` (RFC 6533 §6.3).
    Message,
    /// Its header section: `text/rfc822-headers` (RFC 6522 §4), or
    /// `message/global-headers` (RFC 6533 §6.4).
    Headers,
    /// Nothing: the original had no recognisable header section to return.
    Nothing,
}

/// Why less than the whole message was returned although it was wanted, or why
/// the returned header section is incomplete; the human-readable part says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shortfall {
    /// The message is larger than the return limit.
    TooLarge,
    /// Its body holds NUL octets or lines over 998 octets, which no 7bit or 8bit MIME
    /// body may carry (RFC 2045 §2.7–2.8); `message/rfc822` cannot be encoded to
    /// hide them (RFC 2046 §5.2.1).
    NotIntact,
    /// The header section itself is larger than the limit; its start is returned.
    HeadersTruncated,
    /// No header section could be recognised.
    NoHeaders,
}

/// The prepared third part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Returned {
    pub(super) shape: Shape,
    /// The part's content: CRLF line endings, no line over 998 octets.
    pub(super) data: Vec<u8>,
    /// The header section holds UTF-8 (RFC 6532): the `global` media types apply.
    pub(super) global: bool,
    /// `data` holds octets above 127: `Content-Transfer-Encoding: 8bit`.
    pub(super) eight_bit: bool,
    pub(super) shortfall: Option<Shortfall>,
}

impl Returned {
    /// The media type of the part, `None` when there is nothing to return.
    pub(super) fn content_type(&self) -> Option<&'static str> {
        match (self.shape, self.global) {
            (Shape::Message, false) => Some("message/rfc822"),
            (Shape::Message, true) => Some("message/global"),
            (Shape::Headers, false) => Some("text/rfc822-headers"),
            (Shape::Headers, true) => Some("message/global-headers"),
            (Shape::Nothing, _) => None,
        }
    }
}

/// Lines of `bytes` and the octets each took up with its ending: CRLF, a bare LF or a
/// bare CR all end a line (RFC 5322 §2.3 forbids the bare ones; they are read as the
/// line breaks they were meant to be). A last line without an ending is a line too.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, consumed) = match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => (rest, rest.len()),
            Some(end) => {
                let ending = match (rest.get(end), rest.get(end + 1)) {
                    (Some(b'\r'), Some(b'\n')) => 2,
                    _ => 1,
                };
                (rest.get(..end).unwrap_or_default(), end + ending)
            }
        };
        rest = rest.get(consumed..).unwrap_or_default();
        Some((line, consumed))
    })
}

/// RFC 5322 §2.2 field name (printable ASCII but the colon), then optional white space
/// (the obsolete syntax of §4.5), then a colon.
fn starts_field(line: &[u8]) -> bool {
    let name_length = line
        .iter()
        .take_while(|&&b| b.is_ascii_graphic() && b != b':')
        .count();
    name_length > 0
        && line
            .get(name_length..)
            .unwrap_or_default()
            .iter()
            .find(|&&b| b != b' ' && b != b'\t')
            == Some(&b':')
}

fn continues_field(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

/// A header line as the notice returns it: invalid UTF-8 replaced (U+FFFD), controls
/// other than TAB dropped (a field body is printable text and white space, RFC 5322
/// §2.2, RFC 6532 §3.2), cut to 998 octets on a character boundary.
fn cleaned_header_line(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut cleaned: String = text
        .chars()
        .filter(|&c| c == '\t' || !c.is_control())
        .collect();
    if cleaned.len() > LONGEST_LINE {
        let mut cut = LONGEST_LINE;
        while !cleaned.is_char_boundary(cut) {
            cut -= 1;
        }
        cleaned.truncate(cut);
    }
    cleaned
}

/// The header section, cleaned, each line ending in CRLF.
struct HeaderSection {
    text: String,
    /// Where the body starts in the original: after the empty line, or at the first
    /// line that is no header line at all (a malformed message has no empty line).
    body_start: usize,
    /// The section went on past what the limit allowed.
    truncated: bool,
}

/// Reads the header section from at most `limit` + 1000 octets of `original`, and
/// keeps at most `limit` octets of it.
fn header_section(original: &[u8], limit: usize) -> HeaderSection {
    let window_length = original.len().min(limit.saturating_add(LONGEST_LINE + 2));
    let window = original.get(..window_length).unwrap_or(original);
    let window_cut = window_length < original.len();
    let mut section = HeaderSection {
        text: String::new(),
        body_start: original.len(),
        truncated: false,
    };
    let mut offset = 0;
    let mut in_field = false;
    for (line, consumed) in lines(window) {
        let is_last = offset + consumed == window_length;
        if line.is_empty() {
            section.body_start = offset + consumed;
            return section;
        }
        let is_header_line = starts_field(line) || in_field && continues_field(line);
        if !is_header_line {
            section.body_start = offset;
            return section;
        }
        // A line the window cut short may be a field cut in two.
        let cut_short = is_last && window_cut;
        let cleaned = cleaned_header_line(line);
        if cut_short || section.text.len() + cleaned.len() + 2 > limit {
            section.truncated = true;
            return section;
        }
        section.text.push_str(&cleaned);
        section.text.push_str("\r\n");
        in_field = true;
        offset += consumed;
    }
    if window_cut {
        section.truncated = true;
    }
    section
}

/// The body with CRLF line endings, unless it is too large or cannot travel intact.
fn normalized_body(body: &[u8], room: usize) -> Result<Vec<u8>, Shortfall> {
    let mut normalized = Vec::with_capacity(body.len().min(room));
    for (line, _) in lines(body) {
        if line.len() > LONGEST_LINE || line.contains(&0) {
            return Err(Shortfall::NotIntact);
        }
        if normalized.len() + line.len() + 2 > room {
            return Err(Shortfall::TooLarge);
        }
        normalized.extend_from_slice(line);
        normalized.extend_from_slice(b"\r\n");
    }
    Ok(normalized)
}

/// Prepares the third part: the whole message when `wanted` and possible, else its
/// header section. `limit` bounds the part's size and the octets examined (about
/// `limit` + 1000), so that a huge original costs no more than a small one.
pub(super) fn prepare(original: &[u8], wanted: Wanted, limit: usize) -> Returned {
    let headers = header_section(original, limit);
    let global = !headers.text.is_ascii();
    let headers_only = |shortfall: Option<Shortfall>| {
        if headers.text.is_empty() {
            return Returned {
                shape: Shape::Nothing,
                data: Vec::new(),
                global: false,
                eight_bit: false,
                shortfall: Some(if headers.truncated {
                    Shortfall::HeadersTruncated
                } else {
                    Shortfall::NoHeaders
                }),
            };
        }
        Returned {
            shape: Shape::Headers,
            data: headers.text.as_bytes().to_vec(),
            global,
            eight_bit: global,
            shortfall: if headers.truncated {
                Some(Shortfall::HeadersTruncated)
            } else {
                shortfall
            },
        }
    };
    if wanted == Wanted::Headers {
        return headers_only(None);
    }
    if original.len() > limit || headers.truncated || headers.text.len() + 2 > limit {
        return headers_only(Some(Shortfall::TooLarge));
    }
    let body = original.get(headers.body_start..).unwrap_or_default();
    // The header section, the empty line and the body together stay within the limit.
    let room = limit.saturating_sub(headers.text.len() + 2);
    match normalized_body(body, room) {
        Ok(body) => {
            let mut data = Vec::with_capacity(headers.text.len() + 2 + body.len());
            data.extend_from_slice(headers.text.as_bytes());
            data.extend_from_slice(b"\r\n");
            data.extend_from_slice(&body);
            Returned {
                shape: Shape::Message,
                eight_bit: !data.is_ascii(),
                data,
                global,
                shortfall: None,
            }
        }
        Err(shortfall) => headers_only(Some(shortfall)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 256 * 1024;

    #[test]
    fn a_clean_message_is_returned_whole() {
        let original = b"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";
        let returned = prepare(original, Wanted::Message, LIMIT);
        assert_eq!(returned.shape, Shape::Message);
        assert_eq!(returned.data, original);
        assert_eq!(returned.content_type(), Some("message/rfc822"));
        assert!(!returned.eight_bit && !returned.global);
        assert_eq!(returned.shortfall, None);
    }

    #[test]
    fn headers_only_when_asked() {
        let original = b"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";
        let returned = prepare(original, Wanted::Headers, LIMIT);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.data, b"From: a@b\r\nSubject: hi\r\n");
        assert_eq!(returned.content_type(), Some("text/rfc822-headers"));
        assert_eq!(returned.shortfall, None);
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        let original = b"From: a@b\nX: 1\r\n folded\r\rbody\rline\nend";
        let returned = prepare(original, Wanted::Message, LIMIT);
        assert_eq!(
            returned.data,
            b"From: a@b\r\nX: 1\r\n folded\r\n\r\nbody\r\nline\r\nend\r\n"
        );
    }

    #[test]
    fn utf8_headers_make_it_global() {
        let original = "Subject: caf\u{e9}\r\n\r\nbody\r\n".as_bytes();
        let returned = prepare(original, Wanted::Message, LIMIT);
        assert_eq!(returned.content_type(), Some("message/global"));
        assert!(returned.eight_bit);
        let headers = prepare(original, Wanted::Headers, LIMIT);
        assert_eq!(headers.content_type(), Some("message/global-headers"));
        // An 8-bit body alone is still message/rfc822, carried as 8bit.
        let returned = prepare(b"Subject: x\r\n\r\ncaf\xe9\r\n", Wanted::Message, LIMIT);
        assert_eq!(returned.content_type(), Some("message/rfc822"));
        assert!(returned.eight_bit);
    }

    #[test]
    fn header_junk_is_cleaned() {
        let original = b"Subject: a\x00b\x1bc\xff\r\nX: \tok\r\n\r\n";
        let returned = prepare(original, Wanted::Headers, LIMIT);
        assert_eq!(
            String::from_utf8(returned.data).unwrap(),
            "Subject: abc\u{fffd}\r\nX: \tok\r\n"
        );
        let long = format!("X: {}\r\n\r\n", "y".repeat(2000));
        let returned = prepare(long.as_bytes(), Wanted::Headers, LIMIT);
        assert_eq!(returned.data.len(), 998 + 2);
    }

    #[test]
    fn too_large_messages_return_headers() {
        let original = format!("From: a@b\r\n\r\n{}", "line\r\n".repeat(100));
        let returned = prepare(original.as_bytes(), Wanted::Message, 200);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::TooLarge));
        assert_eq!(returned.data, b"From: a@b\r\n");
        // Bare LFs doubling into CRLF can push a message over the limit too.
        let original = format!("From: a@b\n\n{}", "x\n".repeat(90));
        assert!(original.len() <= 200);
        let returned = prepare(original.as_bytes(), Wanted::Message, 200);
        assert_eq!(returned.shortfall, Some(Shortfall::TooLarge));
    }

    #[test]
    fn bodies_that_cannot_travel_return_headers() {
        let returned = prepare(b"From: a@b\r\n\r\nnul\x00here\r\n", Wanted::Message, LIMIT);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::NotIntact));
        let long = format!("From: a@b\r\n\r\n{}\r\n", "z".repeat(999));
        let returned = prepare(long.as_bytes(), Wanted::Message, LIMIT);
        assert_eq!(returned.shortfall, Some(Shortfall::NotIntact));
    }

    #[test]
    fn malformed_messages_still_return_what_they_can() {
        // No empty line: the header section ends at the first line that is no field.
        let returned = prepare(
            b"From: a@b\r\nnot a header\r\nmore\r\n",
            Wanted::Message,
            LIMIT,
        );
        assert_eq!(returned.data, b"From: a@b\r\n\r\nnot a header\r\nmore\r\n");
        // Headers only, no body at all.
        let returned = prepare(b"From: a@b", Wanted::Message, LIMIT);
        assert_eq!(returned.data, b"From: a@b\r\n\r\n");
        // No header section: nothing for headers, an empty section for the whole.
        let returned = prepare(b"\x00\x01binary", Wanted::Headers, LIMIT);
        assert_eq!(returned.shape, Shape::Nothing);
        assert_eq!(returned.shortfall, Some(Shortfall::NoHeaders));
        let returned = prepare(b" leading continuation\r\n", Wanted::Message, LIMIT);
        assert_eq!(returned.data, b"\r\n leading continuation\r\n");
        let returned = prepare(b"", Wanted::Message, LIMIT);
        assert_eq!(returned.data, b"\r\n");
    }

    #[test]
    fn a_line_with_an_empty_field_name_starts_the_body() {
        let returned = prepare(
            b"From: a@b\r\n: no name\r\nmore\r\n",
            Wanted::Message,
            LIMIT,
        );
        assert_eq!(returned.data, b"From: a@b\r\n\r\n: no name\r\nmore\r\n");
    }

    #[test]
    fn a_header_section_exactly_at_the_limit_is_returned_whole() {
        let returned = prepare(b"From: a@b\r\n\r\nbody\r\n", Wanted::Headers, 11);
        assert_eq!(returned.data, b"From: a@b\r\n");
        assert_eq!(returned.shortfall, None);
    }

    #[test]
    fn the_window_holds_the_limit_and_one_longest_line() {
        // A header line of 1995 octets (controls, which cleaning drops) ends at octet
        // 1997, inside the window of 1000 + 998 + 2 octets that limit 1000 opens.
        let mut original = b"X: ".to_vec();
        original.extend_from_slice(&[1; 1992]);
        original.extend_from_slice(b"\r\n\r\nbody\r\n");
        let returned = prepare(&original, Wanted::Headers, 1000);
        assert_eq!(returned.data, b"X: \r\n");
        assert_eq!(returned.shortfall, None);
    }

    #[test]
    fn a_line_the_window_cuts_is_dropped_even_when_it_would_fit() {
        // The window (2000 + 1000 octets) ends inside the second line; cut to 998
        // octets it would fit the limit, but half a field is not returned.
        let original = format!("From: a@b\r\nX: {}", "y".repeat(10_000));
        let returned = prepare(original.as_bytes(), Wanted::Headers, 2000);
        assert_eq!(returned.data, b"From: a@b\r\n");
        assert_eq!(returned.shortfall, Some(Shortfall::HeadersTruncated));
    }

    #[test]
    fn huge_header_sections_are_cut_at_a_line() {
        let original = "X-Filler: 0123456789\r\n".repeat(100);
        let returned = prepare(original.as_bytes(), Wanted::Message, 100);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::HeadersTruncated));
        assert_eq!(
            returned.data,
            "X-Filler: 0123456789\r\n".repeat(4).as_bytes()
        );
        // One endless line: the window stops the scan, nothing half-read is kept.
        let original = format!("From: a@b\r\nX: {}", "y".repeat(10_000));
        let returned = prepare(original.as_bytes(), Wanted::Headers, 100);
        assert_eq!(returned.data, b"From: a@b\r\n");
        assert_eq!(returned.shortfall, Some(Shortfall::HeadersTruncated));
        // Not even the first line fits: nothing, and the reason is the size.
        let returned = prepare(b"From: a@b\r\n\r\n", Wanted::Message, 5);
        assert_eq!(returned.shape, Shape::Nothing);
        assert_eq!(returned.shortfall, Some(Shortfall::HeadersTruncated));
    }

    proptest! {
        #[test]
        fn returned_data_is_clean_and_bounded(
            original in proptest::collection::vec(any::<u8>(), 0..2000),
            limit in 0usize..3000,
            whole in any::<bool>(),
        ) {
            let wanted = if whole { Wanted::Message } else { Wanted::Headers };
            let returned = prepare(&original, wanted, limit);
            prop_assert!(returned.data.len() <= limit);
            prop_assert_eq!(returned.eight_bit, !returned.data.is_ascii());
            if returned.shape == Shape::Nothing {
                prop_assert!(returned.data.is_empty());
            } else {
                prop_assert!(returned.data.ends_with(b"\r\n"));
            }
            for (line, consumed) in lines(&returned.data) {
                prop_assert!(line.len() <= LONGEST_LINE);
                // Every line ends in CRLF: no bare CR or LF survives.
                prop_assert_eq!(consumed, line.len() + 2);
                prop_assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
            }
            if wanted == Wanted::Headers {
                prop_assert!(returned.shape != Shape::Message);
            }
        }
    }

    #[test]
    fn a_message_exactly_at_the_limit_is_returned_whole() {
        // Header section, empty line and body fill the limit to the octet.
        let original = b"From: a@b\r\n\r\nbody\r\n";
        let returned = prepare(original, Wanted::Message, original.len());
        assert_eq!(returned.shape, Shape::Message);
        assert_eq!(returned.data, original);
        assert_eq!(returned.shortfall, None);
        // One octet less and only the header section goes back.
        let returned = prepare(original, Wanted::Message, original.len() - 1);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::TooLarge));
    }

    #[test]
    fn a_message_without_a_body_exactly_at_the_limit_is_returned_whole() {
        // The header section and the empty line the notice adds take all 13 octets.
        let returned = prepare(b"From: a@b\r\n", Wanted::Message, 13);
        assert_eq!(returned.shape, Shape::Message);
        assert_eq!(returned.data, b"From: a@b\r\n\r\n");
    }

    #[test]
    fn an_original_over_the_limit_returns_its_headers_though_cleaning_would_shrink_it() {
        // Cleaning drops the 50 controls, after which the message would fit; but an
        // original over the limit is judged by its own size, its body never read.
        let mut original = b"X: ".to_vec();
        original.extend_from_slice(&[1; 50]);
        original.extend_from_slice(b"\r\n\r\nbody\r\n");
        let returned = prepare(&original, Wanted::Message, 40);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::TooLarge));
        assert_eq!(returned.data, b"X: \r\n");
    }

    #[test]
    fn a_header_section_that_cleaning_grows_past_the_limit_is_cut() {
        // Each invalid octet becomes U+FFFD, three octets: the original fits the limit,
        // its cleaned header section does not, and the message does not go whole.
        let mut original = b"From: a@b\r\nX: ".to_vec();
        original.extend_from_slice(&[0xff; 10]);
        original.extend_from_slice(b"\r\n\r\n");
        let returned = prepare(&original, Wanted::Message, original.len());
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::HeadersTruncated));
        assert_eq!(returned.data, b"From: a@b\r\n");
    }

    #[test]
    fn a_header_line_ending_past_the_window_counts_as_cut() {
        // Limit 1000 opens a window of 1000 + 998 + 2 octets; this line runs to octet
        // 2001, so the window ends inside it, and half a field is not returned.
        let mut original = b"X: ".to_vec();
        original.extend_from_slice(&[1; 1998]);
        original.extend_from_slice(b"\r\n\r\nbody\r\n");
        let returned = prepare(&original, Wanted::Headers, 1000);
        assert_eq!(returned.shape, Shape::Nothing);
        assert_eq!(returned.shortfall, Some(Shortfall::HeadersTruncated));
    }

    #[test]
    fn a_long_header_line_is_cut_between_characters() {
        // The é's take octets 3 to 1202 two by two: octet 998 falls inside one, and the
        // cut goes before it.
        let original = format!("X: {}\r\n\r\n", "\u{e9}".repeat(600));
        let returned = prepare(original.as_bytes(), Wanted::Headers, LIMIT);
        let expected = format!("X: {}\r\n", "\u{e9}".repeat(497));
        assert_eq!(returned.data, expected.as_bytes());
    }

    #[test]
    fn a_body_line_of_998_octets_travels_intact() {
        let original = format!("From: a@b\r\n\r\n{}\r\n", "z".repeat(998));
        let returned = prepare(original.as_bytes(), Wanted::Message, LIMIT);
        assert_eq!(returned.shape, Shape::Message);
        assert_eq!(returned.data, original.as_bytes());
    }

    #[test]
    fn white_space_before_the_colon_still_starts_a_field() {
        // RFC 5322 §4.5's obsolete syntax allows `Subject :`.
        let original = b"From: a@b\r\nSubject\t : hi\r\n\r\nbody\r\n";
        let returned = prepare(original, Wanted::Headers, LIMIT);
        assert_eq!(returned.data, b"From: a@b\r\nSubject\t : hi\r\n");
    }

    #[test]
    fn empty_body_lines_count_toward_the_limit() {
        // Forty bare LFs become eighty octets of CRLF, more than the 47 left after the
        // header section, although the original itself fits the limit.
        let original = format!("From: a@b\n\n{}", "\n".repeat(40));
        let returned = prepare(original.as_bytes(), Wanted::Message, 60);
        assert_eq!(returned.shape, Shape::Headers);
        assert_eq!(returned.shortfall, Some(Shortfall::TooLarge));
    }
}
