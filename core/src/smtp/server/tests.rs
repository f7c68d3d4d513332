//! Unit tests of the session machine: whole dialogues through handle/poll, with a
//! scripted driver.

use super::*;
use crate::smtp::address::{Domain, ForwardPath};
use crate::time::Duration;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const HOST: &str = "mx.example.com";

fn config(kind: ListenerKind, tls: TlsMode) -> SessionConfig {
    SessionConfig {
        kind,
        hostname: Domain::parse(HOST).unwrap(),
        tls,
        auth_requires_tls: true,
        limits: Limits::default(),
    }
}

fn mx() -> SessionConfig {
    config(ListenerKind::Mx, TlsMode::StartTlsOffered)
}

/// Submission over implicit TLS: AUTH is offered from the start.
fn submission() -> SessionConfig {
    config(ListenerKind::Submission, TlsMode::Implicit)
}

/// How the scripted driver answers requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// Answers nothing: the test answers by hand.
    Manual,
    /// Accepts every recipient and credential, stores every message.
    Accepting,
}

struct Harness {
    session: ServerSession,
    now: Instant,
    driver: Driver,
    queue_ids: u32,
}

impl Harness {
    fn new(config: SessionConfig, driver: Driver) -> (Harness, Vec<Output>) {
        let now = Instant::from_millis(1_000);
        let mut harness = Harness {
            session: ServerSession::new(now, config),
            now,
            driver,
            queue_ids: 0,
        };
        let outputs = harness.drain();
        (harness, outputs)
    }

    /// A session past its greeting.
    fn started(config: SessionConfig, driver: Driver) -> Harness {
        Harness::new(config, driver).0
    }

    fn drain(&mut self) -> Vec<Output> {
        let mut all = Vec::new();
        while let Some(output) = self.session.poll() {
            let answer = match (&output, self.driver) {
                (Output::CheckRecipient { token, .. }, Driver::Accepting) => {
                    Some(Input::RecipientChecked {
                        token: *token,
                        verdict: RecipientVerdict::Accept,
                    })
                }
                (Output::CheckCredentials { token, credentials }, Driver::Accepting) => {
                    Some(Input::CredentialsChecked {
                        token: *token,
                        outcome: CredentialOutcome::Valid {
                            identity: credentials.username.clone(),
                        },
                    })
                }
                (Output::StoreMessage { token, .. }, Driver::Accepting) => {
                    self.queue_ids += 1;
                    Some(Input::MessageStored {
                        token: *token,
                        outcome: StoreOutcome::Stored {
                            queue_id: format!("Q{}", self.queue_ids),
                        },
                    })
                }
                _ => None,
            };
            all.push(output);
            if let Some(answer) = answer {
                self.session.handle(self.now, answer);
            }
        }
        all
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Output> {
        self.input(Input::Bytes(bytes.to_vec()))
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.session.handle(self.now, input);
        self.drain()
    }

    fn advance(&mut self, duration: Duration) {
        self.now = self.now + duration;
    }

    /// Moves to the session's deadline and ticks.
    fn tick_at_deadline(&mut self) -> Vec<Output> {
        let deadline = self.session.next_deadline().unwrap();
        assert!(deadline >= self.now);
        self.now = deadline;
        self.input(Input::Tick)
    }

    fn ehlo(&mut self) -> Vec<Output> {
        self.feed(b"EHLO client.example.org\r\n")
    }

    /// EHLO, MAIL and one recipient, answered by the accepting driver or by hand.
    fn open_transaction(&mut self) {
        self.ehlo();
        self.feed(b"MAIL FROM:<alice@example.org>\r\n");
        let out = self.feed(b"RCPT TO:<bob@example.com>\r\n");
        if self.driver == Driver::Manual {
            let token = recipient_tokens(&out)[0];
            self.input(Input::RecipientChecked {
                token,
                verdict: RecipientVerdict::Accept,
            });
        }
    }
}

/// Every byte sent, as text.
fn sent(outputs: &[Output]) -> String {
    let mut bytes = Vec::new();
    for output in outputs {
        if let Output::Send(chunk) = output {
            bytes.extend_from_slice(chunk);
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// The last line of every reply sent (the one with a space after the code).
fn replies(outputs: &[Output]) -> Vec<String> {
    sent(outputs)
        .split("\r\n")
        .filter(|line| line.len() >= 4 && line.as_bytes()[3] == b' ')
        .map(str::to_owned)
        .collect()
}

/// Asserts the replies sent, each by a prefix such as "250 2.1.0".
#[track_caller]
fn assert_replies(outputs: &[Output], expected: &[&str]) {
    let actual = replies(outputs);
    assert_eq!(
        actual.len(),
        expected.len(),
        "replies {actual:?}, expected {expected:?}"
    );
    for (line, prefix) in actual.iter().zip(expected) {
        assert!(
            line.starts_with(prefix),
            "reply {line:?} does not start with {prefix:?} in {actual:?}"
        );
    }
}

fn events(outputs: &[Output]) -> Vec<SessionEvent> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn recipient_tokens(outputs: &[Output]) -> Vec<Token> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::CheckRecipient { token, .. } => Some(*token),
            _ => None,
        })
        .collect()
}

fn stored(outputs: &[Output]) -> Vec<(Token, AcceptedMessage)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::StoreMessage { token, message } => Some((*token, message.clone())),
            _ => None,
        })
        .collect()
}

fn credential_requests(outputs: &[Output]) -> Vec<(Token, Credentials)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::CheckCredentials { token, credentials } => Some((*token, credentials.clone())),
            _ => None,
        })
        .collect()
}

fn closed(outputs: &[Output]) -> bool {
    outputs.contains(&Output::Close)
}

fn disconnect_reason(outputs: &[Output]) -> Option<DisconnectReason> {
    events(outputs).into_iter().find_map(|event| match event {
        SessionEvent::Disconnected { reason } => Some(reason),
        _ => None,
    })
}

fn b64(raw: &[u8]) -> String {
    STANDARD.encode(raw)
}

// Greeting, EHLO and simple commands.

