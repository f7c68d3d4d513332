//! The world's side of its Sluice hosts: `HostPort`, the world as one host's
//! `HostIo`, and `with_host`, which lends a host its port for one call; and the
//! events of a host's life the world injects (fsyncs completing, crashes, restarts,
//! a full disk), each carried out by the host itself.
//!
//! A host is taken out of its node while one of its methods runs, so that the host
//! and the rest of the world can both be borrowed. What the world does in answer
//! that concerns the host again (a reused connection's client driven with its new
//! message) is deferred until the host is back. It is always the last thing the
//! host's method asks (checked in debug builds, `HostPort::in_order`), so the order
//! of events and draws is the one it would have had at once. A reception's
//! durability answer is the host's return value, carried the same way (`synced`).

use super::{Event, NodeKind, Owner, Wake, World};
use crate::check::Observations;
use crate::engine::Pcg32;
use crate::host::{Bugs, HostIo, SluiceHost};
use sluice_core::delivery::Failure;
use sluice_core::delivery::mx::{AddressAnswer, HostPlan};
use sluice_core::delivery::walk::PlannedHost;
use sluice_core::node::reception::Input as ReceptionInput;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{ClientConfig, Input as ClientInput, OutgoingMessage};
use sluice_core::smtp::server::{ListenerKind, StoreOutcome};
use sluice_core::time::{Duration, Instant};
use std::net::IpAddr;

/// What the world does for a host once the host's method has returned.
#[derive(Debug)]
enum Deferred {
    /// Drive a reused connection's client with its new message.
    Drive { conn: u64, message: OutgoingMessage },
}

/// The world as seen by Sluice host `host` during one of its calls.
#[derive(Debug)]
pub(crate) struct HostPort<'w> {
    world: &'w mut World,
    host: usize,
    deferred: Vec<Deferred>,
}

impl HostPort<'_> {
    fn epoch_now(&self) -> u32 {
        self.world.nodes.get(self.host).map_or(0, |node| node.epoch)
    }

    /// Checked before every request that acts on the world: nothing follows a
    /// deferred one, so running it after the host has returned keeps the order of
    /// events and draws it would have had at once.
    fn in_order(&self) {
        debug_assert!(
            self.deferred.is_empty(),
            "host {} asked the world for more after a deferred request",
            self.host
        );
    }
}

