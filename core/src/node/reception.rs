//! The receiving side of a node, as one machine per connection: the SMTP or LMTP
//! server session, the routes its recipients got at RCPT time, and the record of
//! each accepted message. Drivers (`net` on sockets, `sim` on simulated ones) feed
//! it bytes and answers and carry out its requests; the order of those requests is
//! the node's durability contract: a message is named, then made durable, then
//! handed to the queue, and only then does the session say 250.

use super::accepted::{Acceptance, ClientTrace, PlacementPolicy, Receiver, Stamp, accept};
use crate::machine::{Machine, Token};
use crate::router::Route;
use crate::smtp::address::{Domain, ForwardPath};
use crate::smtp::server::{
    self, AcceptedMessage, Credentials, ListenerKind, RecipientCheck, ServerSession, SessionConfig,
    SessionEvent, StoreOutcome,
};
use crate::time::Instant;
use core::net::IpAddr;
use std::collections::VecDeque;

/// What a reception needs besides its session's configuration.
#[derive(Clone, Debug)]
pub struct ReceptionConfig {
    /// This node's name, for the Received field.
    pub hostname: Domain,
    pub placement: PlacementPolicy,
    /// The client's address (after any PROXY header).
    pub client_ip: IpAddr,
}

/// Something that happened to the reception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes, TLS results, credential answers, ticks, the peer closing, shutdown:
    /// everything the session itself understands.
    Session(server::Input),
    /// The answer to [`Output::Route`].
    Routed { token: Token, route: Route },
    /// The answer to [`Output::Name`]: the accepted message's id, date and the
    /// client's name if a reverse lookup has found one by now.
    Named {
        token: Token,
        queue_id: String,
        received_at_ms: i64,
        client_name: Option<Domain>,
    },
    /// The answer to [`Output::Persist`]: whether the message is durable (and, on
    /// LMTP, what became of each recipient's copy).
    Persisted { token: Token, outcome: StoreOutcome },
}

/// Something the reception wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Begin the TLS handshake now; answer with the session's TLS inputs.
    StartTls,
    /// Check a username and password; answer with the session's credential input.
    CheckCredentials {
        token: Token,
        credentials: Credentials,
    },
    /// Run the router for this recipient; answer with [`Input::Routed`].
    Route { token: Token, check: RecipientCheck },
    /// Name the accepted message (a fresh queue id and the wall-clock date);
    /// answer with [`Input::Named`].
    Name { token: Token },
    /// Carry out `acceptance` (see [`Acceptance`] for the order); answer with
    /// [`Input::Persisted`].
    Persist {
        token: Token,
        acceptance: Box<Acceptance>,
    },
    /// Close the connection (after writing everything sent before).
    Close,
    /// Something worth logging or counting happened.
    Event(SessionEvent),
    /// The node refused a message the session had accepted because a recipient
    /// has no route (a driver that answered a route for the wrong token); the
    /// client got 451 and may send again.
    Unrouted { recipient: ForwardPath },
}

/// One connection's reception; see the module documentation.
#[derive(Debug)]
pub struct Reception {
    session: ServerSession,
    config: ReceptionConfig,
    lmtp: bool,
    /// Recipient checks sent to the router, not yet answered.
    routing: Vec<(Token, ForwardPath)>,
    /// Routes of the recipients of the transaction in progress (the last one for
    /// a recipient named twice wins). Cleared when a transaction starts, so it
    /// never holds more than the session's recipient limit.
    routes: Vec<(ForwardPath, Route)>,
    /// The message waiting for its name.
    naming: Option<(Token, AcceptedMessage)>,
    outputs: VecDeque<Output>,
}

impl Reception {
    pub fn new(now: Instant, session: SessionConfig, config: ReceptionConfig) -> Reception {
        let lmtp = session.kind == ListenerKind::Lmtp;
        let mut reception = Reception {
            session: ServerSession::new(now, session),
            config,
            lmtp,
            routing: Vec::new(),
            routes: Vec::new(),
            naming: None,
            outputs: VecDeque::new(),
        };
        // The greeting.
        reception.drain_session();
        reception
    }

