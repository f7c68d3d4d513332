//! TLS for outgoing connections: two rustls client configurations, TLS 1.2 and 1.3
//! only. `verifying` checks the server's certificate chain and name against the
//! system's trust anchors plus any configured CA file (the `required` policy);
//! `opportunistic` encrypts without authenticating, as RFC 3207 §4.1 and the
//! established MTAs do by default for MX delivery, where most certificates would not
//! verify for the MX name anyway. Even then the handshake signatures are checked, so
//! the session keys belong to whoever holds the presented certificate.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Debian's bundle of the system's trust anchors (package ca-certificates).
pub(super) const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("cannot read the CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("TLS client configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The two configurations every delivery uses.
#[derive(Clone)]
pub struct ClientTls {
    pub verifying: tokio_rustls::TlsConnector,
    pub opportunistic: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trust anchors: the system bundle when present, plus `extra_ca` when given.
    pub fn new(extra_ca: Option<&Path>) -> Result<ClientTls, ClientTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        if Path::new(SYSTEM_BUNDLE).is_file() {
            add_pem_file(&mut roots, Path::new(SYSTEM_BUNDLE))?;
        }
        if let Some(path) = extra_ca {
            add_pem_file(&mut roots, path)?;
        }
        let verifying = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let opportunistic = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unauthenticated { provider }))
            .with_no_client_auth();
        Ok(ClientTls {
            verifying: tokio_rustls::TlsConnector::from(Arc::new(verifying)),
            opportunistic: tokio_rustls::TlsConnector::from(Arc::new(opportunistic)),
        })
    }

    pub fn connector(&self, verify: bool) -> &tokio_rustls::TlsConnector {
        if verify {
            &self.verifying
        } else {
            &self.opportunistic
        }
    }
}

fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<(), ClientTlsError> {
    let error = |message: String| ClientTlsError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(error("no certificate in it".to_owned()));
    }
    // A bundle may hold a certificate webpki cannot use; the rest still count.
    let (_added, _ignored) = roots.add_parsable_certificates(certificates);
    Ok(())
}

/// Accepts any certificate chain, but still checks that the handshake was signed by
/// the presented certificate's key.
#[derive(Debug)]
struct Unauthenticated {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
