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

/// One host's answer from its several address queries (A, then AAAA): the
/// addresses of all, in order. With none, a temporary failure of any query outranks
/// a negative answer, since the failed query may be the one that would have found
/// an address; then NXDOMAIN outranks NODATA (the name does not exist at all).
pub fn combine_address_answers(answers: impl IntoIterator<Item = AddressAnswer>) -> AddressAnswer {
    let mut addresses = Vec::new();
    let mut temporary = None;
    let mut no_such_domain = false;
    for answer in answers {
        match answer {
            AddressAnswer::Addresses(found) => addresses.extend(found),
            AddressAnswer::TemporaryFailure(reason) => {
                temporary.get_or_insert(reason);
            }
            AddressAnswer::NoSuchDomain => no_such_domain = true,
            AddressAnswer::NoRecords => {}
        }
    }
    if !addresses.is_empty() {
        AddressAnswer::Addresses(addresses)
    } else if let Some(reason) = temporary {
        AddressAnswer::TemporaryFailure(reason)
    } else if no_such_domain {
        AddressAnswer::NoSuchDomain
    } else {
        AddressAnswer::NoRecords
    }
}

/// The hosts to connect to for a domain, with their addresses, in order; or why
/// there are none.
pub type HostPlan = Result<Vec<(String, Vec<IpAddr>)>, Failure>;

/// A lookup a [`HostPlanner`] needs answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanLookup {
    /// The MX records of `domain`; answer with [`PlanAnswer::Mx`].
    Mx { domain: String },
    /// The A and AAAA records of `host`; answer with [`PlanAnswer::Addresses`].
    Addresses { host: String },
}

/// The answer to the planner's current [`PlanLookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanAnswer {
    Mx(MxAnswer),
    Addresses(AddressAnswer),
}

/// What the planner wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanStep {
    /// Perform this lookup and hand its answer to [`HostPlanner::answer`].
    Lookup(PlanLookup),
    /// The plan is made.
    Done(HostPlan),
}

/// The lookups that make a domain's host plan, in their order: the MX query, then
/// the address query of each host [`hosts_to_try`] names, one at a time and most
/// preferred first, then [`connection_plan`] over the answers. The driver only
/// performs the lookups it is asked for (net on DNS, the simulator on its model), so
/// both make exactly the same queries in the same order and get the same plan.
///
/// ```
/// use sluice_core::delivery::mx::{AddressAnswer, HostPlanner, MxAnswer, MxLimits, PlanAnswer, PlanLookup, PlanStep};
///
/// let mut planner = HostPlanner::new("example.org", 7, MxLimits::default());
/// let plan = loop {
///     match planner.step() {
///         PlanStep::Lookup(PlanLookup::Mx { .. }) => planner.answer(PlanAnswer::Mx(
///             MxAnswer::Records(vec![(10, "mx.example.org".into())]),
///         )),
///         PlanStep::Lookup(PlanLookup::Addresses { .. }) => planner.answer(PlanAnswer::Addresses(
///             AddressAnswer::Addresses(vec!["192.0.2.1".parse().expect("an address")]),
///         )),
///         PlanStep::Done(plan) => break plan,
///     }
/// };
/// assert_eq!(plan.expect("a plan")[0].0, "mx.example.org");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPlanner {
    domain: String,
    seed: u64,
    limits: MxLimits,
    state: PlannerState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PlannerState {
    /// Waiting for the MX answer.
    Mx,
    /// Waiting for the address answer of `hosts[answers.len()]`.
    Addresses {
        hosts: Vec<String>,
        answers: Vec<(String, AddressAnswer)>,
    },
    Done(HostPlan),
}

impl HostPlanner {
    /// A planner for mail to `domain`; `seed` shuffles hosts of equal preference.
    pub fn new(domain: &str, seed: u64, limits: MxLimits) -> HostPlanner {
        HostPlanner {
            domain: domain.to_owned(),
            seed,
            limits,
            state: PlannerState::Mx,
        }
    }

