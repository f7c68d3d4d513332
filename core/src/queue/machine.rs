//! The queue machine itself: holds the entries, issues their writes in order, keeps
//! the wake and ready indexes, and starts attempts where the limits leave room —
//! oldest due first, one message and one destination per attempt.

use super::config::{ConfigError, QueueConfig};
use super::entry::{Decisions, Entry, PendingPersist, PersistStatus};
use super::state::QueuedMessage;
use super::throttle::{DestinationLoad, TokenBucket};
use super::{Event, Input, Output, Refusal};
use crate::delivery::{Destination, RecipientResult};
use crate::machine::{Machine, Token, TokenSource};
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// An attempt the driver is making.
#[derive(Debug)]
struct Attempt {
    queue_id: String,
    destination: Destination,
    /// Indexes into the message's recipients.
    recipients: Vec<usize>,
    started_at: Instant,
    /// When the queue stops waiting for the result.
    deadline: Instant,
    /// The message was deleted: the result is ignored, but the attempt still counts
    /// against the destination's concurrency until it ends.
    orphaned: bool,
}

/// An attempt whose deadline passed before its result came: what a late result
/// needs to be applied.
#[derive(Debug)]
struct Superseded {
    queue_id: String,
    recipients: Vec<usize>,
    started_at: Instant,
}

/// The delivery queue: per-recipient durable state, the retry schedule, expiry and
/// notices, for up to `QueueLimits::max_messages` messages.
///
/// No attempt can be lost: each has a deadline (`QueueLimits::attempt_timeout`),
/// and one whose result has not come back by then is superseded — its recipients
/// are deferred as after a temporary failure and it no longer counts against its
/// destination. Its late result, if one ever comes, follows one rule: a recipient it
/// reports delivered and that is not final yet becomes delivered (the remote has
/// the message: forgetting it would only send a second copy, and its success notice,
/// if due, goes out once, from this change); every other late result is ignored
/// (the deferral stands and the next attempt asks again). A recipient that became
/// final meanwhile is never touched again, so nobody is notified twice.
#[derive(Debug)]
pub struct Queue {
    config: QueueConfig,
    tokens: TokenSource,
    outputs: VecDeque<Output>,
    entries: BTreeMap<String, Entry>,
    attempts: BTreeMap<Token, Attempt>,
    /// (deadline, token) of every attempt in `attempts`.
    attempt_deadlines: BTreeSet<(Instant, Token)>,
    /// Attempts given up on at their deadline, until their late result or their
    /// message's removal.
    superseded: BTreeMap<Token, Superseded>,
    /// Write tokens to the message they belong to.
    persist_tokens: BTreeMap<Token, String>,
    /// (when, queue id): a message needs attention then.
    wakes: BTreeSet<(Instant, String)>,
    destinations: BTreeMap<Destination, DestinationLoad>,
    /// When a destination held back only by its rate gets its next token.
    rate_wake: Option<Instant>,
}

impl Queue {
    /// An empty queue, if `config` is valid.
    pub fn new(config: QueueConfig) -> Result<Queue, ConfigError> {
        config.validate()?;
        Ok(Queue {
            config,
            tokens: TokenSource::default(),
            outputs: VecDeque::new(),
            entries: BTreeMap::new(),
            attempts: BTreeMap::new(),
            attempt_deadlines: BTreeSet::new(),
            superseded: BTreeMap::new(),
            persist_tokens: BTreeMap::new(),
            wakes: BTreeSet::new(),
            destinations: BTreeMap::new(),
            rate_wake: None,
        })
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether one more message would be accepted: a driver asks before promising
    /// delivery, and answers 452 4.3.1 otherwise.
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.config.limits.max_messages
    }

    /// A message as the queue currently sees it (for listings), by queue id.
    pub fn message(&self, queue_id: &str) -> Option<&QueuedMessage> {
        self.entries.get(queue_id).map(|entry| &entry.message)
    }

    /// Every message held, in queue id order.
    pub fn messages(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.entries.values().map(|entry| &entry.message)
    }

    /// Attempts started and not finished, deleted messages' included.
    pub fn attempts_in_flight(&self) -> usize {
        self.attempts.len()
    }