    /// Whether the session reads input now (false while it waits for an answer).
    pub fn wants_input(&self) -> bool {
        self.session.wants_input()
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// The routes held (bounded by the session's recipient limit).
    pub fn routes_held(&self) -> usize {
        self.routes.len()
    }

    /// Moves the session's outputs into ours, turning its requests into the node's.
    fn drain_session(&mut self) {
        while let Some(output) = self.session.poll() {
            let output = match output {
                server::Output::Send(bytes) => Output::Send(bytes),
                server::Output::StartTls => Output::StartTls,
                server::Output::CheckCredentials { token, credentials } => {
                    Output::CheckCredentials { token, credentials }
                }
                server::Output::CheckRecipient { token, check } => {
                    if self.session.recipients_held() == 0 {
                        // The first recipient of a transaction: earlier routes are stale.
                        self.routes.clear();
                    }
                    self.routing.push((token, check.recipient.clone()));
                    Output::Route { token, check }
                }
                server::Output::StoreMessage { token, message } => {
                    self.naming = Some((token, message));
                    Output::Name { token }
                }
                server::Output::Close => Output::Close,
                server::Output::Event(event) => Output::Event(event),
            };
            self.outputs.push_back(output);
        }
    }

    fn on_routed(&mut self, now: Instant, token: Token, route: Route) {
        let Some(at) = self.routing.iter().position(|(asked, _)| *asked == token) else {
            return;
        };
        let (_, recipient) = self.routing.swap_remove(at);
        let verdict = route.verdict();
        if route.is_deliver() {
            self.routes.push((recipient, route));
        }
        self.session
            .handle(now, server::Input::RecipientChecked { token, verdict });
    }

    fn on_named(&mut self, now: Instant, token: Token, stamp: Stamp) {
        let Some((waiting, message)) = self.naming.take() else {
            return;
        };
        if waiting != token {
            self.naming = Some((waiting, message));
            return;
        }
        let receiver = Receiver {
            hostname: &self.config.hostname,
            placement: &self.config.placement,
            lmtp: self.lmtp,
        };
        let built = accept(&message, &self.routes, &stamp, &receiver);
        self.routes.clear();
        match built {
            Some(acceptance) => self.outputs.push_back(Output::Persist {
                token,
                acceptance: Box::new(acceptance),
            }),
            None => {
                let recipient = message
                    .recipients
                    .first()
                    .map_or(ForwardPath::Postmaster, |recipient| recipient.path.clone());
                self.outputs.push_back(Output::Unrouted { recipient });
                let outcome = StoreOutcome::Failed;
                self.session
                    .handle(now, server::Input::MessageStored { token, outcome });
            }
        }
    }
}

impl Machine for Reception {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Session(input) => self.session.handle(now, input),
            Input::Routed { token, route } => self.on_routed(now, token, route),
            Input::Named {
                token,
                queue_id,
                received_at_ms,
                client_name,
            } => {
                let stamp = Stamp {
                    queue_id,
                    received_at_ms,
                    client: ClientTrace {
                        ip: self.config.client_ip,
                        name: client_name,
                    },
                };
                self.on_named(now, token, stamp);
            }
            Input::Persisted { token, outcome } => self
                .session
                .handle(now, server::Input::MessageStored { token, outcome }),
        }
        self.drain_session();
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.session.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::DeliveryPolicy;
    use crate::node::RoutedRecipient;
    use crate::router::MailboxAccess;
    use crate::smtp::server::{Limits, TlsMode};

    fn domain(name: &str) -> Domain {
        Domain::parse(name).expect("domain")
    }

    fn reception(mailboxes: MailboxAccess) -> Reception {
        let session = SessionConfig {
            kind: ListenerKind::Mx,
            hostname: domain("mx.example.com"),
            tls: TlsMode::Unavailable,
            auth_requires_tls: true,
            limits: Limits::default(),
        };
        let config = ReceptionConfig {
            hostname: domain("mx.example.com"),
            placement: PlacementPolicy {
                mailboxes,
                delivery: DeliveryPolicy::default(),
            },
            client_ip: "192.0.2.7".parse().expect("ip"),
        };
        Reception::new(Instant::from_millis(0), session, config)
    }

