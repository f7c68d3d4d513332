//! A connection that is plaintext or TLS, switchable in place for STARTTLS, so that
//! one driver serves port 25/587 (upgrade mid-session) and 465 (TLS from the start).
//! The TLS side is the server's stream by default and the client's for delivery.

use crate::clock;
use sluice_core::time::Instant;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;

#[derive(Debug)]
pub enum MaybeTls<S, T = TlsStream<S>> {
    Plain(S),
    Tls(Box<T>),
    /// The stream was handed to a TLS handshake that did not give it back.
    Gone,
}

impl<S, T> MaybeTls<S, T> {
    /// Takes the plaintext stream out for a handshake, leaving `Gone`.
    pub fn take_plain(&mut self) -> Option<S> {
        match std::mem::replace(self, MaybeTls::Gone) {
            MaybeTls::Plain(stream) => Some(stream),
            other => {
                *self = other;
                None
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost in a TLS handshake",
    )
}

impl<S, T> AsyncRead for MaybeTls<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S, T> AsyncWrite for MaybeTls<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_flush(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// How a server-side STARTTLS handshake ended; each session machine has an input
/// for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    Established,
    Failed,
    /// The session's deadline came first: tell the session `Tick`.
    TimedOut,
}

impl<S> MaybeTls<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Writes and flushes `out`, then empties it; false if the connection broke
    /// (logged), which the caller tells its session as the peer closing.
    pub async fn write_out(&mut self, out: &mut Vec<u8>) -> bool {
        if out.is_empty() {
            return true;
        }
        let written = async {
            self.write_all(out).await?;
            self.flush().await
        }
        .await;
        out.clear();
        match written {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "write failed");
                false
            }
        }
    }

    /// STARTTLS on the server side: the plaintext stream is handed to the
    /// handshake and replaced by its TLS stream, until `deadline` (if any).
    pub async fn start_tls(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
        deadline: Option<Instant>,
    ) -> Handshake {
        let Some(plain) = self.take_plain() else {
            return Handshake::Failed;
        };
        tokio::select! {
            result = acceptor.accept(plain) => match result {
                Ok(tls) => {
                    *self = MaybeTls::Tls(Box::new(tls));
                    Handshake::Established
                }
                Err(error) => {
                    tracing::info!(%error, "TLS handshake failed");
                    Handshake::Failed
                }
            },
            () = clock::sleep_until(deadline) => Handshake::TimedOut,
        }
    }
}
