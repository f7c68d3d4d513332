//! The signers of every sending domain, at most one key per domain, and which one
//! signs a message: the key of its From domain (or of the nearest parent domain
//! that has one), else the envelope sender's.

use crate::{DkimError, DkimSigner};
use mail_auth::AuthenticatedMessage;
use std::collections::BTreeMap;

/// A message with its signature, and the domain that signed it (`d=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub domain: String,
    pub message: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct DkimKeyStore {
    signers: BTreeMap<String, DkimSigner>,
}

impl DkimKeyStore {
    pub fn new() -> DkimKeyStore {
        DkimKeyStore::default()
    }

    pub fn insert(&mut self, signer: DkimSigner) -> Result<(), DkimError> {
        if let Some(known) = self.signers.get(signer.domain()) {
            return Err(DkimError::DuplicateDomain {
                domain: signer.domain().to_owned(),
                first: known.selector().to_owned(),
                second: signer.selector().to_owned(),
            });
        }
        self.signers.insert(signer.domain().to_owned(), signer);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// Every signer, by domain.
    pub fn signers(&self) -> impl Iterator<Item = &DkimSigner> {
        self.signers.values()
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

    /// The signer for `message`: its From domain's, else the envelope sender's
    /// domain's (`reverse_path` is the bare address, None for the null path).
    pub fn signer_of(&self, message: &[u8], reverse_path: Option<&str>) -> Option<&DkimSigner> {
        if self.signers.is_empty() {
            // No keys: no need to parse the message (the common case of a node
            // without DKIM, on every attempt that leaves our tiers).
            return None;
        }
        let envelope_domain = reverse_path
            .and_then(|path| path.rsplit_once('@'))
            .map(|(_, domain)| domain);
        from_domain(message)
            .as_deref()
            .and_then(|domain| self.signer_for(domain))
            .or_else(|| envelope_domain.and_then(|domain| self.signer_for(domain)))
    }

    /// The `DKIM-Signature` field for `message` at `unix_seconds`, by the key
    /// [`signer_of`](Self::signer_of) chooses; None when neither domain has a key
    /// (the message goes out unsigned).
    pub fn sign(
        &self,
        message: &[u8],
        reverse_path: Option<&str>,
        unix_seconds: u64,
    ) -> Result<Option<String>, DkimError> {
        self.signer_of(message, reverse_path)
            .map(|signer| signer.sign(message, unix_seconds))
            .transpose()
    }

    /// `message` as it is sent, with its signature prepended, and the domain that
    /// signed it; None when neither domain has a key (the message goes out as it is).
    pub fn signed(
        &self,
        message: &[u8],
        reverse_path: Option<&str>,
        unix_seconds: u64,
    ) -> Result<Option<Signed>, DkimError> {
        let Some(signer) = self.signer_of(message, reverse_path) else {
            return Ok(None);
        };
        let header = signer.sign(message, unix_seconds)?;
        Ok(Some(Signed {
            domain: signer.domain().to_owned(),
            message: [header.as_bytes(), message].concat(),
        }))
    }
}

/// The domain of the first From address (RFC 5322 §3.6.2), lower case, as
/// mail-auth's parser reads it.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = AuthenticatedMessage::parse(message)?;
    let address = parsed.from.first()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase())
}

/// Whether a signature by `signing_domain` speaks for `domain`: the same domain or
/// one of its parents (as [`DkimKeyStore::signer_for`] chooses keys).
pub fn covers(signing_domain: &str, domain: &str) -> bool {
    let signing = signing_domain.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domain == signing || domain.ends_with(&format!(".{signing}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MESSAGE: &[u8] = b"From: Alice <Alice@Mail.Example.COM>\r\nSubject: x\r\n\r\nbody\r\n";

    fn store() -> DkimKeyStore {
        let mut store = DkimKeyStore::new();
        store
            .insert(DkimSigner::ed25519_from_seed("example.com", "a", [1; 32]).unwrap())
            .unwrap();
        store
            .insert(DkimSigner::ed25519_from_seed("other.test", "b", [2; 32]).unwrap())
            .unwrap();
        store
    }

    #[test]
    fn the_from_domain_chooses_the_key_then_the_envelope_domain() {
        let store = store();
        let duplicate = DkimSigner::ed25519_from_seed("other.test", "c", [3; 32]).unwrap();
        assert!(matches!(
            store_with(duplicate),
            Err(DkimError::DuplicateDomain { .. })
        ));
        assert_eq!(from_domain(MESSAGE).as_deref(), Some("mail.example.com"));
        let chosen = |message: &[u8], path| store.signer_of(message, path).map(|s| s.domain());
        assert_eq!(chosen(MESSAGE, Some("x@other.test")), Some("example.com"));
        let foreign = b"From: a@elsewhere.example\r\n\r\nbody\r\n";
        assert_eq!(chosen(foreign, Some("x@Other.Test")), Some("other.test"));
        assert_eq!(chosen(foreign, Some("x@unknown.example")), None);
        assert_eq!(chosen(foreign, None), None);
        assert_eq!(store.signed(foreign, None, 1).unwrap(), None);
        let signed = store.signed(MESSAGE, None, 1).unwrap().unwrap();
        assert_eq!(signed.domain, "example.com");
        assert!(
            signed
                .message
                .starts_with(b"DKIM-Signature: v=1; a=ed25519-sha256;")
        );
        assert!(signed.message.ends_with(MESSAGE));
    }

    fn store_with(signer: DkimSigner) -> Result<(), DkimError> {
        store().insert(signer)
    }

    #[test]
    fn a_domain_is_covered_by_itself_and_its_parents_only() {
        assert!(covers("example.com", "Mail.Example.com."));
        assert!(covers("example.com", "example.com"));
        assert!(!covers("example.com", "badexample.com"));
        assert!(!covers("mail.example.com", "example.com"));
    }
}
