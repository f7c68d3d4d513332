//! The SMTP server session machine: the whole RFC 5321 dialogue for one connection
//! on an MX or submission listener, with PIPELINING, STARTTLS, AUTH, CHUNKING, DSN,
//! SMTPUTF8, 8BITMIME, SIZE and ENHANCEDSTATUSCODES — and its LMTP variant (RFC 2033)
//! for final delivery, where LHLO replaces EHLO and the end of data gets one reply
//! per accepted recipient.
//!
//! The session decides every reply. What it cannot know — are these credentials
//! valid, is this recipient acceptable, is the message durable — it asks its driver
//! for with a token, and it holds back every later reply until the answer arrives,
//! so pipelined replies stay in order. It never answers 250 to DATA or BDAT LAST
//! before the driver reports the message durable.
//!
//! Input is processed strictly in order: command lines (CRLF only), AUTH response
//! lines, DATA bodies and BDAT chunks are all read from one buffer, which only
//! grows while the session waits for its driver (bounded by twice
//! `Limits::pipeline_buffer`). The replies it sends are listed in spec/REPLIES.md.
//!
//! Deadlines (RFC 5321 §4.5.3.2): the command deadline restarts when a command
//! completes, not when bytes arrive, so a client dribbling a line cannot hold the
//! connection; the data deadline restarts with every block of DATA or BDAT bytes;
//! while a request is outstanding only its own deadline (`lookup_timeout`,
//! `durable_timeout`) runs. End-of-data framing and the SMTP smuggling choice are
//! documented in the `data` module.
//!
//! Inside: `line` (the input buffer and CRLF lines), `data` (DATA and BDAT bodies),
//! `transaction` (MAIL to end of data), `lmtp` (what LMTP does differently), `auth`
//! and `sasl` (the AUTH dialogue and its decoding), `starttls`, `capabilities` (the
//! EHLO list) and `replies` (every reply).

pub mod config;
pub mod event;
pub mod io;

mod auth;
mod capabilities;
mod data;
mod line;
mod lmtp;
mod replies;
pub(crate) mod sasl;
mod starttls;
mod transaction;

pub use config::{Limits, ListenerKind, SessionConfig, TlsMode};
pub use event::{DisconnectReason, RejectReason, SessionEvent};
pub use io::{
    AcceptedMessage, CredentialOutcome, Credentials, EnvelopeRecipient, Input, Output,
    RecipientCheck, RecipientStoreOutcome, RecipientVerdict, StoreOutcome,
};

use crate::machine::{Machine, Token, TokenSource};
use crate::smtp::address::{ForwardPath, Host, ReversePath};
use crate::smtp::command::{Command, CommandError};
use crate::smtp::params::{MailParameters, ParamError};
use crate::smtp::reply::Reply;
use crate::time::Instant;
use data::BodyReader;
use line::{InputBuffer, Scan};
use std::collections::VecDeque;

/// One SMTP server session. Create it when a connection is accepted; it queues the greeting.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    tokens: TokenSource,
    outputs: VecDeque<Output>,
    input: InputBuffer,
    mode: Mode,
    /// When the client must have sent its next command or data block.
    idle_deadline: Instant,
    tls_active: bool,
    /// The EHLO/HELO/LHLO argument and whether extensions are in use (EHLO or LHLO).
    helo: Option<(Host, bool)>,
    authenticated: Option<String>,
    transaction: Option<Transaction>,
    bad_commands: u32,
    auth_failures: u32,
    /// MAIL commands accepted on this connection.
    transactions: u32,
    /// Set by `Input::Shutdown`: close as soon as no transaction is in progress.
    shutting_down: bool,
}

/// Why a connection is refused before its greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// The client already holds its share of connections.
    TooManyConnections,
    /// The server is shutting down and takes no new sessions.
    ShuttingDown,
}

/// What the session is reading, or waiting for.
#[derive(Debug)]
enum Mode {
    Command,
    /// Dropping the rest of an overlong line, through its LF.
    Discard,
    AuthResponse(AuthStep),
    /// Reading a DATA body into the transaction's body reader.
    Data,
    Chunk(Chunk),
    Waiting(Wait),
    /// After STARTTLS's 220: no plaintext byte may arrive until the handshake ends.
    TlsHandshake,
    Closed,
}

