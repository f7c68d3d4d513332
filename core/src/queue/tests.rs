//! Unit tests of the queue machine, one rule at a time.

use super::*;
use crate::delivery::{DeliveryPath, Diagnostic, Failure};
use crate::machine::Machine;
use crate::notice::NoticeAction;
use crate::smtp::params::Notify;
use crate::smtp::reply::Reply;
use crate::time::Duration;

const ARRIVAL: Instant = Instant::from_millis(1_700_000_000_000);

struct Harness {
    queue: Queue,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(QueueConfig::default())
    }

    fn with(config: QueueConfig) -> Harness {
        Harness {
            queue: Queue::new(config).unwrap(),
            now: ARRIVAL,
        }
    }

    fn handle(&mut self, input: Input) -> Vec<Output> {
        self.queue.handle(self.now, input);
        std::iter::from_fn(|| self.queue.poll()).collect()
    }

    fn at(&mut self, at: Instant, input: Input) -> Vec<Output> {
        self.now = at;
        self.handle(input)
    }

    /// Ticks at every deadline up to `until`, collecting the outputs.
    fn run_until(&mut self, until: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(deadline) = self.queue.next_deadline() {
            if deadline > until {
                break;
            }
            outputs.extend(self.at(deadline.max(self.now), Input::Tick));
        }
        self.now = until;
        outputs.extend(self.handle(Input::Tick));
        outputs
    }

    /// Acknowledges every write in `outputs` and every write that issues, returning
    /// everything that produced.
    fn ack(&mut self, outputs: &[Output]) -> Vec<Output> {
        let mut produced = Vec::new();
        let mut writes = persists(outputs);
        while let Some((token, ..)) = writes.pop() {
            let out = self.handle(Input::Persisted { token });
            writes.extend(persists(&out));
            produced.extend(out);
        }
        produced
    }
}

fn message(queue_id: &str, recipients: Vec<QueuedRecipient>) -> QueuedMessage {
    QueuedMessage {
        queue_id: queue_id.to_owned(),
        reverse_path: Some("alice@a.test".to_owned()),
        envid: Some("ENV1".to_owned()),
        ret: None,
        arrival: ARRIVAL,
        size: 1000,
        received_headers: 2,
        recipients,
    }
}

fn rcpt(address: &str) -> QueuedRecipient {
    let domain = address.rsplit('@').next().unwrap();
    QueuedRecipient::new(address, Destination::mx(domain))
}

fn with_notify(mut recipient: QueuedRecipient, notify: Notify) -> QueuedRecipient {
    recipient.notify = Some(notify);
    recipient
}

fn notify(success: bool, failure: bool, delay: bool) -> Notify {
    Notify::On {
        success,
        failure,
        delay,
    }
}

fn temporary(text: &str) -> RecipientResult {
    RecipientResult::Temporary(Failure {
        status: EnhancedStatus::new(4, 2, 1),
        remote_mta: Some("mx.b.example".to_owned()),
        diagnostic: Diagnostic::Reply(Reply::new(451, EnhancedStatus::new(4, 2, 1), text)),
    })
}

fn permanent() -> RecipientResult {
    RecipientResult::Permanent(Failure {
        status: EnhancedStatus::new(5, 1, 1),
        remote_mta: Some("mx.b.example".to_owned()),
        diagnostic: Diagnostic::Reply(Reply::new(
            550,
            EnhancedStatus::new(5, 1, 1),
            "no such user",
        )),
    })
}

fn delivered(notify_passed_on: bool) -> RecipientResult {
    RecipientResult::Delivered {
        remote_mta: Some("mx.b.example".to_owned()),
        reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "ok"),
        notify_passed_on,
    }
}

fn attempts(outputs: &[Output]) -> Vec<(Token, String, Destination, Vec<String>)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::StartAttempt {
                token,
                queue_id,
                destination,
                recipients,
            } => Some((
                *token,
                queue_id.clone(),
                destination.clone(),
                recipients.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn persists(outputs: &[Output]) -> Vec<(Token, Vec<RecipientChange>, Option<NoticeRequest>)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Persist {
                token,
                changes,
                notice,
                ..
            } => Some((*token, changes.clone(), notice.clone())),
            _ => None,
        })
        .collect()
}

fn notices(outputs: &[Output]) -> Vec<NoticeRequest> {
    persists(outputs)
        .into_iter()
        .filter_map(|(_, _, notice)| notice)
        .collect()
}

fn listed(notice: &NoticeRequest) -> Vec<(&str, NoticeAction)> {
    notice
        .recipients
        .iter()
        .map(|line| (line.final_recipient.as_str(), line.action))
        .collect()
}

/// Messages whose last write, issued in `outputs`, deletes them.
fn removed_by_write(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Persist {
                queue_id,
                remove: true,
                ..
            } => Some(queue_id.clone()),
            _ => None,
        })
        .collect()
}

fn removed(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Remove { queue_id } => Some(queue_id.clone()),
            _ => None,
        })
        .collect()
}

fn finish(token: Token, results: Vec<(&str, RecipientResult)>) -> Input {
    Input::AttemptFinished {
        token,
        results: results
            .into_iter()
            .map(|(address, result)| (address.to_owned(), result))
            .collect(),
    }
}

/// Enqueues one message and returns the token of its (single) first attempt.
fn start_one(harness: &mut Harness, recipients: Vec<QueuedRecipient>) -> Token {
    let out = harness.handle(Input::Enqueue(message("Q1", recipients)));
    let started = attempts(&out);
    assert_eq!(started.len(), 1, "{out:?}");
    started[0].0
}

#[test]
fn recipients_are_grouped_per_destination_into_one_attempt_each() {
    let mut harness = Harness::new();
    let out = harness.handle(Input::Enqueue(message(
        "Q1",
        vec![
            rcpt("a@b.example"),
            rcpt("x@c.example"),
            rcpt("b@b.example"),
        ],
    )));
    let started: Vec<(Destination, Vec<String>)> = attempts(&out)
        .into_iter()
        .map(|(_, _, destination, recipients)| (destination, recipients))
        .collect();
    assert_eq!(
        started,
        [
            (
                Destination::mx("b.example"),
                vec!["a@b.example".to_owned(), "b@b.example".to_owned()]
            ),
            (Destination::mx("c.example"), vec!["x@c.example".to_owned()]),
        ]
    );
}