#[test]
fn greeting_and_connected_event() {
    let (_, out) = Harness::new(mx(), Driver::Manual);
    assert_eq!(sent(&out), format!("220 {HOST} ESMTP Sluice\r\n"));
    assert_eq!(events(&out), vec![SessionEvent::Connected]);
}

#[test]
fn ehlo_capabilities_on_mx() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let out = harness.ehlo();
    assert_eq!(
        sent(&out),
        format!(
            "250-{HOST} greets client.example.org\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n\
             250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n"
        )
    );
    assert!(matches!(
        &events(&out)[..],
        [SessionEvent::Helo { esmtp: true, .. }]
    ));
}

#[test]
fn ehlo_capabilities_on_submission() {
    let mut implicit = Harness::started(submission(), Driver::Manual);
    let text = sent(&implicit.ehlo());
    assert!(
        text.ends_with("250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"),
        "{text}"
    );
    assert!(!text.contains("STARTTLS"));

    let mut plaintext = Harness::started(
        config(ListenerKind::Submission, TlsMode::StartTlsOffered),
        Driver::Manual,
    );
    let text = sent(&plaintext.ehlo());
    assert!(
        text.ends_with("250 STARTTLS\r\n") && !text.contains("AUTH"),
        "{text}"
    );

    let mut relaxed = config(ListenerKind::Submission, TlsMode::Unavailable);
    relaxed.auth_requires_tls = false;
    let text = sent(&Harness::started(relaxed, Driver::Manual).ehlo());
    assert!(
        text.ends_with("250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"),
        "{text}"
    );
}

#[test]
fn helo_has_no_extensions() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let out = harness.feed(b"HELO client.example.org\r\n");
    assert_eq!(sent(&out), format!("250 {HOST}\r\n"));
}

#[test]
fn simple_commands() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let out = harness.feed(b"NOOP\r\nRSET\r\nVRFY bob\r\nEXPN staff\r\nHELP\r\nFOO\r\n");
    assert_replies(
        &out,
        &[
            "250 2.0.0",
            "250 2.0.0",
            "252 2.5.0",
            "502 5.5.1",
            "214 2.0.0",
            "500 5.5.2",
        ],
    );
}

#[test]
fn malformed_ehlo() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    assert_replies(&harness.feed(b"EHLO\r\n"), &["501 5.5.4"]);
}

#[test]
fn quit_closes_and_nothing_follows() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let out = harness.feed(b"QUIT\r\nNOOP\r\n");
    assert_eq!(
        sent(&out),
        format!("221 2.0.0 {HOST} closing connection\r\n")
    );
    assert!(closed(&out));
    assert_eq!(disconnect_reason(&out), Some(DisconnectReason::Quit));
    assert!(harness.session.is_closed());
    assert!(harness.feed(b"NOOP\r\n").is_empty());
    assert!(harness.input(Input::Tick).is_empty());
    assert_eq!(harness.session.next_deadline(), None);
}

#[test]
fn peer_closed() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let out = harness.input(Input::PeerClosed);
    assert_eq!(disconnect_reason(&out), Some(DisconnectReason::PeerClosed));
    assert!(closed(&out));
}

#[test]
fn foreign_protocol_closes() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let out = harness.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_replies(&out, &["421 4.7.0"]);
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::ForeignProtocol)
    );
}

#[test]
fn command_lines_must_end_in_crlf() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    assert_replies(
        &harness.feed(b"NOOP\n"),
        &["500 5.5.2 command lines must end with CRLF"],
    );
    assert_replies(
        &harness.feed(b"NO\rOP\r\n"),
        &["500 5.5.2 command lines must end with CRLF"],
    );
    assert_replies(&harness.feed(b"NOOP\r\n"), &["250 2.0.0"]);
}

// Transactions.

#[test]
fn full_dialogue_with_data() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    assert_replies(
        &harness.feed(b"MAIL FROM:<alice@example.org> SIZE=100\r\n"),
        &["250 2.1.0"],
    );
    let out = harness.feed(b"RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE\r\n");
    assert!(replies(&out).is_empty());
    let token = recipient_tokens(&out)[0];
    assert_replies(
        &harness.input(Input::RecipientChecked {
            token,
            verdict: RecipientVerdict::Accept,
        }),
        &["250 2.1.5"],
    );
    assert_replies(&harness.feed(b"DATA\r\n"), &["354 end data"]);
    let out = harness.feed(b"Subject: hi\r\n\r\n..dotted\r\nbody\r\n.\r\n");
    assert!(
        replies(&out).is_empty(),
        "no reply before the store answers"
    );
    let requests = stored(&out);
    assert_eq!(requests.len(), 1);
    let (token, message) = &requests[0];
    assert_eq!(message.data, b"Subject: hi\r\n\r\n.dotted\r\nbody\r\n");
    assert_eq!(message.recipients.len(), 1);
    assert_eq!(message.mail_params.size, Some(100));
    assert!(message.esmtp && !message.tls && message.authenticated.is_none());
    let out = harness.input(Input::MessageStored {
        token: *token,
        outcome: StoreOutcome::Stored {
            queue_id: "ABC123".to_owned(),
        },
    });
    assert_eq!(sent(&out), "250 2.0.0 ok: queued as ABC123\r\n");
    assert!(matches!(
        &events(&out)[..],
        [SessionEvent::TransactionAccepted {
            recipients: 1,
            size: 30,
            ..
        }]
    ));
    // RSET is implied: a second transaction may follow.
    assert_replies(&harness.feed(b"MAIL FROM:<>\r\n"), &["250 2.1.0"]);
}

#[test]
fn empty_message_right_after_354() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\n.\r\n");
    assert_replies(&out, &["354", "250 2.0.0 ok: queued as Q1"]);
    assert_eq!(stored(&out)[0].1.data, b"");
}

#[test]
fn store_failure_is_451() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\nhello\r\n.\r\n");
    let token = stored(&out)[0].0;
    let out = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::Failed,
    });
    assert_replies(&out, &["451 4.3.0 message not stored"]);
    assert!(events(&out).contains(&SessionEvent::TransactionRejected {
        code: crate::smtp::reply::ReplyCode(451),
        reason: RejectReason::StoreFailed
    }));
    assert_replies(
        &harness.feed(b"RCPT TO:<bob@example.com>\r\n"),
        &["503 5.5.1"],
    );
}

