//! The retry-schedule checker and its oracle: the schedule computed from the
//! scenario's queue configuration, written here independently of core's
//! `RetrySchedule`, so that a wrong schedule inside core is caught rather than
//! trusted. Attempts may come late (a crash, a full destination, a host down), never
//! early; expiry fails what is left on time, and its failure notice follows.

use super::{Context, Guarantee, Observations, RetryStep, Violation};
use sluice_core::time::{Duration, Instant};

/// The retry schedule as the scenario writes it down: the first retry after
/// `first_retry`, each further wait `backoff_factor` times the previous one up to
/// `max_retry`, and expiry `expire_after` after arrival. A model to hold core to:
/// it must not call core's schedule arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleOracle {
    pub first_retry: Duration,
    pub backoff_factor: u32,
    pub max_retry: Duration,
    pub expire_after: Duration,
}

impl Default for ScheduleOracle {
    /// The scenario defaults (see `scenario::Queue`).
    fn default() -> Self {
        ScheduleOracle {
            first_retry: Duration::from_secs(60),
            backoff_factor: 2,
            max_retry: Duration::from_secs(900),
            expire_after: Duration::from_secs(4 * 3600),
        }
    }
}

impl ScheduleOracle {
    /// The wait after a recipient's `failures`-th temporary failure (from 1): the
    /// first retry, multiplied by the factor once per earlier failure, never above
    /// the cap. A plain loop, so that it reads as the rule it states.
    pub fn wait_after(&self, failures: u32) -> Duration {
        let cap = self.max_retry.as_millis();
        let mut wait = self.first_retry.as_millis().min(cap);
        for _ in 1..failures {
            if wait >= cap || self.backoff_factor <= 1 {
                break;
            }
            wait = wait.saturating_mul(u64::from(self.backoff_factor)).min(cap);
        }
        Duration::from_millis(wait)
    }

    /// When a message that arrived at `arrival` expires.
    pub fn expiry(&self, arrival: Instant) -> Instant {
        arrival + self.expire_after
    }

    /// The earliest a recipient may be tried again after its `failures`-th
    /// temporary failure, learned at `learned`: after the wait, or at expiry (where
    /// it fails instead) if that comes first.
    pub fn earliest_retry(&self, arrival: Instant, learned: Instant, failures: u32) -> Instant {
        (learned + self.wait_after(failures)).min(self.expiry(arrival))
    }
}

/// Every attempt of every deferred recipient, against the oracle.
///
/// The oracle needs the number of temporary failures so far. A crash loses the
/// deferrals whose write was not yet durable, so after a restart the host may count
/// fewer than the log shows; the checker therefore counts only the failures since
/// the host's last restart (a lower bound of the true count). The wait grows with
/// the count, so a lower count gives an earlier bound: never a false alarm, and
/// within one lifetime of the host the bound is exact.
pub(super) fn retry_schedule(
    obs: &Observations,
    context: &Context,
    violations: &mut Vec<Violation>,
) {
    let oracle = &context.schedule;
    for ((host, queue_id, recipient), steps) in &obs.retries {
        let Some(arrival) = obs
            .stored
            .get(&(host.clone(), queue_id.clone()))
            .map(|facts| facts.arrival)
        else {
            continue;
        };
        let mut lifetime: Option<u32> = None;
        let mut failures = 0u32;
        // The earliest the next attempt may start, in the host lifetime that set it.
        let mut earliest: Option<(Instant, u32)> = None;
        for step in steps {
            let epoch = match *step {
                RetryStep::Attempt { epoch, .. } | RetryStep::Deferred { epoch, .. } => epoch,
            };
            if lifetime != Some(epoch) {
                lifetime = Some(epoch);
                failures = 0;
                earliest = None;
            }
            match *step {
                RetryStep::Deferred {
                    learned,
                    next_attempt,
                    ..
                } => {
                    failures += 1;
                    let due = oracle.earliest_retry(arrival, learned, failures);
                    if next_attempt < due {
                        violations.push(Violation {
                            guarantee: Guarantee::RetrySchedule,
                            subject: queue_id.clone(),
                            detail: format!(
                                "{recipient} of {queue_id} on {host}, deferred after temporary failure {failures} \
                                 at {}, was scheduled for {}; the configured schedule says not before {}",
                                learned.as_millis(),
                                next_attempt.as_millis(),
                                due.as_millis()
                            ),
                        });
                    }
                    earliest = Some((due, epoch));
                }
                RetryStep::Attempt { at, .. } => {
                    if let Some((due, _)) = earliest
                        && at < due
                    {
                        violations.push(Violation {
                            guarantee: Guarantee::RetrySchedule,
                            subject: queue_id.clone(),
                            detail: format!(
                                "{recipient} of {queue_id} on {host} was attempted at {} after {failures} \
                                 temporary failures; the configured schedule says not before {}",
                                at.as_millis(),
                                due.as_millis()
                            ),
                        });
                    }
                    earliest = None;
                }
            }
        }
    }
    expiry(obs, context, violations);
}

