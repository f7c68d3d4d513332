//! The retry schedule: when a deferred recipient is tried again, when the queue
//! gives up on a message, when it warns the sender of a delay, and how soon a failed
//! write of queue state is retried. Pure arithmetic on `Instant`s, no state.

use super::config::ConfigError;
use crate::time::{Duration, Instant};

/// When to try again and when to give up, in the style of the established MTAs
/// (Postfix: `minimal_backoff_time`, `maximal_backoff_time`, `maximal_queue_lifetime`,
/// `delay_warning_time`; Exim's retry rules).
///
/// The exact rule: after the n-th temporary failure of a recipient, learned at `t`,
/// its next attempt is at `t + min(first_retry × backoff_factor^(n-1),
/// max_retry_interval)`, but never later than the expiry instant (`arrival +
/// expire_after`). An attempt is started only strictly before the expiry instant; a
/// recipient still undelivered at expiry (and not in an attempt) fails then with its
/// last temporary failure's status and diagnostic (4.4.7 if it was never tried). A
/// temporary result that arrives at or after expiry fails the recipient at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// How long after the first temporary failure the second attempt is made.
    /// Default 5 minutes.
    pub first_retry: Duration,
    /// Each interval is the previous one times this (1 keeps it constant). Default 2.
    pub backoff_factor: u32,
    /// The longest interval between two attempts. Default 1 hour.
    pub max_retry_interval: Duration,
    /// How long after arrival the queue gives up and fails what is left. Default 5 days.
    pub expire_after: Duration,
    /// How long after arrival still-deferred recipients that asked for it get a delay
    /// notice (RFC 3461 NOTIFY=DELAY, or NOTIFY absent). `None` turns delay notices off.
    /// Default 4 hours.
    pub delay_warning_after: Option<Duration>,
    /// How soon a failed write of queue state is retried the first time; doubles after
    /// each further failure. Default 1 second.
    pub persist_retry_first: Duration,
    /// The longest wait between two retries of one write. Default 1 minute.
    pub persist_retry_max: Duration,
    /// A deliberate bug in this schedule, for proving that the simulator's retry
    /// checker catches a wrong schedule in core itself. `None` (the default) is the
    /// correct schedule; the field exists only with the `planted-bugs` feature.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedScheduleBug>,
}

/// The bugs [`RetrySchedule::planted_bug`] can plant.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedScheduleBug {
    /// The backoff exponent is one too small: the second retry waits `first_retry`
    /// again instead of `first_retry × backoff_factor`, and every later one half
    /// of what it should (until the cap).
    BackoffOffByOne,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            first_retry: Duration::from_mins(5),
            backoff_factor: 2,
            max_retry_interval: Duration::from_mins(60),
            expire_after: Duration::from_mins(5 * 24 * 60),
            delay_warning_after: Some(Duration::from_mins(4 * 60)),
            persist_retry_first: Duration::from_secs(1),
            persist_retry_max: Duration::from_mins(1),
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }
}

/// The largest backoff factor accepted: beyond it the cap is reached on the second
/// retry anyway, and a typo (20 for 2) should not pass silently.
const MAX_BACKOFF_FACTOR: u32 = 16;

