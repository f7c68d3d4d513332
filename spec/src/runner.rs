//! Replays a vector against `ServerSession` on a virtual clock, as a driver would,
//! checking every expectation and recording a byte-exact transcript.
//!
//! The runner is strict on purpose: before every input (client bytes, a driver
//! answer, time passing) everything the session sent so far must have been
//! expected, and at the end every question the session asked must have been
//! answered or deliberately ignored. A vector therefore states exactly *when* each
//! reply appears, which is what proves that replies are held back (the durable 250,
//! pipelined replies waiting on a recipient verdict).

use crate::escape::{escape, quoted, unescape};
use crate::vector::{
    Action, Answer, Check, CredentialAnswer, DriverInput, Expect, Feed, Listener, MessageField,
    RecipientAnswer, RecipientStoreAnswer, ReplyPattern, Split, StoreAnswer, Vector,
};
use sluice_core::machine::{Machine, Token};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{
    AcceptedMessage, CredentialOutcome, Credentials, Input, ListenerKind, Output, RecipientCheck,
    RecipientStoreOutcome, RecipientVerdict, ServerSession, SessionConfig, SessionEvent,
    StoreOutcome,
};
use sluice_core::time::{Duration, Instant};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The server name every vector's session is configured with.
pub const HOSTNAME: &str = "mx.sluice.test";

/// A tick loop that does not move the session's deadline forward is a session bug;
/// this bounds how long the runner keeps ticking before it says so.
const MAX_TICKS_PER_ADVANCE: usize = 64;

/// The result of one replay.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The whole dialogue as it happened, up to the first failure.
    pub transcript: String,
    /// Empty when the vector passed; the runner stops at the first failure, so at most one.
    pub failures: Vec<Failure>,
    pub feed: Feed,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A broken expectation, at a line of the vector file (0 for the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Replays `vector` against Sluice's `ServerSession`. `feed` is honoured unless the
/// vector pins its split.
pub fn run(vector: &Vector, feed: Feed) -> Outcome {
    if vector.listener.is_pop3() {
        return crate::pop3::run(vector, feed);
    }
    if vector.listener.is_imap() {
        return crate::imap::run(vector, feed);
    }
    run_with(vector, feed, |now, vector| {
        let config = session_config(vector)?;
        Ok(match vector.admission {
            None => ServerSession::new(now, config),
            Some(refusal) => ServerSession::refusing(now, config, refusal),
        })
    })
}

/// The session configuration a vector asks for.
pub fn session_config(vector: &Vector) -> Result<SessionConfig, String> {
    let hostname = Domain::parse(HOSTNAME)
        .map_err(|e| format!("core rejects the host name {HOSTNAME}: {e}"))?;
    let kind = match vector.listener {
        Listener::Mx => ListenerKind::Mx,
        Listener::Submission | Listener::Submissions => ListenerKind::Submission,
        Listener::Lmtp => ListenerKind::Lmtp,
        Listener::Pop3 | Listener::Pop3s | Listener::Imap | Listener::Imaps => {
            return Err("a POP3 or IMAP vector has no SMTP session configuration".to_string());
        }
    };
    Ok(SessionConfig {
        kind,
        hostname,
        tls: vector.tls,
        auth_requires_tls: vector.auth_requires_tls,
        limits: vector.limits.clone(),
    })
}

/// Replays `vector` against any machine with the server session's inputs and
/// outputs; `start` creates it at the epoch. The harness tests itself this way.
pub fn run_with<M, F>(vector: &Vector, feed: Feed, start: F) -> Outcome
where
    M: Machine<Input = Input, Output = Output>,
    F: FnOnce(Instant, &Vector) -> Result<M, String>,
{
    let feed = effective_feed(vector, feed);
    let mut replay = Replay::new(vector, feed);
    let result = catch_unwind(AssertUnwindSafe(|| replay.execute(start)));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            Some(Failure {
                line: replay.current_line,
                message: format!("the session panicked: {message}"),
            })
        }
    };
    if let Some(failure) = &failure {
        replay.note(format!(
            "!! FAILED at line {}: {}",
            failure.line, failure.message
        ));
    }
    Outcome {
        transcript: replay.transcript_text(),
        failures: failure.into_iter().collect(),
        feed,
    }
}

/// The feed a replay uses: the vector's pinned split, else the one asked for.
pub(crate) fn effective_feed(vector: &Vector, feed: Feed) -> Feed {
    match vector.split {
        Split::Any => feed,
        Split::AsWritten => Feed::AsWritten,
        Split::Bytes => Feed::ByteAtATime,
    }
}

