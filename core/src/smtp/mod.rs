//! SMTP: the grammar of commands and replies, and the server and client session machines.
//!
//! - [`address`]: mailboxes, local parts, domains and address literals (RFC 5321 §4.1.2, RFC 6531).
//! - [`xtext`]: the xtext encoding of DSN and AUTH parameter values (RFC 3461 §4).
//! - [`params`]: MAIL and RCPT parameters: SIZE, BODY, SMTPUTF8, DSN, AUTH=.
//! - [`command`]: parsing and serialising command lines (RFC 5321 §4.1).
//! - [`reply`]: replies, multi-line replies and enhanced status codes (RFC 5321 §4.2, RFC 2034, RFC 3463).
//! - [`received`]: the Received trace header field of an accepted message (RFC 5321 §4.4, RFC 3848).
//! - [`server`]: the server session machine (MX and submission listeners, and LMTP).
//! - [`client`]: the SMTP and LMTP client session machine (one outbound connection).
//!
//! Parsers take raw bytes and never panic; serialisers produce the normalised form,
//! so that `serialize(parse(x))` is `x` normalised and `parse(serialize(v)) == v`.

pub mod address;
pub mod client;
pub mod command;
pub mod params;
pub mod received;
pub mod reply;
pub mod server;
pub mod xtext;
