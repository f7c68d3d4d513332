//! Property tests of the queue machine under a random driver: random results per
//! recipient, random write failures, random restarts that rebuild the queue from the
//! last persisted states, random time steps and admin flushes. The driver keeps the
//! durable store itself and checks every output against it: the schedule is the
//! configured one and never reaches past expiry, no attempt starts at or after expiry,
//! every recipient is final by expiry (or by the end of an attempt running then),
//! never two failure notices for one recipient, never a notice to the null
//! reverse-path or for NOTIFY=NEVER, at most one delay notice per recipient,
//! concurrency stays within its limits, and a restored deferral keeps its next attempt.
//! The driver also loses attempts (never answers them): the queue defers them at
//! their deadline, and their results, delivered late, never change a final state nor
//! notify twice.

#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::delivery::{DeliveryPath, Destination, Diagnostic, Failure, RecipientResult};
use sluice_core::machine::{Machine, Token};
use sluice_core::notice::{NoticeAction, NoticeKind, NoticeRequest};
use sluice_core::queue::{
    AttemptRate, Event, Input, Output, Queue, QueueConfig, QueuedMessage, QueuedRecipient,
    RecipientChange, RecipientState,
};
use sluice_core::smtp::params::Notify;
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

const START: Instant = Instant::from_millis(1_700_000_000_000);
/// The driver ends every attempt within this long.
const MAX_ATTEMPT: Duration = Duration::from_mins(10);
/// The queue's deadline per attempt: longer than any attempt the driver answers.
const ATTEMPT_TIMEOUT: Duration = Duration::from_mins(30);
const DOMAINS: [&str; 3] = ["b.example", "c.example", "backend"];

fn config(rate: bool) -> QueueConfig {
    let mut config = QueueConfig::default();
    config.schedule.expire_after = Duration::from_mins(12 * 60);
    config.schedule.delay_warning_after = Some(Duration::from_mins(3 * 60));
    config.limits.max_concurrent_per_destination = 2;
    config.limits.max_attempts_in_flight = 5;
    config.limits.max_recipients_per_attempt = 2;
    config.limits.max_received_headers = 30;
    config.limits.attempt_timeout = ATTEMPT_TIMEOUT;
    config.limits.destination_rate = rate.then_some(AttemptRate {
        per_minute: 6,
        burst: 2,
    });
    config
}

/// The schedule, written out independently of the machine's arithmetic.
fn expected_interval(attempts: u32) -> Duration {
    let minutes = [5, 10, 20, 40]
        .get(attempts as usize - 1)
        .copied()
        .unwrap_or(60);
    Duration::from_mins(minutes)
}

fn destination(domain: &str) -> Destination {
    match domain {
        "backend" => Destination {
            path: DeliveryPath::Lmtp {
                host: "backend".into(),
                port: 24,
            },
            tls: Default::default(),
        },
        domain => Destination::mx(domain),
    }
}

#[derive(Clone, Debug)]
struct MessageSpec {
    null_sender: bool,
    looping: bool,
    arrival_offset_mins: u64,
    recipients: Vec<(usize, u8)>,
}

fn notify_choice(choice: u8) -> Option<Notify> {
    let on = |success, failure, delay| {
        Some(Notify::On {
            success,
            failure,
            delay,
        })
    };
    match choice % 6 {
        0 => None,
        1 => Some(Notify::Never),
        2 => on(false, true, false),
        3 => on(true, false, false),
        4 => on(false, false, true),
        _ => on(true, true, true),
    }
}