/// The text of a panic, for the failure that reports it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// What the session has sent, line by line, waiting to be matched by `S:` steps.
#[derive(Clone, Debug)]
enum Observed {
    Line { bytes: Vec<u8>, terminated: bool },
    StartTls,
    Close,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Line {
                bytes,
                terminated: true,
            } => f.write_str(&escape(bytes)),
            Observed::Line {
                bytes,
                terminated: false,
            } => write!(f, "{} [no CRLF]", escape(bytes)),
            Observed::StartTls => f.write_str("<starttls>"),
            Observed::Close => f.write_str("<close>"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestKind {
    Recipient,
    Credentials,
    Store,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Recipient => "recipient check",
            RequestKind::Credentials => "credential check",
            RequestKind::Store => "store request",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    Open,
    Ignored,
    Answered,
}

#[derive(Clone, Debug)]
struct Request {
    token: Token,
    kind: RequestKind,
    state: RequestState,
}

struct Replay<'v, M> {
    vector: &'v Vector,
    feed: Feed,
    session: Option<M>,
    now: Instant,
    observed: VecDeque<Observed>,
    /// Reply bytes not yet ending in CRLF.
    partial: Vec<u8>,
    requests: Vec<Request>,
    events: Vec<String>,
    /// `E: event` matches in order: the next search starts here.
    event_cursor: usize,
    last_message: Option<AcceptedMessage>,
    last_credentials: Option<Credentials>,
    last_check: Option<RecipientCheck>,
    /// Bytes from `C+:`/`R+:` lines waiting for the line that sends them.
    chunk: Vec<u8>,
    closed: bool,
    tls_pending: bool,
    current_line: usize,
    transcript: Vec<String>,
}

/// The result of one step of the replay: carry on, or the failure that ends it.
type Checked<T = ()> = Result<T, Failure>;

impl<'v, M: Machine<Input = Input, Output = Output>> Replay<'v, M> {
    fn new(vector: &'v Vector, feed: Feed) -> Self {
        Replay {
            vector,
            feed,
            session: None,
            now: Instant::EPOCH,
            observed: VecDeque::new(),
            partial: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
            event_cursor: 0,
            last_message: None,
            last_credentials: None,
            last_check: None,
            chunk: Vec::new(),
            closed: false,
            tls_pending: false,
            current_line: 0,
            transcript: header(vector, feed),
        }
    }

    fn fail<T>(&self, message: impl Into<String>) -> Checked<T> {
        Err(Failure {
            line: self.current_line,
            message: message.into(),
        })
    }

    fn note(&mut self, line: impl Into<String>) {
        self.transcript.push(line.into());
    }

    fn transcript_text(&self) -> String {
        let mut text = self.transcript.join("\n");
        text.push('\n');
        text
    }

    fn execute(&mut self, start: impl FnOnce(Instant, &Vector) -> Result<M, String>) -> Checked {
        match start(self.now, self.vector) {
            Ok(session) => self.session = Some(session),
            Err(message) => return self.fail(message),
        }
        self.drain();
        let vector = self.vector;
        for step in &vector.steps {
            self.current_line = step.line;
            match &step.action {
                Action::Send { bytes, flush } => {
                    self.chunk.extend_from_slice(bytes);
                    if *flush {
                        let chunk = std::mem::take(&mut self.chunk);
                        self.send(chunk)?;
                    }
                }
                Action::Expect(expect) => self.expect(expect)?,
                Action::Driver(input) => self.driver(input)?,
                Action::Advance(duration) => self.advance(*duration)?,
                Action::Check(check) => self.check(check)?,
            }
        }
        self.current_line = self.vector.steps.last().map_or(0, |step| step.line);
        if let Some(unexpected) = self.observed.front() {
            return self.fail(format!("after the last step the session sent `{unexpected}`, which the vector does not expect"));
        }
        if let Some(open) = self.requests.iter().find(|r| r.state == RequestState::Open) {
            return self.fail(format!(
                "the session's {} {} was never answered (answer it, or `ignore` it to let it time out)",
                open.kind, open.token
            ));
        }
        Ok(())
    }

    // `execute` creates the session before the first step, so the `None` arms below
    // never run; they exist so that the library holds no panic.
    fn handle(&mut self, input: Input) {
        let now = self.now;
        if let Some(session) = &mut self.session {
            session.handle(now, input);
        }
        self.drain();
    }

    fn next_output(&mut self) -> Option<Output> {
        self.session.as_mut().and_then(Machine::poll)
    }

