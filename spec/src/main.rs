//! `sluice-conform`: replays the conformance vectors against the server sessions and
//! says, vector by vector, whether Sluice does what the RFCs require.

use anyhow::Context;
use clap::Parser;
use sluice_spec::{Feed, default_vectors_dir, load_dir, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// Replay Sluice's SMTP, LMTP and POP3 conformance vectors.
#[derive(Debug, Parser)]
#[command(name = "sluice-conform")]
struct Args {
    /// The directory of `.vector` files (searched recursively).
    #[arg(long, default_value_os_t = default_vectors_dir())]
    vectors: PathBuf,
    /// Only vectors whose file name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Print the transcript of every vector replayed.
    #[arg(long)]
    verbose: bool,
    /// Feed client bytes one per input instead of as written (vectors that pin
    /// their split keep it).
    #[arg(long)]
    byte_at_a_time: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let vectors = load_dir(&args.vectors)
        .with_context(|| format!("loading vectors from {}", args.vectors.display()))?;
    let feed = if args.byte_at_a_time {
        Feed::ByteAtATime
    } else {
        Feed::AsWritten
    };

    let (mut passed, mut failed) = (0usize, 0usize);
    for vector in &vectors {
        if args
            .filter
            .as_deref()
            .is_some_and(|filter| !vector.name().contains(filter))
        {
            continue;
        }
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
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
