//! Replays a vector against `ServerSession` on a virtual clock, as a driver would,
//! through the shared replay (`replay`): this module is SMTP's and LMTP's part of
//! it (the session, its requests and checks), the entry point for every protocol,
//! and the matching and rendering helpers the runners share. A vector states
//! exactly *when* each reply appears, which is what proves that replies are held
//! back (the durable 250, pipelined replies waiting on a recipient verdict).

use crate::escape::{escape, quoted, unescape};
use crate::replay::{self, Checked, CommonInput, Protocol, Replay};
use crate::vector::{
    Answer, Check, CredentialAnswer, DriverInput, Expect, Feed, Listener, MessageField,
    RecipientAnswer, RecipientStoreAnswer, ReplyPattern, StoreAnswer, Vector,
};
use sluice_core::machine::{Machine, Token};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{
    AcceptedMessage, CredentialOutcome, Credentials, Input, ListenerKind, Output, RecipientCheck,
    RecipientStoreOutcome, RecipientVerdict, ServerSession, SessionConfig, SessionEvent,
    StoreOutcome,
};
use sluice_core::time::Instant;
use std::fmt;

/// The server name every vector's session is configured with.
pub const HOSTNAME: &str = "mx.sluice.test";

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
    replay::run(
        vector,
        feed,
        Smtp {
            start: Some(start),
            session: None,
            last_message: None,
            last_credentials: None,
            last_check: None,
        },
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestKind {
    Recipient,
    Credentials,
    Store,
}

impl replay::RequestKind for RequestKind {
    fn name(self) -> &'static str {
        match self {
            RequestKind::Recipient => "recipient check",
            RequestKind::Credentials => "credential check",
            RequestKind::Store => "store request",
        }
    }

    fn same(self, other: Self) -> bool {
        self == other
    }
}

/// The SMTP and LMTP part of a replay: the session (made by `start`) and what the
/// checks read.
struct Smtp<M, F> {
    start: Option<F>,
    session: Option<M>,
    last_message: Option<AcceptedMessage>,
    last_credentials: Option<Credentials>,
    last_check: Option<RecipientCheck>,
}

type SmtpReplay<'v> = Replay<'v, RequestKind>;

impl<M, F> Smtp<M, F>
where
    M: Machine<Input = Input, Output = Output>,
    F: FnOnce(Instant, &Vector) -> Result<M, String>,
{
    // `start` creates the session before the first step, so the `None` arms below
    // never run; they exist so that the library holds no panic.
    fn handle(&mut self, replay: &mut SmtpReplay<'_>, input: Input) {
        if let Some(session) = &mut self.session {
            session.handle(replay.now, input);
        }
        self.drain(replay);
    }

    /// `D: KIND ...` for a request: the request taken, the answer noted and given.
    fn answer<T>(
        &mut self,
        replay: &mut SmtpReplay<'_>,
        kind: RequestKind,
        answer: &Answer<T>,
        describe: &str,
    ) -> Checked<Option<Token>> {
        let taken = replay.take_request(kind, answer)?;
        if let Some((token, _)) = taken {
            replay.note(format!("D: {token} {describe}"));
        }
        Ok(taken.map(|(token, _)| token))
    }
}