#[test]
fn sequence_errors() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["503 5.5.1 send HELO or EHLO first"],
    );
    harness.ehlo();
    assert_replies(
        &harness.feed(b"RCPT TO:<b@example.com>\r\n"),
        &["503 5.5.1 need MAIL before RCPT"],
    );
    assert_replies(&harness.feed(b"DATA\r\n"), &["503 5.5.1 need MAIL command"]);
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["250 2.1.0"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["503 5.5.1 nested MAIL"],
    );
    assert_replies(
        &harness.feed(b"DATA\r\n"),
        &["554 5.5.1 no valid recipients"],
    );
    assert_replies(&harness.feed(b"DATA now\r\n"), &["501 5.5.4"]);
}

#[test]
fn address_and_parameter_errors() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    assert_replies(
        &harness.feed(b"MAIL FROM:<not an address>\r\n"),
        &["501 5.1.7"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org> FROBNICATE=1\r\n"),
        &["555 5.5.4"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org> SIZE=abc\r\n"),
        &["501 5.5.4"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n"),
        &["555 5.5.4"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org> SIZE=999999999999\r\n"),
        &["552 5.3.4"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org> AUTH=<>\r\n"),
        &["555 5.5.4"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["250 2.1.0"],
    );
    assert_replies(
        &harness.feed(b"RCPT TO:<not an address>\r\n"),
        &["501 5.1.3"],
    );
}

#[test]
fn parameters_after_helo_are_refused() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.feed(b"HELO client.example.org\r\n");
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org> SIZE=10\r\n"),
        &["555 5.5.4 unsupported parameter SIZE"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["250 2.1.0"],
    );
    assert_replies(
        &harness.feed(b"RCPT TO:<b@example.com> NOTIFY=NEVER\r\n"),
        &["555 5.5.4"],
    );
}

#[test]
fn non_ascii_addresses_need_smtputf8() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.ehlo();
    assert_replies(
        &harness.feed("MAIL FROM:<jösé@example.org>\r\n".as_bytes()),
        &["553 5.6.7"],
    );
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["250 2.1.0"],
    );
    assert_replies(
        &harness.feed("RCPT TO:<jösé@example.com>\r\n".as_bytes()),
        &["553 5.6.7"],
    );
    harness.feed(b"RSET\r\n");
    assert_replies(
        &harness.feed("MAIL FROM:<jösé@example.org> SMTPUTF8\r\n".as_bytes()),
        &["250 2.1.0"],
    );
    assert_replies(
        &harness.feed("RCPT TO:<jösé@example.com>\r\n".as_bytes()),
        &["250 2.1.5"],
    );
}

#[test]
fn recipient_verdicts() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    harness.feed(b"MAIL FROM:<a@example.org>\r\n");
    for (verdict, expected) in [
        (
            RecipientVerdict::UnknownUser,
            "550 5.1.1 <x@example.com>: user unknown",
        ),
        (
            RecipientVerdict::RelayDenied,
            "554 5.7.1 <x@example.com>: relay access denied",
        ),
        (
            RecipientVerdict::TemporaryFailure,
            "451 4.3.0 <x@example.com>: temporary lookup failure",
        ),
        (RecipientVerdict::Accept, "250 2.1.5"),
    ] {
        let out = harness.feed(b"RCPT TO:<x@example.com>\r\n");
        let token = recipient_tokens(&out)[0];
        let out = harness.input(Input::RecipientChecked {
            token,
            verdict: verdict.clone(),
        });
        assert_replies(&out, &[expected]);
        if verdict != RecipientVerdict::Accept {
            assert!(
                events(&out)
                    .iter()
                    .any(|event| matches!(event, SessionEvent::RecipientRejected { .. }))
            );
        }
    }
    assert_eq!(harness.session.recipients_held(), 1);
}

#[test]
fn postmaster_goes_through_the_check() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    harness.feed(b"MAIL FROM:<a@example.org>\r\n");
    let out = harness.feed(b"RCPT TO:<Postmaster>\r\n");
    assert!(out.iter().any(|output| matches!(
        output,
        Output::CheckRecipient {
            check: RecipientCheck {
                recipient: ForwardPath::Postmaster,
                ..
            },
            ..
        }
    )));
}

// Pipelining.

#[test]
fn pipelined_replies_stay_in_order_with_delayed_answers() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    let out = harness.feed(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.com>\r\nRCPT TO:<r2@example.com>\r\n\
          RCPT TO:<r3@example.com>\r\nDATA\r\n",
    );
    assert_replies(&out, &["250 2.1.0"]);
    let first = recipient_tokens(&out);
    assert_eq!(first.len(), 1, "one check at a time");
    assert!(
        !harness.session.wants_input()
            || harness.session.buffered_bytes() < Limits::default().pipeline_buffer
    );

    let out = harness.input(Input::RecipientChecked {
        token: first[0],
        verdict: RecipientVerdict::UnknownUser,
    });
    assert_replies(&out, &["550 5.1.1"]);
    let second = recipient_tokens(&out);
    assert_eq!(second.len(), 1);
    // Stale, duplicate and unknown tokens are ignored.
    assert!(
        harness
            .input(Input::RecipientChecked {
                token: first[0],
                verdict: RecipientVerdict::Accept
            })
            .is_empty()
    );
    assert!(
        harness
            .input(Input::RecipientChecked {
                token: Token(999),
                verdict: RecipientVerdict::Accept
            })
            .is_empty()
    );
    assert!(
        harness
            .input(Input::MessageStored {
                token: second[0],
                outcome: StoreOutcome::Failed
            })
            .is_empty()
    );

    let out = harness.input(Input::RecipientChecked {
        token: second[0],
        verdict: RecipientVerdict::Accept,
    });
    assert_replies(&out, &["250 2.1.5"]);
    let third = recipient_tokens(&out);
    let out = harness.input(Input::RecipientChecked {
        token: third[0],
        verdict: RecipientVerdict::TemporaryFailure,
    });
    assert_replies(&out, &["451 4.3.0", "354"]);
}

