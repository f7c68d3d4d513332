//! Replays an IMAP vector against `ImapSession` on a virtual clock, with the same
//! strictness as the SMTP and POP3 runners: before every input all output must have
//! been expected, every request answered (or deliberately ignored), and the
//! transcript is byte-exact. Mailbox requests are answered from core's IMAP test
//! store (`sluice_core::fuzzing::imap_store`, the one the session's own tests use),
//! seeded by the vector's `folder:` and `deliver:` lines for the user
//! [`USER`]; by default at once, or with `set: store = manual` only on `D: mailbox`.

use crate::escape::{escape, unescape};
use crate::runner::{
    Failure, HOSTNAME, Outcome, effective_feed, glob, header, panic_message, render_client_chunk,
    render_credentials, split_lines, text_matches,
};
use crate::vector::{
    Action, Answer, Check, CredentialAnswer, DriverInput, Expect, Feed, ImapFixture,
    MailboxAnswerKind, Vector,
};
use sluice_core::fuzzing::imap_store::TestStore;
use sluice_core::imap::request::MailboxRefusal;
use sluice_core::imap::{
    CredentialOutcome, Credentials, ImapSession, Input, MailboxAnswer, MailboxRequest, Output,
    SessionConfig, SessionEvent, TlsMode,
};
use sluice_core::machine::{Machine, Token};
use sluice_core::mailbox::{FlagMode, Operation};
use sluice_core::time::{Duration, Instant};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The user whose mailboxes the fixture holds; a login answered `valid` with this
/// identity sees them.
pub const USER: &str = "alice@sluice.test";

/// See `runner::MAX_TICKS_PER_ADVANCE`.
const MAX_TICKS_PER_ADVANCE: usize = 64;

/// Replays an IMAP `vector` against Sluice's `ImapSession`.
pub fn run(vector: &Vector, feed: Feed) -> Outcome {
    let feed = effective_feed(vector, feed);
    let mut replay = Replay::new(vector, feed);
    let result = catch_unwind(AssertUnwindSafe(|| replay.execute()));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(panic) => Some(Failure {
            line: replay.current_line,
            message: format!("the session panicked: {}", panic_message(panic.as_ref())),
        }),
    };
    if let Some(failure) = &failure {
        replay.transcript.push(format!(
            "!! FAILED at line {}: {}",
            failure.line, failure.message
        ));
    }
    let mut transcript = replay.transcript.join("\n");
    transcript.push('\n');
    Outcome {
        transcript,
        failures: failure.into_iter().collect(),
        feed,
    }
}

/// The IMAP configuration a vector asks for.
pub fn session_config(vector: &Vector) -> SessionConfig {
    use sluice_core::smtp::server::TlsMode as VectorTls;
    let tls = match vector.tls {
        VectorTls::Unavailable => TlsMode::Unavailable,
        VectorTls::StartTlsOffered => TlsMode::StartTlsOffered,
        VectorTls::Implicit => TlsMode::Implicit,
    };
    let mut config = SessionConfig::new(HOSTNAME, tls);
    config.plaintext_auth = vector.allow_plaintext_auth;
    config.limits = vector.imap_limits.clone();
    config
}

/// The store seeded with the vector's fixture.
pub fn fixture_store(fixture: &[ImapFixture]) -> Result<TestStore, String> {
    let mut store = TestStore::with_user(USER);
    for line in fixture {
        match line {
            ImapFixture::Folder { name } => {
                store
                    .apply(&Operation::CreateFolder {
                        user: USER.to_string(),
                        name: name.clone(),
                    })
                    .map_err(|e| format!("fixture folder {name}: {e}"))?;
            }
            ImapFixture::Deliver {
                folder,
                flags,
                bytes,
            } => deliver(&mut store, folder, flags, bytes)?,
        }
    }
    Ok(store)
}

