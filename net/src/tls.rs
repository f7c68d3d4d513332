//! TLS for the listeners: a rustls server configuration (TLS 1.2 and 1.3 only) from
//! the configured PEM files, or from a self-signed certificate generated once into
//! the data folder and reused, whose fingerprint is logged so clients can pin it.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration refused the certificate: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate came from, for the startup log.
#[derive(Debug)]
pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), lower-case hex.
    pub fingerprint: String,
    pub self_signed: bool,
}

/// The configured pair, or the self-signed pair in `data_dir` (created if absent).
pub fn load(
    files: Option<(&Path, &Path)>,
    data_dir: &Path,
    hostname: &str,
) -> Result<LoadedTls, TlsError> {
    let (cert_path, key_path, self_signed) = match files {
        Some((cert, key)) => (cert.to_path_buf(), key.to_path_buf(), false),
        None => {
            let (cert, key) = ensure_self_signed(data_dir, hostname)?;
            (cert, key, true)
        }
    };
    let chain = read_chain(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|error| TlsError::Read {
        path: key_path.clone(),
        message: error.to_string(),
    })?;
    let fingerprint = chain
        .first()
        .map(|leaf| hex::encode(Sha256::digest(leaf.as_ref())))
        .ok_or_else(|| TlsError::NoCertificate {
            path: cert_path.clone(),
        })?;
    Ok(LoadedTls {
        config: server_config(chain, key)?,
        fingerprint,
        self_signed,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |message: String| TlsError::Read {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|error| read_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// A server configuration limited to TLS 1.2 and 1.3 on the ring provider.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The paths of the self-signed pair, generating it on first use. Kept across
/// restarts so that clients that pinned the fingerprint keep working.
fn ensure_self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = data_dir.join("tls-cert.pem");
    let key_path = data_dir.join("tls-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(write_error(data_dir))?;
    let generated = rcgen::generate_simple_self_signed(vec![hostname.to_owned()])?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())
        .map_err(write_error(&key_path))?;
    std::fs::write(&cert_path, generated.cert.pem()).map_err(write_error(&cert_path))?;
    Ok((cert_path, key_path))
}

/// Writes a file readable by its owner only: it holds a private key.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(None, dir.path(), "mx.sluice.test").unwrap();
        assert!(first.self_signed);
        assert_eq!(first.fingerprint.len(), 64);
        let second = load(None, dir.path(), "mx.sluice.test").unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
    }

    #[test]
    fn configured_files_are_used_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ensure_self_signed(dir.path(), "a.test").unwrap();
        let loaded = load(Some((&cert, &key)), Path::new("/nonexistent"), "a.test").unwrap();
        assert!(!loaded.self_signed);
        let missing = dir.path().join("missing.pem");
        let error = load(Some((&missing, &key)), dir.path(), "a.test").unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }
}