impl HostIo for HostPort<'_> {
    fn name(&self) -> &str {
        self.world
            .nodes
            .get(self.host)
            .map_or("", |node| node.name.as_str())
    }

    fn epoch(&self) -> u32 {
        self.epoch_now()
    }

    fn now(&self) -> Instant {
        self.world.engine.now()
    }

    fn local_now(&self) -> Instant {
        self.world.local_now(self.host)
    }

    fn rng(&mut self) -> &mut Pcg32 {
        self.in_order();
        &mut self.world.engine.rng
    }

    fn bugs(&self) -> Bugs {
        self.world.bugs
    }

    fn record(&mut self, text: &str) {
        self.in_order();
        self.world.engine.record(text);
    }

    fn obs(&mut self) -> &mut Observations {
        self.in_order();
        &mut self.world.obs
    }

    fn count_fault(&mut self, kind: &'static str) {
        self.in_order();
        self.world.count_fault(kind);
    }

    fn fsync(&mut self, write: u64) {
        self.in_order();
        let (low, high) = self.world.fsync_ms;
        let delay = Duration::from_millis(self.world.engine.rng.between(low, high));
        let (host, epoch) = (self.host, self.epoch_now());
        self.world
            .engine
            .after(delay, Event::Synced { host, epoch, write });
    }

    fn wake_queue(&mut self, deadline: Option<Instant>) {
        self.in_order();
        self.world
            .schedule_wake(Wake::Queue(self.host), self.host, deadline);
    }

    fn storing(&mut self, tag: &str) {
        self.in_order();
        let world = &mut *self.world;
        if world.engine.rng.chance(world.crash_on_store_ppm) && !world.faults_over {
            let name = world.place_name(self.host);
            world
                .engine
                .record(&format!("{name} crashes during the store"));
            let at = world.engine.now();
            world.obs.store_crashed(at, tag);
            world.crash_soon(self.host, Duration::ZERO);
        }
    }

    fn promised(&mut self) {
        self.in_order();
        self.world.after_promise(self.host);
    }

    fn send(&mut self, conn: u64, bytes: Vec<u8>) {
        self.in_order();
        if let Some(mut held) = self.world.conns.remove(&conn) {
            self.world.send(conn, &mut held, false, bytes);
            self.world.conns.insert(conn, held);
        }
    }

    fn send_imap(&mut self, conn: u64, bytes: Vec<u8>) {
        self.in_order();
        self.world.imap_send(conn, false, bytes);
    }

    fn connect(
        &mut self,
        attempt: u64,
        address: IpAddr,
        listener: ListenerKind,
        config: ClientConfig,
        message: OutgoingMessage,
    ) -> bool {
        self.in_order();
        let Some(server) = self.world.nodes.iter().position(|node| node.ip == address) else {
            return false;
        };
        let owner = Owner::Attempt {
            host: self.host,
            epoch: self.epoch_now(),
            attempt,
        };
        self.world.connect(owner, server, listener, config, message);
        true
    }

    fn reuse(&mut self, conn: u64, attempt: u64, message: OutgoingMessage) -> bool {
        self.in_order();
        let (host, epoch) = (self.host, self.epoch_now());
        let owner = Owner::Attempt {
            host,
            epoch,
            attempt,
        };
        if !self
            .world
            .claim_pooled(conn, Owner::Pooled { host, epoch }, owner)
        {
            return false;
        }
        self.deferred.push(Deferred::Drive { conn, message });
        true
    }

    fn park(&mut self, conn: u64) {
        self.in_order();
        let owner = Owner::Pooled {
            host: self.host,
            epoch: self.epoch_now(),
        };
        self.world.set_owner(conn, owner);
    }

    fn client_name(&self, ip: IpAddr) -> Option<Domain> {
        self.world.dns.client_name(ip)
    }

    fn host_plan(&mut self, domain: &str, seed: u64) -> (HostPlan, Duration) {
        self.in_order();
        let world = &mut *self.world;
        world.dns.host_plan(&mut world.engine.rng, domain, seed)
    }

    fn address_answer(&mut self, name: &str) -> (AddressAnswer, Duration) {
        self.in_order();
        let world = &mut *self.world;
        world.dns.address_answer(&mut world.engine.rng, name)
    }

    fn plan_after(
        &mut self,
        took: Duration,
        attempt: u64,
        plan: Result<Vec<PlannedHost>, Failure>,
    ) {
        self.in_order();
        let (host, epoch) = (self.host, self.epoch_now());
        self.world.engine.after(
            took,
            Event::Plan {
                host,
                epoch,
                attempt,
                plan,
            },
        );
    }
}

