//! Shared by the runtime tests: a node started in-process on port 0 with a temporary
//! data folder (SQLite), a line-oriented SMTP client over any stream, and a TLS client
//! that accepts exactly the node's (self-signed) certificate by its fingerprint.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use sluice_net::config::{Config, ListenerName};
use sluice_net::node::Node;
use sluice_net::store::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const DOMAIN: &str = "sluice.test";
pub const USER: &str = "alice@sluice.test";
pub const PASSWORD: &str = "correct horse";

pub struct TestServer {
    pub node: Node,
    pub store: Store,
    pub dir: TempDir,
}

impl TestServer {
    /// A node on port 0 everywhere with one domain and one user.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// As [`TestServer::start`], with the configuration adjusted by `adjust` first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\nhostname = \"mx.sluice.test\"\ndata_dir = \"{}\"\n\
             [listeners.mx]\naddress = \"127.0.0.1:0\"\n\
             [listeners.submission]\naddress = \"127.0.0.1:0\"\n\
             [listeners.submissions]\naddress = \"127.0.0.1:0\"\n\
             [listeners.pop3]\naddress = \"127.0.0.1:0\"\n\
             [listeners.pop3s]\naddress = \"127.0.0.1:0\"\n\
             [listeners.imap]\naddress = \"127.0.0.1:0\"\n\
             [listeners.imaps]\naddress = \"127.0.0.1:0\"\n\
             [dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout_seconds = 1\nattempts = 1\n",
            dir.path().join("data").display()
        );
        let mut config = Config::parse(&text, Path::new("test.toml")).unwrap();
        adjust(&mut config);
        let (node, store) = Node::start(&config).await.unwrap();
        store.add_domain(DOMAIN).await.unwrap();
        store.add_user(USER, PASSWORD).await.unwrap();
        TestServer { node, store, dir }
    }

    pub fn address(&self, name: ListenerName) -> SocketAddr {
        self.node.address(name).unwrap()
    }

    /// The INBOX of `user`, as stored messages with their full text.
    pub async fn inbox(&self, user: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for message in self.store.folder_messages(user, "INBOX").await.unwrap() {
            let body = self.store.read_blob(&message.blob).await.unwrap();
            texts.push(String::from_utf8(body).unwrap());
        }
        texts
    }

    pub async fn connect(&self, name: ListenerName) -> SmtpClient<TcpStream> {
        SmtpClient::new(TcpStream::connect(self.address(name)).await.unwrap())
    }

    /// A TLS connection to the submissions listener, greeting not yet read.
    pub async fn connect_tls(&self, name: ListenerName) -> SmtpClient<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.address(name)).await.unwrap();
        SmtpClient::new(self.tls_handshake(tcp).await)
    }

    pub async fn tls_handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> TlsStream<S> {
        let connector = tls_connector(self.node.tls_fingerprint());
        let name = ServerName::try_from("mx.sluice.test").unwrap();
        connector.connect(name, stream).await.unwrap()
    }
}

/// An SMTP client that reads whole (multi-line) replies.
pub struct SmtpClient<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpClient<S> {
    pub fn new(stream: S) -> SmtpClient<S> {
        SmtpClient {
            stream: BufReader::new(stream),
        }
    }

    /// The next reply as (code, text of all lines joined by newlines); code 0 at EOF.
    pub async fn reply(&mut self) -> (u16, String) {
        tokio::time::timeout(Duration::from_secs(30), self.reply_untimed())
            .await
            .expect("no reply within 30 s")
    }

    /// [`SmtpClient::reply`] without the client's own timeout, for paused-time tests.
    pub async fn reply_untimed(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let read = self.stream.read_line(&mut line).await.unwrap_or(0);
            if read == 0 {
                return (0, text);
            }
            let code = line
                .get(..3)
                .and_then(|code| code.parse().ok())
                .unwrap_or(0);
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, text);
            }
            text.push('\n');
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
        self.stream.get_mut().flush().await.unwrap();
    }

    /// Sends one command line and reads its reply.
    pub async fn command(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// MAIL, RCPT for each recipient, DATA and the body; the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> (u16, String) {
        assert_eq!(self.command(&format!("MAIL FROM:<{from}>")).await.0, 250);
        for recipient in to {
            assert_eq!(self.command(&format!("RCPT TO:<{recipient}>")).await.0, 250);
        }
        assert_eq!(self.command("DATA").await.0, 354);
        self.send(format!("{body}\r\n.\r\n").as_bytes()).await;
        self.reply().await
    }

    /// The stream, for a STARTTLS handshake. Nothing may be buffered unread.
    pub fn into_inner(self) -> S {
        assert!(
            self.stream.buffer().is_empty(),
            "bytes left after the reply"
        );
        self.stream.into_inner()
    }
}

/// AUTH PLAIN's initial response for `user` and `password`.
pub fn auth_plain(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("\0{user}\0{password}");
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let value = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[((value >> (18 - 6 * index)) & 63) as usize],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tls_connector(fingerprint: &str) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        fingerprint: fingerprint.to_owned(),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Accepts the one certificate whose SHA-256 the node reported: a self-signed
/// certificate cannot be verified any other way.
#[derive(Debug)]
struct PinnedCertificate {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if hex::encode(Sha256::digest(end_entity.as_ref())) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("unexpected certificate".to_owned()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The directory of one domain, `x.test`, with one user, `u@x.test`: what the
/// driver tests' scripted reception stores answer to the router.
pub fn one_user_directory(
    query: sluice_core::directory::DirectoryQuery,
) -> sluice_core::directory::DirectoryAnswer {
    use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
    match query {
        DirectoryQuery::Domain { domain } if domain == "x.test" => {
            DirectoryAnswer::Domain(Some(DomainEntry {
                name: domain,
                catch_all: None,
            }))
        }
        DirectoryQuery::Domain { .. } => DirectoryAnswer::Domain(None),
        DirectoryQuery::Address { address } if address == "u@x.test" => {
            DirectoryAnswer::Address(Some(AddressEntry::User { address }))
        }
        DirectoryQuery::Address { .. } => DirectoryAnswer::Address(None),
    }
}