    fn enqueue(&mut self, now: Instant, message: QueuedMessage) {
        let limits = &self.config.limits;
        let refusal = if self.entries.contains_key(&message.queue_id) {
            Some(Refusal::DuplicateQueueId)
        } else if self.entries.len() >= limits.max_messages {
            Some(Refusal::QueueFull {
                limit: limits.max_messages,
            })
        } else if message.recipients.len() > limits.max_recipients_per_message {
            Some(Refusal::TooManyRecipients {
                limit: limits.max_recipients_per_message,
            })
        } else {
            first_duplicate(&message).map(|address| Refusal::DuplicateRecipient { address })
        };
        if let Some(reason) = refusal {
            self.outputs.push_back(Output::Refused {
                queue_id: message.queue_id,
                reason,
            });
            return;
        }
        let queue_id = message.queue_id.clone();
        let mut entry = Entry::new(message);
        let owed = entry.owed_success_notices();
        let looping = entry.fail_as_loop(now, self.config.limits.max_received_headers);
        self.entries.insert(queue_id.clone(), entry);
        self.record(&queue_id, owed);
        self.record(&queue_id, looping);
        self.refresh(now, &queue_id);
    }

    fn attempt_finished(
        &mut self,
        now: Instant,
        token: Token,
        results: &[(String, RecipientResult)],
    ) {
        let Some(attempt) = self.attempts.remove(&token) else {
            return self.late_result(now, token, results);
        };
        self.attempt_deadlines.remove(&(attempt.deadline, token));
        if let Some(load) = self.destinations.get_mut(&attempt.destination) {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
        if attempt.orphaned {
            return;
        }
        let Some(entry) = self.entries.get_mut(&attempt.queue_id) else {
            return;
        };
        let decisions = entry.apply_results(
            now,
            &self.config.schedule,
            token,
            &attempt.recipients,
            attempt.started_at,
            results,
        );
        self.record(&attempt.queue_id, decisions);
        self.refresh(now, &attempt.queue_id);
    }

    /// The result of an attempt superseded at its deadline (see the module
    /// documentation for the rule).
    fn late_result(&mut self, now: Instant, token: Token, results: &[(String, RecipientResult)]) {
        let Some(superseded) = self.superseded.remove(&token) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&superseded.queue_id) else {
            return;
        };
        let decisions = entry.apply_late_results(
            now,
            token,
            &superseded.recipients,
            superseded.started_at,
            results,
        );
        self.record(&superseded.queue_id, decisions);
        self.refresh(now, &superseded.queue_id);
    }

    /// Supersedes every attempt whose deadline has passed: its recipients are
    /// deferred as after a temporary failure, and its slot is free again.
    fn time_out_attempts(&mut self, now: Instant) {
        while let Some((deadline, token)) = self.attempt_deadlines.first().copied() {
            if deadline > now {
                break;
            }
            self.attempt_deadlines.remove(&(deadline, token));
            let Some(attempt) = self.attempts.remove(&token) else {
                continue;
            };
            if let Some(load) = self.destinations.get_mut(&attempt.destination) {
                load.in_flight = load.in_flight.saturating_sub(1);
            }
            if attempt.orphaned {
                continue;
            }
            let Some(entry) = self.entries.get_mut(&attempt.queue_id) else {
                continue;
            };
            let mut decisions = entry.time_out(
                now,
                &self.config.schedule,
                token,
                &attempt.recipients,
                attempt.started_at,
            );
            decisions.events.insert(
                0,
                Event::AttemptTimedOut {
                    token,
                    queue_id: attempt.queue_id.clone(),
                },
            );
            self.record(&attempt.queue_id, decisions);
            self.superseded.insert(
                token,
                Superseded {
                    queue_id: attempt.queue_id.clone(),
                    recipients: attempt.recipients,
                    started_at: attempt.started_at,
                },
            );
            self.refresh(now, &attempt.queue_id);
        }
    }

    /// Forgets the superseded attempts of a message that left the queue.
    fn forget_superseded(&mut self, queue_id: &str) {
        if !self.superseded.is_empty() {
            self.superseded
                .retain(|_, superseded| superseded.queue_id != queue_id);
        }
    }

