//! The simulated world: hosts (Sluice hosts and remote mail servers), the network
//! between them with its connections, DNS, the workload's clients and the load
//! balancer, and the faults. The world carries bytes between the two machines of
//! each connection and feeds every machine its inputs at the virtual time; every
//! reply, route, retry and notice is decided by the core machines the hosts run.
//!
//! The world holds its Sluice hosts but does not reach into them: on an event that
//! concerns one it calls the host's method with a `HostPort` (`hosts.rs`), the
//! world as that host's `HostIo`. The remote servers, simple models of other
//! organisations' MTAs, are the world's own.
//!
//! - `client.rs`: the workload's clients and the load balancer.
//! - `hosts.rs`: the port, and the events of a Sluice host's life (fsyncs, crashes,
//!   restarts, a full disk).
//! - `network.rs`, `dns.rs`, `remote.rs`: the network, DNS and remote servers.
//! - `imap_client.rs`, `retrieval.rs`: the IMAP clients reading the mailboxes, and
//!   their connections to the host that holds them.

pub mod client;
pub mod dns;
mod hosts;
pub mod imap_client;
pub mod network;
pub mod remote;
mod retrieval;

use crate::check::Observations;
use crate::engine::Engine;
use crate::host::{Bugs, Peer, SluiceHost, bare, domain};
use client::{Agent, LoadBalancer};
use dns::Dns;
use network::{CONNECT_TIMEOUT, Network, OUTSIDE};
use remote::RemoteServer;
use sluice_core::machine::{Machine, Token};
use sluice_core::node::Reception;
use sluice_core::node::reception::Input as ReceptionInput;
use sluice_core::smtp::address::ReversePath;
use sluice_core::smtp::client::{
    ClientConfig, ClientSession, Input as ClientInput, MessageReport, OutgoingMessage,
    Output as ClientOutput, SessionOutcome,
};
use sluice_core::smtp::server::{
    CredentialOutcome, Input as ServerInput, Limits, ListenerKind, Output as ServerOutput,
    ServerSession, SessionConfig, StoreOutcome, TlsMode,
};
use sluice_core::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Host clocks read milliseconds since the Unix epoch: the simulation starts at
/// 2026-01-01T00:00:00Z, so that dates in headers and notices look like dates.
pub const BASE_UNIX_MS: u64 = 1_767_225_600_000;

/// Events one run may process before it is stopped as a livelock.
pub const MAX_EVENTS: u64 = 20_000_000;

/// Everything that can happen in the world.
#[derive(Clone, Debug)]
pub enum Event {
    /// A workload client (re)tries its message.
    Offer(usize),
    /// The connection's handshake reached the server.
    Accepted(u64),
    ConnectFailed(u64),
    Bytes {
        conn: u64,
        to_server: bool,
        bytes: Vec<u8>,
    },
    PeerClosed {
        conn: u64,
        to_server: bool,
    },
    Tick(Wake),
    /// An fsync on a host finished.
    Synced {
        host: usize,
        epoch: u32,
        write: u64,
    },
    /// A slow remote answers a store.
    RemoteStored {
        conn: u64,
        token: Token,
    },
    /// DNS answered an attempt's lookups.
    Plan {
        host: usize,
        epoch: u32,
        attempt: u64,
        plan: Result<Vec<sluice_core::delivery::walk::PlannedHost>, sluice_core::delivery::Failure>,
    },
    Crash(usize),
    Restart(usize),
    Partition(usize, usize),
    Heal(usize, usize),
    DnsOutage(bool),
    DiskFull(usize, bool),
    ClockJump(usize, i64),
    HealthCheck,
    /// The end of the fault window: everything heals and restarts, mail drains.
    FaultsEnd,
    /// An IMAP client's timer (stale unless `generation` is its latest).
    ImapTimer {
        client: usize,
        generation: u64,
    },
    /// An IMAP connection reached the mailbox host, or failed to.
    ImapAccepted(u64),
    ImapConnectFailed(u64),
    ImapBytes {
        conn: u64,
        to_server: bool,
        bytes: Vec<u8>,
    },
    ImapClosed {
        conn: u64,
        to_server: bool,
    },
}