#[test]
fn commands_after_the_dot_wait_for_the_store() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\n");
    assert_replies(&out, &["354"]);
    let out = harness.feed(b"hi\r\n.\r\nQUIT\r\n");
    assert!(replies(&out).is_empty());
    let token = stored(&out)[0].0;
    let out = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::Stored {
            queue_id: "Q".to_owned(),
        },
    });
    assert_replies(&out, &["250 2.0.0", "221 2.0.0"]);
}

/// The outputs of a whole dialogue, fed in one chunk or byte by byte.
fn dialogue_outputs(wire: &[u8], byte_at_a_time: bool) -> Vec<Output> {
    let (mut harness, mut all) = Harness::new(mx(), Driver::Accepting);
    if byte_at_a_time {
        for byte in wire {
            all.extend(harness.feed(&[*byte]));
        }
    } else {
        all.extend(harness.feed(wire));
    }
    all
}

#[test]
fn split_at_every_byte_gives_the_same_dialogue() {
    let dialogues: [&[u8]; 3] = [
        b"EHLO c.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          Subject: x\r\n\r\n..body\r\n.\r\nNOOP\r\nQUIT\r\n",
        b"EHLO c.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n\
          BDAT 4\r\nab\r\nBDAT 6 LAST\r\ncd\r\n\r\nQUIT\r\n",
        b"EHLO c.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          x\n.\nMAIL FROM:<evil@example.org>\r\n.\r\nQUIT\r\n",
    ];
    for wire in dialogues {
        let whole = dialogue_outputs(wire, false);
        let split = dialogue_outputs(wire, true);
        assert_eq!(whole, split);
        assert!(closed(&whole));
    }
    let bdat = dialogue_outputs(dialogues[1], true);
    assert_eq!(stored(&bdat)[0].1.data, b"ab\r\ncd\r\n\r\n");
    let smuggled = dialogue_outputs(dialogues[2], true);
    assert!(stored(&smuggled).is_empty());
    assert!(sent(&smuggled).contains("554 5.6.0"));
}

// SMTP smuggling.

fn smuggling_rejected(body: &[u8]) {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let mut wire = b"DATA\r\n".to_vec();
    wire.extend_from_slice(body);
    let out = harness.feed(&wire);
    assert!(stored(&out).is_empty(), "{body:?} was accepted");
    assert_replies(&out, &["354", "554 5.6.0 message contains a bare CR or LF"]);
    assert!(events(&out).iter().any(|event| matches!(
        event,
        SessionEvent::TransactionRejected {
            reason: RejectReason::BareLineEnding,
            ..
        }
    )));
    // The transaction is gone.
    assert_replies(
        &harness.feed(b"RCPT TO:<b@example.com>\r\n"),
        &["503 5.5.1"],
    );
}

#[test]
fn smuggling_variants_in_data() {
    for fake_end in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
        let mut body = b"Subject: x\r\n\r\nbody".to_vec();
        body.extend_from_slice(fake_end);
        body.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nforged\r\n.\r\n");
        smuggling_rejected(&body);
    }
}

#[test]
fn bare_line_endings_in_headers_and_body() {
    smuggling_rejected(b"Subject: x\nFrom: y\r\n\r\nbody\r\n.\r\n");
    smuggling_rejected(b"Subject: x\rFrom: y\r\n\r\nbody\r\n.\r\n");
    smuggling_rejected(b"Subject: x\r\n\r\nbo\ndy\r\n.\r\n");
    smuggling_rejected(b"Subject: x\r\n\r\nbo\rdy\r\n.\r\n");
}

fn bdat_rejected(chunks: &[u8]) {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let out = harness.feed(chunks);
    assert!(stored(&out).is_empty(), "{chunks:?} was accepted");
    let lines = replies(&out);
    assert!(
        lines
            .last()
            .is_some_and(|line| line.starts_with("554 5.6.0")),
        "{lines:?}"
    );
}

#[test]
fn smuggling_variants_in_bdat() {
    bdat_rejected(b"BDAT 9 LAST\r\na\n.\nQUIT\n");
    bdat_rejected(b"BDAT 9 LAST\r\na\r.\rQUIT\r");
    bdat_rejected(b"BDAT 4\r\na\r\n.BDAT 3 LAST\r\n\nb\n");
    bdat_rejected(b"BDAT 4\r\nab\r\rBDAT 2 LAST\r\n\r\n");
    bdat_rejected(b"BDAT 5\r\nx: y\nBDAT 0 LAST\r\n");
    // A CRLF may straddle chunks, but a CR alone at LAST is bare.
    bdat_rejected(b"BDAT 2\r\nab\r\nBDAT 1 LAST\r\n\r");
}

// BDAT.

#[test]
fn bdat_chunks_and_crlf_straddling() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.open_transaction();
    assert_replies(
        &harness.feed(b"BDAT 3\r\nab\r"),
        &["250 2.0.0 3 octets received"],
    );
    let out = harness.feed(b"BDAT 3 LAST\r\n\nc\n");
    assert!(stored(&out).is_empty());
    assert_replies(&out, &["554 5.6.0"]);

    harness.open_transaction();
    assert_replies(&harness.feed(b"BDAT 3\r\nab\r"), &["250 2.0.0"]);
    let out = harness.feed(b"BDAT 1 LAST\r\n\n");
    let (token, message) = stored(&out).pop().unwrap();
    assert_eq!(message.data, b"ab\r\n");
    assert!(replies(&out).is_empty());
    let out = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::Stored {
            queue_id: "Q9".to_owned(),
        },
    });
    assert_replies(&out, &["250 2.0.0 ok: queued as Q9"]);
}

#[test]
fn bdat_zero_last() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let out = harness.feed(b"BDAT 4\r\nab\r\nBDAT 0 LAST\r\n");
    assert_replies(&out, &["250 2.0.0 4 octets", "250 2.0.0 ok: queued"]);
    assert_eq!(stored(&out)[0].1.data, b"ab\r\n");
}

