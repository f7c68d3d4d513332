//! Runs one SMTP server session on one connection: socket bytes into the core
//! session, its outputs back out, its requests (credentials, routing, storage)
//! answered from the backend and its deadlines slept on. Generic over the stream,
//! so the same driver runs on TCP, on TLS and on simulated connections.

use crate::backend::Backend;
use crate::clock;
use crate::delivery::{Command, DeliveryHandle};
use crate::incoming::{self, Acceptance, ClientInfo, PlacementPolicy};
use crate::maybe_tls::MaybeTls;
use crate::queue_id;
use crate::routing;
use sluice_core::machine::{Machine, Token};
use sluice_core::router::{Route, RouterConfig};
use sluice_core::smtp::address::{Domain, ForwardPath};
use sluice_core::smtp::server::{
    AcceptedMessage, ConnectionRefusal, CredentialOutcome, Credentials, Input, ListenerKind,
    Output, RecipientCheck, ServerSession, SessionConfig, SessionEvent, StoreOutcome,
};
use std::collections::HashMap;
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
pub struct DriverContext<B> {
    pub backend: B,
    pub tls: tokio_rustls::TlsAcceptor,
    pub router: RouterConfig,
    pub hostname: Domain,
    /// How accepted copies are placed (this node's role and delivery policy).
    pub placement: PlacementPolicy,
    /// Where queued copies go once stored; None: they wait in the store for a
    /// delivery service (tests that only receive).
    pub delivery: Option<DeliveryHandle>,
}

impl<B> std::fmt::Debug for DriverContext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverContext")
            .field("router", &self.router)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The answer to the one request a session waits on.
enum Answer {
    Session(Input),
    Routed {
        token: Token,
        recipient: ForwardPath,
        route: Route,
    },
}

type PendingAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;

struct Driver<S, B> {
    stream: MaybeTls<S>,
    session: ServerSession,
    pending: Option<PendingAnswer>,
    /// Routes of the recipients accepted since the last stored message, for the store.
    routes: HashMap<ForwardPath, Route>,
    out: Vec<u8>,
    client: ClientInfo,
    context: Arc<DriverContext<B>>,
    /// Turns true when the node shuts down; the session then finishes and says 421.
    shutdown: watch::Receiver<bool>,
    shutdown_told: bool,
    /// An LMTP session: copies are keyed by content (see `incoming::Acceptance`).
    lmtp: bool,
}