/// A machine that asked to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    Client(u64),
    Server(u64),
    Queue(usize),
    /// The IMAP session of a connection.
    ImapServer(u64),
}

/// What a host is.
#[derive(Debug)]
pub enum NodeKind {
    Sluice(Box<SluiceHost>),
    Remote(RemoteServer),
    /// A Sluice host while one of its methods runs (`World::with_host`), never seen
    /// outside that call.
    Lent,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub ip: IpAddr,
    pub up: bool,
    /// Bumped by every crash; events of an older epoch are stale.
    pub epoch: u32,
    /// Added to the simulation clock to give this host's clock (clock jumps).
    pub clock_offset_ms: i64,
    pub kind: NodeKind,
}

/// Who runs the client end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Agent(usize),
    Attempt {
        host: usize,
        epoch: u32,
        attempt: u64,
    },
    /// An idle delivery connection in `host`'s pool, waiting for the next attempt.
    Pooled {
        host: usize,
        epoch: u32,
    },
}

/// One TCP connection and the two machines at its ends.
#[derive(Debug)]
pub struct Conn {
    pub owner: Owner,
    pub client_place: usize,
    pub server: usize,
    pub server_epoch: u32,
    pub listener: ListenerKind,
    client_config: ClientConfig,
    message: Option<OutgoingMessage>,
    client: Option<ClientSession>,
    session: Option<ServerEnd>,
    to_server_at: Instant,
    to_client_at: Instant,
    broken: bool,
    /// A remote that lies about its extensions on this connection.
    lies: bool,
}

/// The server end of a connection: a remote's bare session, or a Sluice host's
/// reception (core's node machine around the session).
#[derive(Debug)]
enum ServerEnd {
    Remote(Box<ServerSession>),
    Sluice(Box<Reception>),
}

impl ServerEnd {
    fn is_closed(&self) -> bool {
        match self {
            ServerEnd::Remote(session) => session.is_closed(),
            ServerEnd::Sluice(reception) => reception.is_closed(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self {
            ServerEnd::Remote(session) => session.next_deadline(),
            ServerEnd::Sluice(reception) => reception.next_deadline(),
        }
    }
}

/// What a client machine told its owner.
enum Note {
    Report(MessageReport),
    Close(SessionOutcome),
    /// The session is idle and alive: a delivery connection goes to its host's pool.
    Idle,
}

/// The whole simulated world of one run.
#[derive(Debug)]
pub struct World {
    pub engine: Engine<Event>,
    pub nodes: Vec<Node>,
    pub conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    wakes: BTreeMap<Wake, Instant>,
    pub network: Network,
    pub dns: Dns,
    pub agents: Vec<Agent>,
    pub lb: LoadBalancer,
    pub obs: Observations,
    pub bugs: Bugs,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    pub fsync_ms: (u64, u64),
    pub disk_error_ppm: u32,
    pub crash_on_store_ppm: u32,
    pub crash_after_promise_ppm: u32,
    /// Chance that a crash is silent (peers get no reset).
    pub silent_crash_ppm: u32,
    /// Seconds a host hit by a crash fault stays down (drawn between the two).
    pub restart_secs: (u64, u64),
    /// After `FaultsEnd` no new fault is injected.
    pub faults_over: bool,
    pub health_check_every: Duration,
    /// The remotes' DKIM verifier over the simulated DNS's key records, when the
    /// scenario signs.
    pub dkim_verifier: Option<sluice_dkim::verify::Verifier>,
    /// The IMAP clients, and the host whose mailboxes they read.
    pub imap_clients: Vec<imap_client::ImapClient>,
    pub imap_conns: BTreeMap<u64, retrieval::ImapConn>,
    pub mailbox_host: usize,
}

impl World {
    pub fn new(engine: Engine<Event>, network: Network, bugs: Bugs) -> World {
        World {
            engine,
            nodes: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            wakes: BTreeMap::new(),
            network,
            dns: Dns::default(),
            agents: Vec::new(),
            lb: LoadBalancer::default(),
            obs: Observations::default(),
            bugs,
            faults: BTreeMap::new(),
            fsync_ms: (1, 20),
            disk_error_ppm: 0,
            crash_on_store_ppm: 0,
            crash_after_promise_ppm: 0,
            restart_secs: (5, 120),
            silent_crash_ppm: 0,
            faults_over: false,
            health_check_every: Duration::from_secs(10),
            dkim_verifier: None,
            imap_clients: Vec::new(),
            imap_conns: BTreeMap::new(),
            mailbox_host: 0,
        }
    }

    pub fn count_fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_insert(0) += 1;
    }

    /// Runs every event up to `end`, or until `MAX_EVENTS` (a livelock guard: a
    /// machine that keeps asking to be woken now would otherwise spin a sweep forever).
    pub fn run_until(&mut self, end: Instant) {
        while let Some(event) = self.engine.next_until(end) {
            self.dispatch(event);
            if self.engine.processed() >= MAX_EVENTS {
                self.engine.record("event cap reached: the run stops here");
                self.count_fault("event_cap_reached");
                break;
            }
        }
    }

    // Clocks.

    fn offset_of(&self, place: usize) -> i64 {
        self.nodes.get(place).map_or(0, |node| node.clock_offset_ms)
    }

    /// The clock of `place` (a host index, or `OUTSIDE`).
    pub fn local_now(&self, place: usize) -> Instant {
        let millis = i128::from(self.engine.now().as_millis())
            + i128::from(BASE_UNIX_MS)
            + i128::from(self.offset_of(place));
        Instant::from_millis(u64::try_from(millis.max(0)).unwrap_or(u64::MAX))
    }

    fn to_global(&self, place: usize, local: Instant) -> Instant {
        let millis = i128::from(local.as_millis())
            - i128::from(BASE_UNIX_MS)
            - i128::from(self.offset_of(place));
        Instant::from_millis(u64::try_from(millis.max(0)).unwrap_or(u64::MAX))
    }

    /// Asks for `wake` at the machine's local `deadline`; an earlier pending wake
    /// is kept (it reschedules when it fires).
    pub fn schedule_wake(&mut self, wake: Wake, place: usize, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return;
        };
        let at = self.to_global(place, deadline).max(self.engine.now());
        if let Some(pending) = self.wakes.get(&wake)
            && *pending <= at
            && *pending >= self.engine.now()
        {
            return;
        }
        self.wakes.insert(wake, at);
        self.engine.at(at, Event::Tick(wake));
    }

