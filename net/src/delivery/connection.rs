//! Runs one SMTP or LMTP client session on one connection: the core session's bytes
//! out, the server's bytes in, STARTTLS carried out with rustls, its deadlines slept
//! on, and the messages it asks for handed over one at a time. Generic over the
//! stream, so the same driver runs on TCP and on simulated connections.

use super::tls::ClientTls;
use crate::clock;
use crate::maybe_tls::MaybeTls;
use rustls::pki_types::ServerName;
use sluice_core::machine::Machine;
use sluice_core::smtp::client::{
    ClientConfig, ClientEvent, ClientSession, Input, MessageReport, OutgoingMessage, Output,
    SessionOutcome,
};
use std::collections::VecDeque;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

const READ_BUFFER: usize = 16 * 1024;

/// What one connection achieved.
#[derive(Debug)]
pub(super) struct SessionRun {
    /// One per message handed over, in order.
    pub(super) reports: Vec<MessageReport>,
    pub(super) outcome: SessionOutcome,
}

/// Drives a session on `stream` (already connected) until it closes, giving it
/// `messages` in order. Every message gets a report: the session guarantees one per
/// message it was given, and messages it never asked for are not given.
pub(super) async fn run<S>(
    stream: S,
    config: ClientConfig,
    messages: Vec<OutgoingMessage>,
    tls: &ClientTls,
) -> SessionRun
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut driver = Driver {
        stream: MaybeTls::Plain(stream),
        session: ClientSession::new(clock::now(), config),
        waiting: messages.into(),
        reports: Vec::new(),
        tls,
    };
    let outcome = driver.run().await;
    SessionRun {
        reports: driver.reports,
        outcome,
    }
}

struct Driver<'a, S> {
    stream: MaybeTls<S, TlsStream<S>>,
    session: ClientSession,
    waiting: VecDeque<OutgoingMessage>,
    reports: Vec<MessageReport>,
    tls: &'a ClientTls,
}

impl<S> Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self) -> SessionOutcome {
        if let Some(first) = self.waiting.pop_front() {
            self.session.handle(clock::now(), Input::Message(first));
        }
        let mut buffer = vec![0u8; READ_BUFFER];
        loop {
            if let Some(outcome) = self.carry_out().await {
                return outcome;
            }
            let deadline = self.session.next_deadline().map(clock::to_tokio);
            let input = tokio::select! {
                read = self.stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => Input::PeerClosed,
                    Ok(count) => Input::Bytes(buffer[..count].to_vec()),
                },
                () = sleep_until(deadline) => Input::Tick,
            };
            self.session.handle(clock::now(), input);
        }
    }

    /// Performs every pending output; the session's outcome once it closed. After the
    /// outputs of one round are written and flushed the session hears `Written`, which
    /// may release the next block of a body being streamed.
    async fn carry_out(&mut self) -> Option<SessionOutcome> {
        loop {
            let mut wrote = false;
            while let Some(output) = self.session.poll() {
                match output {
                    Output::Send(bytes) => {
                        if self.stream.write_all(&bytes).await.is_err() {
                            self.session.handle(clock::now(), Input::PeerClosed);
                        } else {
                            wrote = true;
                        }
                    }
                    Output::StartTls {
                        server_name,
                        verify,
                    } => {
                        let flushed = self.stream.flush().await.is_ok();
                        let input = if flushed && self.start_tls(&server_name, verify).await {
                            Input::TlsEstablished
                        } else {
                            Input::TlsFailed
                        };
                        self.session.handle(clock::now(), input);
                    }
                    Output::Ready => {
                        let input = match self.waiting.pop_front() {
                            Some(message) => Input::Message(message),
                            None => Input::Finish,
                        };
                        self.session.handle(clock::now(), input);
                    }
                    Output::Report(report) => self.reports.push(report),
                    Output::Close(outcome) => {
                        let _ = self.stream.flush().await;
                        let _ = self.stream.shutdown().await;
                        return Some(outcome);
                    }
                    Output::Event(event) => log_event(&event),
                }
            }
            if !wrote {
                return None;
            }
            let input = match self.stream.flush().await {
                Ok(()) => Input::Written,
                Err(_) => Input::PeerClosed,
            };
            self.session.handle(clock::now(), input);
        }
    }

    async fn start_tls(&mut self, server_name: &str, verify: bool) -> bool {
        let Ok(name) = ServerName::try_from(server_name.to_owned()) else {
            return false;
        };
        let Some(plain) = self.stream.take_plain() else {
            return false;
        };
        match self.tls.connector(verify).connect(name, plain).await {
            Ok(tls) => {
                self.stream = MaybeTls::Tls(Box::new(tls));
                true
            }
            Err(error) => {
                tracing::info!(%error, verify, "TLS handshake failed");
                false
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn log_event(event: &ClientEvent) {
    match event {
        ClientEvent::SessionFailed { kind } => tracing::info!(?kind, "delivery session failed"),
        other => tracing::debug!(event = ?other, "delivery session"),
    }
}