/// Which AUTH response line comes next.
#[derive(Debug)]
enum AuthStep {
    Plain,
    LoginUsername,
    LoginPassword { username: String },
}

/// A BDAT chunk being consumed.
#[derive(Debug)]
struct Chunk {
    remaining: u64,
    size: u64,
    last: bool,
    /// Set when the command was refused: the chunk is still read, then this is the reply.
    refusal: Option<Refusal>,
}

#[derive(Debug)]
struct Refusal {
    reply: Reply,
    /// Whether it counts toward `Limits::bad_commands`.
    bad: bool,
    /// LMTP's BDAT LAST without an accepted recipient: the reply is not sent, since
    /// the client expects one reply per accepted recipient, here none (RFC 2033 §4.3).
    silent: bool,
}

/// A request the session waits on; nothing after it is processed until it is answered.
#[derive(Debug)]
enum Wait {
    Credentials {
        token: Token,
        mechanism: &'static str,
        username: String,
        /// The PLAIN authorization identity, when it differs from the username.
        authorization_id: Option<String>,
        deadline: Instant,
    },
    Recipient {
        token: Token,
        recipient: EnvelopeRecipient,
        deadline: Instant,
    },
    Store {
        token: Token,
        reverse_path: ReversePath,
        /// The accepted recipients, in RCPT order: LMTP answers each of them.
        recipients: Vec<ForwardPath>,
        size: u64,
        deadline: Instant,
    },
}

impl Wait {
    fn token(&self) -> Token {
        match self {
            Wait::Credentials { token, .. }
            | Wait::Recipient { token, .. }
            | Wait::Store { token, .. } => *token,
        }
    }

    fn deadline(&self) -> Instant {
        match self {
            Wait::Credentials { deadline, .. }
            | Wait::Recipient { deadline, .. }
            | Wait::Store { deadline, .. } => *deadline,
        }
    }
}

/// The mail transaction between an accepted MAIL and its end.
#[derive(Debug)]
struct Transaction {
    helo: Host,
    esmtp: bool,
    reverse_path: ReversePath,
    params: MailParameters,
    recipients: Vec<EnvelopeRecipient>,
    /// Present from DATA's 354 or the first accepted BDAT on.
    body: Option<BodyReader>,
}

impl ServerSession {
    /// A new session at `now`; the 220 greeting is the first output.
    pub fn new(now: Instant, config: SessionConfig) -> ServerSession {
        let idle_deadline = now + config.limits.command_timeout;
        let tls_active = config.tls == TlsMode::Implicit;
        let mut session = ServerSession {
            config,
            tokens: TokenSource::default(),
            outputs: VecDeque::new(),
            input: InputBuffer::new(),
            mode: Mode::Command,
            idle_deadline,
            tls_active,
            helo: None,
            authenticated: None,
            transaction: None,
            bad_commands: 0,
            auth_failures: 0,
            transactions: 0,
            shutting_down: false,
        };
        let greeting = if session.config.kind == ListenerKind::Lmtp {
            replies::lmtp_greeting(&session.config.hostname)
        } else {
            replies::greeting(&session.config.hostname)
        };
        session.send(&greeting);
        session.event(SessionEvent::Connected);
        session
    }

    /// A session that refuses the connection instead of greeting it: a 421 reply
    /// (RFC 5321 §3.1 allows 421 in place of the greeting), then `Output::Close`.
    pub fn refusing(
        now: Instant,
        config: SessionConfig,
        refusal: ConnectionRefusal,
    ) -> ServerSession {
        let mut session = ServerSession::new(now, config);
        session.outputs.clear();
        let host = &session.config.hostname;
        let (reply, reason) = match refusal {
            ConnectionRefusal::TooManyConnections => (
                replies::too_many_connections(host),
                DisconnectReason::TooManyConnections,
            ),
            ConnectionRefusal::ShuttingDown => {
                (replies::shutting_down(host), DisconnectReason::Shutdown)
            }
        };
        session.close(Some(reply), reason);
        session
    }

    /// Whether the driver should read more input now. False while the session waits
    /// for an answer and already holds `limits.pipeline_buffer` unprocessed bytes, and
    /// after it has asked to close or to start TLS. Backpressure, not correctness: input
    /// given anyway is still handled within the bounds.
    pub fn wants_input(&self) -> bool {
        match self.mode {
            Mode::Closed | Mode::TlsHandshake => false,
            Mode::Waiting(_) => self.input.len() < self.config.limits.pipeline_buffer,
            _ => true,
        }
    }