fn message_spec() -> impl Strategy<Value = MessageSpec> {
    (
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.05),
        0u64..120,
        vec((0..DOMAINS.len(), any::<u8>()), 1..5),
    )
        .prop_map(
            |(null_sender, looping, arrival_offset_mins, recipients)| MessageSpec {
                null_sender,
                looping,
                arrival_offset_mins,
                recipients,
            },
        )
}

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    Finish(u8),
    Answer(u8, bool),
    Restart,
    RetryNow,
    Enqueue(MessageSpec),
    /// The driver loses an attempt: it will never answer it in time.
    Lose(u8),
    /// A lost attempt's result turns up after its deadline.
    Late(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u64..10_800).prop_map(Step::Advance),
        6 => any::<u8>().prop_map(Step::Finish),
        6 => (any::<u8>(), prop::bool::weighted(0.7)).prop_map(|(pick, ok)| Step::Answer(pick, ok)),
        1 => Just(Step::Restart),
        1 => Just(Step::RetryNow),
        1 => message_spec().prop_map(Step::Enqueue),
        1 => any::<u8>().prop_map(Step::Lose),
        2 => any::<u8>().prop_map(Step::Late),
    ]
}

/// A tiny deterministic generator for per-recipient results (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Clone, Debug)]
struct InFlight {
    queue_id: String,
    destination: Destination,
    recipients: Vec<String>,
    started_at: Instant,
}

#[derive(Clone, Debug)]
struct PendingWrite {
    queue_id: String,
    changes: Vec<RecipientChange>,
    notice: Option<NoticeRequest>,
    remove: bool,
}

struct Driver {
    config: QueueConfig,
    queue: Queue,
    now: Instant,
    /// The durable store: every message with its last committed recipient states.
    store: BTreeMap<String, QueuedMessage>,
    in_flight: BTreeMap<Token, InFlight>,
    /// Attempts the driver lost, until the queue gives up on them.
    lost: BTreeMap<Token, InFlight>,
    /// Attempts the queue gave up on, whose result may still turn up.
    superseded: BTreeMap<Token, InFlight>,
    writes: BTreeMap<Token, PendingWrite>,
    seen_writes: BTreeSet<Token>,
    /// When the driver reported each recipient's last result.
    result_at: BTreeMap<(String, String), Instant>,
    failure_noticed: BTreeSet<(String, String)>,
    delay_noticed: BTreeSet<(String, String)>,
    last_flush: Option<Instant>,
    next_id: u32,
    /// Notices committed but not yet enqueued (while the queue is being answered).
    pending_bounces: Vec<QueuedMessage>,
    mix: Mix,
    stats: Stats,
}

/// What a run exercised, so that a test can show the properties are not vacuous.
#[derive(Clone, Debug, Default)]
struct Stats {
    notices: BTreeMap<String, usize>,
    expired: usize,
    persist_failures: usize,
    restarts: usize,
    attempts: usize,
    timed_out: usize,
    late_applied: usize,
}

impl Driver {
    fn new(config: QueueConfig, seed: u64) -> Driver {
        Driver {
            queue: Queue::new(config.clone()).unwrap(),
            config,
            now: START,
            store: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            lost: BTreeMap::new(),
            superseded: BTreeMap::new(),
            writes: BTreeMap::new(),
            seen_writes: BTreeSet::new(),
            result_at: BTreeMap::new(),
            failure_noticed: BTreeSet::new(),
            delay_noticed: BTreeSet::new(),
            last_flush: None,
            next_id: 0,
            pending_bounces: Vec::new(),
            mix: Mix(seed),
            stats: Stats::default(),
        }
    }

    fn expiry(&self, message: &QueuedMessage) -> Instant {
        message.arrival + self.config.schedule.expire_after
    }

    fn handle(&mut self, input: Input) {
        self.queue.handle(self.now, input);
        while let Some(output) = self.queue.poll() {
            self.output(output);
        }
        self.check_nothing_outlives_expiry();
    }

    fn enqueue(&mut self, message: QueuedMessage) {
        self.store.insert(message.queue_id.clone(), message.clone());
        self.handle(Input::Enqueue(message));
    }

