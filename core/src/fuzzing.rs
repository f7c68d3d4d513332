//! The bodies of the fuzz targets in `fuzz/`, kept here so that every corpus file
//! also runs as an ordinary test under `cargo test` (see `core/tests/fuzz_corpus.rs`).
//!
//! Each function takes arbitrary bytes and panics only when it finds a bug: a
//! parser panic, a broken round trip, a malformed reply, or a session that breaks
//! its durability promise.

use crate::machine::{Machine, Token};
use crate::smtp::address::Domain;
use crate::smtp::command::Command;
use crate::smtp::reply::Reply;
use crate::smtp::server::{
    CredentialOutcome, Input, Limits, ListenerKind, Output, RecipientVerdict, ServerSession,
    SessionConfig, StoreOutcome, TlsMode,
};
use crate::time::{Duration, Instant};
use arbitrary::{Arbitrary, Unstructured};

/// Target `smtp_command`: the command and reply parsers on arbitrary bytes.
///
/// Whatever parses must serialise to a line that parses back to the same value.
pub fn smtp_command(data: &[u8]) {
    if let Ok(command) = Command::parse(data) {
        let normalised = command.to_string();
        match Command::parse(normalised.as_bytes()) {
            Ok(again) => assert_eq!(again, command, "round trip changed {normalised:?}"),
            Err(error) => panic!("normalised form {normalised:?} does not parse: {error}"),
        }
    }
    if let Ok(Some((reply, consumed))) = Reply::parse(data, 4096, 64) {
        assert!(consumed <= data.len());
        let bytes = reply.to_bytes();
        match Reply::parse(&bytes, 4096, 64) {
            Ok(Some((again, used))) => {
                assert_eq!(again, reply);
                assert_eq!(used, bytes.len());
            }
            other => panic!("serialised reply {bytes:?} does not parse back: {other:?}"),
        }
    }
}

/// One step of a fuzzed session: what the client or the driver does next.
#[derive(Debug, Arbitrary)]
enum Step {
    /// The client sends these bytes.
    Bytes(Vec<u8>),
    /// The client sends one of a few well-formed command lines, to get deeper quickly.
    Line(CannedLine),
    /// The driver answers the oldest pending request with the chosen outcome.
    Answer(Answer),
    /// The driver finishes a TLS handshake the session asked for.
    TlsDone { ok: bool },
    /// Time passes by this many seconds, then the timer fires.
    Wait(u16),
    /// The client goes away.
    Hangup,
    /// The server begins shutting down.
    Shutdown,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum CannedLine {
    Ehlo,
    Helo,
    Mail,
    MailUtf8,
    Rcpt,
    Data,
    Dot,
    Bdat,
    BdatLast,
    Rset,
    StartTls,
    AuthPlain,
    AuthLogin,
    Quit,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Answer {
    Positive,
    Negative,
    Temporary,
}

impl CannedLine {
    fn bytes(self) -> &'static [u8] {
        match self {
            CannedLine::Ehlo => b"EHLO client.example\r\n",
            CannedLine::Helo => b"HELO client.example\r\n",
            CannedLine::Mail => b"MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME\r\n",
            CannedLine::MailUtf8 => "MAIL FROM:<jos\u{e9}@example.org> SMTPUTF8\r\n".as_bytes(),
            CannedLine::Rcpt => {
                b"RCPT TO:<bob@sluice.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@sluice.test\r\n"
            }
            CannedLine::Data => b"DATA\r\n",
            CannedLine::Dot => b"Subject: hi\r\n\r\n..body\r\n.\r\n",
            CannedLine::Bdat => b"BDAT 5\r\nhello",
            CannedLine::BdatLast => b"BDAT 2 LAST\r\n\r\n",
            CannedLine::Rset => b"RSET\r\n",
            CannedLine::StartTls => b"STARTTLS\r\n",
            CannedLine::AuthPlain => b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            CannedLine::AuthLogin => b"AUTH LOGIN\r\n",
            CannedLine::Quit => b"QUIT\r\n",
        }
    }
}

/// A pending request the fuzzer may answer.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Credentials(Token),
    Recipient(Token),
    Store(Token),
}

