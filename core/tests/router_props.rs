//! Property tests of the router against random in-memory directories: aliases and
//! groups with cycles, catch-alls, unknown and malformed members, external targets.
//! Every job terminates within its bounds, local routes name only real users, an
//! authenticated sender is never refused relaying, an unauthenticated one never
//! relays directly, the route does not depend on answer order or on other jobs in
//! flight, and with generous limits it is exactly the set of reachable addresses.

#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use sluice_core::machine::{Machine, Token};
use sluice_core::router::{
    Input, Output, Refusal, Route, RouteContext, RouteStats, Router, RouterConfig, RouterLimits,
    TemporaryReason,
};
use sluice_core::smtp::address::{Domain, ForwardPath, Host, Mailbox};
use sluice_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const LOCAL_DOMAINS: [&str; 2] = ["a.test", "b.test"];
const EXTERNAL_DOMAINS: [&str; 2] = ["x.example", "y.example"];
const LOCAL_PARTS: [&str; 8] = ["u0", "u1", "u2", "l0", "l1", "l2", "l3", "postmaster"];

/// Every address the generator may mention: local and external, plus an address
/// literal and a malformed target.
fn pool() -> Vec<String> {
    let mut pool = Vec::new();
    for domain in LOCAL_DOMAINS.iter().chain(EXTERNAL_DOMAINS.iter()) {
        for local in LOCAL_PARTS {
            pool.push(format!("{local}@{domain}"));
        }
    }
    pool.push("u0@[192.0.2.1]".to_owned());
    pool.push("not an address".to_owned());
    pool
}

#[derive(Clone, Debug, Default)]
struct Directory {
    domains: BTreeMap<String, DomainEntry>,
    /// By lower-cased address: the store matches local parts case-insensitively.
    addresses: BTreeMap<String, AddressEntry>,
    /// Addresses whose lookup fails.
    broken: BTreeSet<String>,
}

impl Directory {
    fn answer(&self, query: &DirectoryQuery) -> DirectoryAnswer {
        match query {
            DirectoryQuery::Domain { domain } => {
                DirectoryAnswer::Domain(self.domains.get(domain).cloned())
            }
            DirectoryQuery::Address { address } => {
                let key = address.to_lowercase();
                if self.broken.contains(&key) {
                    DirectoryAnswer::Unavailable
                } else {
                    DirectoryAnswer::Address(self.addresses.get(&key).cloned())
                }
            }
        }
    }

    fn users(&self) -> BTreeSet<String> {
        self.addresses
            .values()
            .filter_map(|entry| match entry {
                AddressEntry::User { address } => Some(address.clone()),
                _ => None,
            })
            .collect()
    }
}

/// What one local address is, as generated: indices into the pool.
#[derive(Clone, Debug)]
enum Generated {
    Nothing,
    User,
    Alias(Vec<usize>),
    Group(Vec<usize>),
}

fn generated() -> impl Strategy<Value = Generated> {
    let members = || vec(0..pool().len(), 0..5);
    prop_oneof![
        2 => Just(Generated::Nothing),
        3 => Just(Generated::User),
        2 => members().prop_map(Generated::Alias),
        2 => members().prop_map(Generated::Group),
    ]
}

fn directory() -> impl Strategy<Value = Directory> {
    let local_count = LOCAL_DOMAINS.len() * LOCAL_PARTS.len();
    (
        vec(generated(), local_count),
        proptest::option::of(0..pool().len()),
        vec(any::<bool>(), local_count),
    )
        .prop_map(|(entries, catch_all, broken)| {
            let pool = pool();
            let mut directory = Directory::default();
            for (index, domain) in LOCAL_DOMAINS.iter().enumerate() {
                directory.domains.insert(
                    (*domain).to_owned(),
                    DomainEntry {
                        name: (*domain).to_owned(),
                        // Only the second domain has a catch-all.
                        catch_all: catch_all.filter(|_| index == 1).map(|i| pool[i].clone()),
                    },
                );
            }
            for (index, entry) in entries.into_iter().enumerate() {
                let address = pool[index].clone();
                let members = |indices: Vec<usize>| -> Vec<String> {
                    indices.into_iter().map(|i| pool[i].clone()).collect()
                };
                let entry = match entry {
                    Generated::Nothing => continue,
                    Generated::User => AddressEntry::User {
                        address: address.clone(),
                    },
                    Generated::Alias(targets) => AddressEntry::Alias {
                        targets: members(targets),
                    },
                    Generated::Group(list) => AddressEntry::Group {
                        members: members(list),
                    },
                };
                directory.addresses.insert(address, entry);
            }
            // `broken` is applied only by the tests that inject failures.
            for (index, broken) in broken.into_iter().enumerate() {
                if broken {
                    directory.broken.insert(pool[index].clone());
                }
            }
            directory
        })
}

