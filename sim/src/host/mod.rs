//! A simulated Sluice host (role gateway, backend or all): per connection core's
//! reception (`node::Reception`: session, routes, the accepted message's record)
//! with core's router against the host's directory, each acceptance made durable
//! on the simulated disk before the machine is told, core's queue driven as net's
//! delivery service drives it, attempts walked by core's `delivery::walk`, and
//! notices built and placed by core. What is left here is I/O.

pub mod delivery;
pub mod directory;
pub mod reception;
mod signing;
pub mod store;

use crate::world::disk::Disk;
use crate::world::{Event, NodeKind, Wake, World};
pub use directory::Directory;
use sluice_core::machine::{Machine, Token};
use sluice_core::node::reception::Input as ReceptionInput;
use sluice_core::node::{NoticeSettings, PlacementPolicy};
use sluice_core::queue::{Input as QueueInput, Queue, QueueConfig, QueuedMessage};
use sluice_core::router::{RecipientRouting, Route, RouterConfig, RoutingStep};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{
    Limits, ListenerKind, RecipientCheck, SessionConfig, StoreOutcome, TlsMode,
};
use sluice_dkim::DkimKeyStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{Store, Write};

/// Deliberate bugs, for proving that the checkers can fail. Simulator only: they
/// change what this simulated host does, never production code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Answer 250 as soon as the write is submitted, before its fsync.
    pub ack_before_durability: bool,
    /// Write a failed recipient's state but not its notice.
    pub skip_notice: bool,
    /// LMTP delivery keyed by the backend's own queue id instead of the content, so
    /// a redelivery after a lost reply lands twice.
    pub deliver_twice_after_crash: bool,
    /// Drop a recipient from the durable record when it is deferred.
    pub drop_deferred_recipient: bool,
    /// Accept external recipients from unauthenticated clients (an open relay).
    pub open_relay: bool,
    /// Flush a message (the admin's retry-now) whenever a recipient is deferred, so
    /// retries come before their time.
    pub retry_early: bool,
    /// Keep a local copy's owed success notice in memory only, out of the durable
    /// record, so a crash before the notice is stored loses it.
    pub forget_owed_success: bool,
    /// At a restart, leave out of the rebuilt queue every message with a deferred
    /// recipient: its next attempt is never scheduled, and it stays queued forever.
    pub forget_deferred_on_restart: bool,
    /// Report a remote server's acceptance to the queue as a temporary failure: the
    /// message is sent again though the sender heard the remote take it.
    pub forget_remote_acceptance: bool,
    /// A bug inside core's retry schedule (`PlantedScheduleBug::BackoffOffByOne`):
    /// the backoff exponent one too small.
    #[cfg(feature = "planted-bugs")]
    pub core_backoff_off_by_one: bool,
    /// Never hand a finished attempt's results back to the queue.
    pub drop_attempt_report: bool,
    /// Append a footer to a message's body after signing it (a disclaimer added
    /// downstream of the signer): its DKIM signature no longer verifies.
    pub dkim_alter_after_signing: bool,
    /// Place external copies by the default policy (every domain to its MX hosts),
    /// as if the `[[delivery.path]]` rules were not configured.
    pub ignore_path_rules: bool,
    /// Give every delivery session a relay's credentials, whatever its path.
    pub leak_relay_credentials: bool,
}

impl Bugs {
    pub fn any(&self) -> bool {
        *self != Bugs::default()
    }
}

/// What a host is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// MX behind the load balancer; mailboxes on the backend over LMTP.
    Gateway,
    /// Mailboxes; takes LMTP from the gateways.
    Backend,
    /// Everything in one host: MX and mailboxes.
    All,
}

/// What waits for a write's fsync.
#[derive(Debug)]
enum Waiter {
    /// A session's message: the 250 follows durability.
    Session {
        conn: u64,
        token: Token,
        queue_id: String,
        queued: Option<QueuedMessage>,
        /// Already answered (the ack-before-durability bug).
        answered: bool,
    },
    /// A queue write.
    Persist {
        token: Token,
        queue_id: String,
        notice: Option<NoticeFacts>,
        failed: Vec<String>,
    },
}