    /// Whether the session has finished (after `Output::Close`).
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Client bytes held in memory: unprocessed input plus the message body being
    /// received. For the property tests of the memory bounds.
    #[doc(hidden)]
    pub fn buffered_bytes(&self) -> usize {
        let body = self
            .transaction
            .as_ref()
            .and_then(|tx| tx.body.as_ref())
            .map_or(0, BodyReader::buffered);
        self.input.len() + body
    }

    /// Accepted recipients held for the current transaction. For the property tests.
    #[doc(hidden)]
    pub fn recipients_held(&self) -> usize {
        self.transaction
            .as_ref()
            .map_or(0, |tx| tx.recipients.len())
    }

    // Outputs.

    fn send(&mut self, reply: &Reply) {
        self.outputs.push_back(Output::Send(reply.to_bytes()));
    }

    fn event(&mut self, event: SessionEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// A 4xx/5xx reply to a command that does not count as a client error (policy,
    /// limits, driver verdicts).
    fn refuse(&mut self, verb: &str, reply: Reply) {
        self.send(&reply);
        self.event(SessionEvent::CommandRejected {
            verb: verb.to_owned(),
            code: reply.code,
        });
    }

    /// A syntax, sequence or unknown-command error: counted, and the `bad_commands`-th closes.
    fn refuse_bad(&mut self, verb: &str, reply: Reply) {
        self.refuse(verb, reply);
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.config.limits.bad_commands {
            let reply = replies::too_many_errors(&self.config.hostname);
            self.close(Some(reply), DisconnectReason::TooManyBadCommands);
        }
    }

    /// Ends the session: an optional last reply, the event, then `Output::Close`.
    fn close(&mut self, reply: Option<Reply>, reason: DisconnectReason) {
        if self.is_closed() {
            return;
        }
        if let Some(reply) = reply {
            self.send(&reply);
        }
        self.event(SessionEvent::Disconnected { reason });
        self.outputs.push_back(Output::Close);
        self.mode = Mode::Closed;
        self.input.clear();
        self.transaction = None;
    }

    /// Closes with a 421 that answers a command.
    fn close_refusing(&mut self, verb: &str, reply: Reply, reason: DisconnectReason) {
        self.event(SessionEvent::CommandRejected {
            verb: verb.to_owned(),
            code: reply.code,
        });
        self.close(Some(reply), reason);
    }

    // Input.

    fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.mode {
            Mode::TlsHandshake => {
                // Plaintext after STARTTLS's 220 would otherwise be read as if it came
                // through TLS: the command-injection class of CVE-2011-0411.
                self.close(None, DisconnectReason::StartTlsInjection);
                return;
            }
            Mode::Waiting(_) => {
                self.input.push(bytes);
                self.check_overflow();
                return;
            }
            _ => {}
        }
        self.input.push(bytes);
        self.process(now);
        if matches!(self.mode, Mode::Data | Mode::Chunk(_)) {
            self.idle_deadline = now + self.config.limits.data_block_timeout;
        }
        self.check_overflow();
    }

    fn check_overflow(&mut self) {
        if matches!(self.mode, Mode::Waiting(_))
            && self.input.len() > self.config.limits.pipeline_buffer.saturating_mul(2)
        {
            let reply = replies::input_overflow(&self.config.hostname);
            self.close(Some(reply), DisconnectReason::InputOverflow);
        }
    }

