//! The checkers can fail: with a deliberate bug switched on in the simulated hosts,
//! a short sweep finds a violation of the guarantee that bug breaks. One of them
//! (`core_backoff_off_by_one`) lives inside core's retry schedule, switched on by
//! sluice-core's `planted-bugs` feature, which only test builds enable.

use sluice_sim::check::Guarantee;
use sluice_sim::host::Bugs;
use sluice_sim::run::run;
use sluice_sim::scenario::Scenario;
use std::path::PathBuf;

/// How many seeds a sweep may take to find each bug.
const BOUND: u64 = 10;

fn scenario(name: &str) -> Scenario {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&file).expect("a valid scenario")
}

/// Whether the run of `seed` violates `guarantee`.
fn violates(scenario: &Scenario, seed: u64, bugs: Bugs, guarantee: Guarantee) -> bool {
    run(scenario, seed, bugs, false)
        .violations
        .iter()
        .any(|violation| violation.guarantee == guarantee)
}

/// The first seed below `BOUND` whose run violates `guarantee`.
fn first_failing_seed(scenario: &Scenario, bugs: Bugs, guarantee: Guarantee) -> Option<u64> {
    (0..BOUND).find(|seed| violates(scenario, *seed, bugs, guarantee))
}

/// The bug is what the checker catches: some seed below `BOUND` violates `guarantee`
/// with the bug switched on, and the same seed passes without it.
fn caught_only_with(scenario: &Scenario, bugs: Bugs, guarantee: Guarantee) {
    let found = first_failing_seed(scenario, bugs, guarantee);
    let Some(seed) = found else {
        panic!("no seed below {BOUND} found the bug");
    };
    assert!(
        !violates(scenario, seed, Bugs::default(), guarantee),
        "seed {seed} fails without the bug too"
    );
}

/// Remotes that defer half the recipients for half an hour, and gateways that crash:
/// deferred recipients are restored from disk after each restart.
const DEFERRED_AND_CRASHES: &str = r#"
name = "deferred-and-crashes"
duration_secs = 1800
drain_secs = 7200
[workload]
messages = 40
external_fraction = 0.7
[remote]
temporary = 0.5
recover_after_secs = 1800
[crashes]
gateway = 4
restart_secs_min = 5
restart_secs_max = 60
"#;

#[test]
fn acknowledging_before_durability_loses_promised_mail() {
    let bugs = Bugs {
        ack_before_durability: true,
        ..Bugs::default()
    };
    caught_only_with(&scenario("lost-unsynced-writes"), bugs, Guarantee::NoLoss);
}

#[test]
fn skipping_a_notice_is_found() {
    let bugs = Bugs {
        skip_notice: true,
        ..Bugs::default()
    };
    caught_only_with(
        &scenario("permanent-failures-and-expiry"),
        bugs,
        Guarantee::Notices,
    );
}

#[test]
fn delivering_twice_after_a_crash_is_found() {
    let bugs = Bugs {
        deliver_twice_after_crash: true,
        ..Bugs::default()
    };
    caught_only_with(
        &scenario("crash-after-promise"),
        bugs,
        Guarantee::NoDuplicates,
    );
}

#[test]
fn dropping_a_deferred_recipient_loses_mail() {
    let scenario =
        Scenario::parse("deferred-and-crashes.toml", DEFERRED_AND_CRASHES).expect("valid");
    let bugs = Bugs {
        drop_deferred_recipient: true,
        ..Bugs::default()
    };
    caught_only_with(&scenario, bugs, Guarantee::NoLoss);
}

#[test]
fn an_open_relay_is_found() {
    let bugs = Bugs {
        open_relay: true,
        ..Bugs::default()
    };
    caught_only_with(&scenario("swarm"), bugs, Guarantee::NoRelay);
}

#[test]
fn retrying_before_the_schedule_is_found() {
    let bugs = Bugs {
        retry_early: true,
        ..Bugs::default()
    };
    caught_only_with(
        &scenario("remote-temporary-then-recovery"),
        bugs,
        Guarantee::RetrySchedule,
    );
}

#[test]
fn with_every_gateway_down_availability_fails() {
    let text = r#"
name = "all-gateways-down"
duration_secs = 600
drain_secs = 3600
[workload]
messages = 10
[crashes]
gateways_down = 2
[guarantees]
availability_secs = 300
"#;
    let scenario = Scenario::parse("all-gateways-down.toml", text).expect("valid");
    let result = run(&scenario, 1, Bugs::default(), false);
    assert!(
        result
            .violations
            .iter()
            .any(|violation| violation.guarantee == Guarantee::Availability)
    );
    // The mail is still accepted once the gateways are back, so nothing is lost.
    assert!(
        result
            .violations
            .iter()
            .all(|violation| violation.guarantee == Guarantee::Availability)
    );
}

#[test]
fn an_owed_success_notice_kept_in_memory_only_is_lost_in_a_crash() {
    // One host of role `all` (local copies written at acceptance), many recipients
    // asking for NOTIFY=SUCCESS, and crashes right after the 250, before the queue
    // has stored the notice a local copy owes.
    let text = r#"
name = "success-notices-and-crashes"
duration_secs = 1800
drain_secs = 7200
[topology]
gateways = 0
[workload]
messages = 60
dsn_fraction = 1.0
[crashes]
after_promise = 0.3
restart_secs_min = 5
restart_secs_max = 60
"#;
    let scenario = Scenario::parse("success-notices-and-crashes.toml", text).expect("valid");
    let bugs = Bugs {
        forget_owed_success: true,
        ..Bugs::default()
    };
    caught_only_with(&scenario, bugs, Guarantee::Notices);
}