    fn new_message(&mut self, spec: &MessageSpec) {
        self.next_id += 1;
        let mut recipients: Vec<QueuedRecipient> = Vec::new();
        for (index, (domain, notify)) in spec.recipients.iter().enumerate() {
            let domain = DOMAINS[*domain];
            let mut recipient =
                QueuedRecipient::new(format!("r{index}@{domain}"), destination(domain));
            recipient.notify = notify_choice(*notify);
            recipients.push(recipient);
        }
        let message = QueuedMessage {
            queue_id: format!("Q{:04}", self.next_id),
            reverse_path: (!spec.null_sender).then(|| "sender@a.test".to_owned()),
            envid: None,
            ret: None,
            arrival: self.now - Duration::from_mins(spec.arrival_offset_mins),
            size: 100,
            received_headers: if spec.looping { 31 } else { 3 },
            recipients,
        };
        self.enqueue(message);
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::StartAttempt {
                token,
                queue_id,
                destination,
                recipients,
            } => self.started(token, queue_id, destination, recipients),
            Output::Persist {
                token,
                queue_id,
                changes,
                notice,
                remove,
            } => self.persist(token, queue_id, changes, notice, remove),
            Output::Remove { queue_id } => {
                let message = self.store.remove(&queue_id).unwrap();
                assert!(
                    message.recipients.iter().all(|r| r.state.is_final()),
                    "removed with a recipient not final in the store: {message:?}"
                );
            }
            Output::Refused { queue_id, reason } => panic!("refused {queue_id}: {reason:?}"),
            Output::Event(Event::Expired { .. }) => self.stats.expired += 1,
            Output::Event(Event::AttemptTimedOut { token, .. }) => {
                let attempt = self.lost.remove(&token);
                let attempt = attempt.expect("only a lost attempt reaches its deadline");
                assert!(self.now >= attempt.started_at + ATTEMPT_TIMEOUT);
                self.stats.timed_out += 1;
                // The deadline is the result the schedule counts from.
                for address in &attempt.recipients {
                    self.result_at
                        .insert((attempt.queue_id.clone(), address.clone()), self.now);
                }
                self.superseded.insert(token, attempt);
            }
            Output::Event(Event::LateResult { applied: true, .. }) => {
                self.stats.late_applied += 1;
            }
            Output::Event(_) => {}
        }
    }

    fn started(
        &mut self,
        token: Token,
        queue_id: String,
        destination: Destination,
        recipients: Vec<String>,
    ) {
        let limits = &self.config.limits;
        let message = &self.store[&queue_id];
        assert!(
            self.now < self.expiry(message),
            "attempt at or after expiry"
        );
        assert!(!recipients.is_empty() && recipients.len() <= limits.max_recipients_per_attempt);
        for address in &recipients {
            let recipient = message
                .recipients
                .iter()
                .find(|r| &r.address == address)
                .unwrap();
            assert_eq!(recipient.destination, destination);
            assert!(!recipient.state.is_final(), "attempt for a final recipient");
            if let RecipientState::Deferred { next_attempt, .. } = recipient.state {
                // An admin flush since this deferral was decided makes it due at once.
                let decided = self.result_at.get(&(queue_id.clone(), address.clone()));
                let flushed = self
                    .last_flush
                    .is_some_and(|f| decided.is_none_or(|d| f >= *d));
                assert!(
                    flushed || self.now >= next_attempt,
                    "{address} attempted at {} before its next attempt {next_attempt}",
                    self.now
                );
            }
        }
        let same = self
            .in_flight
            .values()
            .filter(|a| a.destination == destination)
            .count();
        assert!(same < limits.max_concurrent_per_destination as usize);
        assert!(self.in_flight.len() < limits.max_attempts_in_flight);
        self.stats.attempts += 1;
        self.in_flight.insert(
            token,
            InFlight {
                queue_id,
                destination,
                recipients,
                started_at: self.now,
            },
        );
    }

    fn persist(
        &mut self,
        token: Token,
        queue_id: String,
        changes: Vec<RecipientChange>,
        notice: Option<NoticeRequest>,
        remove: bool,
    ) {
        if self.seen_writes.insert(token) {
            self.check_new_write(&queue_id, &changes, notice.as_ref());
        }
        self.writes.insert(
            token,
            PendingWrite {
                queue_id,
                changes,
                notice,
                remove,
            },
        );
    }

    /// A write is checked when first issued: its message has no earlier write
    /// outstanding, so the store holds exactly what the queue started from.
    fn check_new_write(
        &self,
        queue_id: &str,
        changes: &[RecipientChange],
        notice: Option<&NoticeRequest>,
    ) {
        let message = &self.store[queue_id];
        let expiry = self.expiry(message);
        let listed: BTreeSet<&str> = notice
            .map(|n| {
                n.recipients
                    .iter()
                    .map(|r| r.final_recipient.as_str())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(notice) = notice {
            assert_eq!(
                Some(&notice.notify),
                message.reverse_path.as_ref(),
                "notice to the null reverse-path"
            );
        }
        for change in changes {
            let stored = message
                .recipients
                .iter()
                .find(|r| r.address == change.address)
                .unwrap();
            assert!(
                !stored.state.is_final(),
                "a final state changed: {change:?}"
            );
            let key = (queue_id.to_owned(), change.address.clone());
            let wants = |kind: NoticeKind| match (stored.notify, kind) {
                (None, NoticeKind::Success) => false,
                (None, _) => true,
                (Some(Notify::Never), _) => false,
                (Some(Notify::On { failure, .. }), NoticeKind::Failure) => failure,
                (Some(Notify::On { delay, .. }), NoticeKind::Delay) => delay,
                (Some(Notify::On { success, .. }), NoticeKind::Success) => success,
            } && message.reverse_path.is_some();
            let in_notice = listed.contains(change.address.as_str());
            match &change.state {
                RecipientState::Failed { .. } => {
                    let kind = notice.map(|n| n.kind);
                    assert_eq!(
                        in_notice && kind == Some(NoticeKind::Failure),
                        wants(NoticeKind::Failure),
                        "failure notice for {key:?} {stored:?}"
                    );
                }
                RecipientState::Delivered {
                    notify_passed_on, ..
                } => {
                    assert_eq!(in_notice, wants(NoticeKind::Success) && !notify_passed_on);
                }
                RecipientState::Deferred {
                    attempts,
                    next_attempt,
                    ..
                } => {
                    assert!(*next_attempt <= expiry, "scheduled past expiry");
                    if *attempts != stored.state.attempts() {
                        // A new deferral: exactly the configured schedule.
                        assert_eq!(*attempts, stored.state.attempts() + 1);
                        let result_at = self.result_at[&key];
                        let expected = (result_at + expected_interval(*attempts)).min(expiry);
                        assert_eq!(*next_attempt, expected, "schedule of {key:?}");
                    } else if change.state != stored.state {
                        // Only an admin flush moves a schedule without an attempt, and
                        // only earlier.
                        let RecipientState::Deferred {
                            next_attempt: stored_next,
                            ..
                        } = stored.state
                        else {
                            panic!("{stored:?}");
                        };
                        assert!(self.last_flush.is_some() && *next_attempt <= stored_next);
                    }
                    if in_notice {
                        assert_eq!(notice.map(|n| n.kind), Some(NoticeKind::Delay));
                        assert!(change.delay_notified && !stored.delay_notified);
                        assert!(wants(NoticeKind::Delay));
                    }
                }
                RecipientState::Pending => panic!("a change back to pending"),
            }
        }
        if let Some(notice) = notice {
            let changed: BTreeSet<&str> = changes.iter().map(|c| c.address.as_str()).collect();
            assert!(listed.is_subset(&changed), "a notice without its change");
            for line in &notice.recipients {
                let stored = message
                    .recipients
                    .iter()
                    .find(|r| r.address == line.final_recipient)
                    .unwrap();
                assert_ne!(
                    stored.notify,
                    Some(Notify::Never),
                    "notice for NOTIFY=NEVER"
                );
                let expected_action = match notice.kind {
                    NoticeKind::Failure => NoticeAction::Failed,
                    NoticeKind::Delay => NoticeAction::Delayed,
                    NoticeKind::Success => match stored.destination.path {
                        DeliveryPath::Lmtp { .. } | DeliveryPath::Local => NoticeAction::Delivered,
                        _ => NoticeAction::Relayed,
                    },
                };
                assert_eq!(line.action, expected_action);
            }
        }
    }

    /// The driver's transaction: the changes and the notice, together.
    fn commit(&mut self, token: Token) {
        let write = self.writes.remove(&token).unwrap();
        let Some(message) = self.store.get_mut(&write.queue_id) else {
            return;
        };
        for change in &write.changes {
            let recipient = message
                .recipients
                .iter_mut()
                .find(|r| r.address == change.address)
                .unwrap();
            recipient.state = change.state.clone();
            recipient.delay_notified = change.delay_notified;
        }
        if write.remove {
            // The message's last write deletes it in the same transaction.
            assert!(
                message.recipients.iter().all(|r| r.state.is_final()),
                "removed by a write with a recipient not final: {message:?}"
            );
            self.store.remove(&write.queue_id);
        }
        if let Some(notice) = &write.notice {
            for line in &notice.recipients {
                let key = (write.queue_id.clone(), line.final_recipient.clone());
                let fresh = match notice.kind {
                    NoticeKind::Failure => self.failure_noticed.insert(key),
                    NoticeKind::Delay => self.delay_noticed.insert(key),
                    NoticeKind::Success => true,
                };
                assert!(fresh, "a second {:?} notice for {line:?}", notice.kind);
            }
            // The notice is itself a message, from the null reverse-path.
            *self
                .stats
                .notices
                .entry(format!("{:?}", notice.kind))
                .or_default() += 1;
            self.next_id += 1;
            let domain = notice.notify.rsplit('@').next().unwrap_or("a.test");
            let bounce = QueuedMessage {
                queue_id: format!("N{:04}", self.next_id),
                reverse_path: None,
                envid: None,
                ret: None,
                arrival: self.now,
                size: 100,
                received_headers: 1,
                recipients: vec![QueuedRecipient::new(
                    notice.notify.clone(),
                    destination(domain),
                )],
            };
            self.pending_bounces.push(bounce);
        }
    }

    /// Every recipient the queue holds is final once its message has expired, unless
    /// it is in an attempt that started before expiry.
    fn check_nothing_outlives_expiry(&self) {
        let attempting: BTreeMap<(&str, &str), Instant> = self
            .in_flight
            .values()
            .chain(self.lost.values())
            .flat_map(|a| {
                a.recipients
                    .iter()
                    .map(move |r| ((a.queue_id.as_str(), r.as_str()), a.started_at))
            })
            .collect();
        for message in self.queue.messages() {
            let expiry = self.expiry(message);
            if self.now < expiry {
                continue;
            }
            for recipient in &message.recipients {
                if recipient.state.is_final() {
                    continue;
                }
                let started =
                    attempting.get(&(message.queue_id.as_str(), recipient.address.as_str()));
                assert!(
                    started.is_some_and(|s| *s < expiry),
                    "{} of {} not final at {} after expiry {expiry}",
                    recipient.address,
                    message.queue_id,
                    self.now
                );
            }
        }
    }
}

impl Driver {
    /// Ends attempt `token` with a random result per recipient (some left out).
    fn finish(&mut self, token: Token) {
        let Some(attempt) = self
            .in_flight
            .remove(&token)
            .or_else(|| self.superseded.remove(&token))
        else {
            return;
        };
        let late = self.now >= attempt.started_at + ATTEMPT_TIMEOUT;
        let mut results = Vec::new();
        for address in &attempt.recipients {
            let roll = self.mix.next() % 100;
            let status = |class| EnhancedStatus::new(class, 0, 0);
            let failure = |class, code| Failure {
                status: status(class),
                remote_mta: Some("mx.test".into()),
                diagnostic: Diagnostic::Reply(Reply::new(code, status(class), "no")),
            };
            let result = match roll {
                0..45 => Some(RecipientResult::Temporary(failure(4, 451))),
                45..70 => Some(RecipientResult::Delivered {
                    remote_mta: Some("mx.test".into()),
                    reply: Reply::new(250, status(2), "ok"),
                    notify_passed_on: roll.is_multiple_of(2),
                }),
                70..82 => Some(RecipientResult::Permanent(failure(5, 550))),
                _ => None,
            };
            if !late {
                self.result_at
                    .insert((attempt.queue_id.clone(), address.clone()), self.now);
            }
            if let Some(result) = result {
                results.push((address.clone(), result));
            }
        }
        self.handle(Input::AttemptFinished { token, results });
    }

    fn answer(&mut self, token: Token, ok: bool) {
        if !self.writes.contains_key(&token) {
            return;
        }
        if ok {
            self.commit(token);
            self.handle(Input::Persisted { token });
            for bounce in std::mem::take(&mut self.pending_bounces) {
                self.enqueue(bounce);
            }
        } else {
            self.stats.persist_failures += 1;
            self.writes.remove(&token);
            self.handle(Input::PersistFailed { token });
        }
    }

    /// A crash: whatever was not committed is gone; the queue is rebuilt from the store.
    fn restart(&mut self) {
        self.stats.restarts += 1;
        self.queue = Queue::new(self.config.clone()).unwrap();
        self.in_flight.clear();
        self.lost.clear();
        self.superseded.clear();
        self.writes.clear();
        self.seen_writes.clear();
        self.last_flush = None;
        let stored: Vec<QueuedMessage> = self.store.values().cloned().collect();
        for message in stored {
            self.handle(Input::Enqueue(message));
        }
    }

    /// Moves time to `target`, waking the queue at every deadline on the way and
    /// ending every attempt within `MAX_ATTEMPT`.
    fn advance_to(&mut self, target: Instant) {
        for _ in 0..100_000 {
            let forced = self
                .in_flight
                .iter()
                .map(|(token, a)| (a.started_at + MAX_ATTEMPT, *token))
                .min();
            let deadline = self.queue.next_deadline();
            match (forced, deadline) {
                (Some((at, token)), deadline)
                    if at <= target && deadline.is_none_or(|d| at <= d) =>
                {
                    self.now = self.now.max(at);
                    self.finish(token);
                }
                (_, Some(deadline)) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.handle(Input::Tick);
                }
                _ => {
                    self.now = self.now.max(target);
                    self.handle(Input::Tick);
                    return;
                }
            }
        }
        panic!("the queue keeps asking to be woken at {}", self.now);
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Advance(seconds) => {
                let target = self.now + Duration::from_secs(*seconds);
                self.advance_to(target);
            }
            Step::Finish(pick) => {
                if let Some(token) = pick_key(&self.in_flight, *pick) {
                    self.finish(token);
                }
            }
            Step::Answer(pick, ok) => {
                if let Some(token) = pick_key(&self.writes, *pick) {
                    self.answer(token, *ok);
                }
            }
            Step::Restart => self.restart(),
            Step::RetryNow => {
                self.last_flush = Some(self.now);
                self.handle(Input::RetryNow { queue_id: None });
            }
            Step::Enqueue(spec) => self.new_message(spec),
            Step::Lose(pick) => {
                if let Some(token) = pick_key(&self.in_flight, *pick)
                    && let Some(attempt) = self.in_flight.remove(&token)
                {
                    self.lost.insert(token, attempt);
                }
            }
            Step::Late(pick) => {
                if let Some(token) = pick_key(&self.superseded, *pick) {
                    self.finish(token);
                }
            }
        }
    }

    /// Answers everything and lets time run until the queue is empty.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            if let Some(token) = self.writes.keys().next().copied() {
                self.answer(token, true);
            } else if let Some(token) = self.in_flight.keys().next().copied() {
                self.finish(token);
            } else if let Some(token) = self.superseded.keys().next().copied() {
                self.finish(token);
            } else if let Some(deadline) = self.queue.next_deadline() {
                self.now = self.now.max(deadline);
                self.handle(Input::Tick);
            } else {
                break;
            }
        }
        assert!(
            self.queue.is_empty(),
            "left in the queue: {:?}",
            self.queue.messages().collect::<Vec<_>>()
        );
        assert!(self.store.is_empty(), "left in the store: {:?}", self.store);
    }
}