#[test]
fn refused_bdat_still_consumes_its_chunk() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.ehlo();
    // Without MAIL: the chunk holds what looks like commands; none may run.
    let out = harness.feed(b"BDAT 12\r\nQUIT\r\nRSET\r\nNOOP\r\n");
    assert_replies(&out, &["503 5.5.1 need MAIL command", "250 2.0.0"]);
    assert!(!closed(&out));
    // No valid recipient.
    harness.feed(b"MAIL FROM:<a@example.org>\r\n");
    let out = harness.feed(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    assert_replies(&out, &["554 5.5.1", "250 2.0.0"]);
    // After HELO.
    harness.feed(b"HELO c.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    let out = harness.feed(b"BDAT 6\r\nQUIT\r\nNOOP\r\n");
    assert_replies(&out, &["503 5.5.1 BDAT requires EHLO", "250 2.0.0"]);
}

#[test]
fn malformed_bdat_closes() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let out = harness.feed(b"BDAT lots\r\nxyz");
    assert_replies(&out, &["501 5.5.4 malformed BDAT"]);
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::MalformedBdat)
    );
}

#[test]
fn data_after_bdat() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let out = harness.feed(b"BDAT 3\r\nab\nDATA\r\n");
    assert_replies(&out, &["250 2.0.0", "503 5.5.1 DATA after BDAT"]);
}

// STARTTLS.

#[test]
fn starttls_resets_the_session() {
    let mut harness = Harness::started(
        config(ListenerKind::Submission, TlsMode::StartTlsOffered),
        Driver::Accepting,
    );
    harness.ehlo();
    let out = harness.feed(b"AUTH PLAIN\r\n");
    assert_replies(&out, &["538 5.7.11"]);
    let out = harness.feed(b"STARTTLS\r\n");
    assert_replies(&out, &["220 2.0.0"]);
    assert_eq!(
        out.iter()
            .filter(|output| **output == Output::StartTls)
            .count(),
        1
    );
    assert!(!harness.session.wants_input());
    let out = harness.input(Input::TlsEstablished);
    assert_eq!(events(&out), vec![SessionEvent::TlsStarted]);
    assert!(replies(&out).is_empty(), "no new greeting");
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["503 5.5.1 send HELO or EHLO first"],
    );
    let text = sent(&harness.ehlo());
    assert!(
        !text.contains("STARTTLS") && text.contains("AUTH PLAIN LOGIN"),
        "{text}"
    );
    assert_replies(
        &harness.feed(b"STARTTLS\r\n"),
        &["503 5.5.1 TLS already active"],
    );
    let response = b64(b"\0alice\0secret");
    let out = harness.feed(format!("AUTH PLAIN {response}\r\n").as_bytes());
    assert_replies(&out, &["235 2.7.0"]);
    assert_replies(
        &harness.feed(b"MAIL FROM:<alice@example.org>\r\n"),
        &["250 2.1.0"],
    );
}

#[test]
fn starttls_with_pipelined_bytes_is_refused() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.ehlo();
    let out = harness.feed(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n");
    assert_replies(&out, &["421 4.7.0"]);
    assert!(!out.contains(&Output::StartTls));
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::StartTlsInjection)
    );
    assert!(closed(&out));
}

#[test]
fn plaintext_during_the_handshake_is_refused() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.ehlo();
    harness.feed(b"STARTTLS\r\n");
    let out = harness.feed(b"MAIL FROM:<evil@example.org>\r\n");
    assert!(replies(&out).is_empty());
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::StartTlsInjection)
    );
    assert!(closed(&out));
}

#[test]
fn starttls_refusals_and_failure() {
    let mut unavailable = Harness::started(
        config(ListenerKind::Mx, TlsMode::Unavailable),
        Driver::Accepting,
    );
    assert_replies(&unavailable.feed(b"STARTTLS\r\n"), &["502 5.5.1"]);
    let mut implicit = Harness::started(
        config(ListenerKind::Mx, TlsMode::Implicit),
        Driver::Accepting,
    );
    assert_replies(
        &implicit.feed(b"STARTTLS\r\n"),
        &["503 5.5.1 TLS already active"],
    );
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    assert_replies(
        &harness.feed(b"STARTTLS\r\n"),
        &["503 5.5.1 STARTTLS not allowed"],
    );
    assert_replies(
        &harness.feed(b"RSET\r\nSTARTTLS now\r\n"),
        &["250", "501 5.5.4"],
    );
    harness.feed(b"STARTTLS\r\n");
    let out = harness.input(Input::TlsFailed);
    assert_eq!(disconnect_reason(&out), Some(DisconnectReason::TlsFailed));
}

// AUTH.

fn authenticated_submission() -> Harness {
    let mut harness = Harness::started(submission(), Driver::Manual);
    harness.ehlo();
    harness
}

#[test]
fn auth_plain_with_initial_response() {
    let mut harness = authenticated_submission();
    // An authorization identity naming the user itself (in any case) is no proxying.
    let response = b64(b"ALICE@example.com\0alice\0secret");
    let out = harness.feed(format!("AUTH PLAIN {response}\r\n").as_bytes());
    let (token, credentials) = credential_requests(&out).pop().unwrap();
    assert_eq!(credentials.mechanism, "PLAIN");
    assert_eq!(
        credentials.authorization_id.as_deref(),
        Some("ALICE@example.com")
    );
    assert_eq!(
        (credentials.username.as_str(), credentials.password.as_str()),
        ("alice", "secret")
    );
    let out = harness.input(Input::CredentialsChecked {
        token,
        outcome: CredentialOutcome::Valid {
            identity: "alice@example.com".to_owned(),
        },
    });
    assert_replies(&out, &["235 2.7.0"]);
    assert_eq!(
        events(&out),
        vec![SessionEvent::AuthSucceeded {
            mechanism: "PLAIN",
            identity: "alice@example.com".to_owned()
        }]
    );
    assert_replies(
        &harness.feed(b"AUTH PLAIN\r\n"),
        &["503 5.5.1 already authenticated"],
    );
}

#[test]
fn valid_credentials_asking_to_act_as_someone_else_are_refused() {
    let mut harness = authenticated_submission();
    let response = b64(b"admin@example.com\0alice\0secret");
    let out = harness.feed(format!("AUTH PLAIN {response}\r\n").as_bytes());
    let (token, _) = credential_requests(&out).pop().unwrap();
    let out = harness.input(Input::CredentialsChecked {
        token,
        outcome: CredentialOutcome::Valid {
            identity: "alice@example.com".to_owned(),
        },
    });
    assert_replies(&out, &["535 5.7.8"]);
    assert_replies(
        &harness.feed(b"MAIL FROM:<alice@example.com>\r\n"),
        &["530 5.7.0"],
    );
}

