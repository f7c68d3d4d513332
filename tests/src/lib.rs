//! End-to-end tests: the real Sluice binaries, started as processes, against real
//! clients and peers (Python's smtplib, swaks, curl, Postfix, clamd, HAProxy...).
//! Helpers shared by the test files live here; the tests are in `tests/tests/`.

use std::path::PathBuf;

/// The path of a binary built from this workspace, e.g. `sluice-conform`.
///
/// Cargo only exposes `CARGO_BIN_EXE_*` to tests of the crate that owns the binary,
/// so end-to-end tests find binaries next to their own executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}