/// Expiry comes neither early nor late: a recipient expires no sooner than the
/// configured lifetime after arrival and no later than `context.expiry_grace` after
/// it (the grace covers an attempt still running at expiry, the host being down
/// then, and write retries); its failure notice is durable within the same bound;
/// and no recipient is still queued at the end of the run past that bound.
fn expiry(obs: &Observations, context: &Context, violations: &mut Vec<Violation>) {
    let oracle = &context.schedule;
    let grace = context.expiry_grace;
    let mut late = |queue_id: &str, detail: String| {
        violations.push(Violation {
            guarantee: Guarantee::RetrySchedule,
            subject: queue_id.to_owned(),
            detail,
        });
    };
    for (host, queue_id, recipient, at) in &obs.expiries {
        let Some(facts) = obs.stored.get(&(host.clone(), queue_id.clone())) else {
            continue;
        };
        let due = oracle.expiry(facts.arrival);
        if *at < due {
            late(
                queue_id,
                format!(
                    "{recipient} of {queue_id} on {host} expired at {} before its expiry {}",
                    at.as_millis(),
                    due.as_millis()
                ),
            );
        } else if *at > due + grace {
            late(
                queue_id,
                format!(
                    "{recipient} of {queue_id} on {host} expired at {}, more than {} s after its expiry {}",
                    at.as_millis(),
                    grace.as_millis() / 1000,
                    due.as_millis()
                ),
            );
        }
        let key = (host.clone(), queue_id.clone(), recipient.clone());
        if let Some(noticed) = obs.notice_times.get(&key)
            && *noticed > due + grace
        {
            late(
                queue_id,
                format!(
                    "the failure notice for {recipient} of {queue_id} on {host} became durable at {}, \
                     more than {} s after its expiry {}",
                    noticed.as_millis(),
                    grace.as_millis() / 1000,
                    due.as_millis()
                ),
            );
        }
    }
    for record in &context.queued_at_end {
        let due = oracle.expiry(record.arrival);
        if record.host_now > due + grace {
            late(
                &record.queue_id,
                format!(
                    "{} of {} on {} is still queued at {}, more than {} s after its expiry {}",
                    record.address,
                    record.queue_id,
                    record.host,
                    record.host_now.as_millis(),
                    grace.as_millis() / 1000,
                    due.as_millis()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::notice::NoticeKind;

    fn minutes(oracle: &ScheduleOracle, failures: u32) -> u64 {
        oracle.wait_after(failures).as_millis() / 60_000
    }

    #[test]
    fn the_oracle_multiplies_from_the_first_retry_up_to_the_cap() {
        let oracle = ScheduleOracle {
            first_retry: Duration::from_mins(5),
            backoff_factor: 2,
            max_retry: Duration::from_mins(60),
            expire_after: Duration::from_mins(600),
        };
        let waits: Vec<u64> = (1..=7).map(|n| minutes(&oracle, n)).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60, 60]);
        let constant = ScheduleOracle {
            backoff_factor: 1,
            ..oracle.clone()
        };
        assert_eq!(minutes(&constant, 9), 5);
        let arrival = Instant::from_millis(0);
        let learned = Instant::from_millis(595 * 60_000);
        assert_eq!(
            oracle.earliest_retry(arrival, learned, 3),
            Instant::from_millis(600 * 60_000),
            "clamped to expiry"
        );
    }

    proptest::proptest! {
        /// The model and core agree on every valid schedule: two writings of one
        /// rule, so that a change to either without the other shows up here, not
        /// only as a simulated violation.
        #[test]
        fn the_oracle_agrees_with_the_correct_core_schedule(
            first_secs in 1u64..=7200,
            factor in 1u32..=16,
            extra_secs in 0u64..=86_400,
            failures in 1u32..=40,
        ) {
            let oracle = ScheduleOracle {
                first_retry: Duration::from_secs(first_secs),
                backoff_factor: factor,
                max_retry: Duration::from_secs(first_secs + extra_secs),
                expire_after: Duration::from_secs(5 * 86_400),
            };
            let core = sluice_core::queue::RetrySchedule {
                first_retry: oracle.first_retry,
                backoff_factor: factor,
                max_retry_interval: oracle.max_retry,
                ..sluice_core::queue::RetrySchedule::default()
            };
            proptest::prop_assert_eq!(oracle.wait_after(failures), core.retry_interval(failures));
        }
    }

    fn deferred_then_attempted(learned: u64, next: u64, attempt: u64) -> Observations {
        let mut obs = Observations::default();
        let facts = super::super::StoredFacts {
            tag: Some("m1".into()),
            null_sender: false,
            arrival: Instant::from_millis(0),
            no_failure_notice: Default::default(),
        };
        obs.stored("gw1", "Q1", facts);
        let t = |ms| Instant::from_millis(ms);
        obs.attempt_started(t(0), "gw1", "Q1", &["a@x".into()], t(0), 0);
        obs.deferred(t(learned), "gw1", "Q1", "a@x", t(learned), t(next), 0);
        obs.attempt_started(t(attempt), "gw1", "Q1", &["a@x".into()], t(attempt), 0);
        obs
    }

    #[test]
    fn an_attempt_or_a_schedule_before_the_oracle_is_a_violation() {
        let context = Context::default();
        let check = |obs: &Observations| {
            let mut violations = Vec::new();
            retry_schedule(obs, &context, &mut violations);
            violations.len()
        };
        // First retry 60 s after the failure learned at 1 s.
        assert_eq!(check(&deferred_then_attempted(1_000, 61_000, 61_000)), 0);
        assert_eq!(check(&deferred_then_attempted(1_000, 61_000, 70_000)), 0);
        // The queue announced the right time but attempted early.
        assert_eq!(check(&deferred_then_attempted(1_000, 61_000, 60_999)), 1);
        // The queue announced (and kept) a wrong time.
        assert_eq!(check(&deferred_then_attempted(1_000, 31_000, 31_000)), 2);
    }

    #[test]
    fn expiry_and_its_notice_come_neither_early_nor_late() {
        let context = Context {
            expiry_grace: Duration::from_mins(30),
            ..Context::default()
        };
        let expiry = context.schedule.expire_after.as_millis();
        let grace = context.expiry_grace.as_millis();
        let check = |expired_at: u64, noticed_at: u64| {
            let mut obs = deferred_then_attempted(1_000, 61_000, 61_000);
            obs.expired(
                Instant::EPOCH,
                "gw1",
                "Q1",
                "a@x",
                Instant::from_millis(expired_at),
            );
            let about = ["a@x".to_owned()];
            let noticed = Instant::from_millis(noticed_at);
            obs.notice_durable(noticed, "gw1", "Q1", NoticeKind::Failure, &about, noticed);
            let mut violations = Vec::new();
            retry_schedule(&obs, &context, &mut violations);
            violations.len()
        };
        assert_eq!(check(expiry, expiry + 5), 0);
        assert_eq!(check(expiry + grace, expiry + grace), 0);
        assert_eq!(check(expiry - 1, expiry), 1, "early");
        assert_eq!(check(expiry + grace + 1, expiry + grace + 1), 2, "late");
        assert_eq!(check(expiry, expiry + grace + 1), 1, "late notice");
        let mut context = context;
        context.queued_at_end.push(super::super::QueuedAtEnd {
            host: "gw1".into(),
            queue_id: "Q2".into(),
            address: "b@x".into(),
            arrival: Instant::EPOCH,
            host_now: Instant::from_millis(expiry + grace + 1),
        });
        let mut violations = Vec::new();
        retry_schedule(&Observations::default(), &context, &mut violations);
        assert_eq!(violations.len(), 1, "still queued past expiry");
    }
}
