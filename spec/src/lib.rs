//! Sluice's conformance reference: SMTP, POP3 and IMAP dialogues written as vector files under
//! `spec/vectors/`, each tagged with the RFC requirement it proves, and the runner
//! that replays them against the server sessions on a virtual clock.
//!
//! - [`vector`]: the file format and its parser (spec/README.md documents it).
//! - [`runner`]: the replay, its strict matching and the byte-exact transcript.
//! - [`imap`]: the same replay for IMAP vectors (`vectors/imap/`), answering the
//!   session's mailbox requests from core's test store seeded by the vector.
//! - [`pop3`]: the same replay for POP3 vectors (`vectors/pop3/`), against the POP3 session.
//! - [`escape`]: the byte escapes shared by vectors and transcripts.

pub mod escape;
pub mod imap;
pub mod pop3;
pub mod runner;
pub mod vector;

pub use runner::{Failure, HOSTNAME, Outcome, run};
pub use vector::{Feed, LoadError, ParseError, Split, Vector, load_dir};

use std::path::PathBuf;

/// Where the vectors live in the source tree.
pub fn default_vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}
