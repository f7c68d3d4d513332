//! One message's runtime in the queue: its durable state, which recipients are in an
//! attempt, and its writes still waiting to become durable, oldest first. Every
//! decision about a single message is made here: results applied, expiry, delay
//! warnings, the loop check, and which recipients are due.

use super::Event;
use super::notices;
use super::schedule::RetrySchedule;
use super::state::{QueuedMessage, RecipientChange, RecipientState};
use crate::delivery::{Destination, Diagnostic, Failure, RecipientResult};
use crate::machine::Token;
use crate::notice::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest};
use crate::smtp::reply::EnhancedStatus;
use crate::time::Instant;
use std::collections::{BTreeMap, VecDeque};

/// RFC 3463 X.4.7: delivery time expired (a recipient never tried before expiry).
const EXPIRED_UNTRIED: EnhancedStatus = EnhancedStatus::new(4, 4, 7);
/// RFC 3463 X.0.0: an attempt that ended without saying anything about a recipient.
const NO_RESULT: EnhancedStatus = EnhancedStatus::new(4, 0, 0);
/// RFC 3463 X.4.6: routing loop detected.
const LOOP: EnhancedStatus = EnhancedStatus::new(5, 4, 6);

/// A message and everything the queue tracks about it in memory.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) message: QueuedMessage,
    /// Per recipient (same index): the attempt it is part of, if any. Memory only.
    pub(super) in_flight: Vec<Option<Token>>,
    /// Writes not yet acknowledged, in the order they were decided; only the first
    /// is with the driver, so the driver applies them in that order. Bounded: while one
    /// is outstanding the message starts no attempts, so more come only from attempts
    /// already running, from one expiry, and from one delay notice per recipient.
    pub(super) persists: VecDeque<PendingPersist>,
    /// This message's key in the machine's wake index.
    pub(super) wake: Option<Instant>,
    /// This message's keys in the destinations' ready sets.
    pub(super) ready: Vec<(Destination, Instant)>,
}

/// A write the driver has not acknowledged yet.
#[derive(Debug)]
pub(super) struct PendingPersist {
    /// Kept across retries, so that a driver may recognise the same write.
    pub(super) token: Token,
    pub(super) write: Write,
    pub(super) failures: u32,
    pub(super) status: PersistStatus,
    /// Issued as the message's last write, which deletes it (see `Entry::is_last_write`).
    pub(super) removes: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PersistStatus {
    /// Behind an earlier write of the same message.
    Waiting,
    /// With the driver.
    Issued,
    /// Failed; to be issued again then.
    RetryAt(Instant),
}

/// Recipient changes and the notice that must become durable with them, in one
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Write {
    pub(super) changes: Vec<RecipientChange>,
    pub(super) notice: Option<NoticeRequest>,
}

/// What one decision about a message produced.
#[derive(Debug, Default)]
pub(super) struct Decisions {
    pub(super) events: Vec<Event>,
    pub(super) writes: Vec<Write>,
}

/// Collects the changes of one decision, grouped by the notice that lists them: a
/// recipient's change travels with the notice it appears in, so neither can become
/// durable without the other; changes that no notice lists ride with the first write.
#[derive(Debug, Default)]
struct Batch {
    unlisted: Vec<RecipientChange>,
    listed: BTreeMap<NoticeKind, (Vec<RecipientChange>, Vec<NoticeRecipient>)>,
}

impl Batch {
    fn add(&mut self, change: RecipientChange, line: Option<(NoticeKind, NoticeRecipient)>) {
        match line {
            Some((kind, line)) => {
                let (changes, lines) = self.listed.entry(kind).or_default();
                changes.push(change);
                lines.push(line);
            }
            None => self.unlisted.push(change),
        }
    }

    fn into_writes(self, message: &QueuedMessage) -> Vec<Write> {
        let mut writes: Vec<Write> = Vec::new();
        let mut unlisted = self.unlisted;
        for (kind, (changes, lines)) in self.listed {
            match notices::request(message, kind, lines) {
                Some(notice) => writes.push(Write {
                    changes,
                    notice: Some(notice),
                }),
                // Only reachable with a null reverse-path, where nobody is listed.
                None => unlisted.extend(changes),
            }
        }
        if unlisted.is_empty() {
            return writes;
        }
        match writes.first_mut() {
            Some(first) => {
                unlisted.append(&mut first.changes);
                first.changes = unlisted;
            }
            None => writes.push(Write {
                changes: unlisted,
                notice: None,
            }),
        }
        writes
    }
}

impl Entry {
    pub(super) fn new(message: QueuedMessage) -> Entry {
        Entry {
            in_flight: vec![None; message.recipients.len()],
            message,
            persists: VecDeque::new(),
            wake: None,
            ready: Vec::new(),
        }
    }

