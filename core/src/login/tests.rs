use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const GUESSER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const OWNER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

fn at(seconds: u64) -> Instant {
    Instant::from_millis(seconds * 1000)
}

fn attempt(user: &str, address: IpAddr) -> LoginAttempt<'_> {
    LoginAttempt {
        protocol: LoginProtocol::Imap,
        mechanism: "PLAIN",
        user,
        address,
    }
}

fn fail(guard: &mut LoginGuard, now: Instant, user: &str, address: IpAddr) {
    guard.record(
        now,
        &attempt(user, address),
        LoginResult::Failed,
        Duration::ZERO,
    );
}

#[test]
fn the_first_check_waits_for_nothing() {
    let guard = LoginGuard::default();
    assert_eq!(guard.delay(at(0), &attempt("ann", GUESSER)), Duration::ZERO);
}

#[test]
fn each_failure_doubles_the_delay_up_to_the_longest() {
    let mut guard = LoginGuard::default();
    let mut delays = Vec::new();
    for second in 0..6 {
        fail(&mut guard, at(second), "ann", GUESSER);
        delays.push(
            guard
                .delay(at(second), &attempt("ann", GUESSER))
                .as_millis(),
        );
    }
    assert_eq!(delays, [2_000, 4_000, 8_000, 15_000, 15_000, 15_000]);
}

#[test]
fn failures_for_one_user_slow_every_address_that_tries_it() {
    let mut guard = LoginGuard::default();
    fail(&mut guard, at(0), "ann", GUESSER);
    fail(
        &mut guard,
        at(1),
        "ANN",
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
    );
    // The user's count (2, names case-folded) outweighs the fresh address's (0).
    assert_eq!(
        guard.delay(at(1), &attempt("Ann", OWNER)),
        Duration::from_secs(4)
    );
}

#[test]
fn failures_from_one_address_slow_every_user_it_tries() {
    let mut guard = LoginGuard::default();
    for (second, user) in ["ann", "bob", "cy"].into_iter().enumerate() {
        fail(&mut guard, at(second as u64), user, GUESSER);
    }
    assert_eq!(
        guard.delay(at(3), &attempt("dee", GUESSER)),
        Duration::from_secs(8)
    );
    assert_eq!(guard.delay(at(3), &attempt("dee", OWNER)), Duration::ZERO);
}

#[test]
fn a_quiet_key_is_forgotten_and_counts_again_from_one() {
    let mut guard = LoginGuard::default();
    for second in 0..3 {
        fail(&mut guard, at(second), "ann", GUESSER);
    }
    let quiet = at(2) + LoginLimits::default().forget_after;
    assert_eq!(guard.delay(quiet, &attempt("ann", GUESSER)), Duration::ZERO);
    fail(&mut guard, quiet, "ann", GUESSER);
    assert_eq!(
        guard.delay(quiet, &attempt("ann", GUESSER)),
        Duration::from_secs(2)
    );
}

#[test]
fn a_success_clears_the_user_but_not_the_address() {
    let mut guard = LoginGuard::default();
    fail(&mut guard, at(0), "victim", GUESSER);
    fail(&mut guard, at(1), "victim", GUESSER);
    let event = guard.record(
        at(2),
        &attempt("mine", GUESSER),
        LoginResult::Succeeded,
        Duration::from_secs(4),
    );
    assert_eq!(event.result, LoginResult::Succeeded);
    assert_eq!(event.delayed, Duration::from_secs(4));
    // The guesser's own account clears nothing of the address it guesses from …
    assert_eq!(
        guard.delay(at(2), &attempt("other", GUESSER)),
        Duration::from_secs(4)
    );
    // … while the owner's success clears the owner's name everywhere.
    guard.record(
        at(3),
        &attempt("victim", OWNER),
        LoginResult::Succeeded,
        Duration::ZERO,
    );
    assert_eq!(
        guard.delay(at(3), &attempt("victim", OWNER)),
        Duration::ZERO
    );
}

#[test]
fn a_store_that_could_not_answer_counts_against_no_one() {
    let mut guard = LoginGuard::default();
    guard.record(
        at(0),
        &attempt("ann", GUESSER),
        LoginResult::Unavailable,
        Duration::ZERO,
    );
    assert_eq!(guard.tracked(), 0);
    assert_eq!(guard.delay(at(0), &attempt("ann", GUESSER)), Duration::ZERO);
}

