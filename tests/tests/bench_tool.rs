//! `sluice-bench` itself works: a short run against the real binary, with and without
//! connection reuse and pipelining, delivers every message without an error. (Speed is
//! measured by tests/scripts/bench-vs-postfix.sh, never asserted.)

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::tools::run;
use std::time::Duration;

#[test]
fn sluice_bench_delivers_every_message() {
    let setup = ServerSetup {
        hostname: "mx.bench.test".to_owned(),
        domains: vec!["bench.test".to_owned()],
        users: vec![("bench@bench.test".to_owned(), "bench".to_owned())],
        ..ServerSetup::default()
    };
    let server = Server::start(&setup).unwrap();
    let address = server.address("mx").unwrap().to_string();
    let flag_sets: [&[&str]; 3] = [&[], &["--no-reuse"], &["--pipelining"]];
    for flags in flag_sets {
        let mut args = vec![
            "--server",
            &address,
            "--sessions",
            "4",
            "--messages",
            "40",
            "--size",
            "5120",
            "--histogram",
        ];
        args.extend_from_slice(flags);
        let finished = run(
            env!("CARGO_BIN_EXE_sluice-bench"),
            &args,
            None,
            Duration::from_secs(120),
        )
        .unwrap()
        .ok("sluice-bench")
        .unwrap();
        println!("{}", finished.stdout);
        let result = finished
            .stdout
            .lines()
            .find(|line| line.starts_with("RESULT "))
            .unwrap();
        assert!(result.contains(" ok=40 errors=0 "), "{flags:?}: {result}");
    }
}
