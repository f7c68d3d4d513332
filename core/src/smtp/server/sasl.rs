//! Decoding the client's side of AUTH PLAIN (RFC 4616) and AUTH LOGIN: base64
//! responses into an authorization identity, a username and a password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The SASL mechanisms offered, as advertised.
pub(super) const PLAIN: &str = "PLAIN";
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

/// A response that is not base64, not UTF-8, or not a well-formed PLAIN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Undecodable;

/// What a PLAIN message holds.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PlainMessage {
    pub(crate) authorization_id: Option<String>,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl core::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether a response line is the client's `*` cancellation (RFC 4954 §4).
pub(crate) fn is_cancel(line: &[u8]) -> bool {
    line == b"*"
}

/// Decodes base64 text into UTF-8 (a LOGIN username or password). Empty is refused:
/// neither may be empty.
pub(super) fn decode_text(base64: &[u8]) -> Result<String, Undecodable> {
    let octets = STANDARD.decode(base64).map_err(|_| Undecodable)?;
    let text = String::from_utf8(octets).map_err(|_| Undecodable)?;
    if text.is_empty() || text.contains('\0') {
        Err(Undecodable)
    } else {
        Ok(text)
    }
}

/// Decodes `[authzid] NUL authcid NUL passwd` (RFC 4616 §2) from base64.
pub(crate) fn decode_plain(base64: &[u8]) -> Result<PlainMessage, Undecodable> {
    let octets = STANDARD.decode(base64).map_err(|_| Undecodable)?;
    let text = String::from_utf8(octets).map_err(|_| Undecodable)?;
    let mut parts = text.split('\0');
    let (Some(authorization_id), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Undecodable);
    };
    if username.is_empty() || password.is_empty() {
        return Err(Undecodable);
    }
    let authorization_id = (!authorization_id.is_empty() && authorization_id != username)
        .then(|| authorization_id.to_owned());
    Ok(PlainMessage {
        authorization_id,
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(raw: &[u8]) -> Vec<u8> {
        STANDARD.encode(raw).into_bytes()
    }

    #[test]
    fn plain_with_and_without_authzid() {
        let message = decode_plain(&encode(b"\0alice\0secret")).unwrap();
        assert_eq!(message.authorization_id, None);
        assert_eq!(message.username, "alice");
        assert_eq!(message.password, "secret");
        let message = decode_plain(&encode(b"admin\0alice\0secret")).unwrap();
        assert_eq!(message.authorization_id.as_deref(), Some("admin"));
        let message = decode_plain(&encode(b"alice\0alice\0secret")).unwrap();
        assert_eq!(message.authorization_id, None);
    }

    #[test]
    fn malformed_plain() {
        for raw in [
            &b"alice\0secret"[..],
            b"\0\0secret",
            b"\0alice\0",
            b"a\0b\0c\0d",
            b"\0al\xffice\0x",
        ] {
            assert_eq!(decode_plain(&encode(raw)), Err(Undecodable), "{raw:?}");
        }
        assert_eq!(decode_plain(b"not base64!"), Err(Undecodable));
    }

    #[test]
    fn login_text() {
        assert_eq!(decode_text(&encode(b"alice")), Ok("alice".to_owned()));
        assert_eq!(decode_text(b""), Err(Undecodable));
        assert_eq!(decode_text(b"%%%"), Err(Undecodable));
    }

    #[test]
    fn debug_hides_password() {
        let message = decode_plain(&encode(b"\0alice\0hunter2")).unwrap();
        assert!(!format!("{message:?}").contains("hunter2"));
    }

    #[test]
    fn mechanisms() {
        assert_eq!(mechanism("plain"), Some(PLAIN));
        assert_eq!(mechanism("LOGIN"), Some(LOGIN));
        assert_eq!(mechanism("CRAM-MD5"), None);
    }
}