/// A recipient: an address from the pool in random case, or `<Postmaster>`.
fn recipient() -> impl Strategy<Value = ForwardPath> {
    let pool_size = pool().len() - 1; // not the malformed one
    prop_oneof![
        1 => Just(ForwardPath::Postmaster),
        12 => (0..pool_size, any::<bool>()).prop_map(|(index, upper)| {
            let text = if upper { pool()[index].to_uppercase() } else { pool()[index].clone() };
            ForwardPath::Mailbox(Mailbox::parse(&text).unwrap())
        }),
    ]
}

fn config(limits: RouterLimits) -> RouterConfig {
    RouterConfig {
        primary_domain: Domain::parse("a.test").unwrap(),
        limits,
    }
}

fn generous() -> RouterLimits {
    RouterLimits {
        depth: 64,
        expanded_addresses: 10_000,
        ..RouterLimits::default()
    }
}

fn tight() -> RouterLimits {
    RouterLimits {
        depth: 2,
        expanded_addresses: 6,
        parallel_lookups: 2,
        ..RouterLimits::default()
    }
}

/// The outcome of routing recipients through one router.
struct Run {
    routes: BTreeMap<u64, (Route, RouteStats)>,
    /// Whether any lookup was answered `Unavailable` (tests that inject failures
    /// route one recipient at a time, so this is that recipient's).
    lookup_failed: bool,
}

/// Routes every recipient at once, answering the pending lookups in the order that
/// `choices` picks. Panics if the router does not finish within its bounds.
fn run(
    directory: &Directory,
    limits: RouterLimits,
    recipients: &[(ForwardPath, bool)],
    choices: &[usize],
) -> Run {
    let expanded = limits.expanded_addresses;
    let parallel = limits.parallel_lookups;
    let mut router = Router::new(config(limits));
    let now = Instant::from_millis(5);
    for (job, (recipient, authenticated)) in recipients.iter().enumerate() {
        router.handle(
            now,
            Input::Route {
                job: Token(job as u64),
                recipient: recipient.clone(),
                context: RouteContext {
                    authenticated: *authenticated,
                },
            },
        );
    }
    let mut pending: Vec<(Token, DirectoryQuery)> = Vec::new();
    let mut outcome = Run {
        routes: BTreeMap::new(),
        lookup_failed: false,
    };
    let mut choices = choices.iter().cycle();
    // Each job asks at most for every domain and every address it visits.
    let budget = recipients.len() * (2 * expanded.min(pool().len() + 2) + 4);
    let mut steps = 0;
    loop {
        while let Some(output) = router.poll() {
            match output {
                Output::Lookup { token, query } => pending.push((token, query)),
                Output::Routed { job, route, stats } => {
                    assert!(
                        outcome.routes.insert(job.0, (route, stats)).is_none(),
                        "job {job} routed twice"
                    );
                }
            }
        }
        assert!(router.lookups_in_flight() <= recipients.len() * parallel.max(1));
        if pending.is_empty() {
            break;
        }
        steps += 1;
        assert!(steps <= budget, "more than {budget} lookups");
        let pick = choices.next().copied().unwrap_or(0) % pending.len();
        let (token, query) = pending.remove(pick);
        let answer = directory.answer(&query);
        if answer == DirectoryAnswer::Unavailable {
            outcome.lookup_failed = true;
        }
        router.handle(now, Input::LookupAnswered { token, answer });
    }
    assert_eq!(router.jobs_in_flight(), 0, "a job never finished");
    assert_eq!(router.next_deadline(), None);
    assert_eq!(outcome.routes.len(), recipients.len());
    outcome
}

fn route_one(
    directory: &Directory,
    limits: RouterLimits,
    recipient: &ForwardPath,
    authenticated: bool,
    choices: &[usize],
) -> (Route, RouteStats, bool) {
    let outcome = run(
        directory,
        limits,
        &[(recipient.clone(), authenticated)],
        choices,
    );
    let (route, stats) = outcome.routes.get(&0).cloned().unwrap();
    (route, stats, outcome.lookup_failed)
}

