//! Replays a POP3 vector against `Pop3Session` on a virtual clock, through the
//! shared replay (`replay`): this module is POP3's part of it. The driver's answers
//! come from the vector's fixture: `message:` lines are the maildrop, listed on
//! `D: maildrop open` and read on `D: read`.

use crate::escape::escape;
use crate::replay::{self, Checked, CommonInput, Protocol, Replay};
use crate::runner::{HOSTNAME, Outcome, line_matches, render_credentials};
use crate::vector::{
    Answer, Check, CommitAnswer, CredentialAnswer, DriverInput, Expect, Feed, MaildropAnswer,
    ReadAnswer, Vector,
};
use sluice_core::machine::Machine;
use sluice_core::pop3::{
    CommitOutcome, CredentialOutcome, Credentials, Input, MaildropEntry, MaildropOutcome,
    MessageData, MessageRef, Output, Pop3Config, Pop3Session, SessionEvent,
};
use sluice_core::smtp::address::Domain;
use sluice_core::time::Instant;

/// Replays a POP3 `vector` against Sluice's `Pop3Session`.
pub fn run(vector: &Vector, feed: Feed) -> Outcome {
    replay::run(
        vector,
        feed,
        Pop3 {
            session: None,
            last_credentials: None,
            last_maildrop_user: None,
            last_commit: None,
        },
    )
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Credentials,
    Maildrop,
    Read { index: usize },
    Commit,
}

impl replay::RequestKind for Kind {
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

/// POP3's part of a replay: the session and what the checks read.
struct Pop3 {
    session: Option<Pop3Session>,
    last_credentials: Option<Credentials>,
    last_maildrop_user: Option<String>,
    last_commit: Option<Vec<MessageRef>>,
}

type Pop3Replay<'v> = Replay<'v, Kind>;

impl Pop3 {
    fn handle(&mut self, replay: &mut Pop3Replay<'_>, input: Input) {
        if let Some(session) = &mut self.session {
            session.handle(replay.now, input);
        }
        self.drain(replay);
    }
}

impl Protocol for Pop3 {
    type Kind = Kind;
    const REPLY: &'static str = "response";

    fn fixture_lines(&self, vector: &Vector) -> Vec<String> {
        vector
            .messages
            .iter()
            .map(|message| {
                format!(
                    "message: {} \"{}\" ({} octets for the client)",
                    message.uid,
                    escape(&message.bytes),
                    message.size()
                )
            })
            .collect()
    }

    fn start(&mut self, replay: &mut Pop3Replay<'_>) -> Checked {
        let config = match session_config(replay.vector) {
            Ok(config) => config,
            Err(message) => return replay.fail(message),
        };
        self.session = Some(Pop3Session::new(replay.now, config));
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

    fn drain(&mut self, replay: &mut Pop3Replay<'_>) {
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
                Output::OpenMaildrop { token, user } => {
                    replay.note(format!("?: {token} open maildrop of {user}"));
                    replay.open(token, Kind::Maildrop);
                    self.last_maildrop_user = Some(user);
                }
                Output::ReadMessage { token, index, uid } => {
                    replay.note(format!("?: {token} read message {index} ({uid})"));
                    replay.open(token, Kind::Read { index });
                }
                Output::StopReading { token } => {
                    replay.note(format!("?: {token} stop reading"));
                }
                Output::CommitDeletions { token, messages } => {
                    replay.note(format!("?: {token} commit deletions {}", uids(&messages)));
                    replay.open(token, Kind::Commit);
                    self.last_commit = Some(messages);
                }
                Output::Event(event) => replay.event(render_event(&event)),
            }
        }
    }

