//! One domain's signer: its key (RSA or Ed25519, from a PEM private key or, for the
//! simulator, an Ed25519 seed), the key record to publish, and the signature of a
//! message at a given time. The canonicalisation, hashing and key operations are
//! mail-auth's; this module only assembles the signing input (RFC 6376 §3.7: the
//! canonical signed header fields, then the DKIM-Signature field with an empty
//! `b=`) and hands it to the key, so that the time is the caller's.

use crate::DkimError;
use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderStream, HeaderWriter as _, Writable as _};
use mail_auth::dkim::{Canonicalization, Signature};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use rsa::traits::PublicKeyParts as _;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use std::fmt;

/// The header fields signed when present (RFC 6376 §5.4.1 recommends these; From
/// is required). mail-auth also lists those a message lacks in `h=`, so that a field
/// added on the way breaks the signature (RFC 6376 §8.15).
pub const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "In-Reply-To",
    "References",
];

/// RFC 8301 §3.2: verifiers must not accept RSA keys under 1024 bits.
const MIN_RSA_BITS: usize = 1024;
/// One character-string in a TXT record holds at most 255 octets (RFC 1035 §3.3.14);
/// longer values are split and the verifier concatenates them (RFC 6376 §3.6.2.2).
const TXT_STRING_MAX: usize = 255;
/// The DER prefix of a PKCS#8 Ed25519 private key (RFC 8410 §7): the version, the
/// algorithm identifier 1.3.101.112 and the 32-octet seed's OCTET STRING header.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The signing algorithm, named as in `a=` without the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

impl DkimAlgorithm {
    /// The `k=` tag of the key record (RFC 6376 §3.6.1, RFC 8463 §4.2).
    pub fn key_type(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// Signs for one domain with one selector's key.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: DkimKey,
    /// `p=` of the key record, base64 (SubjectPublicKeyInfo for RSA, the raw 32
    /// bytes for Ed25519).
    public_key: String,
}

impl fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// A signer from a PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1 (RSA).
    /// `what` names the key in errors (a path, usually).
    pub fn from_pem(
        domain: &str,
        selector: &str,
        pem: &[u8],
        what: &str,
    ) -> Result<Self, DkimError> {
        let bad_pem = |reason: String| DkimError::BadPem {
            what: what.to_owned(),
            reason,
        };
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|error| bad_pem(error.to_string()))?;
        let (key, public_key) = match &key {
            PrivateKeyDer::Pkcs1(der) => {
                let rsa = rsa::RsaPrivateKey::from_pkcs1_der(der.secret_pkcs1_der())
                    .map_err(|error| bad_pem(error.to_string()))?;
                rsa_key(rsa, key.clone_key(), what)?
            }
            PrivateKeyDer::Pkcs8(der) => {
                let bytes = der.secret_pkcs8_der();
                if let Ok(ed25519) = Ed25519Key::from_pkcs8_der(bytes) {
                    let public_key = base64(&ed25519.public_key());
                    (DkimKey::Ed25519(ed25519), public_key)
                } else {
                    let rsa = rsa::RsaPrivateKey::from_pkcs8_der(bytes).map_err(|_| {
                        DkimError::UnsupportedKey {
                            what: what.to_owned(),
                            kind: "PKCS#8 key of another type",
                        }
                    })?;
                    rsa_key(rsa, key.clone_key(), what)?
                }
            }
            PrivateKeyDer::Sec1(_) => {
                return Err(DkimError::UnsupportedKey {
                    what: what.to_owned(),
                    kind: "SEC1 elliptic-curve",
                });
            }
            _ => {
                return Err(DkimError::UnsupportedKey {
                    what: what.to_owned(),
                    kind: "unknown",
                });
            }
        };
        DkimSigner::new(domain, selector, key, public_key)
    }

    /// An Ed25519 signer from its 32-octet seed (the private key of RFC 8032 §5.1.5):
    /// the simulator derives its keys from the run's seed.
    pub fn ed25519_from_seed(
        domain: &str,
        selector: &str,
        seed: [u8; 32],
    ) -> Result<Self, DkimError> {
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|error| DkimError::BadPem {
            what: "an Ed25519 seed".to_owned(),
            reason: error.to_string(),
        })?;
        let public_key = base64(&key.public_key());
        DkimSigner::new(domain, selector, DkimKey::Ed25519(key), public_key)
    }

    fn new(
        domain: &str,
        selector: &str,
        key: DkimKey,
        public_key: String,
    ) -> Result<Self, DkimError> {
        Ok(DkimSigner {
            domain: validate_domain(domain)?,
            selector: validate_selector(selector)?,
            key,
            public_key,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        match self.key {
            DkimKey::Rsa(_) => DkimAlgorithm::Rsa,
            DkimKey::Ed25519(_) => DkimAlgorithm::Ed25519,
        }
    }

    /// The key record to publish for this signer's key.
    pub fn record(&self) -> DkimRecord {
        DkimRecord {
            name: format!("{}._domainkey.{}", self.selector, self.domain),
            value: format!(
                "v=DKIM1; k={}; p={}",
                self.algorithm().key_type(),
                self.public_key
            ),
        }
    }

    /// The `DKIM-Signature:` header field for `message` (header and body, CRLF line
    /// ends) signed at `unix_seconds` (its `t=`), folded, ending in CRLF: prepend it
    /// to the message as it is sent.
    pub fn sign(&self, message: &[u8], unix_seconds: u64) -> Result<String, DkimError> {
        let parsed = AuthenticatedMessage::parse(message).ok_or(DkimError::NoFrom)?;
        let has_from = parsed
            .raw_parsed_headers()
            .iter()
            .any(|(name, _)| name.trim_ascii().eq_ignore_ascii_case(b"from"));
        if !has_from {
            return Err(DkimError::NoFrom);
        }
        let template = Signature {
            v: 1,
            a: self.key.algorithm(),
            d: self.domain.clone(),
            s: self.selector.clone(),
            h: SIGNED_HEADERS
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            ch: Canonicalization::Relaxed,
            cb: Canonicalization::Relaxed,
            ..Signature::default()
        };
        let fields = Fields {
            headers: parsed.raw_parsed_headers().iter(),
            body: parsed.raw_body(),
        };
        // mail-auth's canonical forms: which fields `h=` names, in which order, and
        // the canonical header and body streams.
        let (_, canonical_headers, signed_headers, canonical_body) = template.canonicalize(fields);
        let mut signature = template;
        signature.bh = self.key.hash(canonical_body).as_ref().to_vec();
        signature.t = unix_seconds;
        signature.h = signed_headers;
        let mut input = Vec::with_capacity(1024);
        canonical_headers.write(&mut input);
        signature.write(&mut input, false);
        signature.b = self
            .key
            .sign(input.as_slice())
            .map_err(|error| DkimError::Sign(error.to_string()))?;
        Ok(signature.to_header())
    }
}

/// The header fields and body of a message as mail-auth's parser split them, in the
/// form its canonicalisation reads.
struct Fields<'x, I> {
    headers: I,
    body: &'x [u8],
}

