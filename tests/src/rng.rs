//! A small seeded generator (SplitMix64): the kill test draws its schedule from it,
//! so a failing run is replayed by its printed seed.

/// SplitMix64: tiny, fast, and good enough for choosing moments and sizes.
#[derive(Clone, Debug)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }
}

/// The seed from `SLUICE_TEST_SEED`, or one drawn from the clock; printed by callers.
pub fn seed_from_env() -> u64 {
    if let Some(seed) = std::env::var("SLUICE_TEST_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
    {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(20261129)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut first = SeededRng::new(7);
        let mut second = SeededRng::new(7);
        for _ in 0..100 {
            let value = first.range(10, 20);
            assert!((10..20).contains(&value));
            assert_eq!(value, second.range(10, 20));
        }
    }
}
