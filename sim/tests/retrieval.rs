//! Retrieval in the simulator: the IMAP clients of `scenarios/retrieval.toml` do
//! what the checkers judge (a checker over nothing proves nothing), through
//! crashes of the host that holds the mailboxes, and every retrieval guarantee
//! holds.

use sluice_sim::check::Guarantee;
use sluice_sim::host::Bugs;
use sluice_sim::run::run;
use sluice_sim::scenario::Scenario;
use std::path::PathBuf;

fn scenario(name: &str) -> Scenario {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&file).expect("a valid scenario")
}

#[test]
fn the_clients_list_flag_move_expunge_and_idle_through_crashes() {
    let scenario = scenario("retrieval");
    let result = run(&scenario, 3, Bugs::default(), false);
    assert!(result.passed(), "{:#?}", result.violations);
    for guarantee in [
        Guarantee::ImapExactlyOnce,
        Guarantee::ImapUids,
        Guarantee::ImapFlagsDurable,
        Guarantee::ImapIdle,
    ] {
        assert!(
            result.checked.contains(&guarantee),
            "{guarantee:?} not checked"
        );
    }
    let imap = result.retrieval;
    let clients = u64::from(scenario.retrieval.clients);
    assert!(
        imap.logins > clients,
        "no client logged in again after a crash: {imap:?}"
    );
    assert!(imap.listings > 0 && imap.flags > 0, "{imap:?}");
    assert!(imap.moves > 0 && imap.expunges > 0, "{imap:?}");
    assert!(imap.idles > 0 && imap.idle_exists > 0, "{imap:?}");
    assert!(
        result.faults.get("host_crash").copied().unwrap_or(0) > 0,
        "{:?}",
        result.faults
    );
}

#[test]
fn without_the_section_no_client_runs_and_no_retrieval_guarantee_is_checked() {
    let mut scenario = scenario("retrieval");
    scenario.retrieval.clients = 0;
    let result = run(&scenario, 3, Bugs::default(), false);
    assert_eq!(result.retrieval, Default::default());
    assert!(!result.checked.contains(&Guarantee::ImapExactlyOnce));
}

mod random_mixes {
    use super::*;
    use proptest::prelude::*;

    /// A small random fault mix with IMAP clients on the mailbox host.
    fn scenario_text(gateways: u32, fractions: [u8; 4], counts: [u8; 4]) -> String {
        let f = |index: usize| f64::from(fractions[index]) / 1000.0;
        format!(
            r#"
name = "random-retrieval"
duration_secs = 900
drain_secs = 3600
[topology]
gateways = {gateways}
users = 3
[workload]
messages = 30
max_recipients = 2
external_fraction = 0.1
[network]
reset = {}
loss = {}
partitions = {}
[disk]
fsync_ms_max = 500
error = {}
full_windows = {}
[crashes]
gateway = {}
backend = {}
silent = {}
restart_secs_max = 60
[retrieval]
clients = 3
think_secs_max = 10
idle_secs_max = 120
[guarantees]
drained = false
"#,
            f(0) / 10.0,
            f(1) / 4.0,
            counts[0],
            f(2) / 4.0,
            counts[1],
            counts[2],
            counts[3],
            f(3),
        )
    }

    proptest! {
        // Fewer mixes than the safety property of `random_scenarios.rs`: each run
        // carries IMAP sessions through the whole drain.
        #![proptest_config(ProptestConfig {
            cases: 16,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_fault_mix_keeps_the_retrieval_guarantees(
            gateways in 0u32..3,
            fractions in proptest::array::uniform4(0u8..=200),
            counts in proptest::array::uniform4(0u8..4),
            seed in any::<u64>(),
        ) {
            let text = scenario_text(gateways, fractions, counts);
            let scenario = Scenario::parse("random-retrieval.toml", &text).expect("valid");
            let result = run(&scenario, seed, Bugs::default(), false);
            let violations: Vec<_> = result
                .violations
                .iter()
                .filter(|violation| violation.guarantee != Guarantee::Availability)
                .collect();
            prop_assert!(violations.is_empty(), "seed {}: {:?}\n{}", seed, violations, text);
        }
    }
}
