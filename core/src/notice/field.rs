//! Outside text made safe inside a notice: values that can neither end a line nor
//! break the delivery-status syntax, addresses typed per RFC 3464 §2.3.2 and RFC 6533
//! §3, and header-style folding, which RFC 3464 §2.1.1 adopts from RFC 822.

/// RFC 5322 §2.1.1: lines SHOULD stay within 78 octets; folding aims for that.
const FOLD_AT: usize = 78;

/// The longest unbroken run of octets a folded line carries. A word longer than this
/// is split (a fold inside it reads back as a space): RFC 5322 §2.1.1's hard limit is
/// 998 octets, and the field name and indentation need room too.
const LONGEST_WORD: usize = 900;

/// One line of printable US-ASCII for the machine-readable part, whose fields are
/// `*text` in US-ASCII (RFC 3464 §2.1.1): controls (CR, LF, TAB, …) become spaces,
/// so nothing can end a line or start a field, and anything else outside ASCII
/// becomes `?`.
pub(super) fn ascii_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_control() || c.is_whitespace() => ' ',
            _ => '?',
        })
        .collect()
}

/// Text for the human-readable part: Unicode is kept (the part is UTF-8, and
/// transfer-encoded), but controls and line breaks become spaces, so that a remote
/// reply cannot draw lines of its own into the explanation.
pub(super) fn display_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() && c != ' ' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// RFC 6533 §3 `utf-8-addr-xtext`: printable ASCII but `+`, `=`, `\` as itself,
/// every other code point as `\x{HEX}`. This is the form RFC 6533 prescribes for
/// `utf-8` addresses inside `message/delivery-status`, which stays US-ASCII; it also
/// escapes controls, so the value cannot break a line.
fn utf8_addr_xtext(address: &str) -> String {
    let mut encoded = String::with_capacity(address.len());
    for c in address.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    encoded
}

/// Whether an address can be written as `rfc822; address`: printable ASCII only
/// (a quoted local part may hold spaces).
fn is_rfc822_writable(address: &str) -> bool {
    address.chars().all(|c| matches!(c, ' '..='~'))
}

/// A recipient address with its type (RFC 3464 §2.3.2): `rfc822; addr` when it is
/// plain ASCII, else `utf-8; ` and the RFC 6533 escaped form.
pub(super) fn typed_address(address: &str) -> String {
    if is_rfc822_writable(address) {
        format!("rfc822; {address}")
    } else {
        format!("utf-8; {}", utf8_addr_xtext(address))
    }
}

/// ORCPT as `Original-Recipient:` carries it (RFC 3464 §2.3.1): the client's address
/// type and its decoded address. A `utf-8` address, or any address that is not plain
/// ASCII, takes RFC 6533's escaped form; an `rfc822` one is as given. Another type
/// keeps its name (an RFC 822 atom, as the parser checked) with the value cleaned.
pub(super) fn original_recipient(address_type: &str, address: &str) -> String {
    let is_utf8_type = address_type.eq_ignore_ascii_case("utf-8");
    let is_rfc822_type = address_type.eq_ignore_ascii_case("rfc822");
    if is_utf8_type || is_rfc822_type && !is_rfc822_writable(address) {
        return format!("utf-8; {}", utf8_addr_xtext(address));
    }
    let address_type: String = address_type
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()<>@,;:\\\".[]".contains(*c))
        .collect();
    if address_type.is_empty() {
        return format!("utf-8; {}", utf8_addr_xtext(address));
    }
    format!("{address_type}; {}", ascii_text(address))
}

/// `Name: value` as one header-style field ending in CRLF, folded at spaces (CRLF and
/// a space) so that lines stay within 78 octets where the words allow and within 998
/// always. `value` must already be a single line (see [`ascii_text`]); runs of
/// spaces collapse, which RFC 5322 §3.2.2 treats as the same.
pub(super) fn folded_field(name: &str, value: &str) -> String {
    let mut field = format!("{name}:");
    let mut line_length = field.len();
    for word in value.split(' ').filter(|word| !word.is_empty()) {
        for piece in pieces(word, LONGEST_WORD) {
            if line_length + 1 + piece.len() > FOLD_AT && line_length > name.len() + 1 {
                field.push_str("\r\n");
                line_length = 0;
            }
            field.push(' ');
            field.push_str(piece);
            line_length += 1 + piece.len();
        }
    }
    field.push_str("\r\n");
    field
}

/// `word` cut into pieces of at most `longest` octets, on character boundaries.
fn pieces(word: &str, longest: usize) -> impl Iterator<Item = &str> {
    let mut rest = word;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(longest);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // `longest` is shorter than the first character: it goes whole.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at_checked(cut).unwrap_or((rest, ""));
        rest = tail;
        Some(piece)
    })
}