fn pick_key<V>(map: &BTreeMap<Token, V>, pick: u8) -> Option<Token> {
    if map.is_empty() {
        return None;
    }
    map.keys().nth(usize::from(pick) % map.len()).copied()
}

fn run(rate: bool, seed: u64, initial: &[MessageSpec], steps: &[Step]) -> Stats {
    let mut driver = Driver::new(config(rate), seed);
    for spec in initial {
        driver.new_message(spec);
    }
    for step in steps {
        driver.step(step);
    }
    driver.settle();
    driver.stats
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_queue_keeps_its_promises_under_a_random_driver(
        rate in any::<bool>(),
        seed in any::<u64>(),
        initial in vec(message_spec(), 1..6),
        steps in vec(step(), 10..160),
    ) {
        run(rate, seed, &initial, &steps);
    }

    #[test]
    fn retry_intervals_never_shrink_nor_pass_the_cap_nor_expiry(
        first_secs in 1u64..3600,
        factor in 1u32..=16,
        cap_factor in 1u64..100,
        expire_mins in 1u64..20_000,
        failed_after_mins in 0u64..20_000,
    ) {
        let mut config = QueueConfig::default();
        let schedule = &mut config.schedule;
        schedule.first_retry = Duration::from_secs(first_secs);
        schedule.backoff_factor = factor;
        schedule.max_retry_interval = Duration::from_secs(first_secs * cap_factor);
        schedule.expire_after = Duration::from_mins(expire_mins);
        schedule.delay_warning_after = None;
        prop_assert_eq!(config.validate(), Ok(()));
        let schedule = &config.schedule;
        let failed_at = START + Duration::from_mins(failed_after_mins);
        let mut previous = Duration::ZERO;
        for attempts in 1..=64 {
            let interval = schedule.retry_interval(attempts);
            prop_assert!(interval >= previous);
            prop_assert!(interval >= schedule.first_retry);
            prop_assert!(interval <= schedule.max_retry_interval);
            let next = schedule.next_attempt(START, failed_at, attempts);
            prop_assert!(next <= schedule.expires_at(START));
            previous = interval;
        }
    }
}

/// The random driver reaches every path the properties speak of: failure, delay and
/// success notices, expiry, failed writes and restarts.
#[test]
fn the_random_driver_exercises_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = Stats::default();
    for case in 0..24u64 {
        let initial = vec(message_spec(), 3..6)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let steps = vec(step(), 100..160)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let stats = run(case % 2 == 0, case, &initial, &steps);
        for (kind, count) in stats.notices {
            *total.notices.entry(kind).or_default() += count;
        }
        total.expired += stats.expired;
        total.persist_failures += stats.persist_failures;
        total.restarts += stats.restarts;
        total.attempts += stats.attempts;
        total.timed_out += stats.timed_out;
        total.late_applied += stats.late_applied;
    }
    for kind in ["Failure", "Delay", "Success"] {
        assert!(
            total.notices.get(kind).is_some_and(|n| *n > 0),
            "no {kind} notice: {total:?}"
        );
    }
    assert!(
        total.expired > 0 && total.persist_failures > 0 && total.restarts > 0,
        "{total:?}"
    );
    assert!(
        total.timed_out > 0 && total.late_applied > 0,
        "lost attempts and late successes: {total:?}"
    );
}
