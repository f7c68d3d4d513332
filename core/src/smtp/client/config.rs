//! What a client session is configured with: who we are, which protocol we speak,
//! what we demand of TLS, whom we are talking to, how we authenticate to a relay that
//! wants it, and every bound and timeout the session keeps (RFC 5321 §4.5.3.2
//! timeouts as defaults).

use crate::delivery::TlsPolicy;
use crate::smtp::address::Domain;
use crate::time::Duration;

/// The dialect of the conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SMTP (RFC 5321): EHLO with HELO fallback, one final reply per message.
    #[default]
    Smtp,
    /// LMTP (RFC 2033): LHLO, no HELO fallback, one final reply per accepted recipient.
    Lmtp,
}

/// Everything a client session needs before the server's greeting.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The name we give in EHLO, LHLO or HELO.
    pub hostname: Domain,
    pub protocol: Protocol,
    pub tls: TlsPolicy,
    /// The name of the host the driver connected to: the STARTTLS server name to
    /// verify, and the `Remote-MTA` of every result this session reports.
    pub remote_host: String,
    /// Credentials for a relay that requires AUTH (RFC 4954); `None`: no AUTH.
    pub auth: Option<ClientAuth>,
    pub limits: Limits,
}

/// How the session authenticates after EHLO: AUTH PLAIN, or AUTH LOGIN where the
/// server offers only that. Ordered so that drivers can key pooled connections on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientAuth {
    pub username: String,
    pub password: Password,
    /// AUTH may be sent on a connection without TLS. Off unless the path says so: the
    /// credentials would cross the network readable by anyone on the way.
    pub plaintext_allowed: bool,
}

/// A password that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    /// The password itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Every bound a client session keeps. Going over one ends the session with a
/// session-level failure (a reply) or a per-recipient result, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest reply line in octets, without CRLF. RFC 5321 §4.5.3.1.5 sets 512 with
    /// CRLF; real servers exceed it in EHLO lists and long texts. Default 2048.
    pub reply_line: usize,
    /// Most lines in one reply (an EHLO list is the longest in practice). Default 100.
    pub reply_lines: usize,
    /// Recipients sent in one transaction; RFC 5321 §4.5.3.1.8 has servers take at
    /// least 100. Further recipients get a temporary 4.5.3 result and wait for the
    /// next attempt. Default 100.
    pub recipients: usize,
    /// Octets of message data per write (DATA) or per BDAT chunk (RFC 3030). Default 64 KiB.
    pub data_block: usize,
    /// Waiting for the 220 greeting (RFC 5321 §4.5.3.2.1: 5 minutes).
    pub greeting_timeout: Duration,
    /// Waiting for the reply to EHLO, HELO, STARTTLS, MAIL, RCPT or RSET
    /// (RFC 5321 §4.5.3.2.2 and §4.5.3.2.3: 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for the 354 reply to DATA (RFC 5321 §4.5.3.2.4: 2 minutes).
    pub data_initiation_timeout: Duration,
    /// Waiting for a block of data to be written, or for the reply to a non-final BDAT
    /// chunk (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_block_timeout: Duration,
    /// Waiting for the reply to the final "." or BDAT LAST (RFC 5321 §4.5.3.2.6: 10 minutes).
    pub data_termination_timeout: Duration,
    /// Waiting for the TLS handshake the session asked for. Default 2 minutes.
    pub tls_handshake_timeout: Duration,
    /// Waiting for the reply to QUIT; the session is over either way. Default 30 seconds.
    pub quit_timeout: Duration,
    /// Waiting for the driver's next message while idle, before saying QUIT; servers
    /// drop idle clients after 5 minutes anyway (RFC 5321 §4.5.3.2.7). Default 1 minute.
    pub idle_timeout: Duration,
}

/// Sessions an attempt is budgeted for: its walk may try several addresses, each
/// with the whole of its timeouts.
const SESSIONS_PER_ATTEMPT: u64 = 4;

impl Limits {
    /// The longest one message's session can take while every step makes progress
    /// within its timeout: greeting, EHLO, STARTTLS with its handshake and EHLO again,
    /// AUTH, MAIL, RCPT, DATA, a data block, the final reply and QUIT.
    pub fn session_budget(&self) -> Duration {
        self.greeting_timeout
            + self.command_timeout.saturating_mul(6)
            + self.tls_handshake_timeout
            + self.data_initiation_timeout
            + self.data_block_timeout
            + self.data_termination_timeout
            + self.quit_timeout
    }

    /// How long a delivery attempt may take before the queue stops waiting for its
    /// result ([`crate::queue::QueueLimits::attempt_timeout`]): a few whole sessions.
    pub fn attempt_budget(&self) -> Duration {
        self.session_budget().saturating_mul(SESSIONS_PER_ATTEMPT)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reply_line: 2048,
            reply_lines: 100,
            recipients: 100,
            data_block: 64 * 1024,
            greeting_timeout: Duration::from_mins(5),
            command_timeout: Duration::from_mins(5),
            data_initiation_timeout: Duration::from_mins(2),
            data_block_timeout: Duration::from_mins(3),
            data_termination_timeout: Duration::from_mins(10),
            tls_handshake_timeout: Duration::from_mins(2),
            quit_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_mins(1),
        }
    }
}