/// What the checkers need to know of a notice written with a queue write.
#[derive(Debug)]
pub(crate) struct NoticeFacts {
    kind: sluice_core::notice::NoticeKind,
    recipients: Vec<String>,
    queued: Option<QueuedMessage>,
    notice_id: Option<String>,
}

/// One Sluice host's state: configuration, the durable disk, and what a crash loses.
#[derive(Debug)]
pub struct SluiceHost {
    pub role: Role,
    pub hostname: Domain,
    pub router: RouterConfig,
    /// How notices are written: as net's defaults (`[queue]` section) say.
    pub notices: NoticeSettings,
    pub placement: PlacementPolicy,
    pub queue_config: QueueConfig,
    pub directory: Directory,
    pub disk: Disk<Write, Store>,
    /// Volatile: gone at a crash.
    pub queue: Option<Queue>,
    waiters: BTreeMap<u64, Waiter>,
    pub attempts: BTreeMap<u64, delivery::Attempt>,
    /// Volatile: idle delivery connections.
    pub pool: delivery::Pool,
    /// The DKIM keys of the sending domains (net's `<data_dir>/dkim/`), shared by
    /// every host of the run; empty when the scenario signs nothing.
    pub dkim: Arc<DkimKeyStore>,
    /// What relays that require AUTH are given (net's `Deliverer::relay_credentials`).
    pub relay_credentials: sluice_core::delivery::RelayCredentials,
    /// With the `leak-relay-credentials` bug: the credentials every session gets.
    pub leaked_credentials: Option<sluice_core::smtp::client::ClientAuth>,
    next_attempt: u64,
    next_queue_id: u64,
}

impl SluiceHost {
    pub fn new(
        role: Role,
        hostname: Domain,
        placement: PlacementPolicy,
        queue_config: QueueConfig,
        directory: Directory,
    ) -> SluiceHost {
        let store = Store::with_users(&directory.users);
        let router = RouterConfig::new(domain(&directory.domain));
        let queue = Queue::new(queue_config.clone()).ok();
        SluiceHost {
            role,
            notices: NoticeSettings::new(hostname.clone()),
            hostname,
            router,
            placement,
            queue_config,
            directory,
            disk: Disk::new(store),
            queue,
            waiters: BTreeMap::new(),
            attempts: BTreeMap::new(),
            pool: delivery::Pool::default(),
            dkim: Arc::default(),
            relay_credentials: sluice_core::delivery::RelayCredentials::default(),
            leaked_credentials: None,
            next_attempt: 0,
            next_queue_id: 0,
        }
    }

    /// A queue id unique over the host's lifetimes (the epoch is part of it), in a
    /// form Received headers keep whole, so checkers can find a message's origin.
    pub(crate) fn new_queue_id(&mut self, name: &str, epoch: u32) -> String {
        self.next_queue_id += 1;
        let short = name.split('.').next().unwrap_or(name);
        format!("Q-{short}-{epoch}-{}", self.next_queue_id)
    }

    /// The route of one recipient from core's router. I/O, not a decision (net's
    /// `routing::route` runs the same `RecipientRouting`): its lookups are answered
    /// from the directory at once, so nothing is left to wait for; a wait would be
    /// for lookups that can no longer come, and its deadline is reached at once.
    pub fn route(&self, now: sluice_core::time::Instant, check: &RecipientCheck) -> Route {
        let mut routing = RecipientRouting::start(self.router.clone(), now, check);
        loop {
            match routing.step() {
                RoutingStep::Lookup { token, query } => {
                    routing.answered(now, token, self.directory.answer(&query));
                }
                RoutingStep::Wait { until } => routing.tick(until),
                RoutingStep::Routed { route, .. } => return route,
            }
        }
    }