/// Target `smtp_session`: a whole server session driven by arbitrary client bytes,
/// driver answers and timer ticks.
///
/// Checks that the session never panics, that every byte it sends is a sequence of
/// well-formed replies, and that it never answers 250 after the end of a message
/// unless the driver reported that message durable.
pub fn smtp_session(data: &[u8]) {
    let mut unstructured = Unstructured::new(data);
    let kind = if unstructured.arbitrary::<bool>().unwrap_or(false) {
        ListenerKind::Submission
    } else {
        ListenerKind::Mx
    };
    let limits = Limits {
        recipients: 3,
        message_size: 4096,
        pipeline_buffer: 2048,
        ..Limits::default()
    };
    let Ok(hostname) = Domain::parse("mx.sluice.test") else {
        panic!("the fuzz host name must parse");
    };
    let config = SessionConfig {
        kind,
        hostname,
        tls: TlsMode::StartTlsOffered,
        auth_requires_tls: unstructured.arbitrary::<bool>().unwrap_or(true),
        limits,
    };
    let mut now = Instant::EPOCH;
    let mut session = ServerSession::new(now, config);
    let mut harness = SessionHarness::default();
    harness.drain(&mut session);

    let mut steps = 0;
    while let Ok(step) = unstructured.arbitrary::<Step>() {
        steps += 1;
        if steps > 400 || harness.closed {
            break;
        }
        let input = match step {
            Step::Bytes(bytes) => Input::Bytes(bytes),
            Step::Line(line) => Input::Bytes(line.bytes().to_vec()),
            Step::Answer(answer) => match harness.pending.first().copied() {
                None => continue,
                Some(pending) => {
                    harness.pending.remove(0);
                    harness.answer(pending, answer)
                }
            },
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

/// Tracks what a fuzzed session asked for and checks what it sent.
#[derive(Default)]
struct SessionHarness {
    pending: Vec<Pending>,
    /// Store tokens the harness answered with `Stored`: only these may earn a 250.
    stored: Vec<Token>,
    unparsed: Vec<u8>,
    closed: bool,
}

impl SessionHarness {
    fn answer(&mut self, pending: Pending, answer: Answer) -> Input {
        match pending {
            Pending::Credentials(token) => Input::CredentialsChecked {
                token,
                outcome: match answer {
                    Answer::Positive => CredentialOutcome::Valid {
                        identity: "alice@sluice.test".into(),
                    },
                    Answer::Negative => CredentialOutcome::Invalid,
                    Answer::Temporary => CredentialOutcome::TemporaryFailure,
                },
            },
            Pending::Recipient(token) => Input::RecipientChecked {
                token,
                verdict: match answer {
                    Answer::Positive => RecipientVerdict::Accept,
                    Answer::Negative => RecipientVerdict::UnknownUser,
                    Answer::Temporary => RecipientVerdict::TemporaryFailure,
                },
            },
            Pending::Store(token) => {
                let outcome = if matches!(answer, Answer::Positive) {
                    self.stored.push(token);
                    StoreOutcome::Stored {
                        queue_id: format!("Q{}", token.0),
                    }
                } else {
                    StoreOutcome::Failed
                };
                Input::MessageStored { token, outcome }
            }
        }
    }

    fn drain(&mut self, session: &mut ServerSession) {
        while let Some(output) = session.poll() {
            match output {
                Output::Send(bytes) => {
                    assert!(!self.closed, "sent bytes after Close");
                    self.unparsed.extend_from_slice(&bytes);
                    self.check_replies();
                }
                Output::CheckCredentials { token, .. } => {
                    self.pending.push(Pending::Credentials(token))
                }
                Output::CheckRecipient { token, .. } => {
                    self.pending.push(Pending::Recipient(token))
                }
                Output::StoreMessage { token, message } => {
                    assert!(
                        message.data.len() <= 4096,
                        "stored a message above the size limit"
                    );
                    assert!(
                        !message.recipients.is_empty(),
                        "stored a message without recipients"
                    );
                    self.pending.push(Pending::Store(token));
                }
                Output::StartTls | Output::Event(_) => {}
                Output::Close => self.closed = true,
            }
        }
    }

    /// Every reply must parse, and a "queued as" acceptance needs a durable store behind it.
    fn check_replies(&mut self) {
        loop {
            match Reply::parse(&self.unparsed, 4096, 64) {
                Ok(Some((reply, consumed))) => {
                    self.unparsed.drain(..consumed);
                    let text = reply.lines.join(" ");
                    if reply.code.0 == 250 && text.contains("queued as") {
                        assert!(
                            !self.stored.is_empty(),
                            "250 queued without a durable store: {text}"
                        );
                        self.stored.remove(0);
                    }
                }
                Ok(None) => return,
                Err(error) => panic!(
                    "session sent a malformed reply {:?}: {error}",
                    self.unparsed
                ),
            }
        }
    }
}
