//! Unit tests of the router against a small in-memory directory.

use super::*;
use crate::directory::{AddressEntry, DomainEntry};
use crate::smtp::address::{Domain, Mailbox};
use crate::smtp::server::RecipientVerdict;
use crate::time::Duration;
use std::collections::BTreeSet;

#[derive(Default)]
struct Directory {
    domains: BTreeMap<String, DomainEntry>,
    addresses: BTreeMap<String, AddressEntry>,
    /// Addresses whose lookup fails.
    broken: Vec<String>,
}

impl Directory {
    fn domain(mut self, name: &str, catch_all: Option<&str>) -> Self {
        self.domains.insert(
            name.to_owned(),
            DomainEntry {
                name: name.to_owned(),
                catch_all: catch_all.map(str::to_owned),
            },
        );
        self
    }

    fn user(mut self, address: &str) -> Self {
        self.addresses.insert(
            address.to_lowercase(),
            AddressEntry::User {
                address: address.to_owned(),
            },
        );
        self
    }

    fn alias(mut self, address: &str, targets: &[&str]) -> Self {
        self.addresses.insert(
            address.to_lowercase(),
            AddressEntry::Alias {
                targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            },
        );
        self
    }

    fn group(mut self, address: &str, members: &[&str]) -> Self {
        self.addresses.insert(
            address.to_lowercase(),
            AddressEntry::Group {
                members: members.iter().map(|t| (*t).to_owned()).collect(),
            },
        );
        self
    }

    fn answer(&self, query: &DirectoryQuery) -> DirectoryAnswer {
        match query {
            DirectoryQuery::Domain { domain } => {
                DirectoryAnswer::Domain(self.domains.get(domain).cloned())
            }
            DirectoryQuery::Address { address } => {
                if self.broken.contains(address) {
                    return DirectoryAnswer::Unavailable;
                }
                DirectoryAnswer::Address(self.addresses.get(&address.to_lowercase()).cloned())
            }
        }
    }
}

fn config() -> RouterConfig {
    RouterConfig::new(Domain::parse("sluice.test").unwrap())
}

fn recipient(text: &str) -> ForwardPath {
    if text == "Postmaster" {
        return ForwardPath::Postmaster;
    }
    ForwardPath::Mailbox(Mailbox::parse(text).unwrap())
}

fn route_with(
    directory: &Directory,
    config: RouterConfig,
    text: &str,
    authenticated: bool,
) -> (Route, RouteStats) {
    let mut router = Router::new(config);
    let now = Instant::from_millis(1_000);
    router.handle(
        now,
        Input::Route {
            job: Token(7),
            recipient: recipient(text),
            context: RouteContext { authenticated },
        },
    );
    for _ in 0..10_000 {
        let Some(output) = router.poll() else {
            panic!("the router went quiet without routing");
        };
        match output {
            Output::Lookup { token, query } => {
                let answer = directory.answer(&query);
                router.handle(now, Input::LookupAnswered { token, answer });
            }
            Output::Routed { job, route, stats } => {
                assert_eq!(job, Token(7));
                assert_eq!(router.poll(), None);
                assert_eq!(router.jobs_in_flight(), 0);
                assert_eq!(router.lookups_in_flight(), 0);
                assert_eq!(router.next_deadline(), None);
                return (route, stats);
            }
        }
    }
    panic!("the router did not finish");
}

fn route(directory: &Directory, text: &str, authenticated: bool) -> Route {
    route_with(directory, config(), text, authenticated).0
}

