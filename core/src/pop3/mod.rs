//! The POP3 server session machine: the whole RFC 1939 dialogue of one connection
//! (AUTHORIZATION, TRANSACTION, UPDATE), with CAPA and response codes (RFC 2449,
//! RFC 3206), STLS (RFC 2595) or implicit TLS, USER/PASS and AUTH PLAIN (RFC 5034).
//!
//! The session decides every response. What it cannot know — are these credentials
//! valid, what the maildrop holds, a message's bytes, whether deletions are durable —
//! it asks its driver for with a token, and it reads no further command until the
//! answer arrives, so pipelined responses (RFC 2449 PIPELINING) stay in order.
//! Messages are streamed: the driver feeds a message in chunks and the session
//! normalises, stuffs and forwards each one, holding no more than a chunk.
//! Deletions are applied only after a QUIT in TRANSACTION, and QUIT's `+OK` waits
//! for the driver to report them done; a dropped connection or the autologout timer
//! never enters UPDATE (RFC 1939 §3, §6).
//!
//! Inside: `command` (the grammar), `auth` (USER/PASS, AUTH, opening the maildrop),
//! `transaction` (the TRANSACTION commands and UPDATE), `maildrop` (the open
//! listing and deletion marks), `stuffing` (the multi-line encoder), `replies`
//! (every response, mirrored in spec/POP3-REPLIES.md). Input lines come from
//! `crate::line`, shared with SMTP.

pub mod config;
pub mod event;
pub mod io;

mod auth;
mod command;
mod maildrop;
mod replies;
mod stuffing;
mod transaction;

pub use config::{Limits, Pop3Config, TlsMode};
pub use event::{DisconnectReason, MaildropRefusal, SessionEvent};
pub use io::{
    CommitOutcome, CredentialOutcome, Credentials, Input, MaildropEntry, MaildropOutcome,
    MessageData, MessageRef, Output,
};

use crate::line::{self, InputBuffer, Scan};
use crate::machine::{Machine, Token, TokenSource};
use crate::time::Instant;
use command::{Command, CommandError};
use maildrop::Maildrop;
use replies::Response;
use std::collections::VecDeque;
use stuffing::MessageStream;

/// One POP3 server session. Create it when a connection is accepted (after the TLS
/// handshake on the POP3S port); it queues the greeting.
#[derive(Debug)]
pub struct Pop3Session {
    config: Pop3Config,
    tokens: TokenSource,
    outputs: VecDeque<Output>,
    input: InputBuffer,
    mode: Mode,
    state: State,
    /// The autologout deadline: when the client must have sent its next command.
    idle_deadline: Instant,
    tls_active: bool,
    bad_commands: u32,
    auth_failures: u32,
    shutting_down: bool,
}

/// The RFC 1939 state of the session.
#[derive(Debug)]
enum State {
    /// Before login; `user` is the name of an accepted USER awaiting its PASS.
    Authorization {
        user: Option<String>,
    },
    Transaction(Maildrop),
    /// After QUIT in TRANSACTION, while the driver commits the deletions.
    Update,
}

/// What the session is reading, or waiting for.
#[derive(Debug)]
enum Mode {
    Command,
    /// Dropping the rest of an overlong line, through its LF.
    Discard,
    /// After `+ `: the next line is the client's AUTH PLAIN response.
    AuthResponse,
    Waiting(Wait),
    /// After STLS's `+OK`: no plaintext byte may arrive until the handshake ends.
    TlsHandshake,
    Closed,
}

/// A request the session waits on; no command after it is read until it is answered.
#[derive(Debug)]
enum Wait {
    Credentials {
        token: Token,
        mechanism: &'static str,
        username: String,
        authorization_id: Option<String>,
        deadline: Instant,
    },
    Maildrop {
        token: Token,
        user: String,
        deadline: Instant,
    },
    Read {
        token: Token,
        /// `RETR` or `TOP`, for the event of a refusal.
        verb: &'static str,
        /// The `+OK` line, sent with the first chunk: until then a failure can
        /// still be answered `-ERR`.
        status: Option<Response>,
        stream: MessageStream,
        deadline: Instant,
    },
    Commit {
        token: Token,
        count: usize,
        deadline: Instant,
    },
}