#[test]
fn auth_plain_with_challenge() {
    let mut harness = authenticated_submission();
    assert_eq!(sent(&harness.feed(b"AUTH PLAIN\r\n")), "334 \r\n");
    let out = harness.feed(format!("{}\r\n", b64(b"\0alice\0secret")).as_bytes());
    assert_eq!(credential_requests(&out)[0].1.username, "alice");
}

#[test]
fn auth_login_both_ways() {
    let mut harness = authenticated_submission();
    assert_eq!(
        sent(&harness.feed(b"AUTH LOGIN\r\n")),
        "334 VXNlcm5hbWU6\r\n"
    );
    assert_eq!(
        sent(&harness.feed(format!("{}\r\n", b64(b"alice")).as_bytes())),
        "334 UGFzc3dvcmQ6\r\n"
    );
    let out = harness.feed(format!("{}\r\n", b64(b"secret")).as_bytes());
    let (token, credentials) = credential_requests(&out).pop().unwrap();
    assert_eq!(
        (
            credentials.mechanism,
            credentials.username.as_str(),
            credentials.password.as_str()
        ),
        ("LOGIN", "alice", "secret")
    );
    assert_replies(
        &harness.input(Input::CredentialsChecked {
            token,
            outcome: CredentialOutcome::Invalid,
        }),
        &["535 5.7.8"],
    );

    let out = harness.feed(format!("AUTH LOGIN {}\r\n", b64(b"bob")).as_bytes());
    assert_eq!(sent(&out), "334 UGFzc3dvcmQ6\r\n");
    let out = harness.feed(format!("{}\r\n", b64(b"pw")).as_bytes());
    assert_eq!(credential_requests(&out)[0].1.username, "bob");
}

#[test]
fn auth_cancel_and_garbage() {
    let mut harness = authenticated_submission();
    harness.feed(b"AUTH LOGIN\r\n");
    assert_replies(&harness.feed(b"*\r\n"), &["501 5.0.0"]);
    harness.feed(b"AUTH PLAIN\r\n");
    assert_replies(&harness.feed(b"!!notbase64!!\r\n"), &["501 5.5.2"]);
    assert_replies(&harness.feed(b"AUTH PLAIN =\r\n"), &["501 5.5.2"]);
    assert_replies(
        &harness.feed(b"AUTH PLAIN !!!not-base64!!!\r\n"),
        &["501 5.5.2"],
    );
    assert_replies(
        &harness.feed(b"AUTH FOO !!!not-base64!!!\r\n"),
        &["504 5.5.4"],
    );
    assert_replies(
        &harness.feed(format!("AUTH PLAIN {}\r\n", b64(b"alice\0secret")).as_bytes()),
        &["501 5.5.2"],
    );
    assert_replies(&harness.feed(b"AUTH CRAM-MD5\r\n"), &["504 5.5.4"]);
    assert_replies(&harness.feed(b"NOOP\r\n"), &["250"]);
}

#[test]
fn auth_refusals() {
    let mut mx_session =
        Harness::started(config(ListenerKind::Mx, TlsMode::Implicit), Driver::Manual);
    mx_session.ehlo();
    assert_replies(&mx_session.feed(b"AUTH PLAIN\r\n"), &["502 5.5.1"]);
    assert_replies(&mx_session.feed(b"AUTH PLAIN !!!\r\n"), &["502 5.5.1"]);
    let mut harness = authenticated_submission();
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["530 5.7.0"],
    );
}

#[test]
fn auth_temporary_failure_and_timeout() {
    let mut harness = authenticated_submission();
    let out = harness.feed(format!("AUTH PLAIN {}\r\n", b64(b"\0alice\0secret")).as_bytes());
    let token = credential_requests(&out)[0].0;
    assert_replies(
        &harness.input(Input::CredentialsChecked {
            token,
            outcome: CredentialOutcome::TemporaryFailure,
        }),
        &["454 4.7.0"],
    );
    harness.feed(format!("AUTH PLAIN {}\r\n", b64(b"\0alice\0secret")).as_bytes());
    assert_eq!(
        harness.session.next_deadline(),
        Some(harness.now + Limits::default().lookup_timeout)
    );
    assert_replies(&harness.tick_at_deadline(), &["454 4.7.0"]);
}

#[test]
fn too_many_auth_failures() {
    let mut harness = authenticated_submission();
    let mut last = Vec::new();
    for _ in 0..3 {
        let out = harness.feed(format!("AUTH PLAIN {}\r\n", b64(b"\0alice\0wrong")).as_bytes());
        let token = credential_requests(&out)[0].0;
        last = harness.input(Input::CredentialsChecked {
            token,
            outcome: CredentialOutcome::Invalid,
        });
    }
    assert_replies(&last, &["535 5.7.8", "421 4.7.0"]);
    assert_eq!(
        disconnect_reason(&last),
        Some(DisconnectReason::TooManyAuthFailures)
    );
    assert!(events(&last).contains(&SessionEvent::AuthFailed {
        mechanism: "PLAIN".to_owned(),
        username: Some("alice".to_owned())
    }));
}

#[test]
fn credentials_never_in_debug_output() {
    let mut harness = authenticated_submission();
    // The response sits unprocessed in the buffer while the first AUTH waits.
    let secret = b64(b"\0alice\0hunter2");
    let out = harness.feed(format!("AUTH PLAIN {secret}\r\nAUTH PLAIN {secret}\r\n").as_bytes());
    let debug = format!("{:?} {:?}", harness.session, out);
    assert!(
        !debug.contains("hunter2") && !debug.contains(&secret),
        "{debug}"
    );
    // A response line read as a command is reported without its text.
    let mut fresh = authenticated_submission();
    let out = fresh.feed(format!("{secret}\r\n").as_bytes());
    let debug = format!("{out:?}");
    assert!(
        debug.contains("UNKNOWN") && !debug.contains(&secret[..8].to_uppercase()),
        "{debug}"
    );
}

