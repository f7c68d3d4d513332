//! The IMAP server session machine (RFC 9051 IMAP4rev2, and IMAP4rev1 clients):
//! one connection's states (not authenticated, authenticated, selected, logout),
//! STARTTLS and authentication, and the mailbox-level commands.
//!
//! The session decides every response. What it cannot know — are these
//! credentials valid, what is in this mailbox — it asks its driver for with a
//! token ([`Output::CheckCredentials`], [`Output::Mailbox`] with a
//! [`request::MailboxRequest`]), and it reads no further command until the answer
//! arrives, so responses stay in order. The store never decides what the client
//! sees: the selected mailbox's sequence numbers, and when changes may be
//! reported, are the session's own (`view`).
//!
//! Input is framed by `frame` (lines and literals, each bounded); commands are
//! parsed by imap-codec, LIST-EXTENDED by `list`. Responses are written in
//! `responses`. Deadlines: the autologout timer (RFC 9051 §5.4, at least 30
//! minutes, also in IDLE; shorter before authentication) restarts with every
//! command; while a request is outstanding only its own deadline runs.
//!
//! Inside: `config` (limits), `io` (inputs and outputs), `request` (the store
//! interface), `event`, `frame`, `view`, `list`, `syntax` (the commands imap-codec
//! does not parse), `utf7` (IMAP4rev1 mailbox names), `responses`, `commands`
//! (what each command does) and `answers` (what each answer does).
//!
//! FETCH and SEARCH (`fetch`, `fetch_flow`, `search_flow`) read messages through
//! `core::message`, asking the store for metadata a bounded batch at a time and for
//! one message's bytes at a time.

pub mod backend;
pub mod config;
pub mod event;
pub mod io;
pub mod request;
pub mod view;

mod answers;
mod commands;
mod fetch;
mod fetch_flow;
mod frame;
mod list;
mod responses;
mod search_flow;
mod syntax;
#[cfg(test)]
mod tests;
mod utf7;

pub use config::{Limits, SessionConfig, TlsMode};
pub use event::{DisconnectReason, SessionEvent};
pub use io::{CredentialOutcome, Credentials, Input, Output};
pub use request::{MailboxAnswer, MailboxRequest};

use crate::machine::{Machine, Token, TokenSource};
use crate::time::Instant;
use frame::{Framed, Framer, ReadMode};
use list::ListSpec;
use responses::{Kind, StatusItem};
use std::collections::VecDeque;
use view::{SelectedView, ViewReport};

/// One IMAP session. Create it when a connection is accepted; it queues the greeting.
#[derive(Debug)]
pub struct ImapSession {
    config: SessionConfig,
    tokens: TokenSource,
    outputs: VecDeque<Output>,
    framer: Framer,
    mode: Mode,
    /// The authenticated identity.
    user: Option<String>,
    selected: Option<SelectedView>,
    tls_active: bool,
    enabled: Enabled,
    bad_commands: u32,
    auth_failures: u32,
    /// The autologout timer.
    idle_deadline: Instant,
    /// The driver said the selected mailbox changed; ask at the next moment.
    changed: bool,
    /// The tagged response owed for a command whose refused literal is being dropped.
    owed_after_drop: Option<Vec<u8>>,
    /// (UID, MODSEQ) of flag changes this session's STORE already reported, so that
    /// the store's change report right after does not repeat them.
    reported_flags: Vec<(u32, u64)>,
    /// SEARCH's RETURN options, taken from the command line before imap-codec
    /// parses the rest (it does not know RETURN), for `dispatch`.
    search_return: Option<search_flow::ReturnOptions>,
}

/// Extensions the client turned on with ENABLE (RFC 5161) or by using them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Enabled {
    condstore: bool,
    qresync: bool,
    imap4rev2: bool,
    utf8: bool,
}

/// What the session is reading, or waiting for.
#[derive(Debug)]
enum Mode {
    Command,
    /// Waiting for the client's AUTHENTICATE PLAIN response line.
    AuthResponse {
        tag: String,
    },
    /// In IDLE: waiting for DONE.
    Idle {
        tag: String,
    },
    Waiting(Wait),
    /// After STARTTLS's OK: no plaintext byte may arrive until the handshake ends.
    TlsHandshake,
    Closed,
}

/// A request the session waits on; nothing after it is processed until it is answered.
#[derive(Debug)]
struct Wait {
    token: Token,
    deadline: Instant,
    purpose: Purpose,
}