    /// The lookup to perform now, or the finished plan (again on every call).
    pub fn step(&self) -> PlanStep {
        match &self.state {
            PlannerState::Mx => PlanStep::Lookup(PlanLookup::Mx {
                domain: self.domain.clone(),
            }),
            PlannerState::Addresses { hosts, answers } => match hosts.get(answers.len()) {
                Some(host) => PlanStep::Lookup(PlanLookup::Addresses { host: host.clone() }),
                // Not reached: the state moves to Done with the last answer.
                None => {
                    PlanStep::Done(connection_plan(&self.domain, answers.clone(), &self.limits))
                }
            },
            PlannerState::Done(plan) => PlanStep::Done(plan.clone()),
        }
    }

    /// The answer to the lookup [`HostPlanner::step`] asked for. An answer of the
    /// other kind, or one after the plan is made, is ignored: the step stays the same.
    pub fn answer(&mut self, answer: PlanAnswer) {
        let state = std::mem::replace(&mut self.state, PlannerState::Mx);
        self.state = match (state, answer) {
            (PlannerState::Mx, PlanAnswer::Mx(mx)) => {
                match hosts_to_try(&self.domain, &mx, self.seed, &self.limits) {
                    Ok(hosts) => self.after_address(hosts, Vec::new()),
                    Err(failure) => PlannerState::Done(Err(failure)),
                }
            }
            (PlannerState::Addresses { hosts, mut answers }, PlanAnswer::Addresses(addresses)) => {
                if let Some(host) = hosts.get(answers.len()) {
                    answers.push((host.clone(), addresses));
                }
                self.after_address(hosts, answers)
            }
            (state, _) => state,
        };
    }

