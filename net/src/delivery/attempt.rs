//! One delivery attempt, as the queue asked for it: one message to some of its
//! recipients over one destination. Finds the hosts (MX lookup through core's
//! ordering, or the configured relay or LMTP service), then follows core's walk
//! (`sluice_core::delivery::walk`): connects where it says, runs a client session
//! for the recipients it names and reports back. Every recipient comes back with
//! exactly one result.

use super::connection::{self, Delivered, Job, Pool, PoolKey};
use super::tls::ClientTls;
use crate::dkim::DkimKeyStore;
use crate::dns::Resolver;
use sluice_core::delivery::hosts::{HostQuery, mx_hosts};
use sluice_core::delivery::walk::{PlannedHost, Tried, Walk};
use sluice_core::delivery::{
    DeliveryPath, Destination, Failure, RecipientResult, RelayCredentials,
};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{
    ClientConfig, Limits, MessageReport, OutgoingMessage, SessionFailure, SessionFailureKind,
    SessionOutcome,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// What every attempt of a node shares.
#[derive(Debug)]
pub struct Deliverer {
    pub dns: Resolver,
    pub tls: ClientTls,
    /// Our name in EHLO/LHLO.
    pub hostname: Domain,
    /// The port MX hosts listen on (25).
    pub mx_port: u16,
    pub connect_timeout: Duration,
    pub limits: Limits,
    /// Keys for signing mail that leaves for other domains' servers.
    pub dkim: DkimKeyStore,
    /// Idle connections, reused by later attempts to the same host.
    pub pool: Arc<Pool>,
    /// What relays that require AUTH are given.
    pub relay_credentials: RelayCredentials,
}

impl Deliverer {
    /// Delivers `message` (carrying exactly the attempt's recipients) over
    /// `destination`. `seed` orders MX hosts of equal preference.
    pub async fn attempt(
        &self,
        destination: &Destination,
        mut message: OutgoingMessage,
        seed: u64,
    ) -> Vec<(String, RecipientResult)> {
        if destination.path.leaves_our_tiers() {
            message.body = self.signed(&message);
        }
        let hosts = match self.hosts(&destination.path, seed).await {
            Ok(hosts) => hosts,
            Err(failure) => return Walk::without_hosts(&message.recipients, &failure),
        };
        // Core's walk decides which host, address and TLS policy comes next and
        // what every recipient ends with; this loop only connects and runs sessions.
        let auth = self.relay_credentials.for_path(&destination.path).cloned();
        let mut walk = Walk::new(message.recipients.clone(), destination.tls, hosts);
        while let Some(next) = walk.next_try() {
            let key = PoolKey {
                address: next.address,
                protocol: next.protocol,
                tls: next.tls,
                host: next.name,
                auth: auth.clone(),
            };
            let this_try = OutgoingMessage {
                recipients: next.recipients,
                ..message.clone()
            };
            let tried = match self.deliver_on(&key, this_try, next.fresh).await {
                Ok((delivered, reused)) => Tried::Session {
                    progress: delivered.report.progress,
                    outcomes: delivered.report.recipients,
                    ended: delivered.ended,
                    reused,
                },
                Err(failure) => Tried::NoConnection(failure),
            };
            walk.tried(tried);
        }
        walk.finish()
    }

    /// The body with a DKIM-Signature for its From (or envelope) domain prepended,
    /// when this node holds that domain's key; as it was otherwise.
    fn signed(&self, message: &OutgoingMessage) -> std::sync::Arc<[u8]> {
        // t= is the wall clock's, in seconds (RFC 6376 §3.5).
        let unix_seconds = u64::try_from(crate::clock::unix_millis() / 1000).unwrap_or(0);
        let reverse_path = message.reverse_path.as_deref();
        match self.dkim.signed(&message.body, reverse_path, unix_seconds) {
            Ok(Some(signed)) => signed.message.into(),
            Ok(None) => std::sync::Arc::clone(&message.body),
            Err(error) => {
                tracing::warn!(%error, queue_id = %message.queue_id, "DKIM signing failed; sending unsigned");
                std::sync::Arc::clone(&message.body)
            }
        }
    }

    /// Runs `message` on an idle connection for `key` when the pool has one that
    /// takes it (unless the walk asks for a `fresh` one), else on a new connection;
    /// says whether the connection was reused. What a reused connection that died
    /// means — retry at once, or not — is the walk's decision, not this driver's.
    async fn deliver_on(
        &self,
        key: &PoolKey,
        message: OutgoingMessage,
        fresh: bool,
    ) -> Result<(Delivered, bool), Failure> {
        if !fresh {
            let (reply, answer) = oneshot::channel();
            let job = Box::new(Job {
                message: message.clone(),
                reply,
            });
            if self.pool.offer(key, job).is_ok() {
                return match answer.await {
                    Ok(delivered) => Ok((delivered, true)),
                    // The connection dropped the job unanswered: it was closing, and
                    // the message was never given to its session.
                    Err(_) => Ok((unattempted(&message), true)),
                };
            }
        }
        self.deliver_fresh(key, message)
            .await
            .map(|delivered| (delivered, false))
    }

    async fn deliver_fresh(
        &self,
        key: &PoolKey,
        message: OutgoingMessage,
    ) -> Result<Delivered, Failure> {
        let stream = self.connect(key.address).await.map_err(|reason| {
            Failure::no_connection(&format!("{} [{}]", key.host, key.address.ip()), &reason)
        })?;
        let config = ClientConfig {
            hostname: self.hostname.clone(),
            protocol: key.protocol,
            tls: key.tls,
            remote_host: key.host.clone(),
            auth: key.auth.clone(),
            limits: self.limits.clone(),
        };
        let (reply, answer) = oneshot::channel();
        connection::spawn(
            stream,
            config,
            Job { message, reply },
            self.tls.clone(),
            Arc::clone(&self.pool),
            key.clone(),
        );
        answer
            .await
            .map_err(|_| Failure::local_error("the delivery session ended without an answer"))
    }

    async fn connect(&self, address: SocketAddr) -> Result<TcpStream, String> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.connect_timeout)),
        }
    }

    /// The hosts to try for a path, in order: core says what to look up and builds
    /// the hosts from the answer; this only asks DNS.
    async fn hosts(&self, path: &DeliveryPath, seed: u64) -> Result<Vec<PlannedHost>, Failure> {
        match HostQuery::for_path(path)? {
            HostQuery::Mx { domain } => {
                let plan = self.dns.host_plan(&domain, seed).await?;
                Ok(mx_hosts(plan, self.mx_port))
            }
            HostQuery::Named(named) => {
                let addresses = self
                    .dns
                    .addresses(&named.name)
                    .await
                    .map_err(|error| error.to_string());
                named.resolved(addresses)
            }
        }
    }
}

/// The answer for a message a pooled connection dropped before giving it to its
/// session: nothing of it was sent.
fn unattempted(message: &OutgoingMessage) -> Delivered {
    let failure = Failure::local_error("the pooled connection closed before taking the message");
    Delivered {
        report: MessageReport::unattempted(message, &failure),
        ended: Some(SessionOutcome::Failed(SessionFailure {
            kind: SessionFailureKind::ConnectionLost,
            failure,
        })),
    }
}
