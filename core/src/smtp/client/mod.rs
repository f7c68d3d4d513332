//! The SMTP and LMTP client session machine: one connection to one host, the whole
//! dialogue of one delivery attempt (greeting, EHLO/LHLO with HELO fallback,
//! STARTTLS, then one transaction per message), and a result per recipient.
//!
//! The driver opens the connection and creates the session; it may give the first
//! message at once. The session asks for each further message with [`Output::Ready`]
//! and the driver answers [`Input::Message`] or [`Input::Finish`]; each message comes
//! back as exactly one [`Output::Report`] (one outcome per recipient), and the session
//! ends with exactly one [`Output::Close`] naming its [`SessionOutcome`]. Between
//! messages it says RSET only when a transaction was left open (RFC 5321 §4.1.1.5).
//!
//! Outcomes keep two things apart: [`RecipientOutcome::Final`] is the server's answer
//! (RCPT refused, the reply after the data) or our refusal before sending, final for
//! this attempt; [`RecipientOutcome::Unresolved`] means the session failed first
//! (greeting or HELO refused, a 421, a lost connection, a timeout before the final
//! reply, garbage, TLS required but missing) and the next MX host should be tried.
//!
//! Extensions: PIPELINING (RFC 2920: MAIL, every RCPT and DATA in one write, replies
//! read in order), SIZE (RFC 1870: a message over the limit is refused 5.3.4 before
//! MAIL), 8BITMIME (RFC 6152: an 8-bit body to a server without it fails 5.6.3 — there
//! is no MIME downgrade), SMTPUTF8 (RFC 6531 §3.4: a UTF-8 envelope to a server
//! without it fails 5.6.7), DSN (RFC 3461: RET/ENVID/NOTIFY/ORCPT only when offered),
//! CHUNKING (RFC 3030: BDAT in chunks of `Limits::data_block`, no dot-stuffing) and
//! STARTTLS (RFC 3207, as [`TlsPolicy`] says), AUTH PLAIN and LOGIN to a relay that
//! wants credentials (RFC 4954, see the `auth` module). The body is always sent CRLF-clean:
//! bare CR and LF become CRLF and the body ends in CRLF (see the `body` module).
//!
//! Deadlines are RFC 5321 §4.5.3.2's, from [`Limits`]: each restarts on progress (a
//! reply, a write of data). A body is streamed one block per [`Input::Written`].

pub mod config;
pub mod event;
pub mod io;
pub mod message;

mod auth;
mod body;
mod capabilities;
mod envelope;
mod hello;
mod replies;
mod transaction;

pub use config::{ClientAuth, ClientConfig, Limits, Password, Protocol};
pub use event::ClientEvent;
pub use io::{
    Input, MessageReport, Output, RecipientOutcome, SessionFailure, SessionFailureKind,
    SessionOutcome, TransactionProgress,
};
pub use message::{OutgoingMessage, OutgoingRecipient};

use crate::delivery::{Failure, RecipientResult, TlsPolicy};
use crate::machine::Machine;
use crate::smtp::reply::{EnhancedStatus, Reply, ReplyCode};
use crate::time::Instant;
use capabilities::Capabilities;
use replies::{ReplyReader, local_failure};
use std::collections::VecDeque;
use transaction::Transaction;

/// One client session over one connection. Create it once the connection is open.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    outputs: VecDeque<Output>,
    replies: ReplyReader,
    phase: Phase,
    /// When the session gives up waiting; `None` once closed.
    deadline: Option<Instant>,
    capabilities: Capabilities,
    tls_active: bool,
    /// The next message, given by the driver and not yet started.
    queued: Option<OutgoingMessage>,
    transaction: Option<Transaction>,
    /// A MAIL was accepted and its transaction did not end with the data: RSET first.
    needs_reset: bool,
    /// The driver said [`Input::Finish`].
    finishing: bool,
}

/// What the session is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    /// The reply to EHLO or LHLO, or (`fallback`) to HELO.
    Hello {
        fallback: bool,
    },
    StartTls,
    TlsHandshake,
    /// An AUTH dialogue with a relay (RFC 4954).
    Auth(auth::AuthStep),
    /// No transaction: waiting for the driver's next message.
    Idle,
    Reset,
    Transaction,
    Quit,
    Closed,
}

impl ClientSession {
    /// A session on a freshly opened connection; it waits for the greeting.
    pub fn new(now: Instant, config: ClientConfig) -> ClientSession {
        let deadline = Some(now + config.limits.greeting_timeout);
        let replies = ReplyReader::new(&config.limits);
        ClientSession {
            config,
            outputs: VecDeque::new(),
            replies,
            phase: Phase::Greeting,
            deadline,
            capabilities: Capabilities::default(),
            tls_active: false,
            queued: None,
            transaction: None,
            needs_reset: false,
            finishing: false,
        }
    }