    /// The next address lookup, or the plan when every host is answered.
    fn after_address(
        &self,
        hosts: Vec<String>,
        answers: Vec<(String, AddressAnswer)>,
    ) -> PlannerState {
        if answers.len() < hosts.len() {
            PlannerState::Addresses { hosts, answers }
        } else {
            PlannerState::Done(connection_plan(&self.domain, answers, &self.limits))
        }
    }
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
    fn an_empty_record_list_is_the_implicit_mx_not_a_null_mx() {
        let hosts = hosts_to_try(
            "x.test",
            &MxAnswer::Records(Vec::new()),
            0,
            &MxLimits::default(),
        );
        assert_eq!(hosts.unwrap(), vec!["x.test"]);
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

    /// Runs a planner, answering each lookup from `mx` and `addresses` (a host not in
    /// `addresses` has none); the lookups made, in order, and the plan.
    fn drive(
        domain: &str,
        seed: u64,
        limits: &MxLimits,
        mx: &MxAnswer,
        addresses: &BTreeMap<String, AddressAnswer>,
        stray_answers: bool,
    ) -> (Vec<PlanLookup>, HostPlan) {
        let mut planner = HostPlanner::new(domain, seed, limits.clone());
        let mut lookups = Vec::new();
        loop {
            let step = planner.step();
            let lookup = match step {
                PlanStep::Done(plan) => {
                    // Asked again, the plan stays.
                    assert_eq!(planner.step(), PlanStep::Done(plan.clone()));
                    return (lookups, plan);
                }
                PlanStep::Lookup(lookup) => lookup,
            };
            let answer = match &lookup {
                PlanLookup::Mx { .. } => PlanAnswer::Mx(mx.clone()),
                PlanLookup::Addresses { host } => PlanAnswer::Addresses(
                    addresses
                        .get(host)
                        .cloned()
                        .unwrap_or(AddressAnswer::NoSuchDomain),
                ),
            };
            if stray_answers {
                // An answer of the wrong kind changes nothing.
                let stray = match &answer {
                    PlanAnswer::Mx(_) => PlanAnswer::Addresses(AddressAnswer::NoRecords),
                    PlanAnswer::Addresses(_) => PlanAnswer::Mx(MxAnswer::NoRecords),
                };
                let before = planner.clone();
                planner.answer(stray);
                assert_eq!(planner, before);
            }
            lookups.push(lookup);
            planner.answer(answer);
        }
    }

    fn address(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_planner_asks_mx_then_each_host_in_preference_order() {
        let mx = records(&[(20, "b.x.test"), (10, "a.x.test")]);
        let addresses = BTreeMap::from([
            ("a.x.test".to_owned(), AddressAnswer::NoRecords),
            (
                "b.x.test".to_owned(),
                AddressAnswer::Addresses(vec![address(2)]),
            ),
        ]);
        let (lookups, plan) = drive("X.test", 1, &MxLimits::default(), &mx, &addresses, false);
        assert_eq!(
            lookups,
            vec![
                PlanLookup::Mx {
                    domain: "X.test".to_owned()
                },
                PlanLookup::Addresses {
                    host: "a.x.test".to_owned()
                },
                PlanLookup::Addresses {
                    host: "b.x.test".to_owned()
                },
            ]
        );
        assert_eq!(
            plan.unwrap(),
            vec![("b.x.test".to_owned(), vec![address(2)])]
        );
    }

    #[test]
    fn a_failed_mx_lookup_ends_the_plan_without_address_lookups() {
        for (mx, status) in [
            (MxAnswer::NoSuchDomain, STATUS_NO_SUCH_DOMAIN),
            (
                MxAnswer::TemporaryFailure("SERVFAIL".into()),
                STATUS_DNS_TEMPORARY,
            ),
            (records(&[(0, ".")]), STATUS_NULL_MX),
        ] {
            let (lookups, plan) = drive(
                "x.test",
                0,
                &MxLimits::default(),
                &mx,
                &BTreeMap::new(),
                false,
            );
            assert_eq!(lookups.len(), 1);
            assert_eq!(plan.unwrap_err().status, status);
        }
    }

    #[test]
    fn the_implicit_mx_looks_up_the_domain_itself() {
        let addresses = BTreeMap::from([(
            "x.test".to_owned(),
            AddressAnswer::Addresses(vec![address(9)]),
        )]);
        let (lookups, plan) = drive(
            "X.Test.",
            0,
            &MxLimits::default(),
            &MxAnswer::NoRecords,
            &addresses,
            false,
        );
        assert_eq!(
            lookups[1],
            PlanLookup::Addresses {
                host: "x.test".to_owned()
            }
        );
        assert_eq!(plan.unwrap(), vec![("x.test".to_owned(), vec![address(9)])]);
    }

    #[test]
    fn an_answer_after_the_plan_changes_nothing() {
        let (_, plan) = drive(
            "x.test",
            0,
            &MxLimits::default(),
            &MxAnswer::NoSuchDomain,
            &BTreeMap::new(),
            false,
        );
        let mut planner = HostPlanner::new("x.test", 0, MxLimits::default());
        planner.answer(PlanAnswer::Mx(MxAnswer::NoSuchDomain));
        planner.answer(PlanAnswer::Mx(MxAnswer::NoRecords));
        planner.answer(PlanAnswer::Addresses(AddressAnswer::Addresses(vec![
            address(1),
        ])));
        assert_eq!(planner.step(), PlanStep::Done(plan));
    }

    #[test]
    fn address_answers_combine_addresses_first_then_temporary_then_nxdomain() {
        let temporary = || AddressAnswer::TemporaryFailure("timed out".to_owned());
        let found = |last| AddressAnswer::Addresses(vec![address(last)]);
        assert_eq!(
            combine_address_answers([found(1), found(2)]),
            AddressAnswer::Addresses(vec![address(1), address(2)])
        );
        assert_eq!(combine_address_answers([temporary(), found(2)]), found(2));
        assert_eq!(
            combine_address_answers([AddressAnswer::NoSuchDomain, temporary()]),
            temporary()
        );
        assert_eq!(
            combine_address_answers([AddressAnswer::NoRecords, AddressAnswer::NoSuchDomain]),
            AddressAnswer::NoSuchDomain
        );
        assert_eq!(
            combine_address_answers([AddressAnswer::Addresses(vec![]), AddressAnswer::NoRecords]),
            AddressAnswer::NoRecords
        );
        assert_eq!(combine_address_answers([]), AddressAnswer::NoRecords);
    }

    fn mx_answer() -> impl proptest::strategy::Strategy<Value = MxAnswer> {
        use proptest::prelude::*;
        let host = prop_oneof![
            Just("a.x.test".to_owned()),
            Just("B.x.test.".to_owned()),
            Just("c.y.test".to_owned()),
            Just("d.y.test".to_owned()),
            Just(".".to_owned()),
            Just("x.test".to_owned()),
        ];
        prop_oneof![
            proptest::collection::vec((0_u16..30, host), 0..8).prop_map(MxAnswer::Records),
            Just(MxAnswer::NoRecords),
            Just(MxAnswer::NoSuchDomain),
            Just(MxAnswer::TemporaryFailure("SERVFAIL".to_owned())),
        ]
    }

    fn address_answer() -> impl proptest::strategy::Strategy<Value = AddressAnswer> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(0_u8..4, 0..6).prop_map(|lasts| AddressAnswer::Addresses(
                lasts.into_iter().map(address).collect()
            )),
            Just(AddressAnswer::NoRecords),
            Just(AddressAnswer::NoSuchDomain),
            Just(AddressAnswer::TemporaryFailure("timed out".to_owned())),
        ]
    }

