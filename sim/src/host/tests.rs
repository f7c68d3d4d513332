//! A Sluice host on its own, with a hand-made context instead of the world: what
//! the boundary buys. The host asks its context for everything it needs, so a test
//! can stand in for the network, the disk's timing and the clock.

use super::*;
use crate::check::Observations;
use crate::engine::Pcg32;
use sluice_core::delivery::Failure;
use sluice_core::delivery::mx::{AddressAnswer, HostPlan};
use sluice_core::delivery::walk::PlannedHost;
use sluice_core::node::Reception;
use sluice_core::node::reception::Input as ReceptionInput;
use sluice_core::router::MailboxAccess;
use sluice_core::smtp::client::{ClientConfig, OutgoingMessage};
use sluice_core::smtp::server::{Input as SessionInput, StoreOutcome};
use sluice_core::time::{Duration, Instant};
use std::net::IpAddr;

/// A context that only remembers what the host asked of it.
struct Recorder {
    rng: Pcg32,
    obs: Observations,
    trace: Vec<String>,
    fsyncs: Vec<u64>,
    sent: Vec<u8>,
    bugs: Bugs,
}

impl Recorder {
    fn new(bugs: Bugs) -> Recorder {
        Recorder {
            rng: Pcg32::new(7, 7),
            obs: Observations::default(),
            trace: Vec::new(),
            fsyncs: Vec::new(),
            sent: Vec::new(),
            bugs,
        }
    }

    /// The replies sent since the last call, as text.
    fn replies(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.sent)).into_owned()
    }
}

