//! SASL pieces shared by every protocol that authenticates users (SMTP AUTH, POP3
//! USER/PASS and AUTH): the credentials a session hands its driver, the driver's
//! answer, and the decoding of PLAIN (RFC 4616) and of base64 text responses.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The PLAIN mechanism's name, as advertised.
pub const PLAIN: &str = "PLAIN";

/// Credentials presented by a client, already decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `PLAIN` or `LOGIN` (SASL), or `USER` (POP3's USER/PASS).
    pub mechanism: &'static str,
    /// The authorization identity of PLAIN, if given and different from the username.
    pub authorization_id: Option<String>,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("authorization_id", &self.authorization_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The answer to a credential check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialOutcome {
    /// Valid; the session is now authenticated as this identity.
    Valid {
        identity: String,
    },
    Invalid,
    /// The user database could not be asked.
    TemporaryFailure,
}

/// Whether valid credentials that asked for `authorization_id` may act as
/// `identity`. RFC 4616 §2: the server must check that the user may act as the
/// authorization identity; Sluice grants no one that right, so only the user's own
/// identity (or none asked for) is allowed.
pub fn may_act_as(authorization_id: Option<&str>, identity: &str) -> bool {
    authorization_id.is_none_or(|wanted| wanted.eq_ignore_ascii_case(identity))
}

/// A response that is not base64, not UTF-8, or not a well-formed PLAIN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undecodable;

/// What a PLAIN message holds.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainMessage {
    pub authorization_id: Option<String>,
    pub username: String,
    pub password: String,
}

impl core::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PlainMessage {
    /// The credentials this message presents, for the named mechanism.
    pub fn into_credentials(self) -> Credentials {
        Credentials {
            mechanism: PLAIN,
            authorization_id: self.authorization_id,
            username: self.username,
            password: self.password,
        }
    }
}

/// Whether a response line is the client's `*` cancellation (RFC 4954 §4, RFC 5034 §4).
pub fn is_cancel(line: &[u8]) -> bool {
    line == b"*"
}

/// Decodes base64 text into UTF-8 (a LOGIN username or password). Empty is refused:
/// neither may be empty.
pub fn decode_text(base64: &[u8]) -> Result<String, Undecodable> {
    let octets = STANDARD.decode(base64).map_err(|_| Undecodable)?;
    let text = String::from_utf8(octets).map_err(|_| Undecodable)?;
    if text.is_empty() || text.contains('\0') {
        Err(Undecodable)
    } else {
        Ok(text)
    }
}

/// Decodes `[authzid] NUL authcid NUL passwd` (RFC 4616 §2) from base64.
pub fn decode_plain(base64: &[u8]) -> Result<PlainMessage, Undecodable> {
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
        let credentials = message.into_credentials();
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }

    #[test]
    fn acting_as_another_identity_is_refused() {
        assert!(may_act_as(None, "alice"));
        assert!(may_act_as(Some("ALICE"), "alice"));
        assert!(!may_act_as(Some("admin"), "alice"));
    }
}
