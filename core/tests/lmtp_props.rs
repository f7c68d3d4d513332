//! Property tests of the LMTP listener (RFC 2033): the end of data is answered with
//! exactly one reply per accepted recipient, in RCPT order, and a 250 only for a
//! recipient the store reported durable; and for any sequence of client bytes,
//! driver answers and ticks the session never panics, sends only well-formed
//! replies, promises nothing without a durable store and is silent after closing.

#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::machine::{Machine, Token};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::reply::Reply;
use sluice_core::smtp::server::{
    Input, Limits, ListenerKind, Output, RecipientStoreOutcome, RecipientVerdict, ServerSession,
    SessionConfig, StoreOutcome, TlsMode,
};
use sluice_core::time::{Duration, Instant};
use std::collections::BTreeMap;

/// Small limits, so that random messages reach them.
fn limits() -> Limits {
    Limits {
        command_line: 128,
        text_line: 40,
        recipients: 6,
        message_size: 120,
        bad_commands: 40,
        auth_failures: 3,
        transactions: 5,
        pipeline_buffer: 512,
        command_timeout: Duration::from_mins(5),
        data_block_timeout: Duration::from_mins(3),
        durable_timeout: Duration::from_mins(10),
        lookup_timeout: Duration::from_mins(2),
    }
}

fn lmtp_config() -> SessionConfig {
    SessionConfig {
        kind: ListenerKind::Lmtp,
        hostname: Domain::parse("lmtp.example.com").unwrap(),
        tls: TlsMode::StartTlsOffered,
        auth_requires_tls: true,
        limits: limits(),
    }
}

/// Every reply in `bytes`, parsed; fails the case on a malformed one or a bare CR/LF.
fn parse_replies(bytes: &[u8]) -> Result<Vec<Reply>, TestCaseError> {
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => prop_assert!(index > 0 && bytes[index - 1] == b'\r', "bare LF"),
            b'\r' => prop_assert_eq!(bytes.get(index + 1), Some(&b'\n'), "bare CR"),
            _ => {}
        }
    }
    let mut replies = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let parsed = Reply::parse(rest, 4096, 64);
        let Ok(Some((reply, consumed))) = parsed else {
            return Err(TestCaseError::fail(format!(
                "malformed reply {:?}: {parsed:?}",
                String::from_utf8_lossy(rest)
            )));
        };
        prop_assert!((200..600).contains(&reply.code.0), "code {}", reply.code);
        replies.push(reply);
        rest = &rest[consumed..];
    }
    Ok(replies)
}

/// A session and everything it sent, for scripted dialogues.
struct Dialogue {
    session: ServerSession,
    now: Instant,
}

impl Dialogue {
    fn new() -> Dialogue {
        let now = Instant::from_millis(0);
        let mut dialogue = Dialogue {
            session: ServerSession::new(now, lmtp_config()),
            now,
        };
        dialogue.drain();
        dialogue
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.session.handle(self.now, input);
        self.drain()
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Output> {
        self.input(Input::Bytes(bytes.to_vec()))
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.session.poll()).collect()
    }
}

fn sent_replies(outputs: &[Output]) -> Result<Vec<Reply>, TestCaseError> {
    let bytes: Vec<u8> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    parse_replies(&bytes)
}

fn first_token(outputs: &[Output]) -> Option<Token> {
    outputs.iter().find_map(|output| match output {
        Output::CheckRecipient { token, .. } | Output::StoreMessage { token, .. } => Some(*token),
        _ => None,
    })
}

#[derive(Clone, Debug)]
enum StoreAnswer {
    AllStored,
    Failed,
    /// No answer: the durable deadline passes.
    TimedOut,
    /// Possibly shorter or longer than the recipients.
    PerRecipient(Vec<RecipientStoreOutcome>),
}

fn recipient_store_outcome() -> impl Strategy<Value = RecipientStoreOutcome> {
    prop_oneof![
        3 => Just(RecipientStoreOutcome::Stored),
        1 => Just(RecipientStoreOutcome::TemporaryFailure),
        1 => Just(RecipientStoreOutcome::MailboxFull),
        1 => Just(RecipientStoreOutcome::UnknownUser),
    ]
}