    /// Takes every output, recording it and sorting it into replies, requests and events.
    fn drain(&mut self) {
        while let Some(output) = self.next_output() {
            match output {
                Output::Send(bytes) => {
                    for (line, terminated) in split_lines(&bytes) {
                        let shown = if terminated {
                            escape(line)
                        } else {
                            format!("{} [no CRLF]", escape(line))
                        };
                        self.note(format!("S: {shown}"));
                    }
                    self.partial.extend_from_slice(&bytes);
                    while let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") {
                        let line: Vec<u8> = self.partial.drain(..end + 2).take(end).collect();
                        self.observed.push_back(Observed::Line {
                            bytes: line,
                            terminated: true,
                        });
                    }
                }
                Output::StartTls => {
                    self.flush_partial();
                    self.note("S: <starttls>");
                    self.tls_pending = true;
                    self.observed.push_back(Observed::StartTls);
                }
                Output::Close => {
                    self.flush_partial();
                    self.note("S: <close>");
                    self.closed = true;
                    self.observed.push_back(Observed::Close);
                }
                Output::CheckRecipient { token, check } => {
                    self.note(format!(
                        "?: {token} check recipient {}",
                        render_check(&check)
                    ));
                    self.requests.push(Request {
                        token,
                        kind: RequestKind::Recipient,
                        state: RequestState::Open,
                    });
                    self.last_check = Some(check);
                }
                Output::CheckCredentials { token, credentials } => {
                    self.note(format!(
                        "?: {token} check credentials {}",
                        render_credentials(&credentials)
                    ));
                    self.requests.push(Request {
                        token,
                        kind: RequestKind::Credentials,
                        state: RequestState::Open,
                    });
                    self.last_credentials = Some(credentials);
                }
                Output::StoreMessage { token, message } => {
                    self.note(format!(
                        "?: {token} store from={} to={} helo={} esmtp={} tls={} auth={} ({} octets)",
                        render_field(&message, MessageField::From),
                        render_field(&message, MessageField::To),
                        message.helo,
                        message.esmtp,
                        message.tls,
                        render_field(&message, MessageField::Auth),
                        message.data.len()
                    ));
                    for (line, _) in split_lines_keeping_ends(&message.data) {
                        self.note(format!("?:    data {}", quoted(line)));
                    }
                    self.requests.push(Request {
                        token,
                        kind: RequestKind::Store,
                        state: RequestState::Open,
                    });
                    self.last_message = Some(message);
                }
                Output::Event(event) => {
                    let rendered = render_event(&event);
                    self.note(format!("   event: {rendered}"));
                    self.events.push(rendered);
                }
            }
        }
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let bytes = std::mem::take(&mut self.partial);
            self.observed.push_back(Observed::Line {
                bytes,
                terminated: false,
            });
        }
    }

    /// Every input is preceded by this: the vector must have accounted for all output.
    fn ensure_drained(&self, before: &str) -> Checked {
        match self.observed.front() {
            Some(unexpected) => self.fail(format!(
                "the session sent `{unexpected}` before {before}, and the vector does not expect it"
            )),
            None => Ok(()),
        }
    }

    fn send(&mut self, chunk: Vec<u8>) -> Checked {
        self.ensure_drained("this client input")?;
        if self.closed {
            return self.fail("the session has closed the connection; the client cannot send more");
        }
        for line in render_client_chunk(&chunk) {
            self.note(line);
        }
        match self.feed {
            Feed::AsWritten => self.handle(Input::Bytes(chunk)),
            Feed::ByteAtATime => {
                for (index, byte) in chunk.iter().enumerate() {
                    // A driver stops reading plaintext once the session closes or asks for TLS.
                    if self.closed || self.tls_pending {
                        self.note(format!(
                            "   ({} bytes left unread by the driver)",
                            chunk.len() - index
                        ));
                        break;
                    }
                    self.handle(Input::Bytes(vec![*byte]));
                }
            }
        }
        Ok(())
    }

    fn expect(&mut self, expect: &Expect) -> Checked {
        if *expect == Expect::Nothing {
            return match self.observed.front() {
                Some(unexpected) => self.fail(format!(
                    "expected no reply yet, but the session sent `{unexpected}`"
                )),
                None => Ok(()),
            };
        }
        let Some(observed) = self.observed.pop_front() else {
            return self.fail(format!(
                "expected `{expect}`, but the session has sent nothing more"
            ));
        };
        let matched = match (expect, &observed) {
            (
                Expect::Reply(pattern),
                Observed::Line {
                    bytes,
                    terminated: true,
                },
            ) => reply_matches(pattern, bytes),
            (Expect::StartTls, Observed::StartTls) | (Expect::Close, Observed::Close) => true,
            _ => false,
        };
        if matched {
            Ok(())
        } else {
            self.fail(format!(
                "expected `{expect}`, but the session sent `{observed}`"
            ))
        }
    }

    fn open_request(&mut self, kind: RequestKind) -> Checked<&mut Request> {
        let line = self.current_line;
        self.requests
            .iter_mut()
            .find(|r| r.kind == kind && r.state == RequestState::Open)
            .ok_or_else(|| Failure {
                line,
                message: format!(
                    "no {kind} is waiting for an answer: the session has not asked for one"
                ),
            })
    }

    fn answer<T>(
        &mut self,
        kind: RequestKind,
        answer: &Answer<T>,
        describe: &str,
    ) -> Checked<Option<Token>> {
        self.ensure_drained("this driver input")?;
        let request = self.open_request(kind)?;
        let token = request.token;
        match answer {
            Answer::Ignore => {
                request.state = RequestState::Ignored;
                self.note(format!("D: {token} {kind} left unanswered"));
                Ok(None)
            }
            Answer::Give(_) => {
                request.state = RequestState::Answered;
                self.note(format!("D: {token} {describe}"));
                Ok(Some(token))
            }
        }
    }

    fn driver(&mut self, input: &DriverInput) -> Checked {
        match input {
            DriverInput::Recipient(answer) => {
                let describe = match answer {
                    Answer::Give(RecipientAnswer::Accept) | Answer::Ignore => "recipient accept",
                    Answer::Give(RecipientAnswer::Unknown) => "recipient unknown",
                    Answer::Give(RecipientAnswer::RelayDenied) => "recipient relay-denied",
                    Answer::Give(RecipientAnswer::TempFail) => "recipient tempfail",
                };
                if let (Some(token), Answer::Give(verdict)) = (
                    self.answer(RequestKind::Recipient, answer, describe)?,
                    answer,
                ) {
                    let verdict = match verdict {
                        RecipientAnswer::Accept => RecipientVerdict::Accept,
                        RecipientAnswer::Unknown => RecipientVerdict::UnknownUser,
                        RecipientAnswer::RelayDenied => RecipientVerdict::RelayDenied,
                        RecipientAnswer::TempFail => RecipientVerdict::TemporaryFailure,
                    };
                    self.handle(Input::RecipientChecked { token, verdict });
                }
            }
            DriverInput::Credentials(answer) => {
                let describe = match answer {
                    Answer::Give(CredentialAnswer::Valid { identity }) => {
                        format!("credentials valid {identity}")
                    }
                    Answer::Give(CredentialAnswer::Invalid) | Answer::Ignore => {
                        "credentials invalid".to_string()
                    }
                    Answer::Give(CredentialAnswer::TempFail) => "credentials tempfail".to_string(),
                };
                if let (Some(token), Answer::Give(outcome)) = (
                    self.answer(RequestKind::Credentials, answer, &describe)?,
                    answer,
                ) {
                    let outcome = match outcome {
                        CredentialAnswer::Valid { identity } => CredentialOutcome::Valid {
                            identity: identity.clone(),
                        },
                        CredentialAnswer::Invalid => CredentialOutcome::Invalid,
                        CredentialAnswer::TempFail => CredentialOutcome::TemporaryFailure,
                    };
                    self.handle(Input::CredentialsChecked { token, outcome });
                }
            }
            DriverInput::Store(answer) => {
                let describe = match answer {
                    Answer::Give(StoreAnswer::Stored { queue_id }) => format!("stored {queue_id}"),
                    Answer::Give(StoreAnswer::Failed) | Answer::Ignore => {
                        "store failed".to_string()
                    }
                    Answer::Give(StoreAnswer::PerRecipient { queue_id, outcomes }) => {
                        let words: Vec<String> = outcomes.iter().map(ToString::to_string).collect();
                        format!("per-recipient {queue_id} {}", words.join(" "))
                    }
                };
                if let (Some(token), Answer::Give(outcome)) =
                    (self.answer(RequestKind::Store, answer, &describe)?, answer)
                {
                    let outcome = match outcome {
                        StoreAnswer::Stored { queue_id } => StoreOutcome::Stored {
                            queue_id: queue_id.clone(),
                        },
                        StoreAnswer::Failed => StoreOutcome::Failed,
                        StoreAnswer::PerRecipient { queue_id, outcomes } => {
                            StoreOutcome::PerRecipient {
                                queue_id: queue_id.clone(),
                                recipients: outcomes
                                    .iter()
                                    .map(|outcome| match outcome {
                                        RecipientStoreAnswer::Stored => {
                                            RecipientStoreOutcome::Stored
                                        }
                                        RecipientStoreAnswer::TempFail => {
                                            RecipientStoreOutcome::TemporaryFailure
                                        }
                                        RecipientStoreAnswer::MailboxFull => {
                                            RecipientStoreOutcome::MailboxFull
                                        }
                                        RecipientStoreAnswer::UnknownUser => {
                                            RecipientStoreOutcome::UnknownUser
                                        }
                                    })
                                    .collect(),
                            }
                        }
                    };
                    self.handle(Input::MessageStored { token, outcome });
                }
            }
            DriverInput::Mailbox(_) | DriverInput::MailboxChanged | DriverInput::Deliver { .. } => {
                return self.fail("an IMAP driver answer in an SMTP vector");
            }
            DriverInput::Maildrop(_) | DriverInput::Read(_) | DriverInput::Commit(_) => {
                return self.fail("a POP3 driver answer in an SMTP vector");
            }
            DriverInput::TlsEstablished | DriverInput::TlsFailed => {
                self.ensure_drained("this driver input")?;
                if !self.tls_pending {
                    return self.fail("the session has not asked for a TLS handshake");
                }
                self.tls_pending = false;
                if *input == DriverInput::TlsEstablished {
                    self.note("D: tls established");
                    self.handle(Input::TlsEstablished);
                } else {
                    self.note("D: tls failed");
                    self.handle(Input::TlsFailed);
                }
            }
            DriverInput::PeerClosed => {
                self.ensure_drained("this driver input")?;
                self.note("D: peer closed");
                self.handle(Input::PeerClosed);
            }
            DriverInput::Shutdown => {
                self.ensure_drained("this driver input")?;
                self.note("D: shutdown");
                self.handle(Input::Shutdown);
            }
        }
        Ok(())
    }

    /// Moves the clock forward, ticking the session at every deadline on the way, as
    /// a driver's timer would.
    fn advance(&mut self, duration: Duration) -> Checked {
        self.ensure_drained("time passes")?;
        let target = self.now + duration;
        self.note(format!("T: +{duration} (now t+{}ms)", target.as_millis()));
        let mut ticks = 0;
        while !self.closed {
            let Some(deadline) = self.session.as_ref().and_then(Machine::next_deadline) else {
                break;
            };
            if deadline > target {
                break;
            }
            ticks += 1;
            if ticks > MAX_TICKS_PER_ADVANCE {
                return self.fail(format!(
                    "the session's deadline stays at t+{}ms however often it is ticked",
                    deadline.as_millis()
                ));
            }
            self.now = self.now.max(deadline);
            self.note(format!("   tick at t+{}ms", self.now.as_millis()));
            self.handle(Input::Tick);
        }
        self.now = target;
        Ok(())
    }

    fn check(&mut self, check: &Check) -> Checked {
        match check {
            Check::Event(pattern) => {
                let found = self.events[self.event_cursor..]
                    .iter()
                    .position(|event| text_matches(pattern, event));
                match found {
                    Some(offset) => {
                        self.event_cursor += offset + 1;
                        Ok(())
                    }
                    None => self.fail(format!(
                        "no event matching `{pattern}` after the previous match; events so far: [{}]",
                        self.events.join("; ")
                    )),
                }
            }
            Check::Message { field, expected } => {
                let Some(message) = &self.last_message else {
                    return self.fail("the session has not asked to store any message");
                };
                if *field == MessageField::Data {
                    let expected_bytes = unescape(expected).unwrap_or_default();
                    if message.data != expected_bytes {
                        return self.fail(format!(
                            "stored data differs:\n  expected {}\n  actual   {}",
                            quoted(&expected_bytes),
                            quoted(&message.data)
                        ));
                    }
                    return Ok(());
                }
                let actual = render_field(message, *field);
                if actual == *expected {
                    Ok(())
                } else {
                    self.fail(format!(
                        "message {field}: expected `{expected}`, got `{actual}`"
                    ))
                }
            }
            Check::Credentials(expected) => {
                let Some(credentials) = &self.last_credentials else {
                    return self.fail("the session has not asked to check any credentials");
                };
                let actual = render_credentials(credentials);
                if actual == *expected {
                    Ok(())
                } else {
                    self.fail(format!(
                        "credentials: expected `{expected}`, got `{actual}`"
                    ))
                }
            }
            Check::Maildrop(_) | Check::Commit(_) => self.fail("a POP3 check in an SMTP vector"),
            Check::Recipient(expected) => {
                let Some(recipient_check) = &self.last_check else {
                    return self.fail("the session has not asked to check any recipient");
                };
                let actual = render_check(recipient_check);
                if actual == *expected {
                    Ok(())
                } else {
                    self.fail(format!(
                        "recipient check: expected `{expected}`, got `{actual}`"
                    ))
                }
            }
        }
    }
}

