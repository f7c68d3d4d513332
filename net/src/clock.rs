//! The bridge between core's time values and tokio's clock: core's `Instant` counts
//! milliseconds from a per-process epoch fixed at first use, and deadlines map back
//! to tokio instants so that the drivers can sleep until them.

use sluice_core::time::Instant;
use std::sync::OnceLock;

fn epoch() -> tokio::time::Instant {
    static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(tokio::time::Instant::now)
}

/// Now, as core sees it.
pub fn now() -> Instant {
    let elapsed = tokio::time::Instant::now().saturating_duration_since(epoch());
    Instant::from_millis(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// A core deadline as a tokio instant, for `sleep_until`.
pub fn to_tokio(deadline: Instant) -> tokio::time::Instant {
    // A deadline centuries away saturates instead of overflowing tokio's clock.
    let far = epoch() + std::time::Duration::from_secs(86_400 * 365 * 30);
    epoch()
        .checked_add(std::time::Duration::from_millis(deadline.as_millis()))
        .map_or(far, |at| at.min(far))
}

/// Sleeps until a machine's deadline; forever when it has none.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(to_tokio(deadline)).await,
        None => std::future::pending().await,
    }
}

/// Wall-clock milliseconds since the Unix epoch, for records and headers.
pub fn unix_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_round_trip_through_tokio_time() {
        let start = now();
        let later = start + sluice_core::time::Duration::from_millis(1500);
        let tokio_later = to_tokio(later);
        let gap = tokio_later.saturating_duration_since(to_tokio(start));
        assert_eq!(gap.as_millis(), 1500);
        assert!(to_tokio(Instant::from_millis(u64::MAX)) > tokio_later);
    }
}
