//! Property tests of the POP3 session: the split of the client's bytes changes
//! nothing it says, and RETR carries any stored message intact through the
//! byte-stuffing; plus one full dialogue as an insta snapshot.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sluice_core::machine::Machine;
use sluice_core::pop3::{
    CommitOutcome, CredentialOutcome, Input, Limits, MaildropEntry, MaildropOutcome, MessageData,
    Output, Pop3Config, Pop3Session, TlsMode,
};
use sluice_core::smtp::address::Domain;
use sluice_core::time::Instant;
use std::fmt::Write as _;

fn config() -> Pop3Config {
    Pop3Config {
        hostname: Domain::parse("pop.sluice.test").unwrap(),
        tls: TlsMode::Implicit,
        allow_plaintext_auth: false,
        limits: Limits::default(),
    }
}

/// What a client sees of a stored message: bare LF as CRLF, and a last line end.
/// Written apart from the session's encoder, byte by byte.
fn as_client_sees(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, &byte) in message.iter().enumerate() {
        if byte == b'\n' && (index == 0 || message[index - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    if out.last() == Some(&b'\r') {
        out.push(b'\n');
    } else if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A driver that answers every request at once: `alice` logs in, the maildrop
/// holds `messages`, reads come in chunks of `chunk` bytes, commits succeed. It
/// records everything in one text, the dialogue as the driver saw it.
struct Driver {
    session: Pop3Session,
    messages: Vec<Vec<u8>>,
    chunk: usize,
    record: String,
    sent: Vec<u8>,
}

impl Driver {
    fn new(messages: Vec<Vec<u8>>, chunk: usize) -> Driver {
        let mut driver = Driver {
            session: Pop3Session::new(Instant::EPOCH, config()),
            messages,
            chunk: chunk.max(1),
            record: String::new(),
            sent: Vec::new(),
        };
        driver.drain();
        driver
    }

    fn handle(&mut self, input: Input) {
        self.session.handle(Instant::EPOCH, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.session.poll() {
            match output {
                Output::Send(bytes) => self.sent.extend_from_slice(&bytes),
                Output::CheckCredentials { token, credentials } => {
                    let _ = writeln!(self.record, "check {}", credentials.username);
                    let outcome = if credentials.password == "secret" {
                        CredentialOutcome::Valid {
                            identity: credentials.username,
                        }
                    } else {
                        CredentialOutcome::Invalid
                    };
                    self.handle(Input::CredentialsChecked { token, outcome });
                }
                Output::OpenMaildrop { token, user } => {
                    let _ = writeln!(self.record, "open {user}");
                    let entries = self
                        .messages
                        .iter()
                        .enumerate()
                        .map(|(index, message)| MaildropEntry {
                            uid: format!("5.{}", index + 1),
                            size: as_client_sees(message).len() as u64,
                        })
                        .collect();
                    self.handle(Input::MaildropOpened {
                        token,
                        outcome: MaildropOutcome::Opened(entries),
                    });
                }
                Output::ReadMessage { token, index, uid } => {
                    let _ = writeln!(self.record, "read {index} {uid}");
                    let message = self.messages[index].clone();
                    for part in message.chunks(self.chunk) {
                        self.session.handle(
                            Instant::EPOCH,
                            Input::MessageData {
                                token,
                                data: MessageData::Chunk(part.to_vec()),
                            },
                        );
                    }
                    self.handle(Input::MessageData {
                        token,
                        data: MessageData::End,
                    });
                }
                Output::CommitDeletions { token, messages } => {
                    let _ = writeln!(self.record, "commit {messages:?}");
                    self.handle(Input::DeletionsCommitted {
                        token,
                        outcome: CommitOutcome::Done,
                    });
                }
                other => {
                    let _ = writeln!(self.record, "{other:?}");
                }
            }
        }
    }
}

/// One client command, from a vocabulary that reaches every state.
fn command() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("USER alice".to_owned()),
        Just("PASS secret".to_owned()),
        Just("PASS wrong".to_owned()),
        Just("CAPA".to_owned()),
        Just("STAT".to_owned()),
        Just("LIST".to_owned()),
        Just("UIDL".to_owned()),
        Just("RSET".to_owned()),
        Just("NOOP".to_owned()),
        Just("QUIT".to_owned()),
        Just("AUTH PLAIN AGFsaWNlAHNlY3JldA==".to_owned()),
        (0u64..5).prop_map(|n| format!("RETR {n}")),
        (0u64..5).prop_map(|n| format!("DELE {n}")),
        (0u64..5).prop_map(|n| format!("LIST {n}")),
        (0u64..5, 0u64..4).prop_map(|(n, m)| format!("TOP {n} {m}")),
        "[ -~]{0,12}",
    ]
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'.'),
            Just(b'\r'),
            Just(b'\n'),
            Just(b'a'),
            Just(b' '),
            any::<u8>()
        ],
        0..200,
    )
}

