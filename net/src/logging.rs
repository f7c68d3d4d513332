//! Logging setup: tracing to stderr, human-readable lines or JSON objects, filtered
//! by the configured level unless RUST_LOG says otherwise. Stdout stays free for the
//! lines scripts read (`listening ...`, `ready`, command output).

use crate::config::LogFormat;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) is ignored.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // Already installed: keep the first subscriber.
    drop(installed);
}