fn store_answer() -> impl Strategy<Value = StoreAnswer> {
    prop_oneof![
        2 => Just(StoreAnswer::AllStored),
        1 => Just(StoreAnswer::Failed),
        1 => Just(StoreAnswer::TimedOut),
        4 => vec(recipient_store_outcome(), 0..8).prop_map(StoreAnswer::PerRecipient),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            6 => Just(&b"Subject: x\r\n"[..]),
            6 => Just(&b"text\r\n"[..]),
            2 => Just(&b"..dot\r\n"[..]),
            1 => Just(&b"bare\nLF\r\n"[..]),
            1 => Just(&b"0123456789012345678901234567890123456789012\r\n"[..]),
        ],
        0..12,
    )
    .prop_map(|pieces| pieces.concat())
}

/// What the store reports for recipient `index` of `count`.
fn expected_outcome(answer: &StoreAnswer, index: usize) -> RecipientStoreOutcome {
    match answer {
        StoreAnswer::AllStored => RecipientStoreOutcome::Stored,
        StoreAnswer::Failed | StoreAnswer::TimedOut => RecipientStoreOutcome::TemporaryFailure,
        StoreAnswer::PerRecipient(outcomes) => outcomes
            .get(index)
            .copied()
            .unwrap_or(RecipientStoreOutcome::TemporaryFailure),
    }
}

/// One transaction, step by step: LHLO, MAIL, the recipients with their verdicts,
/// the body as DATA or BDAT chunks, and the store's answer. Checks the replies to
/// the end of data against the accepted recipients.
fn one_transaction(
    verdicts: &[bool],
    body: &[u8],
    chunks: Option<usize>,
    answer: &StoreAnswer,
) -> Result<(), TestCaseError> {
    let mut dialogue = Dialogue::new();
    dialogue.feed(b"LHLO gateway.example.org\r\nMAIL FROM:<a@example.org>\r\n");
    let mut accepted = Vec::new();
    for (index, accept) in verdicts.iter().enumerate() {
        let address = format!("<r{index}@example.com>");
        let out = dialogue.feed(format!("RCPT TO:{address}\r\n").as_bytes());
        let token = first_token(&out).unwrap();
        let verdict = if *accept {
            accepted.push(address);
            RecipientVerdict::Accept
        } else {
            RecipientVerdict::UnknownUser
        };
        let out = dialogue.input(Input::RecipientChecked { token, verdict });
        prop_assert_eq!(sent_replies(&out)?.len(), 1);
    }

    // The body; `end` holds the outputs of the input that ended it.
    let end = match chunks {
        None => {
            let out = dialogue.feed(b"DATA\r\n");
            let replies = sent_replies(&out)?;
            prop_assert_eq!(replies.len(), 1);
            if accepted.is_empty() {
                // RFC 2033 §4.2: DATA without a successful RCPT fails with 503.
                prop_assert_eq!(replies[0].code.0, 503);
                return Ok(());
            }
            prop_assert_eq!(replies[0].code.0, 354);
            let mut wire = body.to_vec();
            wire.extend_from_slice(b".\r\n");
            dialogue.feed(&wire)
        }
        Some(count) => {
            let step = body.len() / count + 1;
            let mut parts: Vec<&[u8]> = body.chunks(step).collect();
            let last = parts.pop().unwrap_or(&[]);
            for part in parts {
                let mut wire = format!("BDAT {}\r\n", part.len()).into_bytes();
                wire.extend_from_slice(part);
                let replies = sent_replies(&dialogue.feed(&wire))?;
                // A chunk that is not LAST gets exactly one reply.
                prop_assert_eq!(replies.len(), 1);
            }
            let mut wire = format!("BDAT {} LAST\r\n", last.len()).into_bytes();
            wire.extend_from_slice(last);
            let out = dialogue.feed(&wire);
            if accepted.is_empty() {
                // RFC 2033 §4.3: zero replies.
                prop_assert_eq!(sent_replies(&out)?.len(), 0);
                return Ok(());
            }
            out
        }
    };

    let stored_token = end.iter().find_map(|output| match output {
        Output::StoreMessage { token, message } => Some((*token, message.recipients.len())),
        _ => None,
    });
    let Some((token, recipients)) = stored_token else {
        // The message itself was refused: the same reply for every recipient, no promise.
        let replies = sent_replies(&end)?;
        prop_assert_eq!(replies.len(), accepted.len());
        prop_assert!(replies.iter().all(|reply| reply == &replies[0]));
        prop_assert!(replies[0].code.0 >= 500);
        return Ok(());
    };
    prop_assert_eq!(recipients, accepted.len());
    // Nothing is said before the store answers.
    prop_assert_eq!(sent_replies(&end)?.len(), 0);

    let out = match answer {
        StoreAnswer::TimedOut => {
            dialogue.now = dialogue.session.next_deadline().unwrap();
            dialogue.input(Input::Tick)
        }
        StoreAnswer::AllStored => dialogue.input(Input::MessageStored {
            token,
            outcome: StoreOutcome::Stored {
                queue_id: "Q1".to_owned(),
            },
        }),
        StoreAnswer::Failed => dialogue.input(Input::MessageStored {
            token,
            outcome: StoreOutcome::Failed,
        }),
        StoreAnswer::PerRecipient(outcomes) => dialogue.input(Input::MessageStored {
            token,
            outcome: StoreOutcome::PerRecipient {
                queue_id: "Q1".to_owned(),
                recipients: outcomes.clone(),
            },
        }),
    };
    let replies = sent_replies(&out)?;
    prop_assert_eq!(replies.len(), accepted.len(), "{:?}", replies);
    for (index, (reply, address)) in replies.iter().zip(&accepted).enumerate() {
        let expected_code = match expected_outcome(answer, index) {
            RecipientStoreOutcome::Stored => 250,
            RecipientStoreOutcome::TemporaryFailure => 451,
            RecipientStoreOutcome::MailboxFull => 552,
            RecipientStoreOutcome::UnknownUser => 550,
        };
        prop_assert_eq!(reply.code.0, expected_code, "{:?}", reply);
        prop_assert!(
            reply.lines[0].starts_with(&format!("{address}:")),
            "reply {:?} should name {}",
            reply,
            address
        );
    }
    // The session is back at the command level, ready for the next transaction.
    let out = dialogue.feed(b"NOOP\r\n");
    prop_assert_eq!(sent_replies(&out)?.len(), 1);
    Ok(())
}