    /// A store lookup, not a decision (net's `ReceptionStore::verify_credentials`): the
    /// simulated users' password is `secret-` and their address.
    pub fn check_credentials(
        &self,
        credentials: &sluice_core::smtp::server::Credentials,
    ) -> sluice_core::smtp::server::CredentialOutcome {
        let username = credentials.username.to_ascii_lowercase();
        let known = self.directory.users.contains(&username);
        if known && credentials.password == format!("secret-{username}") {
            sluice_core::smtp::server::CredentialOutcome::Valid { identity: username }
        } else {
            sluice_core::smtp::server::CredentialOutcome::Invalid
        }
    }

    /// The session configuration of a listener on this host.
    pub fn session_config(&self, listener: ListenerKind) -> SessionConfig {
        SessionConfig {
            kind: listener,
            hostname: self.hostname.clone(),
            tls: TlsMode::Unavailable,
            // The simulation has no TLS; AUTH is offered on submission without it.
            auth_requires_tls: false,
            limits: Limits::default(),
        }
    }
}

/// A constant or generated domain name; the simulator only builds valid ones.
pub fn domain(text: &str) -> Domain {
    match Domain::parse(text) {
        Ok(domain) => domain,
        Err(error) => panic!("the simulator built an invalid domain {text:?}: {error}"),
    }
}

impl World {
    pub(crate) fn sluice(&mut self, host: usize) -> Option<&mut SluiceHost> {
        match self.nodes.get_mut(host).map(|node| &mut node.kind) {
            Some(NodeKind::Sluice(sluice)) => Some(sluice),
            _ => None,
        }
    }

    pub(crate) fn session_config(
        &self,
        host: usize,
        listener: ListenerKind,
    ) -> Option<SessionConfig> {
        match self.nodes.get(host).map(|node| &node.kind) {
            Some(NodeKind::Sluice(sluice)) => Some(sluice.session_config(listener)),
            Some(NodeKind::Remote(remote)) => Some(SessionConfig {
                kind: remote.listener(),
                hostname: domain(&self.place_name(host)),
                tls: TlsMode::Unavailable,
                // The simulation has no TLS: a relay offers AUTH without it (an MX
                // listener never offers AUTH).
                auth_requires_tls: false,
                limits: Limits {
                    command_timeout: remote
                        .behaviour
                        .idle_close
                        .unwrap_or(Limits::default().command_timeout),
                    ..Limits::default()
                },
            }),
            None => None,
        }
    }

    pub(crate) fn schedule_fsync(&mut self, host: usize, epoch: u32, write: u64) {
        let (low, high) = self.fsync_ms;
        let delay = sluice_core::time::Duration::from_millis(self.engine.rng.between(low, high));
        self.engine
            .after(delay, Event::Synced { host, epoch, write });
    }

    /// The crash-after-250 fault.
    pub(crate) fn after_promise(&mut self, host: usize) {
        if self.engine.rng.chance(self.crash_after_promise_ppm) && !self.faults_over {
            let name = self.place_name(host);
            self.engine.record(&format!("{name} crashes after its 250"));
            self.crash_soon(host, sluice_core::time::Duration::from_millis(1));
        }
    }