impl HostIo for Recorder {
    fn name(&self) -> &str {
        "mx1.sluice.test"
    }
    fn epoch(&self) -> u32 {
        0
    }
    fn now(&self) -> Instant {
        Instant::from_millis(1_000)
    }
    fn local_now(&self) -> Instant {
        Instant::from_millis(1_767_225_601_000)
    }
    fn rng(&mut self) -> &mut Pcg32 {
        &mut self.rng
    }
    fn bugs(&self) -> Bugs {
        self.bugs
    }
    fn record(&mut self, text: &str) {
        self.trace.push(text.to_owned());
    }
    fn obs(&mut self) -> &mut Observations {
        &mut self.obs
    }
    fn count_fault(&mut self, _kind: &'static str) {}
    fn fsync(&mut self, write: u64) {
        self.fsyncs.push(write);
    }
    fn wake_queue(&mut self, _deadline: Option<Instant>) {}
    fn storing(&mut self, _tag: &str) {}
    fn promised(&mut self) {}
    fn send(&mut self, _conn: u64, bytes: Vec<u8>) {
        self.sent.extend(bytes);
    }
    fn send_imap(&mut self, _conn: u64, bytes: Vec<u8>) {
        self.sent.extend(bytes);
    }
    fn connect(
        &mut self,
        _attempt: u64,
        _address: IpAddr,
        _listener: ListenerKind,
        _config: ClientConfig,
        _message: OutgoingMessage,
    ) -> bool {
        false
    }
    fn reuse(&mut self, _conn: u64, _attempt: u64, _message: OutgoingMessage) -> bool {
        false
    }
    fn park(&mut self, _conn: u64) {}
    fn client_name(&self, _ip: IpAddr) -> Option<Domain> {
        None
    }
    fn host_plan(&mut self, _domain: &str, _seed: u64) -> (HostPlan, Duration) {
        (Err(Failure::local_error("no DNS here")), Duration::ZERO)
    }
    fn address_answer(&mut self, _name: &str) -> (AddressAnswer, Duration) {
        (AddressAnswer::NoSuchDomain, Duration::ZERO)
    }
    fn plan_after(
        &mut self,
        _took: Duration,
        _attempt: u64,
        _plan: Result<Vec<PlannedHost>, Failure>,
    ) {
    }
}

fn host() -> SluiceHost {
    let directory = Directory {
        domain: "sluice.test".to_owned(),
        users: vec!["user1@sluice.test".to_owned()],
        ..Directory::default()
    };
    SluiceHost::new(
        Role::All,
        domain("mx1.sluice.test"),
        PlacementPolicy {
            mailboxes: MailboxAccess::InProcess,
            delivery: Default::default(),
        },
        QueueConfig::default(),
        directory,
    )
}

const PEER: Peer = Peer {
    conn: 1,
    listener: ListenerKind::Mx,
    ip: None,
};

/// Runs one SMTP transaction for a local user up to the end of its data.
fn deliver_one(host: &mut SluiceHost, io: &mut Recorder) -> Reception {
    let mut reception = host.new_reception(io.local_now(), &PEER);
    host.step_reception(io, &PEER, &mut reception, None);
    for line in [
        "EHLO client.example\r\n",
        "MAIL FROM:<someone@elsewhere.example>\r\n",
        "RCPT TO:<user1@sluice.test>\r\n",
        "DATA\r\n",
        "Message-ID: <m1@elsewhere.example>\r\n\r\nhello\r\n.\r\n",
    ] {
        let bytes = SessionInput::Bytes(line.as_bytes().to_vec());
        host.step_reception(
            io,
            &PEER,
            &mut reception,
            Some(ReceptionInput::Session(bytes)),
        );
    }
    reception
}

/// Whether a 250 follows the data prompt in `replies`.
fn promised_after_data(replies: &str) -> bool {
    replies
        .split("354")
        .nth(1)
        .is_some_and(|rest| rest.lines().skip(1).any(|line| line.starts_with("250")))
}

#[test]
fn a_host_promises_a_message_only_once_its_write_is_durable() {
    let mut host = host();
    let mut io = Recorder::new(Bugs::default());
    let mut reception = deliver_one(&mut host, &mut io);
    let before = io.replies();
    assert!(before.contains("354"), "no data prompt: {before}");
    assert!(!promised_after_data(&before), "{before}");
    let [write] = io.fsyncs[..] else {
        panic!("one fsync expected, got {:?}", io.fsyncs);
    };
    assert!(io.replies().is_empty(), "an answer before the fsync");

    let answer = host
        .synced(&mut io, write, false)
        .persisted
        .expect("the session waits");
    assert_eq!(answer.conn, PEER.conn);
    let StoreOutcome::Stored { queue_id } = answer.outcome.clone() else {
        panic!("stored expected, got {:?}", answer.outcome);
    };
    let persisted = ReceptionInput::Persisted {
        token: answer.token,
        outcome: answer.outcome,
    };
    host.step_reception(&mut io, &PEER, &mut reception, Some(persisted));
    let after = io.replies();
    assert!(promised_after_data(&format!("354\r\n{after}")), "{after}");
    assert!(after.contains(&queue_id), "{after}");
    let stored = host.disk.durable.messages.len();
    assert_eq!(stored, 1, "the message is on the durable disk");
}

#[test]
fn a_crash_before_the_fsync_loses_the_write_and_its_promise() {
    let mut host = host();
    let mut io = Recorder::new(Bugs::default());
    let _reception = deliver_one(&mut host, &mut io);
    let [write] = io.fsyncs[..] else {
        panic!("one fsync expected, got {:?}", io.fsyncs);
    };
    assert_eq!(host.crash(), 1, "one unsynced write lost");
    assert!(host.synced(&mut io, write, false).persisted.is_none());
    assert!(host.disk.durable.messages.is_empty());
    host.restart(&mut io);
    assert!(
        io.trace
            .iter()
            .any(|line| line.ends_with("0 queued messages restored")),
        "{:?}",
        io.trace
    );
}

#[test]
fn the_ack_before_durability_bug_promises_before_the_fsync() {
    let mut host = host();
    let bugs = Bugs {
        ack_before_durability: true,
        ..Bugs::default()
    };
    let mut io = Recorder::new(bugs);
    let _reception = deliver_one(&mut host, &mut io);
    assert_eq!(io.fsyncs.len(), 1);
    let replies = io.replies();
    assert!(promised_after_data(&replies), "{replies}");
}

/// A host with one delivered message in user1's INBOX, and an IMAP session of
/// user1 with INBOX selected; the replies so far are taken.
fn imap_session_with_one_message(
    io: &mut Recorder,
) -> (SluiceHost, sluice_core::imap::ImapSession) {
    let mut host = host();
    let _reception = deliver_one(&mut host, io);
    let [write] = io.fsyncs[..] else {
        panic!("one fsync expected, got {:?}", io.fsyncs);
    };
    host.synced(io, write, false);
    io.fsyncs.clear();
    let mut session = host.new_imap_session(io.local_now());
    host.step_imap(io, 9, &mut session, None);
    let login = b"a LOGIN user1@sluice.test secret-user1@sluice.test\r\nb SELECT INBOX\r\n";
    let input = sluice_core::imap::Input::Bytes(login.to_vec());
    host.step_imap(io, 9, &mut session, Some(input));
    let replies = io.replies();
    assert!(replies.contains("a OK"), "{replies}");
    assert!(replies.contains("* 1 EXISTS"), "{replies}");
    assert!(replies.contains("b OK"), "{replies}");
    assert!(io.fsyncs.is_empty(), "reading wrote: {:?}", io.fsyncs);
    (host, session)
}

#[test]
fn an_imap_flag_change_is_answered_only_once_its_write_is_durable() {
    let mut io = Recorder::new(Bugs::default());
    let (mut host, mut session) = imap_session_with_one_message(&mut io);
    let store = b"c UID STORE 1 +FLAGS (\\Flagged)\r\n".to_vec();
    host.step_imap(
        &mut io,
        9,
        &mut session,
        Some(sluice_core::imap::Input::Bytes(store)),
    );
    let [write] = io.fsyncs[..] else {
        panic!("one fsync expected, got {:?}", io.fsyncs);
    };
    assert!(io.replies().is_empty(), "an answer before the fsync");
    let flags = |host: &SluiceHost| {
        host.disk.durable.mailboxes.observe().users["user1@sluice.test"].folders["INBOX"].messages
            [0]
        .flags
        .clone()
    };
    assert!(flags(&host).is_empty(), "applied before durable");
    let synced = host.synced(&mut io, write, false);
    assert!(synced.mailboxes_changed);
    let answer = synced.imap.expect("the session waits for its answer");
    assert_eq!(answer.conn, 9);
    host.step_imap(&mut io, 9, &mut session, Some(answer.input));
    let replies = io.replies();
    assert!(replies.contains("FLAGS (\\Flagged)"), "{replies}");
    assert!(replies.contains("c OK"), "{replies}");
    assert_eq!(flags(&host), ["\\Flagged"]);
}

#[test]
fn a_crash_before_the_fsync_loses_the_flag_change_and_its_ok() {
    let mut io = Recorder::new(Bugs::default());
    let (mut host, mut session) = imap_session_with_one_message(&mut io);
    let store = b"c UID STORE 1 +FLAGS (\\Seen)\r\n".to_vec();
    host.step_imap(
        &mut io,
        9,
        &mut session,
        Some(sluice_core::imap::Input::Bytes(store)),
    );
    let [write] = io.fsyncs[..] else {
        panic!("one fsync expected, got {:?}", io.fsyncs);
    };
    assert_eq!(host.crash(), 1);
    let synced = host.synced(&mut io, write, false);
    assert!(synced.imap.is_none() && !synced.mailboxes_changed);
    assert!(!io.replies().contains("c OK"));
}

#[test]
fn the_ack_flags_bug_answers_before_the_fsync() {
    let bugs = Bugs {
        ack_flags_before_durability: true,
        ..Bugs::default()
    };
    let mut io = Recorder::new(bugs);
    let (mut host, mut session) = imap_session_with_one_message(&mut io);
    let store = b"c UID STORE 1 +FLAGS (\\Seen)\r\n".to_vec();
    host.step_imap(
        &mut io,
        9,
        &mut session,
        Some(sluice_core::imap::Input::Bytes(store)),
    );
    assert_eq!(io.fsyncs.len(), 1);
    let replies = io.replies();
    assert!(replies.contains("c OK"), "{replies}");
}
