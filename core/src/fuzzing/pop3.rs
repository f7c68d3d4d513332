//! Target `pop3_session`: a whole POP3 session driven by arbitrary client bytes,
//! driver answers (listings, message chunks, commits) and timer ticks.

use crate::machine::{Machine, Token};
use crate::pop3::{
    CommitOutcome, CredentialOutcome, Input, Limits, MaildropEntry, MaildropOutcome, MessageData,
    Output, Pop3Config, Pop3Session, TlsMode,
};
use crate::smtp::address::Domain;
use crate::time::{Duration, Instant};
use arbitrary::{Arbitrary, Unstructured};

/// One step of a fuzzed POP3 session.
#[derive(Debug, Arbitrary)]
enum Step {
    Bytes(Vec<u8>),
    Line(CannedLine),
    /// The driver answers the oldest pending request (for a read: ends or fails it).
    Answer(Answer),
    /// The driver feeds these bytes to the oldest pending read.
    Chunk(Vec<u8>),
    TlsDone {
        ok: bool,
    },
    Wait(u16),
    Hangup,
    Shutdown,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum CannedLine {
    User,
    Pass,
    AuthPlain,
    AuthContinue,
    PlainResponse,
    Capa,
    Stls,
    Stat,
    List,
    Uidl,
    Retr(u8),
    Top(u8, u8),
    Dele(u8),
    Rset,
    Noop,
    Quit,
}

impl CannedLine {
    fn bytes(self) -> Vec<u8> {
        let line = match self {
            CannedLine::User => "USER alice".to_owned(),
            CannedLine::Pass => "PASS secret".to_owned(),
            CannedLine::AuthPlain => "AUTH PLAIN AGFsaWNlAHNlY3JldA==".to_owned(),
            CannedLine::AuthContinue => "AUTH PLAIN".to_owned(),
            CannedLine::PlainResponse => "AGFsaWNlAHNlY3JldA==".to_owned(),
            CannedLine::Capa => "CAPA".to_owned(),
            CannedLine::Stls => "STLS".to_owned(),
            CannedLine::Stat => "STAT".to_owned(),
            CannedLine::List => "LIST".to_owned(),
            CannedLine::Uidl => "UIDL".to_owned(),
            CannedLine::Retr(n) => format!("RETR {}", n % 6),
            CannedLine::Top(n, m) => format!("TOP {} {}", n % 6, m % 4),
            CannedLine::Dele(n) => format!("DELE {}", n % 6),
            CannedLine::Rset => "RSET".to_owned(),
            CannedLine::Noop => "NOOP".to_owned(),
            CannedLine::Quit => "QUIT".to_owned(),
        };
        format!("{line}\r\n").into_bytes()
    }
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Answer {
    Positive,
    Negative,
    Temporary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Credentials(Token),
    Maildrop(Token),
    Read(Token),
    Commit(Token),
}

/// The longest status line RFC 2449 §4 allows, CRLF included.
const STATUS_LINE: usize = 512;

/// Target `pop3_session`. Checks that the session never panics; that what it sends
/// parses as POP3 responses — every line ends in CRLF, status lines are `+OK`,
/// `-ERR` or the `+ ` continuation and bounded, multi-line bodies are byte-stuffed
/// and end with a lone dot; that nothing is sent after `Close`; that a commit lists
/// each message once; and that "messages deleted" is said only after the driver
/// reported the deletions done.
pub fn pop3_session(data: &[u8]) {
    let mut unstructured = Unstructured::new(data);
    let tls = match unstructured.int_in_range(0..=2u8).unwrap_or(0) {
        0 => TlsMode::StartTlsOffered,
        1 => TlsMode::Implicit,
        _ => TlsMode::Unavailable,
    };
    let Ok(hostname) = Domain::parse("pop.sluice.test") else {
        panic!("the fuzz host name must parse");
    };
    let config = Pop3Config {
        hostname,
        tls,
        allow_plaintext_auth: unstructured.arbitrary::<bool>().unwrap_or(false),
        limits: Limits {
            pipeline_buffer: 2048,
            maildrop_messages: 5,
            ..Limits::default()
        },
    };
    let mut now = Instant::EPOCH;
    let mut session = Pop3Session::new(now, config);
    let mut harness = Harness::default();
    harness.drain(&mut session);

    let mut steps = 0;
    while let Ok(step) = unstructured.arbitrary::<Step>() {
        steps += 1;
        if steps > 400 || harness.closed {
            break;
        }
        let input = match step {
            Step::Bytes(bytes) => Input::Bytes(bytes),
            Step::Line(line) => Input::Bytes(line.bytes()),
            Step::Answer(answer) => match harness.pending.first().copied() {
                None => continue,
                Some(pending) => {
                    harness.pending.remove(0);
                    let listing = harness.listing(&mut unstructured);
                    harness.answer(pending, answer, listing)
                }
            },
            Step::Chunk(bytes) => {
                let read = harness.pending.iter().find_map(|pending| match pending {
                    Pending::Read(token) => Some(*token),
                    _ => None,
                });
                match read {
                    Some(token) => Input::MessageData {
                        token,
                        data: MessageData::Chunk(bytes),
                    },
                    None => continue,
                }
            }
            Step::TlsDone { ok } => {
                if ok {
                    Input::TlsEstablished
                } else {
                    Input::TlsFailed
                }
            }
            Step::Wait(seconds) => {
                now = now + Duration::from_secs(u64::from(seconds));
                Input::Tick
            }
            Step::Hangup => Input::PeerClosed,
            Step::Shutdown => Input::Shutdown,
        };
        session.handle(now, input);
        harness.drain(&mut session);
    }
}

/// Where the response parser stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Reading {
    #[default]
    Status,
    /// Inside a multi-line response's body.
    Body,
}

#[derive(Default)]
struct Harness {
    pending: Vec<Pending>,
    /// Commits answered `Done` and not yet acknowledged to the client.
    committed: usize,
    unparsed: Vec<u8>,
    reading: Reading,
    closed: bool,
}

impl Harness {
    /// A listing of up to 6 messages (one over the fuzz limit), with sizes and ids
    /// from the input; ids are sometimes malformed on purpose.
    fn listing(&self, unstructured: &mut Unstructured<'_>) -> Vec<MaildropEntry> {
        let count = unstructured.int_in_range(0..=6usize).unwrap_or(0);
        (0..count)
            .map(|index| MaildropEntry {
                uid: if unstructured.ratio(1, 20).unwrap_or(false) {
                    "bad id".to_owned()
                } else {
                    format!("3.{index}")
                },
                size: unstructured.arbitrary::<u32>().map_or(0, u64::from),
            })
            .collect()
    }

