//! Drives core's `node::Reception` for one incoming connection of a Sluice host:
//! carries its bytes, answers its route, name and credential requests from the
//! host's router and directory, and makes each acceptance durable on the simulated
//! disk before answering `Persisted` (see `synced`). Every decision is the
//! machine's; the deliberate bugs live here, in the driver, never in core.

use super::Waiter;
use super::store::Write;
use crate::world::{Conn, NodeKind, World, bare};
use sluice_core::machine::{Machine, Token};
use sluice_core::node::reception::{Input, Output};
use sluice_core::node::{Acceptance, Reception, ReceptionConfig};
use sluice_core::router::{Refusal, Route};
use sluice_core::smtp::server::{self, ListenerKind, StoreOutcome};

impl World {
    /// A new reception on `host` for a connection from `client_place`.
    pub(crate) fn new_reception(
        &self,
        host: usize,
        client_place: usize,
        listener: ListenerKind,
    ) -> Option<Reception> {
        let Some(NodeKind::Sluice(sluice)) = self.nodes.get(host).map(|node| &node.kind) else {
            return None;
        };
        let client_ip = self
            .nodes
            .get(client_place)
            .map_or(std::net::IpAddr::from([192, 0, 2, 1]), |node| node.ip);
        let config = ReceptionConfig {
            hostname: sluice.hostname.clone(),
            placement: sluice.placement.clone(),
            client_ip,
        };
        let now = self.local_now(host);
        Some(Reception::new(now, sluice.session_config(listener), config))
    }

    /// Feeds `reception` and carries out what it asks; whether it closed.
    pub(crate) fn step_reception(
        &mut self,
        id: u64,
        conn: &mut Conn,
        reception: &mut Reception,
        input: Option<Input>,
    ) -> bool {
        let host = conn.server;
        let now = self.local_now(host);
        if let Some(input) = input {
            reception.handle(now, input);
        }
        let mut closed = false;
        while let Some(output) = reception.poll() {
            let answer = match output {
                Output::Send(bytes) => {
                    self.send(id, conn, false, bytes);
                    None
                }
                Output::Close => {
                    closed = true;
                    None
                }
                // The simulation has no TLS.
                Output::StartTls => Some(Input::Session(server::Input::TlsFailed)),
                Output::CheckCredentials { token, credentials } => {
                    let outcome = match self.nodes.get(host).map(|node| &node.kind) {
                        Some(NodeKind::Sluice(sluice)) => sluice.check_credentials(&credentials),
                        _ => server::CredentialOutcome::Invalid,
                    };
                    Some(Input::Session(server::Input::CredentialsChecked {
                        token,
                        outcome,
                    }))
                }
                Output::Route { token, check } => {
                    let route = self.route_for_reception(host, now, &check);
                    Some(Input::Routed { token, route })
                }
                Output::Name { token } => {
                    Some(self.name_message(host, conn.client_place, now, token))
                }
                Output::Persist { token, acceptance } => self
                    .persist_acceptance(id, conn, token, *acceptance)
                    .map(|outcome| Input::Persisted { token, outcome }),
                Output::Unrouted { recipient } => {
                    let name = self.place_name(host);
                    self.engine
                        .record(&format!("{name} unrouted {}", bare(&recipient)));
                    None
                }
                Output::Event(_) => None,
            };
            if let Some(answer) = answer {
                reception.handle(self.local_now(host), answer);
            }
        }
        closed
    }

    /// Core's router against the host's directory; the open-relay bug turns a relay
    /// refusal into an external delivery here, in the driver.
    fn route_for_reception(
        &mut self,
        host: usize,
        now: sluice_core::time::Instant,
        check: &server::RecipientCheck,
    ) -> Route {
        let Some(NodeKind::Sluice(sluice)) = self.nodes.get(host).map(|node| &node.kind) else {
            return Route::TemporaryFailure(sluice_core::router::TemporaryReason::Timeout);
        };
        let route = sluice.route(now, check);
        if self.bugs.open_relay && route == Route::Refused(Refusal::RelayDenied) {
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
        host: usize,
        client_place: usize,
        now: sluice_core::time::Instant,
        token: Token,
    ) -> Input {
        let (name, epoch) = self
            .nodes
            .get(host)
            .map_or((String::new(), 0), |node| (node.name.clone(), node.epoch));
        let queue_id = match self.sluice(host) {
            Some(sluice) => sluice.new_queue_id(&name, epoch),
            None => String::from("Q-none"),
        };
        Input::Named {
            token,
            queue_id,
            received_at_ms: i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
            client_name: self
                .nodes
                .get(client_place)
                .and_then(|client| self.dns.client_name(client.ip)),
        }
    }

    /// Submits the acceptance's write; the answer comes when its fsync does (see
    /// `synced`), unless the write is refused now or a deliberate bug answers early.
    fn persist_acceptance(
        &mut self,
        id: u64,
        conn: &Conn,
        token: Token,
        acceptance: Acceptance,
    ) -> Option<StoreOutcome> {
        let host = conn.server;
        let (name, epoch) = self
            .nodes
            .get(host)
            .map(|node| (node.name.clone(), node.epoch))?;
        let Acceptance {
            mut incoming,
            queued,
        } = acceptance;
        let queue_id = incoming.queue_id.clone();
        if conn.listener == ListenerKind::Lmtp && self.bugs.deliver_twice_after_crash {
            incoming.delivery_key = queue_id.clone();
        }
        let tag = crate::check::message_tag(&incoming.data).unwrap_or_else(|| "-".to_owned());
        let answered = self.bugs.ack_before_durability;
        let mut durable = queued.clone();
        if self.bugs.forget_owed_success
            && let Some(record) = durable.as_mut()
        {
            for recipient in &mut record.recipients {
                recipient.success_owed = false;
            }
        }
        let sluice = self.sluice(host)?;
        let Ok(write) = sluice.disk.submit(Write::Accept {
            incoming,
            queued: durable,
        }) else {
            self.count_fault("disk_full_refusal");
            return Some(StoreOutcome::Failed);
        };
        sluice.waiters.insert(
            write,
            Waiter::Session {
                conn: id,
                token,
                queue_id: queue_id.clone(),
                queued,
                answered,
            },
        );
        self.engine
            .record(&format!("{name} store {queue_id} ({tag}) write {write}"));
        self.schedule_fsync(host, epoch, write);
        if self.engine.rng.chance(self.crash_on_store_ppm) && !self.faults_over {
            self.engine
                .record(&format!("{name} crashes during the store"));
            let at = self.engine.now();
            self.obs.store_crashed(at, &tag);
            self.crash_soon(host, sluice_core::time::Duration::ZERO);
        }
        if answered {
            // The deliberate bug: the promise before the fsync.
            self.after_promise(host);
            return Some(StoreOutcome::Stored { queue_id });
        }
        None
    }
}
