//! Drives core's `node::Reception` for one incoming connection of a Sluice host:
//! carries its bytes, answers its route, name and credential requests from the
//! host's router and directory, and makes each acceptance durable on the simulated
//! disk before answering `Persisted` (see `synced`). Every decision is the
//! machine's; the deliberate bugs live here, in the driver, never in core. The
//! reception itself travels with its connection, which the world holds.

use super::io::HostIo;
use super::store::Write;
use super::{SluiceHost, Waiter, bare};
use sluice_core::machine::{Machine, Token};
use sluice_core::node::reception::{Input, Output};
use sluice_core::node::{Acceptance, Reception, ReceptionConfig};
use sluice_core::router::{Refusal, Route};
use sluice_core::smtp::server::{self, ListenerKind, StoreOutcome};
use std::net::IpAddr;

/// The client of an incoming connection, as the host knows it.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The connection, for the host's answers.
    pub conn: u64,
    pub listener: ListenerKind,
    /// The client's address; `None` for the workload's clients outside every host.
    pub ip: Option<IpAddr>,
}

/// The address a client from outside is written with (TEST-NET-1).
const OUTSIDE_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

impl SluiceHost {
    /// A new reception for a connection from `peer`, at `now` on the host's clock.
    pub fn new_reception(&self, now: sluice_core::time::Instant, peer: &Peer) -> Reception {
        let config = ReceptionConfig {
            hostname: self.hostname.clone(),
            placement: self.placement.clone(),
            client_ip: peer.ip.unwrap_or(OUTSIDE_IP),
        };
        Reception::new(now, self.session_config(peer.listener), config)
    }

    /// Feeds `reception` and carries out what it asks; whether it closed.
    pub fn step_reception(
        &mut self,
        io: &mut dyn HostIo,
        peer: &Peer,
        reception: &mut Reception,
        input: Option<Input>,
    ) -> bool {
        let now = io.local_now();
        if let Some(input) = input {
            reception.handle(now, input);
        }
        let mut closed = false;
        while let Some(output) = reception.poll() {
            let answer = match output {
                Output::Send(bytes) => {
                    io.send(peer.conn, bytes);
                    None
                }
                Output::Close => {
                    closed = true;
                    None
                }
                // The simulation has no TLS.
                Output::StartTls => Some(Input::Session(server::Input::TlsFailed)),
                Output::CheckCredentials { token, credentials } => {
                    let outcome = self.check_credentials(&credentials);
                    Some(Input::Session(server::Input::CredentialsChecked {
                        token,
                        outcome,
                    }))
                }
                Output::Route { token, check } => {
                    let route = self.route_for_reception(io, now, &check);
                    Some(Input::Routed { token, route })
                }
                Output::Name { token } => Some(self.name_message(io, peer, now, token)),
                Output::Persist { token, acceptance } => self
                    .persist_acceptance(io, peer, token, *acceptance)
                    .map(|outcome| Input::Persisted { token, outcome }),
                Output::Unrouted { recipient } => {
                    let text = format!("{} unrouted {}", io.name(), bare(&recipient));
                    io.record(&text);
                    None
                }
                Output::Event(_) => None,
            };
            if let Some(answer) = answer {
                reception.handle(io.local_now(), answer);
            }
        }
        closed
    }

    /// Core's router against the host's directory; the open-relay bug turns a relay
    /// refusal into an external delivery here, in the driver.
    fn route_for_reception(
        &self,
        io: &dyn HostIo,
        now: sluice_core::time::Instant,
        check: &server::RecipientCheck,
    ) -> Route {
        let route = self.route(now, check);
        if io.bugs().open_relay && route == Route::Refused(Refusal::RelayDenied) {
            return Route::Deliver {
                local_mailboxes: Vec::new(),
                external: vec![bare(&check.recipient).to_ascii_lowercase()],
            };
        }
        route
    }

    /// A fresh queue id, the host's wall-clock date and the client's
    /// forward-confirmed name from the simulated DNS (core's `ClientNamer` decides
    /// it, as in net). I/O: the id sequence, the clock and the lookups are the
    /// driver's.
    fn name_message(
        &mut self,
        io: &dyn HostIo,
        peer: &Peer,
        now: sluice_core::time::Instant,
        token: Token,
    ) -> Input {
        let queue_id = self.new_queue_id(io.name(), io.epoch());
        Input::Named {
            token,
            queue_id,
            received_at_ms: i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
            client_name: peer.ip.and_then(|ip| io.client_name(ip)),
        }
    }

    /// Submits the acceptance's write; the answer comes when its fsync does (see
    /// `synced`), unless the write is refused now or a deliberate bug answers early.
    fn persist_acceptance(
        &mut self,
        io: &mut dyn HostIo,
        peer: &Peer,
        token: Token,
        acceptance: Acceptance,
    ) -> Option<StoreOutcome> {
        let bugs = io.bugs();
        let Acceptance {
            mut incoming,
            queued,
        } = acceptance;
        let queue_id = incoming.queue_id.clone();
        if peer.listener == ListenerKind::Lmtp && bugs.deliver_twice_after_crash {
            incoming.delivery_key = queue_id.clone();
        }
        let tag = crate::check::message_tag(&incoming.data).unwrap_or_else(|| "-".to_owned());
        let answered = bugs.ack_before_durability;
        let mut durable = queued.clone();
        if bugs.forget_owed_success
            && let Some(record) = durable.as_mut()
        {
            for recipient in &mut record.recipients {
                recipient.success_owed = false;
            }
        }
        let Ok(write) = self.disk.submit(Write::Accept {
            incoming,
            queued: durable,
        }) else {
            io.count_fault("disk_full_refusal");
            return Some(StoreOutcome::Failed);
        };
        self.waiters.insert(
            write,
            Waiter::Session {
                conn: peer.conn,
                token,
                queue_id: queue_id.clone(),
                queued,
                answered,
            },
        );
        let text = format!("{} store {queue_id} ({tag}) write {write}", io.name());
        io.record(&text);
        io.fsync(write);
        io.storing(&tag);
        if answered {
            // The deliberate bug: the promise before the fsync.
            io.promised();
            return Some(StoreOutcome::Stored { queue_id });
        }
        None
    }
}
