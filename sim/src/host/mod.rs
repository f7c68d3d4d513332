//! A simulated Sluice host (role gateway, backend or all): its state and its
//! behaviour. Per connection core's reception (`node::Reception`: session, routes,
//! the accepted message's record) with core's router against the host's directory,
//! each acceptance made durable on the simulated disk before the machine is told,
//! core's queue driven as net's delivery service drives it, attempts walked by
//! core's `delivery::walk`, and notices built and placed by core. What is left here
//! is I/O.
//!
//! The boundary with the world: a host's methods take a `HostIo` (`io.rs`), the
//! narrow context through which it reaches time, randomness, timers, connections,
//! DNS and the observations; the world implements it and calls the host when an
//! event concerns it. Nothing here knows the world.
//!
//! - `reception.rs`: one incoming connection's reception, and the acceptance it
//!   makes durable.
//! - `durability.rs`: a write's fsync completing, and what waited for it; crash and
//!   restart.
//! - `delivery.rs`: the queue driven: its outputs carried out (attempts, queue
//!   writes with their notices), the attempts' walks and pooled connections.
//! - `disk.rs`, `store.rs`: the simulated disk and the durable state it holds.
//! - `directory.rs`, `signing.rs`: the directory the router reads, DKIM signing.
//! - `imap.rs`, `mailbox_backend.rs`: IMAP sessions on the host that holds the
//!   mailboxes, their requests answered from the durable store by core.
//! - `tests.rs`: a host on its own, with a context that records what it asks.

pub mod delivery;
pub mod directory;
pub mod disk;
mod durability;
pub mod imap;
pub mod io;
mod mailbox_backend;
pub mod reception;
mod signing;
pub mod store;
#[cfg(test)]
mod tests;

pub use directory::Directory;
use disk::Disk;
pub use durability::{PersistedAnswer, Synced};
pub use io::HostIo;
pub use reception::Peer;
use sluice_core::machine::Token;
use sluice_core::node::{NoticeSettings, PlacementPolicy};
use sluice_core::queue::{Queue, QueueConfig, QueuedMessage};
use sluice_core::router::{RecipientRouting, Route, RouterConfig, RoutingStep};
use sluice_core::smtp::address::{Domain, ForwardPath};
use sluice_core::smtp::server::{Limits, ListenerKind, RecipientCheck, SessionConfig, TlsMode};
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
    /// Carry out IMAP MOVE as COPY: the originals stay in the source folder.
    pub move_keeps_original: bool,
    /// At a restart, rebuild the mailboxes from the messages they hold, numbering
    /// each folder's messages from 1 again under the same UIDVALIDITY.
    pub renumber_uids_after_restart: bool,
    /// Answer an IMAP flag change before its write is durable.
    pub ack_flags_before_durability: bool,
    /// Never tell IMAP sessions that their mailboxes changed: an idling client
    /// hears of nothing.
    pub no_idle_push: bool,
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
    /// An IMAP session's mailbox request that changes the mailboxes: answered
    /// when the write is durable, unless already `answered` (a deliberate bug).
    Imap {
        conn: u64,
        token: Token,
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
    fn new_queue_id(&mut self, name: &str, epoch: u32) -> String {
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

/// The address of a path without angle brackets.
pub fn bare(path: &ForwardPath) -> String {
    match path {
        ForwardPath::Postmaster => "Postmaster".to_owned(),
        ForwardPath::Mailbox(mailbox) => mailbox.to_string(),
    }
}
