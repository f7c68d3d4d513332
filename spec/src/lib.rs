//! Sluice's conformance reference: SMTP, POP3 and IMAP dialogues written as vector files under
//! `spec/vectors/`, each tagged with the RFC requirement it proves, and the runner
//! that replays them against the server sessions on a virtual clock.
//!
//! - [`vector`]: the file format and its parser (spec/README.md documents it).
//! - `replay`: the replay all protocols share, its strict matching and the
//!   byte-exact transcript; each protocol supplies only its session's part.
//! - [`runner`]: the entry point, and SMTP's and LMTP's part of the replay.
//! - [`imap`]: the same replay for IMAP vectors (`vectors/imap/`), answering the
//!   session's mailbox requests from core's test store seeded by the vector.
//! - [`pop3`]: the same replay for POP3 vectors (`vectors/pop3/`), against the POP3 session.
//! - [`escape`]: the byte escapes shared by vectors and transcripts.
//! - [`locate`]: where the vector folder is, found at run time.
//! - [`live`]: TCP mode, the vectors replayed against a live server.

pub mod escape;
pub mod imap;
pub mod live;
pub mod locate;
pub mod pop3;
mod replay;
pub mod runner;
pub mod vector;

pub use locate::{SearchFrom, VECTORS_ENV, default_vectors_dir, find_vectors_dir};
pub use runner::{Failure, HOSTNAME, Outcome, run};
pub use vector::{Feed, LoadError, ParseError, Split, Vector, load_dir};