    /// Whether the session has finished (after [`Output::Close`]).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Server bytes held that are not yet a whole reply. For the property tests of the
    /// memory bound.
    #[doc(hidden)]
    pub fn buffered_bytes(&self) -> usize {
        self.replies.len()
    }

    // Outputs.

    fn send(&mut self, bytes: Vec<u8>) {
        self.outputs.push_back(Output::Send(bytes));
    }

    fn send_line(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(bytes);
    }

    fn event(&mut self, event: ClientEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn remote(&self) -> &str {
        &self.config.remote_host
    }

    /// Reports a message that was never attempted: every recipient unresolved.
    fn report_unattempted(&mut self, message: OutgoingMessage, failure: Failure) {
        self.report(MessageReport::unattempted(&message, &failure));
    }

    fn report(&mut self, report: MessageReport) {
        let count = |wanted: fn(&RecipientOutcome) -> bool| {
            report.recipients.iter().filter(|o| wanted(o)).count()
        };
        let event = ClientEvent::MessageFinished {
            queue_id: report.queue_id.clone(),
            delivered: count(|o| {
                matches!(
                    o,
                    RecipientOutcome::Final(RecipientResult::Delivered { .. })
                )
            }),
            temporary: count(|o| {
                matches!(o, RecipientOutcome::Final(RecipientResult::Temporary(_)))
            }),
            permanent: count(|o| {
                matches!(o, RecipientOutcome::Final(RecipientResult::Permanent(_)))
            }),
            unresolved: count(|o| matches!(o, RecipientOutcome::Unresolved(_))),
        };
        self.outputs.push_back(Output::Report(report));
        self.event(event);
    }

    fn close(&mut self, outcome: SessionOutcome) {
        self.outputs.push_back(Output::Close(outcome));
        self.phase = Phase::Closed;
        self.deadline = None;
        self.replies.clear();
    }

    /// Ends the session on a session-level failure: the transaction in progress and the
    /// queued message are reported with every unanswered recipient unresolved. `polite`
    /// says QUIT first, when the server is still in step with us (it refused, it did
    /// not break).
    fn fail(&mut self, kind: SessionFailureKind, failure: Failure, polite: bool) {
        self.fail_with(kind, failure, polite, false);
    }

    fn fail_with(
        &mut self,
        kind: SessionFailureKind,
        failure: Failure,
        polite: bool,
        retry_without_tls: bool,
    ) {
        if self.is_closed() {
            return;
        }
        self.event(ClientEvent::SessionFailed { kind });
        if let Some(transaction) = self.transaction.take() {
            let report = transaction.into_report(&failure);
            self.report(report);
        }
        if let Some(message) = self.queued.take() {
            self.report_unattempted(message, failure.clone());
        }
        if polite {
            self.send_line("QUIT");
        }
        let failure = SessionFailure { kind, failure };
        self.close(if retry_without_tls {
            SessionOutcome::RetryWithoutTls(failure)
        } else {
            SessionOutcome::Failed(failure)
        });
    }

    /// A session failure whose cause is a text of ours rather than a reply.
    fn fail_locally(&mut self, kind: SessionFailureKind, status: EnhancedStatus, text: &str) {
        let failure = local_failure(status, None, text);
        self.fail(kind, failure, false);
    }

    fn protocol_violation(&mut self, text: &str) {
        self.fail_locally(
            SessionFailureKind::ProtocolViolation,
            EnhancedStatus::new(4, 5, 0),
            text,
        );
    }

    // The connection between transactions.

    /// Starts whatever comes next once no transaction is in progress: RSET then the
    /// queued message, the queued message, QUIT, or asking the driver for a message.
    fn start_next(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        if let Some(message) = self.queued.take() {
            if self.needs_reset {
                self.queued = Some(message);
                self.send_line("RSET");
                self.phase = Phase::Reset;
                self.deadline = Some(now + self.config.limits.command_timeout);
            } else {
                self.begin_transaction(now, message);
            }
        } else if self.finishing {
            self.send_line("QUIT");
            self.phase = Phase::Quit;
            self.deadline = Some(now + self.config.limits.quit_timeout);
        } else {
            self.outputs.push_back(Output::Ready);
            self.deadline = Some(now + self.config.limits.idle_timeout);
        }
    }

    fn on_message(&mut self, now: Instant, message: OutgoingMessage) {
        if matches!(self.phase, Phase::Quit | Phase::Closed) || self.finishing {
            let failure = local_failure(
                EnhancedStatus::new(4, 4, 2),
                None,
                "not attempted: the connection was ending",
            );
            return self.report_unattempted(message, failure);
        }
        if self.queued.is_some() {
            let failure = local_failure(
                EnhancedStatus::new(4, 3, 0),
                None,
                "not attempted: another message was already waiting on this connection",
            );
            return self.report_unattempted(message, failure);
        }
        self.queued = Some(message);
        if self.phase == Phase::Idle {
            self.start_next(now);
        }
    }

    // Input.

    fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::TlsHandshake {
            // Plaintext after the STARTTLS reply would be read as if it came through
            // TLS: the response-injection class of CVE-2011-0411.
            return self.protocol_violation("plaintext received during the TLS handshake");
        }
        self.replies.push(bytes);
        while !self.is_closed() {
            match self.replies.next_reply() {
                Ok(Some(reply)) => self.on_reply(now, reply),
                Ok(None) => break,
                Err(error) => {
                    let text = format!("malformed reply from the server: {error}");
                    self.protocol_violation(&text);
                }
            }
        }
    }

