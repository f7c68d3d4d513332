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