// Timeouts.

#[test]
fn command_timeout() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    let start = harness.now;
    assert_eq!(
        harness.session.next_deadline(),
        Some(start + Duration::from_mins(5))
    );
    harness.advance(Duration::from_mins(4));
    assert!(harness.input(Input::Tick).is_empty());
    // A partial command does not extend the deadline.
    harness.feed(b"NO");
    let out = harness.tick_at_deadline();
    assert_eq!(harness.now, start + Duration::from_mins(5));
    assert_replies(&out, &["421 4.4.2"]);
    assert_eq!(disconnect_reason(&out), Some(DisconnectReason::Timeout));
}

#[test]
fn data_block_timeout() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    harness.feed(b"DATA\r\n");
    harness.advance(Duration::from_mins(2));
    harness.feed(b"some data\r\n");
    assert_eq!(
        harness.session.next_deadline(),
        Some(harness.now + Duration::from_mins(3))
    );
    assert_replies(&harness.tick_at_deadline(), &["421 4.4.2"]);

    let mut chunked = Harness::started(mx(), Driver::Accepting);
    chunked.open_transaction();
    chunked.feed(b"BDAT 100\r\npartial");
    assert_eq!(
        chunked.session.next_deadline(),
        Some(chunked.now + Duration::from_mins(3))
    );
    assert_replies(&chunked.tick_at_deadline(), &["421 4.4.2"]);
}

#[test]
fn recipient_lookup_timeout_then_continue() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    let out = harness.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nNOOP\r\n");
    let token = recipient_tokens(&out)[0];
    assert_eq!(
        harness.session.next_deadline(),
        Some(harness.now + Duration::from_mins(2))
    );
    assert_replies(
        &harness.tick_at_deadline(),
        &[
            "451 4.3.0 <b@example.com>: temporary lookup failure",
            "250 2.0.0",
        ],
    );
    // The late answer is ignored.
    assert!(
        harness
            .input(Input::RecipientChecked {
                token,
                verdict: RecipientVerdict::Accept
            })
            .is_empty()
    );
    assert_eq!(harness.session.recipients_held(), 0);
}

#[test]
fn store_timeout() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\nx\r\n.\r\n");
    let token = stored(&out)[0].0;
    assert_eq!(
        harness.session.next_deadline(),
        Some(harness.now + Duration::from_mins(10))
    );
    let out = harness.tick_at_deadline();
    assert_replies(&out, &["451 4.3.0 message not stored"]);
    assert!(events(&out).iter().any(|event| matches!(
        event,
        SessionEvent::TransactionRejected {
            reason: RejectReason::StoreTimedOut,
            ..
        }
    )));
    let late = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::Stored {
            queue_id: "late".to_owned(),
        },
    });
    assert!(late.is_empty());
}

#[test]
fn tls_handshake_timeout() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.feed(b"STARTTLS\r\n");
    let out = harness.tick_at_deadline();
    assert!(replies(&out).is_empty());
    assert_eq!(disconnect_reason(&out), Some(DisconnectReason::Timeout));
}

// Limits.

fn with_limits(change: impl FnOnce(&mut Limits)) -> SessionConfig {
    let mut config = mx();
    change(&mut config.limits);
    config
}

#[test]
fn overlong_command_line() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.command_line = 16),
        Driver::Manual,
    );
    // Exactly at the limit, CRLF included.
    assert_replies(&harness.feed(b"NOOP 123456789\r\n"), &["250"]);
    let out = harness.feed(b"NOOP 1234567890\r\nNOOP\r\n");
    assert_replies(&out, &["500 5.5.2 line too long", "250"]);
    // Split across inputs, replied once.
    let mut out = harness.feed(b"NOOP 1234567890123");
    out.extend(harness.feed(b"4567890"));
    out.extend(harness.feed(b"QUIT\r\nNOOP\r\n"));
    assert_replies(&out, &["500 5.5.2 line too long", "250"]);
    assert!(harness.session.buffered_bytes() <= 16);
}

#[test]
fn overlong_text_line() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.text_line = 10),
        Driver::Accepting,
    );
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\n12345678\r\n123456789\r\n.\r\n");
    assert_replies(
        &out,
        &["354", "554 5.6.0 message has a line longer than 10 octets"],
    );
    assert!(stored(&out).is_empty());
}

#[test]
fn recipient_limit() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.recipients = 2),
        Driver::Accepting,
    );
    harness.ehlo();
    let out = harness.feed(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b1@example.com>\r\nRCPT TO:<b2@example.com>\r\n\
          RCPT TO:<b3@example.com>\r\n",
    );
    assert_replies(&out, &["250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3"]);
    assert_eq!(recipient_tokens(&out).len(), 2);
    assert_eq!(harness.session.recipients_held(), 2);
}

#[test]
fn message_size_limit() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.message_size = 10),
        Driver::Accepting,
    );
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\n123456\r\n123456\r\n");
    assert!(harness.session.buffered_bytes() <= 10);
    assert_replies(&out, &["354"]);
    let out = harness.feed(b".\r\n");
    assert_replies(&out, &["552 5.3.4"]);
    harness.open_transaction();
    let out = harness.feed(b"BDAT 8\r\n1234567\nBDAT 8 LAST\r\n1234567\n");
    assert_replies(&out, &["250", "554 5.6.0"]);
    harness.open_transaction();
    let out = harness.feed(b"BDAT 8\r\n123456\r\nBDAT 8 LAST\r\n123456\r\n");
    assert_replies(&out, &["250", "552 5.3.4"]);
}

#[test]
fn bad_command_limit() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.bad_commands = 3),
        Driver::Manual,
    );
    let out = harness.feed(b"FOO\r\nMAIL FROM:<a@example.org>\r\nBAR\r\nNOOP\r\n");
    assert_replies(&out, &["500 5.5.2", "503 5.5.1", "500 5.5.2", "421 4.7.0"]);
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::TooManyBadCommands)
    );
}