#[test]
fn an_attempt_carries_at_most_the_recipient_limit() {
    let mut config = QueueConfig::default();
    config.limits.max_recipients_per_attempt = 2;
    let mut harness = Harness::with(config);
    let recipients = (0..5).map(|n| rcpt(&format!("u{n}@b.example"))).collect();
    let out = harness.handle(Input::Enqueue(message("Q1", recipients)));
    let sizes: Vec<usize> = attempts(&out).iter().map(|a| a.3.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[test]
fn a_deferral_is_persisted_and_retried_on_the_doubling_schedule() {
    let mut harness = Harness::new();
    let mut token = start_one(&mut harness, vec![rcpt("bob@b.example")]);
    let mut intervals = Vec::new();
    for round in 1..=6u32 {
        let out = harness.handle(finish(token, vec![("bob@b.example", temporary("busy"))]));
        let writes = persists(&out);
        assert_eq!(writes.len(), 1);
        let RecipientState::Deferred {
            attempts,
            next_attempt,
            ..
        } = writes[0].1[0].state.clone()
        else {
            panic!("not deferred: {writes:?}");
        };
        assert_eq!(attempts, round);
        harness.ack(&out);
        intervals.push(next_attempt.saturating_since(harness.now).as_millis() / 60_000);
        let early = harness.run_until(next_attempt - Duration::from_millis(1));
        assert!(attempts_of(&early).is_empty(), "attempted early: {early:?}");
        let out = harness.run_until(next_attempt);
        let started = attempts_of(&out);
        assert_eq!(started.len(), 1);
        token = started[0];
    }
    assert_eq!(intervals, [5, 10, 20, 40, 60, 60]);
}

fn attempts_of(outputs: &[Output]) -> Vec<Token> {
    attempts(outputs).into_iter().map(|a| a.0).collect()
}

fn expiry() -> Instant {
    RetrySchedule::default().expires_at(ARRIVAL)
}

#[test]
fn the_last_deferral_is_clamped_to_expiry_where_the_recipient_fails() {
    let mut config = QueueConfig::default();
    config.schedule.delay_warning_after = None;
    let mut harness = Harness::with(config);
    let token = start_one(&mut harness, vec![rcpt("bob@b.example")]);
    // The first result arrives two minutes before expiry.
    harness.now = expiry() - Duration::from_mins(2);
    let out = harness.handle(finish(token, vec![("bob@b.example", temporary("busy"))]));
    let writes = persists(&out);
    let RecipientState::Deferred { next_attempt, .. } = &writes[0].1[0].state else {
        panic!("{writes:?}");
    };
    assert_eq!(*next_attempt, expiry());
    harness.ack(&out);
    assert_eq!(harness.queue.next_deadline(), Some(expiry()));
    let out = harness.run_until(expiry());
    assert!(attempts(&out).is_empty(), "no attempt at expiry: {out:?}");
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::Expired { recipient, .. }) if recipient == "bob@b.example"
    )));
    let writes = persists(&out);
    assert_eq!(writes.len(), 1);
    let RecipientState::Failed { at, failure } = &writes[0].1[0].state else {
        panic!("{writes:?}");
    };
    assert_eq!(*at, expiry());
    assert_eq!(failure.status, EnhancedStatus::new(4, 2, 1));
    let notice = writes[0].2.as_ref().unwrap();
    assert_eq!(notice.kind, NoticeKind::Failure);
    assert_eq!(listed(notice), [("bob@b.example", NoticeAction::Failed)]);
    assert_eq!(notice.recipients[0].failure.as_ref(), Some(failure));
    assert_eq!(notice.arrived_at, 1_700_000_000);
    assert_eq!(notice.envid.as_deref(), Some("ENV1"));
    // The last write deletes the message with the notice: no separate removal.
    assert_eq!(removed_by_write(&out), ["Q1"]);
    let out = harness.ack(&out);
    assert!(removed(&out).is_empty());
    assert!(harness.queue.is_empty());
    assert_eq!(harness.queue.next_deadline(), None);
}

#[test]
fn a_temporary_result_arriving_after_expiry_fails_at_once() {
    let mut harness = Harness::new();
    let token = start_one(&mut harness, vec![rcpt("bob@b.example")]);
    harness.now = expiry() + Duration::from_secs(30);
    let out = harness.handle(finish(token, vec![("bob@b.example", temporary("busy"))]));
    let writes = persists(&out);
    assert!(matches!(
        writes[0].1[0].state,
        RecipientState::Failed { .. }
    ));
    assert_eq!(notices(&out).len(), 1);
}

#[test]
fn a_recipient_never_tried_before_expiry_fails_with_4_4_7() {
    let mut harness = Harness::new();
    harness.now = expiry() + Duration::from_mins(1);
    let out = harness.handle(Input::Enqueue(message("Q1", vec![rcpt("bob@b.example")])));
    assert!(attempts(&out).is_empty());
    let notice = &notices(&out)[0];
    let failure = notice.recipients[0].failure.as_ref().unwrap();
    assert_eq!(failure.status, EnhancedStatus::new(4, 4, 7));
    assert_eq!(notice.recipients[0].last_attempt_at, None);
}

#[test]
fn one_failure_notice_lists_exactly_the_recipients_that_asked() {
    let mut harness = Harness::new();
    let token = start_one(
        &mut harness,
        vec![
            rcpt("plain@b.example"),
            with_notify(rcpt("never@b.example"), Notify::Never),
            with_notify(rcpt("success@b.example"), notify(true, false, false)),
            with_notify(rcpt("failure@b.example"), notify(false, true, false)),
            rcpt("later@b.example"),
        ],
    );
    let out = harness.handle(finish(
        token,
        vec![
            ("plain@b.example", permanent()),
            ("never@b.example", permanent()),
            ("success@b.example", permanent()),
            ("failure@b.example", permanent()),
            ("later@b.example", temporary("busy")),
        ],
    ));
    let writes = persists(&out);
    assert_eq!(writes.len(), 1, "one transaction: {writes:?}");
    let (_, changes, notice) = &writes[0];
    assert_eq!(changes.len(), 5, "every change rides with the notice");
    let notice = notice.as_ref().unwrap();
    assert_eq!(
        listed(notice),
        [
            ("plain@b.example", NoticeAction::Failed),
            ("failure@b.example", NoticeAction::Failed)
        ]
    );
    assert_eq!(notice.notify, "alice@a.test");
}

#[test]
fn the_null_reverse_path_never_gets_a_notice() {
    let mut harness = Harness::new();
    let mut bounce = message("Q1", vec![rcpt("bob@b.example")]);
    bounce.reverse_path = None;
    bounce.recipients[0].notify = Some(notify(true, true, true));
    let out = harness.handle(Input::Enqueue(bounce));
    let token = attempts(&out)[0].0;
    let out = harness.handle(finish(token, vec![("bob@b.example", permanent())]));
    let writes = persists(&out);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].2, None);
    assert_eq!(removed_by_write(&out), ["Q1"]);
    harness.ack(&out);
    assert!(harness.queue.is_empty());
}