    fn persisted(&mut self, now: Instant, token: Token) {
        let Some(queue_id) = self.persist_tokens.get(&token).cloned() else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&queue_id) else {
            return;
        };
        // Only the first write is ever with the driver; anything else is stale.
        let is_head = entry
            .persists
            .front()
            .is_some_and(|head| head.token == token && head.status != PersistStatus::Waiting);
        if !is_head {
            return;
        }
        self.persist_tokens.remove(&token);
        let Some(done) = entry.persists.pop_front() else {
            return;
        };
        if let Some(notice) = done.write.notice {
            self.outputs.push_back(Output::Event(Event::NoticeQueued {
                queue_id: queue_id.clone(),
                kind: notice.kind,
                recipients: notice.recipients.len(),
            }));
        }
        if done.removes {
            // The driver deleted the message with this write.
            if let Some(entry) = self.entries.remove(&queue_id) {
                self.unindex(&entry);
                for pending in &entry.persists {
                    self.persist_tokens.remove(&pending.token);
                }
            }
            self.forget_superseded(&queue_id);
            return;
        }
        self.refresh(now, &queue_id);
    }

    fn persist_failed(&mut self, now: Instant, token: Token) {
        let Some(queue_id) = self.persist_tokens.get(&token).cloned() else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&queue_id) else {
            return;
        };
        let Some(head) = entry.persists.front_mut() else {
            return;
        };
        if head.token != token || head.status != PersistStatus::Issued {
            return;
        }
        head.failures = head.failures.saturating_add(1);
        let retry_at = now + self.config.schedule.persist_retry_delay(head.failures);
        head.status = PersistStatus::RetryAt(retry_at);
        self.outputs.push_back(Output::Event(Event::PersistFailed {
            queue_id: queue_id.clone(),
            token,
            failures: head.failures,
            retry_at,
        }));
        self.refresh(now, &queue_id);
    }

    fn retry_now(&mut self, now: Instant, queue_id: Option<String>) {
        let targets: Vec<String> = match queue_id {
            Some(queue_id) if self.entries.contains_key(&queue_id) => vec![queue_id],
            Some(_) => Vec::new(),
            None => self.entries.keys().cloned().collect(),
        };
        for queue_id in targets {
            if let Some(entry) = self.entries.get_mut(&queue_id) {
                entry.retry_now(now);
            }
            self.refresh(now, &queue_id);
        }
    }

    /// Silent removal (like `postsuper -d`): no notice, attempts' results ignored,
    /// outstanding writes abandoned.
    fn delete(&mut self, queue_id: &str) {
        let Some(entry) = self.entries.remove(queue_id) else {
            return;
        };
        self.unindex(&entry);
        for token in entry.in_flight.iter().flatten() {
            if let Some(attempt) = self.attempts.get_mut(token) {
                attempt.orphaned = true;
            }
        }
        for pending in &entry.persists {
            self.persist_tokens.remove(&pending.token);
        }
        self.forget_superseded(queue_id);
        self.outputs.push_back(Output::Remove {
            queue_id: queue_id.to_owned(),
        });
        self.outputs.push_back(Output::Event(Event::Deleted {
            queue_id: queue_id.to_owned(),
        }));
    }

    /// Turns a decision's events into outputs and queues its writes behind the
    /// message's earlier ones.
    fn record(&mut self, queue_id: &str, decisions: Decisions) {
        self.outputs
            .extend(decisions.events.into_iter().map(Output::Event));
        let Some(entry) = self.entries.get_mut(queue_id) else {
            return;
        };
        for write in decisions.writes {
            let token = self.tokens.next();
            self.persist_tokens.insert(token, queue_id.to_owned());
            entry.persists.push_back(PendingPersist {
                token,
                write,
                failures: 0,
                status: PersistStatus::Waiting,
                removes: false,
            });
        }
    }

    /// Brings one message up to date at `now`: expiry, delay notices, its next write,
    /// removal once done, and its place in the indexes.
    fn refresh(&mut self, now: Instant, queue_id: &str) {
        let Some(entry) = self.entries.get_mut(queue_id) else {
            return;
        };
        let expired = entry.expire(now, &self.config.schedule);
        let delayed = entry.delay_warnings(now, &self.config.schedule);
        self.record(queue_id, expired);
        self.record(queue_id, delayed);
        let Some(entry) = self.entries.get_mut(queue_id) else {
            return;
        };
        let last_write = entry.is_last_write();
        if let Some(head) = entry.persists.front_mut() {
            let issue = match head.status {
                PersistStatus::Waiting => true,
                PersistStatus::RetryAt(at) => at <= now,
                PersistStatus::Issued => false,
            };
            if issue {
                head.status = PersistStatus::Issued;
                // Sticky: a retried write is the same write.
                head.removes |= last_write;
                self.outputs.push_back(Output::Persist {
                    token: head.token,
                    queue_id: queue_id.to_owned(),
                    changes: head.write.changes.clone(),
                    notice: head.write.notice.clone(),
                    remove: head.removes,
                });
            }
        }
        if entry.is_done() {
            if let Some(entry) = self.entries.remove(queue_id) {
                self.unindex(&entry);
            }
            self.forget_superseded(queue_id);
            self.outputs.push_back(Output::Remove {
                queue_id: queue_id.to_owned(),
            });
            return;
        }
        let (wake, ready) = entry.plan(now, &self.config.schedule);
        let old_wake = entry.wake.take();
        let old_ready = std::mem::take(&mut entry.ready);
        entry.wake = wake;
        entry.ready = ready.into_iter().collect();
        let new_ready = entry.ready.clone();
        if let Some(at) = old_wake {
            self.wakes.remove(&(at, queue_id.to_owned()));
        }
        if let Some(at) = wake {
            self.wakes.insert((at, queue_id.to_owned()));
        }
        for (destination, due) in old_ready {
            if let Some(load) = self.destinations.get_mut(&destination) {
                load.ready.remove(&(due, queue_id.to_owned()));
            }
        }
        for (destination, due) in new_ready {
            self.destinations
                .entry(destination)
                .or_default()
                .ready
                .insert((due, queue_id.to_owned()));
        }
    }

    fn unindex(&mut self, entry: &Entry) {
        let queue_id = entry.queue_id().to_owned();
        if let Some(at) = entry.wake {
            self.wakes.remove(&(at, queue_id.clone()));
        }
        for (destination, due) in &entry.ready {
            if let Some(load) = self.destinations.get_mut(destination) {
                load.ready.remove(&(*due, queue_id.clone()));
            }
        }
    }

    /// Refreshes every message whose wake time has come.
    fn wake_due(&mut self, now: Instant) {
        while let Some((at, queue_id)) = self.wakes.first().cloned() {
            if at > now {
                break;
            }
            self.wakes.remove(&(at, queue_id.clone()));
            if let Some(entry) = self.entries.get_mut(&queue_id) {
                entry.wake = None;
            }
            self.refresh(now, &queue_id);
        }
    }

    /// Starts attempts while the limits allow, always for the destination whose
    /// oldest ready message has waited longest.
    fn dispatch(&mut self, now: Instant) {
        let rate = self.config.limits.destination_rate;
        let max_in_flight = self.config.limits.max_attempts_in_flight;
        let max_concurrent = self.config.limits.max_concurrent_per_destination;
        self.destinations.retain(|_, load| !load.is_idle(rate, now));
        self.rate_wake = None;
        while self.attempts.len() < max_in_flight {
            let mut oldest: Option<(&(Instant, String), &Destination)> = None;
            for (destination, load) in &self.destinations {
                let Some(head) = load.ready.first() else {
                    continue;
                };
                if load.in_flight >= max_concurrent {
                    continue;
                }
                if let (Some(rate), Some(bucket)) = (rate, &load.bucket)
                    && !bucket.has_token(rate, now)
                {
                    let at = bucket.next_token_at(rate, now);
                    self.rate_wake = Some(self.rate_wake.map_or(at, |wake| wake.min(at)));
                    continue;
                }
                if oldest.is_none_or(|(best, _)| head < best) {
                    oldest = Some((head, destination));
                }
            }
            let Some(((_, queue_id), destination)) = oldest else {
                break;
            };
            let (queue_id, destination) = (queue_id.clone(), destination.clone());
            self.start_attempt(now, &queue_id, destination);
        }
    }

    fn start_attempt(&mut self, now: Instant, queue_id: &str, destination: Destination) {
        let limits = &self.config.limits;
        let recipients = match self.entries.get(queue_id) {
            Some(entry) => entry.due_recipients(
                now,
                &self.config.schedule,
                &destination,
                limits.max_recipients_per_attempt,
            ),
            None => Vec::new(),
        };
        let load = self.destinations.entry(destination.clone()).or_default();
        if recipients.is_empty() {
            // A stale ready key: the message was found due at a later time than the
            // clock reads now (it stepped back). Drop the key without making the
            // message ready again, so that dispatch always makes progress, but wake
            // it when its plan says, not at whatever later wake it had.
            load.ready.retain(|(_, id)| id != queue_id);
            if let Some(entry) = self.entries.get_mut(queue_id) {
                entry.ready.retain(|(ready, _)| *ready != destination);
                let (planned, _) = entry.plan(now, &self.config.schedule);
                if let Some(at) = planned
                    && entry.wake.is_none_or(|wake| at < wake)
                {
                    if let Some(old) = entry.wake.replace(at) {
                        self.wakes.remove(&(old, queue_id.to_owned()));
                    }
                    self.wakes.insert((at, queue_id.to_owned()));
                }
            }
            return;
        }
        if let Some(rate) = limits.destination_rate {
            let bucket = load
                .bucket
                .get_or_insert_with(|| TokenBucket::full(rate, now));
            bucket.try_take(rate, now);
        }
        load.in_flight += 1;
        let token = self.tokens.next();
        let Some(entry) = self.entries.get_mut(queue_id) else {
            return;
        };
        let addresses: Vec<String> = recipients
            .iter()
            .map(|&index| {
                entry.in_flight[index] = Some(token);
                entry.message.recipients[index].address.clone()
            })
            .collect();
        self.outputs.push_back(Output::StartAttempt {
            token,
            queue_id: queue_id.to_owned(),
            destination: destination.clone(),
            recipients: addresses,
        });
        self.outputs.push_back(Output::Event(Event::AttemptStarted {
            token,
            queue_id: queue_id.to_owned(),
            destination: destination.clone(),
            recipients: recipients.len(),
        }));
        let deadline = now + self.config.limits.attempt_timeout;
        self.attempt_deadlines.insert((deadline, token));
        self.attempts.insert(
            token,
            Attempt {
                queue_id: queue_id.to_owned(),
                destination,
                recipients,
                started_at: now,
                deadline,
                orphaned: false,
            },
        );
        self.refresh(now, queue_id);
    }
}