pub(crate) fn header(vector: &Vector, feed: Feed) -> Vec<String> {
    let mut lines = vec![format!("# {}", vector.title)];
    lines.extend(vector.notes.iter().map(|note| format!("# {note}")));
    lines.extend(
        vector
            .proves
            .iter()
            .map(|proves| format!("proves: {proves}")),
    );
    lines.extend(
        vector
            .known_discrepancy
            .iter()
            .map(|reason| format!("known-discrepancy: {reason}")),
    );
    let tls = match vector.tls {
        sluice_core::smtp::server::TlsMode::Unavailable => "unavailable",
        sluice_core::smtp::server::TlsMode::StartTlsOffered => "starttls",
        sluice_core::smtp::server::TlsMode::Implicit => "implicit",
    };
    lines.push(format!(
        "listener: {} (tls {tls}, host {HOSTNAME})",
        vector.listener
    ));
    lines.extend(
        vector
            .settings
            .iter()
            .map(|setting| format!("set: {setting}")),
    );
    lines.push(format!(
        "feed: {}",
        match feed {
            Feed::AsWritten => "as written",
            Feed::ByteAtATime => "one byte per input",
        }
    ));
    lines.push(String::new());
    lines
}

/// Splits reply bytes into lines without their CRLF, flagging a last line that lacks one.
pub(crate) fn split_lines(bytes: &[u8]) -> Vec<(&[u8], bool)> {
    split_lines_keeping_ends(bytes)
        .into_iter()
        .map(|(line, terminated)| {
            if terminated {
                (&line[..line.len() - 2], true)
            } else {
                (line, false)
            }
        })
        .collect()
}

