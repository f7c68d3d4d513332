//! mail-auth's DKIM verifier (`MessageAuthenticator::verify_dkim`), with every key
//! record it asks for answered from a table given beforehand rather than from DNS:
//! the simulator's remote servers verify against the records its DNS publishes.
//! mail-auth's verifier is async only because of its lookups; with every lookup
//! answered from the table it never waits, so it runs to completion in one poll.

use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DnsError, Error, MessageAuthenticator, Parameters,
    ResolverCache, Txt,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future as _;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Key records by owner name: every name not in the table does not exist.
struct KeyRecords {
    /// Keyed as mail-auth asks: lower case, with the trailing dot.
    records: HashMap<Box<str>, Txt>,
}

impl ResolverCache<Box<str>, Txt> for KeyRecords {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Answering every name keeps mail-auth from ever asking its resolver.
        Some(self.records.get(name).cloned().unwrap_or_else(|| {
            Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)))
        }))
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// What the verifier found of one DKIM-Signature field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The signing domain (`d=`), empty when the field could not be parsed.
    pub domain: String,
    pub selector: String,
    /// Whether it verified.
    pub passed: bool,
    /// mail-auth's result, for reports.
    pub result: String,
}

/// What the verifier found of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    /// The From addresses, lower case, as mail-auth read them.
    pub from: Vec<String>,
    /// One entry per DKIM-Signature field, top first.
    pub signatures: Vec<SignatureCheck>,
}

/// Why the verifier could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("mail-auth's verifier could not be set up: {0}")]
    Setup(String),
    #[error("mail-auth's verifier waited for a lookup outside its table")]
    Waited,
}

/// mail-auth's verifier over a fixed table of key records.
pub struct Verifier {
    authenticator: MessageAuthenticator,
    records: KeyRecords,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("records", &self.records.records.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier that knows the TXT records `(owner name, value)`; a value that is
    /// not a key record is published as it is, and found wanting when asked for.
    pub fn new<'a>(
        records: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Verifier, VerifyError> {
        let records = records
            .into_iter()
            .map(|(name, value)| {
                let mut name = name.trim_end_matches('.').to_ascii_lowercase();
                name.push('.');
                let record = match DomainKey::parse(value.as_bytes()) {
                    Ok(key) => Txt::DomainKey(Arc::new(key)),
                    Err(error) => Txt::Error(error),
                };
                (name.into_boxed_str(), record)
            })
            .collect();
        // The resolver is never asked (the table answers every name), but mail-auth
        // wants one; building it opens no socket.
        let authenticator = MessageAuthenticator::new_cloudflare()
            .map_err(|error| VerifyError::Setup(error.to_string()))?;
        Ok(Verifier {
            authenticator,
            records: KeyRecords { records },
        })
    }

    /// Every DKIM-Signature of `message`, verified.
    pub fn verify(&self, message: &[u8]) -> Result<Verification, VerifyError> {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return Ok(Verification::default());
        };
        let parameters = Parameters::new(&parsed).with_txt_cache(&self.records);
        let mut future = std::pin::pin!(self.authenticator.verify_dkim(parameters));
        let Poll::Ready(outputs) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            return Err(VerifyError::Waited);
        };
        let signatures = outputs
            .iter()
            .map(|output| {
                let signature = output.signature();
                SignatureCheck {
                    domain: signature
                        .map(|s| s.d.to_ascii_lowercase())
                        .unwrap_or_default(),
                    selector: signature.map(|s| s.s.clone()).unwrap_or_default(),
                    passed: *output.result() == DkimResult::Pass,
                    result: format!("{:?}", output.result()),
                }
            })
            .collect();
        Ok(Verification {
            from: parsed.from.clone(),
            signatures,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::DkimSigner;

    const MESSAGE: &[u8] =
        b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hello\r\n\r\nbody\r\n";

    #[test]
    fn a_signature_verifies_against_its_record_and_nothing_else() {
        let signer = DkimSigner::ed25519_from_seed("example.com", "s1", [5; 32]).unwrap();
        let other = DkimSigner::ed25519_from_seed("example.com", "s1", [6; 32]).unwrap();
        let signed = [
            signer.sign(MESSAGE, 1_767_225_600).unwrap().as_bytes(),
            MESSAGE,
        ]
        .concat();
        let record = signer.record();
        let verifier = Verifier::new([(record.name.as_str(), record.value.as_str())]).unwrap();
        let found = verifier.verify(&signed).unwrap();
        assert_eq!(found.from, vec!["a@example.com".to_owned()]);
        assert_eq!(found.signatures.len(), 1);
        assert!(found.signatures[0].passed, "{:?}", found.signatures);
        assert_eq!(found.signatures[0].domain, "example.com");

        // Another key under the same name, no record, a changed body: each fails.
        let wrong = other.record();
        let wrong_key = Verifier::new([(wrong.name.as_str(), wrong.value.as_str())]).unwrap();
        assert!(!wrong_key.verify(&signed).unwrap().signatures[0].passed);
        let empty = Verifier::new([]).unwrap();
        assert!(!empty.verify(&signed).unwrap().signatures[0].passed);
        let mut altered = signed.clone();
        altered.extend_from_slice(b"a footer\r\n");
        assert!(!verifier.verify(&altered).unwrap().signatures[0].passed);
        // An unsigned message has nothing to verify.
        assert!(verifier.verify(MESSAGE).unwrap().signatures.is_empty());
        assert!(verifier.verify(b"").unwrap().signatures.is_empty());
    }
}
