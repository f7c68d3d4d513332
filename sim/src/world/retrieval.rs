//! The world's side of retrieval: the simulated IMAP clients (`imap_client.rs`)
//! and their connections to the host that holds the mailboxes, whose end runs
//! core's `ImapSession` inside the host (`host/imap.rs`). The world carries bytes
//! both ways over the simulated network (latency, resets, partitions, in order),
//! tells a host's sessions when its mailboxes changed, and ends every session of a
//! host that crashes; the clients reconnect by themselves.

use super::imap_client::{ClientAction, ImapClient};
use super::network::{CONNECT_TIMEOUT, OUTSIDE};
use super::{Event, NodeKind, Wake, World};
use sluice_core::imap::{ImapSession, Input as ImapInput};
use sluice_core::machine::Machine;
use sluice_core::time::Instant;

/// One IMAP connection: a client outside every host, and the session on `server`.
#[derive(Debug)]
pub struct ImapConn {
    pub client: usize,
    pub server: usize,
    pub server_epoch: u32,
    session: Option<Box<ImapSession>>,
    to_server_at: Instant,
    to_client_at: Instant,
    broken: bool,
    /// The server end closed (its session is gone).
    server_done: bool,
    /// The client end heard the close, or gave the connection up.
    client_done: bool,
}

impl World {
    /// A client's timer fired (unless a later one replaced it).
    pub(super) fn imap_timer(&mut self, client: usize, generation: u64) {
        let now = self.engine.now();
        let Some(imap) = self.imap_clients.get_mut(client) else {
            return;
        };
        if imap.timer_generation != generation {
            return;
        }
        let actions = imap.on_timer(now, &mut self.engine.rng, &mut self.obs.retrieval);
        self.imap_client_actions(client, actions);
    }

    /// Carries out what a client asked, then sets its timer.
    fn imap_client_actions(&mut self, client: usize, actions: Vec<ClientAction>) {
        for action in actions {
            let conn = self.imap_clients.get(client).and_then(|imap| imap.conn);
            match action {
                ClientAction::Connect => self.imap_connect(client),
                ClientAction::Send(bytes) => {
                    let user = self.imap_clients.get(client).map(|imap| imap.user.clone());
                    let line = String::from_utf8_lossy(&bytes);
                    self.engine.record(&format!(
                        "imap client {} sends {}",
                        user.unwrap_or_default(),
                        line.trim_end()
                    ));
                    if let Some(conn) = conn {
                        self.imap_send(conn, true, bytes);
                    }
                }
                ClientAction::Close => {
                    if let Some(id) = self
                        .imap_conns
                        .iter()
                        .find_map(|(id, c)| (c.client == client && !c.client_done).then_some(*id))
                    {
                        if let Some(held) = self.imap_conns.get_mut(&id) {
                            held.client_done = true;
                        }
                        self.break_imap(id);
                    }
                }
            }
        }
        if let Some(imap) = self.imap_clients.get_mut(client)
            && let Some((at, generation)) = imap.take_timer()
        {
            let at = at.max(self.engine.now());
            self.engine.at(at, Event::ImapTimer { client, generation });
        }
    }

    fn imap_connect(&mut self, client: usize) {
        self.next_conn += 1;
        let id = self.next_conn;
        let server = self.mailbox_host;
        let now = self.engine.now();
        let server_epoch = self.nodes.get(server).map_or(0, |node| node.epoch);
        self.imap_conns.insert(
            id,
            ImapConn {
                client,
                server,
                server_epoch,
                session: None,
                to_server_at: now,
                to_client_at: now,
                broken: false,
                server_done: false,
                client_done: false,
            },
        );
        let reachable = self.nodes.get(server).is_some_and(|node| node.up)
            && self.network.reachable(OUTSIDE, server);
        self.engine.record(&format!(
            "conn {id} open imap client {client} -> {}{}",
            self.place_name(server),
            if reachable { "" } else { " unreachable" }
        ));
        if reachable {
            let latency = self.network.latency(&mut self.engine.rng);
            self.engine.after(latency, Event::ImapAccepted(id));
        } else {
            self.engine
                .after(CONNECT_TIMEOUT, Event::ImapConnectFailed(id));
        }
    }