/// Splits at each CRLF, keeping it; only CRLF ends a line, so a bare CR or LF stays
/// visible inside the line that holds it.
pub(crate) fn split_lines_keeping_ends(bytes: &[u8]) -> Vec<(&[u8], bool)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
            lines.push((&bytes[start..i + 2], true));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        lines.push((&bytes[start..], false));
    }
    lines
}

/// Writes client bytes in the vector's own syntax: `C:` for plain lines, `R:` for
/// anything else, with `+` on every line but the last of one input.
pub(crate) fn render_client_chunk(chunk: &[u8]) -> Vec<String> {
    let segments = split_lines_keeping_ends(chunk);
    let count = segments.len();
    segments
        .into_iter()
        .enumerate()
        .map(|(index, (segment, terminated))| {
            let more = if index + 1 < count { "+" } else { "" };
            let content = &segment[..segment.len() - if terminated { 2 } else { 0 }];
            let plain = terminated
                && std::str::from_utf8(content).is_ok_and(|text| {
                    !text.chars().any(char::is_control)
                        && !text.ends_with(' ')
                        && text.len() <= 200
                        && !text.contains('\\')
                });
            if plain && content.is_empty() {
                format!("C{more}:")
            } else if plain {
                format!("C{more}: {}", String::from_utf8_lossy(content))
            } else {
                format!("R{more}: {}", escape(segment))
            }
        })
        .collect()
}

