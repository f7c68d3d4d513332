//! Replays an IMAP vector against `ImapSession` on a virtual clock, through the
//! shared replay (`replay`): this module is IMAP's part of it. Mailbox requests
//! are answered from core's IMAP test store (`sluice_core::fuzzing::imap_store`,
//! the one the session's own tests use), seeded by the vector's `folder:` and
//! `deliver:` lines for the user [`USER`]; by default at once, or with
//! `set: store = manual` only on `D: mailbox`.

use crate::escape::escape;
use crate::replay::{self, Checked, CommonInput, Protocol, Replay};
use crate::runner::{HOSTNAME, Outcome, line_matches, render_credentials};
use crate::vector::{
    Answer, Check, CredentialAnswer, DriverInput, Expect, Feed, ImapFixture, MailboxAnswerKind,
    Vector,
};
use sluice_core::fuzzing::imap_store::TestStore;
use sluice_core::imap::request::MailboxRefusal;
use sluice_core::imap::{
    CredentialOutcome, Credentials, ImapSession, Input, MailboxAnswer, MailboxRequest, Output,
    SessionConfig, SessionEvent, TlsMode,
};
use sluice_core::machine::{Machine, Token};
use sluice_core::mailbox::{FlagMode, Operation};
use sluice_core::time::Instant;
use std::collections::VecDeque;

/// The user whose mailboxes the fixture holds; a login answered `valid` with this
/// identity sees them.
pub const USER: &str = "alice@sluice.test";

/// Replays an IMAP `vector` against Sluice's `ImapSession`.
pub fn run(vector: &Vector, feed: Feed) -> Outcome {
    replay::run(
        vector,
        feed,
        Imap {
            session: None,
            store: TestStore::with_user(USER),
            manual: Vec::new(),
            automatic: VecDeque::new(),
            last_credentials: None,
        },
    )
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Credentials,
    Mailbox,
}

impl replay::RequestKind for Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Credentials => "credential check",
            Kind::Mailbox => "mailbox request",
        }
    }

    fn same(self, other: Kind) -> bool {
        self == other
    }
}

/// IMAP's part of a replay: the session, the store that answers it, and what the
/// checks read.
struct Imap {
    session: Option<ImapSession>,
    store: TestStore,
    /// With `set: store = manual`: each open mailbox request's user and request,
    /// answered on its `D: mailbox`.
    manual: Vec<(Token, String, MailboxRequest)>,
    /// Mailbox requests to answer at once (automatic store), in order.
    automatic: VecDeque<(Token, String, MailboxRequest)>,
    last_credentials: Option<Credentials>,
}

type ImapReplay<'v> = Replay<'v, Kind>;

impl Imap {
    fn handle(&mut self, replay: &mut ImapReplay<'_>, input: Input) {
        if let Some(session) = &mut self.session {
            session.handle(replay.now, input);
        }
        self.drain(replay);
    }

    fn collect(&mut self, replay: &mut ImapReplay<'_>) {
        while let Some(output) = self.session.as_mut().and_then(Machine::poll) {
            match output {
                Output::Send(bytes) => replay.sent(&bytes),
                Output::StartTls => replay.start_tls(),
                Output::Close => replay.close(),
                Output::CheckCredentials { token, credentials } => {
                    replay.note(format!(
                        "?: {token} check credentials {}",
                        render_credentials(&credentials)
                    ));
                    replay.open(token, Kind::Credentials);
                    self.last_credentials = Some(credentials);
                }
                Output::Mailbox {
                    token,
                    user,
                    request,
                } => {
                    replay.note(format!("?: {token} {user}: {}", render_request(&request)));
                    if replay.vector.imap_manual_store {
                        replay.open(token, Kind::Mailbox);
                        self.manual.push((token, user, request));
                    } else {
                        self.automatic.push_back((token, user, request));
                    }
                }
                Output::Event(event) => replay.event(render_event(&event)),
            }
        }
    }
}

impl Protocol for Imap {
    type Kind = Kind;
    const REPLY: &'static str = "response";

