//! One listener: accepts TCP connections, enforces the total and per-address
//! connection limits, reads the PROXY header when configured, performs implicit TLS
//! on the submissions, POP3S and IMAPS ports, and hands each connection to the
//! SMTP, POP3 or IMAP driver in its own task and tracing span. An SMTP connection
//! over a limit gets the session's 421 refusal; a POP3 or IMAP one is closed.
//! On shutdown, live sessions finish their transactions and say 421, new connections
//! are refused with 421, and whatever is left after the grace period is dropped.

use crate::config::ListenerName;
use crate::dns::Resolver;
use crate::imap_driver::{self, ImapContext};
use crate::incoming::ClientInfo;
use crate::maybe_tls::MaybeTls;
use crate::pop3_driver::{self, Pop3Context};
use crate::proxy_header;
use crate::reception_store::ReceptionStore;
use crate::smtp_driver::{self, DriverContext};
use sluice_core::imap::{SessionConfig as ImapConfig, TlsMode as ImapTlsMode};
use sluice_core::pop3::Pop3Config;
use sluice_core::smtp::server::{ConnectionRefusal, ListenerKind, SessionConfig, TlsMode};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

/// How one listener behaves, resolved from the configuration.
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub name: ListenerName,
    /// The session configuration every connection starts with.
    pub session: SessionConfig,
    pub proxy_protocol: bool,
    pub max_connections_per_ip: usize,
    /// The protocol its connections speak.
    pub service: Service,
}

/// What a listener's connections run. A POP3 or IMAP listener runs no SMTP
/// session: its `ListenerSpec::session` only lends the handshake timeout.
#[derive(Clone, Debug)]
pub enum Service {
    /// SMTP or LMTP, as `ListenerSpec::session` says.
    Smtp,
    Pop3(Pop3Config),
    Imap(ImapConfig),
}

impl ListenerSpec {
    /// MX and submission offer STARTTLS; submissions is TLS from the first byte.
    pub fn session_kind(name: ListenerName) -> (ListenerKind, TlsMode) {
        match name {
            ListenerName::Mx => (ListenerKind::Mx, TlsMode::StartTlsOffered),
            ListenerName::Submission => (ListenerKind::Submission, TlsMode::StartTlsOffered),
            ListenerName::Submissions => (ListenerKind::Submission, TlsMode::Implicit),
            // LMTP runs between our own tiers on a trusted network (RFC 2033 §1).
            ListenerName::Lmtp => (ListenerKind::Lmtp, TlsMode::Unavailable),
            // Retrieval listeners run no SMTP session (see `Service`); the TLS
            // mode is theirs.
            ListenerName::Pop3 | ListenerName::Imap => {
                (ListenerKind::Submission, TlsMode::StartTlsOffered)
            }
            ListenerName::Pop3s | ListenerName::Imaps => {
                (ListenerKind::Submission, TlsMode::Implicit)
            }
        }
    }

    /// Whether connections are TLS from their first byte (submissions, POP3S, IMAPS).
    fn implicit_tls(&self) -> bool {
        match &self.service {
            Service::Smtp => self.session.tls == TlsMode::Implicit,
            Service::Pop3(pop3) => pop3.tls == TlsMode::Implicit,
            Service::Imap(imap) => imap.tls == ImapTlsMode::Implicit,
        }
    }

    /// Whether a refused connection gets a reply: SMTP's 421 in plaintext only.
    fn refusal_is_answered(&self) -> bool {
        matches!(self.service, Service::Smtp) && !self.implicit_tls()
    }

    /// How long a client may take to send its PROXY header or finish implicit TLS:
    /// core's wait for a command, since nothing else can happen before it.
    fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.session.limits.command_timeout.as_millis())
    }
}

/// What the listeners of one node share.
#[derive(Debug)]
pub struct Shared<R> {
    pub driver: Arc<DriverContext<R>>,
    /// One permit per open connection over all listeners.
    pub connections: Arc<Semaphore>,
    pub shutdown_grace: Duration,
    /// Names clients for the Received header (FCrDNS), looked up while the session
    /// runs so that it never delays the greeting.
    pub resolver: Option<Resolver>,
    /// What POP3 sessions share; None where the node has no mailbox store.
    pub pop3: Option<Arc<Pop3Context>>,
    /// What IMAP sessions share; None where the node has no mailbox store.
    pub imap: Option<Arc<ImapContext>>,
}

