//! One client connection to a live server: plaintext or TLS (implicit, or begun
//! after STARTTLS/STLS), read a line at a time with a deadline per read.
//!
//! The TLS client accepts any certificate: this is a conformance tool pointed at
//! test servers with self-signed certificates, and what it checks is the
//! dialogue, not the server's identity. Signatures are still verified, so the
//! handshake itself is real. Nothing else in Sluice uses this verifier.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// What reading a line gave.
#[derive(Debug)]
pub(crate) enum Read1 {
    /// A line without its CRLF (a bare LF also ends it, for servers that send one).
    Line(Vec<u8>),
    /// The server closed the connection (bytes before the close without a line
    /// end are returned as a line first).
    Closed,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Between the two while the handshake is set up; never read or written.
    Gone,
}

/// A connection with its read buffer.
pub(crate) struct Conn {
    stream: Stream,
    buffer: Vec<u8>,
    closed: bool,
}

impl Conn {
    /// Connects, with `timeout` for the connection and for each read; with
    /// `implicit_tls`, the handshake comes first.
    pub(crate) fn open(
        address: SocketAddr,
        timeout: Duration,
        implicit_tls: bool,
    ) -> io::Result<Conn> {
        let tcp = TcpStream::connect_timeout(&address, timeout)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        tcp.set_nodelay(true)?;
        let mut conn = Conn {
            stream: Stream::Plain(tcp),
            buffer: Vec::new(),
            closed: false,
        };
        if implicit_tls {
            conn.start_tls(address)?;
        }
        Ok(conn)
    }

    /// Begins TLS on the plaintext connection (after the server agreed to
    /// STARTTLS or STLS). Bytes already buffered would be plaintext the server
    /// sent after agreeing: an injection, refused.
    pub(crate) fn start_tls(&mut self, address: SocketAddr) -> io::Result<()> {
        if !self.buffer.is_empty() {
            return Err(io::Error::other(
                "the server sent plaintext after agreeing to start TLS",
            ));
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let name = ServerName::IpAddress(address.ip().into());
        let connection =
            ClientConnection::new(Arc::new(client_config()?), name).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(connection, tcp);
        // Drive the handshake now, so that a failure shows here rather than at the
        // next command.
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.write_all(bytes).and_then(|()| tcp.flush()),
            Stream::Tls(tls) => tls.write_all(bytes).and_then(|()| tls.flush()),
            Stream::Gone => Err(io::Error::other("no connection")),
        }
    }

    /// The client closes its side (what `D: peer closed` means to a session).
    pub(crate) fn close_write(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.shutdown(Shutdown::Write),
            Stream::Tls(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                tls.sock.shutdown(Shutdown::Write)
            }
            Stream::Gone => Ok(()),
        }
    }

    /// Whether bytes the caller has not read yet are already here.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next line, waiting up to the read timeout for it.
    pub(crate) fn read_line(&mut self) -> io::Result<Read1> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Read1::Line(line));
            }
            if self.closed {
                if self.buffer.is_empty() {
                    return Ok(Read1::Closed);
                }
                return Ok(Read1::Line(std::mem::take(&mut self.buffer)));
            }
            let mut chunk = [0u8; 8192];
            let read = match &mut self.stream {
                Stream::Plain(tcp) => tcp.read(&mut chunk),
                Stream::Tls(tls) => tls.read(&mut chunk),
                Stream::Gone => Ok(0),
            };
            match read {
                Ok(0) => self.closed = true,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                // A reset after the server's last words is a close, as clients see it.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    self.closed = true;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn client_config() -> io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(provider.clone()));
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts any server certificate, verifying only the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
