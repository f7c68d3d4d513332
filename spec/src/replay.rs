//! The replay every in-process runner shares: feeding the client's bytes as the
//! feed says, collecting what the session sends into lines, matching `S:` steps,
//! the requests a vector must answer, the virtual clock, events, and the
//! transcript. Each protocol (SMTP and LMTP in `runner`, `pop3`, `imap`) supplies
//! only what differs, through [`Protocol`]: how its session is made and fed, what
//! its outputs mean, its driver answers and its checks.
//!
//! The replay is strict on purpose: before every input (client bytes, a driver
//! answer, time passing) everything the session sent so far must have been
//! expected, and at the end every question the session asked must have been
//! answered or deliberately ignored. A vector therefore states exactly *when* each
//! reply appears, which is what proves that replies are held back.

use crate::escape::escape;
use crate::runner::{Failure, Outcome, header, render_client_chunk, split_lines, text_matches};
use crate::vector::{Action, Answer, Check, DriverInput, Expect, Feed, Split, Vector};
use sluice_core::machine::Token;
use sluice_core::time::{Duration, Instant};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A tick loop that does not move the session's deadline forward is a session bug;
/// this bounds how long the replay keeps ticking before it says so.
const MAX_TICKS_PER_ADVANCE: usize = 64;

/// The result of one step of the replay: carry on, or the failure that ends it.
pub(crate) type Checked<T = ()> = Result<T, Failure>;

/// The inputs every session takes, whatever its protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommonInput {
    Bytes(Vec<u8>),
    Tick,
    TlsEstablished,
    TlsFailed,
    PeerClosed,
    Shutdown,
}

/// Each session's own `Input` names the six inputs every session takes alike; this
/// turns a [`CommonInput`] into the session's `Input` named `$input`.
macro_rules! common_input {
    ($input:ident, $common:expr) => {
        match $common {
            $crate::replay::CommonInput::Bytes(bytes) => $input::Bytes(bytes),
            $crate::replay::CommonInput::Tick => $input::Tick,
            $crate::replay::CommonInput::TlsEstablished => $input::TlsEstablished,
            $crate::replay::CommonInput::TlsFailed => $input::TlsFailed,
            $crate::replay::CommonInput::PeerClosed => $input::PeerClosed,
            $crate::replay::CommonInput::Shutdown => $input::Shutdown,
        }
    };
}
pub(crate) use common_input;

/// A kind of request the session asks its driver, which a `D:` step answers.
pub(crate) trait RequestKind: Copy + fmt::Debug {
    /// How failures name it ("credential check").
    fn name(self) -> &'static str;
    /// Whether a `D:` answer for `self` answers a request of `other` (kinds may
    /// carry data, such as the message a read is for).
    fn same(self, other: Self) -> bool;
}

/// What one protocol supplies to the shared replay.
pub(crate) trait Protocol {
    type Kind: RequestKind;
    /// "reply" (SMTP) or "response" (POP3, IMAP), in failure messages.
    const REPLY: &'static str;