    fn send(reception: &mut Reception, line: &str) {
        let bytes = format!("{line}\r\n").into_bytes();
        reception.handle(
            Instant::from_millis(1),
            Input::Session(server::Input::Bytes(bytes)),
        );
    }

    fn drain(reception: &mut Reception) -> Vec<Output> {
        std::iter::from_fn(|| reception.poll()).collect()
    }

    fn replies(outputs: &[Output]) -> String {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn local(address: &str) -> Route {
        Route::Deliver {
            local_mailboxes: vec![address.to_owned()],
            external: vec![],
        }
    }

    /// Answers the one route request in `outputs` with `route`.
    fn answer_route(reception: &mut Reception, outputs: &[Output], route: Route) {
        let token = outputs
            .iter()
            .find_map(|output| match output {
                Output::Route { token, .. } => Some(*token),
                _ => None,
            })
            .expect("a route request");
        reception.handle(Instant::from_millis(2), Input::Routed { token, route });
    }

    /// Sends one message to `rcpt` routed by `route`, up to the name request.
    fn up_to_name(reception: &mut Reception, rcpt: &str, route: Route) -> Token {
        up_to_name_with(reception, &format!("<{rcpt}>"), route)
    }

    /// Likewise, with RCPT's whole argument (the path and its parameters).
    fn up_to_name_with(reception: &mut Reception, rcpt: &str, route: Route) -> Token {
        send(reception, "EHLO client.example.org");
        send(reception, "MAIL FROM:<alice@example.org>");
        send(reception, &format!("RCPT TO:{rcpt}"));
        let outputs = drain(reception);
        answer_route(reception, &outputs, route);
        send(reception, "DATA");
        send(reception, "Subject: hi\r\n\r\nbody\r\n.");
        let outputs = drain(reception);
        assert!(
            !replies(&outputs).contains("250 2.0.0"),
            "no promise before durability: {outputs:?}"
        );
        outputs
            .iter()
            .find_map(|output| match output {
                Output::Name { token } => Some(*token),
                _ => None,
            })
            .expect("a name request")
    }

    fn named(token: Token) -> Input {
        Input::Named {
            token,
            queue_id: "Q1".to_owned(),
            received_at_ms: 1_700_000_000_000,
            client_name: Some(domain("client.example.org")),
        }
    }

    /// Names the message of `token` and returns the acceptance it is to persist.
    fn named_and_accepted(reception: &mut Reception, token: Token) -> Box<Acceptance> {
        reception.handle(Instant::from_millis(3), named(token));
        drain(reception)
            .into_iter()
            .find_map(|output| match output {
                Output::Persist { acceptance, .. } => Some(acceptance),
                _ => None,
            })
            .expect("a persist request")
    }

    #[test]
    fn a_local_message_is_named_made_durable_then_promised() {
        let mut reception = reception(MailboxAccess::InProcess);
        let token = up_to_name(&mut reception, "bob@example.com", local("bob@example.com"));
        reception.handle(Instant::from_millis(3), named(token));
        let outputs = drain(&mut reception);
        let acceptance = outputs
            .iter()
            .find_map(|output| match output {
                Output::Persist { acceptance, .. } => Some(acceptance.clone()),
                _ => None,
            })
            .expect("a persist request");
        assert!(replies(&outputs).is_empty(), "still no 250: {outputs:?}");
        let incoming = &acceptance.incoming;
        assert_eq!(incoming.queue_id, "Q1");
        assert_eq!(incoming.delivery_key, "Q1");
        assert_eq!(
            incoming.recipients,
            vec![RoutedRecipient::local("bob@example.com", "bob@example.com")]
        );
        assert!(acceptance.queued.is_none());
        let text = String::from_utf8_lossy(&incoming.data);
        assert!(
            text.starts_with("Received: from client.example.org"),
            "{text}"
        );
        assert!(text.contains("[192.0.2.7]"), "{text}");
        assert!(text.ends_with("Subject: hi\r\n\r\nbody\r\n"), "{text}");
        reception.handle(
            Instant::from_millis(4),
            Input::Persisted {
                token,
                outcome: StoreOutcome::Stored {
                    queue_id: "Q1".to_owned(),
                },
            },
        );
        assert!(replies(&drain(&mut reception)).starts_with("250 2.0.0"));
    }

    #[test]
    fn a_local_copy_asked_for_success_owes_its_notice_in_the_queue_record() {
        let mut reception = reception(MailboxAccess::InProcess);
        let token = up_to_name_with(
            &mut reception,
            "<bob@example.com> NOTIFY=SUCCESS ORCPT=rfc822;Bob@example.com",
            local("bob@example.com"),
        );
        let acceptance = named_and_accepted(&mut reception, token);
        let copy = &acceptance.incoming.recipients[0];
        assert!(acceptance.incoming.owes_success_notice(copy));
        let queued = acceptance.queued.expect("the debt goes to the queue");
        assert_eq!(queued.reverse_path.as_deref(), Some("alice@example.org"));
        let [owed] = queued.recipients.as_slice() else {
            panic!("one recipient: {queued:?}");
        };
        assert_eq!(owed.address, "bob@example.com");
        assert!(owed.success_owed);
        assert!(owed.state.is_final(), "written into the mailbox already");
        assert_eq!(owed.destination, crate::node::local_destination());
        assert_eq!(
            owed.original.as_ref().map(|orcpt| orcpt.address.as_str()),
            Some("Bob@example.com")
        );
    }

    #[test]
    fn a_gateway_queues_local_mailboxes_for_its_backend() {
        let mut reception = reception(MailboxAccess::Lmtp {
            host: "backend.example.com".to_owned(),
            port: 24,
        });
        let token = up_to_name(&mut reception, "bob@example.com", local("bob@example.com"));
        let acceptance = named_and_accepted(&mut reception, token);
        let queued = acceptance.queued.expect("queued copies");
        assert_eq!(queued.queue_id, "Q1");
        assert_eq!(queued.reverse_path.as_deref(), Some("alice@example.org"));
        assert_eq!(queued.recipients.len(), 1);
        assert_eq!(queued.recipients[0].address, "bob@example.com");
    }

    #[test]
    fn a_failed_write_is_answered_451_and_routes_do_not_outlive_a_transaction() {
        let mut reception = reception(MailboxAccess::InProcess);
        let token = up_to_name(&mut reception, "bob@example.com", local("bob@example.com"));
        reception.handle(Instant::from_millis(3), named(token));
        drain(&mut reception);
        let outcome = StoreOutcome::Failed;
        reception.handle(Instant::from_millis(4), Input::Persisted { token, outcome });
        assert!(replies(&drain(&mut reception)).starts_with("451 4.3.0"));
        assert_eq!(reception.routes_held(), 0);
        // Transactions abandoned with RSET keep only the current one's routes.
        for round in 0..20 {
            send(&mut reception, "MAIL FROM:<alice@example.org>");
            send(&mut reception, &format!("RCPT TO:<u{round}@example.com>"));
            let outputs = drain(&mut reception);
            answer_route(
                &mut reception,
                &outputs,
                local(&format!("u{round}@example.com")),
            );
            send(&mut reception, "RSET");
            drain(&mut reception);
        }
        assert_eq!(reception.routes_held(), 1);
    }

    #[test]
    fn answers_with_unknown_tokens_are_ignored() {
        let mut reception = reception(MailboxAccess::InProcess);
        let token = up_to_name(&mut reception, "bob@example.com", local("bob@example.com"));
        reception.handle(Instant::from_millis(3), named(Token(token.0 + 100)));
        reception.handle(
            Instant::from_millis(3),
            Input::Routed {
                token: Token(999),
                route: local("x@example.com"),
            },
        );
        assert!(drain(&mut reception).is_empty());
        reception.handle(Instant::from_millis(3), named(token));
        assert!(
            drain(&mut reception)
                .iter()
                .any(|output| matches!(output, Output::Persist { .. }))
        );
    }
}