#[derive(Clone, Debug)]
enum Step {
    Bytes(Vec<u8>),
    /// Answer the open request (if any) with choice `u8`.
    Answer(u8, Vec<RecipientStoreOutcome>),
    /// Answer a random earlier token (stale or wrong kind).
    AnswerStale(usize, u8),
    Tick(u64),
    Shutdown,
    PeerClosed,
}

fn command_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("LHLO g.example.org".to_owned()),
        1 => Just("EHLO g.example.org".to_owned()),
        1 => Just("HELO g.example.org".to_owned()),
        4 => Just("MAIL FROM:<a@example.org>".to_owned()),
        1 => Just("MAIL FROM:<> SIZE=999999".to_owned()),
        5 => (0u8..4).prop_map(|n| format!("RCPT TO:<r{n}@example.com>")),
        3 => Just("DATA".to_owned()),
        3 => (0u64..30, any::<bool>())
            .prop_map(|(size, last)| format!("BDAT {size}{}", if last { " LAST" } else { "" })),
        1 => Just("RSET".to_owned()),
        1 => Just("NOOP".to_owned()),
        1 => Just("HELP".to_owned()),
        1 => Just("STARTTLS".to_owned()),
        1 => Just("AUTH PLAIN AGFsaWNlAHNlY3JldA==".to_owned()),
        3 => Just(".".to_owned()),
        2 => Just("Subject: hello".to_owned()),
        1 => Just("x".repeat(60)),
        1 => Just("QUIT".to_owned()),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => vec(command_line(), 1..6).prop_map(|lines| {
            Step::Bytes(lines.iter().flat_map(|line| format!("{line}\r\n").into_bytes()).collect())
        }),
        1 => vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..40).prop_map(Step::Bytes),
        10 => (any::<u8>(), vec(recipient_store_outcome(), 0..6))
            .prop_map(|(choice, outcomes)| Step::Answer(choice, outcomes)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(pick, choice)| Step::AnswerStale(pick, choice)),
        1 => prop_oneof![Just(0u64), Just(60_000), Just(180_000), Just(600_000)].prop_map(Step::Tick),
        1 => prop_oneof![Just(Step::Shutdown), Just(Step::PeerClosed)],
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Recipient,
    Store,
}