    /// Fixture lines shown in the transcript's header, before the dialogue.
    fn fixture_lines(&self, _vector: &Vector) -> Vec<String> {
        Vec::new()
    }
    /// Creates the session at `replay.now`; its first outputs are drained after.
    fn start(&mut self, replay: &mut Replay<'_, Self::Kind>) -> Checked;
    /// Hands an input every session takes to it (outputs not yet drained).
    fn input(&mut self, now: Instant, input: CommonInput);
    /// Takes every output of the session, telling `replay` what it sent, asked and
    /// reported. A protocol that answers requests by itself does so here.
    fn drain(&mut self, replay: &mut Replay<'_, Self::Kind>);
    fn next_deadline(&self) -> Option<Instant>;
    /// Whether `line` (without its CRLF) matches the `S:` step `expect`.
    fn line_matches(&self, expect: &Expect, line: &[u8]) -> bool;
    /// A driver answer particular to the protocol (the shared ones, TLS, peer
    /// closed and shutdown, are handled by the replay). Inputs end in `feed`.
    fn driver(&mut self, replay: &mut Replay<'_, Self::Kind>, input: &DriverInput) -> Checked;
    /// An `E:` check other than `event`.
    fn check(&mut self, replay: &mut Replay<'_, Self::Kind>, check: &Check) -> Checked;
}

/// What the session has sent, line by line, waiting to be matched by `S:` steps.
#[derive(Clone, Debug)]
pub(crate) enum Observed {
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
            Observed::Line { bytes, .. } => write!(f, "{} [no CRLF]", escape(bytes)),
            Observed::StartTls => f.write_str("<starttls>"),
            Observed::Close => f.write_str("<close>"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    Open,
    Ignored,
    Answered,
}

#[derive(Clone, Debug)]
struct Request<K> {
    token: Token,
    kind: K,
    state: RequestState,
}

/// The shared state of one replay; protocols report into it while draining.
pub(crate) struct Replay<'v, K> {
    pub(crate) vector: &'v Vector,
    pub(crate) now: Instant,
    feed: Feed,
    observed: VecDeque<Observed>,
    /// Reply bytes not yet ending in CRLF.
    partial: Vec<u8>,
    requests: Vec<Request<K>>,
    events: Vec<String>,
    /// `E: event` matches in order: the next search starts here.
    event_cursor: usize,
    /// Bytes from `C+:`/`R+:` lines waiting for the line that sends them.
    chunk: Vec<u8>,
    closed: bool,
    tls_pending: bool,
    pub(crate) current_line: usize,
    transcript: Vec<String>,
}

/// Replays `vector` with `protocol`'s session; `feed` is honoured unless the vector
/// pins its split. A panicking session is a failure, not a crash.
pub(crate) fn run<P: Protocol>(vector: &Vector, feed: Feed, mut protocol: P) -> Outcome {
    let feed = effective_feed(vector, feed);
    let mut transcript = header(vector, feed);
    let fixture = protocol.fixture_lines(vector);
    if !fixture.is_empty() {
        // The fixture, before the dialogue, so the transcript can be read alone.
        let blank = transcript.pop();
        transcript.extend(fixture);
        transcript.extend(blank);
    }
    let mut replay = Replay {
        vector,
        now: Instant::EPOCH,
        feed,
        observed: VecDeque::new(),
        partial: Vec::new(),
        requests: Vec::new(),
        events: Vec::new(),
        event_cursor: 0,
        chunk: Vec::new(),
        closed: false,
        tls_pending: false,
        current_line: 0,
        transcript,
    };
    let result = catch_unwind(AssertUnwindSafe(|| replay.execute(&mut protocol)));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(panic) => Some(Failure {
            line: replay.current_line,
            message: format!("the session panicked: {}", panic_message(panic.as_ref())),
        }),
    };
    if let Some(failure) = &failure {
        replay.note(format!(
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

/// The feed a replay uses: the vector's pinned split, else the one asked for.
pub(crate) fn effective_feed(vector: &Vector, feed: Feed) -> Feed {
    match vector.split {
        Split::Any => feed,
        Split::AsWritten => Feed::AsWritten,
        Split::Bytes => Feed::ByteAtATime,
    }
}

/// The text of a panic, for the failure that reports it.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

impl<K: RequestKind> Replay<'_, K> {
    pub(crate) fn fail<T>(&self, message: impl Into<String>) -> Checked<T> {
        Err(Failure {
            line: self.current_line,
            message: message.into(),
        })
    }

    pub(crate) fn note(&mut self, line: impl Into<String>) {
        self.transcript.push(line.into());
    }

    /// The session sent these bytes.
    pub(crate) fn sent(&mut self, bytes: &[u8]) {
        for (line, terminated) in split_lines(bytes) {
            let shown = if terminated {
                escape(line)
            } else {
                format!("{} [no CRLF]", escape(line))
            };
            self.note(format!("S: {shown}"));
        }
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.partial.drain(..end + 2).take(end).collect();
            self.observed.push_back(Observed::Line {
                bytes: line,
                terminated: true,
            });
        }
    }

    /// The session asked for the TLS handshake.
    pub(crate) fn start_tls(&mut self) {
        self.flush_partial();
        self.note("S: <starttls>");
        self.tls_pending = true;
        self.observed.push_back(Observed::StartTls);
    }

    /// The session closed the connection.
    pub(crate) fn close(&mut self) {
        self.flush_partial();
        self.note("S: <close>");
        self.closed = true;
        self.observed.push_back(Observed::Close);
    }

    /// The session reported an event, in the words `E: event` is written against.
    pub(crate) fn event(&mut self, rendered: String) {
        self.note(format!("   event: {rendered}"));
        self.events.push(rendered);
    }

    /// The session asked a question a `D:` step must answer.
    pub(crate) fn open(&mut self, token: Token, kind: K) {
        self.requests.push(Request {
            token,
            kind,
            state: RequestState::Open,
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

    /// Every input is preceded by this: the vector must have accounted for all output.
    pub(crate) fn ensure_drained(&self, before: &str) -> Checked {
        match self.observed.front() {
            Some(unexpected) => self.fail(format!(
                "the session sent `{unexpected}` before {before}, and the vector does not expect it"
            )),
            None => Ok(()),
        }
    }

    /// Takes the oldest open request of `kind`, marking it answered or ignored;
    /// its token and kind when the answer is given.
    pub(crate) fn take_request<T>(
        &mut self,
        kind: K,
        answer: &Answer<T>,
    ) -> Checked<Option<(Token, K)>> {
        self.ensure_drained("this driver input")?;
        let line = self.current_line;
        let request = self
            .requests
            .iter_mut()
            .find(|r| r.kind.same(kind) && r.state == RequestState::Open)
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
                request.state = RequestState::Ignored;
                self.note(format!("D: {token} {} left unanswered", kind.name()));
                Ok(None)
            }
            Answer::Give(_) => {
                request.state = RequestState::Answered;
                Ok(Some((token, kind)))
            }
        }
    }

    /// `E: event PATTERN`: an event after the previously matched one.
    fn check_event(&mut self, pattern: &str) -> Checked {
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

    fn execute<P: Protocol<Kind = K>>(&mut self, protocol: &mut P) -> Checked {
        protocol.start(self)?;
        protocol.drain(self);
        let vector = self.vector;
        for step in &vector.steps {
            self.current_line = step.line;
            match &step.action {
                Action::Send { bytes, flush } => {
                    self.chunk.extend_from_slice(bytes);
                    if *flush {
                        let chunk = std::mem::take(&mut self.chunk);
                        self.send(protocol, chunk)?;
                    }
                }
                Action::Expect(expect) => self.expect(protocol, expect)?,
                Action::Driver(input) => self.driver(protocol, input)?,
                Action::Advance(duration) => self.advance(protocol, *duration)?,
                Action::Check(Check::Event(pattern)) => self.check_event(pattern)?,
                Action::Check(check) => protocol.check(self, check)?,
            }
        }
        self.current_line = vector.steps.last().map_or(0, |step| step.line);
        if let Some(unexpected) = self.observed.front() {
            return self.fail(format!(
                "after the last step the session sent `{unexpected}`, which the vector does not expect"
            ));
        }
        if let Some(open) = self.requests.iter().find(|r| r.state == RequestState::Open) {
            return self.fail(format!(
                "the session's {} {} was never answered (answer it, or `ignore` it to let it time out)",
                open.kind.name(),
                open.token
            ));
        }
        Ok(())
    }

    /// Hands `input` to the session and drains what it does in answer.
    pub(crate) fn feed<P: Protocol<Kind = K>>(&mut self, protocol: &mut P, input: CommonInput) {
        protocol.input(self.now, input);
        protocol.drain(self);
    }

    fn send<P: Protocol<Kind = K>>(&mut self, protocol: &mut P, chunk: Vec<u8>) -> Checked {
        self.ensure_drained("this client input")?;
        if self.closed {
            return self.fail("the session has closed the connection; the client cannot send more");
        }
        for line in render_client_chunk(&chunk) {
            self.note(line);
        }
        match self.feed {
            Feed::AsWritten => self.feed(protocol, CommonInput::Bytes(chunk)),
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
                    self.feed(protocol, CommonInput::Bytes(vec![*byte]));
                }
            }
        }
        Ok(())
    }

    fn expect<P: Protocol<Kind = K>>(&mut self, protocol: &P, expect: &Expect) -> Checked {
        if *expect == Expect::Nothing {
            return match self.observed.front() {
                Some(unexpected) => self.fail(format!(
                    "expected no {} yet, but the session sent `{unexpected}`",
                    P::REPLY
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
                Expect::Reply(_) | Expect::Line(_),
                Observed::Line {
                    bytes,
                    terminated: true,
                },
            ) => protocol.line_matches(expect, bytes),
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

    fn driver<P: Protocol<Kind = K>>(&mut self, protocol: &mut P, input: &DriverInput) -> Checked {
        let common = match input {
            DriverInput::TlsEstablished | DriverInput::TlsFailed => {
                self.ensure_drained("this driver input")?;
                if !self.tls_pending {
                    return self.fail("the session has not asked for a TLS handshake");
                }
                self.tls_pending = false;
                if *input == DriverInput::TlsEstablished {
                    self.note("D: tls established");
                    CommonInput::TlsEstablished
                } else {
                    self.note("D: tls failed");
                    CommonInput::TlsFailed
                }
            }
            DriverInput::PeerClosed => {
                self.ensure_drained("this driver input")?;
                self.note("D: peer closed");
                CommonInput::PeerClosed
            }
            DriverInput::Shutdown => {
                self.ensure_drained("this driver input")?;
                self.note("D: shutdown");
                CommonInput::Shutdown
            }
            _ => return protocol.driver(self, input),
        };
        self.feed(protocol, common);
        Ok(())
    }

    /// Moves the clock forward, ticking the session at every deadline on the way, as
    /// a driver's timer would.
    fn advance<P: Protocol<Kind = K>>(&mut self, protocol: &mut P, duration: Duration) -> Checked {
        self.ensure_drained("time passes")?;
        let target = self.now + duration;
        self.note(format!("T: +{duration} (now t+{}ms)", target.as_millis()));
        let mut ticks = 0;
        while !self.closed {
            let Some(deadline) = protocol.next_deadline() else {
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
            self.feed(protocol, CommonInput::Tick);
        }
        self.now = target;
        Ok(())
    }
}