impl Wait {
    fn token(&self) -> Token {
        match self {
            Wait::Credentials { token, .. }
            | Wait::Maildrop { token, .. }
            | Wait::Read { token, .. }
            | Wait::Commit { token, .. } => *token,
        }
    }

    fn deadline(&self) -> Instant {
        match self {
            Wait::Credentials { deadline, .. }
            | Wait::Maildrop { deadline, .. }
            | Wait::Read { deadline, .. }
            | Wait::Commit { deadline, .. } => *deadline,
        }
    }
}

impl Pop3Session {
    /// A new session at `now`; the `+OK` greeting is the first output.
    pub fn new(now: Instant, config: Pop3Config) -> Pop3Session {
        let idle_deadline = now + config.limits.idle_timeout;
        let tls_active = config.tls == TlsMode::Implicit;
        let mut session = Pop3Session {
            config,
            tokens: TokenSource::default(),
            outputs: VecDeque::new(),
            input: InputBuffer::new(),
            mode: Mode::Command,
            state: State::Authorization { user: None },
            idle_deadline,
            tls_active,
            bad_commands: 0,
            auth_failures: 0,
            shutting_down: false,
        };
        session.send(&replies::greeting(&session.config.hostname));
        session.event(SessionEvent::Connected);
        session
    }

    /// Whether the driver should read more client input now: false while it waits
    /// with `limits.pipeline_buffer` bytes already held, and after it asked to close
    /// or to start TLS. Backpressure, not correctness.
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

    /// Client bytes held in memory. For the property tests of the memory bound.
    #[doc(hidden)]
    pub fn buffered_bytes(&self) -> usize {
        self.input.len()
    }

    // Outputs.

    fn send(&mut self, response: &Response) {
        self.outputs.push_back(Output::Send(response.to_bytes()));
    }

