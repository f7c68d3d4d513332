//! DKIM signing of outgoing mail (RFC 6376) with mail-auth: RSA-SHA256 and
//! Ed25519-SHA256 (RFC 8463), relaxed/relaxed canonicalisation, one key per sending
//! domain chosen by the From domain (else the envelope's), and key generation with
//! the TXT record to publish. Keys are PEM files under `<data_dir>/dkim/`, named
//! `<domain>.<selector>.key`.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, Done, generate::DkimKeyPair};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The header fields signed when present (RFC 6376 §5.4.1 recommends these; From
/// is required). Fields a message lacks are left out of `h=`.
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
/// Generated RSA keys: RFC 8301 §3.2 says signers SHOULD use at least 2048 bits.
const GENERATED_RSA_BITS: usize = 2048;
/// One character-string in a TXT record holds at most 255 octets (RFC 1035 §3.3.14);
/// longer values are split and the verifier concatenates them (RFC 6376 §3.6.2.2).
const TXT_STRING_MAX: usize = 255;

/// The signing algorithm, named as in `a=` without the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
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

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read the DKIM key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the DKIM key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the DKIM key {0} already exists; remove it first or choose another selector")]
    KeyExists(PathBuf),
    #[error("{what} is not a PEM private key: {reason}")]
    BadPem { what: String, reason: String },
    #[error("{what} holds a {kind} key; DKIM signs with RSA or Ed25519 keys")]
    UnsupportedKey { what: String, kind: &'static str },
    #[error("{what} is a {bits}-bit RSA key; DKIM needs at least 1024 bits (RFC 8301 §3.2)")]
    WeakRsaKey { what: String, bits: usize },
    #[error("invalid DKIM {field} {value:?}: {reason}")]
    BadName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("two DKIM keys for {domain}: selectors {first} and {second}")]
    DuplicateDomain {
        domain: String,
        first: String,
        second: String,
    },
    #[error("cannot generate a DKIM key: {0}")]
    Generate(String),
    #[error("cannot sign: the message has no From header field (RFC 6376 §5.4)")]
    NoFrom,
    #[error("DKIM signing failed: {0}")]
    Sign(mail_auth::Error),
}

/// The key, built into mail-auth's signer with our domain, selector and headers.
enum Inner {
    Rsa(Box<mail_auth::dkim::DkimSigner<RsaKey<Sha256>, Done>>),
    Ed25519(Box<mail_auth::dkim::DkimSigner<Ed25519Key, Done>>),
}

