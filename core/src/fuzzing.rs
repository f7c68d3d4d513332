//! The bodies of the fuzz targets in `fuzz/`, kept here so that every corpus file
//! also runs as an ordinary test under `cargo test` (see `core/tests/fuzz_corpus.rs`).
//! Test code, not API: compiled only with the `fuzzing` feature, which the fuzz
//! crate and core's own tests turn on.
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

mod imap;
pub mod imap_store;
mod pop3;
pub use imap::imap_session;
pub use pop3::pop3_session;

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

/// Target `proxy_header`: the PROXY protocol v1/v2 header parser on arbitrary bytes.
///
/// The parser never panics, never claims more bytes than it was given, agrees with
/// itself on every shorter limit, and whatever it accepts writes back (as v1 and as
/// v2) to bytes that parse to the same header.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy::{ProxyLimits, parse, parse_with_limits};

    let outcome = parse(data);
    if let Ok(Some((header, consumed))) = outcome {
        assert!(
            consumed > 0 && consumed <= data.len(),
            "consumed {consumed}"
        );
        for written in [header.to_v1(), header.to_v2()] {
            assert_eq!(
                parse(&written),
                Ok(Some((header, written.len()))),
                "{written:?} does not parse back"
            );
        }
        // A header cut short is incomplete, never an error or a different header.
        for cut in [0, 1, consumed / 2, consumed - 1] {
            let prefix = data.get(..cut).unwrap_or(&[]);
            assert_eq!(parse(prefix), Ok(None), "prefix of {cut} bytes");
        }
    }
    // Tight limits may refuse more, but never accept something else.
    let tight = ProxyLimits { max_v2_header: 64 };
    if let Ok(Some(accepted)) = parse_with_limits(data, &tight) {
        assert_eq!(outcome, Ok(Some(accepted)));
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
    let kind = match unstructured.int_in_range(0..=2u8).unwrap_or(0) {
        0 => ListenerKind::Mx,
        1 => ListenerKind::Submission,
        _ => ListenerKind::Lmtp,
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

/// Target `smtp_client`: a whole client session fed arbitrary server bytes, canned
/// replies, driver inputs and ticks, with messages given along the way.
///
/// Checks that the session never panics, never writes a bare CR or LF, closes at most
/// once and says nothing after closing but reports, and reports every message given
/// exactly once with one outcome per recipient.
pub fn smtp_client(data: &[u8]) {
    smtp_client_run(data);
}

/// One step of a fuzzed client session.
#[derive(Debug, Arbitrary)]
enum ClientStep {
    /// The server sends these bytes.
    Bytes(Vec<u8>),
    /// The server sends one of a few well-formed replies, to get deeper quickly.
    Reply(CannedReply),
    /// The driver gives a message with this many recipients (0..=3).
    Message {
        recipients: u8,
        eight_bit: bool,
        chunk: bool,
    },
    Written,
    Tls {
        ok: bool,
    },
    Finish,
    /// Time passes by this many seconds, then the timer fires.
    Wait(u16),
    Hangup,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum CannedReply {
    Greeting,
    EhloAll,
    EhloPlain,
    Ok,
    StartData,
    Ready,
    Temporary,
    Permanent,
    Closing,
}

impl CannedReply {
    fn bytes(self) -> &'static [u8] {
        match self {
            CannedReply::Greeting => b"220 mx.sluice.test ESMTP\r\n",
            CannedReply::EhloAll => b"250-mx.sluice.test\r\n250-PIPELINING\r\n250-SIZE 5000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-CHUNKING\r\n250 STARTTLS\r\n",
            CannedReply::EhloPlain => b"250 mx.sluice.test\r\n",
            CannedReply::Ok => b"250 2.0.0 ok\r\n",
            CannedReply::StartData => b"354 go ahead\r\n",
            CannedReply::Ready => b"220 2.0.0 ready\r\n",
            CannedReply::Temporary => b"451 4.3.0 later\r\n",
            CannedReply::Permanent => b"550 5.1.1 no\r\n",
            CannedReply::Closing => b"421 4.3.2 bye\r\n",
        }
    }
}

/// What a fuzzed client session did, for the property tests that reuse the target.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct ClientRun {
    /// Every byte the client sent, in order.
    pub sent: Vec<u8>,
    /// Per message given, in order: its recipient count and how many reports it got.
    pub messages: Vec<(usize, usize)>,
    pub closes: usize,
}

/// The body of [`smtp_client`], returning what happened.
#[doc(hidden)]
pub fn smtp_client_run(data: &[u8]) -> ClientRun {
    use crate::delivery::TlsPolicy;
    use crate::smtp::client::{
        ClientConfig, ClientSession, Input as ClientInput, Limits as ClientLimits, OutgoingMessage,
        OutgoingRecipient, Output as ClientOutput, Protocol,
    };
    use std::sync::Arc;

    let mut unstructured = Unstructured::new(data);
    let protocol = if unstructured.arbitrary::<bool>().unwrap_or(false) {
        Protocol::Lmtp
    } else {
        Protocol::Smtp
    };
    let tls = match unstructured.int_in_range(0..=2u8).unwrap_or(0) {
        0 => TlsPolicy::Opportunistic,
        1 => TlsPolicy::Required,
        _ => TlsPolicy::Disabled,
    };
    let Ok(hostname) = Domain::parse("client.sluice.test") else {
        panic!("the fuzz host name must parse");
    };
    let config = ClientConfig {
        hostname,
        protocol,
        tls,
        remote_host: "mx.sluice.test".to_owned(),
        auth: None,
        limits: ClientLimits {
            reply_line: 128,
            reply_lines: 12,
            recipients: 2,
            data_block: 16,
            ..ClientLimits::default()
        },
    };
    let mut now = Instant::EPOCH;
    let mut client = ClientSession::new(now, config);
    let mut run = ClientRun::default();
    let mut closed = false;
    let mut queue_ids: Vec<String> = Vec::new();

    let mut drain = |client: &mut ClientSession, run: &mut ClientRun, queue_ids: &[String]| {
        while let Some(output) = client.poll() {
            match output {
                ClientOutput::Send(bytes) => {
                    assert!(!closed, "sent bytes after Close");
                    run.sent.extend_from_slice(&bytes);
                }
                ClientOutput::Report(report) => {
                    let index = queue_ids
                        .iter()
                        .position(|id| *id == report.queue_id)
                        .unwrap_or_else(|| panic!("report for unknown {}", report.queue_id));
                    let Some(entry) = run.messages.get_mut(index) else {
                        panic!("no entry for message {index}");
                    };
                    assert_eq!(entry.0, report.recipients.len(), "outcomes per recipient");
                    entry.1 += 1;
                }
                ClientOutput::Close(_) => {
                    assert!(!closed, "closed twice");
                    closed = true;
                    run.closes += 1;
                }
                ClientOutput::StartTls { .. } | ClientOutput::Ready => {
                    assert!(!closed, "output after Close");
                }
                // A message given after Close is still reported, with its event.
                ClientOutput::Event(_) => {}
            }
        }
        assert!(
            client.buffered_bytes() <= 12 * 130 + 130,
            "reply buffer over its bound"
        );
    };

    let mut steps = 0;
    while let Ok(step) = unstructured.arbitrary::<ClientStep>() {
        steps += 1;
        if steps > 300 {
            break;
        }
        let input = match step {
            ClientStep::Bytes(bytes) => ClientInput::Bytes(bytes),
            ClientStep::Reply(reply) => ClientInput::Bytes(reply.bytes().to_vec()),
            ClientStep::Message {
                recipients,
                eight_bit,
                chunk,
            } => {
                let queue_id = format!("Q{}", queue_ids.len());
                let addresses = ["a@x.test", "b\r\n@x.test", "c\u{e9}@x.test", "d@x.test"];
                let recipients: Vec<OutgoingRecipient> = addresses
                    .iter()
                    .take(usize::from(recipients % 4))
                    .map(|address| OutgoingRecipient {
                        address: (*address).to_owned(),
                        notify: None,
                        orcpt: None,
                    })
                    .collect();
                let body: &[u8] = if chunk {
                    b".dot\nbare LF\rbare CR\r\n..\r\n.\r\nno final line end"
                } else {
                    "caf\u{e9}\r\n".as_bytes()
                };
                run.messages.push((recipients.len(), 0));
                queue_ids.push(queue_id.clone());
                ClientInput::Message(OutgoingMessage {
                    queue_id,
                    reverse_path: Some("s@y.test".to_owned()),
                    recipients,
                    ret: None,
                    envid: None,
                    body: Arc::from(body),
                    eight_bit,
                    smtputf8: false,
                })
            }
            ClientStep::Written => ClientInput::Written,
            ClientStep::Tls { ok } => {
                if ok {
                    ClientInput::TlsEstablished
                } else {
                    ClientInput::TlsFailed
                }
            }
            ClientStep::Finish => ClientInput::Finish,
            ClientStep::Wait(seconds) => {
                now = now + Duration::from_secs(u64::from(seconds));
                ClientInput::Tick
            }
            ClientStep::Hangup => ClientInput::PeerClosed,
        };
        client.handle(now, input);
        drain(&mut client, &mut run, &queue_ids);
    }
    // However it went, a lost connection settles every message.
    client.handle(now, ClientInput::PeerClosed);
    drain(&mut client, &mut run, &queue_ids);
    for (index, (_, reports)) in run.messages.iter().enumerate() {
        assert_eq!(*reports, 1, "message {index} reported {reports} times");
    }
    assert_eq!(run.closes, 1, "the session must close exactly once");
    assert_bare_line_endings_absent(&run.sent);
    run
}

/// Panics if `bytes` holds a CR not followed by LF or an LF not preceded by CR.
fn assert_bare_line_endings_absent(bytes: &[u8]) {
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(bytes.get(index + 1), Some(&b'\n'), "bare CR at {index}"),
            b'\n' => assert_eq!(
                index.checked_sub(1).and_then(|before| bytes.get(before)),
                Some(&b'\r'),
                "bare LF at {index}"
            ),
            _ => {}
        }
    }
}