    fn send_bytes(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.outputs.push_back(Output::Send(bytes));
        }
    }

    fn event(&mut self, event: SessionEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// An `-ERR` that is not the client's mistake (policy, the driver's answer).
    fn refuse(&mut self, verb: &str, response: Response) {
        self.send(&response);
        self.event(SessionEvent::CommandRejected {
            verb: verb.to_owned(),
        });
    }

    /// An unknown, malformed or out-of-state command: counted, and the
    /// `bad_commands`-th closes the connection.
    fn refuse_bad(&mut self, verb: &str, response: Response) {
        self.refuse(verb, response);
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.config.limits.bad_commands {
            self.close(
                Some(replies::too_many_bad_commands()),
                DisconnectReason::TooManyBadCommands,
            );
        }
    }

    /// Ends the session: an optional last response, the event, then `Output::Close`.
    /// Never enters UPDATE: deletions not yet committed are forgotten.
    fn close(&mut self, response: Option<Response>, reason: DisconnectReason) {
        if self.is_closed() {
            return;
        }
        if let Some(response) = response {
            self.send(&response);
        }
        self.event(SessionEvent::Disconnected { reason });
        self.outputs.push_back(Output::Close);
        self.mode = Mode::Closed;
        self.input.clear();
    }

    // Input.

    fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.mode {
            Mode::TlsHandshake => {
                // Plaintext during the handshake would be read as if it came through
                // TLS: the command-injection class of CVE-2011-0411.
                return self.close(None, DisconnectReason::StartTlsInjection);
            }
            Mode::Waiting(_) => self.input.push(bytes),
            _ => {
                self.input.push(bytes);
                self.process(now);
            }
        }
        if matches!(self.mode, Mode::Waiting(_))
            && self.input.len() > self.config.limits.pipeline_buffer.saturating_mul(2)
        {
            self.close(
                Some(replies::input_overflow()),
                DisconnectReason::InputOverflow,
            );
        }
    }

    /// Reads buffered input until it runs out or the session must wait.
    fn process(&mut self, now: Instant) {
        loop {
            let limit = match self.mode {
                Mode::Command => self.config.limits.command_line,
                Mode::AuthResponse => self.config.limits.auth_line,
                Mode::Discard => {
                    let (count, line_ended) = line::discard(self.input.pending());
                    self.input.consume(count);
                    if !line_ended {
                        break;
                    }
                    self.mode = Mode::Command;
                    self.idle_deadline = now + self.config.limits.idle_timeout;
                    continue;
                }
                Mode::Waiting(_) | Mode::TlsHandshake | Mode::Closed => break,
            };
            let in_auth = matches!(self.mode, Mode::AuthResponse);
            let verb = if in_auth {
                "AUTH"
            } else {
                command::verb_of(self.input.pending())
            };
            match line::scan(self.input.pending(), limit) {
                Scan::Incomplete => break,
                Scan::Line {
                    content_end,
                    consumed,
                } => {
                    let line = self.input.pending()[..content_end].to_vec();
                    self.input.consume(consumed);
                    self.idle_deadline = now + self.config.limits.idle_timeout;
                    if in_auth {
                        self.mode = Mode::Command;
                        self.on_auth_response(now, &line);
                    } else {
                        self.on_line(now, &line);
                    }
                }
                Scan::BareLineEnding { consumed } => {
                    self.input.consume(consumed);
                    self.mode = Mode::Command;
                    self.idle_deadline = now + self.config.limits.idle_timeout;
                    self.refuse_bad(verb, replies::bare_line_ending());
                }
                Scan::TooLong => {
                    self.mode = Mode::Discard;
                    self.refuse_bad(verb, replies::line_too_long());
                }
            }
        }
        if !self.is_closed() {
            self.input.compact();
        }
    }

    /// Continues with buffered input once a wait is over.
    fn resume(&mut self, now: Instant) {
        if matches!(self.mode, Mode::Waiting(_)) || self.is_closed() {
            return;
        }
        self.mode = Mode::Command;
        self.idle_deadline = now + self.config.limits.idle_timeout;
        self.process(now);
    }

    // Commands.

    fn on_line(&mut self, now: Instant, line: &[u8]) {
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(error) => {
                let verb = command::verb_of(line);
                self.forget_user();
                let response = match error {
                    CommandError::Unknown => replies::unknown_command(),
                    CommandError::Syntax => replies::syntax_error(),
                    CommandError::BadNumber => replies::bad_message_number(),
                };
                return self.refuse_bad(verb, response);
            }
        };
        if !matches!(command, Command::Pass(_)) {
            // RFC 1939 §7: PASS may only come immediately after a successful USER.
            self.forget_user();
        }
        match command {
            Command::Capa => self.on_capa(),
            Command::Quit => self.on_quit(now),
            Command::Stls => self.on_stls(now),
            Command::User(name) => self.on_user(name),
            Command::Pass(password) => self.on_pass(now, password),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.on_auth(now, &mechanism, initial_response),
            other => self.on_transaction_command(now, other),
        }
    }

    fn forget_user(&mut self) {
        if let State::Authorization { user } = &mut self.state {
            *user = None;
        }
    }

    fn in_authorization(&self) -> bool {
        matches!(self.state, State::Authorization { .. })
    }

    /// Whether USER/PASS and AUTH may be used now: before login, over TLS unless
    /// the configuration allows plaintext.
    fn login_allowed(&self) -> bool {
        self.in_authorization() && (self.tls_active || self.config.allow_plaintext_auth)
    }

    fn stls_offered(&self) -> bool {
        self.in_authorization() && self.config.tls == TlsMode::StartTlsOffered && !self.tls_active
    }

    /// CAPA (RFC 2449 §5): what this session offers in its current state.
    fn on_capa(&mut self) {
        let mut lines: Vec<String> = ["TOP", "UIDL"].map(str::to_owned).to_vec();
        if self.login_allowed() {
            lines.push("USER".to_owned());
        }
        lines.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"].map(str::to_owned));
        if self.login_allowed() {
            lines.push(format!("SASL {}", crate::sasl::PLAIN));
        }
        if self.stls_offered() {
            lines.push("STLS".to_owned());
        }
        lines.push("IMPLEMENTATION Sluice".to_owned());
        let mut bytes = replies::capability_list().to_bytes();
        stuffing::stuffed_lines(&lines, &mut bytes);
        self.send_bytes(bytes);
    }

    fn on_stls(&mut self, now: Instant) {
        if !self.in_authorization() {
            return self.refuse_bad("STLS", replies::wrong_state());
        }
        if self.tls_active {
            return self.refuse_bad("STLS", replies::tls_already_active());
        }
        if !self.stls_offered() {
            return self.refuse_bad("STLS", replies::stls_unavailable());
        }
        if self.input.len() > 0 {
            // Anything after STLS was sent in plaintext before the handshake; carrying
            // it into the TLS session is CVE-2011-0411.
            self.event(SessionEvent::CommandRejected {
                verb: "STLS".to_owned(),
            });
            return self.close(
                Some(replies::stls_injection()),
                DisconnectReason::StartTlsInjection,
            );
        }
        self.send(&replies::begin_tls());
        self.outputs.push_back(Output::StartTls);
        self.mode = Mode::TlsHandshake;
        self.idle_deadline = now + self.config.limits.idle_timeout;
    }

    fn on_tls_established(&mut self, now: Instant) {
        // RFC 2595 §4: forget anything learnt before TLS.
        self.tls_active = true;
        self.state = State::Authorization { user: None };
        self.mode = Mode::Command;
        self.idle_deadline = now + self.config.limits.idle_timeout;
        self.event(SessionEvent::TlsStarted);
    }

    /// With a shutdown pending, a session that waits for nothing says so and closes;
    /// one that waits for its driver (a commit above all) finishes first.
    fn close_if_shutting_down_and_idle(&mut self) {
        if self.shutting_down && matches!(self.mode, Mode::Command) {
            self.close(Some(replies::shutting_down()), DisconnectReason::Shutdown);
        }
    }

    // Answers and time.

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

    fn on_answer(&mut self, now: Instant, token: Token, answer: Input) {
        let Some(wait) = self.take_wait(token) else {
            return;
        };
        match (wait, answer) {
            (wait @ Wait::Credentials { .. }, Input::CredentialsChecked { outcome, .. }) => {
                self.on_credential_outcome(now, wait, Some(outcome));
            }
            (Wait::Maildrop { user, .. }, Input::MaildropOpened { outcome, .. }) => {
                self.on_maildrop_outcome(user, Some(outcome));
            }
            (wait @ Wait::Read { .. }, Input::MessageData { data, .. }) => {
                self.on_message_data(now, wait, Some(data));
            }
            (Wait::Commit { count, .. }, Input::DeletionsCommitted { outcome, .. }) => {
                self.on_commit_outcome(count, Some(outcome));
            }
            (wait, _) => {
                // The right token with the wrong kind of answer: a driver bug; keep waiting.
                self.mode = Mode::Waiting(wait);
            }
        }
        self.resume(now);
    }

    fn on_tick(&mut self, now: Instant) {
        match &self.mode {
            Mode::Closed => {}
            Mode::Waiting(wait) => {
                if now >= wait.deadline() {
                    let token = wait.token();
                    if let Some(wait) = self.take_wait(token) {
                        match wait {
                            wait @ Wait::Credentials { .. } => {
                                self.on_credential_outcome(now, wait, None);
                            }
                            Wait::Maildrop { user, .. } => self.on_maildrop_outcome(user, None),
                            wait @ Wait::Read { .. } => self.on_message_data(now, wait, None),
                            Wait::Commit { count, .. } => self.on_commit_outcome(count, None),
                        }
                        self.resume(now);
                    }
                }
            }
            _ => {
                if now >= self.idle_deadline {
                    // RFC 1939 §3: the autologout timer closes without a response and
                    // without entering UPDATE.
                    self.close(None, DisconnectReason::Timeout);
                }
            }
        }
    }
}

impl Machine for Pop3Session {
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
            | Input::MaildropOpened { token, .. }
            | Input::MessageData { token, .. }
            | Input::DeletionsCommitted { token, .. } => self.on_answer(now, token, input),
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

#[cfg(test)]
mod tests;