impl<M, F> Protocol for Smtp<M, F>
where
    M: Machine<Input = Input, Output = Output>,
    F: FnOnce(Instant, &Vector) -> Result<M, String>,
{
    type Kind = RequestKind;
    const REPLY: &'static str = "reply";

    fn start(&mut self, replay: &mut SmtpReplay<'_>) -> Checked {
        let Some(start) = self.start.take() else {
            return replay.fail("the session was already started");
        };
        match start(replay.now, replay.vector) {
            Ok(session) => {
                self.session = Some(session);
                Ok(())
            }
            Err(message) => replay.fail(message),
        }
    }

    fn input(&mut self, now: Instant, input: CommonInput) {
        let input = replay::common_input!(Input, input);
        if let Some(session) = &mut self.session {
            session.handle(now, input);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.session.as_ref().and_then(Machine::next_deadline)
    }

    fn line_matches(&self, expect: &Expect, line: &[u8]) -> bool {
        matches!(expect, Expect::Reply(pattern) if reply_matches(pattern, line))
    }

    /// Takes every output, recording it and sorting it into replies, requests and events.
    fn drain(&mut self, replay: &mut SmtpReplay<'_>) {
        while let Some(output) = self.session.as_mut().and_then(Machine::poll) {
            match output {
                Output::Send(bytes) => replay.sent(&bytes),
                Output::StartTls => replay.start_tls(),
                Output::Close => replay.close(),
                Output::CheckRecipient { token, check } => {
                    replay.note(format!(
                        "?: {token} check recipient {}",
                        render_check(&check)
                    ));
                    replay.open(token, RequestKind::Recipient);
                    self.last_check = Some(check);
                }
                Output::CheckCredentials { token, credentials } => {
                    replay.note(format!(
                        "?: {token} check credentials {}",
                        render_credentials(&credentials)
                    ));
                    replay.open(token, RequestKind::Credentials);
                    self.last_credentials = Some(credentials);
                }
                Output::StoreMessage { token, message } => {
                    replay.note(format!(
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
                        replay.note(format!("?:    data {}", quoted(line)));
                    }
                    replay.open(token, RequestKind::Store);
                    self.last_message = Some(message);
                }
                Output::Event(event) => replay.event(render_event(&event)),
            }
        }
    }

    fn driver(&mut self, replay: &mut SmtpReplay<'_>, input: &DriverInput) -> Checked {
        match input {
            DriverInput::Recipient(answer) => {
                let describe = match answer {
                    Answer::Give(RecipientAnswer::Accept) | Answer::Ignore => "recipient accept",
                    Answer::Give(RecipientAnswer::Unknown) => "recipient unknown",
                    Answer::Give(RecipientAnswer::RelayDenied) => "recipient relay-denied",
                    Answer::Give(RecipientAnswer::TempFail) => "recipient tempfail",
                };
                if let (Some(token), Answer::Give(verdict)) = (
                    self.answer(replay, RequestKind::Recipient, answer, describe)?,
                    answer,
                ) {
                    let verdict = match verdict {
                        RecipientAnswer::Accept => RecipientVerdict::Accept,
                        RecipientAnswer::Unknown => RecipientVerdict::UnknownUser,
                        RecipientAnswer::RelayDenied => RecipientVerdict::RelayDenied,
                        RecipientAnswer::TempFail => RecipientVerdict::TemporaryFailure,
                    };
                    self.handle(replay, Input::RecipientChecked { token, verdict });
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
                    self.answer(replay, RequestKind::Credentials, answer, &describe)?,
                    answer,
                ) {
                    let outcome = match outcome {
                        CredentialAnswer::Valid { identity } => CredentialOutcome::Valid {
                            identity: identity.clone(),
                        },
                        CredentialAnswer::Invalid => CredentialOutcome::Invalid,
                        CredentialAnswer::TempFail => CredentialOutcome::TemporaryFailure,
                    };
                    self.handle(replay, Input::CredentialsChecked { token, outcome });
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
                if let (Some(token), Answer::Give(outcome)) = (
                    self.answer(replay, RequestKind::Store, answer, &describe)?,
                    answer,
                ) {
                    let outcome = store_outcome(outcome);
                    self.handle(replay, Input::MessageStored { token, outcome });
                }
            }
            DriverInput::Mailbox(_) | DriverInput::MailboxChanged | DriverInput::Deliver { .. } => {
                return replay.fail("an IMAP driver answer in an SMTP vector");
            }
            DriverInput::Maildrop(_) | DriverInput::Read(_) | DriverInput::Commit(_) => {
                return replay.fail("a POP3 driver answer in an SMTP vector");
            }
            DriverInput::TlsEstablished
            | DriverInput::TlsFailed
            | DriverInput::PeerClosed
            | DriverInput::Shutdown => {
                return replay.fail("internal: a shared driver input reached the SMTP part");
            }
        }
        Ok(())
    }

    fn check(&mut self, replay: &mut SmtpReplay<'_>, check: &Check) -> Checked {
        match check {
            Check::Event(pattern) => replay.fail(format!(
                "internal: `E: event {pattern}` reached the SMTP part"
            )),
            Check::Message { field, expected } => {
                let Some(message) = &self.last_message else {
                    return replay.fail("the session has not asked to store any message");
                };
                if *field == MessageField::Data {
                    let expected_bytes = unescape(expected).unwrap_or_default();
                    if message.data != expected_bytes {
                        return replay.fail(format!(
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
                    replay.fail(format!(
                        "message {field}: expected `{expected}`, got `{actual}`"
                    ))
                }
            }
            Check::Credentials(expected) => {
                let Some(credentials) = &self.last_credentials else {
                    return replay.fail("the session has not asked to check any credentials");
                };
                let actual = render_credentials(credentials);
                if actual == *expected {
                    Ok(())
                } else {
                    replay.fail(format!(
                        "credentials: expected `{expected}`, got `{actual}`"
                    ))
                }
            }
            Check::Maildrop(_) | Check::Commit(_) => replay.fail("a POP3 check in an SMTP vector"),
            Check::Recipient(expected) => {
                let Some(recipient_check) = &self.last_check else {
                    return replay.fail("the session has not asked to check any recipient");
                };
                let actual = render_check(recipient_check);
                if actual == *expected {
                    Ok(())
                } else {
                    replay.fail(format!(
                        "recipient check: expected `{expected}`, got `{actual}`"
                    ))
                }
            }
        }
    }
}

/// A `D: stored|failed|per-recipient` answer as the session's input.
fn store_outcome(answer: &StoreAnswer) -> StoreOutcome {
    match answer {
        StoreAnswer::Stored { queue_id } => StoreOutcome::Stored {
            queue_id: queue_id.clone(),
        },
        StoreAnswer::Failed => StoreOutcome::Failed,
        StoreAnswer::PerRecipient { queue_id, outcomes } => StoreOutcome::PerRecipient {
            queue_id: queue_id.clone(),
            recipients: outcomes
                .iter()
                .map(|outcome| match outcome {
                    RecipientStoreAnswer::Stored => RecipientStoreOutcome::Stored,
                    RecipientStoreAnswer::TempFail => RecipientStoreOutcome::TemporaryFailure,
                    RecipientStoreAnswer::MailboxFull => RecipientStoreOutcome::MailboxFull,
                    RecipientStoreAnswer::UnknownUser => RecipientStoreOutcome::UnknownUser,
                })
                .collect(),
        },
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

pub(crate) fn reply_matches(pattern: &ReplyPattern, line: &[u8]) -> bool {
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

/// POP3's and IMAP's `S:` line: exactly as the pattern's escapes say, or else a
/// glob when it holds `*` (IMAP's untagged lines start with a literal `*`, which
/// matches itself either way).
pub(crate) fn line_matches(pattern: &str, line: &[u8]) -> bool {
    let Ok(wanted) = unescape(pattern) else {
        return false;
    };
    wanted == line || (wanted.contains(&b'*') && glob(&wanted, line))
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
    use sluice_core::time::Duration;
    use std::collections::VecDeque;

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