fn reply_matches(pattern: &ReplyPattern, line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    let Some(code) = text.get(..3) else {
        return false;
    };
    if code != format!("{:03}", pattern.code) {
        return false;
    }
    let rest = match (&text[3..], pattern.continued) {
        ("", false) => "",
        (rest, true) if rest.starts_with('-') => &rest[1..],
        (rest, false) if rest.starts_with(' ') => &rest[1..],
        _ => return false,
    };
    let rest = match &pattern.status {
        None => rest,
        Some(status) => match rest.strip_prefix(status.as_str()) {
            Some("") => "",
            Some(after) if after.starts_with(' ') => &after[1..],
            _ => return false,
        },
    };
    match &pattern.text {
        None => true,
        Some(wanted) => text_matches(wanted, rest),
    }
}

/// Contained, or — when the pattern holds `*` — a glob over the whole text.
pub(crate) fn text_matches(pattern: &str, text: &str) -> bool {
    if pattern.contains('*') {
        glob(pattern.as_bytes(), text.as_bytes())
    } else {
        text.contains(pattern)
    }
}

pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative wildcard matching with one backtrack point: linear enough for reply lines.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

fn render_check(check: &RecipientCheck) -> String {
    format!(
        "{} from={} auth={}",
        check.recipient,
        check.reverse_path,
        check.authenticated.as_deref().unwrap_or("none")
    )
}

pub(crate) fn render_credentials(credentials: &Credentials) -> String {
    let mut text = format!(
        "{} user={} password={}",
        credentials.mechanism, credentials.username, credentials.password
    );
    if let Some(authzid) = &credentials.authorization_id {
        text.push_str(&format!(" authzid={authzid}"));
    }
    text
}

