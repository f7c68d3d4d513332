//! The client against the real server session machine: both pure, wired byte for
//! byte, with a driver that accepts or refuses recipients and stores every message.

use super::*;
use crate::smtp::address::ForwardPath;
use crate::smtp::server::{
    self, ListenerKind, RecipientVerdict, ServerSession, StoreOutcome, TlsMode,
};

/// Runs one client session against one server session until both are quiet.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    now: Instant,
    messages: VecDeque<OutgoingMessage>,
    stored: Vec<server::AcceptedMessage>,
    reports: Vec<MessageReport>,
    outcome: Option<SessionOutcome>,
    /// Recipients the server's driver refuses as unknown.
    unknown: Vec<&'static str>,
}

impl Pair {
    fn new(client: ClientConfig, tls: TlsMode, messages: Vec<OutgoingMessage>) -> Pair {
        let now = Instant::from_millis(5_000);
        let server = ServerSession::new(
            now,
            server::SessionConfig {
                kind: ListenerKind::Mx,
                hostname: Domain::parse(REMOTE).unwrap(),
                tls,
                auth_requires_tls: true,
                limits: server::Limits::default(),
            },
        );
        Pair {
            client: ClientSession::new(now, client),
            server,
            now,
            messages: messages.into(),
            stored: Vec::new(),
            reports: Vec::new(),
            outcome: None,
            unknown: Vec::new(),
        }
    }

    fn run(mut self) -> Pair {
        if let Some(first) = self.messages.pop_front() {
            self.client.handle(self.now, Input::Message(first));
        }
        for _ in 0..10_000 {
            if !self.step() {
                return self;
            }
        }
        panic!("the dialogue did not settle");
    }

    /// Moves every pending output across; false when neither side had anything.
    fn step(&mut self) -> bool {
        let mut moved = false;
        while let Some(output) = self.server.poll() {
            moved = true;
            match output {
                server::Output::Send(bytes) => self.client.handle(self.now, Input::Bytes(bytes)),
                server::Output::StartTls => {
                    self.server.handle(self.now, server::Input::TlsEstablished);
                    self.client.handle(self.now, Input::TlsEstablished);
                }
                server::Output::CheckRecipient { token, check } => {
                    let unknown = match &check.recipient {
                        ForwardPath::Mailbox(mailbox) => {
                            self.unknown.contains(&mailbox.to_string().as_str())
                        }
                        ForwardPath::Postmaster => false,
                    };
                    let verdict = if unknown {
                        RecipientVerdict::UnknownUser
                    } else {
                        RecipientVerdict::Accept
                    };
                    self.server
                        .handle(self.now, server::Input::RecipientChecked { token, verdict });
                }
                server::Output::StoreMessage { token, message } => {
                    self.stored.push(message);
                    let outcome = StoreOutcome::Stored {
                        queue_id: format!("S{}", self.stored.len()),
                    };
                    self.server
                        .handle(self.now, server::Input::MessageStored { token, outcome });
                }
                server::Output::CheckCredentials { .. } | server::Output::Event(_) => {}
                server::Output::Close => self.client.handle(self.now, Input::PeerClosed),
            }
        }
        while let Some(output) = self.client.poll() {
            moved = true;
            match output {
                Output::Send(bytes) => {
                    self.server.handle(self.now, server::Input::Bytes(bytes));
                    self.client.handle(self.now, Input::Written);
                }
                // The server asks for its handshake after its 220; both finish together there.
                Output::StartTls { .. } | Output::Event(_) => {}
                Output::Ready => {
                    let next = match self.messages.pop_front() {
                        Some(message) => Input::Message(message),
                        None => Input::Finish,
                    };
                    self.client.handle(self.now, next);
                }
                Output::Report(report) => self.reports.push(report),
                Output::Close(outcome) => {
                    self.outcome = Some(outcome);
                    self.server.handle(self.now, server::Input::PeerClosed);
                }
            }
        }
        moved
    }
}

#[test]
fn delivers_to_the_real_server_with_starttls_pipelining_and_chunking() {
    let mut config = config(Protocol::Smtp, TlsPolicy::Required);
    config.limits.data_block = 10;
    let body = b"Subject: test\n\n.starts with a dot\r\nbare CR\rlast";
    let mut first = message("Q1", &["bob@sluice.test", "nobody@sluice.test"], body);
    first.recipients[0].notify = Some(crate::smtp::params::Notify::Never);
    let second = message("Q2", &["carol@sluice.test"], b"second\r\n");
    let mut pair = Pair::new(config, TlsMode::StartTlsOffered, vec![first, second]);
    pair.unknown = vec!["nobody@sluice.test"];
    let pair = pair.run();

    assert_eq!(pair.outcome, Some(SessionOutcome::Completed));
    assert_eq!(pair.reports.len(), 2);
    assert_eq!(kinds(&pair.reports[0]), "dp");
    assert_eq!(
        status(&pair.reports[0].recipients[1]),
        EnhancedStatus::new(5, 1, 1)
    );
    assert!(matches!(
        &pair.reports[0].recipients[0],
        RecipientOutcome::Final(RecipientResult::Delivered {
            notify_passed_on: true,
            ..
        })
    ));
    assert_eq!(kinds(&pair.reports[1]), "d");
    assert_eq!(pair.stored.len(), 2);
    let stored = &pair.stored[0];
    assert!(stored.tls);
    assert_eq!(
        stored.data,
        b"Subject: test\r\n\r\n.starts with a dot\r\nbare CR\r\nlast\r\n"
    );
    assert_eq!(stored.recipients.len(), 1);
    assert_eq!(
        stored.recipients[0].params.notify,
        Some(crate::smtp::params::Notify::Never)
    );
    assert_eq!(stored.mail_params.size, Some(stored.data.len() as u64));
    assert_eq!(pair.stored[1].data, b"second\r\n");
}

#[test]
fn the_real_server_refusing_every_recipient_gets_no_data() {
    let mut pair = Pair::new(
        config(Protocol::Smtp, TlsPolicy::Opportunistic),
        TlsMode::Unavailable,
        vec![
            message("Q1", &["nobody@sluice.test"], b"hi\r\n"),
            message("Q2", &["bob@sluice.test"], b"hi again\r\n"),
        ],
    );
    pair.unknown = vec!["nobody@sluice.test"];
    let pair = pair.run();
    assert_eq!(kinds(&pair.reports[0]), "p");
    assert_eq!(kinds(&pair.reports[1]), "d");
    assert_eq!(pair.stored.len(), 1);
    assert_eq!(pair.stored[0].data, b"hi again\r\n");
    assert!(!pair.stored[0].tls);
    assert_eq!(pair.outcome, Some(SessionOutcome::Completed));
}

#[test]
fn a_utf8_envelope_reaches_the_real_server_with_smtputf8() {
    let mut utf8 = message(
        "Q1",
        &["j\u{f6}rg@sluice.test"],
        "gr\u{fc}\u{df}e\r\n".as_bytes(),
    );
    utf8.smtputf8 = true;
    let pair = Pair::new(smtp(), TlsMode::Unavailable, vec![utf8]).run();
    assert_eq!(kinds(&pair.reports[0]), "d");
    assert!(pair.stored[0].mail_params.smtputf8);
    assert_eq!(
        pair.stored[0].mail_params.body,
        Some(crate::smtp::params::BodyType::EightBitMime)
    );
}