    fn answer(&mut self, pending: Pending, answer: Answer, listing: Vec<MaildropEntry>) -> Input {
        match pending {
            Pending::Credentials(token) => Input::CredentialsChecked {
                token,
                outcome: match answer {
                    Answer::Positive => CredentialOutcome::Valid {
                        identity: "alice".into(),
                    },
                    Answer::Negative => CredentialOutcome::Invalid,
                    Answer::Temporary => CredentialOutcome::TemporaryFailure,
                },
            },
            Pending::Maildrop(token) => Input::MaildropOpened {
                token,
                outcome: match answer {
                    Answer::Positive => MaildropOutcome::Opened(listing),
                    Answer::Negative => MaildropOutcome::Locked,
                    Answer::Temporary => MaildropOutcome::TemporaryFailure,
                },
            },
            Pending::Read(token) => Input::MessageData {
                token,
                data: match answer {
                    Answer::Positive => MessageData::End,
                    Answer::Negative | Answer::Temporary => MessageData::Failed,
                },
            },
            Pending::Commit(token) => Input::DeletionsCommitted {
                token,
                outcome: if matches!(answer, Answer::Positive) {
                    self.committed += 1;
                    CommitOutcome::Done
                } else {
                    CommitOutcome::Failed
                },
            },
        }
    }

    fn drain(&mut self, session: &mut Pop3Session) {
        while let Some(output) = session.poll() {
            match output {
                Output::Send(bytes) => {
                    assert!(!self.closed, "sent bytes after Close");
                    self.unparsed.extend_from_slice(&bytes);
                    self.check_lines();
                }
                Output::CheckCredentials { token, .. } => {
                    self.pending.push(Pending::Credentials(token));
                }
                Output::OpenMaildrop { token, .. } => self.pending.push(Pending::Maildrop(token)),
                Output::ReadMessage { token, .. } => self.pending.push(Pending::Read(token)),
                Output::StopReading { token } => {
                    self.pending
                        .retain(|pending| *pending != Pending::Read(token));
                }
                Output::CommitDeletions { token, messages } => {
                    assert!(!messages.is_empty(), "a commit of nothing");
                    let mut indexes: Vec<usize> = messages.iter().map(|m| m.index).collect();
                    indexes.sort_unstable();
                    indexes.dedup();
                    assert_eq!(indexes.len(), messages.len(), "a message deleted twice");
                    self.pending.push(Pending::Commit(token));
                }
                Output::StartTls | Output::Event(_) => {}
                Output::Close => self.closed = true,
            }
        }
    }

    /// Parses every complete line sent so far as POP3 responses.
    fn check_lines(&mut self) {
        while let Some(lf) = self.unparsed.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.unparsed.drain(..=lf).collect();
            assert!(
                line.len() >= 2 && line[line.len() - 2] == b'\r',
                "a line not ended by CRLF: {line:?}"
            );
            let content = &line[..line.len() - 2];
            match self.reading {
                Reading::Status => {
                    assert!(line.len() <= STATUS_LINE, "status line too long: {line:?}");
                    let text = String::from_utf8_lossy(content);
                    if content == b"+ " {
                        continue;
                    }
                    assert!(
                        text.starts_with("+OK") || text.starts_with("-ERR"),
                        "not a status line: {text:?}"
                    );
                    if text.contains("messages deleted") {
                        assert!(self.committed > 0, "deletions acknowledged before commit");
                        self.committed -= 1;
                    }
                    if text.starts_with("+OK") && multi_line(&text) {
                        self.reading = Reading::Body;
                    }
                }
                Reading::Body => {
                    if content == b"." {
                        self.reading = Reading::Status;
                    } else if content.first() == Some(&b'.') {
                        assert_eq!(content.get(1), Some(&b'.'), "unstuffed dot line {line:?}");
                    }
                }
            }
        }
    }
}

/// Whether a `+OK` line opens a multi-line response (by the catalogue's texts).
fn multi_line(text: &str) -> bool {
    text.ends_with(" follows")
        || text.ends_with(" octets") && !text.contains(" octets)")
        || text.ends_with(" octets)") && !text.contains("maildrop has")
}
