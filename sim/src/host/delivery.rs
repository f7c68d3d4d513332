//! The delivery side of a Sluice host: the queue's outputs carried out as net's
//! delivery service does (attempts, durable writes with their notices, removals),
//! each attempt following core's walk (`delivery::walk`) over the hosts DNS gave,
//! and notices built, checked and placed by core (`node::notices`) with the host's
//! router answering the one lookup.

use super::io::HostIo;
use super::store::Write;
use super::{NoticeFacts, SluiceHost, Waiter};
use sluice_core::delivery::hosts::{HostQuery, mx_hosts};
use sluice_core::delivery::mx::AddressAnswer;
use sluice_core::delivery::walk::{PlannedHost, Tried, Walk};
use sluice_core::delivery::{DeliveryPath, Destination, Failure, RecipientResult, TlsPolicy};
use sluice_core::machine::{Machine, Token};
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

impl SluiceHost {
    /// A tick of the queue's timer (its deadline, or the host's clock jumped).
    pub fn queue_tick(&mut self, io: &mut dyn HostIo) {
        self.queue_input(io, QueueInput::Tick);
    }

    /// Feeds the host's queue and carries out everything it asks (net's
    /// `delivery::service::run` / `carry_out`); the queue decides, this only drives.
    /// A host that is down has no queue, and hears nothing.
    pub(crate) fn queue_input(&mut self, io: &mut dyn HostIo, input: QueueInput) {
        let mut inputs = std::collections::VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = io.local_now();
            let Some(mut queue) = self.queue.take() else {
                return;
            };
            queue.handle(now, input);
            let mut outputs = Vec::new();
            while let Some(output) = queue.poll() {
                outputs.push(output);
            }
            let deadline = queue.next_deadline();
            self.queue = Some(queue);
            for output in outputs {
                inputs.extend(self.queue_output(io, output));
            }
            io.wake_queue(deadline);
        }
    }

    /// Carries out one queue output; inputs it answers at once come back (net's
    /// `delivery::service::carry_out`).
    fn queue_output(&mut self, io: &mut dyn HostIo, output: QueueOutput) -> Vec<QueueInput> {
        match output {
            QueueOutput::StartAttempt {
                token,
                queue_id,
                destination,
                recipients,
            } => self.start_attempt(io, token, queue_id, destination, recipients),
            QueueOutput::Persist {
                token,
                queue_id,
                changes,
                notice,
                remove,
            } => {
                // The write that leaves every recipient final also removes the
                // message, atomically (net deletes it in the same transaction).
                self.persist(io, token, queue_id, changes, notice, remove)
            }
            QueueOutput::Remove { queue_id } => {
                self.remove_queued_message(io, queue_id);
                Vec::new()
            }
            QueueOutput::Refused { queue_id, reason } => {
                let text = format!("{} queue refused {queue_id}: {reason:?}", io.name());
                io.record(&text);
                Vec::new()
            }
            QueueOutput::Event(event) => self.queue_event(io, &event),
        }
    }

    fn queue_event(&mut self, io: &mut dyn HostIo, event: &QueueEvent) -> Vec<QueueInput> {
        let name = io.name().to_owned();
        let at = io.now();
        match event {
            QueueEvent::Deferred {
                queue_id,
                recipient,
                attempts,
                next_attempt,
                status,
            } => {
                io.record(&format!(
                    "{name} deferred {queue_id} {recipient} #{attempts} {status} next {}",
                    next_attempt.as_millis()
                ));
                let epoch = io.epoch();
                let learned = io.local_now();
                io.obs().deferred(
                    at,
                    &name,
                    queue_id,
                    recipient,
                    learned,
                    *next_attempt,
                    epoch,
                );
                if io.bugs().retry_early {
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
                io.record(&format!("{name} expired {queue_id} {recipient} {status}"));
                let local = io.local_now();
                io.obs().expired(at, &name, queue_id, recipient, local);
            }
            QueueEvent::Delivered {
                queue_id,
                recipient,
                ..
            } => io.record(&format!("{name} delivered {queue_id} {recipient}")),
            QueueEvent::Failed {
                queue_id,
                recipient,
                status,
            } => io.record(&format!("{name} failed {queue_id} {recipient} {status}")),
            QueueEvent::Ambiguous {
                queue_id,
                recipient,
                remote_mta,
            } => {
                let remote = remote_mta.as_deref().unwrap_or("-");
                io.record(&format!(
                    "{name} ambiguous {queue_id} {recipient} at {remote}: lost after the end of data"
                ));
                // The message's workload name, read from the body on the host's disk
                // (a notice has no stored tag of its own).
                let tag = self
                    .disk
                    .durable
                    .messages
                    .get(queue_id)
                    .and_then(|message| crate::check::message_tag(&message.data));
                io.obs()
                    .ambiguous(at, &name, queue_id, tag, recipient, remote_mta.clone());
            }
            QueueEvent::AttemptTimedOut { queue_id, token } => {
                io.record(&format!(
                    "{name} attempt {token:?} for {queue_id} unanswered by its deadline"
                ));
                io.obs()
                    .unanswered_attempts
                    .push((name.clone(), queue_id.clone()));
            }
            other => {
                let text = format!("{name} queue {other:?}");
                io.record(&text);
            }
        }
        Vec::new()
    }

    fn start_attempt(
        &mut self,
        io: &mut dyn HostIo,
        token: Token,
        queue_id: String,
        destination: Destination,
        recipients: Vec<String>,
    ) -> Vec<QueueInput> {
        let name = io.name().to_owned();
        let epoch = io.epoch();
        let local = io.local_now();
        let at = io.now();
        let alter_after_signing = io.bugs().dkim_alter_after_signing;
        let body = self
            .disk
            .durable
            .messages
            .get(&queue_id)
            .map(|message| (message.data.clone(), message.smtputf8));
        let record = self
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
            &self.dkim,
            &mut message,
            &destination,
            local,
            alter_after_signing,
        );
        self.next_attempt += 1;
        let attempt_id = self.next_attempt;
        self.attempts.insert(
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
        io.record(&format!(
            "{name} attempt {attempt_id} {queue_id} -> {:?} for {}{}",
            destination.path,
            recipients.join(","),
            signing.unwrap_or_default()
        ));
        io.obs()
            .attempt_started(at, &name, &queue_id, &recipients, local, epoch);
        // I/O, not a decision (net's `Deliverer::hosts`): core says which lookup the
        // path needs and builds the hosts from the answer.
        let (plan, took) = match HostQuery::for_path(&destination.path) {
            Ok(HostQuery::Mx { domain }) => {
                let seed = io.rng().next_u64();
                let (plan, took) = io.host_plan(&domain, seed);
                (plan.map(|plan| mx_hosts(plan, MX_PORT)), took)
            }
            Ok(HostQuery::Named(named)) => {
                let (answer, took) = io.address_answer(&named.name);
                let addresses = match answer {
                    AddressAnswer::Addresses(addresses) => Ok(addresses),
                    other => Err(format!("{other:?}")),
                };
                (named.resolved(addresses), took)
            }
            Err(failure) => (Err(failure), Duration::ZERO),
        };
        io.plan_after(took, attempt_id, plan);
        Vec::new()
    }

    /// DNS answered attempt `attempt_id`'s lookups: core's walk starts over the
    /// hosts it gave.
    pub fn attempt_planned(
        &mut self,
        io: &mut dyn HostIo,
        attempt_id: u64,
        plan: Result<Vec<PlannedHost>, Failure>,
    ) {
        let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
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
        self.attempt_next(io, attempt_id);
    }

    /// Connects where core's walk says next (on an idle pooled connection unless
    /// the walk wants a fresh one), or finishes the attempt.
    fn attempt_next(&mut self, io: &mut dyn HostIo, attempt_id: u64) {
        let hostname = self.hostname.clone();
        let idle_timeout = self.pool.idle_timeout;
        // The credentials of the attempt's path (net's `Deliverer::attempt`): core
        // says which, for a relay that requires AUTH; none on any other path.
        let auth = self.attempts.get(&attempt_id).and_then(|attempt| {
            self.relay_credentials
                .for_path(&attempt.destination.path)
                .or(self.leaked_credentials.as_ref())
                .cloned()
        });
        loop {
            let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
                return;
            };
            let Some(next) = attempt.walk.as_ref().and_then(Walk::next_try) else {
                return self.attempt_finish(io, attempt_id);
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
            if next.fresh {
                let text = format!(
                    "{} attempt {attempt_id} fresh connection to {} after a stale pooled one",
                    io.name(),
                    next.address
                );
                io.record(&text);
            } else if self.reuse_pooled(io, attempt_id, &key, &message) {
                return;
            }
            if let Some(attempt) = self.attempts.get_mut(&attempt_id) {
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
            if io.connect(attempt_id, next.address.ip(), listener, config, message) {
                return;
            }
            let failure = Failure::no_connection(&next.name, "no such host in the simulation");
            if let Some(walk) = self
                .attempts
                .get_mut(&attempt_id)
                .and_then(|attempt| attempt.walk.as_mut())
            {
                walk.tried(Tried::NoConnection(failure));
            }
        }
    }

    /// Gives `message` to an idle connection of the pool for `key`, if one takes it.
    fn reuse_pooled(
        &mut self,
        io: &mut dyn HostIo,
        attempt_id: u64,
        key: &PoolKey,
        message: &OutgoingMessage,
    ) -> bool {
        while let Some(conn) = self.pool.take(key) {
            if let Some(attempt) = self.attempts.get_mut(&attempt_id) {
                attempt.current = Some(Current {
                    key: key.clone(),
                    reused: true,
                });
            }
            if io.reuse(conn, attempt_id, message.clone()) {
                return true;
            }
        }
        false
    }

    /// The try's connection finished its message and is alive: it goes to the pool,
    /// and the walk hears that the session goes on (as net's driver reports it).
    pub fn attempt_idle(&mut self, io: &mut dyn HostIo, attempt_id: u64, conn: u64) {
        let current = self
            .attempts
            .get(&attempt_id)
            .and_then(|attempt| attempt.current.clone());
        if let Some(current) = current {
            self.pool.park(current.key, conn);
            io.park(conn);
        }
        self.attempt_closed(io, attempt_id, None);
    }

    /// A pooled connection closed (its idle timeout, or the remote went away).
    pub fn pooled_closed(&mut self, conn: u64) {
        self.pool.forget(conn);
    }

    /// The session's report, kept until the session closes (core's walk takes both
    /// together).
    pub fn attempt_report(&mut self, attempt_id: u64, report: MessageReport) {
        if let Some(attempt) = self.attempts.get_mut(&attempt_id) {
            attempt.outcomes = report.recipients;
            attempt.progress = report.progress;
        }
    }

    /// The try's session closed (`None`: it went idle into the pool).
    pub fn attempt_closed(
        &mut self,
        io: &mut dyn HostIo,
        attempt_id: u64,
        outcome: Option<SessionOutcome>,
    ) {
        let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
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
        self.attempt_next(io, attempt_id);
    }

    /// The try's connection to `server_name` could not be made.
    pub fn attempt_connect_failed(
        &mut self,
        io: &mut dyn HostIo,
        attempt_id: u64,
        server_name: &str,
    ) {
        let Some(walk) = self
            .attempts
            .get_mut(&attempt_id)
            .and_then(|attempt| attempt.walk.as_mut())
        else {
            return;
        };
        let failure = Failure::no_connection(server_name, "connection timed out");
        walk.tried(Tried::NoConnection(failure));
        self.attempt_next(io, attempt_id);
    }

    fn attempt_finish(&mut self, io: &mut dyn HostIo, attempt_id: u64) {
        let Some(attempt) = self.attempts.remove(&attempt_id) else {
            return;
        };
        let bugs = io.bugs();
        let mut results = match (attempt.walk, attempt.unplanned) {
            (Some(walk), _) => walk.finish(),
            (None, Some(results)) => results,
            (None, None) => Walk::without_hosts(
                &attempt.message.recipients,
                &Failure::local_error("no host could be tried for this destination"),
            ),
        };
        if bugs.forget_remote_acceptance
            && matches!(attempt.destination.path, DeliveryPath::Mx { .. })
        {
            for (_, result) in &mut results {
                if matches!(result, RecipientResult::Delivered { .. }) {
                    *result = RecipientResult::Temporary(Failure::local_error("forgotten"));
                }
            }
        }
        let name = io.name().to_owned();
        if bugs.drop_attempt_report {
            io.record(&format!(
                "{name} attempt {attempt_id} {} finished: report dropped (bug)",
                attempt.queue_id
            ));
            return;
        }
        io.record(&format!(
            "{name} attempt {attempt_id} {} finished: {}",
            attempt.queue_id,
            results
                .iter()
                .map(|(address, result)| format!("{address}={}", result_word(result)))
                .collect::<Vec<_>>()
                .join(",")
        ));
        self.queue_input(
            io,
            QueueInput::AttemptFinished {
                token: attempt.token,
                results,
            },
        );
    }

    /// I/O: removes a finished message from the simulated disk.
    fn remove_queued_message(&mut self, io: &mut dyn HostIo, queue_id: String) {
        if let Ok(write) = self.disk.submit(Write::Remove { queue_id }) {
            io.fsync(write);
        }
    }

    /// A queue write: recipient states and, in the same transaction, the notice.
    /// I/O (net's `NoticeWriter::persist` + `Store::persist_queue`); the deliberate
    /// bugs that lose a notice or a recipient act here, in the driver.
    fn persist(
        &mut self,
        io: &mut dyn HostIo,
        token: Token,
        queue_id: String,
        mut changes: Vec<sluice_core::queue::RecipientChange>,
        notice: Option<NoticeRequest>,
        remove: bool,
    ) -> Vec<QueueInput> {
        let bugs = io.bugs();
        let failed: Vec<String> = changes
            .iter()
            .filter(|change| matches!(change.state, RecipientState::Failed { .. }))
            .map(|change| change.address.clone())
            .collect();
        let mut dropped = Vec::new();
        if bugs.drop_deferred_recipient {
            dropped = changes
                .iter()
                .filter(|change| matches!(change.state, RecipientState::Deferred { .. }))
                .map(|change| change.address.clone())
                .collect();
            changes.retain(|change| !dropped.contains(&change.address));
        }
        let notice = if bugs.skip_notice { None } else { notice };
        let mut facts = None;
        let mut notice_write = None;
        if let Some(request) = notice {
            match self.build_notice(io, &queue_id, &request) {
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
        let write = self.disk.submit(Write::Persist {
            queue_id: queue_id.clone(),
            changes,
            dropped,
            notice: notice_write,
            remove,
        });
        let Ok(write) = write else {
            return vec![QueueInput::PersistFailed { token }];
        };
        self.waiters.insert(
            write,
            Waiter::Persist {
                token,
                queue_id,
                notice: facts,
                failed,
            },
        );
        io.fsync(write);
        Vec::new()
    }

    /// Core builds the notice, its recipient is routed by core's router against the
    /// host's directory, and core places it (net's `NoticeWriter::build` does the
    /// same). `Ok(None)`: no notice to store (dropped by core); `Err`: it cannot be
    /// routed now (the write fails and is retried).
    fn build_notice(
        &mut self,
        io: &dyn HostIo,
        queue_id: &str,
        request: &NoticeRequest,
    ) -> Result<Option<(IncomingMessage, Option<QueuedMessage>)>, ()> {
        let now = io.local_now();
        let original = self
            .disk
            .durable
            .messages
            .get(queue_id)
            .map(|message| message.data.clone())
            .ok_or(())?;
        let notice_id = self.new_queue_id(io.name(), io.epoch());
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        let pending = match start_notice(request, &original, &self.notices, notice_id, now_ms) {
            Ok(NoticeStart::Route(pending)) => pending,
            Ok(NoticeStart::NotAnAddress { .. }) => return Ok(None),
            Err(_) => return Err(()),
        };
        let route = self.route(now, &pending.check);
        match pending.place(&route, &self.placement) {
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
