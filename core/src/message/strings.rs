//! Message bytes as imap-types strings: quoted where IMAP allows, a literal
//! otherwise. A literal cannot carry NUL (RFC 9051 §4.3), so NUL bytes are dropped
//! from values taken from a message; nothing else is changed.

use imap_types::core::{IString, NString, Quoted};

/// `bytes` as an IMAP string.
pub(super) fn istring(bytes: Vec<u8>) -> IString<'static> {
    let bytes = if bytes.contains(&0) {
        bytes.into_iter().filter(|&b| b != 0).collect()
    } else {
        bytes
    };
    match IString::try_from(bytes) {
        Ok(string) => string,
        // Unreachable once NUL is gone; an empty quoted string is the safe answer.
        Err(_) => IString::Quoted(Quoted::unvalidated("")),
    }
}

/// `bytes` as an IMAP nstring, `NIL` for `None`.
pub(super) fn nstring(bytes: Option<Vec<u8>>) -> NString<'static> {
    NString(bytes.map(istring))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_when_possible_literal_for_eight_bit_and_no_nul() {
        assert!(matches!(istring(b"plain".to_vec()), IString::Quoted(_)));
        assert!(matches!(istring(vec![0xc3, 0xa9]), IString::Literal(_)));
        assert_eq!(istring(b"a\0b".to_vec()).into_inner().as_ref(), b"ab");
        assert_eq!(nstring(None), NString::NIL);
    }
}