    /// An fsync finished: the write is durable (or failed with an injected I/O error),
    /// and whoever waited is told, in the order core's `Acceptance` names (queue,
    /// success notice, then `Persisted`) and net's `delivery::service::finished`
    /// keeps (Persisted / PersistFailed, then the notice). I/O, not a decision.
    pub(crate) fn synced(&mut self, host: usize, epoch: u32, write_id: u64) {
        let Some(node) = self.nodes.get(host) else {
            return;
        };
        if node.epoch != epoch || !node.up {
            return;
        }
        let name = node.name.clone();
        let failed = self.engine.rng.chance(self.disk_error_ppm);
        if failed {
            self.count_fault("disk_io_error");
        }
        let at = self.engine.now();
        let Some(sluice) = self.sluice(host) else {
            return;
        };
        let Some(write) = sluice.disk.synced(write_id) else {
            return;
        };
        let waiter = sluice.waiters.remove(&write_id);
        let deliveries = if failed {
            Vec::new()
        } else {
            let data_of = |store: &Store, queue_id: &str| {
                store
                    .messages
                    .get(queue_id)
                    .map(|message| message.data.clone())
            };
            let deliveries = sluice.disk.durable.apply(write);
            deliveries
                .into_iter()
                .map(|delivery| {
                    let data = data_of(&sluice.disk.durable, &delivery.queue_id);
                    (delivery, data)
                })
                .collect()
        };
        let stored_tag = match &waiter {
            Some(Waiter::Session { queue_id, .. }) if !failed => sluice
                .disk
                .durable
                .messages
                .get(queue_id)
                .and_then(|message| crate::check::message_tag(&message.data)),
            _ => None,
        };
        let local = self.local_now(host);
        self.engine.record(&format!(
            "{name} write {write_id} {}",
            if failed {
                "failed (I/O error)"
            } else {
                "durable"
            }
        ));
        for (delivery, data) in deliveries {
            let data = data.unwrap_or_default();
            self.obs
                .mailbox_delivered(at, &name, &delivery.user, &data, delivery.new);
        }
        match waiter {
            Some(Waiter::Session {
                conn,
                token,
                queue_id,
                queued,
                answered,
            }) => {
                if failed {
                    if !answered {
                        let outcome = StoreOutcome::Failed;
                        self.drive_server_end(
                            conn,
                            Some(ReceptionInput::Persisted { token, outcome }),
                        );
                    }
                    return;
                }
                let facts = crate::check::StoredFacts {
                    tag: stored_tag,
                    null_sender: queued
                        .as_ref()
                        .is_some_and(|queued| queued.reverse_path.is_none()),
                    arrival: queued.as_ref().map_or(local, |queued| queued.arrival),
                    no_failure_notice: queued
                        .as_ref()
                        .map(|queued| {
                            queued
                                .recipients
                                .iter()
                                .filter(|recipient| {
                                    matches!(
                                        recipient.notify,
                                        Some(sluice_core::smtp::params::Notify::Never)
                                            | Some(sluice_core::smtp::params::Notify::On {
                                                failure: false,
                                                ..
                                            })
                                    )
                                })
                                .map(|recipient| recipient.address.to_ascii_lowercase())
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                self.obs.stored(&name, &queue_id, facts);
                if let Some(queued) = queued {
                    self.queue_input(host, QueueInput::Enqueue(queued));
                }
                if !answered {
                    let outcome = StoreOutcome::Stored { queue_id };
                    self.drive_server_end(conn, Some(ReceptionInput::Persisted { token, outcome }));
                    self.after_promise(host);
                }
            }
            Some(Waiter::Persist {
                token,
                queue_id,
                notice,
                failed: failed_recipients,
            }) => {
                if failed {
                    self.queue_input(host, QueueInput::PersistFailed { token });
                    return;
                }
                for recipient in &failed_recipients {
                    self.obs.failed_durable(at, &name, &queue_id, recipient);
                }
                self.queue_input(host, QueueInput::Persisted { token });
                if let Some(notice) = notice {
                    self.notice_committed(host, &queue_id, notice);
                }
            }
            None => {}
        }
    }

    /// A notice became durable: observed, and its copies for the queue enqueued.
    fn notice_committed(&mut self, host: usize, queue_id: &str, notice: NoticeFacts) {
        let name = self.place_name(host);
        let at = self.engine.now();
        let local = self.local_now(host);
        if let Some(notice_id) = &notice.notice_id {
            // The notice's arrival is when it was built, before its write was durable.
            let arrival = notice
                .queued
                .as_ref()
                .map_or(local, |queued| queued.arrival);
            let facts = crate::check::StoredFacts {
                tag: None,
                null_sender: true,
                arrival,
                no_failure_notice: std::collections::BTreeSet::new(),
            };
            self.obs.stored(&name, notice_id, facts);
        }
        self.engine.record(&format!(
            "{name} notice {:?} about {queue_id} for {} durable",
            notice.kind,
            notice.recipients.join(",")
        ));
        self.obs
            .notice_durable(at, &name, queue_id, notice.kind, &notice.recipients, local);
        if let Some(queued) = notice.queued {
            self.queue_input(host, QueueInput::Enqueue(queued));
        }
    }

    /// A host crash: the volatile state and unsynced writes are gone, connections reset.
    pub(crate) fn crash(&mut self, host: usize) {
        if self.faults_over {
            return;
        }
        let Some(node) = self.nodes.get_mut(host) else {
            return;
        };
        if !node.up {
            return;
        }
        node.up = false;
        node.epoch += 1;
        let name = node.name.clone();
        let lost = match &mut node.kind {
            NodeKind::Sluice(sluice) => {
                sluice.queue = None;
                sluice.waiters.clear();
                sluice.attempts.clear();
                sluice.pool.clear();
                sluice.disk.crash()
            }
            NodeKind::Remote(_) => 0,
        };
        self.count_fault("host_crash");
        let at = self.engine.now();
        self.obs.crashed(at, &name);
        let silent = self.engine.rng.chance(self.silent_crash_ppm);
        if silent {
            self.count_fault("silent_crash");
        }
        self.engine.record(&format!(
            "{name} crashes{}, {lost} unsynced writes lost",
            if silent { " silently" } else { "" }
        ));
        self.drop_connections_of(host, silent);
    }

    /// A restart: the queue is rebuilt from what the disk made durable. I/O, not a
    /// decision (net's `delivery::service::start`: `store.queued_messages()` enqueued).
    pub(crate) fn restart(&mut self, host: usize) {
        let Some(node) = self.nodes.get_mut(host) else {
            return;
        };
        if node.up {
            return;
        }
        node.up = true;
        let name = node.name.clone();
        let mut restored = match &mut node.kind {
            NodeKind::Sluice(sluice) => {
                sluice.queue = Queue::new(sluice.queue_config.clone()).ok();
                sluice.disk.durable.to_restore()
            }
            NodeKind::Remote(_) => Vec::new(),
        };
        if self.bugs.forget_deferred_on_restart {
            restored.retain(|message| {
                !message.recipients.iter().any(|recipient| {
                    matches!(
                        recipient.state,
                        sluice_core::queue::RecipientState::Deferred { .. }
                    )
                })
            });
        }
        self.engine.record(&format!(
            "{name} restarts, {} queued messages restored",
            restored.len()
        ));
        for message in restored {
            self.queue_input(host, QueueInput::Enqueue(message));
        }
    }

    pub(crate) fn disk_full(&mut self, host: usize, full: bool) {
        if full && self.faults_over {
            return;
        }
        let name = self.place_name(host);
        if let Some(sluice) = self.sluice(host)
            && sluice.disk.full != full
        {
            sluice.disk.full = full;
            if full {
                self.count_fault("disk_full");
            }
            self.engine.record(&format!("{name} disk full={full}"));
        }
    }

    pub(crate) fn queue_tick(&mut self, host: usize) {
        self.queue_input(host, QueueInput::Tick);
    }

    /// Feeds the host's queue and carries out everything it asks (net's
    /// `delivery::service::run` / `carry_out`); the queue decides, this only drives.
    pub(crate) fn queue_input(&mut self, host: usize, input: QueueInput) {
        let mut inputs = std::collections::VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = self.local_now(host);
            let up = self.nodes.get(host).is_some_and(|node| node.up);
            if !up {
                return;
            }
            let Some(sluice) = self.sluice(host) else {
                return;
            };
            let Some(mut queue) = sluice.queue.take() else {
                return;
            };
            queue.handle(now, input);
            let mut outputs = Vec::new();
            while let Some(output) = queue.poll() {
                outputs.push(output);
            }
            let deadline = queue.next_deadline();
            if let Some(sluice) = self.sluice(host) {
                sluice.queue = Some(queue);
            }
            for output in outputs {
                inputs.extend(self.queue_output(host, output));
            }
            self.schedule_wake(Wake::Queue(host), host, deadline);
        }
    }
}