fn render_field(message: &AcceptedMessage, field: MessageField) -> String {
    match field {
        MessageField::Data => quoted(&message.data),
        MessageField::From => {
            if message.mail_params.is_empty() {
                message.reverse_path.to_string()
            } else {
                format!("{} {}", message.reverse_path, message.mail_params)
            }
        }
        MessageField::To => message
            .recipients
            .iter()
            .map(|recipient| {
                if recipient.params.is_empty() {
                    recipient.path.to_string()
                } else {
                    format!("{} {}", recipient.path, recipient.params)
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        MessageField::Helo => message.helo.to_string(),
        MessageField::Esmtp => message.esmtp.to_string(),
        MessageField::Tls => message.tls.to_string(),
        MessageField::Auth => message
            .authenticated
            .clone()
            .unwrap_or_else(|| "none".to_string()),
    }
}

/// One line per event, in the words `E: event` patterns are written against.
pub fn render_event(event: &SessionEvent) -> String {
    match event {
        SessionEvent::Connected => "connected".to_string(),
        SessionEvent::Helo { host, esmtp } => {
            format!("helo {host} ({})", if *esmtp { "EHLO" } else { "HELO" })
        }
        SessionEvent::TlsStarted => "tls started".to_string(),
        SessionEvent::AuthSucceeded {
            mechanism,
            identity,
        } => format!("auth succeeded {mechanism} identity={identity}"),
        SessionEvent::AuthFailed {
            mechanism,
            username,
        } => {
            format!(
                "auth failed {mechanism} username={}",
                username.as_deref().unwrap_or("none")
            )
        }
        SessionEvent::RecipientRejected { recipient, code } => {
            format!("recipient rejected {recipient} {code}")
        }
        SessionEvent::TransactionAccepted {
            queue_id,
            reverse_path,
            recipients,
            stored,
            size,
        } => {
            let mut text = format!(
                "transaction accepted {queue_id} from={reverse_path} recipients={recipients} size={size}"
            );
            // Only LMTP stores for some recipients and not others; then it says which.
            if stored.len() < *recipients {
                let stored: Vec<String> = stored.iter().map(ToString::to_string).collect();
                text.push_str(&format!(" stored={}", stored.join(",")));
            }
            text
        }
        SessionEvent::TransactionRejected { code, reason } => {
            format!("transaction rejected {code} {reason:?}")
        }
        SessionEvent::CommandRejected { verb, code } => format!("command rejected {verb} {code}"),
        SessionEvent::Disconnected { reason } => format!("disconnected {reason:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(
        code: u16,
        continued: bool,
        status: Option<&str>,
        text: Option<&str>,
    ) -> ReplyPattern {
        ReplyPattern {
            code,
            continued,
            status: status.map(String::from),
            text: text.map(String::from),
        }
    }

    use crate::vector::Vector;
    use sluice_core::smtp::address::{ForwardPath, ReversePath};
    use std::path::Path;

    /// A stand-in session, so that the harness is tested on its own: `250` to every
    /// line, a recipient check for `ASK`, a one-minute deadline for `WAIT`, and
    /// `221` plus close for `QUIT`.
    #[derive(Default)]
    struct Fake {
        buffer: Vec<u8>,
        outputs: VecDeque<Output>,
        deadline: Option<Instant>,
        next_token: u64,
    }

    impl Machine for Fake {
        type Input = Input;
        type Output = Output;
        fn handle(&mut self, now: Instant, input: Input) {
            match input {
                Input::Bytes(bytes) => {
                    self.buffer.extend(bytes);
                    while let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                        let line: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                        match line.as_slice() {
                            b"QUIT" => {
                                self.outputs
                                    .push_back(Output::Send(b"221 2.0.0 bye\r\n".to_vec()));
                                self.outputs.push_back(Output::Close);
                            }
                            b"ASK" => {
                                self.next_token += 1;
                                let check = RecipientCheck {
                                    reverse_path: ReversePath::Null,
                                    recipient: ForwardPath::Postmaster,
                                    authenticated: None,
                                };
                                self.outputs.push_back(Output::CheckRecipient {
                                    token: Token(self.next_token),
                                    check,
                                });
                            }
                            b"WAIT" => self.deadline = Some(now + Duration::from_mins(1)),
                            b"PANIC" => panic!("asked to"),
                            _ => self
                                .outputs
                                .push_back(Output::Send(b"250 2.0.0 ok\r\n".to_vec())),
                        }
                    }
                }
                Input::RecipientChecked { .. } => {
                    self.outputs
                        .push_back(Output::Send(b"250 2.1.5 recipient ok\r\n".to_vec()));
                }
                Input::Tick => {
                    self.deadline = None;
                    self.outputs
                        .push_back(Output::Send(b"421 4.4.2 timeout\r\n".to_vec()));
                    self.outputs.push_back(Output::Close);
                }
                _ => {}
            }
        }
        fn poll(&mut self) -> Option<Output> {
            self.outputs.pop_front()
        }
        fn next_deadline(&self) -> Option<Instant> {
            self.deadline
        }
    }

    fn replay(body: &str, feed: Feed) -> Outcome {
        let text = format!("# Harness self-test.\nproves: nothing\n{body}");
        let vector = Vector::parse(Path::new("self-test.vector"), &text).unwrap();
        run_with(&vector, feed, |_, _| {
            let mut fake = Fake::default();
            fake.outputs
                .push_back(Output::Event(SessionEvent::Connected));
            fake.outputs
                .push_back(Output::Send(b"220 fake ESMTP\r\n".to_vec()));
            Ok(fake)
        })
    }

    fn failure(body: &str) -> Failure {
        let outcome = replay(body, Feed::AsWritten);
        assert!(
            !outcome.passed(),
            "the harness passed a wrong vector:\n{}",
            outcome.transcript
        );
        outcome.failures[0].clone()
    }

    const GOOD: &str = "S: 220 fake\nE: event connected\nC+: NOOP\nC: ASK\nS: 250 2.0.0 ok\nS: <nothing>\n\
                        D: recipient accept\nS: 250 2.1.5\nE: recipient <Postmaster> from=<> auth=none\n\
                        C: WAIT\nS: <nothing>\nT: +59s\nS: <nothing>\nT: +1s\nS: 421 4.4.2 timeout\nS: <close>\n";

    #[test]
    fn a_correct_vector_passes_in_both_feeds() {
        for feed in [Feed::AsWritten, Feed::ByteAtATime] {
            let outcome = replay(GOOD, feed);
            assert!(
                outcome.passed(),
                "{:?}\n{}",
                outcome.failures,
                outcome.transcript
            );
        }
        let transcript = replay(GOOD, Feed::AsWritten).transcript;
        assert!(
            transcript
                .contains("C+: NOOP\nC: ASK\nS: 250 2.0.0 ok\n?: #1 check recipient <Postmaster>"),
            "{transcript}"
        );
        assert!(
            transcript.contains("   tick at t+60000ms\nS: 421 4.4.2 timeout\nS: <close>"),
            "{transcript}"
        );
    }

    #[test]
    fn a_wrong_expectation_fails_at_its_line() {
        let found = failure("S: 554\n");
        assert_eq!(found.line, 3);
        assert_eq!(
            found.message,
            "expected `554 `, but the session sent `220 fake ESMTP`"
        );
        assert_eq!(failure("S: 220\nC: NOOP\nS: 250 2.1.0\n").line, 5);
        assert_eq!(failure("S: 220\nC: NOOP\nS: 250-\n").line, 5);
        assert_eq!(failure("S: 220\nC: NOOP\nS: 250 2.0.0 accepted\n").line, 5);
    }

    #[test]
    fn an_unexpected_reply_fails() {
        let found = failure("S: 220\nC: NOOP\nC: NOOP\nS: 250\n");
        assert_eq!(found.line, 5);
        assert!(
            found
                .message
                .contains("sent `250 2.0.0 ok` before this client input"),
            "{}",
            found.message
        );
        let found = failure("S: 220\nC: NOOP\n");
        assert!(
            found
                .message
                .contains("after the last step the session sent `250 2.0.0 ok`"),
            "{}",
            found.message
        );
        let found = failure("S: 220\nC: NOOP\nS: <nothing>\n");
        assert!(
            found.message.contains("expected no reply yet"),
            "{}",
            found.message
        );
        assert!(
            failure("S: 220\nC: QUIT\nS: 221\n")
                .message
                .contains("`<close>`")
        );
    }

    #[test]
    fn a_missing_reply_fails() {
        let found = failure("S: 220\nC: NOOP\nS: 250\nS: 250\n");
        assert_eq!(
            (found.line, found.message.as_str()),
            (6, "expected `250 `, but the session has sent nothing more")
        );
        assert_eq!(failure("S: 220\nC: NOOP\nS: 250\nS: <close>\n").line, 6);
        assert_eq!(failure("S: 220\nC: QUIT\nS: 221\nS: <starttls>\n").line, 6);
    }

    #[test]
    fn requests_must_be_answered_and_answers_must_be_asked_for() {
        assert!(
            failure("S: 220\nC: ASK\n")
                .message
                .contains("#1 was never answered")
        );
        assert!(
            failure("S: 220\nD: recipient accept\n")
                .message
                .contains("no recipient check is waiting")
        );
        assert!(
            failure("S: 220\nD: stored Q1\n")
                .message
                .contains("no store request is waiting")
        );
        assert!(
            failure("S: 220\nD: tls established\n")
                .message
                .contains("has not asked for a TLS handshake")
        );
        assert!(replay("S: 220\nC: ASK\nD: recipient ignore\n", Feed::AsWritten).passed());
    }

    #[test]
    fn checks_fail_when_wrong() {
        assert!(
            failure("S: 220\nE: event disconnected\n")
                .message
                .contains("no event matching")
        );
        assert!(
            failure("S: 220\nE: event connected\nE: event connected\n")
                .message
                .contains("no event matching")
        );
        assert!(
            failure("S: 220\nE: message data \"x\"\n")
                .message
                .contains("not asked to store")
        );
        let found = failure(
            "S: 220\nC: ASK\nD: recipient accept\nS: 250\nE: recipient <bob@x> from=<> auth=none\n",
        );
        assert!(
            found
                .message
                .contains("got `<Postmaster> from=<> auth=none`"),
            "{}",
            found.message
        );
    }

    #[test]
    fn a_closed_connection_takes_no_more_input() {
        let found = failure("S: 220\nC: QUIT\nS: 221\nS: <close>\nC: NOOP\n");
        assert_eq!(found.line, 7);
        assert!(found.message.contains("closed the connection"));
    }

    #[test]
    fn a_panicking_session_is_a_failure_not_a_crash() {
        let found = failure("S: 220\nC: PANIC\n");
        assert_eq!(
            (found.line, found.message.as_str()),
            (4, "the session panicked: asked to")
        );
    }

    #[test]
    fn reply_patterns_match_code_separator_status_and_text() {
        let line = b"250 2.1.0 sender ok";
        assert!(reply_matches(&pattern(250, false, None, None), line));
        assert!(reply_matches(
            &pattern(250, false, Some("2.1.0"), None),
            line
        ));
        assert!(reply_matches(
            &pattern(250, false, Some("2.1.0"), Some("sender")),
            line
        ));
        assert!(reply_matches(
            &pattern(250, false, None, Some("2.1.0 sender ok")),
            line
        ));
        assert!(reply_matches(
            &pattern(250, false, Some("2.1.0"), Some("*ok")),
            line
        ));
        assert!(!reply_matches(
            &pattern(250, false, Some("2.1.0"), Some("*sender")),
            line
        ));
        assert!(!reply_matches(&pattern(250, true, None, None), line));
        assert!(!reply_matches(
            &pattern(250, false, Some("2.1.5"), None),
            line
        ));
        assert!(!reply_matches(&pattern(251, false, None, None), line));
        assert!(!reply_matches(
            &pattern(250, false, Some("2.1"), None),
            line
        ));
        assert!(reply_matches(
            &pattern(250, true, None, Some("PIPELINING")),
            b"250-PIPELINING"
        ));
        assert!(reply_matches(&pattern(334, false, None, None), b"334 "));
        assert!(reply_matches(&pattern(220, false, None, None), b"220"));
    }

    #[test]
    fn globs_match_whole_text() {
        assert!(glob(b"a*c", b"abbbc"));
        assert!(glob(b"*", b""));
        assert!(glob(b"ok: queued as *", b"ok: queued as Q1"));
        assert!(!glob(b"a*c", b"abcd"));
        assert!(glob(b"*b*b*", b"abxxbx"));
    }

    #[test]
    fn client_chunks_render_in_vector_syntax() {
        assert_eq!(
            render_client_chunk(b"MAIL FROM:<a@b>\r\nDATA\r\n"),
            ["C+: MAIL FROM:<a@b>", "C: DATA"]
        );
        assert_eq!(render_client_chunk(b"x\n.\r\n"), ["R: x\\n.\\r\\n"]);
        assert_eq!(render_client_chunk(b"BDAT 3"), ["R: BDAT 3"]);
    }

    #[test]
    fn lines_split_only_at_crlf() {
        assert_eq!(
            split_lines_keeping_ends(b"a\r\nb\nc\r\nd"),
            [
                (&b"a\r\n"[..], true),
                (&b"b\nc\r\n"[..], true),
                (&b"d"[..], false)
            ]
        );
    }
}
