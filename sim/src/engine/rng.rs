//! The simulator's one source of randomness: PCG-XSH-RR 64/32 (O'Neill, "PCG: A
//! Family of Simple Fast Space-Efficient Statistically Good Algorithms for Random
//! Number Generation", 2014), implemented here so that its output can never change
//! under a dependency upgrade: the same seed gives the same run on every build.
//!
//! State: a 64-bit LCG `state = state * 6364136223846793005 + increment` (the
//! increment odd, chosen by the stream); output: the old state's high bits
//! xorshifted (`((s >> 18) ^ s) >> 27`) and rotated right by its top five bits.
//! Seeding follows the reference `pcg32_srandom_r`.

/// The LCG multiplier of the reference implementation.
const MULTIPLIER: u64 = 6_364_136_223_846_793_005;

/// A seeded PCG32 generator. Not cryptographic; deterministic by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcg32 {
    state: u64,
    increment: u64,
}

impl Pcg32 {
    /// A generator for `seed` on `stream` (independent sequences for one seed).
    pub fn new(seed: u64, stream: u64) -> Pcg32 {
        let mut generator = Pcg32 {
            state: 0,
            increment: (stream << 1) | 1,
        };
        generator.step();
        generator.state = generator.state.wrapping_add(seed);
        generator.step();
        generator
    }

    fn step(&mut self) {
        self.state = self
            .state
            .wrapping_mul(MULTIPLIER)
            .wrapping_add(self.increment);
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.step();
        // Truncations are the algorithm: the xorshifted high bits, then the top five bits.
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rotation = (old >> 59) as u32;
        xorshifted.rotate_right(rotation)
    }

    pub fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    /// Uniform in `0..bound` (0 when `bound` is 0), without modulo bias: draws
    /// below the largest multiple of `bound` are kept (rejection sampling).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let draw = self.next_u64();
            if draw < zone {
                return draw % bound;
            }
        }
    }

    /// Uniform in `low..=high` (`low` when the range is empty).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.below(high - low + 1)
    }

    /// True with probability `per_million` / 1 000 000. Integer arithmetic only, so
    /// no float rounding can differ between platforms.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }

    /// A child generator for an independent purpose, derived from this one.
    pub fn fork(&mut self, stream: u64) -> Pcg32 {
        Pcg32::new(self.next_u64(), stream)
    }

    /// One element of `items`, uniformly; `None` if empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let count = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let index = usize::try_from(self.below(count)).unwrap_or(0);
        items.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation() {
        // pcg32-demo of the reference C library: seed 42, stream 54.
        let mut generator = Pcg32::new(42, 54);
        let first: Vec<u32> = (0..6).map(|_| generator.next_u32()).collect();
        assert_eq!(
            first,
            [
                0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e
            ]
        );
    }

    #[test]
    fn below_stays_in_range_and_chance_respects_its_extremes() {
        let mut generator = Pcg32::new(7, 1);
        for bound in 1..50 {
            assert!(generator.below(bound) < bound);
        }
        assert_eq!(generator.below(0), 0);
        assert!(!generator.chance(0));
        assert!(generator.chance(1_000_000));
        assert_eq!(generator.between(5, 5), 5);
    }
}