#[test]
fn success_notices_say_relayed_on_mx_and_delivered_on_lmtp() {
    let mut harness = Harness::new();
    let mut lmtp = with_notify(rcpt("local@a.test"), notify(true, true, false));
    lmtp.destination = Destination {
        path: DeliveryPath::Lmtp {
            host: "backend".into(),
            port: 24,
        },
        tls: Default::default(),
    };
    let out = harness.handle(Input::Enqueue(message(
        "Q1",
        vec![
            with_notify(rcpt("far@b.example"), notify(true, true, false)),
            with_notify(rcpt("dsn@b.example"), notify(true, true, false)),
            rcpt("quiet@b.example"),
            lmtp,
        ],
    )));
    let started = attempts(&out);
    let mut out = harness.handle(finish(
        started[0].0,
        vec![
            ("far@b.example", delivered(false)),
            ("dsn@b.example", delivered(true)),
            ("quiet@b.example", delivered(false)),
        ],
    ));
    out.extend(harness.ack(&out.clone()));
    let more = harness.handle(finish(
        started[1].0,
        vec![("local@a.test", delivered(false))],
    ));
    out.extend(more);
    let found: Vec<Vec<(&str, NoticeAction)>> = persists(&out)
        .iter()
        .filter_map(|(_, _, notice)| notice.as_ref())
        .map(|notice| {
            assert_eq!(notice.kind, NoticeKind::Success);
            listed(notice)
                .into_iter()
                .map(|(a, action)| (if a == "far@b.example" { "far" } else { "local" }, action))
                .collect()
        })
        .collect();
    assert_eq!(
        found,
        [
            vec![("far", NoticeAction::Relayed)],
            vec![("local", NoticeAction::Delivered)]
        ]
    );
}

#[test]
fn a_missing_result_is_a_temporary_failure() {
    let mut harness = Harness::new();
    let token = start_one(&mut harness, vec![rcpt("a@b.example"), rcpt("b@b.example")]);
    let out = harness.handle(finish(
        token,
        vec![
            ("a@b.example", delivered(true)),
            ("stranger@b.example", permanent()),
        ],
    ));
    let writes = persists(&out);
    let states: Vec<(&str, &RecipientState)> = writes[0]
        .1
        .iter()
        .map(|c| (c.address.as_str(), &c.state))
        .collect();
    assert!(matches!(
        states[0],
        ("a@b.example", RecipientState::Delivered { .. })
    ));
    let ("b@b.example", RecipientState::Deferred { last_failure, .. }) = states[1] else {
        panic!("{states:?}");
    };
    assert_eq!(
        last_failure.diagnostic,
        Diagnostic::Local("attempt ended without a result".into())
    );
}

/// Defers `address` (alone in Q1) once at `ARRIVAL` and acknowledges the write.
fn deferred_once(harness: &mut Harness, recipient: QueuedRecipient) {
    let address = recipient.address.clone();
    let token = start_one(harness, vec![recipient]);
    let out = harness.handle(finish(token, vec![(&address, temporary("busy"))]));
    harness.ack(&out);
}

/// Runs the queue until `until`, answering every attempt with a temporary failure
/// and acknowledging every write; returns every output.
fn keep_failing(harness: &mut Harness, until: Instant) -> Vec<Output> {
    let mut all = Vec::new();
    while let Some(deadline) = harness.queue.next_deadline().filter(|d| *d <= until) {
        let mut out = harness.at(deadline.max(harness.now), Input::Tick);
        loop {
            let mut more = harness.ack(&out);
            for (token, _, _, recipients) in attempts(&out) {
                let results = recipients
                    .iter()
                    .map(|r| (r.as_str(), temporary("busy")))
                    .collect();
                more.extend(harness.handle(finish(token, results)));
            }
            all.append(&mut out);
            if more.is_empty() {
                break;
            }
            out = more;
        }
    }
    all
}

#[test]
fn a_delay_notice_goes_once_after_four_hours() {
    let mut harness = Harness::new();
    deferred_once(&mut harness, rcpt("bob@b.example"));
    let warning = ARRIVAL + Duration::from_mins(240);
    let before = keep_failing(&mut harness, warning - Duration::from_millis(1));
    assert!(notices(&before).is_empty());
    // Due at the warning instant itself, not at the next wake after it.
    let at_warning = keep_failing(&mut harness, warning);
    let delays = notices(&at_warning);
    assert_eq!(delays.len(), 1, "{delays:?}");
    assert_eq!(delays[0].kind, NoticeKind::Delay);
    assert_eq!(
        listed(&delays[0]),
        [("bob@b.example", NoticeAction::Delayed)]
    );
    assert_eq!(
        delays[0].recipients[0].will_retry_until,
        Some(notices::seconds(expiry()))
    );
    let message = harness.queue.message("Q1").unwrap();
    assert!(message.recipients[0].delay_notified);
    let after = keep_failing(&mut harness, expiry() - Duration::from_millis(1));
    assert!(notices(&after).is_empty(), "a delay notice goes once");
}

#[test]
fn no_delay_notice_when_off_or_not_asked_for() {
    let mut config = QueueConfig::default();
    config.schedule.delay_warning_after = None;
    let mut harness = Harness::with(config);
    deferred_once(&mut harness, rcpt("bob@b.example"));
    let out = keep_failing(&mut harness, expiry() - Duration::from_millis(1));
    assert!(notices(&out).is_empty());

    let mut harness = Harness::new();
    deferred_once(
        &mut harness,
        with_notify(rcpt("bob@b.example"), notify(false, true, false)),
    );
    let out = keep_failing(&mut harness, expiry() - Duration::from_millis(1));
    assert!(notices(&out).is_empty());
}

#[test]
fn a_failed_write_is_retried_unchanged_and_holds_attempts_back() {
    let mut harness = Harness::new();
    let token = start_one(&mut harness, vec![rcpt("a@b.example"), rcpt("b@b.example")]);
    let out = harness.handle(finish(
        token,
        vec![
            ("a@b.example", permanent()),
            ("b@b.example", temporary("busy")),
        ],
    ));
    let first = persists(&out);
    assert_eq!(first.len(), 1);
    let out = harness.handle(Input::PersistFailed { token: first[0].0 });
    assert!(persists(&out).is_empty());
    assert_eq!(
        harness.queue.next_deadline(),
        Some(harness.now + Duration::from_secs(1))
    );
    let mut retries = Vec::new();
    for _ in 0..8 {
        let out = harness.run_until(harness.queue.next_deadline().unwrap());
        let again = persists(&out);
        assert_eq!(again, first, "the same write, same token");
        retries.push(harness.now);
        harness.handle(Input::PersistFailed { token: first[0].0 });
    }
    let gaps: Vec<u64> = retries
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]).as_millis() / 1000)
        .collect();
    assert_eq!(gaps, [2, 4, 8, 16, 32, 60, 60]);
    // b's retry is long due, but nothing starts while its write is outstanding.
    let out = harness.run_until(ARRIVAL + Duration::from_mins(30));
    assert!(attempts(&out).is_empty());
    assert_eq!(notices(&out).len(), 1, "re-issued, not a second notice");
    let again = persists(&out);
    let out = harness.handle(Input::Persisted { token: again[0].0 });
    assert_eq!(attempts(&out).len(), 1, "b goes once the write is durable");
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::NoticeQueued {
            kind: NoticeKind::Failure,
            recipients: 1,
            ..
        })
    )));
}