#[test]
fn an_ipv6_subscriber_is_counted_by_its_slash_64() {
    let mut guard = LoginGuard::default();
    let one: IpAddr = "2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap().into();
    let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap().into();
    let next_64: IpAddr = "2001:db8:1:3::1".parse::<Ipv6Addr>().unwrap().into();
    fail(&mut guard, at(0), "ann", one);
    assert_eq!(
        guard.delay(at(0), &attempt("bob", same_64)),
        Duration::from_secs(2)
    );
    assert_eq!(guard.delay(at(0), &attempt("bob", next_64)), Duration::ZERO);
    // An IPv4-mapped address is the IPv4 address it carries.
    fail(&mut guard, at(1), "ann", GUESSER);
    let mapped: IpAddr = "::ffff:192.0.2.7".parse::<Ipv6Addr>().unwrap().into();
    assert_eq!(
        guard.delay(at(1), &attempt("bob", mapped)),
        Duration::from_secs(2)
    );
}

#[test]
fn past_its_bound_the_guard_forgets_the_oldest_failure_first() {
    let mut guard = LoginGuard::new(LoginLimits {
        max_tracked: 4,
        ..LoginLimits::default()
    });
    // Two keys per failure: "u0"+address, then "u1"+the same address (updated).
    fail(&mut guard, at(0), "u0", GUESSER);
    fail(&mut guard, at(1), "u1", GUESSER);
    fail(&mut guard, at(2), "u2", OWNER);
    assert_eq!(guard.tracked(), 4);
    // u0 (last failure at 0) went first.
    assert_eq!(
        guard.delay(at(2), &attempt("u0", OWNER)),
        Duration::from_secs(2)
    );
    assert_eq!(
        guard.delay(at(2), &attempt("u0", IpAddr::V4(Ipv4Addr::LOCALHOST))),
        Duration::ZERO
    );
    assert_eq!(
        guard.delay(at(2), &attempt("u1", IpAddr::V4(Ipv4Addr::LOCALHOST))),
        Duration::from_secs(2)
    );
}

#[derive(Clone, Debug)]
enum Step {
    Fail {
        user: u8,
        address: u8,
        after_ms: u32,
    },
    Succeed {
        user: u8,
        address: u8,
        after_ms: u32,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..6, 0u8..6, 0u32..400_000).prop_map(|(user, address, after_ms)| Step::Fail { user, address, after_ms }),
        1 => (0u8..6, 0u8..6, 0u32..400_000).prop_map(|(user, address, after_ms)| Step::Succeed { user, address, after_ms }),
    ]
}

proptest! {
    /// Whatever happens, memory stays within its bound, no delay exceeds the longest,
    /// and a failure never makes the next check of that user and address quicker.
    #[test]
    fn the_guard_stays_bounded_and_never_rewards_a_failure(
        steps in proptest::collection::vec(step(), 1..200),
        max_tracked in 1usize..8,
    ) {
        let limits = LoginLimits { max_tracked, ..LoginLimits::default() };
        let mut guard = LoginGuard::new(limits);
        let mut now = Instant::EPOCH;
        for step in steps {
            let (user, address, after_ms, result) = match step {
                Step::Fail { user, address, after_ms } => (user, address, after_ms, LoginResult::Failed),
                Step::Succeed { user, address, after_ms } => (user, address, after_ms, LoginResult::Succeeded),
            };
            now = now + Duration::from_millis(u64::from(after_ms));
            let user = format!("u{user}");
            let address = IpAddr::V4(Ipv4Addr::new(10, 0, 0, address));
            let before = guard.delay(now, &attempt(&user, address));
            guard.record(now, &attempt(&user, address), result, before);
            let after = guard.delay(now, &attempt(&user, address));
            prop_assert!(guard.tracked() <= max_tracked.max(1));
            prop_assert!(after <= limits.longest_delay);
            if result == LoginResult::Failed {
                prop_assert!(after >= before.min(limits.longest_delay) || max_tracked < 2);
                prop_assert!(after >= limits.first_delay);
            }
        }
    }
}
