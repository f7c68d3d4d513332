//! The delivery side of a Sluice host: the queue's outputs carried out as net's
//! delivery service does (attempts, durable writes with their notices, removals),
//! one attempt walking the hosts of its destination as net's `Deliverer::attempt`
//! does, and notices built by core and routed by core as net's `NoticeWriter` does.

use super::glue::{self, Incoming};
use super::store::Write;
use super::{NoticeFacts, Waiter};
use crate::world::{Event, NodeKind, Owner, World};
use sluice_core::delivery::{DeliveryPath, Destination, Failure, RecipientResult};
use sluice_core::machine::Token;
use sluice_core::notice::{self, NoticeContext, NoticeRequest};
use sluice_core::queue::{Event as QueueEvent, Input as QueueInput, Output as QueueOutput};
use sluice_core::queue::{QueuedMessage, RecipientState};
use sluice_core::router::Route;
use sluice_core::smtp::address::{ForwardPath, Mailbox, ReversePath};
use sluice_core::smtp::client::{
    ClientConfig, Limits, MessageReport, OutgoingMessage, OutgoingRecipient, Protocol,
    RecipientOutcome, SessionOutcome,
};
use sluice_core::smtp::server::{ListenerKind, RecipientCheck};
use sluice_core::time::Duration;
use std::net::IpAddr;

/// The port LMTP destinations name; anything else is spoken to as SMTP.
const MX_PORT: u16 = 25;

/// One delivery attempt in flight.
#[derive(Debug)]
pub struct Attempt {
    token: Token,
    queue_id: String,
    message: OutgoingMessage,
    protocol: Protocol,
    tls: sluice_core::delivery::TlsPolicy,
    hosts: Vec<(String, IpAddr)>,
    next: usize,
    unresolved: Vec<OutgoingRecipient>,
    results: Vec<(String, RecipientResult)>,
    last_failure: Option<Failure>,
}

impl World {
    /// Carries out one queue output; inputs it answers at once come back. MIRRORS
    /// NET (`delivery::service::carry_out`).
    pub(crate) fn queue_output(&mut self, host: usize, output: QueueOutput) -> Vec<QueueInput> {
        match output {
            QueueOutput::StartAttempt {
                token,
                queue_id,
                destination,
                recipients,
            } => self.start_attempt(host, token, queue_id, destination, recipients),
            QueueOutput::Persist {
                token,
                queue_id,
                changes,
                notice,
                remove,
            } => {
                // The write that leaves every recipient final also removes the
                // message (net deletes it in the same transaction).
                let inputs = self.persist(host, token, queue_id.clone(), changes, notice);
                if remove {
                    self.remove_queued_message(host, queue_id);
                }
                inputs
            }
            QueueOutput::Remove { queue_id } => {
                self.remove_queued_message(host, queue_id);
                Vec::new()
            }
            QueueOutput::Refused { queue_id, reason } => {
                let name = self.place_name(host);
                self.engine
                    .record(&format!("{name} queue refused {queue_id}: {reason:?}"));
                Vec::new()
            }
            QueueOutput::Event(event) => self.queue_event(host, &event),
        }
    }

    fn queue_event(&mut self, host: usize, event: &QueueEvent) -> Vec<QueueInput> {
        let name = self.place_name(host);
        let at = self.engine.now();
        match event {
            QueueEvent::Deferred {
                queue_id,
                recipient,
                attempts,
                next_attempt,
                status,
            } => {
                self.engine.record(&format!(
                    "{name} deferred {queue_id} {recipient} #{attempts} {status} next {}",
                    next_attempt.as_millis()
                ));
                let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
                self.obs
                    .deferred(at, &name, queue_id, recipient, *next_attempt, epoch);
                if self.bugs.retry_early {
                    return vec![QueueInput::RetryNow {
                        queue_id: Some(queue_id.clone()),
                    }];
                }
            }
            QueueEvent::Expired {
                queue_id,
                recipient,
                status,
            } => {
                self.engine
                    .record(&format!("{name} expired {queue_id} {recipient} {status}"));
                let local = self.local_now(host);
                self.obs.expired(at, &name, queue_id, recipient, local);
            }
            QueueEvent::Delivered {
                queue_id,
                recipient,
                ..
            } => self
                .engine
                .record(&format!("{name} delivered {queue_id} {recipient}")),
            QueueEvent::Failed {
                queue_id,
                recipient,
                status,
            } => self
                .engine
                .record(&format!("{name} failed {queue_id} {recipient} {status}")),
            other => {
                let text = format!("{name} queue {other:?}");
                self.engine.record(&text);
            }
        }
        Vec::new()
    }