    proptest::proptest! {
        /// Combining is independent of which query answered first, as far as the
        /// kind of answer goes, and never loses an address.
        #[test]
        fn combined_address_answers_keep_every_address(
            first in address_answer(),
            second in address_answer(),
        ) {
            let one = combine_address_answers([first.clone(), second.clone()]);
            let other = combine_address_answers([second.clone(), first.clone()]);
            let kind = |answer: &AddressAnswer| std::mem::discriminant(answer);
            proptest::prop_assert_eq!(kind(&one), kind(&other));
            let count = |answer: &AddressAnswer| match answer {
                AddressAnswer::Addresses(list) => list.len(),
                _ => 0,
            };
            proptest::prop_assert_eq!(count(&one), count(&first) + count(&second));
        }

        /// Whatever DNS answers: the MX query comes first and once; then exactly the
        /// hosts core's ordering names, each once, in that order (none after a failed
        /// MX answer); the plan keeps, in that order, the hosts that had addresses; and
        /// answers of the wrong kind change nothing.
        #[test]
        fn the_planner_makes_the_lookups_of_the_plan_in_order(
            mx in mx_answer(),
            answers in proptest::collection::vec(address_answer(), 6),
            seed in proptest::prelude::any::<u64>(),
            hosts_limit in 0_usize..5,
            addresses_limit in 0_usize..4,
            stray in proptest::prelude::any::<bool>(),
        ) {
            let limits = MxLimits { hosts: hosts_limit, addresses_per_host: addresses_limit };
            let names = ["a.x.test", "b.x.test", "c.y.test", "d.y.test", "x.test", ""];
            let addresses: BTreeMap<String, AddressAnswer> = names
                .iter()
                .map(|name| (*name).to_owned())
                .zip(answers)
                .collect();
            let (lookups, plan) = drive("x.test", seed, &limits, &mx, &addresses, stray);
            proptest::prop_assert_eq!(&lookups[0], &PlanLookup::Mx { domain: "x.test".to_owned() });
            let asked: Vec<String> = lookups[1..]
                .iter()
                .map(|lookup| match lookup {
                    PlanLookup::Addresses { host } => host.clone(),
                    PlanLookup::Mx { .. } => panic!("a second MX query"),
                })
                .collect();
            match hosts_to_try("x.test", &mx, seed, &limits) {
                Err(failure) => {
                    proptest::prop_assert!(asked.is_empty());
                    proptest::prop_assert_eq!(plan, Err(failure));
                }
                Ok(hosts) => {
                    proptest::prop_assert_eq!(&asked, &hosts);
                    proptest::prop_assert!(asked.len() <= limits.hosts.max(1));
                    if let Ok(plan) = plan {
                        let with_addresses: Vec<&String> = asked
                            .iter()
                            .filter(|host| matches!(
                                addresses.get(*host),
                                Some(AddressAnswer::Addresses(list)) if !list.is_empty()
                            ))
                            .collect();
                        let planned: Vec<&String> = plan.iter().map(|(host, _)| host).collect();
                        proptest::prop_assert_eq!(planned, with_addresses);
                        for (_, list) in &plan {
                            proptest::prop_assert!(!list.is_empty());
                            proptest::prop_assert!(list.len() <= limits.addresses_per_host.max(1));
                        }
                    } else {
                        proptest::prop_assert!(asked.iter().all(|host| !matches!(
                            addresses.get(host),
                            Some(AddressAnswer::Addresses(list)) if !list.is_empty()
                        )));
                    }
                }
            }
        }
    }
}
