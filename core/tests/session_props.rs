//! Property tests of the SMTP server session: for any sequence of client bytes,
//! driver answers (late, duplicate, stale or of the wrong kind) and ticks, the
//! session never promises acceptance without a durable store, never sends a
//! malformed reply, stays within its memory bounds, never panics, is silent after
//! closing, and is deterministic.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::machine::{Machine, Token};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::reply::Reply;
use sluice_core::smtp::server::{
    CredentialOutcome, Input, Limits, ListenerKind, Output, RecipientVerdict, ServerSession,
    SessionConfig, StoreOutcome, TlsMode,
};
use sluice_core::time::{Duration, Instant};
use std::collections::BTreeMap;

/// Small limits, so that random inputs reach them.
fn limits() -> Limits {
    Limits {
        command_line: 64,
        text_line: 40,
        recipients: 3,
        message_size: 200,
        bad_commands: 40,
        auth_failures: 3,
        transactions: 5,
        pipeline_buffer: 256,
        command_timeout: Duration::from_mins(5),
        data_block_timeout: Duration::from_mins(3),
        durable_timeout: Duration::from_mins(10),
        lookup_timeout: Duration::from_mins(2),
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Client bytes, given to the session in two inputs split at `split` (modulo length).
    Bytes {
        data: Vec<u8>,
        split: usize,
    },
    /// Answer the most recent request with the right kind of answer.
    AnswerLatest {
        choice: u8,
    },
    /// Answer some earlier request (or an unknown token) with any kind of answer.
    AnswerAny {
        pick: usize,
        kind: u8,
        choice: u8,
    },
    /// Let time pass, then tick.
    Tick {
        millis: u64,
    },
    /// Tick exactly at the session's deadline.
    TickAtDeadline,
    TlsEstablished,
    TlsFailed,
    PeerClosed,
    Shutdown,
}

fn command_line() -> impl Strategy<Value = String> {
    let plain = b64_text(b"\0alice\0secret");
    let wrong = b64_text(b"\0alice\0wrong");
    prop_oneof![
        4 => Just("EHLO c.example.org".to_owned()),
        1 => Just("HELO c.example.org".to_owned()),
        4 => Just("MAIL FROM:<a@example.org>".to_owned()),
        1 => Just("MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME".to_owned()),
        1 => Just("MAIL FROM:<> SIZE=999999".to_owned()),
        1 => Just("MAIL FROM:<jösé@example.org> SMTPUTF8".to_owned()),
        4 => Just("RCPT TO:<b@example.com>".to_owned()),
        1 => Just("RCPT TO:<Postmaster>".to_owned()),
        1 => Just("RCPT TO:<c@example.com> NOTIFY=SUCCESS ORCPT=rfc822;c@example.com".to_owned()),
        3 => Just("DATA".to_owned()),
        3 => (0u64..60, any::<bool>())
            .prop_map(|(size, last)| format!("BDAT {size}{}", if last { " LAST" } else { "" })),
        1 => Just("RSET".to_owned()),
        1 => Just("NOOP".to_owned()),
        1 => Just("VRFY bob".to_owned()),
        1 => Just("HELP".to_owned()),
        1 => Just(format!("AUTH PLAIN {plain}")),
        1 => Just(format!("AUTH PLAIN {wrong}")),
        1 => Just("AUTH PLAIN".to_owned()),
        1 => Just("AUTH LOGIN".to_owned()),
        1 => Just(plain),
        1 => Just(b64_text(b"alice")),
        1 => Just("*".to_owned()),
        3 => Just(".".to_owned()),
        1 => Just("..stuffed".to_owned()),
        2 => Just("Subject: hello".to_owned()),
        1 => Just(String::new()),
        1 => Just("x".repeat(50)),
        // Commands that end the session, kept rare so that sessions last.
        1 => prop_oneof![
            Just("QUIT".to_owned()),
            Just("STARTTLS".to_owned()),
            Just("BDAT x".to_owned()),
            Just("GET / HTTP/1.1".to_owned()),
        ],
    ]
}

/// Pieces of message content, including bare line endings and fake terminators.
fn body_piece() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        6 => Just(&b"Subject: x\r\n"[..]),
        6 => Just(&b"\r\n"[..]),
        3 => Just(&b"..leading dot\r\n"[..]),
        6 => Just(&b"body text\r\n"[..]),
        1 => Just(&b"bare\nLF\r\n"[..]),
        1 => Just(&b"bare\rCR\r\n"[..]),
        1 => Just(&b"\n.\n"[..]),
        1 => Just(&b"\r.\r"[..]),
        1 => Just(&b"\r\n.\n"[..]),
        1 => Just(&b"0123456789012345678901234567890123456789012345\r\n"[..]),
    ]
}