    /// Reads buffered input until it runs out or the session must wait.
    fn process(&mut self, now: Instant) {
        loop {
            match &mut self.mode {
                Mode::Command => {
                    match line::scan(self.input.pending(), self.config.limits.command_line) {
                        Scan::Incomplete => break,
                        Scan::Line {
                            content_end,
                            consumed,
                        } => {
                            let line = self.input.pending()[..content_end].to_vec();
                            self.input.consume(consumed);
                            self.on_line(now, &line);
                        }
                        Scan::BareLineEnding { consumed } => {
                            let verb = verb_of(&self.input.pending()[..consumed]);
                            self.input.consume(consumed);
                            self.idle_deadline = now + self.config.limits.command_timeout;
                            self.refuse_bad(&verb, replies::bare_line_ending_in_command());
                        }
                        Scan::TooLong => {
                            let verb = verb_of(self.input.pending());
                            self.mode = Mode::Discard;
                            self.refuse_bad(&verb, replies::line_too_long());
                        }
                    }
                }
                Mode::Discard => {
                    let (count, line_ended) = line::discard(self.input.pending());
                    self.input.consume(count);
                    if !line_ended {
                        break;
                    }
                    self.mode = Mode::Command;
                    self.idle_deadline = now + self.config.limits.command_timeout;
                }
                Mode::AuthResponse(_) => {
                    match line::scan(self.input.pending(), self.config.limits.command_line) {
                        Scan::Incomplete => break,
                        Scan::Line {
                            content_end,
                            consumed,
                        } => {
                            let line = self.input.pending()[..content_end].to_vec();
                            self.input.consume(consumed);
                            if let Mode::AuthResponse(step) =
                                std::mem::replace(&mut self.mode, Mode::Command)
                            {
                                self.idle_deadline = now + self.config.limits.command_timeout;
                                self.on_auth_response(now, step, &line);
                            }
                        }
                        Scan::BareLineEnding { consumed } => {
                            self.input.consume(consumed);
                            self.mode = Mode::Command;
                            self.refuse_bad("AUTH", replies::bare_line_ending_in_command());
                        }
                        Scan::TooLong => {
                            self.mode = Mode::Discard;
                            self.refuse_bad("AUTH", replies::line_too_long());
                        }
                    }
                }
                Mode::Data => {
                    let Some(reader) = self.transaction.as_mut().and_then(|tx| tx.body.as_mut())
                    else {
                        self.mode = Mode::Command;
                        continue;
                    };
                    let fed = reader.feed(self.input.pending());
                    self.input.consume(fed.consumed);
                    if !fed.ended {
                        break;
                    }
                    self.end_of_message(now);
                }
                Mode::Chunk(chunk) => {
                    if chunk.remaining > 0 {
                        let pending = self.input.pending();
                        let available = u64::try_from(pending.len()).unwrap_or(u64::MAX);
                        let take = chunk.remaining.min(available);
                        if take == 0 {
                            break;
                        }
                        // `take` is at most `pending.len()`, so it fits.
                        let count = usize::try_from(take).unwrap_or(pending.len());
                        if chunk.refusal.is_none()
                            && let Some(reader) =
                                self.transaction.as_mut().and_then(|tx| tx.body.as_mut())
                        {
                            reader.feed(&pending[..count]);
                        }
                        self.input.consume(count);
                        chunk.remaining -= take;
                        if chunk.remaining > 0 {
                            break;
                        }
                    }
                    self.end_of_chunk(now);
                }
                Mode::Waiting(_) | Mode::TlsHandshake | Mode::Closed => break,
            }
        }
        if !self.is_closed() {
            self.input.compact();
        }
    }

    /// Continues with buffered input after an answer or a wait's deadline.
    fn resume(&mut self, now: Instant) {
        if let Mode::Waiting(_) = self.mode {
            return;
        }
        if !self.is_closed() {
            self.mode = Mode::Command;
            self.idle_deadline = now + self.config.limits.command_timeout;
            self.process(now);
        }
    }

    // Commands.

    fn on_line(&mut self, now: Instant, line: &[u8]) {
        self.idle_deadline = now + self.config.limits.command_timeout;
        match Command::parse(line) {
            Ok(command) => self.on_command(now, command),
            Err(error) => self.on_parse_error(&verb_of(line), error),
        }
    }

