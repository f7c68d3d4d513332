//! Replays a POP3 vector against `Pop3Session` on a virtual clock, with the same
//! strictness as the SMTP runner: before every input all output must have been
//! expected, every request must be answered (or deliberately ignored), and the
//! transcript is byte-exact. The driver's answers come from the vector's fixture:
//! `message:` lines are the maildrop, listed on `D: maildrop open` and read on
//! `D: read`.

use crate::escape::{escape, unescape};
use crate::runner::{
    Failure, HOSTNAME, Outcome, effective_feed, glob, header, panic_message, render_client_chunk,
    render_credentials, split_lines, text_matches,
};
use crate::vector::{
    Action, Answer, Check, CommitAnswer, CredentialAnswer, DriverInput, Expect, Feed,
    MaildropAnswer, ReadAnswer, Vector,
};
use sluice_core::machine::{Machine, Token};
use sluice_core::pop3::{
    CommitOutcome, CredentialOutcome, Credentials, Input, MaildropEntry, MaildropOutcome,
    MessageData, MessageRef, Output, Pop3Config, Pop3Session, SessionEvent,
};
use sluice_core::smtp::address::Domain;
use sluice_core::time::{Duration, Instant};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// See `runner::MAX_TICKS_PER_ADVANCE`.
const MAX_TICKS_PER_ADVANCE: usize = 64;

/// Replays a POP3 `vector` against Sluice's `Pop3Session`.
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

/// The POP3 configuration a vector asks for.
pub fn session_config(vector: &Vector) -> Result<Pop3Config, String> {
    let hostname = Domain::parse(HOSTNAME)
        .map_err(|e| format!("core rejects the host name {HOSTNAME}: {e}"))?;
    Ok(Pop3Config {
        hostname,
        tls: vector.tls,
        allow_plaintext_auth: vector.allow_plaintext_auth,
        limits: vector.pop3_limits.clone(),
    })
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
    Maildrop,
    Read { index: usize },
    Commit,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Credentials => "credential check",
            Kind::Maildrop => "maildrop request",
            Kind::Read { .. } => "message read",
            Kind::Commit => "commit of deletions",
        }
    }

    fn same(self, other: Kind) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
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
}

type Checked<T = ()> = Result<T, Failure>;

struct Replay<'v> {
    vector: &'v Vector,
    feed: Feed,
    session: Option<Pop3Session>,
    now: Instant,
    observed: VecDeque<Observed>,
    partial: Vec<u8>,
    requests: Vec<Request>,
    events: Vec<String>,
    event_cursor: usize,
    last_credentials: Option<Credentials>,
    last_maildrop_user: Option<String>,
    last_commit: Option<Vec<MessageRef>>,
    chunk: Vec<u8>,
    closed: bool,
    tls_pending: bool,
    current_line: usize,
    transcript: Vec<String>,
}

