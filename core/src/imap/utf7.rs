//! Modified UTF-7 (RFC 3501 §5.1.3): how IMAP4rev1 clients spell mailbox names
//! that are not ASCII. Clients that enabled IMAP4rev2 or UTF8=ACCEPT use UTF-8
//! instead (RFC 9051 §5.1, RFC 6855); the store always sees UTF-8.

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

/// RFC 3501's base64 with `,` for `/` and no padding.
fn engine() -> Option<GeneralPurpose> {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").ok()?;
    Some(GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    ))
}

/// A name in modified UTF-7 as UTF-8; `None` if it is not well-formed.
pub(super) fn decode(name: &str) -> Option<String> {
    let engine = engine()?;
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        let (plain, after) = rest.split_at(amp);
        if !plain.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        out.push_str(plain);
        let after = &after[1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine.decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            let decoded = String::from_utf16(&units).ok()?;
            // Printable ASCII must not be encoded (RFC 3501 §5.1.3).
            if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&decoded);
        }
        rest = &after[end + 1..];
    }
    if !rest.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// A UTF-8 name in modified UTF-7.
pub(super) fn encode(name: &str) -> String {
    let Some(engine) = engine() else {
        return name.to_owned();
    };
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|unit| unit.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_spellings() {
        // RFC 3501 §5.1.3's example.
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(decode("Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
    }

    #[test]
    fn malformed_spellings() {
        for bad in ["&", "&U,BTFw", "&AGE-", "a\u{e9}", "&Jjo!-"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(name in "\\PC{0,24}") {
            prop_assume!(!name.contains(['\r', '\n']));
            prop_assert_eq!(decode(&encode(&name)), Some(name.clone()));
        }
    }
}