    fn on_parse_error(&mut self, verb: &str, error: CommandError) {
        let lmtp = self.config.kind == ListenerKind::Lmtp;
        if verb == "LHLO" && !lmtp {
            // LHLO is no SMTP command: whatever its argument, it is unknown here.
            return self.refuse_bad("UNKNOWN", replies::unknown_command());
        }
        if lmtp && (verb == "EHLO" || verb == "HELO") {
            // RFC 2033 §4.1: the command does not exist in LMTP, however well written.
            return self.refuse_bad(verb, replies::lhlo_required());
        }
        if verb == "BDAT" {
            // Without a valid size the chunk cannot be skipped: its content would be
            // read as commands, so the stream cannot be resynchronised.
            let reply = replies::malformed_bdat();
            self.refuse(verb, reply);
            self.close(None, DisconnectReason::MalformedBdat);
            return;
        }
        let reply = match error {
            CommandError::UnknownCommand => replies::unknown_command(),
            CommandError::ForeignProtocol => {
                let reply = replies::foreign_protocol(&self.config.hostname);
                self.close_refusing(verb, reply, DisconnectReason::ForeignProtocol);
                return;
            }
            CommandError::InitialResponseNotBase64 { mechanism } => {
                self.on_auth_not_base64(&mechanism);
                return;
            }
            CommandError::InvalidUtf8 => replies::invalid_utf8(),
            CommandError::ControlCharacter => replies::bare_line_ending_in_command(),
            CommandError::Syntax(_) if verb == "STARTTLS" => replies::syntax_error_no_parameters(),
            CommandError::Syntax(_) if matches!(verb, "EHLO" | "HELO" | "LHLO") => {
                replies::bad_helo()
            }
            CommandError::Syntax(_) => replies::syntax_error(),
            CommandError::BadSender(_) => replies::bad_sender(),
            CommandError::BadRecipient(_) => replies::bad_recipient(),
            CommandError::BadHelo(_) => replies::bad_helo(),
            CommandError::Parameter(ParamError::Unknown(keyword)) => {
                replies::unsupported_parameter(&keyword)
            }
            CommandError::Parameter(other) => replies::invalid_parameter(&other.to_string()),
        };
        self.refuse_bad(verb, reply);
    }

