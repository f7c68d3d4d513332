//! The `sluice-sim` binary.

use clap::Parser;

/// Sluice's deterministic simulator (arrives with the simulator issue).
#[derive(Debug, Parser)]
#[command(name = "sluice-sim", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!(
        "sluice-sim {}: not built yet; see README.md for the status",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
