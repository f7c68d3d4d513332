//! Property tests of MX ordering (RFC 5321 §5.1, RFC 7505): the hosts to try are a
//! permutation of the deduplicated exchanges sorted by preference, the same seed
//! gives the same order whatever order DNS listed the records in, the list is
//! bounded, and a null MX is always a permanent failure.

#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::delivery::mx::{MxAnswer, MxLimits, STATUS_NULL_MX, SplitMix64, hosts_to_try};
use std::collections::BTreeMap;

/// A small pool of host names in mixed case, with and without the trailing dot,
/// so that duplicates and normalisation are exercised.
fn exchange() -> impl Strategy<Value = String> {
    (0..8u8, any::<bool>(), any::<bool>()).prop_map(|(n, upper, dot)| {
        let name = format!("mx{n}.example.test");
        let name = if upper { name.to_uppercase() } else { name };
        if dot { format!("{name}.") } else { name }
    })
}

fn records() -> impl Strategy<Value = Vec<(u16, String)>> {
    vec((0..4u16, exchange()), 1..16)
}

/// The expected host set: each normalised exchange with its best preference.
fn best_preferences(records: &[(u16, String)]) -> BTreeMap<String, u16> {
    let mut best = BTreeMap::new();
    for (preference, exchange) in records {
        let host = exchange.trim_end_matches('.').to_ascii_lowercase();
        let entry = best.entry(host).or_insert(*preference);
        *entry = (*entry).min(*preference);
    }
    best
}

proptest! {
    #[test]
    fn output_is_the_deduplicated_set_sorted_by_preference(
        records in records(), seed in any::<u64>(), cap in 0..12usize,
    ) {
        let limits = MxLimits { hosts: cap, ..MxLimits::default() };
        let hosts = hosts_to_try("example.test", &MxAnswer::Records(records.clone()), seed, &limits).unwrap();
        let best = best_preferences(&records);
        // Bounded, never empty.
        prop_assert_eq!(hosts.len(), best.len().min(cap.max(1)));
        // No duplicates, every host from the answer, normalised.
        let mut seen = std::collections::BTreeSet::new();
        for host in &hosts {
            prop_assert!(seen.insert(host.clone()), "duplicate {}", host);
            prop_assert!(best.contains_key(host));
        }
        // Preferences never decrease along the list.
        let preferences: Vec<u16> = hosts.iter().map(|host| best[host]).collect();
        prop_assert!(preferences.windows(2).all(|pair| pair[0] <= pair[1]));
        // Truncation drops the least preferred: every omitted host is at least as
        // bad as the last one kept.
        if let Some(last) = preferences.last() {
            for (host, preference) in &best {
                if !seen.contains(host) {
                    prop_assert!(preference >= last);
                }
            }
        }
    }

    #[test]
    fn same_seed_same_order_whatever_the_record_order(
        records in records(), seed in any::<u64>(), rotate in 0..16usize,
    ) {
        let limits = MxLimits::default();
        let first = hosts_to_try("example.test", &MxAnswer::Records(records.clone()), seed, &limits).unwrap();
        let mut reordered = records.clone();
        reordered.reverse();
        let len = reordered.len();
        reordered.rotate_left(rotate % len);
        let second = hosts_to_try("example.test", &MxAnswer::Records(reordered), seed, &limits).unwrap();
        prop_assert_eq!(first, second);
    }

    #[test]
    fn null_mx_is_always_permanent(preference in any::<u16>(), seed in any::<u64>(), copies in 1..3usize) {
        let answer = MxAnswer::Records(vec![(preference, ".".to_owned()); copies]);
        let failure = hosts_to_try("example.test", &answer, seed, &MxLimits::default()).unwrap_err();
        prop_assert_eq!(failure.status, STATUS_NULL_MX);
        prop_assert_eq!(failure.status.to_string(), "5.1.10");
    }

    #[test]
    fn below_stays_below_its_bound(seed in any::<u64>(), bound in 0..1000u64) {
        let mut generator = SplitMix64::new(seed);
        for _ in 0..8 {
            let value = generator.below(bound);
            prop_assert!(value < bound.max(1));
        }
    }
}

/// Equal preferences really are shuffled: across seeds, each of three equal hosts
/// comes first at least once (a sort by name would always put mx0 first).
#[test]
fn equal_preferences_are_spread_across_seeds() {
    let answer = MxAnswer::Records(vec![
        (10, "mx0.example.test".to_owned()),
        (10, "mx1.example.test".to_owned()),
        (10, "mx2.example.test".to_owned()),
        (20, "backup.example.test".to_owned()),
    ]);
    let mut firsts = BTreeMap::new();
    for seed in 0..64 {
        let hosts = hosts_to_try("example.test", &answer, seed, &MxLimits::default()).unwrap();
        assert_eq!(hosts.last().unwrap(), "backup.example.test");
        *firsts.entry(hosts[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(firsts.len(), 3, "{firsts:?}");
}
