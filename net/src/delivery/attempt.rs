//! One delivery attempt, as the queue asked for it: one message to some of its
//! recipients over one destination. Finds the hosts (MX lookup through core's
//! ordering, or the configured relay or LMTP service), connects to each address in
//! turn, runs a client session and moves the recipients a session left unresolved
//! on to the next address. Every recipient comes back with exactly one result.

use super::connection::{self, Delivered, Job, Pool, PoolKey};
use super::tls::ClientTls;
use crate::dkim::DkimKeyStore;
use crate::dns::Resolver;
use sluice_core::delivery::{
    DeliveryPath, Destination, Failure, RecipientResult, RelayCredentials, TlsPolicy,
};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{
    ClientConfig, Limits, OutgoingMessage, OutgoingRecipient, Protocol, RecipientOutcome,
    SessionOutcome,
};
use std::net::{IpAddr, SocketAddr};
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

/// One host to try: its name (for TLS and Remote-MTA), addresses, port and protocol.
#[derive(Clone, Debug)]
struct Host {
    name: String,
    addresses: Vec<IpAddr>,
    port: u16,
    protocol: Protocol,
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
            Err(failure) => {
                return message
                    .recipients
                    .iter()
                    .map(|recipient| {
                        (
                            recipient.address.clone(),
                            RecipientResult::from_failure(failure.clone()),
                        )
                    })
                    .collect();
            }
        };
        let auth = self.relay_credentials.for_path(&destination.path).cloned();
        let mut results = Vec::with_capacity(message.recipients.len());
        let mut unresolved = message.recipients.clone();
        let mut last_failure = None;
        'hosts: for host in &hosts {
            for address in &host.addresses {
                if unresolved.is_empty() {
                    break 'hosts;
                }
                let mut tls = destination.tls;
                loop {
                    let socket = SocketAddr::new(*address, host.port);
                    let key = PoolKey {
                        address: socket,
                        protocol: host.protocol,
                        tls,
                        host: host.name.clone(),
                        auth: auth.clone(),
                    };
                    let this_try = OutgoingMessage {
                        recipients: unresolved.clone(),
                        ..message.clone()
                    };
                    let delivered = match self.deliver_on(&key, this_try).await {
                        Ok(delivered) => delivered,
                        Err(failure) => {
                            last_failure = Some(failure);
                            break;
                        }
                    };
                    let outcomes = delivered.report.recipients;
                    let mut still: Vec<OutgoingRecipient> = Vec::new();
                    for (index, recipient) in unresolved.iter().enumerate() {
                        match outcomes.get(index) {
                            Some(RecipientOutcome::Final(result)) => {
                                results.push((recipient.address.clone(), result.clone()));
                            }
                            Some(RecipientOutcome::Unresolved(failure)) => {
                                last_failure = Some(failure.clone());
                                still.push(recipient.clone());
                            }
                            None => still.push(recipient.clone()),
                        }
                    }
                    unresolved = still;
                    match delivered.ended {
                        None | Some(SessionOutcome::Completed) => break,
                        Some(SessionOutcome::Failed(failure)) => {
                            last_failure = Some(failure.failure);
                            break;
                        }
                        Some(SessionOutcome::RetryWithoutTls(failure)) => {
                            last_failure = Some(failure.failure);
                            // Only the opportunistic policy may fall back to plain text.
                            if tls != TlsPolicy::Opportunistic || unresolved.is_empty() {
                                break;
                            }
                            tls = TlsPolicy::Disabled;
                        }
                    }
                }
            }
        }
        let failure = last_failure
            .unwrap_or_else(|| Failure::local_error("no host could be tried for this destination"));
        results.extend(unresolved.into_iter().map(|recipient| {
            (
                recipient.address,
                RecipientResult::Temporary(failure.clone()),
            )
        }));
        results
    }

    /// The body with a DKIM-Signature for its From (or envelope) domain prepended,
    /// when this node holds that domain's key; as it was otherwise.
    fn signed(&self, message: &OutgoingMessage) -> std::sync::Arc<[u8]> {
        let envelope_domain = message
            .reverse_path
            .as_deref()
            .and_then(|path| path.rsplit_once('@'))
            .map(|(_, domain)| domain);
        match self.dkim.sign(&message.body, envelope_domain) {
            Ok(Some(header)) => {
                let mut signed = Vec::with_capacity(header.len() + message.body.len());
                signed.extend_from_slice(header.as_bytes());
                signed.extend_from_slice(&message.body);
                signed.into()
            }
            Ok(None) => std::sync::Arc::clone(&message.body),
            Err(error) => {
                tracing::warn!(%error, queue_id = %message.queue_id, "DKIM signing failed; sending unsigned");
                std::sync::Arc::clone(&message.body)
            }
        }
    }

    /// Runs `message` on an idle connection for `key` when the pool has one that
    /// takes it, else on a new connection. A pooled connection that ended before
    /// answering anything (its server timed it out) is not held against the host: the
    /// message then goes over a new connection.
    async fn deliver_on(
        &self,
        key: &PoolKey,
        message: OutgoingMessage,
    ) -> Result<Delivered, Failure> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Job {
            message: message.clone(),
            reply,
        });
        if self.pool.offer(key, job).is_ok() {
            if let Ok(delivered) = answer.await
                && (delivered.ended.is_none()
                    || delivered
                        .report
                        .recipients
                        .iter()
                        .any(|outcome| matches!(outcome, RecipientOutcome::Final(_))))
            {
                return Ok(delivered);
            }
            return Box::pin(self.deliver_fresh(key, message)).await;
        }
        self.deliver_fresh(key, message).await
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

    /// The hosts to try for a path, in order.
    async fn hosts(&self, path: &DeliveryPath, seed: u64) -> Result<Vec<Host>, Failure> {
        match path {
            DeliveryPath::Mx { domain } => {
                let plan = self.dns.host_plan(domain, seed).await?;
                Ok(plan
                    .into_iter()
                    .map(|(name, addresses)| Host {
                        name,
                        addresses,
                        port: self.mx_port,
                        protocol: Protocol::Smtp,
                    })
                    .collect())
            }
            DeliveryPath::Relay { host, port } => {
                self.named_host(host, *port, Protocol::Smtp).await
            }
            DeliveryPath::Lmtp { host, port } => self.named_host(host, *port, Protocol::Lmtp).await,
            DeliveryPath::Local => Err(Failure::local_error(
                "local delivery is made when the message is accepted, not by the queue",
            )),
        }
    }

    async fn named_host(
        &self,
        host: &str,
        port: u16,
        protocol: Protocol,
    ) -> Result<Vec<Host>, Failure> {
        let addresses = self
            .dns
            .addresses(host)
            .await
            .map_err(|error| Failure::no_connection(host, &error.to_string()))?;
        Ok(vec![Host {
            name: host.to_owned(),
            addresses,
            port,
            protocol,
        }])
    }
}