/// A message with two recipients at two destinations, both attempts failing at
/// once: the outputs of the first failure (its write issued) and of the second.
fn two_failures_of_one_message() -> (Harness, Vec<Output>, Vec<Output>) {
    let mut harness = Harness::new();
    let out = harness.handle(Input::Enqueue(message(
        "Q1",
        vec![rcpt("a@b.example"), rcpt("x@c.example")],
    )));
    let started = attempts(&out);
    let first = harness.handle(finish(started[0].0, vec![("a@b.example", permanent())]));
    let second = harness.handle(finish(started[1].0, vec![("x@c.example", permanent())]));
    (harness, first, second)
}

#[test]
fn writes_of_one_message_are_issued_in_order_one_at_a_time() {
    let (mut harness, first, second) = two_failures_of_one_message();
    assert_eq!(persists(&first).len(), 1);
    assert!(persists(&second).is_empty(), "waits behind the first");
    // A stale or out-of-turn answer changes nothing.
    assert!(
        harness
            .handle(Input::Persisted { token: Token(999) })
            .is_empty()
    );
    let next = harness.handle(Input::Persisted {
        token: persists(&first)[0].0,
    });
    let next_writes = persists(&next);
    assert_eq!(next_writes.len(), 1);
    assert_eq!(next_writes[0].1[0].address, "x@c.example");
    // Only the last write deletes the message, and the queue lets go of it only once
    // that write is durable.
    assert!(removed_by_write(&first).is_empty());
    assert_eq!(removed_by_write(&next), ["Q1"]);
    assert!(removed(&next).is_empty());
    assert_eq!(harness.queue.len(), 1);
    let last = harness.handle(Input::Persisted {
        token: next_writes[0].0,
    });
    assert!(removed(&last).is_empty());
    assert!(harness.queue.is_empty());
}

#[test]
fn a_restored_deferral_keeps_its_next_attempt() {
    let mut harness = Harness::new();
    let mut restored = message("Q1", vec![rcpt("bob@b.example"), rcpt("done@b.example")]);
    let next_attempt = ARRIVAL + Duration::from_mins(90);
    restored.recipients[0].state = RecipientState::Deferred {
        attempts: 3,
        next_attempt,
        last_failure: Failure {
            status: EnhancedStatus::new(4, 4, 1),
            remote_mta: None,
            diagnostic: Diagnostic::Local("connection refused".into()),
        },
        last_attempt_at: ARRIVAL + Duration::from_mins(50),
    };
    restored.recipients[1].state = RecipientState::Failed {
        at: ARRIVAL,
        failure: Failure {
            status: EnhancedStatus::new(5, 1, 1),
            remote_mta: None,
            diagnostic: Diagnostic::Local("gone".into()),
        },
    };
    harness.now = ARRIVAL + Duration::from_mins(60);
    let out = harness.handle(Input::Enqueue(restored));
    assert!(attempts(&out).is_empty());
    assert_eq!(harness.queue.next_deadline(), Some(next_attempt));
    let out = harness.run_until(next_attempt);
    assert_eq!(attempts(&out)[0].3, ["bob@b.example"]);
    let token = attempts(&out)[0].0;
    let out = harness.handle(finish(token, vec![("bob@b.example", temporary("busy"))]));
    let RecipientState::Deferred { attempts, .. } = &persists(&out)[0].1[0].state else {
        panic!();
    };
    assert_eq!(*attempts, 4, "the count goes on");
}

#[test]
fn a_restored_message_with_every_recipient_final_is_removed() {
    let mut harness = Harness::new();
    let mut restored = message("Q1", vec![rcpt("bob@b.example")]);
    restored.recipients[0].state = RecipientState::Delivered {
        at: ARRIVAL,
        remote_mta: None,
        reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "ok"),
        notify_passed_on: true,
    };
    let out = harness.handle(Input::Enqueue(restored));
    assert_eq!(removed(&out), ["Q1"]);
    assert!(notices(&out).is_empty());
}

#[test]
fn too_many_received_headers_fail_everyone_as_a_loop() {
    let mut harness = Harness::new();
    let mut looping = message(
        "Q1",
        vec![
            rcpt("a@b.example"),
            rcpt("b@c.example"),
            with_notify(rcpt("c@c.example"), Notify::Never),
        ],
    );
    looping.received_headers = 51;
    let out = harness.handle(Input::Enqueue(looping));
    assert!(attempts(&out).is_empty());
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::LoopDetected {
            received_headers: 51,
            ..
        })
    )));
    let writes = persists(&out);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].1.len(), 3);
    let notice = writes[0].2.as_ref().unwrap();
    assert_eq!(listed(notice).len(), 2);
    let status = notice.recipients[0].failure.as_ref().map(|f| f.status);
    assert_eq!(status, Some(EnhancedStatus::new(5, 4, 6)));
}

#[test]
fn enqueue_is_refused_beyond_the_bounds() {
    let mut config = QueueConfig::default();
    config.limits.max_messages = 1;
    config.limits.max_recipients_per_message = 2;
    let mut harness = Harness::with(config);
    let refused = |out: Vec<Output>| match out.as_slice() {
        [Output::Refused { reason, .. }] => Some(reason.clone()),
        _ => None,
    };
    let three = (0..3).map(|n| rcpt(&format!("u{n}@b.example"))).collect();
    assert_eq!(
        refused(harness.handle(Input::Enqueue(message("Q0", three)))),
        Some(Refusal::TooManyRecipients { limit: 2 })
    );
    let twice = vec![rcpt("u@b.example"), rcpt("u@b.example")];
    assert_eq!(
        refused(harness.handle(Input::Enqueue(message("Q0", twice)))),
        Some(Refusal::DuplicateRecipient {
            address: "u@b.example".into()
        })
    );
    assert!(harness.queue.has_room());
    harness.handle(Input::Enqueue(message("Q1", vec![rcpt("u@b.example")])));
    assert!(!harness.queue.has_room());
    assert_eq!(
        refused(harness.handle(Input::Enqueue(message("Q1", vec![rcpt("v@b.example")])))),
        Some(Refusal::DuplicateQueueId)
    );
    assert_eq!(
        refused(harness.handle(Input::Enqueue(message("Q2", vec![rcpt("v@b.example")])))),
        Some(Refusal::QueueFull { limit: 1 })
    );
    assert_eq!(harness.queue.len(), 1);
}

#[test]
fn per_destination_concurrency_holds_the_rest_back() {
    let mut config = QueueConfig::default();
    config.limits.max_concurrent_per_destination = 1;
    let mut harness = Harness::with(config);
    let out = harness.handle(Input::Enqueue(message("Q1", vec![rcpt("a@b.example")])));
    let first = attempts_of(&out);
    let out = harness.handle(Input::Enqueue(message("Q2", vec![rcpt("b@b.example")])));
    assert!(attempts(&out).is_empty());
    let out = harness.handle(Input::Enqueue(message("Q3", vec![rcpt("x@c.example")])));
    assert_eq!(
        attempts(&out).len(),
        1,
        "another destination is not held back"
    );
    let out = harness.handle(finish(first[0], vec![("a@b.example", delivered(true))]));
    let started = attempts(&out);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].1, "Q2");
}