fn answer_for(kind: Kind, token: Token, choice: u8, outcomes: Vec<RecipientStoreOutcome>) -> Input {
    match kind {
        Kind::Recipient => Input::RecipientChecked {
            token,
            verdict: match choice % 4 {
                0 | 1 => RecipientVerdict::Accept,
                2 => RecipientVerdict::UnknownUser,
                _ => RecipientVerdict::TemporaryFailure,
            },
        },
        Kind::Store => Input::MessageStored {
            token,
            outcome: match choice % 4 {
                0 => StoreOutcome::Failed,
                1 => StoreOutcome::Stored {
                    queue_id: format!("Q{}", token.0),
                },
                _ => StoreOutcome::PerRecipient {
                    queue_id: format!("Q{}", token.0),
                    recipients: outcomes,
                },
            },
        },
    }
}

/// Drives a random LMTP session, checking after every input: well-formed replies,
/// nothing after close, a 250 "stored as" only for a recipient of a store request
/// answered durable for that recipient, and the end-of-data replies matching the
/// recipients of the store request one for one.
fn random_session(steps: &[Step]) -> Result<Vec<Output>, TestCaseError> {
    let mut now = Instant::from_millis(0);
    let mut session = ServerSession::new(now, lmtp_config());
    let mut all: Vec<Output> = std::iter::from_fn(|| session.poll()).collect();
    let mut requests: Vec<(Kind, Token)> = Vec::new();
    // Store requests not yet answered: token -> recipients, as written in replies.
    let mut open_stores: Vec<(Token, Vec<String>)> = Vec::new();
    // "<address>: ok, stored as Q<token>" lines the store allowed, counted: a recipient
    // given twice in one transaction is answered twice.
    let mut allowed_promises: BTreeMap<String, usize> = BTreeMap::new();
    let mut closed = false;
    for step in steps {
        let input = match step {
            Step::Bytes(bytes) => Input::Bytes(bytes.clone()),
            Step::Answer(choice, outcomes) => match requests.last() {
                Some(&(kind, token)) => answer_for(kind, token, *choice, outcomes.clone()),
                None => continue,
            },
            Step::AnswerStale(pick, choice) => {
                let token = requests
                    .get(pick % (requests.len() + 1))
                    .map_or(Token(u64::MAX), |(_, token)| *token);
                let kind = if choice % 2 == 0 {
                    Kind::Recipient
                } else {
                    Kind::Store
                };
                answer_for(kind, token, *choice, vec![RecipientStoreOutcome::Stored; 3])
            }
            Step::Tick(millis) => {
                now = now + Duration::from_millis(*millis);
                Input::Tick
            }
            Step::Shutdown => Input::Shutdown,
            Step::PeerClosed => Input::PeerClosed,
        };
        // The store request this input settles, if it is the right answer to an open one.
        let settling = match &input {
            Input::MessageStored { token, outcome } => open_stores
                .iter()
                .position(|(open, _)| open == token)
                .map(|index| (index, Some(outcome.clone()))),
            Input::Tick => open_stores
                .iter()
                .position(|_| {
                    session
                        .next_deadline()
                        .is_some_and(|deadline| now >= deadline)
                })
                .map(|index| (index, None)),
            _ => None,
        };
        if let Some((index, outcome)) = &settling {
            let (token, recipients) = &open_stores[*index];
            for (position, recipient) in recipients.iter().enumerate() {
                let stored = match outcome {
                    Some(StoreOutcome::Stored { .. }) => true,
                    Some(StoreOutcome::PerRecipient {
                        recipients: outcomes,
                        ..
                    }) => outcomes.get(position) == Some(&RecipientStoreOutcome::Stored),
                    _ => false,
                };
                if stored {
                    *allowed_promises
                        .entry(format!("{recipient}: ok, stored as Q{}", token.0))
                        .or_default() += 1;
                }
            }
        }
        let was_closed = closed;
        session.handle(now, input);
        let outputs: Vec<Output> = std::iter::from_fn(|| session.poll()).collect();
        let mut replies = Vec::new();
        for output in &outputs {
            prop_assert!(
                !closed || matches!(output, Output::Event(_)),
                "output after Close: {output:?}"
            );
            match output {
                Output::Send(bytes) => replies.extend(parse_replies(bytes)?),
                Output::CheckRecipient { token, .. } => requests.push((Kind::Recipient, *token)),
                Output::StoreMessage { token, message } => {
                    prop_assert!(!message.recipients.is_empty());
                    requests.push((Kind::Store, *token));
                    open_stores.push((
                        *token,
                        message
                            .recipients
                            .iter()
                            .map(|recipient| recipient.path.to_string())
                            .collect(),
                    ));
                }
                Output::Close => closed = true,
                Output::CheckCredentials { .. } | Output::StartTls => {
                    prop_assert!(false, "LMTP asked for {:?}", output);
                }
                Output::Event(_) => {}
            }
        }
        for reply in &replies {
            if let Some(line) = reply.lines.first()
                && line.contains(": ok, stored as ")
            {
                prop_assert_eq!(reply.code.0, 250);
                let allowed = allowed_promises.get_mut(line);
                prop_assert!(
                    allowed.as_ref().is_some_and(|count| **count > 0),
                    "promise {:?} without a durable store",
                    line
                );
                if let Some(count) = allowed {
                    *count -= 1;
                }
            }
        }
        if let Some((index, _)) = settling
            && !was_closed
        {
            let (_, recipients) = open_stores.remove(index);
            // The first replies answer the store request's recipients, one each, in order.
            prop_assert!(replies.len() >= recipients.len(), "{:?}", replies);
            for (reply, recipient) in replies.iter().zip(&recipients) {
                prop_assert!(
                    reply.lines[0].starts_with(&format!("{recipient}:")),
                    "{:?} should answer {}",
                    reply,
                    recipient
                );
            }
        }
        prop_assert_eq!(closed, session.is_closed());
        all.extend(outputs);
    }
    Ok(all)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn end_of_data_gets_one_reply_per_accepted_recipient(
        verdicts in vec(any::<bool>(), 1..6),
        body in body(),
        chunks in proptest::option::of(1usize..4),
        answer in store_answer(),
    ) {
        one_transaction(&verdicts, &body, chunks, &answer)?;
    }

    #[test]
    fn random_lmtp_sessions_keep_the_promises(steps in vec(step(), 0..60)) {
        let first = random_session(&steps)?;
        // Deterministic: the same inputs give the same outputs.
        let second = random_session(&steps)?;
        prop_assert_eq!(first, second);
    }
}

/// The generator reaches mixed per-recipient answers: without this, the promise
/// check above could hold vacuously.
#[test]
fn a_scripted_session_reaches_per_recipient_promises() {
    let steps = vec![
        Step::Bytes(
            b"LHLO g.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r0@example.com>\r\n"
                .to_vec(),
        ),
        Step::Answer(0, Vec::new()),
        Step::Bytes(b"RCPT TO:<r1@example.com>\r\n".to_vec()),
        Step::Answer(0, Vec::new()),
        Step::Bytes(b"DATA\r\nhello\r\n.\r\n".to_vec()),
        Step::Answer(
            2,
            vec![
                RecipientStoreOutcome::MailboxFull,
                RecipientStoreOutcome::Stored,
            ],
        ),
    ];
    let outputs = random_session(&steps).unwrap();
    let text: Vec<u8> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.ends_with(
            "552 5.2.2 <r0@example.com>: mailbox full\r\n250 2.0.0 <r1@example.com>: ok, stored as Q3\r\n"
        ),
        "{text}"
    );
}