    fn on_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Ehlo(_) | Command::Helo(_) if self.config.kind == ListenerKind::Lmtp => {
                self.refuse_bad(command.verb(), replies::lhlo_required());
            }
            Command::Ehlo(host) => self.on_helo(host, true),
            Command::Helo(host) => self.on_helo(host, false),
            Command::Lhlo(host) if self.config.kind == ListenerKind::Lmtp => {
                self.on_helo(host, true);
            }
            Command::Lhlo(_) => self.refuse_bad("UNKNOWN", replies::unknown_command()),
            Command::Mail { from, params } => self.on_mail(from, params),
            Command::Rcpt { to, params } => self.on_rcpt(now, to, params),
            Command::Data => self.on_data(now),
            Command::Bdat { size, last } => self.on_bdat(now, size, last),
            Command::Rset => {
                self.transaction = None;
                self.send(&replies::ok());
            }
            Command::Noop(_) => self.send(&replies::ok()),
            Command::Quit => {
                let reply = replies::closing(&self.config.hostname);
                self.send(&reply);
                self.close(None, DisconnectReason::Quit);
            }
            Command::Vrfy(_) => self.send(&replies::cannot_vrfy()),
            // Not counted as an error: EXPN is a legitimate, merely unavailable, command.
            Command::Expn(_) => self.refuse("EXPN", replies::expn_unavailable()),
            Command::Help(_) if self.config.kind == ListenerKind::Lmtp => {
                self.send(&replies::lmtp_help());
            }
            Command::Help(_) => self.send(&replies::help()),
            Command::StartTls => self.on_starttls(now),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.on_auth(now, &mechanism, initial_response),
        }
    }

    fn on_helo(&mut self, host: Host, esmtp: bool) {
        self.transaction = None;
        let hostname = &self.config.hostname;
        let reply = if esmtp {
            replies::ehlo(
                hostname,
                &host.to_string(),
                capabilities::capabilities(&self.config, self.tls_active),
            )
        } else {
            replies::helo(hostname)
        };
        self.send(&reply);
        self.event(SessionEvent::Helo {
            host: host.clone(),
            esmtp,
        });
        self.helo = Some((host, esmtp));
    }

    /// With a shutdown pending, an idle session (no transaction, nothing being read or
    /// awaited) says 421 and closes; a transaction in progress gets its final reply first.
    fn close_if_shutting_down_and_idle(&mut self) {
        if self.shutting_down && matches!(self.mode, Mode::Command) && self.transaction.is_none() {
            let reply = replies::shutting_down(&self.config.hostname);
            self.close(Some(reply), DisconnectReason::Shutdown);
        }
    }

    // Answers and time.

    /// Takes the wait if `token` is the one the session waits for; stale tokens are ignored.
    fn take_wait(&mut self, token: Token) -> Option<Wait> {
        match &self.mode {
            Mode::Waiting(wait) if wait.token() == token => {
                match std::mem::replace(&mut self.mode, Mode::Command) {
                    Mode::Waiting(wait) => Some(wait),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Settles a wait: with the driver's answer, or with `None` at its deadline.
    fn settle(&mut self, now: Instant, wait: Wait, answer: Option<Input>) {
        match (wait, answer) {
            (Wait::Recipient { recipient, .. }, answer) => {
                let verdict = match answer {
                    Some(Input::RecipientChecked { verdict, .. }) => Some(verdict),
                    _ => None,
                };
                self.on_recipient_verdict(recipient, verdict);
            }
            (wait @ Wait::Credentials { .. }, answer) => {
                let outcome = match answer {
                    Some(Input::CredentialsChecked { outcome, .. }) => Some(outcome),
                    _ => None,
                };
                self.on_credential_outcome(wait, outcome);
            }
            (wait @ Wait::Store { .. }, answer) => {
                let outcome = match answer {
                    Some(Input::MessageStored { outcome, .. }) => Some(outcome),
                    _ => None,
                };
                self.on_store_outcome(wait, outcome);
            }
        }
        self.resume(now);
    }

    fn on_answer(&mut self, now: Instant, token: Token, answer: Input) {
        let Some(wait) = self.take_wait(token) else {
            return;
        };
        let matches = matches!(
            (&wait, &answer),
            (Wait::Recipient { .. }, Input::RecipientChecked { .. })
                | (Wait::Credentials { .. }, Input::CredentialsChecked { .. })
                | (Wait::Store { .. }, Input::MessageStored { .. })
        );
        if matches {
            self.settle(now, wait, Some(answer));
        } else {
            // The right token with the wrong kind of answer: a driver bug; keep waiting.
            self.mode = Mode::Waiting(wait);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        match &self.mode {
            Mode::Closed => {}
            Mode::Waiting(wait) => {
                if now >= wait.deadline() {
                    let token = wait.token();
                    if let Some(wait) = self.take_wait(token) {
                        self.settle(now, wait, None);
                    }
                }
            }
            Mode::TlsHandshake => {
                if now >= self.idle_deadline {
                    self.close(None, DisconnectReason::Timeout);
                }
            }
            _ => {
                if now >= self.idle_deadline {
                    let reply = replies::timeout(&self.config.hostname);
                    self.close(Some(reply), DisconnectReason::Timeout);
                }
            }
        }
    }
}

impl Machine for ServerSession {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        if self.is_closed() {
            return;
        }
        match input {
            Input::Bytes(bytes) => self.on_bytes(now, &bytes),
            Input::TlsEstablished => {
                if matches!(self.mode, Mode::TlsHandshake) {
                    self.on_tls_established(now);
                }
            }
            Input::TlsFailed => {
                if matches!(self.mode, Mode::TlsHandshake) {
                    self.close(None, DisconnectReason::TlsFailed);
                }
            }
            Input::CredentialsChecked { token, .. }
            | Input::RecipientChecked { token, .. }
            | Input::MessageStored { token, .. } => self.on_answer(now, token, input),
            Input::Tick => self.on_tick(now),
            Input::PeerClosed => self.close(None, DisconnectReason::PeerClosed),
            Input::Shutdown => self.shutting_down = true,
        }
        self.close_if_shutting_down_and_idle();
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Closed => None,
            Mode::Waiting(wait) => Some(wait.deadline()),
            _ => Some(self.idle_deadline),
        }
    }
}

/// Verbs named in events; anything else is reported as `UNKNOWN`, so that a stray
/// AUTH response (base64 credentials) read as a command never reaches the logs.
const KNOWN_VERBS: [&str; 21] = [
    "EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
    "HELP", "STARTTLS", "AUTH", "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS",
];

/// The verb of a line, upper case, for events and for choosing a reply.
fn verb_of(line: &[u8]) -> String {
    let end = line
        .iter()
        .position(|byte| !byte.is_ascii_alphabetic())
        .unwrap_or(line.len());
    KNOWN_VERBS
        .iter()
        .find(|verb| verb.as_bytes().eq_ignore_ascii_case(&line[..end]))
        .map_or_else(|| "UNKNOWN".to_owned(), |verb| (*verb).to_owned())
}

#[cfg(test)]
mod tests;