impl RetrySchedule {
    /// The wait after the `attempts`-th temporary failure (`attempts` counts from 1;
    /// 0 is treated as 1). Never shorter than `first_retry` nor longer than the cap.
    pub fn retry_interval(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1);
        #[cfg(feature = "planted-bugs")]
        let exponent = match self.planted_bug {
            Some(PlantedScheduleBug::BackoffOffByOne) => exponent.saturating_sub(1),
            None => exponent,
        };
        let growth = u64::from(self.backoff_factor).saturating_pow(exponent);
        let interval = Duration::from_millis(self.first_retry.as_millis().saturating_mul(growth));
        interval.min(self.max_retry_interval)
    }

    /// When a message that arrived at `arrival` expires.
    pub fn expires_at(&self, arrival: Instant) -> Instant {
        arrival + self.expire_after
    }

    /// When delay notices become due for a message, if they are on and fall before expiry.
    pub fn delay_warning_at(&self, arrival: Instant) -> Option<Instant> {
        let warning = arrival + self.delay_warning_after?;
        (warning < self.expires_at(arrival)).then_some(warning)
    }

    /// The next attempt after the `attempts`-th temporary failure learned at `failed_at`,
    /// clamped to the expiry instant (where the recipient then fails instead).
    pub fn next_attempt(&self, arrival: Instant, failed_at: Instant, attempts: u32) -> Instant {
        (failed_at + self.retry_interval(attempts)).min(self.expires_at(arrival))
    }

    /// The wait before retrying a write that has failed `failures` times (from 1).
    pub fn persist_retry_delay(&self, failures: u32) -> Duration {
        let growth = 1u64
            .checked_shl(failures.saturating_sub(1).min(63))
            .unwrap_or(u64::MAX);
        let delay =
            Duration::from_millis(self.persist_retry_first.as_millis().saturating_mul(growth));
        delay.min(self.persist_retry_max)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason| Err(ConfigError { field, reason });
        if self.first_retry == Duration::ZERO {
            return invalid("schedule.first_retry", "must be longer than zero");
        }
        if !(1..=MAX_BACKOFF_FACTOR).contains(&self.backoff_factor) {
            return invalid("schedule.backoff_factor", "must be between 1 and 16");
        }
        if self.max_retry_interval < self.first_retry {
            return invalid(
                "schedule.max_retry_interval",
                "must not be shorter than first_retry",
            );
        }
        if self.expire_after == Duration::ZERO {
            return invalid("schedule.expire_after", "must be longer than zero");
        }
        if let Some(warning) = self.delay_warning_after
            && (warning == Duration::ZERO || warning >= self.expire_after)
        {
            return invalid(
                "schedule.delay_warning_after",
                "must be longer than zero and shorter than expire_after",
            );
        }
        if self.persist_retry_first == Duration::ZERO {
            return invalid("schedule.persist_retry_first", "must be longer than zero");
        }
        if self.persist_retry_max < self.persist_retry_first {
            return invalid(
                "schedule.persist_retry_max",
                "must not be shorter than persist_retry_first",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_start_at_five_minutes_double_and_stop_at_an_hour() {
        let schedule = RetrySchedule::default();
        let minutes: Vec<u64> = (1..=7)
            .map(|n| schedule.retry_interval(n).as_millis() / 60_000)
            .collect();
        assert_eq!(minutes, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(schedule.retry_interval(u32::MAX), Duration::from_mins(60));
        assert_eq!(schedule.retry_interval(0), Duration::from_mins(5));
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn the_planted_backoff_bug_repeats_the_first_interval() {
        let schedule = RetrySchedule {
            planted_bug: Some(PlantedScheduleBug::BackoffOffByOne),
            ..RetrySchedule::default()
        };
        let minutes: Vec<u64> = (1..=4)
            .map(|n| schedule.retry_interval(n).as_millis() / 60_000)
            .collect();
        assert_eq!(minutes, [5, 5, 10, 20]);
    }

    #[test]
    fn the_next_attempt_is_clamped_to_expiry() {
        let schedule = RetrySchedule::default();
        let arrival = Instant::from_millis(1_000_000);
        let expiry = schedule.expires_at(arrival);
        assert_eq!(expiry, arrival + Duration::from_mins(7200));
        let late = expiry - Duration::from_mins(10);
        assert_eq!(schedule.next_attempt(arrival, late, 9), expiry);
        assert_eq!(
            schedule.next_attempt(arrival, arrival, 1),
            arrival + Duration::from_mins(5)
        );
    }

    #[test]
    fn delay_warnings_are_off_when_disabled_or_not_before_expiry() {
        let arrival = Instant::from_millis(0);
        let mut schedule = RetrySchedule::default();
        assert_eq!(
            schedule.delay_warning_at(arrival),
            Some(Instant::from_millis(4 * 3_600_000))
        );
        schedule.delay_warning_after = None;
        assert_eq!(schedule.delay_warning_at(arrival), None);
        schedule.delay_warning_after = Some(schedule.expire_after);
        assert_eq!(schedule.delay_warning_at(arrival), None);
    }

    #[test]
    fn persist_retries_double_up_to_their_cap() {
        let schedule = RetrySchedule::default();
        let seconds: Vec<u64> = [1, 2, 3, 6, 7, 200]
            .iter()
            .map(|&n| schedule.persist_retry_delay(n).as_millis() / 1000)
            .collect();
        assert_eq!(seconds, [1, 2, 4, 32, 60, 60]);
    }

    /// Spoils one field of a valid value.
    type Breaker = fn(&mut RetrySchedule);

    #[test]
    fn validation_names_the_bad_field() {
        let cases: [(Breaker, &str); 7] = [
            (|s| s.first_retry = Duration::ZERO, "schedule.first_retry"),
            (|s| s.backoff_factor = 0, "schedule.backoff_factor"),
            (
                |s| s.max_retry_interval = Duration::from_mins(1),
                "schedule.max_retry_interval",
            ),
            (|s| s.expire_after = Duration::ZERO, "schedule.expire_after"),
            (
                |s| s.delay_warning_after = Some(Duration::from_mins(7200)),
                "schedule.delay_warning_after",
            ),
            (
                |s| s.persist_retry_first = Duration::ZERO,
                "schedule.persist_retry_first",
            ),
            (
                |s| s.persist_retry_max = Duration::from_millis(10),
                "schedule.persist_retry_max",
            ),
        ];
        assert_eq!(RetrySchedule::default().validate(), Ok(()));
        // The caps may equal their first values (a constant interval).
        let constant = RetrySchedule {
            max_retry_interval: Duration::from_mins(5),
            persist_retry_max: Duration::from_secs(1),
            ..RetrySchedule::default()
        };
        assert_eq!(constant.validate(), Ok(()));
        for (break_it, field) in cases {
            let mut schedule = RetrySchedule::default();
            break_it(&mut schedule);
            assert_eq!(schedule.validate().map_err(|e| e.field), Err(field));
        }
    }
}