/// `text` shortened to at most `longest` octets on a character boundary, with `…`
/// (ASCII `...`) marking a cut.
pub(super) fn bounded(text: &str, longest: usize) -> String {
    if text.len() <= longest {
        return text.to_owned();
    }
    let mut cut = longest.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", text.get(..cut).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ascii_text_cannot_break_lines() {
        assert_eq!(ascii_text("a\r\nb\tc\u{85}d\u{e9}"), "a  b c d?");
        assert_eq!(ascii_text("plain text; 1.2.3"), "plain text; 1.2.3");
    }

    #[test]
    fn display_text_keeps_unicode_but_not_controls() {
        assert_eq!(display_text("caf\u{e9}\r\nBcc: x"), "caf\u{e9}  Bcc: x");
        assert_eq!(display_text("a\u{2028}b\u{0}"), "a b ");
    }

    #[test]
    fn addresses_are_typed() {
        assert_eq!(typed_address("bob@example.org"), "rfc822; bob@example.org");
        assert_eq!(
            typed_address("\"a b\"@example.org"),
            "rfc822; \"a b\"@example.org"
        );
        assert_eq!(
            typed_address("j\u{f6}rg@b\u{fc}cher.example"),
            "utf-8; j\\x{F6}rg@b\\x{FC}cher.example"
        );
        assert_eq!(
            typed_address("x\r\nBcc: y@z"),
            "utf-8; x\\x{D}\\x{A}Bcc:\\x{20}y@z"
        );
        assert_eq!(typed_address("a+b=c@d"), "rfc822; a+b=c@d");
    }

    #[test]
    fn original_recipients_keep_their_type() {
        assert_eq!(original_recipient("rfc822", "a@b"), "rfc822; a@b");
        assert_eq!(original_recipient("RFC822", "a@b"), "RFC822; a@b");
        assert_eq!(
            original_recipient("utf-8", "\u{e9}+@b"),
            "utf-8; \\x{E9}\\x{2B}@b"
        );
        assert_eq!(original_recipient("rfc822", "\u{e9}@b"), "utf-8; \\x{E9}@b");
        assert_eq!(original_recipient("x400", "c=us;a=b"), "x400; c=us;a=b");
        assert_eq!(original_recipient("x400", "a\r\nb"), "x400; a  b");
        assert_eq!(original_recipient("\r\n", "a@b"), "utf-8; a@b");
    }

    #[test]
    fn fields_fold_at_spaces() {
        assert_eq!(folded_field("Action", "failed"), "Action: failed\r\n");
        let long = "word ".repeat(30);
        let field = folded_field("Diagnostic-Code", &long);
        assert!(field.starts_with("Diagnostic-Code: word word"));
        for line in field.trim_end_matches("\r\n").split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line:?}");
        }
        assert_eq!(
            field.replace("\r\n", "").trim_end(),
            format!("Diagnostic-Code: {}", long.trim_end())
        );
    }

    #[test]
    fn one_huge_word_is_split_below_the_line_limit() {
        let word = "\u{e9}".repeat(1000);
        let field = folded_field("X", &word);
        for line in field.trim_end_matches("\r\n").split("\r\n") {
            assert!(line.len() <= 998, "{}", line.len());
        }
        assert_eq!(field.replace("\r\n ", "").replace("X: ", ""), word + "\r\n");
    }

    #[test]
    fn bounded_cuts_on_characters() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("abcdefghij", 8), "abcde...");
        assert_eq!(bounded("\u{e9}\u{e9}\u{e9}", 5), "\u{e9}...");
        assert_eq!(bounded("\u{e9}\u{e9}\u{e9}", 4), "...");
        assert_eq!(bounded("\u{e9}\u{e9}\u{e9}", 6), "\u{e9}\u{e9}\u{e9}");
    }

    proptest! {
        #[test]
        fn folded_fields_are_clean(name in "[A-Z][a-z-]{0,20}", value in any::<String>()) {
            let field = folded_field(&name, &ascii_text(&value));
            prop_assert!(field.ends_with("\r\n"));
            prop_assert!(field.is_ascii());
            let body = field.strip_suffix("\r\n").unwrap_or(&field);
            for (index, line) in body.split("\r\n").enumerate() {
                prop_assert!(line.len() <= 998);
                prop_assert!(!line.contains('\r') && !line.contains('\n'));
                // Every line after the first is a continuation.
                prop_assert_eq!(index > 0, line.starts_with(' '));
            }
        }

        #[test]
        fn typed_addresses_are_one_ascii_line(address in any::<String>()) {
            let typed = typed_address(&address);
            prop_assert!(typed.chars().all(|c| matches!(c, ' '..='~')));
        }
    }

    #[test]
    fn every_control_and_every_unicode_space_becomes_a_space_in_ascii_text() {
        // NUL and ESC are controls but no white space; NBSP and LINE SEPARATOR are
        // white space but no controls.
        assert_eq!(ascii_text("a\u{0}b\u{1b}c\u{a0}d\u{2028}e"), "a b c d e");
    }

    #[test]
    fn a_line_of_exactly_78_octets_is_not_folded() {
        let value = format!("{} {}", "a".repeat(10), "b".repeat(64));
        let field = folded_field("X", &value);
        assert_eq!(field, format!("X: {value}\r\n"));
        assert_eq!(field.len(), 78 + 2);
        // One octet more and the second word goes to a continuation line.
        let value = format!("{} {}", "a".repeat(10), "b".repeat(65));
        assert_eq!(
            folded_field("X", &value),
            format!("X: {}\r\n {}\r\n", "a".repeat(10), "b".repeat(65))
        );
    }

    #[test]
    fn pieces_stay_within_the_longest_and_cut_between_characters() {
        // Octet 2 falls inside the first é: the first piece stops before it.
        let cut: Vec<&str> = pieces("a\u{e9}\u{e9}", 2).collect();
        assert_eq!(cut, ["a", "\u{e9}", "\u{e9}"]);
        // A character longer than `longest` goes whole.
        let cut: Vec<&str> = pieces("\u{e9}a", 1).collect();
        assert_eq!(cut, ["\u{e9}", "a"]);
    }
}