    fn start_attempt(
        &mut self,
        host: usize,
        token: Token,
        queue_id: String,
        destination: Destination,
        recipients: Vec<String>,
    ) -> Vec<QueueInput> {
        let name = self.place_name(host);
        let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
        let local = self.local_now(host);
        let at = self.engine.now();
        let Some(sluice) = self.sluice(host) else {
            return Vec::new();
        };
        let data = sluice
            .disk
            .durable
            .messages
            .get(&queue_id)
            .map(|message| message.data.clone());
        let record = sluice
            .queue
            .as_ref()
            .and_then(|queue| queue.message(&queue_id))
            .cloned();
        let (Some(data), Some(record)) = (data, record) else {
            let failure = Failure::local_error("the queued message cannot be read");
            let results = recipients
                .into_iter()
                .map(|recipient| (recipient, RecipientResult::Temporary(failure.clone())))
                .collect();
            return vec![QueueInput::AttemptFinished { token, results }];
        };
        let message = glue::outgoing(&record, &recipients, &data);
        let (protocol, port) = match &destination.path {
            DeliveryPath::Lmtp { port, .. } => (Protocol::Lmtp, *port),
            DeliveryPath::Relay { port, .. } => (Protocol::Smtp, *port),
            DeliveryPath::Mx { .. } | DeliveryPath::Local => (Protocol::Smtp, MX_PORT),
        };
        let _ = port;
        sluice.next_attempt += 1;
        let attempt_id = sluice.next_attempt;
        sluice.attempts.insert(
            attempt_id,
            Attempt {
                token,
                queue_id: queue_id.clone(),
                unresolved: message.recipients.clone(),
                message,
                protocol,
                tls: destination.tls,
                hosts: Vec::new(),
                next: 0,
                results: Vec::new(),
                last_failure: None,
            },
        );
        self.engine.record(&format!(
            "{name} attempt {attempt_id} {queue_id} -> {:?} for {}",
            destination.path,
            recipients.join(",")
        ));
        self.obs
            .attempt_started(at, &name, &queue_id, &recipients, local, epoch);
        // MIRRORS NET (`Deliverer::hosts`): the path to the hosts to try.
        let (plan, took) = match &destination.path {
            DeliveryPath::Mx { domain } => {
                let seed = self.engine.rng.next_u64();
                self.dns.host_plan(&mut self.engine.rng, domain, seed)
            }
            DeliveryPath::Lmtp { host: target, .. } | DeliveryPath::Relay { host: target, .. } => {
                let (answer, took) = self.dns.address_answer(&mut self.engine.rng, target);
                let plan = match answer {
                    sluice_core::delivery::mx::AddressAnswer::Addresses(addresses) => {
                        Ok(vec![(target.clone(), addresses)])
                    }
                    other => Err(Failure::no_connection(target, &format!("{other:?}"))),
                };
                (plan, took)
            }
            DeliveryPath::Local => (
                Err(Failure::local_error(
                    "local delivery is made when the message is accepted, not by the queue",
                )),
                Duration::ZERO,
            ),
        };
        self.engine.after(
            took,
            Event::Plan {
                host,
                epoch,
                attempt: attempt_id,
                plan,
            },
        );
        Vec::new()
    }

