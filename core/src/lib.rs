//! Sluice's core: every decision about mail, as pure deterministic state machines.
//!
//! Nothing here performs I/O, reads a clock or draws OS randomness. Drivers in
//! `sluice-net` (tokio, real sockets and disks) and `sluice-sim` (the seeded
//! simulator) feed machines their inputs and carry out their outputs; see
//! [`machine`] for the contract every machine follows.
//!
//! Modules:
//! - [`time`]: `Instant` and `Duration` on a caller-defined epoch.
//! - [`login`]: login failures counted and slowed per user and client address, for every protocol; the audit record of each login.
//! - [`machine`]: the `handle` / `poll` / `next_deadline` contract and request tokens.
//! - [`delivery`]: delivery paths and destinations, and what an attempt learned per recipient.
//! - [`queue`]: the queue machine: durable per-recipient state, the retry schedule, expiry, delay/failure/success notices due.
//! - [`notice`]: delivery status notifications (RFC 3464, RFC 3461).
//! - [`directory`]: what the user directory answers to the router's lookups.
//! - [`node`]: a node's wiring: the reception machine per connection and the record of an accepted message.
//! - [`imap`]: the IMAP server session machine (RFC 9051) and its interface to the mailbox store.
//! - [`message`]: a stored message as IMAP reads it: ENVELOPE, BODYSTRUCTURE, sections, BINARY, SEARCH matching.
//! - [`mailbox`]: the mailbox model, the reference semantics of mail storage (folders, UIDs, flags, idempotent delivery).
//! - [`smtp`]: the SMTP grammar (RFC 5321 and its extensions), the server session machine and the SMTP/LMTP client session machine.
//! - [`pop3`]: the POP3 server session machine (RFC 1939, CAPA, STLS, AUTH PLAIN).
//! - [`sasl`]: credentials and the PLAIN decoding shared by SMTP AUTH and POP3.
//! - [`router`]: the router machine: each recipient to local mailboxes, expanded lists, external addresses or a refusal.
//! - [`proxy`]: the HAProxy PROXY protocol v1 and v2 header parser for listeners behind a load balancer.
//! - `fuzzing` (only with the `fuzzing` feature, for the fuzz crate and core's tests): the
//!   bodies of the fuzz targets, shared with the corpus regression tests.
//!
//! Still to come (docs/ARCHITECTURE.md lists them): the filter pipeline, the
//! delivery-path selector, the replica, and the IMAP session's FETCH and SEARCH.

#![forbid(unsafe_code)]

pub mod delivery;
pub mod directory;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod imap;
mod line;
pub mod login;
pub mod machine;
pub mod mailbox;
pub mod message;
pub mod node;
pub mod notice;
pub mod pop3;
pub mod proxy;
pub mod queue;
pub mod router;
pub mod sasl;
pub mod smtp;
pub mod time;