#[test]
fn a_backoff_bug_inside_core_breaks_the_configured_schedule() {
    // The retry checker holds core to the schedule the scenario configures, not to
    // the next attempt core announces, so a wrong schedule inside core is caught.
    let scenario = scenario("remote-temporary-then-recovery");
    caught_only_with(
        &scenario,
        Bugs {
            core_backoff_off_by_one: true,
            ..Bugs::default()
        },
        Guarantee::RetrySchedule,
    );
}

#[test]
fn forgetting_deferred_mail_at_a_restart_leaves_the_queues_undrained() {
    let scenario =
        Scenario::parse("deferred-and-crashes.toml", DEFERRED_AND_CRASHES).expect("valid");
    caught_only_with(
        &scenario,
        Bugs {
            forget_deferred_on_restart: true,
            ..Bugs::default()
        },
        Guarantee::Drained,
    );
}

#[test]
fn sending_again_after_the_remote_took_the_message_is_an_unexplained_duplicate() {
    // Copies a remote stores twice are allowed only when the sender never heard the
    // final reply (or crashed); here it heard it and sent again anyway.
    let scenario = scenario("remote-misbehaviour");
    caught_only_with(
        &scenario,
        Bugs {
            forget_remote_acceptance: true,
            ..Bugs::default()
        },
        Guarantee::NoDuplicates,
    );
}

#[test]
fn dropping_attempt_reports_is_found() {
    // Every attempt's results lost on the way back to the queue: the queue gives up
    // waiting at each attempt's deadline, and the drain checker names the attempt.
    let text = r#"
name = "attempt-reports"
duration_secs = 1200
drain_secs = 14400
[workload]
messages = 15
external_fraction = 0.5
"#;
    let scenario = Scenario::parse("attempt-reports.toml", text).expect("valid");
    caught_only_with(
        &scenario,
        Bugs {
            drop_attempt_report: true,
            ..Bugs::default()
        },
        Guarantee::Drained,
    );
}

#[test]
fn changing_a_message_after_signing_it_is_found() {
    // The scenario signs: without the bug every signature verifies, and something
    // was signed at all (a checker that sees no signature proves nothing).
    let scenario = scenario("dkim-signing");
    let clean = run(&scenario, 0, Bugs::default(), false);
    assert!(clean.dkim.signed > 0, "{:?}", clean.dkim);
    assert_eq!(clean.dkim.failed, 0, "{:?}", clean.dkim);
    caught_only_with(
        &scenario,
        Bugs {
            dkim_alter_after_signing: true,
            ..Bugs::default()
        },
        Guarantee::Dkim,
    );
}

#[test]
fn ignoring_the_path_rules_is_caught_by_the_delivery_paths_checker() {
    // Relay-ruled mail placed by the default policy goes straight to its domain's
    // MX: the checker sees it arrive somewhere its rule does not send it.
    caught_only_with(
        &scenario("relay-paths"),
        Bugs {
            ignore_path_rules: true,
            ..Bugs::default()
        },
        Guarantee::DeliveryPaths,
    );
}

#[test]
fn leaking_relay_credentials_is_caught_by_the_delivery_paths_checker() {
    // Every session given the smarthost's account, MX and trusted relay alike: the
    // checker sees credentials handed to a session for a server that has none.
    caught_only_with(
        &scenario("relay-paths"),
        Bugs {
            leak_relay_credentials: true,
            ..Bugs::default()
        },
        Guarantee::DeliveryPaths,
    );
}

// Retrieval: IMAP clients on the backend's mailboxes (`scenarios/retrieval.toml`),
// each checker shown catching its own planted bug.

#[test]
fn a_move_that_leaves_the_original_shows_a_message_twice() {
    // MOVE carried out as COPY: the next listing of INBOX still holds the copy
    // the client moved to Archive.
    caught_only_with(
        &scenario("retrieval"),
        Bugs {
            move_keeps_original: true,
            ..Bugs::default()
        },
        Guarantee::ImapExactlyOnce,
    );
}

#[test]
fn renumbering_a_folder_at_a_restart_reuses_uids() {
    // A restart that rebuilds the mailboxes numbers each folder from 1 again under
    // its old UIDVALIDITY: a UID the client saw expunged or moved names another
    // message afterwards.
    caught_only_with(
        &scenario("retrieval"),
        Bugs {
            renumber_uids_after_restart: true,
            ..Bugs::default()
        },
        Guarantee::ImapUids,
    );
}

#[test]
fn a_flag_change_answered_before_its_write_is_durable_is_found() {
    // STORE answered OK from a scratch copy while its write waits for the fsync:
    // a listing before the write lands, or after a crash lost it, lacks the flag.
    caught_only_with(
        &scenario("retrieval"),
        Bugs {
            ack_flags_before_durability: true,
            ..Bugs::default()
        },
        Guarantee::ImapFlagsDurable,
    );
}

#[test]
fn sessions_never_told_of_new_mail_leave_idle_clients_deaf() {
    caught_only_with(
        &scenario("retrieval"),
        Bugs {
            no_idle_push: true,
            ..Bugs::default()
        },
        Guarantee::ImapIdle,
    );
}