    pub(super) fn queue_id(&self) -> &str {
        &self.message.queue_id
    }

    /// Every recipient final and every write durable: the message can go.
    pub(super) fn is_done(&self) -> bool {
        self.persists.is_empty()
            && self
                .message
                .recipients
                .iter()
                .all(|recipient| recipient.state.is_final())
    }

    /// Whether the head write, once durable, leaves nothing to do: it is the only
    /// write and every recipient is final with it. Nothing can add a write then —
    /// a final recipient is in no attempt, never expires and gets no delay notice —
    /// so the driver may delete the message in the same transaction.
    pub(super) fn is_last_write(&self) -> bool {
        self.persists.len() == 1
            && self
                .message
                .recipients
                .iter()
                .all(|recipient| recipient.state.is_final())
    }

    /// Whether recipient `index` could be attempted at `now`: waiting, due, and the
    /// message not expired (an attempt only ever starts strictly before expiry).
    fn is_due(&self, index: usize, now: Instant, expiry: Instant) -> bool {
        now < expiry
            && self.is_waiting(index)
            && self.message.recipients[index]
                .state
                .due_at(self.message.arrival)
                .is_some_and(|due| due <= now)
    }

    fn is_waiting(&self, index: usize) -> bool {
        self.in_flight.get(index).is_some_and(Option::is_none)
            && self
                .message
                .recipients
                .get(index)
                .is_some_and(|recipient| !recipient.state.is_final())
    }

    /// Applies what attempt `token` (started at `started_at`) learned about its
    /// `recipients`. One missing from `results` failed temporarily; a temporary
    /// failure at or after expiry is final.
    pub(super) fn apply_results(
        &mut self,
        now: Instant,
        schedule: &RetrySchedule,
        token: Token,
        recipients: &[usize],
        started_at: Instant,
        results: &[(String, RecipientResult)],
    ) -> Decisions {
        let expiry = schedule.expires_at(self.message.arrival);
        let arrival = self.message.arrival;
        let reverse_path = self.message.reverse_path.clone();
        let queue_id = self.message.queue_id.clone();
        let mut batch = Batch::default();
        let mut events = Vec::new();
        let (mut delivered, mut deferred, mut failed) = (0, 0, 0);
        for &index in recipients {
            if self.in_flight.get(index).copied().flatten() != Some(token) {
                continue;
            }
            self.in_flight[index] = None;
            let Some(recipient) = self.message.recipients.get_mut(index) else {
                continue;
            };
            if recipient.state.is_final() {
                continue;
            }
            let result = results
                .iter()
                .find(|(address, _)| *address == recipient.address)
                .map(|(_, result)| result.clone())
                .unwrap_or_else(|| {
                    RecipientResult::Temporary(local_failure(
                        NO_RESULT,
                        "attempt ended without a result",
                    ))
                });
            if let RecipientResult::Ambiguous(failure) = &result {
                events.push(Event::Ambiguous {
                    queue_id: queue_id.clone(),
                    recipient: recipient.address.clone(),
                    remote_mta: failure.remote_mta.clone(),
                });
            }
            let line = match result {
                RecipientResult::Delivered {
                    remote_mta,
                    reply,
                    notify_passed_on,
                } => {
                    delivered += 1;
                    let delivery = Delivery {
                        remote_mta,
                        reply,
                        notify_passed_on,
                    };
                    delivery.record(recipient, &queue_id, now, started_at, &mut events)
                }
                RecipientResult::Temporary(failure) | RecipientResult::Ambiguous(failure)
                    if now < expiry =>
                {
                    deferred += 1;
                    let attempts = recipient.state.attempts().saturating_add(1);
                    let next_attempt = schedule.next_attempt(arrival, now, attempts);
                    events.push(Event::Deferred {
                        queue_id: queue_id.clone(),
                        recipient: recipient.address.clone(),
                        attempts,
                        next_attempt,
                        status: failure.status,
                    });
                    recipient.state = RecipientState::Deferred {
                        attempts,
                        next_attempt,
                        last_failure: failure,
                        last_attempt_at: started_at,
                    };
                    None
                }
                RecipientResult::Temporary(failure)
                | RecipientResult::Ambiguous(failure)
                | RecipientResult::Permanent(failure) => {
                    failed += 1;
                    events.push(Event::Failed {
                        queue_id: queue_id.clone(),
                        recipient: recipient.address.clone(),
                        status: failure.status,
                    });
                    let line = notices::line(
                        recipient,
                        NoticeAction::Failed,
                        Some(failure.clone()),
                        Some(started_at),
                        None,
                    );
                    recipient.state = RecipientState::Failed { at: now, failure };
                    Some((NoticeKind::Failure, line))
                }
            };
            let line = line.filter(|(kind, _)| {
                notices::wants(reverse_path.as_deref(), recipient.notify, *kind, false)
            });
            batch.add(RecipientChange::of(recipient), line);
        }
        events.push(Event::AttemptFinished {
            token,
            queue_id,
            delivered,
            deferred,
            failed,
        });
        self.decided(batch, events)
    }

