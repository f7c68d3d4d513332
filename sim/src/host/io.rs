//! What a Sluice host needs from its surroundings, and nothing more: `HostIo`, the
//! host's one window on the simulated world. A host keeps its own state and runs its
//! own machines; for time, randomness, timers, the network, DNS, the checkers'
//! observations and the faults injected at its moments it asks this context, which
//! the world implements for one host at a time.
//!
//! The contract that keeps the boundary simple: a call on the context never calls
//! back into the host. Whatever the world does in answer that concerns the host again
//! (a reused connection's client driven with its new message) runs after the host's
//! method has returned, and reaches the host as a new call.

use super::Bugs;
use crate::check::Observations;
use crate::engine::Pcg32;
use sluice_core::delivery::Failure;
use sluice_core::delivery::mx::{AddressAnswer, HostPlan};
use sluice_core::delivery::walk::PlannedHost;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{ClientConfig, OutgoingMessage};
use sluice_core::smtp::server::ListenerKind;
use sluice_core::time::{Duration, Instant};
use std::net::IpAddr;

/// The surroundings of one Sluice host, as the host sees them.
pub trait HostIo {
    // Who and when.

    /// The host's name (its node's name: trace lines, observations, queue ids).
    fn name(&self) -> &str;
    /// The host's life: bumped by every crash.
    fn epoch(&self) -> u32;
    /// The simulation's clock, which observations are stamped with.
    fn now(&self) -> Instant;
    /// The host's own clock (Unix milliseconds, moved by clock jumps): what its
    /// machines are given.
    fn local_now(&self) -> Instant;
    /// The run's generator: every draw of the run comes from it, in order.
    fn rng(&mut self) -> &mut Pcg32;
    /// The deliberate bugs switched on for this run.
    fn bugs(&self) -> Bugs;

    // What the checkers and the trace see.

    /// Writes one trace line.
    fn record(&mut self, text: &str);
    /// The observation log the checkers read at the end.
    fn obs(&mut self) -> &mut Observations;
    /// Counts an injected fault (or a fault's consequence) for the summary.
    fn count_fault(&mut self, kind: &'static str);

    // The disk and the queue's timer.

    /// Starts the fsync of the disk's `write`; the host hears `synced` when it ends.
    fn fsync(&mut self, write: u64);
    /// Wakes the host's queue with a tick at its `deadline` (on the host's clock).
    fn wake_queue(&mut self, deadline: Option<Instant>);

    // Faults the world may inject at the host's moments.

    /// The host is storing an accepted message (`tag`): the crash-during-store fault.
    fn storing(&mut self, tag: &str);
    /// The host has promised a message (its 250 is on the way): the
    /// crash-after-promise fault.
    fn promised(&mut self);

    // Connections.

    /// Sends bytes to the client of incoming connection `conn`.
    fn send(&mut self, conn: u64, bytes: Vec<u8>);
    /// Sends bytes to the IMAP client of connection `conn`.
    fn send_imap(&mut self, conn: u64, bytes: Vec<u8>);
    /// Opens a connection for delivery attempt `attempt` to the host at `address`;
    /// its client starts with `message` once connected, and the attempt hears how it
    /// went. False when no host of the simulation has that address.
    fn connect(
        &mut self,
        attempt: u64,
        address: IpAddr,
        listener: ListenerKind,
        config: ClientConfig,
        message: OutgoingMessage,
    ) -> bool;
    /// Hands `message` for attempt `attempt` to `conn`, an idle connection this host
    /// parked; false when it can no longer take it (gone, closed, broken, or not
    /// this life's).
    fn reuse(&mut self, conn: u64, attempt: u64, message: OutgoingMessage) -> bool;
    /// Parks `conn`, whose message is done, in the host's pool: its close reaches
    /// `pooled_closed`.
    fn park(&mut self, conn: u64);

    // DNS.

    /// The forward-confirmed name of a connecting client's address.
    fn client_name(&self, ip: IpAddr) -> Option<Domain>;
    /// Answers core's planner for `domain`'s MX hosts; with the time the lookups took.
    fn host_plan(&mut self, domain: &str, seed: u64) -> (HostPlan, Duration);
    /// The addresses of `name`; with the time the lookup took.
    fn address_answer(&mut self, name: &str) -> (AddressAnswer, Duration);
    /// Hands attempt `attempt` its plan after `took`, the time its lookups took.
    fn plan_after(&mut self, took: Duration, attempt: u64, plan: Result<Vec<PlannedHost>, Failure>);
}