    fn fixture_lines(&self, vector: &Vector) -> Vec<String> {
        vector
            .imap_fixture
            .iter()
            .map(|line| match line {
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
            })
            .collect()
    }

    fn start(&mut self, replay: &mut ImapReplay<'_>) -> Checked {
        self.store = match fixture_store(&replay.vector.imap_fixture) {
            Ok(store) => store,
            Err(message) => return replay.fail(message),
        };
        self.session = Some(ImapSession::new(replay.now, session_config(replay.vector)));
        Ok(())
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
        matches!(expect, Expect::Line(pattern) if line_matches(pattern, line))
    }

    /// Collects the session's outputs; with the automatic store, answers each
    /// mailbox request as it comes (which may produce more outputs).
    fn drain(&mut self, replay: &mut ImapReplay<'_>) {
        loop {
            self.collect(replay);
            let Some((token, user, request)) = self.automatic.pop_front() else {
                return;
            };
            let answer = self.store.answer(&user, request);
            replay.note(format!("D: {token} mailbox {}", render_answer(&answer)));
            if let Some(session) = &mut self.session {
                session.handle(replay.now, Input::MailboxAnswered { token, answer });
            }
        }
    }

    fn driver(&mut self, replay: &mut ImapReplay<'_>, input: &DriverInput) -> Checked {
        match input {
            DriverInput::Credentials(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (replay.take_request(Kind::Credentials, answer)?, answer)
                {
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
                    replay.note(format!("D: {token} credentials {shown}"));
                    self.handle(replay, Input::CredentialsChecked { token, outcome });
                }
            }
            DriverInput::Mailbox(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (replay.take_request(Kind::Mailbox, answer)?, answer)
                {
                    let Some(index) = self.manual.iter().position(|open| open.0 == token) else {
                        return replay.fail("internal: a mailbox request without its request");
                    };
                    let (_, user, request) = self.manual.remove(index);
                    let answer = match given {
                        MailboxAnswerKind::Answer => self.store.answer(&user, request),
                        MailboxAnswerKind::Unavailable => {
                            MailboxAnswer::Refused(MailboxRefusal::Unavailable)
                        }
                    };
                    replay.note(format!("D: {token} mailbox {}", render_answer(&answer)));
                    self.handle(replay, Input::MailboxAnswered { token, answer });
                }
            }
            DriverInput::MailboxChanged => {
                replay.ensure_drained("this driver input")?;
                replay.note("D: mailbox changed");
                self.handle(replay, Input::MailboxChanged);
            }
            DriverInput::Deliver { folder, bytes } => {
                replay.ensure_drained("this driver input")?;
                if let Err(message) = deliver(&mut self.store, folder, &[], bytes) {
                    return replay.fail(message);
                }
                replay.note(format!("D: deliver {folder} \"{}\"", escape(bytes)));
            }
            DriverInput::Recipient(_)
            | DriverInput::Store(_)
            | DriverInput::Maildrop(_)
            | DriverInput::Read(_)
            | DriverInput::Commit(_) => {
                return replay.fail("an SMTP or POP3 driver answer in an IMAP vector");
            }
            DriverInput::TlsEstablished
            | DriverInput::TlsFailed
            | DriverInput::PeerClosed
            | DriverInput::Shutdown => {
                return replay.fail("internal: a shared driver input reached the IMAP part");
            }
        }
        Ok(())
    }

    fn check(&mut self, replay: &mut ImapReplay<'_>, check: &Check) -> Checked {
        match check {
            Check::Credentials(expected) => match self.last_credentials.as_ref() {
                None => replay.fail("the session has not made any credentials request"),
                Some(credentials) => {
                    let actual = render_credentials(credentials);
                    if actual == *expected {
                        Ok(())
                    } else {
                        replay.fail(format!(
                            "credentials: expected `{expected}`, got `{actual}`"
                        ))
                    }
                }
            },
            _ => replay.fail("an SMTP or POP3 check in an IMAP vector"),
        }
    }
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
