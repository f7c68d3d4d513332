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

/// Decodes xtext into its octets. Hex digits in escapes must be upper case (RFC 3461).
pub fn decode(text: &str) -> Result<Vec<u8>, XtextError> {
    todo!("grammar")
}

/// Encodes octets as xtext, escaping `+`, `=`, controls, space and non-ASCII.
pub fn encode(octets: &[u8]) -> String {
    todo!("grammar")
}