/// The reference: a plain breadth-first walk over the directory with a visited set.
/// Returns the reachable user mailboxes and external addresses, or the refusal that
/// ends the walk at the recipient itself. Assumes limits are never reached.
fn reachable(
    directory: &Directory,
    recipient: &ForwardPath,
    authenticated: bool,
) -> Result<(BTreeSet<String>, BTreeSet<String>), Refusal> {
    let start = match recipient {
        ForwardPath::Postmaster => Mailbox::parse("postmaster@a.test").unwrap(),
        ForwardPath::Mailbox(mailbox) => mailbox.clone(),
    };
    let mut local = BTreeSet::new();
    let mut external = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    seen.insert(start.to_string().to_lowercase());
    queue.push_back((start, true));
    while let Some((mailbox, is_recipient)) = queue.pop_front() {
        let domain = match &mailbox.host {
            Host::Domain(domain) => Some(domain.as_str().to_lowercase()),
            Host::Literal(_) => None,
        };
        let written = format!(
            "{}@{}",
            mailbox.local_part,
            domain.clone().unwrap_or_else(|| mailbox.host.to_string())
        );
        let domain_entry = domain.as_ref().and_then(|d| directory.domains.get(d));
        let Some(domain_entry) = domain_entry else {
            if is_recipient && !authenticated {
                return Err(Refusal::RelayDenied);
            }
            external.insert(written);
            continue;
        };
        let mut follow = Vec::new();
        match directory.addresses.get(&written.to_lowercase()) {
            Some(AddressEntry::User { address }) => {
                local.insert(address.clone());
            }
            Some(AddressEntry::Alias { targets: members })
            | Some(AddressEntry::Group { members }) => follow.extend(members.iter().cloned()),
            None => {
                let is_postmaster = mailbox
                    .local_part
                    .as_str()
                    .eq_ignore_ascii_case("postmaster");
                if is_postmaster && domain.as_deref() != Some("a.test") {
                    follow.push("postmaster@a.test".to_owned());
                } else if let Some(catch_all) = &domain_entry.catch_all {
                    follow.push(catch_all.clone());
                } else if is_recipient {
                    return Err(Refusal::UnknownUser);
                }
            }
        }
        for member in follow {
            let Ok(next) = Mailbox::parse(&member) else {
                continue;
            };
            if seen.insert(next.to_string().to_lowercase()) {
                queue.push_back((next, false));
            }
        }
    }
    Ok((local, external))
}