impl<'v> Replay<'v> {
    fn new(vector: &'v Vector, feed: Feed) -> Self {
        let mut transcript = header(vector, feed);
        if !vector.messages.is_empty() {
            // The fixture, before the dialogue, so the transcript can be read alone.
            let blank = transcript.pop();
            for message in &vector.messages {
                transcript.push(format!(
                    "message: {} \"{}\" ({} octets for the client)",
                    message.uid,
                    escape(&message.bytes),
                    message.size()
                ));
            }
            transcript.extend(blank);
        }
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
            last_credentials: None,
            last_maildrop_user: None,
            last_commit: None,
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
        let config = match session_config(self.vector) {
            Ok(config) => config,
            Err(message) => return self.fail(message),
        };
        self.session = Some(Pop3Session::new(self.now, config));
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

    fn drain(&mut self) {
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
                    self.open(token, Kind::Credentials);
                    self.last_credentials = Some(credentials);
                }
                Output::OpenMaildrop { token, user } => {
                    self.note(format!("?: {token} open maildrop of {user}"));
                    self.open(token, Kind::Maildrop);
                    self.last_maildrop_user = Some(user);
                }
                Output::ReadMessage { token, index, uid } => {
                    self.note(format!("?: {token} read message {index} ({uid})"));
                    self.open(token, Kind::Read { index });
                }
                Output::StopReading { token } => {
                    self.note(format!("?: {token} stop reading"));
                }
                Output::CommitDeletions { token, messages } => {
                    self.note(format!("?: {token} commit deletions {}", uids(&messages)));
                    self.open(token, Kind::Commit);
                    self.last_commit = Some(messages);
                }
                Output::Event(event) => {
                    let rendered = render_event(&event);
                    self.note(format!("   event: {rendered}"));
                    self.events.push(rendered);
                }
            }
        }
    }

    fn open(&mut self, token: Token, kind: Kind) {
        self.requests.push(Request {
            token,
            kind,
            state: State::Open,
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
    fn take_request<T>(
        &mut self,
        kind: Kind,
        answer: &Answer<T>,
    ) -> Checked<Option<(Token, Kind)>> {
        self.ensure_drained("this driver input")?;
        let line = self.current_line;
        let request = self
            .requests
            .iter_mut()
            .find(|r| r.kind.same(kind) && r.state == State::Open)
            .ok_or_else(|| Failure {
                line,
                message: format!(
                    "no {} is waiting for an answer: the session has not asked for one",
                    kind.name()
                ),
            })?;
        let (token, kind) = (request.token, request.kind);
        match answer {
            Answer::Ignore => {
                request.state = State::Ignored;
                self.note(format!("D: {token} {} left unanswered", kind.name()));
                Ok(None)
            }
            Answer::Give(_) => {
                request.state = State::Answered;
                Ok(Some((token, kind)))
            }
        }
    }

    fn driver(&mut self, input: &DriverInput) -> Checked {
        match input {
            DriverInput::Credentials(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (self.take_request(Kind::Credentials, answer)?, answer)
                {
                    let outcome = match given {
                        CredentialAnswer::Valid { identity } => CredentialOutcome::Valid {
                            identity: identity.clone(),
                        },
                        CredentialAnswer::Invalid => CredentialOutcome::Invalid,
                        CredentialAnswer::TempFail => CredentialOutcome::TemporaryFailure,
                    };
                    let shown = match given {
                        CredentialAnswer::Valid { identity } => format!("valid {identity}"),
                        CredentialAnswer::Invalid => "invalid".to_string(),
                        CredentialAnswer::TempFail => "tempfail".to_string(),
                    };
                    self.note(format!("D: {token} credentials {shown}"));
                    self.handle(Input::CredentialsChecked { token, outcome });
                }
            }
            DriverInput::Maildrop(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (self.take_request(Kind::Maildrop, answer)?, answer)
                {
                    let outcome = match given {
                        MaildropAnswer::Open => MaildropOutcome::Opened(
                            self.vector
                                .messages
                                .iter()
                                .map(|message| MaildropEntry {
                                    uid: message.uid.clone(),
                                    size: message.size(),
                                })
                                .collect(),
                        ),
                        MaildropAnswer::Locked => MaildropOutcome::Locked,
                        MaildropAnswer::TempFail => MaildropOutcome::TemporaryFailure,
                    };
                    let shown = match &outcome {
                        MaildropOutcome::Opened(entries) => {
                            format!("maildrop open ({} messages)", entries.len())
                        }
                        MaildropOutcome::Locked => "maildrop locked".to_string(),
                        MaildropOutcome::TemporaryFailure => "maildrop tempfail".to_string(),
                    };
                    self.note(format!("D: {token} {shown}"));
                    self.handle(Input::MaildropOpened { token, outcome });
                }
            }
            DriverInput::Read(answer) => {
                if let (Some((token, kind)), Answer::Give(given)) =
                    (self.take_request(Kind::Read { index: 0 }, answer)?, answer)
                {
                    let Kind::Read { index } = kind else {
                        return self.fail("internal: a read request of another kind");
                    };
                    match given {
                        ReadAnswer::Failed => {
                            self.note(format!("D: {token} read failed"));
                            self.handle(Input::MessageData {
                                token,
                                data: MessageData::Failed,
                            });
                        }
                        ReadAnswer::Chunks(size) => {
                            let Some(message) = self.vector.messages.get(index) else {
                                return self.fail(format!(
                                    "the session asks for message index {index}, which the fixture does not hold"
                                ));
                            };
                            let bytes = message.bytes.clone();
                            let size = size.unwrap_or(bytes.len()).max(1);
                            for part in bytes.chunks(size) {
                                self.note(format!("D: {token} chunk \"{}\"", escape(part)));
                                self.handle(Input::MessageData {
                                    token,
                                    data: MessageData::Chunk(part.to_vec()),
                                });
                            }
                            self.note(format!("D: {token} end"));
                            self.handle(Input::MessageData {
                                token,
                                data: MessageData::End,
                            });
                        }
                    }
                }
            }
            DriverInput::Commit(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (self.take_request(Kind::Commit, answer)?, answer)
                {
                    let outcome = match given {
                        CommitAnswer::Done => CommitOutcome::Done,
                        CommitAnswer::Failed => CommitOutcome::Failed,
                    };
                    let shown = match given {
                        CommitAnswer::Done => "done",
                        CommitAnswer::Failed => "failed",
                    };
                    self.note(format!("D: {token} commit {shown}"));
                    self.handle(Input::DeletionsCommitted { token, outcome });
                }
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
            DriverInput::Recipient(_) | DriverInput::Store(_) => {
                return self.fail("an SMTP driver answer in a POP3 vector");
            }
            DriverInput::Mailbox(_) | DriverInput::MailboxChanged | DriverInput::Deliver { .. } => {
                return self.fail("an IMAP driver answer in a POP3 vector");
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
        let (what, expected, actual) = match check {
            Check::Event(pattern) => {
                let found = self.events[self.event_cursor..]
                    .iter()
                    .position(|event| text_matches(pattern, event));
                return match found {
                    Some(offset) => {
                        self.event_cursor += offset + 1;
                        Ok(())
                    }
                    None => self.fail(format!(
                        "no event matching `{pattern}` after the previous match; events so far: [{}]",
                        self.events.join("; ")
                    )),
                };
            }
            Check::Credentials(expected) => (
                "credentials",
                expected,
                self.last_credentials.as_ref().map(render_credentials),
            ),
            Check::Maildrop(expected) => ("maildrop", expected, self.last_maildrop_user.clone()),
            Check::Commit(expected) => ("commit", expected, self.last_commit.as_deref().map(uids)),
            Check::Message { .. } | Check::Recipient(_) => {
                return self.fail("an SMTP check in a POP3 vector");
            }
        };
        match actual {
            None => self.fail(format!("the session has not made any {what} request")),
            Some(actual) if actual == *expected => Ok(()),
            Some(actual) => self.fail(format!("{what}: expected `{expected}`, got `{actual}`")),
        }
    }
}

fn uids(messages: &[MessageRef]) -> String {
    messages
        .iter()
        .map(|message| message.uid.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line exactly as the pattern's escapes say, or a glob when it holds `*`.
fn line_matches(pattern: &str, line: &[u8]) -> bool {
    let Ok(wanted) = unescape(pattern) else {
        return false;
    };
    if wanted.contains(&b'*') {
        glob(&wanted, line)
    } else {
        wanted == line
    }
}

/// An event as transcripts and `E: event` write it.
pub fn render_event(event: &SessionEvent) -> String {
    match event {
        SessionEvent::Connected => "connected".to_string(),
        SessionEvent::TlsStarted => "tls started".to_string(),
        SessionEvent::LoginSucceeded { mechanism, user } => {
            format!("login succeeded {mechanism} {user}")
        }
        SessionEvent::LoginFailed { mechanism, user } => format!(
            "login failed {mechanism} {}",
            user.as_deref().unwrap_or("(no user)")
        ),
        SessionEvent::MaildropOpened {
            user,
            messages,
            octets,
        } => format!("maildrop opened {user} {messages} messages {octets} octets"),
        SessionEvent::MaildropRefused { user, reason } => {
            format!("maildrop refused {user} {reason:?}")
        }
        SessionEvent::DeletionsCommitted { count } => format!("deletions committed {count}"),
        SessionEvent::DeletionsFailed { count } => format!("deletions failed {count}"),
        SessionEvent::CommandRejected { verb } => format!("command rejected {verb}"),
        SessionEvent::Disconnected { reason } => format!("disconnected {reason:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn replay(body: &str) -> Outcome {
        let text = format!(
            "# A POP3 test.\nproves: RFC 1939 §3\nlistener: pop3\nset: allow_plaintext_auth = true\n\
             message: 1.1 \"Subject: a\\n\\n.b\\n\"\n{body}"
        );
        let vector = Vector::parse(Path::new("t.vector"), &text).unwrap();
        run(&vector, Feed::AsWritten)
    }

    #[test]
    fn a_correct_pop3_vector_passes() {
        let outcome = replay(
            "S: +OK mx.sluice.test POP3 Sluice ready\nC: USER alice\nS: +OK send PASS\n\
             C: PASS secret\nD: credentials valid alice\nE: maildrop alice\nD: maildrop open\n\
             S: +OK maildrop has 1 messages (18 octets)\nC: RETR 1\nS: <nothing>\nD: read chunks 3\n\
             S: +OK 18 octets\nS: Subject: a\nS:\nS: ..b\nS: .\nC: DELE 1\nS: +OK *\nC: QUIT\n\
             E: commit 1.1\nD: commit done\nS: +OK * signing off (1 messages deleted)\nS: <close>\n",
        );
        assert!(outcome.passed(), "{}", outcome.transcript);
    }

    #[test]
    fn wrong_or_unanswered_steps_fail() {
        let outcome = replay("S: +OK something else\n");
        assert_eq!(outcome.failures[0].line, 6);
        let outcome = replay("S: +OK *\nC: USER alice\nS: +OK send PASS\nC: PASS x\n");
        assert!(outcome.failures[0].message.contains("never answered"));
        let outcome = replay("S: +OK *\nD: read\n");
        assert!(outcome.failures[0].message.contains("no message read"));
        let outcome = replay("S: +OK *\nC: NOOP\n");
        assert!(outcome.failures[0].message.contains("does not expect"));
    }
}