    fn attempt_mut(&mut self, host: usize, epoch: u32, attempt: u64) -> Option<&mut Attempt> {
        if self.nodes.get(host).is_none_or(|node| node.epoch != epoch) {
            return None;
        }
        self.sluice(host)?.attempts.get_mut(&attempt)
    }

    pub(crate) fn attempt_planned(
        &mut self,
        host: usize,
        epoch: u32,
        attempt_id: u64,
        plan: crate::world::dns::HostPlan,
    ) {
        let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
            return;
        };
        match plan {
            Ok(plan) => {
                attempt.hosts = plan
                    .into_iter()
                    .flat_map(|(name, addresses)| {
                        addresses
                            .into_iter()
                            .map(move |address| (name.clone(), address))
                    })
                    .collect();
            }
            Err(failure) => {
                let unresolved = std::mem::take(&mut attempt.unresolved);
                attempt
                    .results
                    .extend(unresolved.into_iter().map(|recipient| {
                        (
                            recipient.address,
                            RecipientResult::from_failure(failure.clone()),
                        )
                    }));
            }
        }
        self.attempt_next(host, epoch, attempt_id);
    }

    /// Connects to the next host of the plan, or finishes the attempt.
    fn attempt_next(&mut self, host: usize, epoch: u32, attempt_id: u64) {
        let hostname = match self.sluice(host) {
            Some(sluice) => sluice.hostname.clone(),
            None => return,
        };
        loop {
            let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
                return;
            };
            if attempt.unresolved.is_empty() || attempt.next >= attempt.hosts.len() {
                return self.attempt_finish(host, epoch, attempt_id);
            }
            let Some((name, address)) = attempt.hosts.get(attempt.next).cloned() else {
                return self.attempt_finish(host, epoch, attempt_id);
            };
            attempt.next += 1;
            let message = OutgoingMessage {
                recipients: attempt.unresolved.clone(),
                ..attempt.message.clone()
            };
            let config = ClientConfig {
                hostname: hostname.clone(),
                protocol: attempt.protocol,
                tls: attempt.tls,
                remote_host: name.clone(),
                limits: Limits::default(),
                auth: None,
            };
            let listener = match attempt.protocol {
                Protocol::Lmtp => ListenerKind::Lmtp,
                Protocol::Smtp => ListenerKind::Mx,
            };
            let server = self.nodes.iter().position(|node| node.ip == address);
            let Some(server) = server else {
                if let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) {
                    attempt.last_failure = Some(Failure::no_connection(
                        &name,
                        "no such host in the simulation",
                    ));
                }
                continue;
            };
            let owner = Owner::Attempt {
                host,
                epoch,
                attempt: attempt_id,
            };
            self.connect(owner, server, listener, config, message);
            return;
        }
    }

    /// MIRRORS NET (`Deliverer::attempt`): final outcomes are kept, unresolved
    /// recipients go on to the next host.
    pub(crate) fn attempt_report(
        &mut self,
        host: usize,
        epoch: u32,
        attempt_id: u64,
        _conn: u64,
        report: MessageReport,
    ) {
        let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
            return;
        };
        let mut still = Vec::new();
        let unresolved = std::mem::take(&mut attempt.unresolved);
        for (index, recipient) in unresolved.into_iter().enumerate() {
            match report.recipients.get(index) {
                Some(RecipientOutcome::Final(result)) => {
                    attempt.results.push((recipient.address, result.clone()));
                }
                Some(RecipientOutcome::Unresolved(failure)) => {
                    attempt.last_failure = Some(failure.clone());
                    still.push(recipient);
                }
                None => still.push(recipient),
            }
        }
        attempt.unresolved = still;
    }

    pub(crate) fn attempt_closed(
        &mut self,
        host: usize,
        epoch: u32,
        attempt_id: u64,
        outcome: Option<SessionOutcome>,
    ) {
        let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
            return;
        };
        match outcome {
            Some(SessionOutcome::Failed(failure) | SessionOutcome::RetryWithoutTls(failure)) => {
                attempt.last_failure = Some(failure.failure);
            }
            Some(SessionOutcome::Completed) | None => {}
        }
        self.attempt_next(host, epoch, attempt_id);
    }

    pub(crate) fn attempt_connect_failed(
        &mut self,
        host: usize,
        epoch: u32,
        attempt_id: u64,
        server_name: &str,
    ) {
        let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
            return;
        };
        attempt.last_failure = Some(Failure::no_connection(server_name, "connection timed out"));
        self.attempt_next(host, epoch, attempt_id);
    }

    fn attempt_finish(&mut self, host: usize, epoch: u32, attempt_id: u64) {
        if self.nodes.get(host).is_none_or(|node| node.epoch != epoch) {
            return;
        }
        let Some(attempt) = self
            .sluice(host)
            .and_then(|sluice| sluice.attempts.remove(&attempt_id))
        else {
            return;
        };
        let failure = attempt
            .last_failure
            .unwrap_or_else(|| Failure::local_error("no host could be tried for this destination"));
        let mut results = attempt.results;
        results.extend(attempt.unresolved.into_iter().map(|recipient| {
            (
                recipient.address,
                RecipientResult::Temporary(failure.clone()),
            )
        }));
        let name = self.place_name(host);
        self.engine.record(&format!(
            "{name} attempt {attempt_id} {} finished: {}",
            attempt.queue_id,
            results
                .iter()
                .map(|(address, result)| format!("{address}={}", result_word(result)))
                .collect::<Vec<_>>()
                .join(",")
        ));
        self.queue_input(
            host,
            QueueInput::AttemptFinished {
                token: attempt.token,
                results,
            },
        );
    }

    /// A queue write: recipient states and, in the same transaction, the notice.
    /// MIRRORS NET (`NoticeWriter::persist` + `Store::persist_queue`).
    fn remove_queued_message(&mut self, host: usize, queue_id: String) {
        let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
        let submitted = self
            .sluice(host)
            .map(|sluice| sluice.disk.submit(Write::Remove { queue_id }));
        if let Some(Ok(write)) = submitted {
            self.schedule_fsync(host, epoch, write);
        }
    }

    fn persist(
        &mut self,
        host: usize,
        token: Token,
        queue_id: String,
        mut changes: Vec<sluice_core::queue::RecipientChange>,
        notice: Option<NoticeRequest>,
    ) -> Vec<QueueInput> {
        let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
        let failed: Vec<String> = changes
            .iter()
            .filter(|change| matches!(change.state, RecipientState::Failed { .. }))
            .map(|change| change.address.clone())
            .collect();
        let mut dropped = Vec::new();
        if self.bugs.drop_deferred_recipient {
            dropped = changes
                .iter()
                .filter(|change| matches!(change.state, RecipientState::Deferred { .. }))
                .map(|change| change.address.clone())
                .collect();
            changes.retain(|change| !dropped.contains(&change.address));
        }
        let notice = if self.bugs.skip_notice { None } else { notice };
        let mut facts = None;
        let mut notice_write = None;
        if let Some(request) = notice {
            match self.build_notice(host, &queue_id, &request) {
                Ok(Some((incoming, queued))) => {
                    facts = Some(NoticeFacts {
                        kind: request.kind,
                        recipients: request
                            .recipients
                            .iter()
                            .map(|recipient| recipient.final_recipient.clone())
                            .collect(),
                        queued: queued.clone(),
                        notice_id: Some(incoming.queue_id.clone()),
                    });
                    notice_write = Some((incoming, queued));
                }
                Ok(None) => {}
                Err(()) => return vec![QueueInput::PersistFailed { token }],
            }
        }
        let Some(sluice) = self.sluice(host) else {
            return Vec::new();
        };
        let write = sluice.disk.submit(Write::Persist {
            queue_id: queue_id.clone(),
            changes,
            dropped,
            notice: notice_write,
        });
        let Ok(write) = write else {
            return vec![QueueInput::PersistFailed { token }];
        };
        sluice.waiters.insert(
            write,
            Waiter::Persist {
                token,
                queue_id,
                notice: facts,
                failed,
            },
        );
        self.schedule_fsync(host, epoch, write);
        Vec::new()
    }

    /// MIRRORS NET (`service::store_notice`): a notice no queue decision carries
    /// (the success notice at acceptance), written on its own after the message; a
    /// crash in between loses this notice, never the message.
    pub(crate) fn store_notice_alone(
        &mut self,
        host: usize,
        queue_id: &str,
        request: &NoticeRequest,
    ) {
        let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
        let Ok(Some((incoming, queued))) = self.build_notice(host, queue_id, request) else {
            return;
        };
        let facts = NoticeFacts {
            kind: request.kind,
            recipients: request
                .recipients
                .iter()
                .map(|recipient| recipient.final_recipient.clone())
                .collect(),
            queued: queued.clone(),
            notice_id: Some(incoming.queue_id.clone()),
        };
        let Some(sluice) = self.sluice(host) else {
            return;
        };
        let write = sluice.disk.submit(Write::Persist {
            queue_id: queue_id.to_owned(),
            changes: Vec::new(),
            dropped: Vec::new(),
            notice: Some((incoming, queued)),
        });
        let Ok(write) = write else {
            return;
        };
        sluice.waiters.insert(
            write,
            Waiter::Notice {
                queue_id: queue_id.to_owned(),
                notice: facts,
            },
        );
        self.schedule_fsync(host, epoch, write);
    }

    /// MIRRORS NET (`NoticeWriter::build`): core builds the notice from the
    /// original, core's router routes its one recipient, and it is placed like any
    /// accepted message. `Ok(None)`: its recipient is refused for good, so it is
    /// dropped; `Err`: it cannot be routed now (the write is retried).
    fn build_notice(
        &mut self,
        host: usize,
        queue_id: &str,
        request: &NoticeRequest,
    ) -> Result<Option<(Incoming, Option<QueuedMessage>)>, ()> {
        let name = self.place_name(host);
        let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
        let now = self.local_now(host);
        let Some(NodeKind::Sluice(sluice)) = self.nodes.get_mut(host).map(|node| &mut node.kind)
        else {
            return Err(());
        };
        let original = sluice
            .disk
            .durable
            .messages
            .get(queue_id)
            .map(|message| message.data.clone())
            .ok_or(())?;
        let notice_id = sluice.new_queue_id(&name, epoch);
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        let context = NoticeContext::new(
            sluice.hostname.as_str(),
            format!("{notice_id}.notice@{}", sluice.hostname.as_str()),
            now_ms.div_euclid(1000),
        );
        let built = notice::build(request, &original, &context).map_err(|_| ())?;
        let Ok(mailbox) = Mailbox::parse(&built.recipient) else {
            return Ok(None);
        };
        let recipient = ForwardPath::Mailbox(mailbox);
        let check = RecipientCheck {
            reverse_path: ReversePath::Null,
            recipient: recipient.clone(),
            authenticated: Some(String::from("MAILER-DAEMON")),
        };
        let route = sluice.route(now, &check);
        match route {
            Route::Deliver { .. } => {}
            Route::Refused(_) => return Ok(None),
            Route::TemporaryFailure(_) => return Err(()),
        }
        let incoming = glue::notice_message(
            notice_id,
            &recipient,
            &route,
            &sluice.placement,
            now_ms,
            built.data,
            built.smtputf8,
        );
        Ok(incoming.map(|incoming| {
            let queued = glue::queued(&incoming);
            (incoming, queued)
        }))
    }
}

fn result_word(result: &RecipientResult) -> String {
    match result {
        RecipientResult::Delivered { .. } => "delivered".to_owned(),
        RecipientResult::Temporary(failure) => format!("temporary {}", failure.status),
        RecipientResult::Permanent(failure) => format!("permanent {}", failure.status),
    }
}