fn is_local_recipient(directory: &Directory, recipient: &ForwardPath) -> bool {
    match recipient {
        ForwardPath::Postmaster => true,
        ForwardPath::Mailbox(mailbox) => match &mailbox.host {
            Host::Domain(domain) => directory
                .domains
                .contains_key(&domain.as_str().to_lowercase()),
            Host::Literal(_) => false,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn routes_match_the_reference_walk(
        mut directory in directory(),
        recipient in recipient(),
        authenticated in any::<bool>(),
        choices in vec(any::<usize>(), 1..16),
    ) {
        directory.broken.clear();
        let (route, stats, _) = route_one(&directory, generous(), &recipient, authenticated, &choices);
        match reachable(&directory, &recipient, authenticated) {
            Err(refusal) => prop_assert_eq!(route, Route::Refused(refusal)),
            Ok((local, external)) if local.is_empty() && external.is_empty() => {
                prop_assert!(
                    matches!(route, Route::Refused(Refusal::Loop | Refusal::EmptyExpansion)),
                    "expected an empty expansion, got {:?}", route
                );
            }
            Ok((local, external)) => prop_assert_eq!(
                route,
                Route::Deliver {
                    local_mailboxes: local.into_iter().collect(),
                    external: external.into_iter().collect(),
                }
            ),
        }
        prop_assert_eq!(stats.too_deep_dropped, 0);
    }

    #[test]
    fn routes_are_safe_and_bounded(
        directory in directory(),
        recipient in recipient(),
        authenticated in any::<bool>(),
        small in any::<bool>(),
        choices in vec(any::<usize>(), 1..16),
    ) {
        let limits = if small { tight() } else { RouterLimits::default() };
        let expanded = limits.expanded_addresses;
        let (route, stats, failed) =
            route_one(&directory, limits.clone(), &recipient, authenticated, &choices);
        let users = directory.users();
        if let Route::Deliver { local_mailboxes, external } = &route {
            prop_assert!(!local_mailboxes.is_empty() || !external.is_empty());
            for mailbox in local_mailboxes {
                prop_assert!(users.contains(mailbox), "{} is not a user", mailbox);
            }
            let sorted: BTreeSet<_> = local_mailboxes.iter().collect();
            prop_assert_eq!(sorted.len(), local_mailboxes.len());
            prop_assert!(sorted.into_iter().eq(local_mailboxes.iter()));
            // Safety 8: an unauthenticated client reaches outside only through the
            // directory's own forwarding, never by naming an external recipient.
            if !authenticated {
                prop_assert!(is_local_recipient(&directory, &recipient));
            }
        }
        if authenticated {
            prop_assert_ne!(&route, &Route::Refused(Refusal::RelayDenied));
        }
        if !authenticated && !is_local_recipient(&directory, &recipient) {
            prop_assert_eq!(&route, &Route::Refused(Refusal::RelayDenied));
        }
        // Any failed lookup fails the recipient; no failure, no temporary failure.
        prop_assert_eq!(
            failed,
            route == Route::TemporaryFailure(TemporaryReason::DirectoryUnavailable)
        );
        prop_assert!(!matches!(route, Route::TemporaryFailure(reason) if reason != TemporaryReason::DirectoryUnavailable));
        prop_assert!(stats.addresses as usize <= expanded);
        prop_assert!(stats.lookups as usize <= 2 * stats.addresses as usize);
    }

    #[test]
    fn routes_do_not_depend_on_answer_order(
        directory in directory(),
        recipient in recipient(),
        authenticated in any::<bool>(),
        small in any::<bool>(),
        first in vec(any::<usize>(), 1..16),
        second in vec(any::<usize>(), 1..16),
    ) {
        let limits = if small { tight() } else { RouterLimits::default() };
        let one = route_one(&directory, limits.clone(), &recipient, authenticated, &first);
        let two = route_one(&directory, limits, &recipient, authenticated, &second);
        // With failures, which lookup fails first may differ, and so may the work
        // done before it; the route may not.
        prop_assert_eq!(&one.0, &two.0);
        if !one.2 {
            prop_assert_eq!(one.1, two.1);
        }
    }

    #[test]
    fn concurrent_jobs_do_not_interfere(
        mut directory in directory(),
        recipients in vec((recipient(), any::<bool>()), 1..6),
        choices in vec(any::<usize>(), 1..32),
    ) {
        directory.broken.clear();
        let together = run(&directory, tight(), &recipients, &choices);
        for (job, (recipient, authenticated)) in recipients.iter().enumerate() {
            let (alone, stats, _) = route_one(&directory, tight(), recipient, *authenticated, &[0]);
            prop_assert_eq!(together.routes.get(&(job as u64)), Some(&(alone, stats)));
        }
    }
}

/// A directory made of nothing but cycles still terminates, with the loop reported.
#[test]
fn dense_cycles_terminate() {
    let pool = pool();
    let mut directory = Directory::default();
    directory.domains.insert(
        "a.test".to_owned(),
        DomainEntry {
            name: "a.test".to_owned(),
            catch_all: Some("l0@a.test".to_owned()),
        },
    );
    let locals: Vec<String> = pool
        .iter()
        .filter(|a| a.ends_with("@a.test"))
        .cloned()
        .collect();
    for address in &locals {
        directory.addresses.insert(
            address.clone(),
            AddressEntry::Group {
                members: locals.clone(),
            },
        );
    }
    for recipient in ["u0@a.test", "nobody@a.test", "Postmaster"] {
        let path = if recipient == "Postmaster" {
            ForwardPath::Postmaster
        } else {
            ForwardPath::Mailbox(Mailbox::parse(recipient).unwrap())
        };
        let (route, stats, _) =
            route_one(&directory, RouterLimits::default(), &path, false, &[3, 1]);
        assert_eq!(route, Route::Refused(Refusal::Loop), "{recipient}");
        assert!(stats.loops_dropped > 0);
        assert!(stats.addresses as usize <= locals.len() + 1);
    }
}

/// A slow directory fails the job at its deadline, and the router forgets it.
#[test]
fn unanswered_jobs_time_out() {
    let limits = RouterLimits::default();
    let timeout = limits.lookup_timeout;
    let mut router = Router::new(config(limits));
    let start = Instant::from_millis(0);
    router.handle(
        start,
        Input::Route {
            job: Token(1),
            recipient: ForwardPath::Postmaster,
            context: RouteContext::default(),
        },
    );
    assert!(matches!(router.poll(), Some(Output::Lookup { .. })));
    assert_eq!(router.next_deadline(), Some(start + timeout));
    router.handle(start + timeout + Duration::from_millis(1), Input::Tick);
    assert!(matches!(
        router.poll(),
        Some(Output::Routed {
            route: Route::TemporaryFailure(TemporaryReason::Timeout),
            ..
        })
    ));
    assert_eq!(router.jobs_in_flight(), 0);
    assert_eq!(router.lookups_in_flight(), 0);
}
