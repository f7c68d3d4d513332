//! `sluice-conform`: replays the conformance vectors against the server sessions
//! (in process, by default) or against a live server's address (`--connect`), and
//! says, vector by vector, whether the server does what the RFCs require.

use anyhow::Context;
use clap::Parser;
use sluice_spec::live::{self, LiveOptions, LiveResult};
use sluice_spec::{Feed, SearchFrom, Vector, find_vectors_dir, load_dir, run};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Replay Sluice's SMTP, LMTP, POP3 and IMAP conformance vectors.
#[derive(Debug, Parser)]
#[command(name = "sluice-conform")]
struct Args {
    /// The directory of `.vector` files (searched recursively). Default: the
    /// SLUICE_CONFORM_VECTORS variable, else `spec/vectors` under the current
    /// directory or a parent, else `../share/sluice/vectors` from the executable.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Only vectors whose file name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Print the transcript of every vector replayed.
    #[arg(long)]
    verbose: bool,
    /// Feed client bytes one per input instead of as written (vectors that pin
    /// their split keep it). In process only.
    #[arg(long)]
    byte_at_a_time: bool,
    /// TCP mode: replay to a live server at this address instead of in process.
    #[arg(long, value_name = "ADDRESS:PORT")]
    connect: Option<SocketAddr>,
    /// TCP mode: which vectors to replay (smtp, lmtp, pop3, imap).
    #[arg(long, requires = "connect")]
    protocol: Option<String>,
    /// TCP mode: only the vectors of this listener (mx, submission, submissions,
    /// lmtp, pop3, pop3s, imap, imaps).
    #[arg(long, requires = "connect")]
    listener: Option<String>,
    /// TCP mode: `implicit` to start TLS on connecting (ports 465, 993, 995).
    #[arg(long, requires = "connect", value_parser = ["implicit"])]
    tls: Option<String>,
    /// TCP mode: a real account's user name, used where vectors log in as alice.
    #[arg(long, requires_all = ["connect", "password"])]
    user: Option<String>,
    /// TCP mode: that account's password, used where vectors send `secret`.
    #[arg(long, requires_all = ["connect", "user"])]
    password: Option<String>,
    /// TCP mode: seconds to wait for the connection and for each server line.
    #[arg(long, default_value_t = 10, requires = "connect")]
    timeout: u64,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let dir = find_vectors_dir(&SearchFrom::process(args.vectors.clone()))?;
    let vectors =
        load_dir(&dir).with_context(|| format!("loading vectors from {}", dir.display()))?;
    let selected: Vec<&Vector> = vectors
        .iter()
        .filter(|vector| {
            args.filter
                .as_deref()
                .is_none_or(|filter| vector.name().contains(filter))
        })
        .collect();
    match args.connect {
        Some(address) => live_mode(&args, address, &selected),
        None => Ok(in_process(&args, &selected)),
    }
}

fn in_process(args: &Args, vectors: &[&Vector]) -> ExitCode {
    let feed = if args.byte_at_a_time {
        Feed::ByteAtATime
    } else {
        Feed::AsWritten
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for vector in vectors {
        let outcome = run(vector, feed);
        let proves = vector.proves.join("; ");
        if outcome.passed() {
            passed += 1;
            println!("ok    {}  ({proves})", vector.name());
        } else {
            failed += 1;
            println!("FAIL  {}  ({proves})", vector.name());
            if let Some(reason) = &vector.known_discrepancy {
                println!("      known discrepancy: {reason}");
            }
            for failure in &outcome.failures {
                println!(
                    "      {}:{}: {}",
                    vector.path.display(),
                    failure.line,
                    failure.message
                );
            }
        }
        if args.verbose {
            for line in outcome.transcript.lines() {
                println!("      | {line}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn live_mode(args: &Args, address: SocketAddr, vectors: &[&Vector]) -> anyhow::Result<ExitCode> {
    let Some(protocol) = args.protocol.clone() else {
        anyhow::bail!("--connect needs --protocol smtp|lmtp|pop3|imap");
    };
    let options = LiveOptions {
        address,
        protocol,
        listener: args.listener.clone(),
        implicit_tls: args.tls.is_some(),
        account: args.user.clone().zip(args.password.clone()),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    live::validate(&options).map_err(anyhow::Error::msg)?;
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for vector in vectors
        .iter()
        .filter(|vector| live::selects(&options, vector))
    {
        let outcome = live::run_one(vector, &options);
        match &outcome.result {
            LiveResult::Passed => {
                passed += 1;
                println!("ok    {}", outcome.name);
            }
            LiveResult::Skipped(reason) => {
                skipped += 1;
                println!("skip  {}: {reason}", outcome.name);
            }
            LiveResult::Failed(failure) => {
                failed += 1;
                println!("FAIL  {}", outcome.name);
                println!(
                    "      {}:{}: {}",
                    vector.path.display(),
                    failure.line,
                    failure.message
                );
            }
        }
        let failed_now = matches!(outcome.result, LiveResult::Failed(_));
        if args.verbose || failed_now {
            for line in outcome.transcript.lines() {
                println!("      | {line}");
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
