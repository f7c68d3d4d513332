//! The workload's clients and the load balancer in front of the gateways. A client
//! is another organisation's MTA (or a user's mail program) with one message: it
//! connects through the load balancer, speaks SMTP with core's client machine, and
//! like a real MTA tries again with backoff on a 4xx or a lost connection, for the
//! recipients that got no final answer. The load balancer health-checks each
//! gateway and spreads connections over the healthy ones.

use super::network::OUTSIDE;
use super::{Event, Owner, World};
use sluice_core::delivery::{RecipientResult, TlsPolicy};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{
    ClientAuth, ClientConfig, Limits, MessageReport, OutgoingMessage, OutgoingRecipient, Password,
    Protocol, RecipientOutcome, SessionOutcome,
};
use sluice_core::smtp::params::Notify;
use sluice_core::smtp::server::ListenerKind;
use sluice_core::time::{Duration, Instant};
use std::sync::Arc;

/// One message of the workload.
#[derive(Clone, Debug)]
pub struct MessageSpec {
    /// The Message-ID local part: how checkers recognise the message anywhere.
    pub tag: String,
    pub reverse_path: Option<String>,
    pub recipients: Vec<String>,
    /// NOTIFY per recipient, in the order of `recipients`.
    pub notify: Vec<Option<Notify>>,
    pub body: Arc<[u8]>,
    /// The user a submitter authenticates as (on the submission listener); `None`
    /// for an MTA sending to the MX listener.
    pub auth: Option<String>,
    /// When it is first offered (simulation clock).
    pub at: Instant,
}

/// A client with one message.
#[derive(Debug)]
pub struct Agent {
    pub spec: MessageSpec,
    /// Recipients without a final answer yet.
    pub remaining: Vec<String>,
    /// The recipients of the try in flight, in the order the report lists them.
    sent: Vec<String>,
    pub tries: u32,
    pub max_tries: u32,
    pub first_offer: Option<Instant>,
    gateway: usize,
    in_flight: bool,
}

impl Agent {
    pub fn new(spec: MessageSpec, max_tries: u32) -> Agent {
        Agent {
            remaining: spec.recipients.clone(),
            spec,
            sent: Vec::new(),
            tries: 0,
            max_tries,
            first_offer: None,
            gateway: 0,
            in_flight: false,
        }
    }
}

/// Spreads client connections over the gateways that passed their last health check.
#[derive(Debug, Default)]
pub struct LoadBalancer {
    pub gateways: Vec<usize>,
    pub healthy: Vec<bool>,
    next: usize,
}

impl LoadBalancer {
    pub fn new(gateways: Vec<usize>) -> LoadBalancer {
        let healthy = vec![true; gateways.len()];
        LoadBalancer {
            gateways,
            healthy,
            next: 0,
        }
    }

    /// Round robin over the healthy gateways (over all when none is healthy).
    fn pick(&mut self) -> Option<usize> {
        let count = self.gateways.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            if self.healthy.get(index).copied().unwrap_or(false) {
                self.next = index + 1;
                return self.gateways.get(index).copied();
            }
        }
        let index = self.next % count.max(1);
        self.next = index + 1;
        self.gateways.get(index).copied()
    }
}

/// The client's wait before its next try: 20 s doubling per try, at most 5 minutes.
fn client_backoff(tries: u32) -> Duration {
    let factor = 1u64 << tries.saturating_sub(1).min(4);
    Duration::from_secs((20 * factor).min(300))
}

impl World {
    pub(super) fn offer(&mut self, index: usize) {
        let now = self.engine.now();
        let idle = self
            .agents
            .get(index)
            .is_some_and(|agent| !agent.in_flight && !agent.remaining.is_empty());
        if !idle {
            return;
        }
        let Some(gateway) = self.lb.pick() else {
            return;
        };
        let Some(agent) = self.agents.get_mut(index) else {
            return;
        };
        if agent.tries >= agent.max_tries {
            let tag = agent.spec.tag.clone();
            self.engine.record(&format!("client {tag} gives up"));
            self.obs.gave_up(now, &tag);
            return;
        }
        if agent.first_offer.is_none() {
            agent.first_offer = Some(now);
            self.obs.offered(now, &agent.spec.tag);
        }
        agent.tries += 1;
        agent.in_flight = true;
        agent.gateway = gateway;
        agent.sent = agent.remaining.clone();
        let auth = agent.spec.auth.clone();
        let message = OutgoingMessage {
            queue_id: agent.spec.tag.clone(),
            reverse_path: agent.spec.reverse_path.clone(),
            recipients: agent
                .sent
                .iter()
                .map(|address| OutgoingRecipient {
                    address: address.clone(),
                    notify: agent
                        .spec
                        .recipients
                        .iter()
                        .position(|recipient| recipient == address)
                        .and_then(|index| agent.spec.notify.get(index).copied().flatten()),
                    orcpt: None,
                })
                .collect(),
            ret: None,
            envid: None,
            body: Arc::clone(&agent.spec.body),
            eight_bit: false,
            smtputf8: false,
        };
        let remote_host = self.place_name(gateway);
        let config = ClientConfig {
            hostname: client_hostname(),
            protocol: Protocol::Smtp,
            tls: TlsPolicy::Disabled,
            remote_host,
            limits: Limits::default(),
            // A submitter authenticates with core's client AUTH (PLAIN, RFC 4616)
            // after EHLO; the simulation has no TLS, so it is allowed in plain text.
            auth: auth.as_ref().map(|user| ClientAuth {
                username: user.clone(),
                password: Password::new(format!("secret-{user}")),
                plaintext_allowed: true,
            }),
        };
        let listener = if auth.is_some() {
            ListenerKind::Submission
        } else {
            ListenerKind::Mx
        };
        self.connect(Owner::Agent(index), gateway, listener, config, message);
    }