/// A whole, plausible transaction: EHLO, perhaps AUTH, MAIL, recipients, and the
/// content as DATA or as BDAT chunks of the right sizes.
fn transaction() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        1usize..5,
        vec(body_piece(), 0..8),
        any::<bool>(),
        1usize..4,
    )
        .prop_map(|(auth, recipients, pieces, chunked, chunks)| {
            let mut wire = b"EHLO c.example.org\r\n".to_vec();
            if auth {
                wire.extend_from_slice(
                    format!("AUTH PLAIN {}\r\n", b64_text(b"\0alice\0secret")).as_bytes(),
                );
            }
            wire.extend_from_slice(b"MAIL FROM:<a@example.org>\r\n");
            for index in 0..recipients {
                wire.extend_from_slice(format!("RCPT TO:<r{index}@example.com>\r\n").as_bytes());
            }
            let content: Vec<u8> = pieces.concat();
            if chunked {
                let step = content.len() / chunks + 1;
                let mut parts: Vec<&[u8]> = content.chunks(step).collect();
                let last = parts.pop().unwrap_or(&[]);
                for part in parts {
                    wire.extend_from_slice(format!("BDAT {}\r\n", part.len()).as_bytes());
                    wire.extend_from_slice(part);
                }
                wire.extend_from_slice(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
                wire.extend_from_slice(last);
            } else {
                wire.extend_from_slice(b"DATA\r\n");
                wire.extend_from_slice(&content);
                wire.extend_from_slice(b".\r\n");
            }
            wire
        })
}

fn b64_text(raw: &[u8]) -> String {
    STANDARD.encode(raw)
}

fn line_ending() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![8 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..]), 1 => Just(&b"\r"[..])]
}

fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            Just(b'\r'),
            Just(b'\n'),
            Just(b'.'),
            Just(b' '),
            b'a'..=b'z',
            any::<u8>(),
        ],
        0..80,
    )
}

fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => transaction(),
        1 => Just(b"STARTTLS\r\n".to_vec()),
        6 => vec((command_line(), line_ending()), 1..5).prop_map(|lines| {
            let mut bytes = Vec::new();
            for (line, ending) in lines {
                bytes.extend_from_slice(line.as_bytes());
                bytes.extend_from_slice(ending);
            }
            bytes
        }),
        1 => raw_bytes(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (client_bytes(), any::<usize>()).prop_map(|(data, split)| Step::Bytes { data, split }),
        12 => any::<u8>().prop_map(|choice| Step::AnswerLatest { choice }),
        2 => (any::<usize>(), any::<u8>(), any::<u8>())
            .prop_map(|(pick, kind, choice)| Step::AnswerAny { pick, kind, choice }),
        1 => prop_oneof![
            4 => prop_oneof![Just(0u64), Just(1_000), Just(60_000)].prop_map(|millis| Step::Tick { millis }),
            1 => prop_oneof![Just(120_000u64), Just(180_000), Just(300_000), Just(600_000)]
                .prop_map(|millis| Step::Tick { millis }),
            1 => Just(Step::TickAtDeadline),
        ],
        1 => prop_oneof![8 => Just(Step::TlsEstablished), 1 => Just(Step::TlsFailed), 1 => Just(Step::PeerClosed), 1 => Just(Step::Shutdown)],
    ]
}

