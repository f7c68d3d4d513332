//! What a POP3 session is configured with: its host name, its TLS situation,
//! whether passwords may cross in plaintext, and its limits (every bound it keeps,
//! with RFC-derived defaults).

use crate::smtp::address::Domain;
use crate::time::Duration;

/// The TLS situation when the session starts: the same three cases as SMTP's
/// listeners (no certificate, STLS offered on port 110, implicit TLS on port 995).
pub use crate::smtp::server::TlsMode;

/// Everything a POP3 session needs to know before its greeting.
#[derive(Clone, Debug)]
pub struct Pop3Config {
    /// The name this server gives in its greeting and sign-off.
    pub hostname: Domain,
    /// `Implicit` for the POP3S port (RFC 8314): the session starts as TLS.
    pub tls: TlsMode,
    /// Accept USER/PASS and AUTH before TLS. Default false (RFC 8314 §3.3): a
    /// password never crosses the network in clear; tests and trusted loopback
    /// setups may switch it on.
    pub allow_plaintext_auth: bool,
    pub limits: Limits,
}

/// Every bound a POP3 session keeps. Going over one is an explicit `-ERR`, or a
/// close after one, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line in octets, CRLF included. RFC 2449 §4: 255. Default 255.
    pub command_line: usize,
    /// Longest AUTH response line in octets, CRLF included: RFC 5034 §4 lifts the
    /// command-line limit for them, but a bound is still kept. Default 2048.
    pub auth_line: usize,
    /// Unknown, malformed and out-of-state commands tolerated before `-ERR` and close. Default 10.
    pub bad_commands: u32,
    /// Failed logins tolerated before `-ERR` and close. Default 3.
    pub auth_failures: u32,
    /// Messages a maildrop may list; a larger one is refused with `[SYS/PERM]`, so
    /// that the session's listing stays bounded. Default 100,000.
    pub maildrop_messages: usize,
    /// Unprocessed client input held while the session waits for its driver
    /// (pipelined commands, RFC 2449 PIPELINING). Above it the session stops asking
    /// for input; beyond twice it, `-ERR` and close. Default 64 KiB.
    pub pipeline_buffer: usize,
    /// The autologout timer: no command for this long closes the connection without
    /// entering UPDATE. RFC 1939 §3 asks for at least 10 minutes. Default 10 minutes.
    pub idle_timeout: Duration,
    /// Waiting for the driver: a credential check, opening the maildrop, the next
    /// chunk of a message being read, committing deletions. Default 2 minutes.
    pub driver_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_line: 255,
            auth_line: 2048,
            bad_commands: 10,
            auth_failures: 3,
            maildrop_messages: 100_000,
            pipeline_buffer: 64 * 1024,
            idle_timeout: Duration::from_mins(10),
            driver_timeout: Duration::from_mins(2),
        }
    }
}
