//! The `sluice-sim` binary: a passing run prints its summary and exits 0; a failing
//! one prints the violation with the command that replays it and exits 1; replay
//! prints the same trace hash as run.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-sim"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout)
}

fn hash_line(text: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with("trace hash"))
        .map(str::to_owned)
}

#[test]
fn run_and_replay_agree_and_a_violation_prints_its_replay_command() {
    let scenario = "scenarios/happy-path.toml";
    let (code, out) = sim(&["run", "--scenario", scenario, "--seed", "4"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no-loss                  held"), "{out}");
    let (code, replayed) = sim(&["replay", "--scenario", scenario, "--seed", "4", "--trace"]);
    assert_eq!(code, 0);
    assert!(replayed.lines().count() > 100);
    assert_eq!(hash_line(&out), hash_line(&replayed));

    let (code, out) = sim(&[
        "run",
        "--scenario",
        "scenarios/permanent-failures-and-expiry.toml",
        "--seed",
        "0",
        "--bug",
        "skip-notice",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("VIOLATION seed=0"), "{out}");
    assert!(
        out.contains(
            "replay: sluice-sim replay --scenario scenarios/permanent-failures-and-expiry.toml --seed 0 --trace --bug skip-notice"
        ),
        "{out}"
    );
}

#[test]
fn a_sweep_reports_its_failing_seeds() {
    let (code, out) = sim(&[
        "sweep",
        "--scenario",
        "scenarios/permanent-failures-and-expiry.toml",
        "--seeds",
        "0..3",
        "--jobs",
        "2",
        "--bug",
        "skip-notice",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("failing seeds: 0 1 2"), "{out}");
    let (code, out) = sim(&[
        "sweep",
        "--scenario",
        "scenarios/happy-path.toml",
        "--seeds",
        "0..2",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all seeds passed"));
}
