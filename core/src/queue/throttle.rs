//! Per-destination load: attempts in flight, the pacing token bucket, and the
//! messages with recipients ready for that destination, oldest first. The machine
//! starts an attempt only where this says there is room.

use super::limits::AttemptRate;
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

/// Credit units one attempt costs: a bucket earns `per_minute` units a millisecond,
/// so integer arithmetic stays exact.
const ATTEMPT_COST: u64 = 60_000;

/// A token bucket driven by the caller's `now`, never by a clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TokenBucket {
    credit: u64,
    updated: Instant,
}

impl TokenBucket {
    pub(super) fn full(rate: AttemptRate, now: Instant) -> TokenBucket {
        TokenBucket {
            credit: capacity(rate),
            updated: now,
        }
    }

    /// Earns credit for the time since the last update; time going backwards earns none.
    fn refill(&mut self, rate: AttemptRate, now: Instant) {
        let elapsed = now.saturating_since(self.updated).as_millis();
        let earned = elapsed.saturating_mul(u64::from(rate.per_minute));
        self.credit = self.credit.saturating_add(earned).min(capacity(rate));
        self.updated = self.updated.max(now);
    }

    /// Takes one attempt's worth if there is one.
    pub(super) fn try_take(&mut self, rate: AttemptRate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.credit < ATTEMPT_COST {
            return false;
        }
        self.credit -= ATTEMPT_COST;
        true
    }

    /// Whether an attempt could start at `now`.
    pub(super) fn has_token(&self, rate: AttemptRate, now: Instant) -> bool {
        let mut probe = self.clone();
        probe.refill(rate, now);
        probe.credit >= ATTEMPT_COST
    }

    /// When the next attempt's worth will have been earned.
    pub(super) fn next_token_at(&self, rate: AttemptRate, now: Instant) -> Instant {
        let mut probe = self.clone();
        probe.refill(rate, now);
        let missing = ATTEMPT_COST.saturating_sub(probe.credit);
        let per_ms = u64::from(rate.per_minute).max(1);
        probe.updated + Duration::from_millis(missing.div_ceil(per_ms))
    }

    /// A full bucket is the same as no bucket, so it can be forgotten.
    pub(super) fn is_full(&self, rate: AttemptRate, now: Instant) -> bool {
        let mut probe = self.clone();
        probe.refill(rate, now);
        probe.credit >= capacity(rate)
    }
}

fn capacity(rate: AttemptRate) -> u64 {
    u64::from(rate.burst).saturating_mul(ATTEMPT_COST)
}

/// What the queue tracks for one destination while it has work or recent attempts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct DestinationLoad {
    pub(super) in_flight: u32,
    pub(super) bucket: Option<TokenBucket>,
    /// Messages with recipients due for this destination: (earliest due, queue id).
    pub(super) ready: BTreeSet<(Instant, String)>,
}

impl DestinationLoad {
    /// Nothing in flight, nothing waiting, and the bucket (if any) full again.
    pub(super) fn is_idle(&self, rate: Option<AttemptRate>, now: Instant) -> bool {
        self.in_flight == 0
            && self.ready.is_empty()
            && match (&self.bucket, rate) {
                (Some(bucket), Some(rate)) => bucket.is_full(rate, now),
                _ => true,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIX_A_MINUTE: AttemptRate = AttemptRate {
        per_minute: 6,
        burst: 2,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_paces_at_its_rate() {
        let start = Instant::from_millis(1_000);
        let mut bucket = TokenBucket::full(SIX_A_MINUTE, start);
        assert!(bucket.try_take(SIX_A_MINUTE, start));
        assert!(bucket.try_take(SIX_A_MINUTE, start));
        assert!(!bucket.try_take(SIX_A_MINUTE, start));
        let next = bucket.next_token_at(SIX_A_MINUTE, start);
        assert_eq!(next, start + Duration::from_secs(10));
        assert!(!bucket.has_token(SIX_A_MINUTE, next - Duration::from_millis(1)));
        assert!(bucket.try_take(SIX_A_MINUTE, next));
        assert!(!bucket.is_full(SIX_A_MINUTE, next + Duration::from_secs(19)));
        assert!(bucket.is_full(SIX_A_MINUTE, next + Duration::from_secs(20)));
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let start = Instant::from_millis(100_000);
        let mut bucket = TokenBucket::full(SIX_A_MINUTE, start);
        assert!(bucket.try_take(SIX_A_MINUTE, start));
        assert!(bucket.try_take(SIX_A_MINUTE, start));
        let earlier = Instant::from_millis(50_000);
        assert!(!bucket.try_take(SIX_A_MINUTE, earlier));
        assert_eq!(
            bucket.next_token_at(SIX_A_MINUTE, earlier),
            start + Duration::from_secs(10)
        );
    }
}
