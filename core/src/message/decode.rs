//! Content-transfer decoding and charset conversion of part bodies, lenient as mail
//! readers are: a stray byte in base64 is skipped, a malformed `=` in
//! quoted-printable is kept as written. mail-parser's own decoders refuse such input
//! outright (they return nothing), so these two small decoders are written here; its
//! charset tables are used as they are.

use mail_parser::decoders::charsets::map::charset_decoder;

/// Base64 (RFC 2045 §6.8): characters outside the alphabet are skipped, decoding
/// stops at padding. Linear, one output buffer.
pub(super) fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in input {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` decoded, a soft line break (`=` at the
/// end of a line) removed, anything else kept as written. Linear.
pub(super) fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = |at: usize| input.get(at).and_then(|c| (*c as char).to_digit(16));
        if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
            out.push(((high << 4) | low) as u8);
            i += 3;
            continue;
        }
        // A soft line break: `=`, optional blanks, then CRLF or LF.
        let mut j = i + 1;
        while matches!(input.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        match (input.get(j), input.get(j + 1)) {
            (Some(b'\r'), Some(b'\n')) => i = j + 2,
            (Some(b'\n'), _) => i = j + 1,
            (None, _) => i = j,
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `bytes` in `charset` as text: UTF-8 and US-ASCII read directly (invalid bytes
/// replaced), other charsets through mail-parser's tables, an unknown charset read
/// as UTF-8.
pub(super) fn to_text(bytes: &[u8], charset: Option<&[u8]>) -> String {
    match charset {
        Some(name)
            if !name.eq_ignore_ascii_case(b"utf-8") && !name.eq_ignore_ascii_case(b"us-ascii") =>
        {
            match charset_decoder(name) {
                Some(decode) => decode(bytes),
                None => String::from_utf8_lossy(bytes).into_owned(),
            }
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_skips_line_breaks_and_stops_at_padding() {
        assert_eq!(base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(base64(b"aGV*sbG8"), b"hello");
    }

    #[test]
    fn quoted_printable_soft_breaks_and_malformed_escapes() {
        assert_eq!(
            quoted_printable(b"caf=C3=A9 =\r\nau lait"),
            "café au lait".as_bytes()
        );
        assert_eq!(quoted_printable(b"a=ZZb=\nc"), b"a=ZZbc");
        assert_eq!(quoted_printable(b"end="), b"end");
    }

    #[test]
    fn charsets_convert_to_text() {
        assert_eq!(
            to_text(&[0x63, 0x61, 0x66, 0xe9], Some(b"ISO-8859-1")),
            "café"
        );
        assert_eq!(to_text(b"plain", None), "plain");
    }
}