#[test]
fn the_overall_in_flight_limit_serves_the_oldest_first() {
    let mut config = QueueConfig::default();
    config.limits.max_attempts_in_flight = 1;
    let mut harness = Harness::with(config);
    let out = harness.handle(Input::Enqueue(message("Q1", vec![rcpt("a@b.example")])));
    let first = attempts_of(&out);
    let mut younger = message("Q0", vec![rcpt("x@c.example")]);
    younger.arrival = ARRIVAL + Duration::from_secs(1);
    harness.handle(Input::Enqueue(younger));
    harness.handle(Input::Enqueue(message("Q2", vec![rcpt("y@d.example")])));
    assert_eq!(harness.queue.attempts_in_flight(), 1);
    let out = harness.handle(finish(first[0], vec![("a@b.example", delivered(true))]));
    assert_eq!(attempts(&out)[0].1, "Q2", "arrived earlier than Q0");
}

#[test]
fn the_overall_in_flight_limit_serves_the_destination_waiting_longest() {
    let mut config = QueueConfig::default();
    config.limits.max_attempts_in_flight = 1;
    let mut harness = Harness::with(config);
    let first = start_one(&mut harness, vec![rcpt("a@b.example")]);
    // d.example's message is due from ARRIVAL; c.example's, which sorts first, is
    // due a second later. Both are due when the slot frees.
    harness.handle(Input::Enqueue(message("Q2", vec![rcpt("y@d.example")])));
    let mut later = message("Q0", vec![rcpt("x@c.example")]);
    later.arrival = ARRIVAL + Duration::from_secs(1);
    harness.at(ARRIVAL + Duration::from_secs(1), Input::Enqueue(later));
    let out = harness.at(
        ARRIVAL + Duration::from_secs(2),
        finish(first, vec![("a@b.example", delivered(true))]),
    );
    assert_eq!(attempts(&out)[0].1, "Q2", "{out:?}");
}

#[test]
fn a_destination_keeps_its_spent_rate_while_idle() {
    let mut config = QueueConfig::default();
    config.limits.destination_rate = Some(AttemptRate {
        per_minute: 2,
        burst: 1,
    });
    let mut harness = Harness::with(config);
    let first = start_one(&mut harness, vec![rcpt("a@b.example")]);
    let out = harness.handle(finish(first, vec![("a@b.example", delivered(true))]));
    harness.ack(&out);
    // Nothing in flight or waiting for b.example now, but its only token is spent:
    // forgetting the destination would hand the next message a full bucket.
    let out = harness.handle(Input::Enqueue(message("Q2", vec![rcpt("b@b.example")])));
    assert!(attempts(&out).is_empty(), "{out:?}");
    let out = harness.run_until(ARRIVAL + Duration::from_secs(30));
    assert_eq!(attempts(&out)[0].1, "Q2");
}

#[test]
fn a_destination_rate_paces_attempts() {
    let mut config = QueueConfig::default();
    config.limits.destination_rate = Some(AttemptRate {
        per_minute: 2,
        burst: 1,
    });
    let mut harness = Harness::with(config);
    let out = harness.handle(Input::Enqueue(message("Q1", vec![rcpt("a@b.example")])));
    assert_eq!(attempts(&out).len(), 1);
    let out = harness.handle(Input::Enqueue(message("Q2", vec![rcpt("b@b.example")])));
    assert!(attempts(&out).is_empty());
    assert_eq!(
        harness.queue.next_deadline(),
        Some(ARRIVAL + Duration::from_secs(30))
    );
    let out = harness.run_until(ARRIVAL + Duration::from_secs(30));
    assert_eq!(attempts(&out)[0].1, "Q2");
}

#[test]
fn delete_is_silent_and_late_results_are_ignored() {
    let mut config = QueueConfig::default();
    config.limits.max_concurrent_per_destination = 1;
    let mut harness = Harness::with(config);
    let token = start_one(&mut harness, vec![rcpt("a@b.example")]);
    let out = harness.handle(Input::Delete {
        queue_id: "Q1".into(),
    });
    assert_eq!(removed(&out), ["Q1"]);
    assert!(persists(&out).is_empty());
    let out = harness.handle(Input::Enqueue(message("Q2", vec![rcpt("b@b.example")])));
    assert!(
        attempts(&out).is_empty(),
        "the deleted message's attempt still runs"
    );
    let out = harness.handle(finish(token, vec![("a@b.example", permanent())]));
    assert!(persists(&out).is_empty(), "no notice for a deleted message");
    assert_eq!(attempts(&out).len(), 1);
    assert!(
        harness
            .handle(Input::Delete {
                queue_id: "Q9".into()
            })
            .is_empty()
    );
    assert!(harness.handle(finish(Token(12345), vec![])).is_empty());
    assert!(
        harness
            .handle(Input::PersistFailed {
                token: Token(12345)
            })
            .is_empty()
    );
}

#[test]
fn retry_now_makes_deferred_recipients_due() {
    let mut harness = Harness::new();
    deferred_once(&mut harness, rcpt("bob@b.example"));
    harness.now = ARRIVAL + Duration::from_mins(1);
    assert!(
        attempts(&harness.handle(Input::RetryNow {
            queue_id: Some("Q9".into())
        }))
        .is_empty()
    );
    let out = harness.handle(Input::RetryNow { queue_id: None });
    assert_eq!(attempts(&out)[0].3, ["bob@b.example"]);
}

#[test]
fn invalid_configuration_is_refused() {
    let mut config = QueueConfig::default();
    config.limits.max_recipients_per_attempt = 0;
    let error = Queue::new(config).err().map(|e| e.field);
    assert_eq!(error, Some("limits.max_recipients_per_attempt"));
}

#[test]
fn a_delivered_message_goes_in_one_write_even_when_it_is_retried() {
    let mut harness = Harness::new();
    let token = start_one(&mut harness, vec![rcpt("bob@b.example")]);
    let out = harness.handle(finish(token, vec![("bob@b.example", delivered(true))]));
    let first = persists(&out);
    assert_eq!(removed_by_write(&out), ["Q1"]);
    let out = harness.handle(Input::PersistFailed { token: first[0].0 });
    assert!(persists(&out).is_empty());
    assert_eq!(harness.queue.len(), 1, "held until the write is durable");
    let out = harness.run_until(harness.queue.next_deadline().unwrap());
    assert_eq!(persists(&out), first, "the same write, same token");
    assert_eq!(removed_by_write(&out), ["Q1"]);
    let out = harness.handle(Input::Persisted { token: first[0].0 });
    assert!(removed(&out).is_empty(), "no second write for the removal");
    assert!(harness.queue.is_empty());
    assert_eq!(harness.queue.next_deadline(), None);
}

