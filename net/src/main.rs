//! The `sluice` binary.

use clap::Parser;

/// Sluice, an enterprise mail system.
///
/// This build holds the core machines only; `sluice serve` comes with the
/// production listeners. Run `sluice-conform` to check the SMTP session
/// against the conformance vectors.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!(
        "sluice {}: no subcommands yet; see README.md for the status",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