/// Delivers to INBOX, then moves to `folder` and sets `flags` through APPEND's path.
fn deliver(
    store: &mut TestStore,
    folder: &str,
    flags: &[String],
    bytes: &[u8],
) -> Result<(), String> {
    let answer = store.answer(
        USER,
        MailboxRequest::Append {
            mailbox: folder.to_string(),
            flags: Vec::new(),
            internal_date_ms: None,
            message: bytes.to_vec(),
        },
    );
    let MailboxAnswer::Appended { uid, .. } = answer else {
        return Err(format!("fixture delivery to {folder}: {answer:?}"));
    };
    if !flags.is_empty() {
        store
            .apply(&Operation::StoreFlags {
                unchanged_since: None,
                user: USER.to_string(),
                folder: folder.to_string(),
                uids: vec![uid],
                mode: FlagMode::Set,
                flags: flags.to_vec(),
            })
            .map_err(|e| format!("fixture flags in {folder}: {e}"))?;
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Observed {
    Line { bytes: Vec<u8>, terminated: bool },
    StartTls,
    Close,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Line {
                bytes,
                terminated: true,
            } => f.write_str(&escape(bytes)),
            Observed::Line { bytes, .. } => write!(f, "{} [no CRLF]", escape(bytes)),
            Observed::StartTls => f.write_str("<starttls>"),
            Observed::Close => f.write_str("<close>"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Credentials,
    Mailbox,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Credentials => "credential check",
            Kind::Mailbox => "mailbox request",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Ignored,
    Answered,
}

struct Request {
    token: Token,
    kind: Kind,
    state: State,
    /// For a mailbox request: the user and the request, answered later.
    mailbox: Option<(String, MailboxRequest)>,
}

type Checked<T = ()> = Result<T, Failure>;

struct Replay<'v> {
    vector: &'v Vector,
    feed: Feed,
    session: Option<ImapSession>,
    store: TestStore,
    now: Instant,
    observed: VecDeque<Observed>,
    partial: Vec<u8>,
    requests: Vec<Request>,
    /// Mailbox requests to answer at once (automatic store), in order.
    automatic: VecDeque<(Token, String, MailboxRequest)>,
    events: Vec<String>,
    event_cursor: usize,
    last_credentials: Option<Credentials>,
    chunk: Vec<u8>,
    closed: bool,
    tls_pending: bool,
    current_line: usize,
    transcript: Vec<String>,
}

impl<'v> Replay<'v> {
    fn new(vector: &'v Vector, feed: Feed) -> Self {
        let mut transcript = header(vector, feed);
        if !vector.imap_fixture.is_empty() {
            // The fixture, before the dialogue, so the transcript can be read alone.
            let blank = transcript.pop();
            for line in &vector.imap_fixture {
                transcript.push(match line {
                    ImapFixture::Folder { name } => format!("folder: {name}"),
                    ImapFixture::Deliver {
                        folder,
                        flags,
                        bytes,
                    } => {
                        let mut words = vec![folder.clone()];
                        words.extend(flags.iter().cloned());
                        format!("deliver: {} \"{}\"", words.join(" "), escape(bytes))
                    }
                });
            }
            transcript.extend(blank);
        }
        Replay {
            vector,
            feed,
            session: None,
            store: TestStore::with_user(USER),
            now: Instant::EPOCH,
            observed: VecDeque::new(),
            partial: Vec::new(),
            requests: Vec::new(),
            automatic: VecDeque::new(),
            events: Vec::new(),
            event_cursor: 0,
            last_credentials: None,
            chunk: Vec::new(),
            closed: false,
            tls_pending: false,
            current_line: 0,
            transcript,
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

    fn execute(&mut self) -> Checked {
        self.store = match fixture_store(&self.vector.imap_fixture) {
            Ok(store) => store,
            Err(message) => return self.fail(message),
        };
        self.session = Some(ImapSession::new(self.now, session_config(self.vector)));
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
        self.current_line = vector.steps.last().map_or(0, |step| step.line);
        if let Some(unexpected) = self.observed.front() {
            return self.fail(format!(
                "after the last step the session sent `{unexpected}`, which the vector does not expect"
            ));
        }
        if let Some(open) = self.requests.iter().find(|r| r.state == State::Open) {
            return self.fail(format!(
                "the session's {} {} was never answered (answer it, or `ignore` it)",
                open.kind.name(),
                open.token
            ));
        }
        Ok(())
    }

    fn handle(&mut self, input: Input) {
        let now = self.now;
        if let Some(session) = &mut self.session {
            session.handle(now, input);
        }
        self.drain();
    }

    /// Collects the session's outputs; with the automatic store, answers each
    /// mailbox request as it comes (which may produce more outputs).
    fn drain(&mut self) {
        loop {
            self.collect();
            let Some((token, user, request)) = self.automatic.pop_front() else {
                return;
            };
            let answer = self.store.answer(&user, request);
            self.note(format!("D: {token} mailbox {}", render_answer(&answer)));
            let now = self.now;
            if let Some(session) = &mut self.session {
                session.handle(now, Input::MailboxAnswered { token, answer });
            }
        }
    }

    fn collect(&mut self) {
        while let Some(output) = self.session.as_mut().and_then(Machine::poll) {
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
                Output::CheckCredentials { token, credentials } => {
                    self.note(format!(
                        "?: {token} check credentials {}",
                        render_credentials(&credentials)
                    ));
                    self.open(token, Kind::Credentials, None);
                    self.last_credentials = Some(credentials);
                }
                Output::Mailbox {
                    token,
                    user,
                    request,
                } => {
                    self.note(format!("?: {token} {user}: {}", render_request(&request)));
                    if self.vector.imap_manual_store {
                        self.open(token, Kind::Mailbox, Some((user, request)));
                    } else {
                        self.automatic.push_back((token, user, request));
                    }
                }
                Output::Event(event) => {
                    let rendered = render_event(&event);
                    self.note(format!("   event: {rendered}"));
                    self.events.push(rendered);
                }
            }
        }
    }

    fn open(&mut self, token: Token, kind: Kind, mailbox: Option<(String, MailboxRequest)>) {
        self.requests.push(Request {
            token,
            kind,
            state: State::Open,
            mailbox,
        });
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
                    "expected no response yet, but the session sent `{unexpected}`"
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
                Expect::Line(pattern),
                Observed::Line {
                    bytes,
                    terminated: true,
                },
            ) => line_matches(pattern, bytes),
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

    /// Takes the oldest open request of `kind`, marking it answered or ignored.
    fn take_request<T>(&mut self, kind: Kind, answer: &Answer<T>) -> Checked<Option<usize>> {
        self.ensure_drained("this driver input")?;
        let line = self.current_line;
        let index = self
            .requests
            .iter()
            .position(|r| r.kind == kind && r.state == State::Open)
            .ok_or_else(|| Failure {
                line,
                message: format!(
                    "no {} is waiting for an answer: the session has not asked for one",
                    kind.name()
                ),
            })?;
        let token = self.requests[index].token;
        match answer {
            Answer::Ignore => {
                self.requests[index].state = State::Ignored;
                self.note(format!("D: {token} {} left unanswered", kind.name()));
                Ok(None)
            }
            Answer::Give(_) => {
                self.requests[index].state = State::Answered;
                Ok(Some(index))
            }
        }
    }

    fn driver(&mut self, input: &DriverInput) -> Checked {
        match input {
            DriverInput::Credentials(answer) => {
                if let (Some(index), Answer::Give(given)) =
                    (self.take_request(Kind::Credentials, answer)?, answer)
                {
                    let token = self.requests[index].token;
                    let (outcome, shown) = match given {
                        CredentialAnswer::Valid { identity } => (
                            CredentialOutcome::Valid {
                                identity: identity.clone(),
                            },
                            format!("valid {identity}"),
                        ),
                        CredentialAnswer::Invalid => {
                            (CredentialOutcome::Invalid, "invalid".to_string())
                        }
                        CredentialAnswer::TempFail => {
                            (CredentialOutcome::TemporaryFailure, "tempfail".to_string())
                        }
                    };
                    self.note(format!("D: {token} credentials {shown}"));
                    self.handle(Input::CredentialsChecked { token, outcome });
                }
            }
            DriverInput::Mailbox(answer) => {
                if let (Some(index), Answer::Give(given)) =
                    (self.take_request(Kind::Mailbox, answer)?, answer)
                {
                    let token = self.requests[index].token;
                    let Some((user, request)) = self.requests[index].mailbox.take() else {
                        return self.fail("internal: a mailbox request without its request");
                    };
                    let answer = match given {
                        MailboxAnswerKind::Answer => self.store.answer(&user, request),
                        MailboxAnswerKind::Unavailable => {
                            MailboxAnswer::Refused(MailboxRefusal::Unavailable)
                        }
                    };
                    self.note(format!("D: {token} mailbox {}", render_answer(&answer)));
                    self.handle(Input::MailboxAnswered { token, answer });
                }
            }
            DriverInput::MailboxChanged => {
                self.ensure_drained("this driver input")?;
                self.note("D: mailbox changed");
                self.handle(Input::MailboxChanged);
            }
            DriverInput::Deliver { folder, bytes } => {
                self.ensure_drained("this driver input")?;
                if let Err(message) = deliver(&mut self.store, folder, &[], bytes) {
                    return self.fail(message);
                }
                self.note(format!("D: deliver {folder} \"{}\"", escape(bytes)));
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
            DriverInput::Recipient(_)
            | DriverInput::Store(_)
            | DriverInput::Maildrop(_)
            | DriverInput::Read(_)
            | DriverInput::Commit(_) => {
                return self.fail("an SMTP or POP3 driver answer in an IMAP vector");
            }
        }
        Ok(())
    }

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
            Check::Credentials(expected) => match self.last_credentials.as_ref() {
                None => self.fail("the session has not made any credentials request"),
                Some(credentials) => {
                    let actual = render_credentials(credentials);
                    if actual == *expected {
                        Ok(())
                    } else {
                        self.fail(format!(
                            "credentials: expected `{expected}`, got `{actual}`"
                        ))
                    }
                }
            },
            _ => self.fail("an SMTP or POP3 check in an IMAP vector"),
        }
    }
}

/// The line exactly as the pattern's escapes say, or else a glob when it holds `*`
/// (IMAP's untagged lines start with a literal `*`, which matches itself either way).
fn line_matches(pattern: &str, line: &[u8]) -> bool {
    let Ok(wanted) = unescape(pattern) else {
        return false;
    };
    wanted == line || (wanted.contains(&b'*') && glob(&wanted, line))
}

/// A mailbox request as the transcript shows it (message bytes by their length).
fn render_request(request: &MailboxRequest) -> String {
    match request {
        MailboxRequest::Append {
            mailbox,
            flags,
            internal_date_ms,
            message,
        } => format!(
            "Append {{ mailbox: {mailbox:?}, flags: {flags:?}, internal_date_ms: {internal_date_ms:?}, message: {} octets }}",
            message.len()
        ),
        other => format!("{other:?}"),
    }
}

/// A mailbox answer as the transcript shows it.
fn render_answer(answer: &MailboxAnswer) -> String {
    match answer {
        MailboxAnswer::Content { bytes, .. } => format!("Content({} octets)", bytes.len()),
        other => format!("{other:?}"),
    }
}

/// An event as transcripts and `E: event` write it.
pub fn render_event(event: &SessionEvent) -> String {
    match event {
        SessionEvent::Connected => "connected".to_string(),
        SessionEvent::TlsStarted => "tls started".to_string(),
        SessionEvent::AuthSucceeded {
            mechanism,
            identity,
        } => format!("auth succeeded {mechanism} {identity}"),
        SessionEvent::AuthFailed {
            mechanism,
            username,
        } => format!(
            "auth failed {mechanism} {}",
            username.as_deref().unwrap_or("(no user)")
        ),
        SessionEvent::CommandRejected { command, bad } => {
            format!(
                "command rejected {command} {}",
                if *bad { "BAD" } else { "NO" }
            )
        }
        SessionEvent::Selected { mailbox, read_only } => format!(
            "selected {mailbox}{}",
            if *read_only { " read-only" } else { "" }
        ),
        SessionEvent::Disconnected { reason } => format!("disconnected {reason:?}"),
    }
}
