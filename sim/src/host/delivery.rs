//! The delivery side of a Sluice host: the queue's outputs carried out as net's
//! delivery service does (attempts, durable writes with their notices, removals),
//! each attempt following core's walk (`delivery::walk`) over the hosts DNS gave,
//! and notices built, checked and placed by core (`node::notices`) with the host's
//! router answering the one lookup.

use super::store::Write;
use super::{NoticeFacts, Waiter};
use crate::world::{Event, NodeKind, Owner, World};
use sluice_core::delivery::hosts::{HostQuery, mx_hosts};
use sluice_core::delivery::mx::AddressAnswer;
use sluice_core::delivery::walk::{PlannedHost, Tried, Walk};
use sluice_core::delivery::{DeliveryPath, Destination, Failure, RecipientResult, TlsPolicy};
use sluice_core::machine::Token;
use sluice_core::node::{Envelope, IncomingMessage, NoticePlaced, NoticeStart, start_notice};
use sluice_core::notice::NoticeRequest;
use sluice_core::queue::{Event as QueueEvent, Input as QueueInput, Output as QueueOutput};
use sluice_core::queue::{QueuedMessage, RecipientState};
use sluice_core::smtp::client::{
    ClientAuth, ClientConfig, Limits, MessageReport, OutgoingMessage, Protocol, RecipientOutcome,
    SessionOutcome, TransactionProgress,
};
use sluice_core::smtp::server::ListenerKind;
use sluice_core::time::Duration;
use std::collections::BTreeMap;

/// The port LMTP destinations name; anything else is spoken to as SMTP.
const MX_PORT: u16 = 25;

/// Idle delivery connections by destination (net's `delivery::connection::Pool`):
/// a later attempt to the same address, protocol, TLS policy, host name and
/// credentials takes one instead of connecting, unless core's walk asks for a fresh
/// connection.
#[derive(Debug)]
pub struct Pool {
    idle: BTreeMap<PoolKey, Vec<u64>>,
    /// How long an idle connection waits for the next message before QUIT (the
    /// client session's idle timeout; net's pool waits 5 seconds).
    pub idle_timeout: Duration,
}

/// Which connections may carry an attempt's message (net's `PoolKey`): an
/// unauthenticated connection must never carry a relay's mail, nor one relay
/// account another's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PoolKey {
    address: std::net::SocketAddr,
    host: String,
    lmtp: bool,
    tls: TlsPolicy,
    auth: Option<ClientAuth>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            idle: BTreeMap::new(),
            idle_timeout: Duration::from_secs(5),
        }
    }
}

impl Pool {
    fn park(&mut self, key: PoolKey, conn: u64) {
        self.idle.entry(key).or_default().push(conn);
    }

    fn take(&mut self, key: &PoolKey) -> Option<u64> {
        let idle = self.idle.get_mut(key)?;
        let conn = idle.pop();
        if idle.is_empty() {
            self.idle.remove(key);
        }
        conn
    }

    fn forget(&mut self, conn: u64) {
        self.idle.retain(|_, idle| {
            idle.retain(|parked| *parked != conn);
            !idle.is_empty()
        });
    }

    pub fn clear(&mut self) {
        self.idle.clear();
    }
}

/// The connection an attempt's current try runs on.
#[derive(Clone, Debug)]
struct Current {
    key: PoolKey,
    reused: bool,
}

/// One delivery attempt in flight.
#[derive(Debug)]
pub struct Attempt {
    token: Token,
    queue_id: String,
    message: OutgoingMessage,
    destination: Destination,
    /// Core's walk, once DNS has answered; the results when it could not.
    walk: Option<Walk>,
    unplanned: Option<Vec<(String, RecipientResult)>>,
    /// The report of the session in progress, kept until it closes.
    outcomes: Vec<RecipientOutcome>,
    /// How far that report's transaction got.
    progress: TransactionProgress,
    /// The connection of the try in progress.
    current: Option<Current>,
}