/// Signs for one domain with one selector's key.
pub struct DkimSigner {
    domain: String,
    selector: String,
    inner: Inner,
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
        let domain = validate_domain(domain)?;
        let selector = validate_selector(selector)?;
        let bad_pem = |reason: String| DkimError::BadPem {
            what: what.to_owned(),
            reason,
        };
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|error| bad_pem(error.to_string()))?;
        let (inner, public_key) = match &key {
            PrivateKeyDer::Pkcs1(der) => {
                let rsa = rsa::RsaPrivateKey::from_pkcs1_der(der.secret_pkcs1_der())
                    .map_err(|error| bad_pem(error.to_string()))?;
                rsa_signer(&domain, &selector, rsa, key.clone_key(), what)?
            }
            PrivateKeyDer::Pkcs8(der) => {
                let bytes = der.secret_pkcs8_der();
                if let Ok(ed25519) = Ed25519Key::from_pkcs8_der(bytes) {
                    let public_key = base64(&ed25519.public_key());
                    let signer = mail_auth::dkim::DkimSigner::from_key(ed25519)
                        .domain(domain.clone())
                        .selector(selector.clone())
                        .headers(SIGNED_HEADERS)
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed);
                    (Inner::Ed25519(Box::new(signer)), public_key)
                } else {
                    let rsa = rsa::RsaPrivateKey::from_pkcs8_der(bytes).map_err(|_| {
                        DkimError::UnsupportedKey {
                            what: what.to_owned(),
                            kind: "PKCS#8 key of another type",
                        }
                    })?;
                    rsa_signer(&domain, &selector, rsa, key.clone_key(), what)?
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
        Ok(DkimSigner {
            domain,
            selector,
            inner,
            public_key,
        })
    }

    /// A signer from a PEM key file.
    pub fn load(domain: &str, selector: &str, path: &Path) -> Result<Self, DkimError> {
        let pem = std::fs::read(path).map_err(|source| DkimError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        DkimSigner::from_pem(domain, selector, &pem, &path.display().to_string())
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        match self.inner {
            Inner::Rsa(_) => DkimAlgorithm::Rsa,
            Inner::Ed25519(_) => DkimAlgorithm::Ed25519,
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
    /// ends), folded, ending in CRLF: prepend it to the message as it is sent.
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        if !has_header(message, "from") {
            return Err(DkimError::NoFrom);
        }
        let signature = match &self.inner {
            Inner::Rsa(signer) => signer.sign(message),
            Inner::Ed25519(signer) => signer.sign(message),
        }
        .map_err(DkimError::Sign)?;
        Ok(signature.to_header())
    }
}

fn rsa_signer(
    domain: &str,
    selector: &str,
    rsa: rsa::RsaPrivateKey,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<(Inner, String), DkimError> {
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(DkimError::WeakRsaKey {
            what: what.to_owned(),
            bits,
        });
    }
    let public_key =
        rsa.to_public_key()
            .to_public_key_der()
            .map_err(|error| DkimError::BadPem {
                what: what.to_owned(),
                reason: error.to_string(),
            })?;
    let key = RsaKey::<Sha256>::from_key_der(key).map_err(|error| DkimError::BadPem {
        what: what.to_owned(),
        reason: error.to_string(),
    })?;
    let signer = mail_auth::dkim::DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed);
    Ok((Inner::Rsa(Box::new(signer)), base64(public_key.as_bytes())))
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

/// The signers of every sending domain; at most one key per domain.
#[derive(Debug, Default)]
pub struct DkimKeyStore {
    signers: BTreeMap<String, DkimSigner>,
}

impl DkimKeyStore {
    pub fn new() -> DkimKeyStore {
        DkimKeyStore::default()
    }

    /// Every `<domain>.<selector>.key` file in `dir` (the selector is the last
    /// label before `.key`); a missing folder is an empty store.
    pub fn load_dir(dir: &Path) -> Result<DkimKeyStore, DkimError> {
        let mut store = DkimKeyStore::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(DkimError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| DkimError::Read {
                path: dir.to_path_buf(),
                source,
            })?;
            paths.push(entry.path());
        }
        paths.sort();
        for path in paths {
            let Some(stem) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".key"))
            else {
                continue;
            };
            let Some((domain, selector)) = stem.rsplit_once('.') else {
                continue;
            };
            store.insert(DkimSigner::load(domain, selector, &path)?)?;
        }
        Ok(store)
    }

    pub fn insert(&mut self, signer: DkimSigner) -> Result<(), DkimError> {
        if let Some(known) = self.signers.get(&signer.domain) {
            return Err(DkimError::DuplicateDomain {
                domain: signer.domain.clone(),
                first: known.selector.clone(),
                second: signer.selector.clone(),
            });
        }
        self.signers.insert(signer.domain.clone(), signer);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The signer for `domain` or, failing that, for its nearest parent domain: a
    /// signature by `example.com` is aligned with `From: x@mail.example.com` under
    /// DMARC's relaxed alignment (RFC 7489 §3.1.1).
    pub fn signer_for(&self, domain: &str) -> Option<&DkimSigner> {
        let domain = domain
            .strip_suffix('.')
            .unwrap_or(domain)
            .to_ascii_lowercase();
        let mut candidate = domain.as_str();
        loop {
            if let Some(signer) = self.signers.get(candidate) {
                return Some(signer);
            }
            candidate = candidate.split_once('.')?.1;
        }
    }

    /// Signs `message` with the key of its From domain, or else of the envelope
    /// sender's domain; None when neither domain has a key (the message goes out
    /// unsigned).
    pub fn sign(
        &self,
        message: &[u8],
        envelope_domain: Option<&str>,
    ) -> Result<Option<String>, DkimError> {
        let from_domain = from_domain(message);
        let signer = from_domain
            .as_deref()
            .and_then(|domain| self.signer_for(domain))
            .or_else(|| envelope_domain.and_then(|domain| self.signer_for(domain)));
        signer.map(|signer| signer.sign(message)).transpose()
    }
}