    pub(super) fn imap_accepted(&mut self, id: u64) {
        let Some(conn) = self.imap_conns.get(&id) else {
            return;
        };
        let (server, epoch, client) = (conn.server, conn.server_epoch, conn.client);
        let alive = self
            .nodes
            .get(server)
            .is_some_and(|node| node.up && node.epoch == epoch)
            && self.network.reachable(OUTSIDE, server);
        let session = match self.nodes.get(server).map(|node| &node.kind) {
            Some(NodeKind::Sluice(sluice)) if alive => {
                Some(sluice.new_imap_session(self.local_now(server)))
            }
            _ => None,
        };
        let Some(session) = session else {
            return self.imap_connect_failed(id);
        };
        if let Some(conn) = self.imap_conns.get_mut(&id) {
            conn.session = Some(Box::new(session));
        }
        let now = self.engine.now();
        if let Some(imap) = self.imap_clients.get_mut(client) {
            imap.on_connected(now, id);
        }
        self.drive_imap_server(id, None);
        self.imap_client_actions(client, Vec::new());
    }

    pub(super) fn imap_connect_failed(&mut self, id: u64) {
        let Some(conn) = self.imap_conns.remove(&id) else {
            return;
        };
        self.engine.record(&format!("conn {id} failed to connect"));
        let now = self.engine.now();
        if let Some(imap) = self.imap_clients.get_mut(conn.client) {
            imap.on_closed(now, &mut self.engine.rng, &mut self.obs.retrieval);
        }
        self.imap_client_actions(conn.client, Vec::new());
    }

    pub(super) fn imap_bytes(&mut self, id: u64, to_server: bool, bytes: Vec<u8>) {
        let Some(conn) = self.imap_conns.get(&id) else {
            return;
        };
        if conn.broken {
            return;
        }
        if to_server {
            self.drive_imap_server(id, Some(ImapInput::Bytes(bytes)));
            return;
        }
        let client = conn.client;
        let now = self.engine.now();
        let Some(imap) = self.imap_clients.get_mut(client) else {
            return;
        };
        if imap.conn != Some(id) {
            return;
        }
        let actions = imap.on_bytes(now, &mut self.engine.rng, &mut self.obs.retrieval, &bytes);
        self.imap_client_actions(client, actions);
    }

    pub(super) fn imap_closed(&mut self, id: u64, to_server: bool) {
        if to_server {
            self.drive_imap_server(id, Some(ImapInput::PeerClosed));
            if let Some(conn) = self.imap_conns.get_mut(&id) {
                conn.session = None;
                conn.server_done = true;
            }
        } else if let Some(conn) = self.imap_conns.get_mut(&id) {
            let client = conn.client;
            let was_done = std::mem::replace(&mut conn.client_done, true);
            let now = self.engine.now();
            if !was_done
                && let Some(imap) = self.imap_clients.get_mut(client)
                && imap.conn == Some(id)
            {
                imap.on_closed(now, &mut self.engine.rng, &mut self.obs.retrieval);
                self.imap_client_actions(client, Vec::new());
            }
        }
        self.imap_remove_if_done(id);
    }

    fn imap_remove_if_done(&mut self, id: u64) {
        if self
            .imap_conns
            .get(&id)
            .is_some_and(|conn| conn.server_done && conn.client_done)
        {
            self.imap_conns.remove(&id);
        }
    }

    /// Feeds the session of `id` on its host, which answers its requests.
    pub(super) fn drive_imap_server(&mut self, id: u64, input: Option<ImapInput>) {
        let Some(conn) = self.imap_conns.get_mut(&id) else {
            return;
        };
        let Some(mut session) = conn.session.take() else {
            return;
        };
        let server = conn.server;
        let closed = self
            .with_host(server, |sluice, port| {
                sluice.step_imap(port, id, &mut session, input)
            })
            .unwrap_or(true);
        let deadline = session.next_deadline();
        let Some(conn) = self.imap_conns.get_mut(&id) else {
            return;
        };
        if closed {
            conn.server_done = true;
            if !conn.broken {
                let latency = self.network.latency(&mut self.engine.rng);
                let at = (self.engine.now() + latency).max(conn.to_client_at);
                self.engine.at(
                    at,
                    Event::ImapClosed {
                        conn: id,
                        to_server: false,
                    },
                );
            }
        } else {
            conn.session = Some(session);
            self.schedule_wake(Wake::ImapServer(id), server, deadline);
        }
    }