    /// Attempt `token` did not report by its deadline: its recipients are deferred
    /// (or fail, at expiry) as if it had ended without a result for them.
    pub(super) fn time_out(
        &mut self,
        now: Instant,
        schedule: &RetrySchedule,
        token: Token,
        recipients: &[usize],
        started_at: Instant,
    ) -> Decisions {
        let failure = local_failure(
            NO_RESULT,
            "the attempt's result did not come back before its deadline",
        );
        let results: Vec<(String, RecipientResult)> = recipients
            .iter()
            .filter_map(|&index| self.message.recipients.get(index))
            .map(|recipient| {
                (
                    recipient.address.clone(),
                    RecipientResult::Temporary(failure.clone()),
                )
            })
            .collect();
        self.apply_results(now, schedule, token, recipients, started_at, &results)
    }

    /// Applies the late result of attempt `token`, superseded at its deadline: a
    /// recipient reported delivered that is not final yet is delivered (whatever
    /// attempt it is in now: that attempt's result will find it final); anything
    /// else is ignored. Each recipient gets a `LateResult` event saying which.
    pub(super) fn apply_late_results(
        &mut self,
        now: Instant,
        token: Token,
        recipients: &[usize],
        started_at: Instant,
        results: &[(String, RecipientResult)],
    ) -> Decisions {
        let queue_id = self.message.queue_id.clone();
        let reverse_path = self.message.reverse_path.clone();
        let mut batch = Batch::default();
        let mut events = Vec::new();
        for &index in recipients {
            let Some(recipient) = self.message.recipients.get_mut(index) else {
                continue;
            };
            let result = results
                .iter()
                .find(|(address, _)| *address == recipient.address)
                .map(|(_, result)| result.clone());
            let applied = match result {
                Some(RecipientResult::Delivered {
                    remote_mta,
                    reply,
                    notify_passed_on,
                }) if !recipient.state.is_final() => {
                    let delivery = Delivery {
                        remote_mta,
                        reply,
                        notify_passed_on,
                    };
                    let line = delivery.record(recipient, &queue_id, now, started_at, &mut events);
                    let line = line.filter(|(kind, _)| {
                        notices::wants(reverse_path.as_deref(), recipient.notify, *kind, false)
                    });
                    batch.add(RecipientChange::of(recipient), line);
                    true
                }
                _ => false,
            };
            events.push(Event::LateResult {
                token,
                queue_id: queue_id.clone(),
                recipient: recipient.address.clone(),
                applied,
            });
        }
        self.decided(batch, events)
    }

    /// Fails every recipient that is neither final nor in an attempt once the message
    /// has expired, with its last temporary failure (4.4.7 if it was never tried), in
    /// one failure notice.
    pub(super) fn expire(&mut self, now: Instant, schedule: &RetrySchedule) -> Decisions {
        if now < schedule.expires_at(self.message.arrival) {
            return Decisions::default();
        }
        let mut batch = Batch::default();
        let mut events = Vec::new();
        for index in 0..self.message.recipients.len() {
            if !self.is_waiting(index) {
                continue;
            }
            let reverse_path = self.message.reverse_path.as_deref();
            let recipient = &mut self.message.recipients[index];
            let (failure, last_attempt_at) = match &recipient.state {
                RecipientState::Deferred {
                    last_failure,
                    last_attempt_at,
                    ..
                } => (last_failure.clone(), Some(*last_attempt_at)),
                _ => (
                    local_failure(EXPIRED_UNTRIED, "delivery time expired before any attempt"),
                    None,
                ),
            };
            events.push(Event::Expired {
                queue_id: self.message.queue_id.clone(),
                recipient: recipient.address.clone(),
                status: failure.status,
            });
            let wanted = notices::wants(reverse_path, recipient.notify, NoticeKind::Failure, false);
            let line = wanted.then(|| {
                let line = notices::line(
                    recipient,
                    NoticeAction::Failed,
                    Some(failure.clone()),
                    last_attempt_at,
                    None,
                );
                (NoticeKind::Failure, line)
            });
            recipient.state = RecipientState::Failed { at: now, failure };
            batch.add(RecipientChange::of(recipient), line);
        }
        self.decided(batch, events)
    }

