//! DKIM keys on disk: PEM files under `<data_dir>/dkim/`, named
//! `<domain>.<selector>.key`, loaded into sluice-dkim's key store, and new keys
//! generated from the OS generator with the TXT record to publish. Signing itself
//! (which key, the signature at the delivery's time) is sluice-dkim's, shared with
//! the simulator.

use mail_auth::dkim::generate::DkimKeyPair;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
pub use sluice_dkim::{
    DkimAlgorithm, DkimError, DkimKeyStore, DkimRecord, DkimSigner, SIGNED_HEADERS,
};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Generated RSA keys: RFC 8301 §3.2 says signers SHOULD use at least 2048 bits.
const GENERATED_RSA_BITS: usize = 2048;

/// Why a key file could not be read, written or generated.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
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
    #[error("cannot generate a DKIM key: {0}")]
    Generate(String),
    #[error(transparent)]
    Key(#[from] DkimError),
}

/// A signer from a PEM key file.
pub fn load_key(domain: &str, selector: &str, path: &Path) -> Result<DkimSigner, KeyFileError> {
    let pem = std::fs::read(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(DkimSigner::from_pem(
        domain,
        selector,
        &pem,
        &path.display().to_string(),
    )?)
}

/// Every `<domain>.<selector>.key` file in `dir` (the selector is the last label
/// before `.key`); a missing folder is an empty store.
pub fn load_key_dir(dir: &Path) -> Result<DkimKeyStore, KeyFileError> {
    let mut store = DkimKeyStore::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(store),
        Err(source) => {
            return Err(KeyFileError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| KeyFileError::Read {
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
        store.insert(load_key(domain, selector, &path)?)?;
    }
    Ok(store)
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
) -> Result<GeneratedKey, KeyFileError> {
    let generate_error = |error: &dyn fmt::Display| KeyFileError::Generate(error.to_string());
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
) -> Result<(PathBuf, DkimRecord), KeyFileError> {
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
            KeyFileError::KeyExists(path.clone())
        } else {
            KeyFileError::Write {
                path: path.clone(),
                source,
            }
        }
    })?;
    file.write_all(generated.private_key_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Write {
            path: path.clone(),
            source,
        })?;
    Ok((path, generated.signer.record()))
}

fn create_private_dir(dir: &Path) -> Result<(), KeyFileError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| KeyFileError::Write {
        path: dir.to_path_buf(),
        source,
    })
}
