//! Queue ids: unique, sortable names for accepted messages. An identifier, not a
//! decision: the time in milliseconds then a per-process sequence, both in Crockford
//! base32, so ids sort by acceptance time and two processes never collide in practice.

use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh queue id: 10 characters of Unix milliseconds, then 6 of sequence.
pub fn next() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format(
        crate::clock::unix_millis(),
        process_seed().wrapping_add(sequence),
    )
}

/// Differs between processes started in the same millisecond, so that a restart
/// cannot reissue an id.
fn process_seed() -> u64 {
    use std::sync::OnceLock;
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::from(since.subsec_nanos()));
        nanos ^ (u64::from(std::process::id()) << 20)
    })
}

fn format(unix_millis: i64, sequence: u64) -> String {
    let mut id = String::with_capacity(16);
    push_base32(&mut id, u64::try_from(unix_millis).unwrap_or(0), 10);
    push_base32(&mut id, sequence, 6);
    id
}

/// The low `digits` base32 digits of `value`, most significant first.
fn push_base32(out: &mut String, value: u64, digits: u32) {
    for position in (0..digits).rev() {
        let digit = (value >> (5 * position)) & 31;
        out.push(char::from(ALPHABET[usize::try_from(digit).unwrap_or(0)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_then_sequence() {
        let early = format(1_700_000_000_000, 5);
        let later = format(1_700_000_000_001, 0);
        assert_eq!(early.len(), 16);
        assert!(early < later);
        assert!(format(1_700_000_000_000, 1) < format(1_700_000_000_000, 2));
    }

    #[test]
    fn ids_are_unique_within_a_process() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| next()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