    /// Once the delay-warning time has passed (and before expiry), lists in one delay
    /// notice every deferred recipient that wants one and has not had one yet.
    /// Recipients still pending get theirs when they are first deferred.
    pub(super) fn delay_warnings(&mut self, now: Instant, schedule: &RetrySchedule) -> Decisions {
        let arrival = self.message.arrival;
        let expiry = schedule.expires_at(arrival);
        let Some(warning) = schedule.delay_warning_at(arrival) else {
            return Decisions::default();
        };
        if now < warning || now >= expiry {
            return Decisions::default();
        }
        let reverse_path = self.message.reverse_path.as_deref();
        let mut batch = Batch::default();
        for recipient in &mut self.message.recipients {
            let RecipientState::Deferred {
                last_failure,
                last_attempt_at,
                ..
            } = &recipient.state
            else {
                continue;
            };
            if recipient.delay_notified
                || !notices::wants(reverse_path, recipient.notify, NoticeKind::Delay, true)
            {
                continue;
            }
            let line = notices::line(
                recipient,
                NoticeAction::Delayed,
                Some(last_failure.clone()),
                Some(*last_attempt_at),
                Some(expiry),
            );
            recipient.delay_notified = true;
            batch.add(
                RecipientChange::of(recipient),
                Some((NoticeKind::Delay, line)),
            );
        }
        self.decided(batch, Vec::new())
    }

    /// A message with more Received headers than `limit` is looping (RFC 5321 §6.3):
    /// every recipient not yet final fails at once with 5.4.6, in one failure notice.
    pub(super) fn fail_as_loop(&mut self, now: Instant, limit: u32) -> Decisions {
        let received = self.message.received_headers;
        if received <= limit {
            return Decisions::default();
        }
        let diagnostic =
            format!("mail loop: {received} Received headers, more than {limit} (RFC 5321 6.3)");
        let failure = local_failure(LOOP, &diagnostic);
        let reverse_path = self.message.reverse_path.as_deref();
        let mut batch = Batch::default();
        let mut events = vec![Event::LoopDetected {
            queue_id: self.message.queue_id.clone(),
            received_headers: received,
        }];
        for (recipient, in_flight) in self.message.recipients.iter_mut().zip(&self.in_flight) {
            if recipient.state.is_final() || in_flight.is_some() {
                continue;
            }
            events.push(Event::Failed {
                queue_id: self.message.queue_id.clone(),
                recipient: recipient.address.clone(),
                status: LOOP,
            });
            let wanted = notices::wants(reverse_path, recipient.notify, NoticeKind::Failure, false);
            let line = wanted.then(|| {
                let line = notices::line(
                    recipient,
                    NoticeAction::Failed,
                    Some(failure.clone()),
                    None,
                    None,
                );
                (NoticeKind::Failure, line)
            });
            recipient.state = RecipientState::Failed {
                at: now,
                failure: failure.clone(),
            };
            batch.add(RecipientChange::of(recipient), line);
        }
        self.decided(batch, events)
    }

    /// Lists in one success notice every recipient delivered into a local mailbox at
    /// acceptance whose notice is still owed (RFC 3461 NOTIFY=SUCCESS), clearing the
    /// debt in the same write as the notice.
    pub(super) fn owed_success_notices(&mut self) -> Decisions {
        let reverse_path = self.message.reverse_path.as_deref();
        let mut batch = Batch::default();
        for recipient in &mut self.message.recipients {
            let RecipientState::Delivered { at, .. } = recipient.state else {
                continue;
            };
            if !recipient.success_owed {
                continue;
            }
            recipient.success_owed = false;
            let wanted = notices::wants(reverse_path, recipient.notify, NoticeKind::Success, false);
            let line = wanted.then(|| {
                let action = notices::success_action(&recipient.destination.path);
                let line = notices::line(recipient, action, None, Some(at), None);
                (NoticeKind::Success, line)
            });
            batch.add(RecipientChange::of(recipient), line);
        }
        self.decided(batch, Vec::new())
    }