/// Drives one session until it closes. Call it inside the session's tracing span.
pub async fn drive<S, B>(
    stream: MaybeTls<S>,
    config: SessionConfig,
    client: ClientInfo,
    context: Arc<DriverContext<B>>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    let lmtp = config.kind == ListenerKind::Lmtp;
    let mut driver = Driver {
        lmtp,
        stream,
        session: ServerSession::new(clock::now(), config),
        pending: None,
        routes: HashMap::new(),
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
            Output::Send(bytes) => reply.extend_from_slice(&bytes),
            Output::Event(event) => log_event(&event),
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

impl<S, B> Driver<S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    async fn run(&mut self) {
        let mut buffer = vec![0u8; READ_BUFFER];
        while self.carry_out().await {
            let deadline = self.session.next_deadline();
            let wants_input = self.session.wants_input();
            tokio::select! {
                answer = wait_for(&mut self.pending) => {
                    self.pending = None;
                    self.on_answer(answer);
                }
                read = self.stream.read(&mut buffer), if wants_input => {
                    let input = match read {
                        Ok(0) => Input::PeerClosed,
                        Ok(count) => Input::Bytes(buffer[..count].to_vec()),
                        Err(error) => {
                            tracing::debug!(%error, "read failed");
                            Input::PeerClosed
                        }
                    };
                    self.session.handle(clock::now(), input);
                }
                () = clock::sleep_until(deadline) => self.session.handle(clock::now(), Input::Tick),
                () = shutdown_requested(&mut self.shutdown), if !self.shutdown_told => {
                    self.shutdown_told = true;
                    self.session.handle(clock::now(), Input::Shutdown);
                }
            }
        }
        if let Err(error) = self.stream.shutdown().await {
            tracing::debug!(%error, "shutdown failed");
        }
    }

    /// Carries out everything the session asked for; false once it has closed.
    async fn carry_out(&mut self) -> bool {
        while let Some(output) = self.session.poll() {
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
                Output::CheckRecipient { token, check } => {
                    self.pending = Some(self.check_recipient(token, check));
                }
                Output::StoreMessage { token, message } => self.store(token, &message),
                Output::Close => {
                    self.flush().await;
                    return false;
                }
                Output::Event(event) => log_event(&event),
            }
        }
        self.flush().await;
        !self.session.is_closed()
    }

    /// Writes what the session sent; a broken connection is reported to the session.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let written = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        }
        .await;
        self.out.clear();
        match written {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "write failed");
                self.session.handle(clock::now(), Input::PeerClosed);
                false
            }
        }
    }

    async fn start_tls(&mut self) {
        let Some(plain) = self.stream.take_plain() else {
            self.session.handle(clock::now(), Input::TlsFailed);
            return;
        };
        let deadline = self.session.next_deadline();
        let acceptor = self.context.tls.clone();
        tokio::select! {
            result = acceptor.accept(plain) => match result {
                Ok(tls) => {
                    self.stream = MaybeTls::Tls(Box::new(tls));
                    self.session.handle(clock::now(), Input::TlsEstablished);
                }
                Err(error) => {
                    tracing::info!(%error, "TLS handshake failed");
                    self.session.handle(clock::now(), Input::TlsFailed);
                }
            },
            () = clock::sleep_until(deadline) => self.session.handle(clock::now(), Input::Tick),
        }
    }

    fn check_credentials(&self, token: Token, credentials: Credentials) -> PendingAnswer {
        let backend = self.context.backend.clone();
        Box::pin(async move {
            let outcome = match backend
                .verify_credentials(credentials.username, credentials.password)
                .await
            {
                Ok(Some(identity)) => CredentialOutcome::Valid { identity },
                Ok(None) => CredentialOutcome::Invalid,
                Err(error) => {
                    tracing::warn!(%error, "credential check failed");
                    CredentialOutcome::TemporaryFailure
                }
            };
            Answer::Session(Input::CredentialsChecked { token, outcome })
        })
    }

    fn check_recipient(&self, token: Token, check: RecipientCheck) -> PendingAnswer {
        let backend = self.context.backend.clone();
        let config = self.context.router.clone();
        Box::pin(async move {
            let recipient = check.recipient.clone();
            let route = routing::route(backend, config, check).await;
            Answer::Routed {
                token,
                recipient,
                route,
            }
        })
    }

    fn store(&mut self, token: Token, message: &AcceptedMessage) {
        let queue_id = queue_id::next();
        let acceptance = Acceptance {
            queue_id: queue_id.clone(),
            client: &self.client,
            hostname: &self.context.hostname,
            received_at_ms: clock::unix_millis(),
            placement: &self.context.placement,
            lmtp: self.lmtp,
        };
        let built = incoming::build(message, &self.routes, &acceptance);
        self.routes.clear();
        let Some(incoming) = built else {
            tracing::error!("an accepted recipient has no route; refusing the message");
            let outcome = StoreOutcome::Failed;
            self.session
                .handle(clock::now(), Input::MessageStored { token, outcome });
            return;
        };
        let backend = self.context.backend.clone();
        let delivery = self.context.delivery.clone();
        let for_queue = incoming::queued(&incoming);
        let success = incoming::success_notice(message, &incoming);
        self.pending = Some(Box::pin(async move {
            let outcome = match backend.accept(incoming).await {
                Ok(()) => {
                    if let Some(delivery) = delivery {
                        if let Some(queued) = for_queue {
                            delivery.enqueue(queued).await;
                        }
                        if let Some(request) = success {
                            delivery.send(Command::Notice(request)).await;
                        }
                    }
                    StoreOutcome::Stored { queue_id }
                }
                Err(error) => {
                    tracing::error!(%error, %queue_id, "message not stored");
                    StoreOutcome::Failed
                }
            };
            Answer::Session(Input::MessageStored { token, outcome })
        }));
    }

    fn on_answer(&mut self, answer: Answer) {
        let input = match answer {
            Answer::Session(input) => input,
            Answer::Routed {
                token,
                recipient,
                route,
            } => {
                let verdict = route.verdict();
                if route.is_deliver() {
                    self.routes.insert(recipient, route);
                }
                Input::RecipientChecked { token, verdict }
            }
        };
        self.session.handle(clock::now(), input);
    }
}

async fn wait_for(pending: &mut Option<PendingAnswer>) -> Answer {
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
