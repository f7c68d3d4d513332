//! Time as a value: machines never read a clock, the caller passes `now` in.
//!
//! An [`Instant`] counts milliseconds from an epoch the caller chooses (process
//! start in `net`, zero in `sim`); only differences between instants mean anything.

use core::fmt;
use core::ops::{Add, Sub};

/// A point in time: milliseconds since the caller's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// A span of time in milliseconds. Arithmetic saturates instead of overflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Instant {
    /// The caller's epoch.
    pub const EPOCH: Instant = Instant(0);

    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later than `self`.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_millis(millis: u64) -> Self {
        Duration(millis)
    }

    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs.saturating_mul(1000))
    }

    pub const fn from_mins(mins: u64) -> Self {
        Duration(mins.saturating_mul(60_000))
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub const fn saturating_mul(self, factor: u64) -> Duration {
        Duration(self.0.saturating_mul(factor))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs.0))
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}ms", self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(60_000) && self.0 > 0 {
            write!(f, "{}min", self.0 / 60_000)
        } else if self.0.is_multiple_of(1000) && self.0 > 0 {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let late = Instant::from_millis(u64::MAX - 1);
        assert_eq!(
            late + Duration::from_mins(5),
            Instant::from_millis(u64::MAX)
        );
        assert_eq!(Instant::EPOCH - Duration::from_secs(1), Instant::EPOCH);
        assert_eq!(
            Instant::from_millis(10).saturating_since(Instant::from_millis(25)),
            Duration::ZERO
        );
    }

    #[test]
    fn durations_display_in_their_largest_whole_unit() {
        assert_eq!(Duration::from_mins(5).to_string(), "5min");
        assert_eq!(Duration::from_secs(90).to_string(), "90s");
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
    }
}