/// What an awaited answer is for.
#[derive(Debug)]
enum Purpose {
    Credentials {
        tag: String,
        mechanism: &'static str,
        username: String,
    },
    Select {
        tag: String,
        mailbox: String,
        read_only: bool,
    },
    List {
        tag: String,
        spec: ListSpec,
    },
    Status {
        tag: String,
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE: OK or a refusal.
    Simple {
        tag: String,
        command: &'static str,
    },
    Append {
        tag: String,
    },
    /// EXPUNGE, UID EXPUNGE, or CLOSE's silent expunge.
    Expunge {
        tag: String,
        close: bool,
    },
    Store {
        tag: String,
        silent: bool,
        by_uid: bool,
    },
    Copy {
        tag: String,
        moving: bool,
        by_uid: bool,
    },
    Changes(AfterChanges),
    Fetch(Box<fetch_flow::FetchJob>),
    Search(Box<search_flow::SearchJob>),
}

/// What to do once the selected mailbox's changes are known.
#[derive(Debug)]
enum AfterChanges {
    /// Send this tagged response (reporting expunges only if allowed).
    Finish {
        response: Vec<u8>,
        expunge_allowed: bool,
    },
    /// Enter IDLE: report, then the continuation.
    IdleStart { tag: String },
    /// Still in IDLE: report, and keep idling.
    IdleUpdate { tag: String },
}

impl ImapSession {
    /// A new session at `now`; the greeting is the first output.
    pub fn new(now: Instant, config: SessionConfig) -> ImapSession {
        let idle_deadline = now + config.limits.unauthenticated_timeout;
        let tls_active = config.tls == TlsMode::Implicit;
        let framer = Framer::new(config.limits.line);
        let mut session = ImapSession {
            config,
            tokens: TokenSource::default(),
            outputs: VecDeque::new(),
            framer,
            mode: Mode::Command,
            user: None,
            selected: None,
            tls_active,
            enabled: Enabled::default(),
            bad_commands: 0,
            auth_failures: 0,
            idle_deadline,
            changed: false,
            owed_after_drop: None,
            reported_flags: Vec::new(),
            search_return: None,
        };
        let greeting = responses::untagged_ok(
            &format!("CAPABILITY {}", session.capabilities()),
            &format!(
                "{} Sluice IMAP ready",
                responses::sanitise(&session.config.hostname)
            ),
        );
        session.send(greeting);
        session.event(SessionEvent::Connected);
        session
    }

    /// Whether the driver should read more input now: false while the session
    /// waits and already holds `limits.pipeline_buffer` unprocessed bytes, and after
    /// it asked to close or to start TLS. Backpressure, not correctness.
    pub fn wants_input(&self) -> bool {
        match self.mode {
            Mode::Closed | Mode::TlsHandshake => false,
            Mode::Waiting(_) => self.framer.pending() < self.config.limits.pipeline_buffer,
            _ => true,
        }
    }

    /// Whether the session has finished (after `Output::Close`).
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Client bytes held in memory. For the property tests of the memory bounds.
    #[doc(hidden)]
    pub fn buffered_bytes(&self) -> usize {
        self.framer.buffered()
    }

    /// Heap bytes of the selected mailbox's view. For the memory bound of idle sessions.
    #[doc(hidden)]
    pub fn view_bytes(&self) -> usize {
        self.selected.as_ref().map_or(0, SelectedView::heap_bytes)
    }

    fn capabilities(&self) -> String {
        responses::capabilities(
            responses::Offer {
                authenticated: self.user.is_some(),
                starttls: self.config.tls == TlsMode::StartTlsOffered && !self.tls_active,
                login_disabled: !self.auth_allowed(),
            },
            &self.config.limits,
        )
    }

    /// LOGIN and AUTHENTICATE need TLS unless the configuration allows plaintext.
    fn auth_allowed(&self) -> bool {
        self.tls_active || self.config.plaintext_auth
    }

    // Outputs.

    fn send(&mut self, bytes: Vec<u8>) {
        self.outputs.push_back(Output::Send(bytes));
    }

