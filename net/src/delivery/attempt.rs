//! One delivery attempt, as the queue asked for it: one message to some of its
//! recipients over one destination. Finds the hosts (MX lookup through core's
//! ordering, or the configured relay or LMTP service), connects to each address in
//! turn, runs a client session and moves the recipients a session left unresolved
//! on to the next address. Every recipient comes back with exactly one result.

use super::connection;
use super::tls::ClientTls;
use crate::dkim::DkimKeyStore;
use crate::dns::Resolver;
use sluice_core::delivery::{DeliveryPath, Destination, Failure, RecipientResult, TlsPolicy};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{
    ClientConfig, Limits, OutgoingMessage, OutgoingRecipient, Protocol, RecipientOutcome,
    SessionOutcome,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

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
        if matches!(
            destination.path,
            DeliveryPath::Mx { .. } | DeliveryPath::Relay { .. }
        ) {
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
                    let stream = match self.connect(socket).await {
                        Ok(stream) => stream,
                        Err(reason) => {
                            let name = format!("{} [{}]", host.name, address);
                            last_failure = Some(Failure::no_connection(&name, &reason));
                            break;
                        }
                    };
                    let config = ClientConfig {
                        hostname: self.hostname.clone(),
                        protocol: host.protocol,
                        tls,
                        remote_host: host.name.clone(),
                        limits: self.limits.clone(),
                    };
                    let this_try = OutgoingMessage {
                        recipients: unresolved.clone(),
                        ..message.clone()
                    };
                    let run = connection::run(stream, config, vec![this_try], &self.tls).await;
                    let outcomes = run
                        .reports
                        .into_iter()
                        .next()
                        .map(|report| report.recipients)
                        .unwrap_or_default();
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
                    match run.outcome {
                        SessionOutcome::Completed => break,
                        SessionOutcome::Failed(failure) => {
                            last_failure = Some(failure.failure);
                            break;
                        }
                        SessionOutcome::RetryWithoutTls(failure) => {
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