fn session_config() -> impl Strategy<Value = SessionConfig> {
    (
        prop_oneof![
            Just(ListenerKind::Mx),
            Just(ListenerKind::Submission),
            Just(ListenerKind::Lmtp)
        ],
        prop_oneof![
            Just(TlsMode::Unavailable),
            Just(TlsMode::StartTlsOffered),
            Just(TlsMode::Implicit)
        ],
        any::<bool>(),
    )
        .prop_map(|(kind, tls, auth_requires_tls)| SessionConfig {
            kind,
            hostname: Domain::parse("mx.example.com").unwrap(),
            tls,
            auth_requires_tls,
            limits: limits(),
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestKind {
    Credentials,
    Recipient,
    Store,
}

fn answer(kind: RequestKind, token: Token, choice: u8, queue_id: String) -> Input {
    match kind {
        RequestKind::Credentials => Input::CredentialsChecked {
            token,
            outcome: match choice % 3 {
                0 => CredentialOutcome::Valid {
                    identity: "alice".to_owned(),
                },
                1 => CredentialOutcome::Invalid,
                _ => CredentialOutcome::TemporaryFailure,
            },
        },
        RequestKind::Recipient => Input::RecipientChecked {
            token,
            verdict: match choice % 5 {
                0 | 1 => RecipientVerdict::Accept,
                2 => RecipientVerdict::UnknownUser,
                3 => RecipientVerdict::RelayDenied,
                _ => RecipientVerdict::TemporaryFailure,
            },
        },
        RequestKind::Store => Input::MessageStored {
            token,
            outcome: if choice.is_multiple_of(4) {
                StoreOutcome::Failed
            } else {
                StoreOutcome::Stored { queue_id }
            },
        },
    }
}

/// Drives one session through `steps`, checking every property after every input.
/// Returns every output, for the determinism check.
fn run(config: SessionConfig, steps: &[Step]) -> Result<Vec<Output>, TestCaseError> {
    let limits = config.limits.clone();
    let memory_bound = limits.pipeline_buffer * 2 + usize::try_from(limits.message_size).unwrap();
    let mut now = Instant::from_millis(0);
    let mut session = ServerSession::new(now, config);
    let mut all = Vec::new();
    let mut requests: Vec<(RequestKind, Token)> = Vec::new();
    // Queue ids handed to the session in a Stored answer, by queue id: the token it
    // answered, and whether that token had been asked to store.
    let mut stored_answers: BTreeMap<String, bool> = BTreeMap::new();
    let mut promised: BTreeMap<String, usize> = BTreeMap::new();
    let mut closed = false;
    let mut next_queue_id = 0u32;

    let mut inputs: Vec<Input> = Vec::new();
    for step in steps {
        inputs.clear();
        match step {
            Step::Bytes { data, split } => {
                let split = if data.is_empty() {
                    0
                } else {
                    split % (data.len() + 1)
                };
                inputs.push(Input::Bytes(data[..split].to_vec()));
                inputs.push(Input::Bytes(data[split..].to_vec()));
            }
            Step::AnswerLatest { choice } => {
                if let Some(&(kind, token)) = requests.last() {
                    next_queue_id += 1;
                    inputs.push(answer(kind, token, *choice, format!("Q{next_queue_id}")));
                }
            }
            Step::AnswerAny { pick, kind, choice } => {
                let token = requests
                    .get(pick % (requests.len() + 1))
                    .map_or(Token(u64::MAX), |(_, token)| *token);
                let kind = [
                    RequestKind::Credentials,
                    RequestKind::Recipient,
                    RequestKind::Store,
                ][usize::from(*kind % 3)];
                next_queue_id += 1;
                inputs.push(answer(kind, token, *choice, format!("Q{next_queue_id}")));
            }
            Step::Tick { millis } => {
                now = now + Duration::from_millis(*millis);
                inputs.push(Input::Tick);
            }
            Step::TickAtDeadline => {
                if let Some(deadline) = session.next_deadline() {
                    now = now.max(deadline);
                }
                inputs.push(Input::Tick);
            }
            Step::TlsEstablished => inputs.push(Input::TlsEstablished),
            Step::TlsFailed => inputs.push(Input::TlsFailed),
            Step::PeerClosed => inputs.push(Input::PeerClosed),
            Step::Shutdown => inputs.push(Input::Shutdown),
        }
        for input in inputs.drain(..) {
            if let Input::MessageStored {
                token,
                outcome: StoreOutcome::Stored { queue_id },
            } = &input
            {
                let was_requested = requests.contains(&(RequestKind::Store, *token));
                stored_answers.insert(queue_id.clone(), was_requested);
            }
            session.handle(now, input);
            while let Some(output) = session.poll() {
                // (e) After Close, only events.
                prop_assert!(
                    !closed || matches!(output, Output::Event(_)),
                    "output after Close: {output:?}"
                );
                match &output {
                    Output::Send(bytes) => check_replies(bytes, &mut promised)?,
                    Output::CheckCredentials { token, .. } => {
                        requests.push((RequestKind::Credentials, *token))
                    }
                    Output::CheckRecipient { token, .. } => {
                        requests.push((RequestKind::Recipient, *token))
                    }
                    Output::StoreMessage { token, message } => {
                        prop_assert!(message.data.len() as u64 <= limits.message_size);
                        prop_assert!(!message.recipients.is_empty());
                        prop_assert!(message.recipients.len() <= limits.recipients);
                        requests.push((RequestKind::Store, *token));
                    }
                    Output::Close => closed = true,
                    Output::StartTls | Output::Event(_) => {}
                }
                all.push(output);
            }
            // (c) Memory bounds.
            prop_assert!(
                session.buffered_bytes() <= memory_bound,
                "holds {} bytes",
                session.buffered_bytes()
            );
            prop_assert!(session.recipients_held() <= limits.recipients);
            prop_assert_eq!(closed, session.is_closed());
        }
    }
    // (a) Every "queued as" promise answers a Stored outcome given for a store request, once.
    for (queue_id, count) in &promised {
        prop_assert_eq!(*count, 1, "queue id {} promised {} times", queue_id, count);
        prop_assert_eq!(
            stored_answers.get(queue_id),
            Some(&true),
            "promise for {} without a durable store",
            queue_id
        );
    }
    Ok(all)
}

/// (b) Sent bytes are whole, well-formed replies; records every acceptance promise.
fn check_replies(
    bytes: &[u8],
    promised: &mut BTreeMap<String, usize>,
) -> Result<(), TestCaseError> {
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'\n' {
            prop_assert!(
                index > 0 && bytes[index - 1] == b'\r',
                "bare LF in {bytes:?}"
            );
        }
        if *byte == b'\r' {
            prop_assert_eq!(bytes.get(index + 1), Some(&b'\n'), "bare CR in {:?}", bytes);
        }
    }
    let mut rest = bytes;
    prop_assert!(!rest.is_empty());
    while !rest.is_empty() {
        let parsed = Reply::parse(rest, 4096, 64);
        let Ok(Some((reply, consumed))) = parsed else {
            return Err(TestCaseError::fail(format!(
                "malformed reply {:?}: {parsed:?}",
                String::from_utf8_lossy(rest)
            )));
        };
        prop_assert!((200..600).contains(&reply.code.0), "code {}", reply.code);
        prop_assert!(consumed > 0);
        for line in &reply.lines {
            if let Some(queue_id) = line.strip_prefix("ok: queued as ") {
                prop_assert_eq!(reply.code.0, 250);
                *promised.entry(queue_id.to_owned()).or_default() += 1;
            }
        }
        rest = &rest[consumed..];
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn session_properties_hold(config in session_config(), steps in vec(step(), 0..60)) {
        let first = run(config.clone(), &steps)?;
        // Deterministic: the same inputs give the same outputs.
        let second = run(config, &steps)?;
        prop_assert_eq!(first, second);
    }
}

/// A scripted dialogue that must reach acceptance, to show the generator's vocabulary
/// can get there (otherwise property (a) would hold vacuously).
#[test]
fn a_promise_needs_the_durable_answer() {
    let mut config = SessionConfig {
        kind: ListenerKind::Mx,
        hostname: Domain::parse("mx.example.com").unwrap(),
        tls: TlsMode::Unavailable,
        auth_requires_tls: true,
        limits: limits(),
    };
    config.limits.pipeline_buffer = 1024;
    let steps = vec![
        Step::Bytes {
            data: b"EHLO c.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                .to_vec(),
            split: 7,
        },
        Step::AnswerLatest { choice: 0 },
        Step::Bytes {
            data: b"DATA\r\nhello\r\n.\r\n".to_vec(),
            split: 3,
        },
        Step::AnswerLatest { choice: 1 },
    ];
    let outputs = run(config, &steps).unwrap();
    let text: Vec<u8> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("250 2.0.0 ok: queued as Q2\r\n")
    );
}