    fn on_reply(&mut self, now: Instant, reply: Reply) {
        if self.phase == Phase::Quit {
            // Whatever the answer to QUIT, the session is over.
            return self.close(SessionOutcome::Completed);
        }
        if reply.code == ReplyCode(421) {
            // RFC 5321 §3.8: the server is going away, whatever we were waiting for.
            let failure = replies::session_failure(&reply, self.remote());
            return self.fail(SessionFailureKind::ServiceClosing, failure, false);
        }
        match self.phase {
            Phase::Greeting => self.on_greeting(now, reply),
            Phase::Hello { fallback } => self.on_hello_reply(now, reply, fallback),
            Phase::StartTls => self.on_starttls_reply(now, reply),
            Phase::Auth(step) => self.on_auth_reply(now, reply, step),
            Phase::Reset => {
                if reply.code.0 / 100 == 2 {
                    self.needs_reset = false;
                    self.start_next(now);
                } else {
                    let failure = replies::session_failure(&reply, self.remote());
                    self.fail(SessionFailureKind::ProtocolViolation, failure, false);
                }
            }
            Phase::Transaction => self.on_transaction_reply(now, reply),
            Phase::Idle | Phase::TlsHandshake => {
                self.protocol_violation("a reply the session did not ask for")
            }
            Phase::Quit | Phase::Closed => {}
        }
    }

    fn on_peer_closed(&mut self) {
        if self.phase == Phase::Quit {
            return self.close(SessionOutcome::Completed);
        }
        self.fail_locally(
            SessionFailureKind::ConnectionLost,
            EnhancedStatus::new(4, 4, 2),
            "the connection closed before the server's final reply",
        );
    }

    fn on_tick(&mut self, now: Instant) {
        if self.deadline.is_none_or(|deadline| now < deadline) {
            return;
        }
        match self.phase {
            Phase::Closed => {}
            Phase::Quit => self.close(SessionOutcome::Completed),
            Phase::Idle => {
                self.finishing = true;
                self.start_next(now);
            }
            _ => self.fail_locally(
                SessionFailureKind::Timeout,
                EnhancedStatus::new(4, 4, 2),
                "timed out waiting for the server",
            ),
        }
    }
}

impl Machine for ClientSession {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        if let Input::Message(message) = input {
            return self.on_message(now, message);
        }
        if self.is_closed() {
            return;
        }
        match input {
            Input::Bytes(bytes) => self.on_bytes(now, &bytes),
            Input::Written => self.on_written(now),
            Input::TlsEstablished => {
                if self.phase == Phase::TlsHandshake {
                    self.on_tls_established(now);
                }
            }
            Input::TlsFailed => {
                if self.phase == Phase::TlsHandshake {
                    self.on_tls_failed();
                }
            }
            Input::Finish => {
                self.finishing = true;
                if self.phase == Phase::Idle {
                    self.start_next(now);
                }
            }
            Input::PeerClosed => self.on_peer_closed(),
            Input::Tick => self.on_tick(now),
            Input::Message(_) => {}
        }
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// What the TLS policy asks of STARTTLS: whether to try it and whether to verify.
fn starttls_wanted(policy: TlsPolicy) -> Option<bool> {
    match policy {
        TlsPolicy::Disabled => None,
        TlsPolicy::Opportunistic => Some(false),
        TlsPolicy::Required => Some(true),
    }
}

#[cfg(test)]
mod tests;