    /// Sends bytes down one direction of an IMAP connection, in order, unless the
    /// network resets it or a partition cuts it.
    pub(crate) fn imap_send(&mut self, id: u64, to_server: bool, bytes: Vec<u8>) {
        let Some(conn) = self.imap_conns.get(&id) else {
            return;
        };
        if conn.broken {
            return;
        }
        if !self.network.reachable(OUTSIDE, conn.server)
            || self.network.resets_now(&mut self.engine.rng)
        {
            self.count_fault("connection_reset");
            self.break_imap(id);
            return;
        }
        let latency = self.network.latency(&mut self.engine.rng);
        let now = self.engine.now();
        let Some(conn) = self.imap_conns.get_mut(&id) else {
            return;
        };
        let last = if to_server {
            &mut conn.to_server_at
        } else {
            &mut conn.to_client_at
        };
        let at = (now + latency).max(*last);
        *last = at;
        self.engine.at(
            at,
            Event::ImapBytes {
                conn: id,
                to_server,
                bytes,
            },
        );
    }

    /// A reset: bytes in flight are dropped and both ends hear the peer went away.
    fn break_imap(&mut self, id: u64) {
        let Some(conn) = self.imap_conns.get_mut(&id) else {
            return;
        };
        if conn.broken {
            return;
        }
        conn.broken = true;
        self.engine.record(&format!("conn {id} reset"));
        let latency = self.network.latency(&mut self.engine.rng);
        for to_server in [true, false] {
            self.engine.after(
                latency,
                Event::ImapClosed {
                    conn: id,
                    to_server,
                },
            );
        }
    }

    /// A crash of `host`: its sessions are gone; their clients hear a reset, or,
    /// for a silent crash, nothing (they find out by their own timeout).
    pub(super) fn drop_imap_connections_of(&mut self, host: usize, silent: bool) {
        let touched: Vec<u64> = self
            .imap_conns
            .iter()
            .filter(|(_, conn)| conn.server == host)
            .map(|(id, _)| *id)
            .collect();
        for id in touched {
            if let Some(conn) = self.imap_conns.get_mut(&id) {
                conn.session = None;
                conn.server_done = true;
            }
            if !silent {
                self.break_imap(id);
            }
            self.imap_remove_if_done(id);
        }
    }

    /// A partition: every IMAP connection it cuts breaks.
    pub(super) fn cut_imap_connections(&mut self) {
        let cut: Vec<u64> = self
            .imap_conns
            .iter()
            .filter(|(_, conn)| !self.network.reachable(OUTSIDE, conn.server))
            .map(|(id, _)| *id)
            .collect();
        for id in cut {
            self.break_imap(id);
        }
    }

    /// `host`'s mailboxes changed: each of its sessions hears it, to report new
    /// messages (at once to a client in IDLE).
    pub(crate) fn imap_mailboxes_changed(&mut self, host: usize) {
        let sessions: Vec<u64> = self
            .imap_conns
            .iter()
            .filter(|(_, conn)| conn.server == host && conn.session.is_some() && !conn.broken)
            .map(|(id, _)| *id)
            .collect();
        for id in sessions {
            self.drive_imap_server(id, Some(ImapInput::MailboxChanged));
        }
    }

    /// A mailbox answer the host made once its write was durable, for the session
    /// of connection `id`.
    pub(crate) fn imap_answered(&mut self, id: u64, input: ImapInput) {
        self.drive_imap_server(id, Some(input));
    }

    /// Adds the IMAP clients, each starting at `starts`.
    pub fn add_imap_clients(&mut self, host: usize, clients: Vec<(ImapClient, Instant)>) {
        self.mailbox_host = host;
        for (mut client, start) in clients {
            client.start(start);
            self.imap_clients.push(client);
            let index = self.imap_clients.len() - 1;
            self.imap_client_actions(index, Vec::new());
        }
    }
}