/// The first address that appears twice among a message's recipients.
fn first_duplicate(message: &QueuedMessage) -> Option<String> {
    let mut seen = BTreeSet::new();
    message
        .recipients
        .iter()
        .find(|recipient| !seen.insert(recipient.address.as_str()))
        .map(|recipient| recipient.address.clone())
}

impl Machine for Queue {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Enqueue(message) => self.enqueue(now, message),
            Input::AttemptFinished { token, results } => {
                self.attempt_finished(now, token, &results);
            }
            Input::Persisted { token } => self.persisted(now, token),
            Input::PersistFailed { token } => self.persist_failed(now, token),
            Input::RetryNow { queue_id } => self.retry_now(now, queue_id),
            Input::Delete { queue_id } => self.delete(&queue_id),
            Input::Tick => {}
        }
        self.time_out_attempts(now);
        self.wake_due(now);
        self.dispatch(now);
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let wake = self.wakes.first().map(|(at, _)| *at);
        let timeout = self.attempt_deadlines.first().map(|(at, _)| *at);
        [wake, self.rate_wake, timeout].into_iter().flatten().min()
    }
}

/// Records the queue keeps besides its messages, counted so that tests can check they
/// are forgotten once of no use: keeping them too long changes no output, it only
/// holds memory.
#[cfg(test)]
impl Queue {
    /// Destinations with a load record (attempts in flight, ready messages, a bucket).
    pub(super) fn tracked_destinations(&self) -> usize {
        self.destinations.len()
    }

    /// Superseded attempts whose late result the queue still waits for.
    pub(super) fn superseded_attempts(&self) -> usize {
        self.superseded.len()
    }
}