#[test]
fn transaction_limit() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.transactions = 2),
        Driver::Accepting,
    );
    harness.ehlo();
    let out = harness.feed(
        b"MAIL FROM:<a@example.org>\r\nRSET\r\nMAIL FROM:<a@example.org>\r\nRSET\r\nMAIL FROM:<a@example.org>\r\n",
    );
    assert_replies(&out, &["250 2.1.0", "250", "250 2.1.0", "250", "421 4.7.0"]);
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::TooManyTransactions)
    );
}

#[test]
fn input_overflow_while_waiting() {
    let mut harness = Harness::started(
        with_limits(|limits| limits.pipeline_buffer = 64),
        Driver::Manual,
    );
    harness.ehlo();
    harness.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    assert!(harness.session.wants_input());
    assert!(harness.feed(&[b'N'; 70]).is_empty());
    assert!(!harness.session.wants_input());
    let out = harness.feed(&[b'N'; 60]);
    assert_replies(&out, &["421 4.7.0 mx.example.com too much pipelined input"]);
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::InputOverflow)
    );
}

// More paths.

#[test]
fn auth_sequence_errors() {
    let mut harness = Harness::started(submission(), Driver::Accepting);
    assert_replies(
        &harness.feed(b"AUTH PLAIN\r\n"),
        &["503 5.5.1 send EHLO first"],
    );
    harness.feed(b"HELO c.example.org\r\n");
    assert_replies(
        &harness.feed(b"AUTH PLAIN\r\n"),
        &["503 5.5.1 send EHLO first"],
    );
    harness.ehlo();
    let response = b64(b"\0alice\0secret");
    harness.feed(format!("AUTH PLAIN {response}\r\n").as_bytes());
    harness.feed(b"MAIL FROM:<alice@example.org>\r\n");
    assert_replies(
        &harness.feed(format!("AUTH PLAIN {response}\r\n").as_bytes()),
        &["503 5.5.1 already authenticated"],
    );
}

#[test]
fn second_ehlo_keeps_authentication() {
    let mut config = submission();
    config.limits.transactions = 5;
    let mut harness = Harness::started(config, Driver::Accepting);
    harness.ehlo();
    harness.feed(format!("AUTH PLAIN {}\r\n", b64(b"\0alice\0secret")).as_bytes());
    // A second EHLO keeps the authentication but not the transaction.
    harness.feed(b"MAIL FROM:<alice@example.org>\r\n");
    harness.ehlo();
    assert_replies(
        &harness.feed(b"MAIL FROM:<alice@example.org>\r\n"),
        &["250 2.1.0"],
    );
}

#[test]
fn auth_response_lines_are_bounded_and_need_crlf() {
    let mut config = submission();
    config.limits.command_line = 32;
    let mut harness = Harness::started(config, Driver::Manual);
    harness.ehlo();
    harness.feed(b"AUTH LOGIN\r\n");
    let out = harness.feed(&[b'A'; 40]);
    assert_replies(&out, &["500 5.5.2 line too long"]);
    let out = harness.feed(b"AAAA\r\nNOOP\r\n");
    assert_replies(&out, &["250 2.0.0"]);
    harness.feed(b"AUTH LOGIN\r\n");
    assert_replies(
        &harness.feed(b"YWxpY2U=\n"),
        &["500 5.5.2 command lines must end with CRLF"],
    );
    assert_replies(&harness.feed(b"NOOP\r\n"), &["250 2.0.0"]);
}

#[test]
fn ehlo_resets_the_transaction() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    harness.ehlo();
    assert_replies(
        &harness.feed(b"RCPT TO:<b@example.com>\r\n"),
        &["503 5.5.1 need MAIL before RCPT"],
    );
    harness.feed(b"MAIL FROM:<a@example.org>\r\n");
    harness.feed(b"RSET\r\n");
    assert_replies(&harness.feed(b"DATA\r\n"), &["503 5.5.1 need MAIL command"]);
}

#[test]
fn stray_tls_inputs_are_ignored() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    assert!(harness.input(Input::TlsEstablished).is_empty());
    assert!(harness.input(Input::TlsFailed).is_empty());
    let text = sent(&harness.ehlo());
    assert!(
        text.contains("STARTTLS"),
        "TLS did not become active: {text}"
    );
}

#[test]
fn wrong_kind_of_answer_keeps_waiting() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    let out = harness.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    let token = recipient_tokens(&out)[0];
    assert!(
        harness
            .input(Input::MessageStored {
                token,
                outcome: StoreOutcome::Failed
            })
            .is_empty()
    );
    assert_replies(
        &harness.input(Input::RecipientChecked {
            token,
            verdict: RecipientVerdict::Accept,
        }),
        &["250 2.1.5"],
    );
}

#[test]
fn data_without_recipients_keeps_the_transaction() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    let out = harness.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    let token = recipient_tokens(&out)[0];
    let out = harness.input(Input::RecipientChecked {
        token,
        verdict: RecipientVerdict::RelayDenied,
    });
    assert_replies(&out, &["554 5.7.1", "554 5.5.1 no valid recipients"]);
    assert!(events(&out).iter().any(|event| matches!(
        event,
        SessionEvent::TransactionRejected {
            reason: RejectReason::NoValidRecipients,
            ..
        }
    )));
    assert_replies(
        &harness.feed(b"MAIL FROM:<a@example.org>\r\n"),
        &["503 5.5.1 nested MAIL"],
    );
}

#[test]
fn bdat_pipelined_behind_a_recipient_check() {
    let mut harness = Harness::started(mx(), Driver::Manual);
    harness.ehlo();
    let out = harness
        .feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 6 LAST\r\nQUIT\r\n");
    assert_replies(&out, &["250 2.1.0"]);
    let token = recipient_tokens(&out)[0];
    let out = harness.input(Input::RecipientChecked {
        token,
        verdict: RecipientVerdict::Accept,
    });
    assert_replies(&out, &["250 2.1.5"]);
    let (token, message) = stored(&out).pop().unwrap();
    assert_eq!(message.data, b"QUIT\r\n");
    let out = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::Stored {
            queue_id: "Q".to_owned(),
        },
    });
    assert_replies(&out, &["250 2.0.0 ok: queued as Q"]);
    assert!(!closed(&out));
}

mod lmtp;