fn deliver(local: &[&str], external: &[&str]) -> Route {
    Route::Deliver {
        local_mailboxes: local.iter().map(|s| (*s).to_owned()).collect(),
        external: external.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn basic() -> Directory {
    Directory::default()
        .domain("sluice.test", None)
        .domain("other.test", Some("bucket@other.test"))
        .user("alice@sluice.test")
        .user("bob@sluice.test")
        .user("postmaster@sluice.test")
        .user("bucket@other.test")
}

#[test]
fn local_user_is_delivered_to_its_mailbox() {
    assert_eq!(
        route(&basic(), "alice@sluice.test", false),
        deliver(&["alice@sluice.test"], &[])
    );
}

#[test]
fn domains_compare_case_insensitively() {
    assert_eq!(
        route(&basic(), "alice@SLUICE.Test", false),
        deliver(&["alice@sluice.test"], &[])
    );
}

#[test]
fn unknown_local_user_is_refused_with_5_1_1() {
    let refused = route(&basic(), "nobody@sluice.test", false);
    assert_eq!(refused, Route::Refused(Refusal::UnknownUser));
    assert_eq!(refused.verdict(), RecipientVerdict::UnknownUser);
}

#[test]
fn catch_all_takes_only_unknown_local_parts() {
    let directory = basic().user("carol@other.test");
    assert_eq!(
        route(&directory, "whoever@other.test", false),
        deliver(&["bucket@other.test"], &[])
    );
    assert_eq!(
        route(&directory, "carol@other.test", false),
        deliver(&["carol@other.test"], &[])
    );
}

#[test]
fn external_recipient_needs_authentication() {
    let denied = route(&basic(), "dave@elsewhere.example", false);
    assert_eq!(denied, Route::Refused(Refusal::RelayDenied));
    assert_eq!(denied.verdict(), RecipientVerdict::RelayDenied);
    let relayed = route(&basic(), "dave@Elsewhere.Example", true);
    assert_eq!(relayed, deliver(&[], &["dave@elsewhere.example"]));
    assert_eq!(relayed.verdict(), RecipientVerdict::Accept);
}

#[test]
fn only_addresses_in_local_domains_are_looked_up() {
    // An external recipient costs its domain's lookup and no address lookup.
    let (_, stats) = route_with(&basic(), config(), "dave@elsewhere.example", true);
    assert_eq!(stats.lookups, 1);
    // A local one costs both.
    let (_, stats) = route_with(&basic(), config(), "alice@sluice.test", false);
    assert_eq!(stats.lookups, 2);
}

#[test]
fn address_literals_are_external() {
    assert_eq!(
        route(&basic(), "user@[192.0.2.1]", false),
        Route::Refused(Refusal::RelayDenied)
    );
    assert_eq!(
        route(&basic(), "user@[IPv6:2001:db8::1]", true),
        deliver(&[], &["user@[IPv6:2001:db8::1]"])
    );
}

#[test]
fn postmaster_reaches_the_primary_domain() {
    assert_eq!(
        route(&basic(), "Postmaster", false),
        deliver(&["postmaster@sluice.test"], &[])
    );
    // Another local domain without its own postmaster falls back to the primary one.
    let directory = basic().domain("third.test", None);
    assert_eq!(
        route(&directory, "POSTMASTER@third.test", false),
        deliver(&["postmaster@sluice.test"], &[])
    );
}

#[test]
fn alias_forwards_outside_even_without_authentication() {
    let directory = basic().alias(
        "sales@sluice.test",
        &["alice@sluice.test", "rep@partner.example"],
    );
    assert_eq!(
        route(&directory, "sales@sluice.test", false),
        deliver(&["alice@sluice.test"], &["rep@partner.example"])
    );
}

#[test]
fn nested_groups_are_expanded_and_deduplicated() {
    let directory = basic()
        .group(
            "all@sluice.test",
            &["team@sluice.test", "bob@sluice.test", "<Alice@sluice.test>"],
        )
        .group(
            "team@sluice.test",
            &["alice@sluice.test", "BOB@sluice.test"],
        );
    let (route, stats) = route_with(&directory, config(), "all@sluice.test", false);
    assert_eq!(
        route,
        deliver(&["alice@sluice.test", "bob@sluice.test"], &[])
    );
    assert_eq!(stats.loops_dropped, 0);
}

#[test]
fn a_loop_drops_only_its_branch() {
    let directory = basic()
        .group("a@sluice.test", &["b@sluice.test", "alice@sluice.test"])
        .group("b@sluice.test", &["a@sluice.test", "bob@sluice.test"]);
    let (route, stats) = route_with(&directory, config(), "a@sluice.test", false);
    assert_eq!(
        route,
        deliver(&["alice@sluice.test", "bob@sluice.test"], &[])
    );
    assert_eq!(stats.loops_dropped, 1);
}

#[test]
fn a_pure_loop_is_refused() {
    let directory = basic()
        .alias("a@sluice.test", &["b@sluice.test"])
        .alias("b@sluice.test", &["A@sluice.test"])
        .alias("self@sluice.test", &["self@sluice.test"]);
    assert_eq!(
        route(&directory, "a@sluice.test", false),
        Route::Refused(Refusal::Loop)
    );
    assert_eq!(
        route(&directory, "self@sluice.test", false),
        Route::Refused(Refusal::Loop)
    );
    assert_eq!(
        Route::Refused(Refusal::Loop).verdict(),
        RecipientVerdict::UnknownUser
    );
}

#[test]
fn an_alias_to_nobody_is_refused() {
    let directory = basic().group("empty@sluice.test", &[]).alias(
        "ghost@sluice.test",
        &["nobody@sluice.test", "not an address"],
    );
    assert_eq!(
        route(&directory, "empty@sluice.test", false),
        Route::Refused(Refusal::EmptyExpansion)
    );
    let (route, stats) = route_with(&directory, config(), "ghost@sluice.test", false);
    assert_eq!(route, Route::Refused(Refusal::EmptyExpansion));
    assert_eq!((stats.unknown_members, stats.invalid_targets), (1, 1));
}

#[test]
fn depth_limit_cuts_long_chains() {
    let mut directory = basic();
    for hop in 0..5 {
        let next = format!("hop{}@sluice.test", hop + 1);
        directory = directory.alias(&format!("hop{hop}@sluice.test"), &[&next]);
    }
    directory = directory.alias("hop5@sluice.test", &["alice@sluice.test"]);
    let mut shallow = config();
    shallow.limits.depth = 3;
    let (cut, stats) = route_with(&directory, shallow, "hop0@sluice.test", false);
    assert_eq!(cut, Route::Refused(Refusal::TooDeep));
    assert_eq!(stats.too_deep_dropped, 1);
    assert_eq!(
        route(&directory, "hop0@sluice.test", false),
        deliver(&["alice@sluice.test"], &[])
    );
}

#[test]
fn the_depth_limit_counts_hops_exactly() {
    // hop0 -> hop1 -> ... -> hop5 -> alice: alice is six hops from the recipient.
    let mut directory = basic();
    for hop in 0..5 {
        let next = format!("hop{}@sluice.test", hop + 1);
        directory = directory.alias(&format!("hop{hop}@sluice.test"), &[&next]);
    }
    directory = directory.alias("hop5@sluice.test", &["alice@sluice.test"]);
    let with_depth = |depth| {
        let mut limited = config();
        limited.limits.depth = depth;
        route_with(&directory, limited, "hop0@sluice.test", false).0
    };
    assert_eq!(with_depth(6), deliver(&["alice@sluice.test"], &[]));
    assert_eq!(with_depth(5), Route::Refused(Refusal::TooDeep));
    // Depth 0 expands nothing: even the first alias hop is too deep.
    assert_eq!(with_depth(0), Route::Refused(Refusal::TooDeep));
}

#[test]
fn only_a_deliver_route_is_deliverable() {
    assert!(deliver(&["alice@sluice.test"], &[]).is_deliver());
    assert!(!Route::Refused(Refusal::UnknownUser).is_deliver());
    assert!(!Route::TemporaryFailure(TemporaryReason::Timeout).is_deliver());
}

#[test]
fn expansion_limit_refuses_instead_of_truncating() {
    let members: Vec<String> = (0..20).map(|n| format!("m{n}@sluice.test")).collect();
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let mut directory = basic().group("big@sluice.test", &member_refs);
    for member in &members {
        directory = directory.user(member);
    }
    let mut small = config();
    small.limits.expanded_addresses = 10;
    let (route, _) = route_with(&directory, small, "big@sluice.test", false);
    assert_eq!(route, Route::Refused(Refusal::ExpansionTooLarge));
    let (route, stats) = route_with(&directory, config(), "big@sluice.test", false);
    assert_eq!(
        route,
        deliver(
            &member_refs
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
            &[]
        )
    );
    assert_eq!(stats.addresses, 21);
}

#[test]
fn a_failed_lookup_fails_the_whole_recipient_temporarily() {
    let mut directory = basic().group(
        "list@sluice.test",
        &["alice@sluice.test", "bob@sluice.test"],
    );
    directory.broken.push("bob@sluice.test".to_owned());
    let failed = route(&directory, "list@sluice.test", false);
    assert_eq!(
        failed,
        Route::TemporaryFailure(TemporaryReason::DirectoryUnavailable)
    );
    assert_eq!(failed.verdict(), RecipientVerdict::TemporaryFailure);
}

#[test]
fn lookups_time_out_and_late_answers_are_ignored() {
    let mut router = Router::new(config());
    let start = Instant::from_millis(0);
    router.handle(
        start,
        Input::Route {
            job: Token(1),
            recipient: recipient("alice@sluice.test"),
            context: RouteContext::default(),
        },
    );
    let Some(Output::Lookup { token, .. }) = router.poll() else {
        panic!("expected a lookup");
    };
    let deadline = start + Duration::from_secs(30);
    assert_eq!(router.next_deadline(), Some(deadline));
    router.handle(deadline - Duration::from_millis(1), Input::Tick);
    assert_eq!(router.poll(), None);
    router.handle(deadline, Input::Tick);
    assert_eq!(
        router.poll(),
        Some(Output::Routed {
            job: Token(1),
            route: Route::TemporaryFailure(TemporaryReason::Timeout),
            stats: RouteStats {
                lookups: 1,
                addresses: 1,
                ..RouteStats::default()
            },
        })
    );
    router.handle(
        deadline,
        Input::LookupAnswered {
            token,
            answer: DirectoryAnswer::Domain(None),
        },
    );
    assert_eq!(router.poll(), None);
    assert_eq!(router.next_deadline(), None);
}

#[test]
fn mismatched_answers_fail_temporarily() {
    let mut router = Router::new(config());
    let now = Instant::EPOCH;
    router.handle(
        now,
        Input::Route {
            job: Token(1),
            recipient: recipient("alice@sluice.test"),
            context: RouteContext::default(),
        },
    );
    let Some(Output::Lookup { token, .. }) = router.poll() else {
        panic!("expected a lookup");
    };
    router.handle(
        now,
        Input::LookupAnswered {
            token,
            answer: DirectoryAnswer::Address(None),
        },
    );
    assert!(matches!(
        router.poll(),
        Some(Output::Routed {
            route: Route::TemporaryFailure(TemporaryReason::MismatchedAnswer),
            ..
        })
    ));
}

#[test]
fn jobs_are_bounded_and_unique() {
    let mut limited = config();
    limited.limits.jobs = 1;
    let mut router = Router::new(limited);
    let now = Instant::EPOCH;
    let start = |router: &mut Router, job| {
        router.handle(
            now,
            Input::Route {
                job: Token(job),
                recipient: recipient("alice@sluice.test"),
                context: RouteContext::default(),
            },
        )
    };
    start(&mut router, 1);
    assert!(matches!(router.poll(), Some(Output::Lookup { .. })));
    assert_eq!(router.jobs_in_flight(), 1);
    assert_eq!(router.lookups_in_flight(), 1);
    start(&mut router, 1);
    assert!(matches!(
        router.poll(),
        Some(Output::Routed {
            job: Token(1),
            route: Route::TemporaryFailure(TemporaryReason::DuplicateJob),
            ..
        })
    ));
    start(&mut router, 2);
    assert!(matches!(
        router.poll(),
        Some(Output::Routed {
            job: Token(2),
            route: Route::TemporaryFailure(TemporaryReason::Overloaded),
            ..
        })
    ));
    router.handle(now, Input::Cancel { job: Token(1) });
    assert_eq!(router.jobs_in_flight(), 0);
    assert_eq!(router.lookups_in_flight(), 0);
    start(&mut router, 2);
    assert!(matches!(router.poll(), Some(Output::Lookup { .. })));
}

#[test]
fn parallel_lookups_are_bounded() {
    let members: Vec<String> = (0..10).map(|n| format!("m{n}@d{n}.example")).collect();
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let directory = basic().group("wide@sluice.test", &member_refs);
    let mut narrow = config();
    narrow.limits.parallel_lookups = 3;
    let mut router = Router::new(narrow);
    let now = Instant::EPOCH;
    router.handle(
        now,
        Input::Route {
            job: Token(1),
            recipient: recipient("wide@sluice.test"),
            context: RouteContext::default(),
        },
    );
    let mut routed = None;
    while routed.is_none() {
        let mut batch = Vec::new();
        while let Some(output) = router.poll() {
            match output {
                Output::Lookup { token, query } => batch.push((token, query)),
                Output::Routed { route, .. } => routed = Some(route),
            }
        }
        assert!(router.lookups_in_flight() <= 3);
        // Answer the newest first: the route must not depend on answer order.
        for (token, query) in batch.into_iter().rev() {
            router.handle(
                now,
                Input::LookupAnswered {
                    token,
                    answer: directory.answer(&query),
                },
            );
        }
    }
    let mut external = members.clone();
    external.sort();
    let external_refs: Vec<&str> = external.iter().map(String::as_str).collect();
    assert_eq!(routed, Some(deliver(&[], &external_refs)));
}

#[test]
fn several_jobs_interleave() {
    let directory = basic().alias("sales@sluice.test", &["bob@sluice.test"]);
    let mut router = Router::new(config());
    let now = Instant::EPOCH;
    for (job, text) in [
        (1, "alice@sluice.test"),
        (2, "sales@sluice.test"),
        (3, "x@elsewhere.example"),
    ] {
        router.handle(
            now,
            Input::Route {
                job: Token(job),
                recipient: recipient(text),
                context: RouteContext::default(),
            },
        );
    }
    let mut routes = BTreeMap::new();
    let mut steps = 0;
    while let Some(output) = router.poll() {
        steps += 1;
        assert!(steps < 100);
        match output {
            Output::Lookup { token, query } => router.handle(
                now,
                Input::LookupAnswered {
                    token,
                    answer: directory.answer(&query),
                },
            ),
            Output::Routed { job, route, .. } => {
                routes.insert(job.0, route);
            }
        }
    }
    assert_eq!(routes.get(&1), Some(&deliver(&["alice@sluice.test"], &[])));
    assert_eq!(routes.get(&2), Some(&deliver(&["bob@sluice.test"], &[])));
    assert_eq!(routes.get(&3), Some(&Route::Refused(Refusal::RelayDenied)));
}

#[test]
fn for_check_carries_authentication() {
    let check = RecipientCheck {
        reverse_path: crate::smtp::address::ReversePath::Null,
        recipient: recipient("x@elsewhere.example"),
        authenticated: Some("alice@sluice.test".to_owned()),
    };
    assert_eq!(
        Input::for_check(Token(3), &check),
        Input::Route {
            job: Token(3),
            recipient: recipient("x@elsewhere.example"),
            context: RouteContext {
                authenticated: true
            },
        }
    );
}

#[test]
fn postmaster_fallback_comes_before_the_catch_all() {
    assert_eq!(
        route(&basic(), "postmaster@other.test", false),
        deliver(&["postmaster@sluice.test"], &[])
    );
}

#[test]
fn an_external_catch_all_forwards_for_anyone() {
    let directory = basic().domain("forward.test", Some("archive@vault.example"));
    assert_eq!(
        route(&directory, "anything@forward.test", false),
        deliver(&[], &["archive@vault.example"])
    );
}

#[test]
fn a_group_sharing_members_with_its_subgroups_is_no_loop() {
    let directory = basic()
        .group(
            "outer@sluice.test",
            &["inner@sluice.test", "alice@sluice.test"],
        )
        .group(
            "inner@sluice.test",
            &["alice@sluice.test", "ALICE@sluice.test"],
        );
    let (route, stats) = route_with(&directory, config(), "outer@sluice.test", false);
    assert_eq!(route, deliver(&["alice@sluice.test"], &[]));
    assert_eq!(stats.loops_dropped, 0);
    assert_eq!(stats.addresses, 3);
}

// ---- RecipientRouting: one check on its own router, as the drivers run it ----

fn check(text: &str, authenticated: bool) -> RecipientCheck {
    RecipientCheck {
        reverse_path: crate::smtp::address::ReversePath::Null,
        recipient: recipient(text),
        authenticated: authenticated.then(|| "user".to_owned()),
    }
}

/// Drives a check as the simulator does: every lookup answered at once.
fn route_single(
    directory: &Directory,
    config: RouterConfig,
    text: &str,
    authenticated: bool,
) -> Route {
    let now = Instant::from_millis(1_000);
    let mut routing = RecipientRouting::start(config, now, &check(text, authenticated));
    for _ in 0..10_000 {
        match routing.step() {
            RoutingStep::Lookup { token, query } => {
                routing.answered(now, token, directory.answer(&query));
            }
            RoutingStep::Wait { until } => panic!("waiting until {until:?} with every answer in"),
            RoutingStep::Routed { route, .. } => return route,
        }
    }
    panic!("the check was not routed");
}

/// Drives a check as net does: every lookup out first, the answers in afterwards,
/// in reverse order.
fn route_single_late(directory: &Directory, text: &str, authenticated: bool) -> Route {
    let now = Instant::from_millis(1_000);
    let mut routing = RecipientRouting::start(config(), now, &check(text, authenticated));
    for _ in 0..10_000 {
        let mut out = Vec::new();
        loop {
            match routing.step() {
                RoutingStep::Lookup { token, query } => out.push((token, query)),
                RoutingStep::Wait { until } => {
                    assert!(!out.is_empty(), "waiting for nothing until {until:?}");
                    break;
                }
                RoutingStep::Routed { route, .. } => {
                    assert!(out.is_empty(), "routed with lookups out");
                    return route;
                }
            }
        }
        for (token, query) in out.into_iter().rev() {
            routing.answered(now, token, directory.answer(&query));
        }
    }
    panic!("the check was not routed");
}

#[test]
fn a_single_check_routes_as_the_router_does() {
    let directory = basic()
        .alias("team@sluice.test", &["alice@sluice.test", "carol@far.test"])
        .group("all@sluice.test", &["team@sluice.test", "bob@sluice.test"]);
    for (text, authenticated) in [
        ("alice@sluice.test", false),
        ("team@sluice.test", false),
        ("all@sluice.test", false),
        ("nobody@sluice.test", false),
        ("someone@other.test", false),
        ("far@away.test", false),
        ("far@away.test", true),
        ("Postmaster", false),
    ] {
        let expected = route(&directory, text, authenticated);
        assert_eq!(
            route_single(&directory, config(), text, authenticated),
            expected,
            "{text}"
        );
        assert_eq!(
            route_single_late(&directory, text, authenticated),
            expected,
            "{text}"
        );
    }
}

#[test]
fn a_check_whose_lookups_go_unanswered_fails_temporarily_at_the_deadline() {
    let start = Instant::from_millis(1_000);
    let mut routing = RecipientRouting::start(config(), start, &check("alice@sluice.test", false));
    let RoutingStep::Lookup { token, .. } = routing.step() else {
        panic!("a lookup first");
    };
    let RoutingStep::Wait { until } = routing.step() else {
        panic!("then a wait");
    };
    assert_eq!(until, start + config().limits.lookup_timeout);
    routing.tick(Instant::from_millis(until.as_millis() - 1));
    assert_eq!(routing.step(), RoutingStep::Wait { until }, "not yet");
    routing.tick(until);
    let RoutingStep::Routed { route, .. } = routing.step() else {
        panic!("routed at the deadline");
    };
    assert_eq!(route, Route::TemporaryFailure(TemporaryReason::Timeout));
    // The decision stands: a late answer or tick changes nothing.
    routing.answered(until, token, DirectoryAnswer::Unavailable);
    routing.tick(until + Duration::from_secs(1));
    assert!(matches!(
        routing.step(),
        RoutingStep::Routed {
            route: Route::TemporaryFailure(TemporaryReason::Timeout),
            ..
        }
    ));
}

#[test]
fn a_check_the_router_refuses_at_once_needs_no_lookup() {
    let mut overloaded = config();
    overloaded.limits.jobs = 0;
    assert_eq!(
        route_single(&basic(), overloaded, "alice@sluice.test", false),
        Route::TemporaryFailure(TemporaryReason::Overloaded)
    );
}

#[test]
fn a_failed_lookup_fails_the_check_temporarily() {
    let mut directory = basic();
    directory.broken.push("alice@sluice.test".to_owned());
    assert!(matches!(
        route_single(&directory, config(), "alice@sluice.test", false),
        Route::TemporaryFailure(_)
    ));
}

proptest::proptest! {
    /// Whatever the directory holds, a check answered at once and one answered late
    /// in reverse order get the route the router gives.
    #[test]
    fn a_single_check_is_routed_the_same_whatever_the_order_of_answers(
        members in proptest::collection::vec(0_usize..6, 0..12),
        team in proptest::collection::vec(0_usize..6, 0..4),
        target in 0_usize..6,
        authenticated in proptest::prelude::any::<bool>(),
    ) {
        let names = [
            "alice@sluice.test",
            "list@sluice.test",
            "team@sluice.test",
            "ghost@sluice.test",
            "out@far.test",
            "someone@other.test",
        ];
        let group: Vec<&str> = members.iter().map(|index| names[*index]).collect();
        let mut directory = basic().group("list@sluice.test", &group);
        let team: Vec<&str> = team.iter().map(|index| names[*index]).collect();
        if !team.is_empty() {
            directory = directory.alias("team@sluice.test", &team);
        }
        let text = names[target];
        let expected = route(&directory, text, authenticated);
        proptest::prop_assert_eq!(route_single(&directory, config(), text, authenticated), expected.clone());
        proptest::prop_assert_eq!(route_single_late(&directory, text, authenticated), expected);
    }
}
