//! What an IMAP session is configured with: its TLS situation, whether plaintext
//! logins are allowed, and its limits (every bound the session holds, with
//! RFC-derived defaults).

use crate::time::Duration;

/// The TLS situation of the connection when the session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// No certificate configured: STARTTLS is not offered.
    Unavailable,
    /// Plaintext now; STARTTLS offered (RFC 9051 §6.2.1).
    StartTlsOffered,
    /// The driver completed a TLS handshake before the greeting (port 993, RFC 8314).
    Implicit,
}

/// Everything a session needs to know before its greeting.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The name this server gives in its greeting.
    pub hostname: String,
    pub tls: TlsMode,
    /// Allow LOGIN and AUTHENTICATE without TLS (default false: RFC 9051 §6.2.3 says a
    /// server SHOULD refuse them, and advertises LOGINDISABLED). Tests and loopback
    /// deployments may switch it on.
    pub plaintext_auth: bool,
    pub limits: Limits,
}

impl SessionConfig {
    /// A configuration with default limits.
    pub fn new(hostname: impl Into<String>, tls: TlsMode) -> SessionConfig {
        SessionConfig {
            hostname: hostname.into(),
            tls,
            plaintext_auth: false,
            limits: Limits::default(),
        }
    }
}

/// Every bound an IMAP session keeps. Going over one is an explicit response, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest line in octets, CRLF included, whether a command line, the part of one
    /// between literals, or an AUTHENTICATE response. RFC 9051 §4 sets no limit but
    /// RFC 7162 §4 asks servers to take lines of at least 8192 octets. Default 64 KiB.
    pub line: usize,
    /// Largest command (its lines and literals together) other than APPEND's message.
    /// Default 256 KiB.
    pub command: usize,
    /// Largest message APPEND accepts, advertised as APPENDLIMIT (RFC 7889). Default 25 MiB.
    pub append_limit: u32,
    /// Unprocessed input held while the session waits for its driver (pipelined
    /// commands). Beyond it the session closes with BYE. Default 1 MiB.
    pub pipeline_buffer: usize,
    /// Syntax errors and commands in the wrong state tolerated before BYE. Default 20.
    pub bad_commands: u32,
    /// Failed LOGIN/AUTHENTICATE attempts tolerated before BYE. Default 3.
    pub auth_failures: u32,
    /// Mailboxes one LIST answer may hold; more are refused with NO \[LIMIT\]. Default 10,000.
    pub mailboxes: usize,
    /// Messages one selected mailbox may hold in the session's view. Default 1,000,000.
    pub messages: usize,
    /// The autologout timer: idle time before BYE, also while in IDLE (RFC 9051 §5.4:
    /// at least 30 minutes). Default 30 minutes.
    pub autologout: Duration,
    /// The autologout timer before authentication, shorter to shed idle probes. Default 1 minute.
    pub unauthenticated_timeout: Duration,
    /// Waiting for the driver to answer a credential check or a mailbox request. Default 2 minutes.
    pub driver_timeout: Duration,
    /// Messages whose metadata one FETCH or SEARCH asks the store for at a time.
    /// Their bytes are asked one message at a time, and each message's response is
    /// sent before the next is asked, so a FETCH or SEARCH over any number of
    /// messages holds at most this many metadata entries and one message (up to
    /// `append_limit` for mail added by APPEND). Default 256.
    pub fetch_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            line: 64 * 1024,
            command: 256 * 1024,
            append_limit: 25 * 1024 * 1024,
            pipeline_buffer: 1024 * 1024,
            bad_commands: 20,
            auth_failures: 3,
            mailboxes: 10_000,
            messages: 1_000_000,
            autologout: Duration::from_mins(30),
            unauthenticated_timeout: Duration::from_mins(1),
            driver_timeout: Duration::from_mins(2),
            fetch_batch: 256,
        }
    }
}
