//! From a DNS answer to the ordered hosts to try for a domain (RFC 5321 §5.1, null MX
//! per RFC 7505), and from their address answers to the plan of connections. Pure:
//! the resolver in `net` (or the simulator) asks DNS and hands the answers in; the
//! shuffle among equal preferences uses a seeded generator the caller owns.

use super::{Diagnostic, Failure};
use crate::smtp::reply::EnhancedStatus;
use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

/// RFC 7505 §4.1 (registered in the RFC 3463 registry): recipient address has null MX.
pub const STATUS_NULL_MX: EnhancedStatus = EnhancedStatus::new(5, 1, 10);
/// RFC 3463 §3.2 X.1.2, "bad destination system address": the domain does not exist
/// (NXDOMAIN), or none of its mail hosts has an address.
pub const STATUS_NO_SUCH_DOMAIN: EnhancedStatus = EnhancedStatus::new(5, 1, 2);
/// RFC 3463 §3.5 X.4.3, "directory server failure": DNS could not answer now.
pub const STATUS_DNS_TEMPORARY: EnhancedStatus = EnhancedStatus::new(4, 4, 3);

/// What DNS said to the MX query for a domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MxAnswer {
    /// MX records as (preference, exchange); exchanges in any case, with or without
    /// the trailing dot.
    Records(Vec<(u16, String)>),
    /// NOERROR with no MX records (NODATA): the domain itself is the implicit MX with
    /// preference 0 (RFC 5321 §5.1).
    NoRecords,
    /// NXDOMAIN: the domain does not exist, a permanent failure (5.1.2).
    NoSuchDomain,
    /// SERVFAIL, REFUSED, a timeout or no server reachable: try again later (4.4.3).
    TemporaryFailure(String),
}

/// What DNS said to the A and AAAA queries for one host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressAnswer {
    Addresses(Vec<IpAddr>),
    /// The name exists but has neither A nor AAAA records.
    NoRecords,
    NoSuchDomain,
    TemporaryFailure(String),
}

/// The bounds on a plan. Going over one truncates the plan (the least preferred
/// hosts and addresses are dropped), never fails it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxLimits {
    /// Hosts tried per domain. Default 10; 0 counts as 1, or nothing would be tried.
    pub hosts: usize,
    /// Addresses tried per host. Default 4; 0 counts as 1.
    pub addresses_per_host: usize,
}

impl Default for MxLimits {
    fn default() -> Self {
        MxLimits {
            hosts: 10,
            addresses_per_host: 4,
        }
    }
}

/// The hosts to try for `domain`, most preferred first: sorted by preference,
/// duplicates dropped (a host keeps its best preference), hosts of equal preference
/// shuffled by `seed` to spread load (RFC 5321 §5.1), at most `limits.hosts`.
/// Exchanges come back lower case without the trailing dot. The order depends only
/// on the set of records and the seed, not on the order DNS listed them in.
///
/// A null MX (RFC 7505 §3: the single exchange ".") is a permanent failure 5.1.10.
/// A "." in a set with real hosts is a misconfiguration; it names no host to
/// connect to, so it is dropped and the real hosts are used.
pub fn hosts_to_try(
    domain: &str,
    answer: &MxAnswer,
    seed: u64,
    limits: &MxLimits,
) -> Result<Vec<String>, Failure> {
    let domain = normalise_host(domain);
    let records = match answer {
        MxAnswer::Records(records) if !records.is_empty() => records,
        // An empty record list is NODATA by another name.
        MxAnswer::Records(_) | MxAnswer::NoRecords => return Ok(vec![domain]),
        MxAnswer::NoSuchDomain => {
            return Err(failure(
                STATUS_NO_SUCH_DOMAIN,
                format!("the domain {domain} does not exist (NXDOMAIN)"),
            ));
        }
        MxAnswer::TemporaryFailure(reason) => {
            return Err(failure(
                STATUS_DNS_TEMPORARY,
                format!("MX lookup for {domain} failed: {reason}"),
            ));
        }
    };
    // Best preference per host; a BTreeMap also makes the result independent of
    // the order of the records.
    let mut best: BTreeMap<String, u16> = BTreeMap::new();
    for (preference, exchange) in records {
        let host = normalise_host(exchange);
        if host.is_empty() {
            continue; // "." — the null MX marker, not a host
        }
        best.entry(host)
            .and_modify(|known| *known = (*known).min(*preference))
            .or_insert(*preference);
    }
    if best.is_empty() {
        return Err(failure(
            STATUS_NULL_MX,
            format!("{domain} does not accept mail (null MX, RFC 7505)"),
        ));
    }
    let mut by_preference: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (host, preference) in best {
        by_preference.entry(preference).or_default().push(host);
    }
    let mut generator = SplitMix64::new(seed);
    let mut hosts = Vec::new();
    for (_, mut group) in by_preference {
        generator.shuffle(&mut group);
        hosts.extend(group);
    }
    hosts.truncate(limits.hosts.max(1));
    Ok(hosts)
}