    fn driver(&mut self, replay: &mut Pop3Replay<'_>, input: &DriverInput) -> Checked {
        match input {
            DriverInput::Credentials(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (replay.take_request(Kind::Credentials, answer)?, answer)
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
                    replay.note(format!("D: {token} credentials {shown}"));
                    self.handle(replay, Input::CredentialsChecked { token, outcome });
                }
            }
            DriverInput::Maildrop(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (replay.take_request(Kind::Maildrop, answer)?, answer)
                {
                    let outcome = match given {
                        MaildropAnswer::Open => MaildropOutcome::Opened(
                            replay
                                .vector
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
                    replay.note(format!("D: {token} {shown}"));
                    self.handle(replay, Input::MaildropOpened { token, outcome });
                }
            }
            DriverInput::Read(answer) => {
                if let (Some((token, kind)), Answer::Give(given)) = (
                    replay.take_request(Kind::Read { index: 0 }, answer)?,
                    answer,
                ) {
                    let Kind::Read { index } = kind else {
                        return replay.fail("internal: a read request of another kind");
                    };
                    match given {
                        ReadAnswer::Failed => {
                            replay.note(format!("D: {token} read failed"));
                            self.handle(
                                replay,
                                Input::MessageData {
                                    token,
                                    data: MessageData::Failed,
                                },
                            );
                        }
                        ReadAnswer::Chunks(size) => {
                            let Some(message) = replay.vector.messages.get(index) else {
                                return replay.fail(format!(
                                    "the session asks for message index {index}, which the fixture does not hold"
                                ));
                            };
                            let bytes = message.bytes.clone();
                            let size = size.unwrap_or(bytes.len()).max(1);
                            for part in bytes.chunks(size) {
                                replay.note(format!("D: {token} chunk \"{}\"", escape(part)));
                                self.handle(
                                    replay,
                                    Input::MessageData {
                                        token,
                                        data: MessageData::Chunk(part.to_vec()),
                                    },
                                );
                            }
                            replay.note(format!("D: {token} end"));
                            self.handle(
                                replay,
                                Input::MessageData {
                                    token,
                                    data: MessageData::End,
                                },
                            );
                        }
                    }
                }
            }
            DriverInput::Commit(answer) => {
                if let (Some((token, _)), Answer::Give(given)) =
                    (replay.take_request(Kind::Commit, answer)?, answer)
                {
                    let outcome = match given {
                        CommitAnswer::Done => CommitOutcome::Done,
                        CommitAnswer::Failed => CommitOutcome::Failed,
                    };
                    let shown = match given {
                        CommitAnswer::Done => "done",
                        CommitAnswer::Failed => "failed",
                    };
                    replay.note(format!("D: {token} commit {shown}"));
                    self.handle(replay, Input::DeletionsCommitted { token, outcome });
                }
            }
            DriverInput::Recipient(_) | DriverInput::Store(_) => {
                return replay.fail("an SMTP driver answer in a POP3 vector");
            }
            DriverInput::Mailbox(_) | DriverInput::MailboxChanged | DriverInput::Deliver { .. } => {
                return replay.fail("an IMAP driver answer in a POP3 vector");
            }
            DriverInput::TlsEstablished
            | DriverInput::TlsFailed
            | DriverInput::PeerClosed
            | DriverInput::Shutdown => {
                return replay.fail("internal: a shared driver input reached the POP3 part");
            }
        }
        Ok(())
    }

    fn check(&mut self, replay: &mut Pop3Replay<'_>, check: &Check) -> Checked {
        let (what, expected, actual) = match check {
            Check::Event(pattern) => {
                return replay.fail(format!(
                    "internal: `E: event {pattern}` reached the POP3 part"
                ));
            }
            Check::Credentials(expected) => (
                "credentials",
                expected,
                self.last_credentials.as_ref().map(render_credentials),
            ),
            Check::Maildrop(expected) => ("maildrop", expected, self.last_maildrop_user.clone()),
            Check::Commit(expected) => ("commit", expected, self.last_commit.as_deref().map(uids)),
            Check::Message { .. } | Check::Recipient(_) => {
                return replay.fail("an SMTP check in a POP3 vector");
            }
        };
        match actual {
            None => replay.fail(format!("the session has not made any {what} request")),
            Some(actual) if actual == *expected => Ok(()),
            Some(actual) => replay.fail(format!("{what}: expected `{expected}`, got `{actual}`")),
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