    fn decided(&self, batch: Batch, events: Vec<Event>) -> Decisions {
        Decisions {
            events,
            writes: batch.into_writes(&self.message),
        }
    }

    /// Makes every deferred recipient not in an attempt due at `now` (an admin flush).
    /// Memory only: the persisted schedule returns after a restart.
    pub(super) fn retry_now(&mut self, now: Instant) {
        for (recipient, in_flight) in self.message.recipients.iter_mut().zip(&self.in_flight) {
            if let (RecipientState::Deferred { next_attempt, .. }, None) =
                (&mut recipient.state, in_flight)
            {
                *next_attempt = (*next_attempt).min(now);
            }
        }
    }

    /// When this message next needs the machine's attention, and for each destination
    /// the earliest due time of its recipients that could be attempted now. Nothing is
    /// ready while a write of this message is outstanding: its order must be kept, and
    /// this bounds the writes one message can pile up.
    pub(super) fn plan(
        &self,
        now: Instant,
        schedule: &RetrySchedule,
    ) -> (Option<Instant>, BTreeMap<Destination, Instant>) {
        let arrival = self.message.arrival;
        let expiry = schedule.expires_at(arrival);
        let writing = !self.persists.is_empty();
        let mut wake: Option<Instant> = None;
        let mut ready: BTreeMap<Destination, Instant> = BTreeMap::new();
        let mut later = |at: Instant| {
            if at > now {
                wake = Some(wake.map_or(at, |wake| wake.min(at)));
            }
        };
        let mut may_want_delay_notice = false;
        for (index, recipient) in self.message.recipients.iter().enumerate() {
            if !self.is_waiting(index) {
                continue;
            }
            let due = recipient.state.due_at(arrival).unwrap_or(expiry);
            if due > now {
                later(due.min(expiry));
            } else {
                // Ready, but perhaps held back by limits: still expire on time.
                later(expiry);
                if !writing && self.is_due(index, now, expiry) {
                    ready
                        .entry(recipient.destination.clone())
                        .and_modify(|earliest| *earliest = (*earliest).min(due))
                        .or_insert(due);
                }
            }
            may_want_delay_notice |= !recipient.delay_notified;
        }
        if may_want_delay_notice && let Some(warning) = schedule.delay_warning_at(arrival) {
            later(warning);
        }
        if let Some(PersistStatus::RetryAt(at)) = self.persists.front().map(|p| p.status) {
            later(at);
        }
        (wake, ready)
    }

    /// The recipients for `destination` that are due at `now`, at most `max`.
    pub(super) fn due_recipients(
        &self,
        now: Instant,
        schedule: &RetrySchedule,
        destination: &Destination,
        max: usize,
    ) -> Vec<usize> {
        let expiry = schedule.expires_at(self.message.arrival);
        if !self.persists.is_empty() {
            return Vec::new();
        }
        (0..self.message.recipients.len())
            .filter(|&index| self.is_due(index, now, expiry))
            .filter(|&index| self.message.recipients[index].destination == *destination)
            .take(max)
            .collect()
    }
}

/// A remote's acceptance of one recipient, as an attempt reported it.
struct Delivery {
    remote_mta: Option<String>,
    reply: crate::smtp::reply::Reply,
    notify_passed_on: bool,
}

impl Delivery {
    /// Makes `recipient` delivered, with its event; the success notice line it is
    /// owed, if any, before the sender's wishes are applied.
    fn record(
        self,
        recipient: &mut super::state::QueuedRecipient,
        queue_id: &str,
        now: Instant,
        started_at: Instant,
        events: &mut Vec<Event>,
    ) -> Option<(NoticeKind, NoticeRecipient)> {
        events.push(Event::Delivered {
            queue_id: queue_id.to_owned(),
            recipient: recipient.address.clone(),
            remote_mta: self.remote_mta.clone(),
        });
        recipient.state = RecipientState::Delivered {
            at: now,
            remote_mta: self.remote_mta,
            reply: self.reply,
            notify_passed_on: self.notify_passed_on,
        };
        // RFC 3461 §5.2.2: once a DSN-capable server has the NOTIFY parameter, the
        // success notice is its job, not ours.
        let action = notices::success_action(&recipient.destination.path);
        (!self.notify_passed_on).then(|| {
            let line = notices::line(recipient, action, None, Some(started_at), None);
            (NoticeKind::Success, line)
        })
    }
}

fn local_failure(status: EnhancedStatus, text: &str) -> Failure {
    Failure {
        status,
        remote_mta: None,
        diagnostic: Diagnostic::Local(text.to_owned()),
    }
}
