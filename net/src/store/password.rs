//! Password hashing for the user directory: argon2id with the crate's default
//! parameters, stored as PHC strings so parameters can be raised later without
//! invalidating existing hashes.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

/// The PHC string of `password` with a fresh random salt.
pub(crate) fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// Whether `password` matches `phc`; a malformed stored hash never matches.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `phc` is a hash Sluice can verify (for imports of existing hashes).
pub(crate) fn is_valid_phc(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| parsed.algorithm.as_str().starts_with("argon2"))
}

/// Spends the same work as a real verification, so that an unknown username is
/// not distinguishable from a wrong password by timing.
pub(crate) fn verify_against_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("sluice-dummy-password").unwrap_or_default());
    let _ = verify(password, dummy);
}