/// The domain of the first From address (RFC 5322 §3.6.2), lower case.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase())
}

/// Whether the header section has a field named `name` (lower case).
fn has_header(message: &[u8], name: &str) -> bool {
    for line in message.split(|byte| *byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if let Some(colon) = line.iter().position(|byte| *byte == b':')
            && line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_bytes())
        {
            return true;
        }
    }
    false
}

/// A new key: its PKCS#8 PEM (the file's content) and the record to publish.
pub struct GeneratedKey {
    pub private_key_pem: String,
    pub signer: DkimSigner,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// Generates a key (RSA 2048 or Ed25519) from the OS generator.
pub fn generate_key(
    domain: &str,
    selector: &str,
    algorithm: DkimAlgorithm,
) -> Result<GeneratedKey, DkimError> {
    let generate_error = |error: &dyn fmt::Display| DkimError::Generate(error.to_string());
    let pem = match algorithm {
        DkimAlgorithm::Rsa => {
            let pair = DkimKeyPair::generate_rsa(GENERATED_RSA_BITS)
                .map_err(|error| generate_error(&error))?;
            // mail-auth hands out PKCS#1; files are PKCS#8 whatever the algorithm.
            rsa::RsaPrivateKey::from_pkcs1_der(pair.private_key())
                .map_err(|error| generate_error(&error))?
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|error| generate_error(&error))?
                .to_string()
        }
        DkimAlgorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(|error| generate_error(&error))?;
            rsa::pkcs8::SecretDocument::try_from(pair.private_key())
                .map_err(|error| generate_error(&error))?
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|error| generate_error(&error))?
                .to_string()
        }
    };
    let signer = DkimSigner::from_pem(domain, selector, pem.as_bytes(), "the generated key")?;
    Ok(GeneratedKey {
        private_key_pem: pem,
        signer,
    })
}

/// Where `sluice dkim generate` keeps the key of `domain` and `selector`.
pub fn key_path(data_dir: &Path, domain: &str, selector: &str) -> PathBuf {
    data_dir.join("dkim").join(format!(
        "{}.{}.key",
        domain.to_ascii_lowercase(),
        selector.to_ascii_lowercase()
    ))
}

/// Generates a key into `<data_dir>/dkim/<domain>.<selector>.key` (mode 0600, never
/// overwriting) and returns the path and the record to publish.
pub fn generate_key_file(
    data_dir: &Path,
    domain: &str,
    selector: &str,
    algorithm: DkimAlgorithm,
) -> Result<(PathBuf, DkimRecord), DkimError> {
    let generated = generate_key(domain, selector, algorithm)?;
    let path = key_path(
        data_dir,
        generated.signer.domain(),
        generated.signer.selector(),
    );
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            DkimError::KeyExists(path.clone())
        } else {
            DkimError::Write {
                path: path.clone(),
                source,
            }
        }
    })?;
    file.write_all(generated.private_key_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| DkimError::Write {
            path: path.clone(),
            source,
        })?;
    Ok((path, generated.signer.record()))
}

fn create_private_dir(dir: &Path) -> Result<(), DkimError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| DkimError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn validate_domain(domain: &str) -> Result<String, DkimError> {
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
fn validate_selector(selector: &str) -> Result<String, DkimError> {
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
    fn header_presence_stops_at_the_body() {
        assert!(has_header(b"Subject: x\r\nFROM : a@b\r\n\r\nbody", "from"));
        assert!(!has_header(b"Subject: x\r\n\r\nFrom: a@b\r\n", "from"));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_selector("s2024").is_ok());
        assert!(validate_selector("a.b").is_err());
        assert!(validate_domain("Example.COM.").is_ok());
        assert!(validate_domain("bad domain").is_err());
    }
}
