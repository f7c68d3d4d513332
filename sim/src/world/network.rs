//! The simulated network: per-segment latency drawn from a uniform distribution
//! with an optional long tail (plus a retransmission delay when a segment is "lost"), connection resets,
//! and partitions between any two places, which heal. TCP keeps order, so each
//! direction of a connection never delivers a segment before the previous one.

use crate::engine::Pcg32;
use sluice_core::time::Duration;
use std::collections::BTreeSet;

/// Where the workload's clients sit: outside every host.
pub const OUTSIDE: usize = usize::MAX;

/// How long a connection attempt to a dead or unreachable host takes to fail.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Network {
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub loss_ppm: u32,
    pub reset_ppm: u32,
    /// Chance that a segment takes the long tail (congestion, a slow path) instead.
    pub tail_ppm: u32,
    pub tail_max_ms: u64,
    /// Pairs of places (lower first) that cannot reach each other now.
    partitions: BTreeSet<(usize, usize)>,
    /// Resets injected, for the summary.
    pub resets: u64,
}

impl Network {
    pub fn new(latency_min_ms: u64, latency_max_ms: u64, loss_ppm: u32, reset_ppm: u32) -> Network {
        Network {
            latency_min_ms,
            latency_max_ms,
            loss_ppm,
            reset_ppm,
            tail_ppm: 0,
            tail_max_ms: 0,
            partitions: BTreeSet::new(),
            resets: 0,
        }
    }

    /// The delay of one segment: uniform between the bounds, or with the tail's
    /// chance uniform up to the tail's maximum (a two-part distribution with a long tail).
    pub fn latency(&mut self, rng: &mut Pcg32) -> Duration {
        let mut millis = if rng.chance(self.tail_ppm) {
            rng.between(
                self.latency_max_ms,
                self.tail_max_ms.max(self.latency_max_ms),
            )
        } else {
            rng.between(self.latency_min_ms, self.latency_max_ms)
        };
        if rng.chance(self.loss_ppm) {
            // A lost segment costs a retransmission timeout (RFC 6298: at least 200 ms
            // in practice, 1 s by the book).
            millis += rng.between(200, 1000);
        }
        Duration::from_millis(millis)
    }

    /// Whether this segment resets its connection.
    pub fn resets_now(&mut self, rng: &mut Pcg32) -> bool {
        let reset = rng.chance(self.reset_ppm);
        if reset {
            self.resets += 1;
        }
        reset
    }

    fn pair(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    pub fn partition(&mut self, a: usize, b: usize) {
        self.partitions.insert(Self::pair(a, b));
    }

    pub fn heal(&mut self, a: usize, b: usize) {
        self.partitions.remove(&Self::pair(a, b));
    }

    pub fn heal_all(&mut self) {
        self.partitions.clear();
    }

    pub fn reachable(&self, a: usize, b: usize) -> bool {
        a == b || !self.partitions.contains(&Self::pair(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_both_ways_until_healed() {
        let mut network = Network::new(1, 5, 0, 0);
        assert!(network.reachable(0, OUTSIDE));
        network.partition(OUTSIDE, 0);
        assert!(!network.reachable(0, OUTSIDE));
        assert!(network.reachable(0, 1));
        network.heal(0, OUTSIDE);
        assert!(network.reachable(OUTSIDE, 0));
    }

    #[test]
    fn latency_stays_in_its_range_without_loss() {
        let mut network = Network::new(3, 9, 0, 0);
        let mut rng = Pcg32::new(1, 1);
        for _ in 0..100 {
            let millis = network.latency(&mut rng).as_millis();
            assert!((3..=9).contains(&millis));
            assert!(!network.resets_now(&mut rng));
        }
    }
}