impl<'x, I: Iterator<Item = &'x (&'x [u8], &'x [u8])>> HeaderStream<'x> for Fields<'x, I> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        self.headers.next().copied()
    }

    fn body(&mut self) -> &'x [u8] {
        self.body
    }
}

fn rsa_key(
    rsa: rsa::RsaPrivateKey,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<(DkimKey, String), DkimError> {
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(DkimError::WeakRsaKey {
            what: what.to_owned(),
            bits,
        });
    }
    let bad_pem = |reason: String| DkimError::BadPem {
        what: what.to_owned(),
        reason,
    };
    let public_key = rsa
        .to_public_key()
        .to_public_key_der()
        .map_err(|error| bad_pem(error.to_string()))?;
    let key = RsaKey::<Sha256>::from_key_der(key).map_err(|error| bad_pem(error.to_string()))?;
    Ok((DkimKey::Rsa(key), base64(public_key.as_bytes())))
}

/// A DKIM key record: `<selector>._domainkey.<domain> IN TXT "..."`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimRecord {
    /// The owner name, without the trailing dot.
    pub name: String,
    /// The whole TXT value, unsplit.
    pub value: String,
}

impl DkimRecord {
    /// The value as TXT character-strings of at most 255 bytes each.
    pub fn strings(&self) -> Vec<&str> {
        // The value is ASCII (tags and base64), so any byte offset is a char boundary.
        self.value
            .as_bytes()
            .chunks(TXT_STRING_MAX)
            .filter_map(|chunk| std::str::from_utf8(chunk).ok())
            .collect()
    }

