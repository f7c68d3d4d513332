//! Runs one connection's reception (core's SMTP/LMTP session with the node's
//! wiring, `sluice_core::node::Reception`): socket bytes in, its outputs back out,
//! its requests (credentials, routes, a name for each message, durability) answered
//! from the reception store and its deadlines slept on. Generic over the stream, so the
//! same driver runs on TCP, on TLS and on simulated connections.

use crate::clock;
use crate::delivery::DeliveryHandle;
use crate::incoming::ClientInfo;
use crate::login::Logins;
use crate::maybe_tls::{Handshake, MaybeTls};
use crate::queue_id;
use crate::reception_store::ReceptionStore;
use crate::routing;
use sluice_core::login::{LoginAttempt, LoginProtocol};
use sluice_core::machine::{Machine, Token};
use sluice_core::node::reception::{Input, Output};
use sluice_core::node::{Acceptance, PlacementPolicy, Reception, ReceptionConfig};
use sluice_core::router::RouterConfig;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{
    self, ConnectionRefusal, Credentials, RecipientCheck, ServerSession, SessionConfig,
    SessionEvent, StoreOutcome,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// How long a refused connection may take to receive its 421 before it is dropped.
const REFUSAL_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Large enough for a BDAT chunk to arrive in few reads; every byte read goes to the
/// session at once, so nothing is ever held back across a STARTTLS.
const READ_BUFFER: usize = 64 * 1024;

/// What every session of a node shares.
pub struct DriverContext<R> {
    pub store: R,
    pub tls: tokio_rustls::TlsAcceptor,
    pub router: RouterConfig,
    pub hostname: Domain,
    /// How accepted copies are placed (this node's role and delivery policy).
    pub placement: PlacementPolicy,
    /// Where queued copies go once stored; None: they wait in the store for a
    /// delivery service (tests that only receive).
    pub delivery: Option<DeliveryHandle>,
    /// Login failures, counted and slowed across every protocol of the process.
    pub logins: Logins,
}

impl<R> std::fmt::Debug for DriverContext<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverContext")
            .field("router", &self.router)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The answer to the one request a reception waits on.
type PendingAnswer = Pin<Box<dyn Future<Output = Input> + Send>>;

struct Driver<S, R> {
    stream: MaybeTls<S>,
    reception: Reception,
    pending: Option<PendingAnswer>,
    out: Vec<u8>,
    client: ClientInfo,
    context: Arc<DriverContext<R>>,
    /// Turns true when the node shuts down; the session then finishes and says 421.
    shutdown: watch::Receiver<bool>,
    shutdown_told: bool,
}

/// Drives one session until it closes. Call it inside the session's tracing span.
pub async fn drive<S, R>(
    stream: MaybeTls<S>,
    config: SessionConfig,
    client: ClientInfo,
    context: Arc<DriverContext<R>>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    R: ReceptionStore,
{
    let reception = ReceptionConfig {
        hostname: context.hostname.clone(),
        placement: context.placement.clone(),
        client_ip: client.address.ip(),
    };
    let mut driver = Driver {
        stream,
        reception: Reception::new(clock::now(), config, reception),
        pending: None,
        out: Vec::new(),
        client,
        context,
        shutdown,
        shutdown_told: false,
    };
    driver.run().await;
}

/// Answers a connection the node will not serve with the session's refusal (a 421
/// in place of the greeting), then closes it.
pub async fn refuse<S>(mut stream: S, config: SessionConfig, refusal: ConnectionRefusal)
where
    S: AsyncWrite + Unpin,
{
    let mut session = ServerSession::refusing(clock::now(), config, refusal);
    let mut reply = Vec::new();
    while let Some(output) = session.poll() {
        match output {
            server::Output::Send(bytes) => reply.extend_from_slice(&bytes),
            server::Output::Event(event) => log_event(&event),
            _ => {}
        }
    }
    let written = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::debug!("could not deliver the refusal");
    }
}

/// Resolves when the node asks its sessions to shut down; never, if it cannot ask.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl<S, R> Driver<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    R: ReceptionStore,
{
    async fn run(&mut self) {
        let mut buffer = vec![0u8; READ_BUFFER];
        while self.carry_out().await {
            let deadline = self.reception.next_deadline();
            let wants_input = self.reception.wants_input();
            tokio::select! {
                answer = wait_for(&mut self.pending) => {
                    self.pending = None;
                    self.reception.handle(clock::now(), answer);
                }
                read = self.stream.read(&mut buffer), if wants_input => {
                    let input = match read {
                        Ok(0) => server::Input::PeerClosed,
                        Ok(count) => server::Input::Bytes(buffer[..count].to_vec()),
                        Err(error) => {
                            tracing::debug!(%error, "read failed");
                            server::Input::PeerClosed
                        }
                    };
                    self.tell(input);
                }
                () = clock::sleep_until(deadline) => self.tell(server::Input::Tick),
                () = shutdown_requested(&mut self.shutdown), if !self.shutdown_told => {
                    self.shutdown_told = true;
                    self.tell(server::Input::Shutdown);
                }
            }
        }
        if let Err(error) = self.stream.shutdown().await {
            tracing::debug!(%error, "shutdown failed");
        }
    }

    /// Gives the session something that happened to it.
    fn tell(&mut self, input: server::Input) {
        self.reception.handle(clock::now(), Input::Session(input));
    }

    /// Carries out everything the reception asked for; false once it has closed.
    async fn carry_out(&mut self) -> bool {
        while let Some(output) = self.reception.poll() {
            match output {
                Output::Send(bytes) => self.out.extend_from_slice(&bytes),
                Output::StartTls => {
                    // The 220 must be on the wire before the handshake starts.
                    if self.flush().await {
                        self.start_tls().await;
                    }
                }
                Output::CheckCredentials { token, credentials } => {
                    self.pending = Some(self.check_credentials(token, credentials));
                }
                Output::Route { token, check } => {
                    self.pending = Some(self.route(token, check));
                }
                Output::Name { token } => self.name(token),
                Output::Persist { token, acceptance } => {
                    self.pending = Some(self.persist(token, *acceptance));
                }
                Output::Close => {
                    self.flush().await;
                    return false;
                }
                Output::Event(event) => log_event(&event),
                Output::Unrouted { recipient } => {
                    tracing::error!(%recipient, "an accepted recipient has no route; refusing the message");
                }
            }
        }
        self.flush().await;
        !self.reception.is_closed()
    }

    /// Writes what the session sent; a broken connection is reported to the session.
    async fn flush(&mut self) -> bool {
        let written = self.stream.write_out(&mut self.out).await;
        if !written {
            self.tell(server::Input::PeerClosed);
        }
        written
    }

    async fn start_tls(&mut self) {
        let deadline = self.reception.next_deadline();
        let input = match self.stream.start_tls(&self.context.tls, deadline).await {
            Handshake::Established => server::Input::TlsEstablished,
            Handshake::Failed => server::Input::TlsFailed,
            Handshake::TimedOut => server::Input::Tick,
        };
        self.tell(input);
    }

    fn check_credentials(&self, token: Token, credentials: Credentials) -> PendingAnswer {
        let store = self.context.store.clone();
        let logins = self.context.logins.clone();
        let address = self.client.address.ip();
        Box::pin(async move {
            let attempt = LoginAttempt {
                protocol: LoginProtocol::Smtp,
                mechanism: credentials.mechanism,
                user: &credentials.username,
                address,
            };
            let check =
                store.verify_credentials(credentials.username.clone(), credentials.password);
            let outcome = logins.outcome(attempt, check).await;
            Input::Session(server::Input::CredentialsChecked { token, outcome })
        })
    }

    fn route(&self, token: Token, check: RecipientCheck) -> PendingAnswer {
        let store = self.context.store.clone();
        let config = self.context.router.clone();
        Box::pin(async move {
            let route = routing::route(store, config, check).await;
            Input::Routed { token, route }
        })
    }

    /// Names the accepted message: a fresh queue id, the wall-clock date, and the
    /// client's name if the reverse lookup has found it by now.
    fn name(&mut self, token: Token) {
        let named = Input::Named {
            token,
            queue_id: queue_id::next(),
            received_at_ms: clock::unix_millis(),
            client_name: self.client.name.get().cloned(),
        };
        self.reception.handle(clock::now(), named);
    }

    /// Makes the message durable, then hands its queue record to the queue (its
    /// queued copies, and the success notice its local copies owe); answers the
    /// session last.
    fn persist(&self, token: Token, acceptance: Acceptance) -> PendingAnswer {
        let store = self.context.store.clone();
        let delivery = self.context.delivery.clone();
        Box::pin(async move {
            let Acceptance { incoming, queued } = acceptance;
            let queue_id = incoming.queue_id.clone();
            let outcome = match store.accept(incoming).await {
                Ok(()) => {
                    if let (Some(delivery), Some(queued)) = (delivery, queued) {
                        delivery.enqueue(queued).await;
                    }
                    StoreOutcome::Stored { queue_id }
                }
                Err(error) => {
                    tracing::error!(%error, %queue_id, "message not stored");
                    StoreOutcome::Failed
                }
            };
            Input::Persisted { token, outcome }
        })
    }
}

async fn wait_for(pending: &mut Option<PendingAnswer>) -> Input {
    match pending {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

fn log_event(event: &SessionEvent) {
    match event {
        SessionEvent::Connected => tracing::info!("connected"),
        SessionEvent::Helo { host, esmtp } => tracing::debug!(%host, esmtp, "helo"),
        SessionEvent::TlsStarted => tracing::info!("tls started"),
        SessionEvent::AuthSucceeded {
            mechanism,
            identity,
        } => tracing::info!(mechanism, identity, "authenticated"),
        SessionEvent::AuthFailed {
            mechanism,
            username,
        } => tracing::warn!(mechanism, ?username, "authentication failed"),
        SessionEvent::RecipientRejected { recipient, code } => {
            tracing::info!(%recipient, code = code.0, "recipient rejected");
        }
        SessionEvent::TransactionAccepted {
            queue_id,
            reverse_path,
            recipients,
            size,
            ..
        } => tracing::info!(
            queue_id,
            from = %reverse_path,
            recipients,
            size,
            "message accepted"
        ),
        SessionEvent::TransactionRejected { code, reason } => {
            tracing::info!(code = code.0, ?reason, "message rejected");
        }
        SessionEvent::CommandRejected { verb, code } => {
            tracing::debug!(verb, code = code.0, "command rejected");
        }
        SessionEvent::Disconnected { reason } => tracing::info!(?reason, "disconnected"),
    }
}