impl World {
    /// Carries out one queue output; inputs it answers at once come back (net's
    /// `delivery::service::carry_out`).
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
                // message, atomically (net deletes it in the same transaction).
                self.persist(host, token, queue_id, changes, notice, remove)
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
                let learned = self.local_now(host);
                self.obs.deferred(
                    at,
                    &name,
                    queue_id,
                    recipient,
                    learned,
                    *next_attempt,
                    epoch,
                );
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
            QueueEvent::Ambiguous {
                queue_id,
                recipient,
                remote_mta,
            } => {
                let remote = remote_mta.as_deref().unwrap_or("-");
                self.engine.record(&format!(
                    "{name} ambiguous {queue_id} {recipient} at {remote}: lost after the end of data"
                ));
                // The message's workload name, read from the body on the host's disk
                // (a notice has no stored tag of its own).
                let tag = self
                    .sluice(host)
                    .and_then(|sluice| sluice.disk.durable.messages.get(queue_id))
                    .and_then(|message| crate::check::message_tag(&message.data));
                self.obs
                    .ambiguous(at, &name, queue_id, tag, recipient, remote_mta.clone());
            }
            QueueEvent::AttemptTimedOut { queue_id, token } => {
                self.engine.record(&format!(
                    "{name} attempt {token:?} for {queue_id} unanswered by its deadline"
                ));
                self.obs
                    .unanswered_attempts
                    .push((name.clone(), queue_id.clone()));
            }
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
        let alter_after_signing = self.bugs.dkim_alter_after_signing;
        let Some(sluice) = self.sluice(host) else {
            return Vec::new();
        };
        let body = sluice
            .disk
            .durable
            .messages
            .get(&queue_id)
            .map(|message| (message.data.clone(), message.smtputf8));
        let record = sluice
            .queue
            .as_ref()
            .and_then(|queue| queue.message(&queue_id))
            .map(|record| Envelope::of(record, &recipients));
        let (Some((data, smtputf8)), Some(envelope)) = (body, record) else {
            let failure = Failure::local_error("the queued message cannot be read");
            let results = recipients
                .into_iter()
                .map(|recipient| (recipient, RecipientResult::Temporary(failure.clone())))
                .collect();
            return vec![QueueInput::AttemptFinished { token, results }];
        };
        let mut message = envelope.into_outgoing(queue_id.clone(), data, smtputf8);
        let signing = super::signing::sign_for_attempt(
            &sluice.dkim,
            &mut message,
            &destination,
            local,
            alter_after_signing,
        );
        sluice.next_attempt += 1;
        let attempt_id = sluice.next_attempt;
        sluice.attempts.insert(
            attempt_id,
            Attempt {
                token,
                queue_id: queue_id.clone(),
                message,
                destination: destination.clone(),
                walk: None,
                unplanned: None,
                outcomes: Vec::new(),
                progress: TransactionProgress::NotStarted,
                current: None,
            },
        );
        self.engine.record(&format!(
            "{name} attempt {attempt_id} {queue_id} -> {:?} for {}{}",
            destination.path,
            recipients.join(","),
            signing.unwrap_or_default()
        ));
        self.obs
            .attempt_started(at, &name, &queue_id, &recipients, local, epoch);
        // I/O, not a decision (net's `Deliverer::hosts`): core says which lookup the
        // path needs and builds the hosts from the answer.
        let (plan, took) = match HostQuery::for_path(&destination.path) {
            Ok(HostQuery::Mx { domain }) => {
                let seed = self.engine.rng.next_u64();
                let (plan, took) = self.dns.host_plan(&mut self.engine.rng, &domain, seed);
                (plan.map(|plan| mx_hosts(plan, MX_PORT)), took)
            }
            Ok(HostQuery::Named(named)) => {
                let (answer, took) = self.dns.address_answer(&mut self.engine.rng, &named.name);
                let addresses = match answer {
                    AddressAnswer::Addresses(addresses) => Ok(addresses),
                    other => Err(format!("{other:?}")),
                };
                (named.resolved(addresses), took)
            }
            Err(failure) => (Err(failure), Duration::ZERO),
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
        plan: Result<Vec<PlannedHost>, Failure>,
    ) {
        let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
            return;
        };
        match plan {
            Ok(hosts) => {
                let recipients = attempt.message.recipients.clone();
                attempt.walk = Some(Walk::new(recipients, attempt.destination.tls, hosts));
            }
            Err(failure) => {
                let results = Walk::without_hosts(&attempt.message.recipients, &failure);
                attempt.unplanned = Some(results);
            }
        }
        self.attempt_next(host, epoch, attempt_id);
    }

    /// Connects where core's walk says next (on an idle pooled connection unless
    /// the walk wants a fresh one), or finishes the attempt.
    fn attempt_next(&mut self, host: usize, epoch: u32, attempt_id: u64) {
        let (hostname, idle_timeout) = match self.sluice(host) {
            Some(sluice) => (sluice.hostname.clone(), sluice.pool.idle_timeout),
            None => return,
        };
        // The credentials of the attempt's path (net's `Deliverer::attempt`): core
        // says which, for a relay that requires AUTH; none on any other path.
        let auth = self.sluice(host).and_then(|sluice| {
            let attempt = sluice.attempts.get(&attempt_id)?;
            sluice
                .relay_credentials
                .for_path(&attempt.destination.path)
                .or(sluice.leaked_credentials.as_ref())
                .cloned()
        });
        loop {
            let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) else {
                return;
            };
            let Some(next) = attempt.walk.as_ref().and_then(Walk::next_try) else {
                return self.attempt_finish(host, epoch, attempt_id);
            };
            attempt.outcomes.clear();
            attempt.progress = TransactionProgress::NotStarted;
            let message = OutgoingMessage {
                recipients: next.recipients,
                ..attempt.message.clone()
            };
            let key = PoolKey {
                address: next.address,
                host: next.name.clone(),
                lmtp: next.protocol == Protocol::Lmtp,
                tls: next.tls,
                auth: auth.clone(),
            };
            let owner = Owner::Attempt {
                host,
                epoch,
                attempt: attempt_id,
            };
            if next.fresh {
                let name = self.place_name(host);
                self.engine.record(&format!(
                    "{name} attempt {attempt_id} fresh connection to {} after a stale pooled one",
                    next.address
                ));
            } else if self.reuse_pooled(host, epoch, &key, owner, &message) {
                return;
            }
            if let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) {
                attempt.current = Some(Current { key, reused: false });
            }
            let config = ClientConfig {
                hostname: hostname.clone(),
                protocol: next.protocol,
                tls: next.tls,
                remote_host: next.name.clone(),
                limits: Limits {
                    idle_timeout,
                    ..Limits::default()
                },
                auth: auth.clone(),
            };
            let listener = match next.protocol {
                Protocol::Lmtp => ListenerKind::Lmtp,
                Protocol::Smtp => ListenerKind::Mx,
            };
            let address = next.address.ip();
            let Some(server) = self.nodes.iter().position(|node| node.ip == address) else {
                let failure = Failure::no_connection(&next.name, "no such host in the simulation");
                if let Some(walk) = self
                    .attempt_mut(host, epoch, attempt_id)
                    .and_then(|attempt| attempt.walk.as_mut())
                {
                    walk.tried(Tried::NoConnection(failure));
                }
                continue;
            };
            self.connect(owner, server, listener, config, message);
            return;
        }
    }

    /// Gives `message` to an idle connection of the pool for `key`, if one takes it.
    fn reuse_pooled(
        &mut self,
        host: usize,
        epoch: u32,
        key: &PoolKey,
        owner: Owner,
        message: &OutgoingMessage,
    ) -> bool {
        let Owner::Attempt {
            attempt: attempt_id,
            ..
        } = owner
        else {
            return false;
        };
        loop {
            let Some(conn) = self.sluice(host).and_then(|sluice| sluice.pool.take(key)) else {
                return false;
            };
            let parked_here = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.owner == Owner::Pooled { host, epoch });
            if !parked_here {
                continue;
            }
            if let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) {
                attempt.current = Some(Current {
                    key: key.clone(),
                    reused: true,
                });
            }
            if self.reuse(conn, owner, message.clone()) {
                return true;
            }
        }
    }

    /// The try's connection finished its message and is alive: it goes to the pool,
    /// and the walk hears that the session goes on (as net's driver reports it).
    pub(crate) fn attempt_idle(&mut self, host: usize, epoch: u32, attempt_id: u64, conn: u64) {
        let current = self
            .attempt_mut(host, epoch, attempt_id)
            .and_then(|attempt| attempt.current.clone());
        if let Some(current) = current
            && let Some(sluice) = self.sluice(host)
        {
            sluice.pool.park(current.key, conn);
            self.set_owner(conn, Owner::Pooled { host, epoch });
        }
        self.attempt_closed(host, epoch, attempt_id, None);
    }

    /// A pooled connection closed (its idle timeout, or the remote went away).
    pub(crate) fn pooled_closed(&mut self, host: usize, conn: u64) {
        if let Some(sluice) = self.sluice(host) {
            sluice.pool.forget(conn);
        }
    }

    /// The session's report, kept until the session closes (core's walk takes both
    /// together).
    pub(crate) fn attempt_report(
        &mut self,
        host: usize,
        epoch: u32,
        attempt_id: u64,
        _conn: u64,
        report: MessageReport,
    ) {
        if let Some(attempt) = self.attempt_mut(host, epoch, attempt_id) {
            attempt.outcomes = report.recipients;
            attempt.progress = report.progress;
        }
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
        let outcomes = std::mem::take(&mut attempt.outcomes);
        let progress = std::mem::take(&mut attempt.progress);
        let reused = attempt.current.take().is_some_and(|current| current.reused);
        if let Some(walk) = attempt.walk.as_mut() {
            walk.tried(Tried::Session {
                outcomes,
                ended: outcome,
                progress,
                reused,
            });
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
        let Some(walk) = self
            .attempt_mut(host, epoch, attempt_id)
            .and_then(|attempt| attempt.walk.as_mut())
        else {
            return;
        };
        let failure = Failure::no_connection(server_name, "connection timed out");
        walk.tried(Tried::NoConnection(failure));
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
        let mut results = match (attempt.walk, attempt.unplanned) {
            (Some(walk), _) => walk.finish(),
            (None, Some(results)) => results,
            (None, None) => Walk::without_hosts(
                &attempt.message.recipients,
                &Failure::local_error("no host could be tried for this destination"),
            ),
        };
        if self.bugs.forget_remote_acceptance
            && matches!(attempt.destination.path, DeliveryPath::Mx { .. })
        {
            for (_, result) in &mut results {
                if matches!(result, RecipientResult::Delivered { .. }) {
                    *result = RecipientResult::Temporary(Failure::local_error("forgotten"));
                }
            }
        }
        let name = self.place_name(host);
        if self.bugs.drop_attempt_report {
            self.engine.record(&format!(
                "{name} attempt {attempt_id} {} finished: report dropped (bug)",
                attempt.queue_id
            ));
            return;
        }
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
    /// I/O: removes a finished message from the simulated disk.
    fn remove_queued_message(&mut self, host: usize, queue_id: String) {
        let epoch = self.nodes.get(host).map_or(0, |node| node.epoch);
        let submitted = self
            .sluice(host)
            .map(|sluice| sluice.disk.submit(Write::Remove { queue_id }));
        if let Some(Ok(write)) = submitted {
            self.schedule_fsync(host, epoch, write);
        }
    }

    /// A queue write: recipient states and, in the same transaction, the notice.
    /// I/O (net's `NoticeWriter::persist` + `Store::persist_queue`); the deliberate
    /// bugs that lose a notice or a recipient act here, in the driver.
    fn persist(
        &mut self,
        host: usize,
        token: Token,
        queue_id: String,
        mut changes: Vec<sluice_core::queue::RecipientChange>,
        notice: Option<NoticeRequest>,
        remove: bool,
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
            remove,
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

    /// Core builds the notice, its recipient is routed by core's router against the
    /// host's directory, and core places it (net's `NoticeWriter::build` does the
    /// same). `Ok(None)`: no notice to store (dropped by core); `Err`: it cannot be
    /// routed now (the write fails and is retried).
    fn build_notice(
        &mut self,
        host: usize,
        queue_id: &str,
        request: &NoticeRequest,
    ) -> Result<Option<(IncomingMessage, Option<QueuedMessage>)>, ()> {
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
        let pending = match start_notice(request, &original, &sluice.notices, notice_id, now_ms) {
            Ok(NoticeStart::Route(pending)) => pending,
            Ok(NoticeStart::NotAnAddress { .. }) => return Ok(None),
            Err(_) => return Err(()),
        };
        let route = sluice.route(now, &pending.check);
        match pending.place(&route, &sluice.placement) {
            NoticePlaced::Message(incoming) => {
                let queued = sluice_core::node::queued_part(&incoming);
                Ok(Some((incoming, queued)))
            }
            NoticePlaced::Dropped(_) => Ok(None),
            NoticePlaced::NotNow(_) => Err(()),
        }
    }
}

fn result_word(result: &RecipientResult) -> String {
    match result {
        RecipientResult::Delivered { .. } => "delivered".to_owned(),
        RecipientResult::Temporary(failure) => format!("temporary {}", failure.status),
        RecipientResult::Ambiguous(failure) => format!("ambiguous {}", failure.status),
        RecipientResult::Permanent(failure) => format!("permanent {}", failure.status),
    }
}