impl World {
    /// Runs `call` on Sluice host `host` with its port, then whatever the host's
    /// requests left for after it; `None` when `host` is not a Sluice host.
    pub(crate) fn with_host<R>(
        &mut self,
        host: usize,
        call: impl FnOnce(&mut SluiceHost, &mut HostPort<'_>) -> R,
    ) -> Option<R> {
        let node = self.nodes.get_mut(host)?;
        let mut sluice = match std::mem::replace(&mut node.kind, NodeKind::Lent) {
            NodeKind::Sluice(sluice) => sluice,
            other => {
                node.kind = other;
                return None;
            }
        };
        let mut port = HostPort {
            world: self,
            host,
            deferred: Vec::new(),
        };
        let result = call(&mut sluice, &mut port);
        let deferred = port.deferred;
        if let Some(node) = self.nodes.get_mut(host) {
            node.kind = NodeKind::Sluice(sluice);
        }
        for action in deferred {
            match action {
                Deferred::Drive { conn, message } => {
                    self.drive_client(conn, Some(ClientInput::Message(message)));
                }
            }
        }
        Some(result)
    }

    /// `with_host` for what concerns one life of the host: nothing when the host
    /// crashed since (`epoch` is stale).
    pub(crate) fn with_host_of(
        &mut self,
        host: usize,
        epoch: u32,
        call: impl FnOnce(&mut SluiceHost, &mut HostPort<'_>),
    ) {
        if self.nodes.get(host).is_some_and(|node| node.epoch == epoch) {
            self.with_host(host, call);
        }
    }

    /// Crashes `host` after `delay` and restarts it after a drawn downtime.
    pub fn crash_soon(&mut self, host: usize, delay: Duration) {
        let (low, high) = self.restart_secs;
        let down = Duration::from_secs(self.engine.rng.between(low, high));
        self.engine.after(delay, Event::Crash(host));
        self.engine.after(delay + down, Event::Restart(host));
    }

    /// The crash-after-250 fault.
    fn after_promise(&mut self, host: usize) {
        if self.engine.rng.chance(self.crash_after_promise_ppm) && !self.faults_over {
            let name = self.place_name(host);
            self.engine.record(&format!("{name} crashes after its 250"));
            self.crash_soon(host, Duration::from_millis(1));
        }
    }

    /// An fsync on `host` finished, unless the host crashed since: the write is
    /// durable or fails with an injected I/O error, and the host tells whoever
    /// waited. A reception's answer is carried to its connection here, and its 250
    /// is the moment of the crash-after-promise fault.
    pub(super) fn synced(&mut self, host: usize, epoch: u32, write: u64) {
        let Some(node) = self.nodes.get(host) else {
            return;
        };
        if node.epoch != epoch || !node.up {
            return;
        }
        let failed = self.engine.rng.chance(self.disk_error_ppm);
        if failed {
            self.count_fault("disk_io_error");
        }
        let Some(synced) = self.with_host(host, |sluice, port| sluice.synced(port, write, failed))
        else {
            return;
        };
        // A mailbox answer first, to the session that waited for it; then every
        // session of the host hears that the mailboxes changed.
        if let Some(answer) = synced.imap {
            self.imap_answered(answer.conn, answer.input);
        }
        if synced.mailboxes_changed {
            self.imap_mailboxes_changed(host);
        }
        if let Some(answer) = synced.persisted {
            let promised = matches!(answer.outcome, StoreOutcome::Stored { .. });
            let input = ReceptionInput::Persisted {
                token: answer.token,
                outcome: answer.outcome,
            };
            self.drive_server_end(answer.conn, Some(input));
            if promised {
                self.after_promise(host);
            }
        }
    }

    /// A host crash: its volatile state and unsynced writes are gone, connections reset.
    pub(super) fn crash(&mut self, host: usize) {
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
            NodeKind::Sluice(sluice) => sluice.crash(),
            NodeKind::Remote(_) | NodeKind::Lent => 0,
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
        self.drop_imap_connections_of(host, silent);
    }

    /// A restart: a Sluice host rebuilds its queue from what its disk made durable.
    pub(super) fn restart(&mut self, host: usize) {
        let Some(node) = self.nodes.get_mut(host) else {
            return;
        };
        if node.up {
            return;
        }
        node.up = true;
        let name = node.name.clone();
        if self
            .with_host(host, |sluice, port| sluice.restart(port))
            .is_none()
        {
            self.engine
                .record(&format!("{name} restarts, 0 queued messages restored"));
        }
    }

    /// A disk-full fault on `host` starts or ends.
    pub(super) fn disk_full(&mut self, host: usize, full: bool) {
        if full && self.faults_over {
            return;
        }
        let name = self.place_name(host);
        let changed = match self.nodes.get_mut(host).map(|node| &mut node.kind) {
            Some(NodeKind::Sluice(sluice)) => sluice.set_disk_full(full),
            _ => false,
        };
        if changed {
            if full {
                self.count_fault("disk_full");
            }
            self.engine.record(&format!("{name} disk full={full}"));
        }
    }
}