fn run(messages: &[Vec<u8>], chunk: usize, cuts: &[usize], bytes: &[u8]) -> (Vec<u8>, String) {
    let mut driver = Driver::new(messages.to_vec(), chunk);
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        if cut > start {
            driver.handle(Input::Bytes(bytes[start..cut].to_vec()));
            start = cut;
            // The memory bound: never more client input held than twice the pipeline
            // buffer (beyond it the session closes), whatever the split.
            let held = driver.session.buffered_bytes();
            assert!(
                held <= 2 * Limits::default().pipeline_buffer,
                "{held} bytes held"
            );
        }
    }
    (driver.sent, driver.record)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// TCP may cut the stream anywhere: the responses, the requests and the events
    /// are the same as when everything arrives at once.
    #[test]
    fn any_split_gives_the_same_outputs(
        commands in prop::collection::vec(command(), 0..20),
        messages in prop::collection::vec(message(), 0..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        chunk in 1usize..64,
    ) {
        let mut bytes = b"USER alice\r\nPASS secret\r\n".to_vec();
        for command in &commands {
            bytes.extend_from_slice(command.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        let whole = run(&messages, chunk, &[], &bytes);
        let split = run(&messages, chunk, &cuts, &bytes);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
        for line in whole.0.split(|&b| b == b'\n') {
            // Every response line is bounded (RFC 2449 §4: 512 octets for a status line;
            // message lines are as long as the message's own).
            prop_assert!(line.len() <= 512 || !line.starts_with(b"+OK") && !line.starts_with(b"-ERR"));
        }
    }

    /// RETR's response, un-stuffed, is the stored message as the client sees it, for
    /// any bytes (dots at line starts, bare LF and CR) read in any chunk size.
    #[test]
    fn retr_unstuffed_is_the_message(message in message(), chunk in 1usize..32) {
        let mut driver = Driver::new(vec![message.clone()], chunk);
        driver.handle(Input::Bytes(b"USER alice\r\nPASS secret\r\n".to_vec()));
        driver.sent.clear();
        driver.handle(Input::Bytes(b"RETR 1\r\n".to_vec()));
        let sent = driver.sent;
        let status_end = sent.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let expected = as_client_sees(&message);
        let status = format!("+OK {} octets\r\n", expected.len());
        prop_assert_eq!(&sent[..status_end], status.as_bytes());
        let body = &sent[status_end..];
        prop_assert!(body.ends_with(b".\r\n"));
        prop_assert!(body.len() == 3 || body[..body.len() - 3].ends_with(b"\r\n"));
        let mut unstuffed = Vec::new();
        let mut content = &body[..body.len() - 3];
        while !content.is_empty() {
            let end = content.windows(2).position(|w| w == b"\r\n").map_or(content.len(), |p| p + 2);
            let line = &content[..end];
            // Only the terminator may be a lone dot.
            prop_assert_ne!(line, b".\r\n");
            unstuffed.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            content = &content[end..];
        }
        prop_assert_eq!(unstuffed, expected);
    }
}

/// One whole session, byte-exact: login, the listings, TOP, RETR of a message with
/// dots and bare LF, DELE, and QUIT committing the deletion.
#[test]
fn a_full_dialogue() {
    let messages = vec![
        b"From: bob@example.org\r\nSubject: hello\r\n\r\nHi Alice.\r\n.\r\nBye.\r\n".to_vec(),
        b"Subject: bare\n\n.leading dot\nend".to_vec(),
    ];
    let mut driver = Driver::new(messages, 16);
    let mut transcript = String::new();
    let greeting = std::mem::take(&mut driver.sent);
    transcript += &String::from_utf8_lossy(&greeting);
    for command in [
        "CAPA",
        "USER alice",
        "PASS secret",
        "STAT",
        "LIST",
        "UIDL",
        "TOP 1 0",
        "RETR 2",
        "DELE 1",
        "LIST 1",
        "STAT",
        "QUIT",
    ] {
        let _ = writeln!(transcript, "C: {command}");
        driver.handle(Input::Bytes(format!("{command}\r\n").into_bytes()));
        transcript += &String::from_utf8_lossy(&std::mem::take(&mut driver.sent));
    }
    transcript += "-- driver --\n";
    transcript += &driver.record;
    insta::assert_snapshot!(transcript.replace("\r\n", "\u{21b5}\n"));
}
