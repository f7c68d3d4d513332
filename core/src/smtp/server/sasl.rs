//! The SASL mechanisms SMTP AUTH offers (PLAIN and LOGIN) and LOGIN's prompts; the
//! decoding itself is shared with POP3 in `crate::sasl`.

pub(super) use crate::sasl::{Undecodable, decode_plain, decode_text, is_cancel};

/// The SASL mechanisms offered, as advertised.
pub(super) const PLAIN: &str = crate::sasl::PLAIN;
pub(super) const LOGIN: &str = "LOGIN";

/// The LOGIN prompts, already base64: "Username:" and "Password:".
pub(super) const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
pub(super) const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// The mechanism name as a static string, if offered.
pub(super) fn mechanism(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case(PLAIN) {
        Some(PLAIN)
    } else if name.eq_ignore_ascii_case(LOGIN) {
        Some(LOGIN)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms() {
        assert_eq!(mechanism("plain"), Some(PLAIN));
        assert_eq!(mechanism("LOGIN"), Some(LOGIN));
        assert_eq!(mechanism("CRAM-MD5"), None);
    }
}