    fn agent_report(&mut self, index: usize, report: &MessageReport) {
        let now = self.engine.now();
        let Some(agent) = self.agents.get_mut(index) else {
            return;
        };
        let gateway = agent.gateway;
        let mut promised = Vec::new();
        let mut refused = Vec::new();
        for (recipient, outcome) in agent.sent.iter().zip(&report.recipients) {
            match outcome {
                RecipientOutcome::Final(RecipientResult::Delivered { .. }) => {
                    promised.push(recipient.clone());
                }
                RecipientOutcome::Final(RecipientResult::Permanent(failure)) => {
                    refused.push((recipient.clone(), failure.status.to_string()));
                }
                RecipientOutcome::Final(
                    RecipientResult::Temporary(_) | RecipientResult::Ambiguous(_),
                )
                | RecipientOutcome::Unresolved(_) => {}
            }
        }
        agent
            .remaining
            .retain(|r| !promised.contains(r) && !refused.iter().any(|(f, _)| f == r));
        let tag = agent.spec.tag.clone();
        let first_offer = agent.first_offer.unwrap_or(now);
        let gateway_name = self.place_name(gateway);
        for recipient in promised {
            self.engine.record(&format!(
                "client {tag} promised {recipient} by {gateway_name}"
            ));
            self.obs
                .promised(now, &tag, &recipient, &gateway_name, first_offer);
        }
        for (recipient, status) in refused {
            self.engine
                .record(&format!("client {tag} refused {recipient} {status}"));
            self.obs.refused(now, &tag, &recipient);
        }
    }

    fn agent_retry(&mut self, index: usize) {
        let Some(agent) = self.agents.get_mut(index) else {
            return;
        };
        agent.in_flight = false;
        if agent.remaining.is_empty() {
            return;
        }
        let wait = client_backoff(agent.tries);
        self.engine.after(wait, Event::Offer(index));
    }

    pub(super) fn owner_report(&mut self, owner: Owner, report: MessageReport) {
        match owner {
            Owner::Agent(index) => self.agent_report(index, &report),
            Owner::Attempt {
                host,
                epoch,
                attempt,
            } => self.with_host_of(host, epoch, |sluice, _| {
                sluice.attempt_report(attempt, report);
            }),
            // An idle connection carries no message.
            Owner::Pooled { .. } => {}
        }
    }

    /// A delivery connection finished its message and stays open.
    pub(super) fn owner_idle(&mut self, owner: Owner, conn: u64) {
        if let Owner::Attempt {
            host,
            epoch,
            attempt,
        } = owner
        {
            self.with_host_of(host, epoch, |sluice, port| {
                sluice.attempt_idle(port, attempt, conn);
            });
        }
    }

    pub(super) fn owner_closed(&mut self, owner: Owner, conn: u64, outcome: SessionOutcome) {
        match owner {
            Owner::Agent(index) => self.agent_retry(index),
            Owner::Attempt {
                host,
                epoch,
                attempt,
            } => self.with_host_of(host, epoch, |sluice, port| {
                sluice.attempt_closed(port, attempt, Some(outcome));
            }),
            Owner::Pooled { host, .. } => {
                self.with_host(host, |sluice, _| sluice.pooled_closed(conn));
            }
        }
    }

    pub(super) fn owner_connect_failed(
        &mut self,
        owner: Owner,
        server_name: &str,
        _message: Option<OutgoingMessage>,
    ) {
        match owner {
            Owner::Agent(index) => self.agent_retry(index),
            Owner::Attempt {
                host,
                epoch,
                attempt,
            } => self.with_host_of(host, epoch, |sluice, port| {
                sluice.attempt_connect_failed(port, attempt, server_name);
            }),
            Owner::Pooled { .. } => {}
        }
    }

    /// Marks each gateway healthy when it is up and reachable from outside.
    pub(super) fn health_check(&mut self) {
        let states: Vec<bool> = self
            .lb
            .gateways
            .iter()
            .map(|gateway| {
                self.nodes.get(*gateway).is_some_and(|node| node.up)
                    && self.network.reachable(OUTSIDE, *gateway)
            })
            .collect();
        if states != self.lb.healthy {
            let text = format!("lb health {states:?}");
            self.engine.record(&text);
        }
        self.lb.healthy = states;
        self.engine
            .after(self.health_check_every, Event::HealthCheck);
    }
}

fn client_hostname() -> Domain {
    crate::host::domain("client.outside.test")
}
