//! Runs one IMAP connection: socket bytes through core's `ImapSession`, its
//! credential checks through the process's login guard, its mailbox requests
//! answered by core's `imap::backend::answer` over the SQL store, its deadlines
//! slept on, and the store's change announcements for the logged-in user given
//! to it as `MailboxChanged` (what makes IDLE push new mail). The session decides
//! every response; this file only carries bytes and does I/O.

use crate::clock;
use crate::imap_backend::StoreBackend;
use crate::login::Logins;
use crate::maybe_tls::{Handshake, MaybeTls};
use crate::store::{MailboxListener, Store};
use sluice_core::imap::{
    Credentials, ImapSession, Input, Output, SessionConfig, SessionEvent, backend,
};
use sluice_core::login::LoginProtocol;
use sluice_core::machine::{Machine, Token};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Client input read at once: commands, and APPEND literals in pieces (the
/// session bounds what it holds).
const READ_BUFFER: usize = 16 * 1024;

/// Responses gathered before a write: a large FETCH is written as it is produced.
const WRITE_CHUNK: usize = 64 * 1024;

/// What every IMAP session of a node shares.
pub struct ImapContext {
    pub store: Store,
    pub tls: tokio_rustls::TlsAcceptor,
    pub logins: Logins,
}

impl std::fmt::Debug for ImapContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapContext").finish_non_exhaustive()
    }
}

type PendingInput = Pin<Box<dyn Future<Output = Input> + Send>>;

struct Driver<S> {
    stream: MaybeTls<S>,
    session: ImapSession,
    /// The answer the session waits for (it asks one thing at a time).
    pending: Option<PendingInput>,
    /// Changes to the logged-in user's mailboxes, once there is one.
    changes: Option<MailboxListener>,
    out: Vec<u8>,
    client: SocketAddr,
    context: Arc<ImapContext>,
    shutdown: watch::Receiver<bool>,
    shutdown_told: bool,
}

/// Drives one IMAP session until it closes. Call it inside the session's span.
pub async fn drive<S>(
    stream: MaybeTls<S>,
    config: SessionConfig,
    client: SocketAddr,
    context: Arc<ImapContext>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut driver = Driver {
        stream,
        session: ImapSession::new(clock::now(), config),
        pending: None,
        changes: None,
        out: Vec::new(),
        client,
        context,
        shutdown,
        shutdown_told: false,
    };
    driver.run().await;
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn wait_for(pending: &mut Option<PendingInput>) -> Input {
    match pending {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn next_change(changes: &mut Option<MailboxListener>) {
    match changes {
        Some(listener) => listener.changed().await,
        None => std::future::pending().await,
    }
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self) {
        let mut buffer = vec![0u8; READ_BUFFER];
        while self.carry_out().await {
            let deadline = self.session.next_deadline();
            let wants_input = self.session.wants_input();
            tokio::select! {
                input = wait_for(&mut self.pending) => {
                    self.pending = None;
                    self.tell(input);
                }
                () = next_change(&mut self.changes) => self.tell(Input::MailboxChanged),
                read = self.stream.read(&mut buffer), if wants_input => {
                    let input = match read {
                        Ok(0) => Input::PeerClosed,
                        Ok(count) => Input::Bytes(buffer[..count].to_vec()),
                        Err(error) => {
                            tracing::debug!(%error, "read failed");
                            Input::PeerClosed
                        }
                    };
                    self.tell(input);
                }
                () = clock::sleep_until(deadline) => self.tell(Input::Tick),
                () = shutdown_requested(&mut self.shutdown), if !self.shutdown_told => {
                    self.shutdown_told = true;
                    self.tell(Input::Shutdown);
                }
            }
        }
        if let Err(error) = self.stream.shutdown().await {
            tracing::debug!(%error, "shutdown failed");
        }
    }

    fn tell(&mut self, input: Input) {
        self.session.handle(clock::now(), input);
    }

    /// Carries out everything the session asked for; false once it has closed.
    async fn carry_out(&mut self) -> bool {
        while let Some(output) = self.session.poll() {
            match output {
                Output::Send(bytes) => {
                    self.out.extend_from_slice(&bytes);
                    if self.out.len() >= WRITE_CHUNK {
                        self.flush().await;
                    }
                }
                Output::StartTls => {
                    // The tagged OK must be on the wire before the handshake starts.
                    if self.flush().await {
                        self.start_tls().await;
                    }
                }
                Output::CheckCredentials { token, credentials } => {
                    self.pending = Some(self.check_credentials(token, credentials));
                }
                Output::Mailbox {
                    token,
                    user,
                    request,
                } => {
                    let mut backend = StoreBackend {
                        store: self.context.store.clone(),
                    };
                    self.pending = Some(Box::pin(async move {
                        let answer =
                            backend::answer(&mut backend, &user, request, clock::unix_millis())
                                .await;
                        Input::MailboxAnswered { token, answer }
                    }));
                }
                Output::Close => {
                    self.flush().await;
                    return false;
                }
                Output::Event(event) => {
                    if let SessionEvent::AuthSucceeded { identity, .. } = &event {
                        // From now on, changes to this user's mailboxes wake the session.
                        self.changes = Some(self.context.store.watch().listen(identity));
                    }
                    log_event(&event);
                }
            }
        }
        self.flush().await;
        !self.session.is_closed()
    }

    /// Writes what the session sent; a broken connection is reported to the session.
    async fn flush(&mut self) -> bool {
        let written = self.stream.write_out(&mut self.out).await;
        if !written {
            self.tell(Input::PeerClosed);
        }
        written
    }

    async fn start_tls(&mut self) {
        let deadline = self.session.next_deadline();
        let input = match self.stream.start_tls(&self.context.tls, deadline).await {
            Handshake::Established => Input::TlsEstablished,
            Handshake::Failed => Input::TlsFailed,
            Handshake::TimedOut => Input::Tick,
        };
        self.tell(input);
    }

    fn check_credentials(&self, token: Token, credentials: Credentials) -> PendingInput {
        let store = self.context.store.clone();
        let logins = self.context.logins.clone();
        let address = self.client.ip();
        Box::pin(async move {
            let outcome = logins
                .check_password(&store, LoginProtocol::Imap, credentials, address)
                .await;
            Input::CredentialsChecked { token, outcome }
        })
    }
}

fn log_event(event: &SessionEvent) {
    match event {
        SessionEvent::Connected => tracing::info!("connected"),
        SessionEvent::TlsStarted => tracing::info!("tls started"),
        SessionEvent::AuthSucceeded {
            mechanism,
            identity,
        } => tracing::info!(mechanism, user = identity, "authenticated"),
        SessionEvent::AuthFailed {
            mechanism,
            username,
        } => tracing::warn!(mechanism, ?username, "authentication failed"),
        SessionEvent::CommandRejected { command, bad } => {
            tracing::debug!(command, bad, "command rejected");
        }
        SessionEvent::Selected { mailbox, read_only } => {
            tracing::info!(mailbox, read_only, "selected");
        }
        SessionEvent::Disconnected { reason } => tracing::info!(?reason, "disconnected"),
    }
}