    fn event(&mut self, event: SessionEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// A tagged NO or BAD: logged, and BAD counts toward `bad_commands`.
    fn reject(&mut self, tag: &str, kind: Kind, code: Option<&str>, text: &str, command: &str) {
        self.send(responses::tagged(tag, kind, code, text));
        self.rejected(command, kind == Kind::Bad);
    }

    fn rejected(&mut self, command: &str, bad: bool) {
        self.event(SessionEvent::CommandRejected {
            command: command.to_owned(),
            bad,
        });
        if bad {
            self.bad_commands = self.bad_commands.saturating_add(1);
            if self.bad_commands >= self.config.limits.bad_commands {
                self.close(
                    Some("Too many invalid commands"),
                    DisconnectReason::TooManyBadCommands,
                );
            }
        }
    }

    /// Ends the session: an optional BYE, the event, then `Output::Close`.
    fn close(&mut self, bye: Option<&str>, reason: DisconnectReason) {
        if self.is_closed() {
            return;
        }
        if let Some(text) = bye {
            self.send(responses::bye(text));
        }
        self.event(SessionEvent::Disconnected { reason });
        self.outputs.push_back(Output::Close);
        self.mode = Mode::Closed;
        self.framer.clear();
        self.selected = None;
    }

    /// Asks the driver about the user's mailboxes and waits for the answer.
    fn ask(&mut self, now: Instant, request: MailboxRequest, purpose: Purpose) {
        let Some(user) = self.user.clone() else {
            return;
        };
        let token = self.tokens.next();
        self.outputs.push_back(Output::Mailbox {
            token,
            user,
            request,
        });
        self.mode = Mode::Waiting(Wait {
            token,
            deadline: now + self.config.limits.driver_timeout,
            purpose,
        });
    }

    /// Finishes a command: pending changes of the selected mailbox first (asking the
    /// store if it said something changed), then the tagged response.
    fn finish(&mut self, now: Instant, response: Vec<u8>, expunge_allowed: bool) {
        if self.is_closed() {
            return;
        }
        if self.changed
            && let Some(view) = &self.selected
        {
            self.changed = false;
            let request = MailboxRequest::Changes {
                mailbox: view.mailbox.clone(),
                since_modseq: view.highest_modseq(),
                known_uidnext: view.uidnext(),
            };
            self.ask(
                now,
                request,
                Purpose::Changes(AfterChanges::Finish {
                    response,
                    expunge_allowed,
                }),
            );
            return;
        }
        self.report_view(expunge_allowed);
        self.send(response);
        if matches!(self.mode, Mode::Waiting(_)) {
            self.mode = Mode::Command;
        }
    }

    /// Sends what the selected mailbox's view holds back, as far as allowed.
    fn report_view(&mut self, expunge_allowed: bool) {
        let vanished = self.enabled.qresync;
        let Some(view) = &mut self.selected else {
            return;
        };
        for report in view.report(expunge_allowed, vanished) {
            let line = match report {
                ViewReport::Expunge(seq) => format!("* {seq} EXPUNGE\r\n"),
                ViewReport::Vanished(uids) => format!("* VANISHED {}\r\n", uids.to_imap()),
                ViewReport::Exists(count) => format!("* {count} EXISTS\r\n"),
            };
            self.outputs.push_back(Output::Send(line.into_bytes()));
        }
    }

    // Input.

    fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.mode {
            Mode::Closed => return,
            Mode::TlsHandshake => {
                // Plaintext after STARTTLS's OK would be read as if it came through
                // TLS: the command-injection class of CVE-2011-0411.
                self.close(None, DisconnectReason::StartTlsInjection);
                return;
            }
            _ => {}
        }
        self.framer.push(bytes);
        self.process(now);
        self.check_overflow();
        self.framer.compact();
    }

    fn check_overflow(&mut self) {
        if matches!(self.mode, Mode::Waiting(_))
            && self.framer.pending() > self.config.limits.pipeline_buffer
        {
            self.close(Some("Too much input"), DisconnectReason::InputOverflow);
        }
    }

    /// Reads buffered input until it runs out or the session must wait.
    fn process(&mut self, now: Instant) {
        loop {
            let read = match self.mode {
                Mode::Command => ReadMode::Command,
                Mode::AuthResponse { .. } | Mode::Idle { .. } => ReadMode::Line,
                Mode::Waiting(_) | Mode::TlsHandshake | Mode::Closed => return,
            };
            let Some(framed) = self.framer.next(read) else {
                return;
            };
            match framed {
                Framed::Command => {
                    let command = self.framer.take_command();
                    self.idle_deadline = now + self.autologout();
                    self.on_command(now, &command);
                }
                Framed::Literal(announcement) => self.on_literal(announcement),
                Framed::Line(line) => match std::mem::replace(&mut self.mode, Mode::Command) {
                    Mode::AuthResponse { tag } => self.on_auth_response(now, tag, &line),
                    Mode::Idle { tag } => self.on_idle_line(now, tag, &line),
                    other => self.mode = other,
                },
                Framed::TooLong { start } => {
                    // An overlong AUTHENTICATE response or IDLE line ends that
                    // command; an overlong command line is answered under its own tag.
                    let tag = match std::mem::replace(&mut self.mode, Mode::Command) {
                        Mode::AuthResponse { tag } | Mode::Idle { tag } => tag,
                        _ => commands::tag_of(&start),
                    };
                    self.reject(&tag, Kind::Bad, Some("TOOBIG"), "Line too long", "line");
                }
                Framed::Dropped => {
                    if let Some(response) = self.owed_after_drop.take() {
                        self.send(response);
                    }
                }
            }
        }
    }

