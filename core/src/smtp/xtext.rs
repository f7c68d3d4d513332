//! xtext (RFC 3461 §4): printable ASCII except `+` and `=`, other octets as `+HH`.
//! Used by ENVID, ORCPT and the AUTH= parameter of MAIL.

/// Why an xtext value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XtextError {
    #[error("invalid character in xtext")]
    InvalidCharacter,
    #[error("malformed +HH escape in xtext")]
    BadEscape,
}

/// Whether `octet` may stand for itself in xtext (`xchar`: %d33-42 / %d44-60 / %d62-126).
pub(crate) fn is_xchar(octet: u8) -> bool {
    matches!(octet, 33..=42 | 44..=60 | 62..=126)
}

/// The value of one upper-case hex digit; RFC 3461 defines `hexchar` with upper case only.
pub(crate) fn upper_hex_value(octet: u8) -> Option<u8> {
    match octet {
        b'0'..=b'9' => Some(octet - b'0'),
        b'A'..=b'F' => Some(octet - b'A' + 10),
        _ => None,
    }
}

/// Decodes xtext into its octets. Hex digits in escapes must be upper case (RFC 3461).
pub fn decode(text: &str) -> Result<Vec<u8>, XtextError> {
    let bytes = text.as_bytes();
    let mut octets = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&octet) = bytes.get(index) {
        if octet == b'+' {
            let high = bytes.get(index + 1).copied().and_then(upper_hex_value);
            let low = bytes.get(index + 2).copied().and_then(upper_hex_value);
            match (high, low) {
                (Some(high), Some(low)) => octets.push(high << 4 | low),
                _ => return Err(XtextError::BadEscape),
            }
            index += 3;
        } else if is_xchar(octet) {
            octets.push(octet);
            index += 1;
        } else {
            return Err(XtextError::InvalidCharacter);
        }
    }
    Ok(octets)
}

/// Encodes octets as xtext, escaping `+`, `=`, controls, space and non-ASCII.
pub fn encode(octets: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(octets.len());
    for &octet in octets {
        if is_xchar(octet) {
            text.push(char::from(octet));
        } else {
            text.push('+');
            text.push(char::from(HEX[usize::from(octet >> 4)]));
            text.push(char::from(HEX[usize::from(octet & 0x0f)]));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plain_and_escaped_text() {
        assert_eq!(
            decode("bob+2Bsmith@example.com").unwrap(),
            b"bob+smith@example.com"
        );
        assert_eq!(decode("a+3Db").unwrap(), b"a=b");
        assert_eq!(decode("+20+00+FF").unwrap(), vec![0x20, 0x00, 0xff]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_lower_case_and_short_escapes() {
        assert_eq!(decode("a+2b"), Err(XtextError::BadEscape));
        assert_eq!(decode("a+2"), Err(XtextError::BadEscape));
        assert_eq!(decode("+"), Err(XtextError::BadEscape));
        assert_eq!(decode("+G0"), Err(XtextError::BadEscape));
    }

    #[test]
    fn rejects_characters_outside_xchar() {
        for text in ["a=b", "a b", "tab\there", "é", "\u{7f}"] {
            assert_eq!(decode(text), Err(XtextError::InvalidCharacter), "{text:?}");
        }
    }

    #[test]
    fn encodes_only_what_must_be_escaped() {
        assert_eq!(encode(b"bob+smith@example.com"), "bob+2Bsmith@example.com");
        assert_eq!(encode(b"a=b c"), "a+3Db+20c");
        assert_eq!(encode("é".as_bytes()), "+C3+A9");
        assert_eq!(encode(b"<>"), "<>");
    }

    #[test]
    fn every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
    }
}