/// A copy written into a local mailbox at acceptance that asked for NOTIFY=SUCCESS.
fn delivered_at_acceptance(address: &str) -> QueuedRecipient {
    let mut recipient = with_notify(
        QueuedRecipient::new(
            address,
            Destination {
                path: DeliveryPath::Local,
                tls: crate::delivery::TlsPolicy::Opportunistic,
            },
        ),
        notify(true, true, false),
    );
    recipient.state = RecipientState::Delivered {
        at: ARRIVAL,
        remote_mta: None,
        reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "delivered to mailbox"),
        notify_passed_on: false,
    };
    recipient.success_owed = true;
    recipient
}

#[test]
fn an_owed_success_notice_is_stored_with_the_write_that_clears_the_debt() {
    let mut harness = Harness::new();
    let out = harness.handle(Input::Enqueue(message(
        "Q1",
        vec![
            delivered_at_acceptance("bob@local.test"),
            with_notify(rcpt("carol@b.example"), notify(true, true, false)),
        ],
    )));
    let writes = persists(&out);
    assert_eq!(writes.len(), 1, "{out:?}");
    let (token, changes, notice) = &writes[0];
    let notice = notice.as_ref().unwrap();
    assert_eq!(notice.kind, NoticeKind::Success);
    assert_eq!(
        listed(notice),
        vec![("bob@local.test", NoticeAction::Delivered)]
    );
    assert_eq!(notice.recipients[0].last_attempt_at, Some(1_700_000_000));
    assert_eq!(changes.len(), 1);
    assert!(!changes[0].success_owed);
    // The remote copy waits behind the write; the message stays for it.
    assert!(attempts(&out).is_empty());
    assert!(removed_by_write(&out).is_empty());
    let out = harness.handle(Input::Persisted { token: *token });
    assert_eq!(attempts(&out).len(), 1);
    assert!(notices(&out).is_empty());
}

#[test]
fn a_message_of_only_owed_notices_goes_with_its_notice_and_a_failed_write_is_retried() {
    let mut harness = Harness::new();
    let out = harness.handle(Input::Enqueue(message(
        "Q1",
        vec![
            delivered_at_acceptance("bob@local.test"),
            delivered_at_acceptance("dave@local.test"),
        ],
    )));
    assert_eq!(removed_by_write(&out), vec!["Q1".to_owned()]);
    let writes = persists(&out);
    assert_eq!(writes.len(), 1);
    let (token, _, notice) = writes[0].clone();
    assert_eq!(notice.as_ref().map(|n| n.recipients.len()), Some(2));
    // Rolled back: the same write, notice and all, comes again.
    let out = harness.handle(Input::PersistFailed { token });
    assert!(persists(&out).is_empty());
    let out = harness.run_until(harness.now + Duration::from_mins(5));
    assert_eq!(persists(&out), vec![(token, writes[0].1.clone(), notice)]);
    let out = harness.handle(Input::Persisted { token });
    assert!(harness.queue.is_empty());
    assert!(removed(&out).is_empty(), "the write removed it already");
}

#[test]
fn a_paid_or_unwanted_success_debt_sends_nothing() {
    let mut harness = Harness::new();
    let mut paid = delivered_at_acceptance("bob@local.test");
    paid.success_owed = false;
    let out = harness.handle(Input::Enqueue(message("Q1", vec![paid])));
    assert!(notices(&out).is_empty());
    assert_eq!(removed(&out), vec!["Q1".to_owned()]);

    // Restored from a record that owes a notice to the null reverse-path (never
    // written so, but read back all the same): the debt is cleared, nothing is sent.
    let mut bounce = message("Q2", vec![delivered_at_acceptance("bob@local.test")]);
    bounce.reverse_path = None;
    let out = harness.handle(Input::Enqueue(bounce));
    let writes = persists(&out);
    assert_eq!(writes.len(), 1);
    assert!(writes[0].2.is_none());
    assert!(!writes[0].1[0].success_owed);
}

// Attempts that never report: the deadline, and late results.

fn timeout() -> Duration {
    QueueConfig::default().limits.attempt_timeout
}

fn timed_out(outputs: &[Output]) -> Vec<Token> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Event(Event::AttemptTimedOut { token, .. }) => Some(*token),
            _ => None,
        })
        .collect()
}

fn late(outputs: &[Output]) -> Vec<(String, bool)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Event(Event::LateResult {
                recipient, applied, ..
            }) => Some((recipient.clone(), *applied)),
            _ => None,
        })
        .collect()
}

/// Starts one attempt for `recipients` of message Q1 and returns its token.
fn one_attempt(harness: &mut Harness, recipients: Vec<QueuedRecipient>) -> Token {
    let out = harness.handle(Input::Enqueue(message("Q1", recipients)));
    attempts(&out)[0].0
}

#[test]
fn the_attempt_timeout_is_derived_from_the_client_timeouts_and_must_be_positive() {
    let client = crate::smtp::client::Limits::default();
    assert_eq!(timeout(), client.attempt_budget());
    assert!(timeout() > client.session_budget());
    let mut config = QueueConfig::default();
    config.limits.attempt_timeout = Duration::ZERO;
    assert!(Queue::new(config).is_err());
}

#[test]
fn an_attempt_that_never_reports_is_deferred_at_its_deadline_and_frees_its_slot() {
    let mut config = QueueConfig::default();
    config.limits.max_concurrent_per_destination = 1;
    let mut harness = Harness::with(config);
    let token = one_attempt(&mut harness, vec![rcpt("bob@b.example")]);
    assert_eq!(harness.queue.next_deadline(), Some(ARRIVAL + timeout()));
    // Nothing happens before the deadline.
    let before = harness.run_until(ARRIVAL + timeout() - Duration::from_millis(1));
    assert!(timed_out(&before).is_empty());
    let out = harness.run_until(ARRIVAL + timeout());
    assert_eq!(timed_out(&out), vec![token]);
    assert_eq!(harness.queue.attempts_in_flight(), 0);
    let (_, changes, notice) = persists(&out).pop().expect("a write");
    assert!(notice.is_none());
    assert!(matches!(
        changes[0].state,
        RecipientState::Deferred { attempts: 1, .. }
    ));
    // The recipient is tried again on the schedule: the slot is free.
    harness.ack(&out);
    let retry = harness.run_until(ARRIVAL + timeout() + Duration::from_mins(60));
    let next = attempts(&retry);
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].0, token);
}

#[test]
fn a_late_success_after_the_deadline_is_kept_and_notified_once() {
    let mut harness = Harness::new();
    let token = one_attempt(
        &mut harness,
        vec![with_notify(
            rcpt("bob@b.example"),
            notify(true, true, false),
        )],
    );
    let out = harness.run_until(ARRIVAL + timeout());
    assert_eq!(timed_out(&out), vec![token]);
    harness.ack(&out);
    // The lost result turns up: the remote has the message.
    let out = harness.handle(Input::AttemptFinished {
        token,
        results: vec![("bob@b.example".to_owned(), delivered(false))],
    });
    assert_eq!(late(&out), vec![("bob@b.example".to_owned(), true)]);
    let written = persists(&out);
    assert_eq!(written.len(), 1);
    assert!(matches!(
        written[0].1[0].state,
        RecipientState::Delivered { .. }
    ));
    let success = notices(&out);
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].kind, NoticeKind::Success);
    // Delivered is final: the message leaves, and the same result again changes nothing.
    let after = harness.ack(&out);
    let again = harness.handle(Input::AttemptFinished {
        token,
        results: vec![("bob@b.example".to_owned(), delivered(false))],
    });
    assert!(persists(&again).is_empty());
    assert!(late(&again).is_empty());
    assert!(harness.queue.is_empty(), "{after:?}");
}

