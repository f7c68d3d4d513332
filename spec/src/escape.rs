//! Byte escapes shared by raw client lines (`R:`), expected message data and the
//! transcript, so that whatever a transcript shows can be pasted back into a vector.
//!
//! `\r \n \t \0 \\ \" \xHH` as usual, and `\{N*text}` for `text` repeated N times:
//! limits such as the 1000-octet text line are proved with real lengths, and a
//! thousand `x` characters would make a vector unreadable.

/// Why an escaped string could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("unknown escape `\\{0}` (known: \\r \\n \\t \\0 \\\\ \\\" \\xHH \\{{N*text}})")]
    Unknown(char),
    #[error("`\\x` must be followed by two hex digits")]
    BadHex,
    #[error("malformed repeat `\\{{N*text}}`")]
    BadRepeat,
    #[error("backslash at the end of the text")]
    TrailingBackslash,
}

/// The longest expansion of one `\{N*text}`: a typo must not exhaust memory.
const MAX_REPEAT_BYTES: usize = 64 * 1024 * 1024;

/// Decodes escapes into bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, EscapeError> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((at, escape)) = chars.next() else {
            return Err(EscapeError::TrailingBackslash);
        };
        match escape {
            'r' => out.push(b'\r'),
            'n' => out.push(b'\n'),
            't' => out.push(b'\t'),
            '0' => out.push(0),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => {
                let hex = text.get(at + 1..at + 3).ok_or(EscapeError::BadHex)?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| EscapeError::BadHex)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(EscapeError::BadHex);
                }
                out.push(byte);
                chars.next();
                chars.next();
            }
            '{' => {
                let rest = &text[at + 1..];
                let close = rest.find('}').ok_or(EscapeError::BadRepeat)?;
                let (count, piece) = rest[..close]
                    .split_once('*')
                    .ok_or(EscapeError::BadRepeat)?;
                let count: usize = count.trim().parse().map_err(|_| EscapeError::BadRepeat)?;
                if piece.is_empty() || count.saturating_mul(piece.len()) > MAX_REPEAT_BYTES {
                    return Err(EscapeError::BadRepeat);
                }
                out.extend(std::iter::repeat_n(piece.as_bytes(), count).flatten());
                for _ in 0..rest[..=close].chars().count() {
                    chars.next();
                }
            }
            other => return Err(EscapeError::Unknown(other)),
        }
    }
    Ok(out)
}

/// Runs of one printable byte at least this long are written as `\{N*c}`.
const RUN_THRESHOLD: usize = 16;

/// Like [`escape`], for a value shown between double quotes.
pub fn quoted(bytes: &[u8]) -> String {
    // `escape` never emits a `"` as part of an escape sequence, so every `"` in its
    // output is a literal quote.
    format!("\"{}\"", escape(bytes).replace('"', "\\\""))
}

/// Writes bytes readably and unambiguously: printable ASCII and valid UTF-8 as is,
/// everything else escaped, long runs folded. `unescape(escape(b)) == b`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let run = bytes[i..].iter().take_while(|&&b| b == byte).count();
        if run >= RUN_THRESHOLD
            && byte.is_ascii_graphic()
            && byte != b'\\'
            && byte != b'}'
            && byte != b'"'
        {
            out.push_str(&format!("\\{{{run}*{}}}", byte as char));
            i += run;
            continue;
        }
        match byte {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0 => out.push_str("\\0"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            0x80.. => {
                // Valid UTF-8 is shown as text (SMTPUTF8 vectors read naturally);
                // anything else byte by byte.
                let width = utf8_width(byte);
                if let Some(Ok(text)) = bytes.get(i..i + width).map(std::str::from_utf8) {
                    out.push_str(text);
                    i += width;
                    continue;
                }
                out.push_str(&format!("\\x{byte:02X}"));
            }
            _ => out.push_str(&format!("\\x{byte:02X}")),
        }
        i += 1;
    }
    out
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode() {
        assert_eq!(unescape("a\\r\\n.\\x00\\\\").unwrap(), b"a\r\n.\x00\\");
        assert_eq!(unescape("\\{3*ab}c").unwrap(), b"abababc");
        assert_eq!(unescape("é").unwrap(), "é".as_bytes());
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert_eq!(unescape("\\q"), Err(EscapeError::Unknown('q')));
        assert_eq!(unescape("\\x4"), Err(EscapeError::BadHex));
        assert_eq!(unescape("\\xZZ"), Err(EscapeError::BadHex));
        assert_eq!(unescape("\\{3x}"), Err(EscapeError::BadRepeat));
        assert_eq!(unescape("\\{3*x"), Err(EscapeError::BadRepeat));
        assert_eq!(unescape("abc\\"), Err(EscapeError::TrailingBackslash));
    }

    #[test]
    fn escape_round_trips() {
        let samples: [&[u8]; 5] = [
            b"MAIL FROM:<a@b>\r\n",
            b"\n.\r\n\r.\r\x00\x7f\xff",
            "ünïcode \"quoted\" \\".as_bytes(),
            &[b'x'; 1200],
            b"}}}}}}}}}}}}}}}}}}}}}}}}}",
        ];
        for sample in samples {
            assert_eq!(
                unescape(&escape(sample)).unwrap(),
                sample,
                "{}",
                escape(sample)
            );
        }
        assert_eq!(escape(&[b'x'; 20]), "\\{20*x}");
    }
}
