//! DKIM for Sluice (RFC 6376; Ed25519-SHA256 per RFC 8463): the signer of outgoing
//! mail with the signing time passed in, which key signs which message, and a
//! verifier. The production runtime (`net`) and the simulator (`sim`) both sign
//! through this crate, so the algorithm exists once; each passes its own clock.
//! Canonicalisation, hashing, key operations and verification are mail-auth's.
//!
//! - [`DkimSigner`]: one domain's key and the signature of a message at a time.
//! - [`DkimKeyStore`]: the signers of every sending domain and the choice of key
//!   (the From domain's, else the envelope sender's).
//! - [`verify`]: mail-auth's verifier, answered from a table of key records.

mod keys;
mod signer;
pub mod verify;

pub use keys::{DkimKeyStore, Signed, covers, from_domain};
pub use signer::{DkimAlgorithm, DkimRecord, DkimSigner, SIGNED_HEADERS};

/// Why a key could not be used or a message not signed.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
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
    #[error("cannot sign: the message has no From header field (RFC 6376 §5.4)")]
    NoFrom,
    #[error("DKIM signing failed: {0}")]
    Sign(String),
}