    fn client_place(owner: Owner) -> usize {
        match owner {
            Owner::Agent(_) => OUTSIDE,
            Owner::Attempt { host, .. } | Owner::Pooled { host, .. } => host,
        }
    }

    // Events.

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Offer(agent) => self.offer(agent),
            Event::Accepted(conn) => self.accepted(conn),
            Event::ConnectFailed(conn) => self.connect_failed(conn),
            Event::Bytes {
                conn,
                to_server,
                bytes,
            } => {
                if self.conns.get(&conn).is_some_and(|c| !c.broken) {
                    if to_server {
                        self.drive_server(conn, Some(ServerInput::Bytes(bytes)));
                    } else {
                        self.drive_client(conn, Some(ClientInput::Bytes(bytes)));
                    }
                }
            }
            Event::PeerClosed { conn, to_server } => {
                if to_server {
                    self.drive_server(conn, Some(ServerInput::PeerClosed));
                } else {
                    self.drive_client(conn, Some(ClientInput::PeerClosed));
                }
            }
            Event::Tick(wake) => {
                if self.wakes.get(&wake) == Some(&self.engine.now()) {
                    self.wakes.remove(&wake);
                    match wake {
                        Wake::Client(conn) => self.drive_client(conn, Some(ClientInput::Tick)),
                        Wake::Server(conn) => self.drive_server(conn, Some(ServerInput::Tick)),
                        Wake::Queue(host) => {
                            self.with_host(host, |sluice, port| sluice.queue_tick(port));
                        }
                        Wake::ImapServer(conn) => {
                            self.drive_imap_server(conn, Some(sluice_core::imap::Input::Tick));
                        }
                    }
                }
            }
            Event::Synced { host, epoch, write } => self.synced(host, epoch, write),
            Event::RemoteStored { conn, token } => {
                let outcome = StoreOutcome::Stored {
                    queue_id: format!("R{conn}"),
                };
                self.drive_server(conn, Some(ServerInput::MessageStored { token, outcome }));
            }
            Event::Plan {
                host,
                epoch,
                attempt,
                plan,
            } => self.with_host_of(host, epoch, |sluice, port| {
                sluice.attempt_planned(port, attempt, plan);
            }),
            Event::Crash(host) => self.crash(host),
            Event::Restart(host) => self.restart(host),
            Event::Partition(a, b) => self.partition(a, b),
            Event::Heal(a, b) => {
                self.engine.record(&format!("heal {a}-{b}"));
                self.network.heal(a, b);
            }
            Event::DnsOutage(on) => {
                if on && self.faults_over {
                    return;
                }
                if on {
                    self.count_fault("dns_outage");
                }
                self.engine.record(&format!("dns outage={on}"));
                self.dns.outage = on;
            }
            Event::DiskFull(host, full) => self.disk_full(host, full),
            Event::ClockJump(host, by) => self.clock_jump(host, by),
            Event::HealthCheck => self.health_check(),
            Event::FaultsEnd => self.faults_end(),
            Event::ImapTimer { client, generation } => self.imap_timer(client, generation),
            Event::ImapAccepted(conn) => self.imap_accepted(conn),
            Event::ImapConnectFailed(conn) => self.imap_connect_failed(conn),
            Event::ImapBytes {
                conn,
                to_server,
                bytes,
            } => self.imap_bytes(conn, to_server, bytes),
            Event::ImapClosed { conn, to_server } => self.imap_closed(conn, to_server),
        }
    }

    // Connections.

    /// Opens a connection from `owner` to `server`'s `listener`; the client machine
    /// starts with `message` once the server has accepted.
    pub fn connect(
        &mut self,
        owner: Owner,
        server: usize,
        listener: ListenerKind,
        client_config: ClientConfig,
        message: OutgoingMessage,
    ) {
        self.next_conn += 1;
        let id = self.next_conn;
        let client_place = Self::client_place(owner);
        let now = self.engine.now();
        if let Some(auth) = &client_config.auth
            && matches!(owner, Owner::Attempt { .. })
        {
            let client = self.place_name(client_place);
            let server_name = self.place_name(server);
            self.obs
                .credentials_given(now, &client, &server_name, &auth.username);
        }
        let server_epoch = self.nodes.get(server).map_or(0, |node| node.epoch);
        self.conns.insert(
            id,
            Conn {
                owner,
                client_place,
                server,
                server_epoch,
                listener,
                client_config,
                message: Some(message),
                client: None,
                session: None,
                to_server_at: now,
                to_client_at: now,
                broken: false,
                lies: false,
            },
        );
        let reachable = self.nodes.get(server).is_some_and(|node| node.up)
            && self.network.reachable(client_place, server);
        self.engine.record(&format!(
            "conn {id} open {} -> {} ({listener:?}){}",
            self.place_name(client_place),
            self.place_name(server),
            if reachable { "" } else { " unreachable" }
        ));
        if reachable {
            let latency = self.network.latency(&mut self.engine.rng);
            self.engine.after(latency, Event::Accepted(id));
        } else {
            self.engine.after(CONNECT_TIMEOUT, Event::ConnectFailed(id));
        }
    }

    /// Hands connection `id`, idle and held by `parked`, to `owner`, who will drive
    /// its client with a new message; false when that connection cannot take it
    /// (gone, held by another, closed or broken).
    fn claim_pooled(&mut self, id: u64, parked: Owner, owner: Owner) -> bool {
        let usable = self.conns.get(&id).is_some_and(|conn| {
            conn.owner == parked
                && !conn.broken
                && conn
                    .client
                    .as_ref()
                    .is_some_and(|client| !client.is_closed())
        });
        if !usable {
            return false;
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.owner = owner;
        }
        self.engine.record(&format!("conn {id} reused"));
        true
    }

    /// Hands connection `id` to a new owner (an attempt's idle connection to its pool).
    fn set_owner(&mut self, id: u64, owner: Owner) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.owner = owner;
        }
    }

    pub fn place_name(&self, place: usize) -> String {
        self.nodes
            .get(place)
            .map_or_else(|| "outside".to_owned(), |node| node.name.clone())
    }

    fn accepted(&mut self, id: u64) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (server, place, epoch, listener) = (
            conn.server,
            conn.client_place,
            conn.server_epoch,
            conn.listener,
        );
        let alive = self
            .nodes
            .get(server)
            .is_some_and(|node| node.up && node.epoch == epoch)
            && self.network.reachable(place, server);
        if !alive {
            return self.connect_failed(id);
        }
        let end = match self.nodes.get(server).map(|node| &node.kind) {
            Some(NodeKind::Sluice(sluice)) => {
                let peer = self.peer_of(id, place, listener);
                let reception = sluice.new_reception(self.local_now(server), &peer);
                Some(ServerEnd::Sluice(Box::new(reception)))
            }
            _ => self.remote_session_config(server).map(|config| {
                ServerEnd::Remote(Box::new(ServerSession::new(self.local_now(server), config)))
            }),
        };
        let Some(end) = end else {
            return self.connect_failed(id);
        };
        let client_now = self.local_now(place);
        let lies = match self.nodes.get(server).map(|node| &node.kind) {
            Some(NodeKind::Remote(remote)) => self.engine.rng.chance(remote.behaviour.lie_ppm),
            _ => false,
        };
        if lies {
            self.count_fault("remote_lies_about_starttls");
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.lies = lies;
            conn.session = Some(end);
            let mut client = ClientSession::new(client_now, conn.client_config.clone());
            if let Some(message) = conn.message.take() {
                client.handle(client_now, ClientInput::Message(message));
            }
            conn.client = Some(client);
        }
        self.drive_server(id, None);
        self.drive_client(id, None);
    }

    fn connect_failed(&mut self, id: u64) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        self.engine.record(&format!("conn {id} failed to connect"));
        let host = self.place_name(conn.server);
        self.owner_connect_failed(conn.owner, &host, conn.message);
    }

    /// Sends bytes down one direction of a connection, in order, unless the
    /// network resets it or a partition cuts it.
    pub(crate) fn send(&mut self, id: u64, conn: &mut Conn, to_server: bool, bytes: Vec<u8>) {
        if conn.broken {
            return;
        }
        if !self.network.reachable(conn.client_place, conn.server)
            || self.network.resets_now(&mut self.engine.rng)
        {
            self.count_fault("connection_reset");
            self.break_conn(id, conn);
            return;
        }
        let latency = self.network.latency(&mut self.engine.rng);
        let last = if to_server {
            &mut conn.to_server_at
        } else {
            &mut conn.to_client_at
        };
        let at = (self.engine.now() + latency).max(*last);
        *last = at;
        self.engine.at(
            at,
            Event::Bytes {
                conn: id,
                to_server,
                bytes,
            },
        );
    }

    /// A reset: bytes in flight are dropped and both ends hear that the peer went away.
    fn break_conn(&mut self, id: u64, conn: &mut Conn) {
        if conn.broken {
            return;
        }
        conn.broken = true;
        self.engine.record(&format!("conn {id} reset"));
        let latency = self.network.latency(&mut self.engine.rng);
        for to_server in [true, false] {
            self.engine.after(
                latency,
                Event::PeerClosed {
                    conn: id,
                    to_server,
                },
            );
        }
    }

    /// Breaks a connection held in the map (partitions, crashes).
    fn break_conn_by_id(&mut self, id: u64) {
        if let Some(mut conn) = self.conns.remove(&id) {
            self.break_conn(id, &mut conn);
            self.conns.insert(id, conn);
        }
    }

    fn remove_if_done(&mut self, id: u64) {
        let done = self.conns.get(&id).is_some_and(|conn| {
            conn.client.as_ref().is_none_or(ClientSession::is_closed)
                && conn.session.as_ref().is_none_or(ServerEnd::is_closed)
                && conn.message.is_none()
        });
        if done {
            self.conns.remove(&id);
        }
    }

    /// Feeds the client machine of `id` and carries out what it asks.
    fn drive_client(&mut self, id: u64, input: Option<ClientInput>) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let Some(mut client) = conn.client.take() else {
            self.conns.insert(id, conn);
            return;
        };
        let place = conn.client_place;
        let now = self.local_now(place);
        if let Some(input) = input {
            client.handle(now, input);
        }
        let mut notes = Vec::new();
        let mut closed = false;
        loop {
            let mut wrote = false;
            while let Some(output) = client.poll() {
                match output {
                    ClientOutput::Send(bytes) => {
                        self.send(id, &mut conn, true, bytes);
                        wrote = true;
                    }
                    ClientOutput::StartTls { .. } => client.handle(now, ClientInput::TlsFailed),
                    // A delivery connection waits in its host's pool for the next
                    // message (as net's); a workload client has one message only.
                    ClientOutput::Ready => match conn.owner {
                        Owner::Attempt { .. } => notes.push(Note::Idle),
                        Owner::Agent(_) | Owner::Pooled { .. } => {
                            client.handle(now, ClientInput::Finish);
                        }
                    },
                    ClientOutput::Report(report) => notes.push(Note::Report(report)),
                    ClientOutput::Close(outcome) => {
                        notes.push(Note::Close(outcome));
                        closed = true;
                    }
                    ClientOutput::Event(_) => {}
                }
            }
            if !wrote || closed {
                break;
            }
            client.handle(now, ClientInput::Written);
        }
        if closed && !conn.broken {
            let latency = self.network.latency(&mut self.engine.rng);
            let at = (self.engine.now() + latency).max(conn.to_server_at);
            self.engine.at(
                at,
                Event::PeerClosed {
                    conn: id,
                    to_server: true,
                },
            );
        }
        let deadline = client.next_deadline();
        let owner = conn.owner;
        conn.client = Some(client);
        self.conns.insert(id, conn);
        self.schedule_wake(Wake::Client(id), place, deadline);
        for note in notes {
            match note {
                Note::Report(report) => self.owner_report(owner, report),
                Note::Close(outcome) => self.owner_closed(owner, id, outcome),
                Note::Idle => self.owner_idle(owner, id),
            }
        }
        self.remove_if_done(id);
    }

    /// Feeds the server machine of `id` and carries out what it asks.
    pub fn drive_server(&mut self, id: u64, input: Option<ServerInput>) {
        self.drive_server_end(id, input.map(ReceptionInput::Session));
    }

    /// Feeds the server end of `id`: session inputs reach a remote's session, and
    /// every input a Sluice host's reception.
    pub(crate) fn drive_server_end(&mut self, id: u64, input: Option<ReceptionInput>) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let Some(mut end) = conn.session.take() else {
            self.conns.insert(id, conn);
            return;
        };
        let server = conn.server;
        let closed = match &mut end {
            ServerEnd::Sluice(reception) => {
                // The host sends through the world, which finds the connection in
                // its map meanwhile.
                let peer = self.peer_of(id, conn.client_place, conn.listener);
                self.conns.insert(id, conn);
                let closed = self
                    .with_host(server, |sluice, port| {
                        sluice.step_reception(port, &peer, reception, input)
                    })
                    .unwrap_or(false);
                let Some(held) = self.conns.remove(&id) else {
                    return;
                };
                conn = held;
                closed
            }
            ServerEnd::Remote(session) => {
                let input = match input {
                    Some(ReceptionInput::Session(input)) => Some(input),
                    Some(_) => None,
                    None => None,
                };
                self.step_remote(id, &mut conn, session, input)
            }
        };
        if closed && !conn.broken {
            let latency = self.network.latency(&mut self.engine.rng);
            let at = (self.engine.now() + latency).max(conn.to_client_at);
            self.engine.at(
                at,
                Event::PeerClosed {
                    conn: id,
                    to_server: false,
                },
            );
        }
        let deadline = end.next_deadline();
        conn.session = Some(end);
        self.conns.insert(id, conn);
        self.schedule_wake(Wake::Server(id), server, deadline);
        self.remove_if_done(id);
    }

    /// The client of connection `id` as a Sluice host at its server end knows it.
    fn peer_of(&self, id: u64, client_place: usize, listener: ListenerKind) -> Peer {
        Peer {
            conn: id,
            listener,
            ip: self.nodes.get(client_place).map(|node| node.ip),
        }
    }

    /// The session configuration of a remote server's listener.
    fn remote_session_config(&self, server: usize) -> Option<SessionConfig> {
        let Some(NodeKind::Remote(remote)) = self.nodes.get(server).map(|node| &node.kind) else {
            return None;
        };
        Some(SessionConfig {
            kind: remote.listener(),
            hostname: domain(&self.place_name(server)),
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
        })
    }

    /// Feeds a remote server's session; whether it closed.
    fn step_remote(
        &mut self,
        id: u64,
        conn: &mut Conn,
        session: &mut ServerSession,
        input: Option<ServerInput>,
    ) -> bool {
        let now = self.local_now(conn.server);
        if let Some(input) = input {
            session.handle(now, input);
        }
        let mut closed = false;
        while let Some(output) = session.poll() {
            match output {
                ServerOutput::Send(bytes) if conn.lies => {
                    self.send(id, conn, false, remote::advertise_starttls(bytes));
                }
                ServerOutput::Send(bytes) => self.send(id, conn, false, bytes),
                ServerOutput::Close => closed = true,
                ServerOutput::StartTls => session.handle(now, ServerInput::TlsFailed),
                ServerOutput::CheckCredentials { token, credentials } => {
                    let outcome = self.remote_credentials(conn, &credentials);
                    session.handle(now, ServerInput::CredentialsChecked { token, outcome });
                }
                ServerOutput::CheckRecipient { token, check } => {
                    let verdict = self.remote_check(conn.server, &check);
                    session.handle(now, ServerInput::RecipientChecked { token, verdict });
                }
                ServerOutput::StoreMessage { token, message } => {
                    if let Some(outcome) = self.remote_store(id, conn, token, &message) {
                        session.handle(now, ServerInput::MessageStored { token, outcome });
                    }
                }
                ServerOutput::Event(_) => {}
            }
        }
        closed
    }

    /// A remote server's answer to AUTH (a relay's account, else invalid), observed
    /// for the delivery-paths checker: which credentials reached which server.
    fn remote_credentials(
        &mut self,
        conn: &Conn,
        credentials: &sluice_core::smtp::server::Credentials,
    ) -> CredentialOutcome {
        let outcome = match self.nodes.get(conn.server).map(|node| &node.kind) {
            Some(NodeKind::Remote(remote)) => remote.check_credentials(credentials),
            _ => CredentialOutcome::Invalid,
        };
        let at = self.engine.now();
        let valid = matches!(outcome, CredentialOutcome::Valid { .. });
        let client = self.place_name(conn.client_place);
        let server = self.place_name(conn.server);
        self.engine.record(&format!(
            "remote {server} AUTH from {client} as {} {}",
            credentials.username,
            if valid { "valid" } else { "invalid" }
        ));
        self.obs
            .credentials_received(at, &client, &server, &credentials.username, valid);
        outcome
    }

    /// A remote server's recipient verdict.
    fn remote_check(
        &mut self,
        server: usize,
        check: &sluice_core::smtp::server::RecipientCheck,
    ) -> sluice_core::smtp::server::RecipientVerdict {
        let now = self.engine.now();
        match self.nodes.get_mut(server).map(|node| &mut node.kind) {
            Some(NodeKind::Remote(remote)) => remote.check(&mut self.engine.rng, now, check),
            _ => sluice_core::smtp::server::RecipientVerdict::TemporaryFailure,
        }
    }

    fn remote_store(
        &mut self,
        id: u64,
        conn: &mut Conn,
        token: Token,
        message: &sluice_core::smtp::server::AcceptedMessage,
    ) -> Option<StoreOutcome> {
        let server = conn.server;
        let sender = self.place_name(conn.client_place);
        let Some(Node {
            kind: NodeKind::Remote(remote),
            name,
            ..
        }) = self.nodes.get_mut(server)
        else {
            return Some(StoreOutcome::Failed);
        };
        let name = name.clone();
        let choice = remote.store_choice(&mut self.engine.rng);
        let stored = match choice {
            remote::StoreChoice::Store(_) | remote::StoreChoice::Close { stored: true } => true,
            remote::StoreChoice::Hang | remote::StoreChoice::Close { stored: false } => false,
        };
        if stored {
            let tag = crate::check::message_tag(&message.data);
            let recipients: Vec<String> = message
                .recipients
                .iter()
                .map(|recipient| bare(&recipient.path))
                .collect();
            self.engine.record(&format!(
                "remote {name} stored {} for {}",
                tag.as_deref().unwrap_or("-"),
                recipients.join(",")
            ));
            let at = self.engine.now();
            for recipient in &recipients {
                self.obs
                    .remote_accepted(at, id, &sender, recipient, &message.data);
                self.obs.arrived(
                    at,
                    &name,
                    tag.as_deref().unwrap_or_default(),
                    recipient,
                    message.authenticated.clone(),
                );
            }
            if let Some(verifier) = &self.dkim_verifier {
                let seen = remote::verify_dkim(verifier, &message.data);
                self.obs.verified_copies.push(crate::check::VerifiedCopy {
                    at,
                    tag: tag.unwrap_or_default(),
                    remote: name.clone(),
                    recipients,
                    from: seen.from,
                    envelope: match &message.reverse_path {
                        ReversePath::Null => None,
                        ReversePath::Mailbox(mailbox) => {
                            Some(mailbox.to_string().to_ascii_lowercase())
                        }
                    },
                    signatures: seen.signatures,
                });
            }
        }
        match choice {
            remote::StoreChoice::Store(delay) if delay == Duration::ZERO => {
                Some(StoreOutcome::Stored {
                    queue_id: format!("R{id}"),
                })
            }
            remote::StoreChoice::Store(delay) => {
                self.engine
                    .after(delay, Event::RemoteStored { conn: id, token });
                None
            }
            remote::StoreChoice::Hang => {
                self.count_fault("remote_hang");
                None
            }
            remote::StoreChoice::Close { .. } => {
                self.count_fault("remote_close_mid_data");
                self.break_conn(id, conn);
                None
            }
        }
    }

    /// Partitions `a` from `b`, breaking their connections.
    fn partition(&mut self, a: usize, b: usize) {
        if self.faults_over {
            return;
        }
        self.count_fault("partition");
        self.engine.record(&format!(
            "partition {} | {}",
            self.place_name(a),
            self.place_name(b)
        ));
        self.network.partition(a, b);
        let cut: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, conn)| !self.network.reachable(conn.client_place, conn.server))
            .map(|(id, _)| *id)
            .collect();
        for id in cut {
            self.break_conn_by_id(id);
        }
        self.cut_imap_connections();
    }

    /// Every connection with an end on `host`: its machine there is gone. The other
    /// end hears a reset, or, when the crash is `silent` (a machine that vanished
    /// rather than rebooted), nothing at all: it finds out by its own timeouts.
    pub fn drop_connections_of(&mut self, host: usize, silent: bool) {
        let touched: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.server == host || conn.client_place == host)
            .map(|(id, _)| *id)
            .collect();
        for id in touched {
            if let Some(conn) = self.conns.get_mut(&id) {
                if conn.server == host {
                    conn.session = None;
                }
                if conn.client_place == host {
                    conn.client = None;
                    conn.message = None;
                }
            }
            if !silent {
                self.break_conn_by_id(id);
            }
            self.remove_if_done(id);
        }
    }

    fn clock_jump(&mut self, host: usize, by: i64) {
        if self.faults_over {
            return;
        }
        self.count_fault("clock_jump");
        if let Some(node) = self.nodes.get_mut(host) {
            node.clock_offset_ms = node.clock_offset_ms.saturating_add(by);
            let name = node.name.clone();
            self.engine.record(&format!("clock of {name} jumps {by}ms"));
        }
        self.with_host(host, |sluice, port| sluice.queue_tick(port));
    }

    fn faults_end(&mut self) {
        self.faults_over = true;
        self.engine.record("faults end: heal, restart, drain");
        self.network.heal_all();
        self.dns.outage = false;
        for host in 0..self.nodes.len() {
            self.disk_full(host, false);
            let down = self.nodes.get(host).is_some_and(|node| !node.up);
            if down {
                self.restart(host);
            }
        }
    }
}