    /// The record as a zone-file line.
    pub fn zone_line(&self) -> String {
        let strings: Vec<String> = self.strings().iter().map(|s| format!("\"{s}\"")).collect();
        format!("{} IN TXT {}", self.name, strings.join(" "))
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn validate_domain(domain: &str) -> Result<String, DkimError> {
    let bad = |reason: &'static str| DkimError::BadName {
        field: "domain",
        value: domain.to_owned(),
        reason,
    };
    let normalised = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    if normalised.is_empty() || normalised.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    if !normalised.split('.').all(is_ldh_label) {
        return Err(bad("labels of letters, digits and '-' (A-labels for IDNs)"));
    }
    Ok(normalised)
}

/// One label only: the key file name `<domain>.<selector>.key` must split back.
pub(crate) fn validate_selector(selector: &str) -> Result<String, DkimError> {
    let normalised = selector.to_ascii_lowercase();
    if !is_ldh_label(&normalised) {
        return Err(DkimError::BadName {
            field: "selector",
            value: selector.to_owned(),
            reason: "one label of letters, digits and '-'",
        });
    }
    Ok(normalised)
}

fn is_ldh_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MESSAGE: &str = concat!(
        "From: Alice <alice@example.com>\r\n",
        "To: bob@example.net\r\n",
        "Subject: Quarterly  report\r\n",
        "X-Unsigned: yes\r\n",
        "\r\n",
        "The numbers are in.  \r\n",
        "\r\n",
    );

    fn ed25519_pkcs8(seed: [u8; 32]) -> Vec<u8> {
        [&ED25519_PKCS8_PREFIX[..], &seed].concat()
    }

    /// Our assembly of the signing input is mail-auth's own: at the same `t=`, the
    /// (deterministic) Ed25519 signature of mail-auth's signer and ours are equal.
    #[test]
    fn the_signature_is_the_one_mail_auths_signer_makes_at_the_same_time() {
        let seed = [7u8; 32];
        let theirs = mail_auth::dkim::DkimSigner::from_key(
            Ed25519Key::from_pkcs8_der(&ed25519_pkcs8(seed)).unwrap(),
        )
        .domain("example.com")
        .selector("s1")
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(MESSAGE.as_bytes())
        .unwrap();
        let ours = DkimSigner::ed25519_from_seed("example.com", "s1", seed).unwrap();
        assert_eq!(
            ours.sign(MESSAGE.as_bytes(), theirs.t).unwrap(),
            theirs.to_header()
        );
        let later = ours.sign(MESSAGE.as_bytes(), theirs.t + 1).unwrap();
        assert_ne!(later, theirs.to_header());
        assert!(later.contains(&format!("t={};", theirs.t + 1)), "{later}");
    }

    #[test]
    fn a_seed_key_and_its_pem_form_are_one_key() {
        let seed = [9u8; 32];
        let der = ed25519_pkcs8(seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64(&der)
        );
        let from_pem = DkimSigner::from_pem("Example.COM.", "S1", pem.as_bytes(), "k").unwrap();
        let from_seed = DkimSigner::ed25519_from_seed("example.com", "s1", seed).unwrap();
        assert_eq!(from_pem.record(), from_seed.record());
        assert_eq!(
            from_pem.sign(MESSAGE.as_bytes(), 1).unwrap(),
            from_seed.sign(MESSAGE.as_bytes(), 1).unwrap()
        );
    }

    #[test]
    fn a_message_without_from_is_refused() {
        let signer = DkimSigner::ed25519_from_seed("example.com", "s1", [1; 32]).unwrap();
        for message in [&b"To: b@x\r\n\r\nbody\r\n"[..], b"", b"\r\n\r\n"] {
            assert!(matches!(signer.sign(message, 1), Err(DkimError::NoFrom)));
        }
        assert!(signer.sign(b"Subject: x\r\n\r\nFrom: a@b\r\n", 1).is_err());
    }

    #[test]
    fn long_records_split_into_255_byte_strings() {
        let record = DkimRecord {
            name: "s._domainkey.example.com".to_owned(),
            value: "x".repeat(600),
        };
        let lengths: Vec<usize> = record.strings().iter().map(|s| s.len()).collect();
        assert_eq!(lengths, vec![255, 255, 90]);
        assert!(
            record
                .zone_line()
                .starts_with("s._domainkey.example.com IN TXT \"xxx")
        );
        assert_eq!(record.zone_line().matches('"').count(), 6);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_selector("s2024").is_ok());
        assert!(validate_selector("a.b").is_err());
        assert!(validate_domain("Example.COM.").is_ok());
        assert!(validate_domain("bad domain").is_err());
    }
}