/// Counts live connections per client address; a slot frees itself when dropped.
#[derive(Debug, Default)]
struct PerAddress {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self
            .owner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

fn next_session_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Accepts until `shutdown` turns true, then waits up to the grace period for the
/// sessions it started.
pub async fn run<R: ReceptionStore>(
    listener: TcpListener,
    spec: ListenerSpec,
    shared: Arc<Shared<R>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let spec = Arc::new(spec);
    let per_address = Arc::new(PerAddress::default());
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
                        tracing::warn!(listener = %spec.name, %peer, "connection limit reached; refusing");
                        refuse_detached(stream, &spec, ConnectionRefusal::TooManyConnections);
                        continue;
                    };
                    let spec = Arc::clone(&spec);
                    let shared = Arc::clone(&shared);
                    let per_address = Arc::clone(&per_address);
                    let shutdown = shutdown.clone();
                    sessions.spawn(async move {
                        connection(stream, peer, &spec, &shared, &per_address, shutdown).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = %spec.name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next() => {}
            () = stopped(&mut shutdown) => break,
        }
    }
    // Live sessions saw the same signal and finish their transactions; meanwhile new
    // connections are answered 421 rather than left to time out.
    let live = sessions.len();
    if live > 0 {
        tracing::info!(listener = %spec.name, live, "waiting for live sessions");
    }
    let grace = tokio::time::sleep(shared.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    refuse_detached(stream, &spec, ConnectionRefusal::ShuttingDown);
                }
            }
            joined = sessions.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
            () = &mut grace => {
                tracing::warn!(listener = %spec.name, left = sessions.len(), "grace period over; dropping sessions");
                sessions.shutdown().await;
                break;
            }
        }
    }
}

/// Sends the session's refusal on its own task, so the accept loop never waits on a
/// slow client. On the implicit-TLS listener a plaintext reply would be noise to the
/// client, so the connection is closed without one.
fn refuse_detached(stream: TcpStream, spec: &ListenerSpec, refusal: ConnectionRefusal) {
    if !spec.refusal_is_answered() {
        return;
    }
    tokio::spawn(smtp_driver::refuse(stream, spec.session.clone(), refusal));
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

async fn connection<R: ReceptionStore>(
    mut stream: TcpStream,
    peer: SocketAddr,
    spec: &ListenerSpec,
    shared: &Shared<R>,
    per_address: &Arc<PerAddress>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let session_id = next_session_id();
    let client = if spec.proxy_protocol {
        match tokio::time::timeout(
            spec.handshake_timeout(),
            proxy_header::read(&mut stream, peer),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                tracing::info!(session = session_id, listener = %spec.name, %peer, %error, "bad PROXY header; closing");
                return;
            }
            Err(_) => {
                tracing::info!(session = session_id, listener = %spec.name, %peer, "no PROXY header in time; closing");
                return;
            }
        }
    } else {
        peer
    };
    let span = tracing::info_span!(
        "session",
        id = session_id,
        listener = %spec.name,
        client = %client,
        // The proxy's own address, when the client address came from its header.
        via = tracing::field::Empty,
    );
    if spec.proxy_protocol {
        span.record("via", tracing::field::display(peer));
    }
    async {
        let Some(_slot) = per_address.take(client.ip(), spec.max_connections_per_ip) else {
            tracing::warn!("too many connections from this address; refusing");
            if spec.refusal_is_answered() {
                smtp_driver::refuse(
                    stream,
                    spec.session.clone(),
                    ConnectionRefusal::TooManyConnections,
                )
                .await;
            }
            return;
        };
        let stream = if spec.implicit_tls() {
            let accept = shared.driver.tls.accept(stream);
            match tokio::time::timeout(spec.handshake_timeout(), accept).await {
                Ok(Ok(tls)) => MaybeTls::Tls(Box::new(tls)),
                Ok(Err(error)) => {
                    tracing::info!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    return;
                }
            }
        } else {
            MaybeTls::Plain(stream)
        };
        match &spec.service {
            Service::Smtp => {}
            Service::Pop3(config) => {
                let Some(context) = shared.pop3.clone() else {
                    tracing::warn!("no mailbox store for POP3; closing");
                    return;
                };
                pop3_driver::drive(stream, config.clone(), client, context, shutdown).await;
                return;
            }
            Service::Imap(config) => {
                let Some(context) = shared.imap.clone() else {
                    tracing::warn!("no mailbox store for IMAP; closing");
                    return;
                };
                imap_driver::drive(stream, config.clone(), client, context, shutdown).await;
                return;
            }
        }
        let client_info = ClientInfo::new(client);
        if let Some(resolver) = shared.resolver.clone() {
            let name = Arc::clone(&client_info.name);
            tokio::spawn(async move {
                if let Some(domain) = resolver.reverse_name(client.ip()).await {
                    let _ = name.set(domain);
                }
            });
        }
        smtp_driver::drive(
            stream,
            spec.session.clone(),
            client_info,
            Arc::clone(&shared.driver),
            shutdown,
        )
        .await;
    }
    .instrument(span)
    .await;
}
