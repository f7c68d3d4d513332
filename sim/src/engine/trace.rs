//! The trace: one stable text line per event, hashed as it is written (FNV-1a 64,
//! Fowler–Noll–Vo: xor each octet into the hash, then multiply by the 64-bit FNV
//! prime). The hash covers every line, so two runs with equal hashes took the same
//! path; the lines themselves are kept in full only when asked (replay), else a
//! window of the last ones is kept for violation reports.

use sluice_core::time::Instant;
use std::collections::VecDeque;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Lines kept for a violation report when the full trace is not recorded.
pub const WINDOW: usize = 200;

/// The event trace of one run.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    lines: u64,
    /// Every line, when the full trace is recorded; else the last [`WINDOW`].
    kept: VecDeque<String>,
    full: bool,
}

impl Trace {
    pub fn new(full: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
            lines: 0,
            kept: VecDeque::new(),
            full,
        }
    }

    /// Records `text` as happening at `now`.
    pub fn record(&mut self, now: Instant, text: &str) {
        let line = format!("{:>10} {text}", now.as_millis());
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.lines += 1;
        self.kept.push_back(line);
        if !self.full && self.kept.len() > WINDOW {
            self.kept.pop_front();
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Lines recorded so far.
    pub fn len(&self) -> u64 {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The kept lines: all of them, or the last window.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.kept.iter().map(String::as_str)
    }
}

/// FNV-1a 64 of `bytes`, for anything else that needs a stable digest.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_hash_covers_every_line_but_only_a_window_is_kept() {
        let mut full = Trace::new(true);
        let mut windowed = Trace::new(false);
        for index in 0..(WINDOW as u64 + 5) {
            let text = format!("event {index}");
            full.record(Instant::from_millis(index), &text);
            windowed.record(Instant::from_millis(index), &text);
        }
        assert_eq!(full.hash(), windowed.hash());
        assert_eq!(windowed.lines().count(), WINDOW);
        assert_eq!(full.lines().count(), WINDOW + 5);
    }
}
