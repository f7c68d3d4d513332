//! What a server session is configured with: the listener kind, its TLS state,
//! and its limits (every bound the session holds, with RFC-derived defaults).

use crate::smtp::address::Domain;
use crate::time::Duration;

/// Which listener accepted the connection; it decides the protocol (SMTP or LMTP),
/// the capability list and whether MAIL requires authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Port 25: mail from other MTAs. No AUTH offered; relay is decided per recipient.
    Mx,
    /// Port 587 (STARTTLS) or 465 (implicit TLS): users submitting mail. MAIL requires AUTH.
    Submission,
    /// LMTP (RFC 2033): final delivery into this node's mailboxes from a gateway. LHLO
    /// replaces EHLO/HELO, and the end of data gets one reply per accepted recipient.
    /// Neither STARTTLS nor AUTH is offered, whatever `TlsMode` says: LMTP runs on a
    /// trusted network or loopback (RFC 2033 §1 — only by prior arrangement, never on
    /// port 25), where the gateway is the only client and the router already refuses
    /// every recipient that is not local.
    Lmtp,
}

/// The TLS situation of the connection when the session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// No certificate configured: STARTTLS is not offered.
    Unavailable,
    /// Plaintext now; STARTTLS offered (RFC 3207).
    StartTlsOffered,
    /// The driver completed a TLS handshake before the greeting (port 465, RFC 8314).
    Implicit,
}

/// Everything a server session needs to know before the greeting.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub kind: ListenerKind,
    /// The name this server gives in its greeting and EHLO reply.
    pub hostname: Domain,
    pub tls: TlsMode,
    /// Offer AUTH only once TLS is active (default true). Tests may switch it off.
    pub auth_requires_tls: bool,
    pub limits: Limits,
}

/// Every bound a server session keeps. Going over one is an explicit reply, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line in octets, CRLF included. RFC 5321 §4.5.3.1.4 sets 512 as the
    /// minimum; extensions (AUTH initial responses, DSN parameters) need more. Default 2048.
    pub command_line: usize,
    /// Longest line of message text in octets, CRLF included (RFC 5321 §4.5.3.1.6). Default 1000.
    pub text_line: usize,
    /// Recipients accepted per transaction; the next is answered 452 4.5.3 (RFC 5321 §4.5.3.1.8
    /// requires at least 100). Default 100.
    pub recipients: usize,
    /// Largest message in octets, advertised as SIZE (RFC 1870); over it, 552 5.3.4. Default 25 MiB.
    pub message_size: u64,
    /// Syntax errors and out-of-sequence commands tolerated before 421 and disconnect. Default 10.
    pub bad_commands: u32,
    /// Failed AUTH attempts tolerated before 421 and disconnect. Default 3.
    pub auth_failures: u32,
    /// Transactions (MAIL commands) per connection before 421. Default 100.
    pub transactions: u32,
    /// Unprocessed input held while the session waits for an answer from its driver
    /// (pipelined commands, BDAT chunks). Above it the session stops asking for input;
    /// input beyond twice it is a protocol violation (421). Default 1 MiB.
    pub pipeline_buffer: usize,
    /// Waiting for the next command (RFC 5321 §4.5.3.2.7: 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for the next block of message data (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_block_timeout: Duration,
    /// Waiting for the driver to make an accepted message durable; the client gives up
    /// 10 minutes after its final dot (RFC 5321 §4.5.3.2.6), so must we. Default 10 minutes.
    pub durable_timeout: Duration,
    /// Waiting for the driver to answer a recipient or credential check. Default 2 minutes.
    pub lookup_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_line: 2048,
            text_line: 1000,
            recipients: 100,
            message_size: 25 * 1024 * 1024,
            bad_commands: 10,
            auth_failures: 3,
            transactions: 100,
            pipeline_buffer: 1024 * 1024,
            command_timeout: Duration::from_mins(5),
            data_block_timeout: Duration::from_mins(3),
            durable_timeout: Duration::from_mins(10),
            lookup_timeout: Duration::from_mins(2),
        }
    }
}