#[test]
fn a_late_success_while_a_new_attempt_runs_wins_and_the_new_result_is_ignored() {
    let mut harness = Harness::new();
    let first = one_attempt(
        &mut harness,
        vec![with_notify(
            rcpt("bob@b.example"),
            notify(true, true, false),
        )],
    );
    let out = harness.run_until(ARRIVAL + timeout());
    harness.ack(&out);
    let retry = harness.run_until(ARRIVAL + timeout() + Duration::from_mins(60));
    let second = attempts(&retry)[0].0;
    let out = harness.handle(Input::AttemptFinished {
        token: first,
        results: vec![("bob@b.example".to_owned(), delivered(false))],
    });
    assert_eq!(late(&out), vec![("bob@b.example".to_owned(), true)]);
    let mut all = out.clone();
    all.extend(harness.ack(&out));
    // The second attempt delivers a copy too: no second state change, no second notice.
    let out = harness.handle(Input::AttemptFinished {
        token: second,
        results: vec![("bob@b.example".to_owned(), delivered(false))],
    });
    all.extend(out.clone());
    all.extend(harness.ack(&out));
    assert_eq!(notices(&all).len(), 1);
    assert!(harness.queue.is_empty());
}

#[test]
fn late_failures_are_ignored_and_a_late_result_after_expiry_touches_nothing() {
    let mut harness = Harness::new();
    let token = one_attempt(
        &mut harness,
        vec![rcpt("bob@b.example"), rcpt("carol@b.example")],
    );
    let out = harness.run_until(ARRIVAL + timeout());
    harness.ack(&out);
    let out = harness.handle(Input::AttemptFinished {
        token,
        results: vec![
            ("bob@b.example".to_owned(), permanent()),
            ("carol@b.example".to_owned(), temporary("busy")),
        ],
    });
    assert_eq!(
        late(&out),
        vec![
            ("bob@b.example".to_owned(), false),
            ("carol@b.example".to_owned(), false)
        ]
    );
    assert!(persists(&out).is_empty());

    // A message that expired (failure notice sent) before its lost result turned up.
    let mut config = QueueConfig::default();
    config.schedule.expire_after = timeout();
    config.schedule.delay_warning_after = None;
    let mut harness = Harness::with(config);
    let token = one_attempt(
        &mut harness,
        vec![with_notify(
            rcpt("bob@b.example"),
            notify(true, true, false),
        )],
    );
    let out = harness.run_until(ARRIVAL + timeout());
    assert_eq!(notices(&out).len(), 1, "the failure notice");
    harness.ack(&out);
    assert!(harness.queue.is_empty());
    let out = harness.handle(Input::AttemptFinished {
        token,
        results: vec![("bob@b.example".to_owned(), delivered(false))],
    });
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn an_ambiguous_result_is_deferred_with_its_own_event() {
    let mut harness = Harness::new();
    let token = one_attempt(&mut harness, vec![rcpt("bob@b.example")]);
    let failure = Failure {
        status: EnhancedStatus::new(4, 4, 2),
        remote_mta: Some("mx.b.example".to_owned()),
        diagnostic: Diagnostic::Local("connection lost after the end of data".to_owned()),
    };
    let out = harness.handle(Input::AttemptFinished {
        token,
        results: vec![(
            "bob@b.example".to_owned(),
            RecipientResult::Ambiguous(failure),
        )],
    });
    assert!(out.iter().any(|output| matches!(
        output,
        Output::Event(Event::Ambiguous { recipient, remote_mta: Some(remote), .. })
            if recipient == "bob@b.example" && remote == "mx.b.example"
    )));
    assert!(matches!(
        persists(&out)[0].1[0].state,
        RecipientState::Deferred { attempts: 1, .. }
    ));
}

// What the queue forgets: records whose use is over, which would otherwise only hold
// memory (counted by test-only accessors, as no output shows them).

#[test]
fn a_destination_is_forgotten_once_idle_and_its_rate_earned_back() {
    let mut harness = Harness::new();
    let token = start_one(&mut harness, vec![rcpt("a@b.example")]);
    assert_eq!(harness.queue.tracked_destinations(), 1);
    let out = harness.handle(finish(token, vec![("a@b.example", delivered(true))]));
    harness.ack(&out);
    assert!(harness.queue.is_empty());
    assert_eq!(harness.queue.tracked_destinations(), 0);

    // With a rate, the destination stays until its bucket is full again (see
    // `a_destination_keeps_its_spent_rate_while_idle`), then goes.
    let mut config = QueueConfig::default();
    config.limits.destination_rate = Some(AttemptRate {
        per_minute: 2,
        burst: 1,
    });
    let mut harness = Harness::with(config);
    let token = start_one(&mut harness, vec![rcpt("a@b.example")]);
    let out = harness.handle(finish(token, vec![("a@b.example", delivered(true))]));
    harness.ack(&out);
    assert_eq!(harness.queue.tracked_destinations(), 1);
    harness.at(ARRIVAL + Duration::from_secs(30), Input::Tick);
    assert_eq!(harness.queue.tracked_destinations(), 0);
}

#[test]
fn a_superseded_attempt_is_forgotten_when_its_message_leaves() {
    // The message expires at the attempt's deadline and leaves with its failure notice.
    let mut config = QueueConfig::default();
    config.schedule.expire_after = timeout();
    config.schedule.delay_warning_after = None;
    let mut harness = Harness::with(config);
    let token = one_attempt(&mut harness, vec![rcpt("bob@b.example")]);
    let out = harness.run_until(ARRIVAL + timeout());
    assert_eq!(timed_out(&out), vec![token]);
    assert_eq!(harness.queue.superseded_attempts(), 1);
    harness.ack(&out);
    assert!(harness.queue.is_empty());
    assert_eq!(harness.queue.superseded_attempts(), 0);

    // A deleted message's superseded attempt goes with it.
    let mut harness = Harness::new();
    let token = one_attempt(&mut harness, vec![rcpt("bob@b.example")]);
    let out = harness.run_until(ARRIVAL + timeout());
    assert_eq!(timed_out(&out), vec![token]);
    harness.ack(&out);
    assert_eq!(harness.queue.superseded_attempts(), 1);
    harness.handle(Input::Delete {
        queue_id: "Q1".into(),
    });
    assert_eq!(harness.queue.superseded_attempts(), 0);
}

#[test]
fn a_deleted_deferred_message_leaves_no_wake_behind() {
    let mut harness = Harness::new();
    deferred_once(&mut harness, rcpt("bob@b.example"));
    // The deferral's retry is the queue's next deadline.
    assert!(harness.queue.next_deadline().is_some());
    harness.handle(Input::Delete {
        queue_id: "Q1".into(),
    });
    assert!(harness.queue.is_empty());
    assert_eq!(harness.queue.next_deadline(), None);
}

#[test]
fn an_answer_for_a_write_still_waiting_its_turn_changes_nothing() {
    let (mut harness, first, second) = two_failures_of_one_message();
    let first_write = persists(&first)[0].0;
    assert!(persists(&second).is_empty(), "waits behind the first");
    // Tokens are handed out in order, so the write waiting behind the first holds the
    // next one (checked below); an answer for it before it was issued is out of turn.
    let waiting = Token(first_write.0 + 1);
    assert!(
        harness
            .handle(Input::Persisted { token: waiting })
            .is_empty()
    );
    let next = harness.handle(Input::Persisted { token: first_write });
    let next_writes = persists(&next);
    assert_eq!(next_writes.len(), 1);
    assert_eq!(next_writes[0].0, waiting);
    assert_eq!(next_writes[0].1[0].address, "x@c.example");
}

#[test]
fn a_clock_stepping_back_starts_nothing_early_and_does_not_wedge_dispatch() {
    let mut config = QueueConfig::default();
    config.limits.max_concurrent_per_destination = 1;
    let mut harness = Harness::with(config);
    let first = start_one(&mut harness, vec![rcpt("a@b.example")]);
    // Q2 is due at its arrival but waits for b.example's only slot.
    let out = harness.handle(Input::Enqueue(message("Q2", vec![rcpt("c@b.example")])));
    assert!(attempts(&out).is_empty());
    // The slot frees at a time the driver's clock puts before Q2 was due: Q2 must not
    // start then, and the queue must go on answering.
    let out = harness.at(
        ARRIVAL - Duration::from_secs(1),
        finish(first, vec![("a@b.example", delivered(true))]),
    );
    assert!(attempts(&out).is_empty(), "{out:?}");
    assert_eq!(persists(&out).len(), 1, "Q1's delivery is still written");
}

#[test]
fn a_message_passed_over_while_the_clock_was_back_starts_once_it_is_due() {
    let mut config = QueueConfig::default();
    config.limits.max_concurrent_per_destination = 1;
    let mut harness = Harness::with(config);
    let first = start_one(&mut harness, vec![rcpt("a@b.example")]);
    harness.handle(Input::Enqueue(message("Q2", vec![rcpt("c@b.example")])));
    harness.at(
        ARRIVAL - Duration::from_secs(1),
        finish(first, vec![("a@b.example", delivered(true))]),
    );
    // Passed over as not yet due, Q2 must still be woken for at its due time, not
    // left for a later wake (its delay warning, hours away).
    let deadline = harness.queue.next_deadline();
    assert!(deadline.is_some_and(|at| at <= ARRIVAL), "{deadline:?}");
    let out = harness.at(ARRIVAL, Input::Tick);
    assert_eq!(attempts(&out).len(), 1, "{out:?}");
}

#[test]
fn a_finished_attempt_counts_its_delivered_deferred_and_failed_recipients() {
    let mut harness = Harness::new();
    let token = start_one(
        &mut harness,
        vec![
            rcpt("a@b.example"),
            rcpt("c@b.example"),
            rcpt("d@b.example"),
            rcpt("e@b.example"),
        ],
    );
    let out = harness.handle(finish(
        token,
        vec![
            ("a@b.example", delivered(true)),
            ("c@b.example", temporary("busy")),
            ("d@b.example", temporary("busy")),
            ("e@b.example", permanent()),
        ],
    ));
    let counts: Vec<(usize, usize, usize)> = out
        .iter()
        .filter_map(|output| match output {
            Output::Event(Event::AttemptFinished {
                delivered,
                deferred,
                failed,
                ..
            }) => Some((*delivered, *deferred, *failed)),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [(1, 2, 1)]);
}

#[test]
fn a_write_failure_reported_twice_counts_once() {
    let mut harness = Harness::new();
    let token = start_one(&mut harness, vec![rcpt("a@b.example")]);
    let out = harness.handle(finish(token, vec![("a@b.example", permanent())]));
    let write = persists(&out)[0].0;
    harness.handle(Input::PersistFailed { token: write });
    let retry_at = Some(harness.now + Duration::from_secs(1));
    assert_eq!(harness.queue.next_deadline(), retry_at);
    // The write is no longer with the driver: a second report of its failure is stale,
    // and neither counts as another failure nor moves the retry back.
    let out = harness.handle(Input::PersistFailed { token: write });
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(harness.queue.next_deadline(), retry_at);
}

#[test]
fn a_looping_message_leaves_its_already_delivered_recipients_alone() {
    let mut harness = Harness::new();
    let mut looping = message(
        "Q1",
        vec![delivered_at_acceptance("a@local.test"), rcpt("b@c.example")],
    );
    looping.received_headers = 51;
    let out = harness.handle(Input::Enqueue(looping));
    let failed: Vec<&str> = out
        .iter()
        .filter_map(|output| match output {
            Output::Event(Event::Failed { recipient, .. }) => Some(recipient.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(failed, ["b@c.example"]);
    let held = harness.queue.message("Q1").expect("held until written");
    assert!(matches!(
        held.recipients[0].state,
        RecipientState::Delivered { .. }
    ));
}

#[test]
fn the_queue_shows_what_it_holds_and_the_configuration_it_was_given() {
    let mut config = QueueConfig::default();
    config.limits.max_messages = 7;
    let mut harness = Harness::with(config.clone());
    assert_eq!(harness.queue.config(), &config);
    assert!(harness.queue.is_empty());
    harness.handle(Input::Enqueue(message("Q2", vec![rcpt("a@b.example")])));
    harness.handle(Input::Enqueue(message("Q1", vec![rcpt("b@b.example")])));
    assert!(!harness.queue.is_empty());
    assert_eq!(harness.queue.len(), 2);
    // In queue id order.
    let listed: Vec<&str> = harness
        .queue
        .messages()
        .map(|message| message.queue_id.as_str())
        .collect();
    assert_eq!(listed, ["Q1", "Q2"]);
}

#[test]
fn retry_now_for_one_message_leaves_the_others_waiting() {
    let mut harness = Harness::new();
    deferred_once(&mut harness, rcpt("bob@b.example"));
    let token =
        attempts(&harness.handle(Input::Enqueue(message("Q2", vec![rcpt("carol@c.example")]))))[0]
            .0;
    let out = harness.handle(finish(token, vec![("carol@c.example", temporary("busy"))]));
    harness.ack(&out);
    harness.now = ARRIVAL + Duration::from_mins(1);
    let out = harness.handle(Input::RetryNow {
        queue_id: Some("Q2".into()),
    });
    let started = attempts(&out);
    assert_eq!(started.len(), 1, "{out:?}");
    assert_eq!(started[0].1, "Q2");
    assert_eq!(started[0].3, ["carol@c.example"]);
}