/// The connection plan from each host's address answer, in the order of `hosts`:
/// hosts without addresses are skipped; addresses are deduplicated and capped per
/// host. No usable host at all fails the plan: temporarily when any lookup failed
/// temporarily (its answer may yet come), permanently (5.1.2) when every host is
/// known to have no address (for the implicit MX that is RFC 5321 §5.1's "no MX and
/// no address records").
pub fn connection_plan(
    domain: &str,
    hosts: Vec<(String, AddressAnswer)>,
    limits: &MxLimits,
) -> Result<Vec<(String, Vec<IpAddr>)>, Failure> {
    let mut plan = Vec::new();
    let mut temporary = None;
    for (host, answer) in hosts.into_iter().take(limits.hosts.max(1)) {
        match answer {
            AddressAnswer::Addresses(addresses) => {
                let mut seen = BTreeSet::new();
                let addresses: Vec<IpAddr> = addresses
                    .into_iter()
                    .filter(|address| seen.insert(*address))
                    .take(limits.addresses_per_host.max(1))
                    .collect();
                if !addresses.is_empty() {
                    plan.push((host, addresses));
                }
            }
            AddressAnswer::NoRecords | AddressAnswer::NoSuchDomain => {}
            AddressAnswer::TemporaryFailure(reason) => {
                temporary.get_or_insert(format!("address lookup for {host} failed: {reason}"));
            }
        }
    }
    if !plan.is_empty() {
        return Ok(plan);
    }
    Err(match temporary {
        Some(reason) => failure(STATUS_DNS_TEMPORARY, reason),
        None => failure(
            STATUS_NO_SUCH_DOMAIN,
            format!("no mail host of {} has an address", normalise_host(domain)),
        ),
    })
}

fn failure(status: EnhancedStatus, text: String) -> Failure {
    Failure {
        status,
        remote_mta: None,
        diagnostic: Diagnostic::Local(text),
    }
}

/// Lower case without the trailing dot of an absolute name ("." becomes "").
pub fn normalise_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): a 64-bit state advanced by a Weyl sequence and mixed by
/// a finalizer. Not cryptographic; it is here because core may not draw OS
/// randomness, and the same seed must always give the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0), by the multiply-high method
    /// (Lemire 2019) without the rejection step: the bias is below bound / 2^64,
    /// immaterial for shuffling a handful of hosts, and there is no loop.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Fisher–Yates (Knuth, TAOCP vol. 2, §3.4.2, algorithm P).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let pick = self.below(last as u64 + 1) as usize;
            items.swap(last, pick);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn records(list: &[(u16, &str)]) -> MxAnswer {
        MxAnswer::Records(list.iter().map(|(p, h)| (*p, (*h).to_owned())).collect())
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 1234567 of the reference C implementation
        // (Vigna, prng.di.unimi.it/splitmix64.c).
        let mut generator = SplitMix64::new(1_234_567);
        assert_eq!(generator.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(generator.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(generator.next_u64(), 9_817_491_932_198_370_423);
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn implicit_mx_is_the_domain_itself() {
        let hosts = hosts_to_try(
            "Example.ORG.",
            &MxAnswer::NoRecords,
            0,
            &MxLimits::default(),
        );
        assert_eq!(hosts.unwrap(), vec!["example.org"]);
    }

    #[test]
    fn null_mx_is_permanent_5_1_10() {
        for answer in [records(&[(0, ".")]), records(&[(10, ".")])] {
            let failure = hosts_to_try("x.test", &answer, 7, &MxLimits::default()).unwrap_err();
            assert_eq!(failure.status, STATUS_NULL_MX);
        }
        let mixed = records(&[(0, "."), (10, "mx.x.test")]);
        assert_eq!(
            hosts_to_try("x.test", &mixed, 7, &MxLimits::default()).unwrap(),
            vec!["mx.x.test"]
        );
    }

    #[test]
    fn nxdomain_is_permanent_and_servfail_temporary() {
        let limits = MxLimits::default();
        let nx = hosts_to_try("x.test", &MxAnswer::NoSuchDomain, 0, &limits).unwrap_err();
        assert_eq!(nx.status.to_string(), "5.1.2");
        let temp = MxAnswer::TemporaryFailure("SERVFAIL".to_owned());
        let temp = hosts_to_try("x.test", &temp, 0, &limits).unwrap_err();
        assert_eq!(temp.status.to_string(), "4.4.3");
    }

    #[test]
    fn sorted_deduplicated_normalised() {
        let answer = records(&[
            (20, "B.x.test."),
            (10, "a.x.test"),
            (30, "b.x.test"),
            (5, "c.x.test"),
        ]);
        let hosts = hosts_to_try("x.test", &answer, 99, &MxLimits::default()).unwrap();
        assert_eq!(hosts, vec!["c.x.test", "a.x.test", "b.x.test"]);
    }

    #[test]
    fn plan_skips_hosts_without_addresses() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let plan = connection_plan(
            "x.test",
            vec![
                ("gone.x.test".to_owned(), AddressAnswer::NoSuchDomain),
                ("mx.x.test".to_owned(), AddressAnswer::Addresses(vec![a, a])),
            ],
            &MxLimits::default(),
        );
        assert_eq!(plan.unwrap(), vec![("mx.x.test".to_owned(), vec![a])]);
    }

    #[test]
    fn plan_without_any_address_fails_by_the_kind_of_answers() {
        let limits = MxLimits::default();
        let none = vec![("mx.x.test".to_owned(), AddressAnswer::NoRecords)];
        assert_eq!(
            connection_plan("x.test", none, &limits).unwrap_err().status,
            STATUS_NO_SUCH_DOMAIN
        );
        let mixed = vec![
            ("a.x.test".to_owned(), AddressAnswer::NoSuchDomain),
            (
                "b.x.test".to_owned(),
                AddressAnswer::TemporaryFailure("timeout".to_owned()),
            ),
        ];
        assert_eq!(
            connection_plan("x.test", mixed, &limits)
                .unwrap_err()
                .status,
            STATUS_DNS_TEMPORARY
        );
    }
}