    /// Whether the client speaks UTF-8 mailbox names (IMAP4rev2 or UTF8=ACCEPT
    /// enabled) rather than modified UTF-7.
    fn utf8_names(&self) -> bool {
        self.enabled.utf8 || self.enabled.imap4rev2
    }

    fn autologout(&self) -> crate::time::Duration {
        if self.user.is_some() {
            self.config.limits.autologout
        } else {
            self.config.limits.unauthenticated_timeout
        }
    }

    /// A literal announced: take it if the grammar allows one there and it is
    /// within bounds (APPEND's message up to APPENDLIMIT, anything else up to the
    /// command bound).
    fn on_literal(&mut self, announcement: frame::Announcement) {
        use imap_codec::CommandCodec;
        use imap_codec::decode::{CommandDecodeError, Decoder};
        let command = self.framer.command();
        let tag = commands::tag_of(command);
        let is_append = commands::verb_of(command).eq_ignore_ascii_case("APPEND");
        // Only an authenticated client may send a message-sized literal.
        let fits = if is_append && self.user.is_some() {
            announcement.length <= self.config.limits.append_limit
        } else {
            command.len().saturating_add(announcement.length as usize) <= self.config.limits.command
        };
        let is_literal = matches!(
            CommandCodec::default().decode(command),
            Err(CommandDecodeError::LiteralFound { .. })
        ) || commands::verb_of(command).eq_ignore_ascii_case("LIST");
        if is_literal && fits {
            self.framer.accept_literal(announcement);
            if announcement.synchronising {
                self.send(responses::continuation("Ready for literal data"));
            }
            return;
        }
        let (kind, code, text) = if !is_literal {
            (Kind::Bad, None, "Invalid command")
        } else if is_append {
            (Kind::No, Some("TOOBIG"), "Message too big")
        } else {
            (Kind::Bad, Some("TOOBIG"), "Literal too big")
        };
        self.framer.refuse_literal(announcement);
        let response = responses::tagged(&tag, kind, code, text);
        if announcement.synchronising {
            self.send(response);
        } else {
            self.owed_after_drop = Some(response);
        }
        self.rejected(
            if is_append { "APPEND" } else { "literal" },
            kind == Kind::Bad,
        );
    }
}

impl Machine for ImapSession {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Bytes(bytes) => self.on_bytes(now, &bytes),
            Input::TlsEstablished => {
                if matches!(self.mode, Mode::TlsHandshake) {
                    self.tls_active = true;
                    self.mode = Mode::Command;
                    self.event(SessionEvent::TlsStarted);
                }
            }
            Input::TlsFailed => self.close(None, DisconnectReason::TlsFailed),
            Input::CredentialsChecked { token, outcome } => {
                if let Mode::Waiting(wait) = &self.mode
                    && wait.token == token
                    && let Mode::Waiting(wait) = std::mem::replace(&mut self.mode, Mode::Command)
                {
                    self.on_credentials(now, wait.purpose, outcome);
                    self.process(now);
                }
            }
            Input::MailboxAnswered { token, answer } => {
                if let Mode::Waiting(wait) = &self.mode
                    && wait.token == token
                    && let Mode::Waiting(wait) = std::mem::replace(&mut self.mode, Mode::Command)
                {
                    self.on_answer(now, wait.purpose, answer);
                    self.process(now);
                    self.check_overflow();
                }
            }
            Input::MailboxChanged => {
                if self.selected.is_some() {
                    self.changed = true;
                    if let Mode::Idle { tag } = &self.mode {
                        let tag = tag.clone();
                        self.idle_changes(now, AfterChanges::IdleUpdate { tag });
                    }
                }
            }
            Input::Tick => match &self.mode {
                Mode::Closed => {}
                Mode::Waiting(wait) if now >= wait.deadline => self.close(
                    Some("Internal timeout, try again later"),
                    DisconnectReason::DriverTimeout,
                ),
                Mode::Waiting(_) => {}
                _ if now >= self.idle_deadline => self.close(
                    Some("Autologout; idle for too long"),
                    DisconnectReason::Timeout,
                ),
                _ => {}
            },
            Input::PeerClosed => self.close(None, DisconnectReason::PeerClosed),
            Input::Shutdown => self.close(Some("Server shutting down"), DisconnectReason::Shutdown),
        }
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Closed => None,
            Mode::Waiting(wait) => Some(wait.deadline),
            _ => Some(self.idle_deadline),
        }
    }
}
