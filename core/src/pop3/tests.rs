//! Unit tests of the POP3 session: each command in each state, the waits on the
//! driver, the bounds and the deadlines.

use super::*;
use crate::smtp::address::Domain;
use crate::time::Duration;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const HOST: &str = "pop.sluice.test";

fn config(tls: TlsMode, allow_plaintext_auth: bool) -> Pop3Config {
    Pop3Config {
        hostname: Domain::parse(HOST).unwrap(),
        tls,
        allow_plaintext_auth,
        limits: Limits::default(),
    }
}

/// The messages of the test maildrop: a stored message with bare LF and a dot line.
fn messages() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("1.1", b"Subject: one\r\n\r\nfirst\r\n"),
        ("1.2", b"Subject: two\n\n.dot\nline two\nline three\n"),
        ("1.3", b"Subject: three\r\n\r\nthird"),
    ]
}

struct Harness {
    session: Pop3Session,
    now: Instant,
}

impl Harness {
    fn new(tls: TlsMode, allow_plaintext_auth: bool) -> Harness {
        Harness {
            session: Pop3Session::new(Instant::EPOCH, config(tls, allow_plaintext_auth)),
            now: Instant::EPOCH,
        }
    }

    fn plaintext() -> Harness {
        Harness::new(TlsMode::StartTlsOffered, true)
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.session.poll()).collect()
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.session.handle(self.now, input);
        self.drain()
    }

    fn feed(&mut self, bytes: &str) -> Vec<Output> {
        self.input(Input::Bytes(bytes.as_bytes().to_vec()))
    }

    /// The text the outputs sent.
    fn text(outputs: &[Output]) -> String {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn say(&mut self, bytes: &str) -> String {
        let outputs = self.feed(bytes);
        Harness::text(&outputs)
    }

    fn token(outputs: &[Output]) -> Token {
        outputs
            .iter()
            .find_map(|output| match output {
                Output::CheckCredentials { token, .. }
                | Output::OpenMaildrop { token, .. }
                | Output::ReadMessage { token, .. }
                | Output::CommitDeletions { token, .. } => Some(*token),
                _ => None,
            })
            .expect("a request")
    }

    /// USER/PASS, valid, and the maildrop opened with `messages()`.
    fn login(&mut self) -> String {
        self.drain();
        self.feed("USER alice\r\n");
        let outputs = self.feed("PASS secret\r\n");
        let token = Harness::token(&outputs);
        let outputs = self.input(Input::CredentialsChecked {
            token,
            outcome: CredentialOutcome::Valid {
                identity: "alice".into(),
            },
        });
        let token = Harness::token(&outputs);
        let entries = messages()
            .into_iter()
            .map(|(uid, bytes)| MaildropEntry {
                uid: uid.into(),
                size: normalised(bytes).len() as u64,
            })
            .collect();
        let outputs = self.input(Input::MaildropOpened {
            token,
            outcome: MaildropOutcome::Opened(entries),
        });
        Harness::text(&outputs)
    }

    /// Answers a ReadMessage with the message in chunks of `chunk` bytes.
    fn serve_read(&mut self, outputs: &[Output], chunk: usize) -> String {
        let Some((token, index)) = outputs.iter().find_map(|output| match output {
            Output::ReadMessage { token, index, .. } => Some((*token, *index)),
            _ => None,
        }) else {
            return Harness::text(outputs);
        };
        let mut text = Harness::text(outputs);
        for part in messages()[index].1.chunks(chunk) {
            let outputs = self.input(Input::MessageData {
                token,
                data: MessageData::Chunk(part.to_vec()),
            });
            text += &Harness::text(&outputs);
            if outputs
                .iter()
                .any(|o| matches!(o, Output::StopReading { .. }))
            {
                return text;
            }
        }
        let outputs = self.input(Input::MessageData {
            token,
            data: MessageData::End,
        });
        text + &Harness::text(&outputs)
    }
}

fn normalised(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous = 0u8;
    for &byte in message {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    // The client receives a last line end the stored message may lack.
    match out.last() {
        None | Some(b'\n') => {}
        Some(b'\r') => out.push(b'\n'),
        Some(_) => out.extend_from_slice(b"\r\n"),
    }
    out
}

fn closed(outputs: &[Output]) -> bool {
    outputs.contains(&Output::Close)
}

#[test]
fn greeting_then_quit_in_authorization() {
    let mut h = Harness::plaintext();
    let greeting = Harness::text(&h.drain());
    assert_eq!(greeting, "+OK pop.sluice.test POP3 Sluice ready\r\n");
    let outputs = h.feed("QUIT\r\n");
    assert_eq!(
        Harness::text(&outputs),
        "+OK pop.sluice.test POP3 Sluice signing off\r\n"
    );
    assert!(closed(&outputs));
    assert!(h.session.is_closed());
    assert_eq!(h.session.next_deadline(), None);
}

#[test]
fn capa_depends_on_state_and_tls() {
    let mut h = Harness::new(TlsMode::StartTlsOffered, false);
    h.drain();
    let capa = h.say("CAPA\r\n");
    assert_eq!(
        capa,
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
         PIPELINING\r\nSTLS\r\nIMPLEMENTATION Sluice\r\n.\r\n"
    );
    let mut h = Harness::new(TlsMode::Implicit, false);
    h.drain();
    let capa = h.say("CAPA\r\n");
    assert!(capa.contains("\r\nUSER\r\n") && capa.contains("\r\nSASL PLAIN\r\n"));
    assert!(!capa.contains("STLS"));
    h.login();
    let capa = h.say("CAPA\r\n");
    assert!(!capa.contains("USER") && !capa.contains("SASL") && capa.contains("TOP"));
}

#[test]
fn login_is_refused_before_tls_by_default() {
    let mut h = Harness::new(TlsMode::StartTlsOffered, false);
    h.drain();
    for command in ["USER alice\r\n", "PASS x\r\n", "AUTH PLAIN\r\n"] {
        assert_eq!(
            h.say(command),
            "-ERR [AUTH] plaintext authentication refused before TLS; use STLS or the POP3S port\r\n"
        );
    }
    let outputs = h.feed("STLS\r\n");
    assert_eq!(Harness::text(&outputs), "+OK begin TLS negotiation\r\n");
    assert!(outputs.contains(&Output::StartTls));
    assert!(!h.session.wants_input());
    h.input(Input::TlsEstablished);
    assert_eq!(h.say("USER alice\r\n"), "+OK send PASS\r\n");
    assert_eq!(h.say("STLS\r\n"), "-ERR TLS already active\r\n");
}

#[test]
fn bytes_pipelined_after_stls_close_the_connection() {
    let mut h = Harness::new(TlsMode::StartTlsOffered, false);
    h.drain();
    let outputs = h.feed("STLS\r\nUSER alice\r\n");
    assert!(Harness::text(&outputs).starts_with("-ERR pipelined input after STLS"));
    assert!(closed(&outputs));
    let mut h = Harness::new(TlsMode::StartTlsOffered, false);
    h.drain();
    h.feed("STLS\r\n");
    let outputs = h.feed("USER x\r\n");
    assert!(closed(&outputs));
    assert!(outputs.contains(&Output::Event(SessionEvent::Disconnected {
        reason: DisconnectReason::StartTlsInjection
    })));
}

#[test]
fn stls_is_not_offered_without_a_certificate() {
    let mut h = Harness::new(TlsMode::Unavailable, true);
    h.drain();
    assert_eq!(h.say("STLS\r\n"), "-ERR STLS not available\r\n");
}

#[test]
fn user_pass_login_opens_the_maildrop() {
    let mut h = Harness::plaintext();
    h.drain();
    assert_eq!(h.say("USER alice\r\n"), "+OK send PASS\r\n");
    let outputs = h.feed("PASS correct horse\r\n");
    let Some(Output::CheckCredentials { credentials, .. }) = outputs.first() else {
        panic!("{outputs:?}");
    };
    assert_eq!(credentials.mechanism, "USER");
    assert_eq!(credentials.username, "alice");
    assert_eq!(credentials.password, "correct horse");
    let mut h = Harness::plaintext();
    assert_eq!(h.login(), "+OK maildrop has 3 messages (92 octets)\r\n");
    assert_eq!(h.say("STAT\r\n"), "+OK 3 92\r\n");
}

#[test]
fn pass_needs_user_immediately_before() {
    let mut h = Harness::plaintext();
    h.drain();
    assert_eq!(h.say("PASS x\r\n"), "-ERR send USER first\r\n");
    h.feed("USER alice\r\n");
    h.feed("CAPA\r\n");
    assert_eq!(h.say("PASS x\r\n"), "-ERR send USER first\r\n");
}

#[test]
fn wrong_passwords_are_counted_and_the_third_closes() {
    let mut h = Harness::plaintext();
    h.drain();
    for attempt in 1..=3 {
        h.feed("USER alice\r\n");
        let outputs = h.feed("PASS wrong\r\n");
        let token = Harness::token(&outputs);
        let outputs = h.input(Input::CredentialsChecked {
            token,
            outcome: CredentialOutcome::Invalid,
        });
        let text = Harness::text(&outputs);
        assert!(text.starts_with("-ERR [AUTH] invalid user name or password\r\n"));
        assert!(outputs.contains(&Output::Event(SessionEvent::LoginFailed {
            mechanism: "USER".into(),
            user: Some("alice".into())
        })));
        assert_eq!(closed(&outputs), attempt == 3, "attempt {attempt}");
    }
}

#[test]
fn auth_plain_with_initial_response_and_continuation() {
    let plain = STANDARD.encode(b"\0alice\0secret");
    let mut h = Harness::plaintext();
    h.drain();
    let outputs = h.feed(&format!("AUTH PLAIN {plain}\r\n"));
    assert!(matches!(
        outputs.first(),
        Some(Output::CheckCredentials { credentials, .. })
            if credentials.username == "alice" && credentials.mechanism == "PLAIN"
    ));
    let mut h = Harness::plaintext();
    h.drain();
    assert_eq!(h.say("AUTH PLAIN\r\n"), "+ \r\n");
    let outputs = h.feed(&format!("{plain}\r\n"));
    let token = Harness::token(&outputs);
    let outputs = h.input(Input::CredentialsChecked {
        token,
        outcome: CredentialOutcome::Valid {
            identity: "alice".into(),
        },
    });
    assert!(
        outputs.contains(&Output::Event(SessionEvent::LoginSucceeded {
            mechanism: "PLAIN",
            user: "alice".into()
        }))
    );
    assert!(matches!(outputs.last(), Some(Output::OpenMaildrop { user, .. }) if user == "alice"));
}

#[test]
fn auth_can_be_cancelled_and_must_decode() {
    let mut h = Harness::plaintext();
    h.drain();
    h.feed("AUTH PLAIN\r\n");
    assert_eq!(h.say("*\r\n"), "-ERR authentication cancelled\r\n");
    assert_eq!(
        h.say("AUTH PLAIN bm90IHBsYWlu\r\n"),
        "-ERR malformed authentication response\r\n"
    );
    assert_eq!(
        h.say("AUTH CRAM-MD5\r\n"),
        "-ERR unsupported authentication mechanism\r\n"
    );
}

#[test]
fn another_authorization_identity_is_refused() {
    let plain = STANDARD.encode(b"admin\0alice\0secret");
    let mut h = Harness::plaintext();
    h.drain();
    let outputs = h.feed(&format!("AUTH PLAIN {plain}\r\n"));
    let outputs = h.input(Input::CredentialsChecked {
        token: Harness::token(&outputs),
        outcome: CredentialOutcome::Valid {
            identity: "alice".into(),
        },
    });
    assert_eq!(
        Harness::text(&outputs),
        "-ERR [AUTH] invalid user name or password\r\n"
    );
}

#[test]
fn maildrop_refusals_keep_authorization() {
    for (outcome, expected) in [
        (
            MaildropOutcome::Locked,
            "-ERR [IN-USE] maildrop already locked by another session\r\n",
        ),
        (
            MaildropOutcome::TemporaryFailure,
            "-ERR [SYS/TEMP] maildrop unavailable; try again later\r\n",
        ),
    ] {
        let mut h = Harness::plaintext();
        h.drain();
        h.feed("USER alice\r\n");
        let outputs = h.feed("PASS secret\r\n");
        let outputs = h.input(Input::CredentialsChecked {
            token: Harness::token(&outputs),
            outcome: CredentialOutcome::Valid {
                identity: "alice".into(),
            },
        });
        let outputs = h.input(Input::MaildropOpened {
            token: Harness::token(&outputs),
            outcome,
        });
        assert_eq!(Harness::text(&outputs), expected);
        assert_eq!(
            h.say("STAT\r\n"),
            "-ERR command not valid in this state\r\n"
        );
        assert_eq!(h.say("USER alice\r\n"), "+OK send PASS\r\n");
    }
}

#[test]
fn credential_check_timeout_is_a_temporary_failure() {
    let mut h = Harness::plaintext();
    h.drain();
    h.feed("USER alice\r\n");
    h.feed("PASS secret\r\n");
    let deadline = h.session.next_deadline().unwrap();
    assert_eq!(deadline, Instant::EPOCH + Duration::from_mins(2));
    h.now = deadline;
    let text = Harness::text(&h.input(Input::Tick));
    assert_eq!(
        text,
        "-ERR [SYS/TEMP] authentication service unavailable; try again later\r\n"
    );
}

#[test]
fn list_uidl_and_deleted_messages() {
    let mut h = Harness::plaintext();
    h.login();
    assert_eq!(
        h.say("LIST\r\n"),
        "+OK 3 messages (92 octets)\r\n1 23\r\n2 44\r\n3 25\r\n.\r\n"
    );
    assert_eq!(
        h.say("UIDL\r\n"),
        "+OK unique-id listing follows\r\n1 1.1\r\n2 1.2\r\n3 1.3\r\n.\r\n"
    );
    assert_eq!(h.say("DELE 2\r\n"), "+OK message 2 deleted\r\n");
    assert_eq!(h.say("DELE 2\r\n"), "-ERR no such message\r\n");
    assert_eq!(h.say("LIST 2\r\n"), "-ERR no such message\r\n");
    assert_eq!(h.say("UIDL 2\r\n"), "-ERR no such message\r\n");
    assert_eq!(h.say("RETR 2\r\n"), "-ERR no such message\r\n");
    assert_eq!(h.say("LIST 3\r\n"), "+OK 3 25\r\n");
    assert_eq!(h.say("UIDL 3\r\n"), "+OK 3 1.3\r\n");
    assert_eq!(h.say("STAT\r\n"), "+OK 2 48\r\n");
    assert_eq!(
        h.say("LIST\r\n"),
        "+OK 2 messages (48 octets)\r\n1 23\r\n3 25\r\n.\r\n"
    );
    assert_eq!(
        h.say("RSET\r\n"),
        "+OK maildrop has 3 messages (92 octets)\r\n"
    );
    assert_eq!(h.say("LIST 0\r\n"), "-ERR no such message\r\n");
    assert_eq!(h.say("LIST 4\r\n"), "-ERR no such message\r\n");
    assert_eq!(h.say("LIST x\r\n"), "-ERR invalid message number\r\n");
    assert_eq!(h.say("NOOP\r\n"), "+OK\r\n");
}

#[test]
fn retr_streams_stuffed_normalised_chunks() {
    let mut h = Harness::plaintext();
    h.login();
    for chunk in [1, 3, 1000] {
        let outputs = h.feed("RETR 2\r\n");
        assert_eq!(
            Harness::text(&outputs),
            "",
            "nothing before the first chunk"
        );
        assert_eq!(
            h.serve_read(&outputs, chunk),
            "+OK 44 octets\r\nSubject: two\r\n\r\n..dot\r\nline two\r\nline three\r\n.\r\n"
        );
    }
    let outputs = h.feed("RETR 3\r\n");
    assert!(h.serve_read(&outputs, 5).ends_with("\r\nthird\r\n.\r\n"));
}

#[test]
fn top_stops_after_the_header_and_n_lines() {
    let mut h = Harness::plaintext();
    h.login();
    let outputs = h.feed("TOP 2 1\r\n");
    assert_eq!(
        h.serve_read(&outputs, 4),
        "+OK top of message follows\r\nSubject: two\r\n\r\n..dot\r\n.\r\n"
    );
    let outputs = h.feed("TOP 2 0\r\n");
    let (token, _) = match outputs.first() {
        Some(Output::ReadMessage { token, index, .. }) => (*token, *index),
        other => panic!("{other:?}"),
    };
    let outputs = h.input(Input::MessageData {
        token,
        data: MessageData::Chunk(messages()[1].1.to_vec()),
    });
    assert!(outputs.contains(&Output::StopReading { token }));
    // Further chunks of the finished read are ignored.
    let late = h.input(Input::MessageData {
        token,
        data: MessageData::Chunk(b"more".to_vec()),
    });
    assert!(late.is_empty());
    assert_eq!(h.say("NOOP\r\n"), "+OK\r\n");
}

#[test]
fn read_failures() {
    let mut h = Harness::plaintext();
    h.login();
    let outputs = h.feed("RETR 1\r\n");
    let token = Harness::token(&outputs);
    let outputs = h.input(Input::MessageData {
        token,
        data: MessageData::Failed,
    });
    assert_eq!(
        Harness::text(&outputs),
        "-ERR [SYS/TEMP] message cannot be read now; try again later\r\n"
    );
    let outputs = h.feed("RETR 1\r\n");
    let token = Harness::token(&outputs);
    h.input(Input::MessageData {
        token,
        data: MessageData::Chunk(b"Subject: x\r\n".to_vec()),
    });
    h.now = h.session.next_deadline().unwrap();
    let outputs = h.input(Input::Tick);
    assert!(closed(&outputs));
    assert!(!Harness::text(&outputs).contains(".\r\n"));
}

#[test]
fn quit_commits_deletions_before_ok() {
    let mut h = Harness::plaintext();
    h.login();
    h.feed("DELE 1\r\nDELE 3\r\n");
    let outputs = h.feed("QUIT\r\n");
    let Some(Output::CommitDeletions { token, messages }) = outputs.first() else {
        panic!("{outputs:?}");
    };
    assert_eq!(
        messages,
        &vec![
            MessageRef {
                index: 0,
                uid: "1.1".into()
            },
            MessageRef {
                index: 2,
                uid: "1.3".into()
            }
        ]
    );
    assert_eq!(Harness::text(&outputs), "");
    let outputs = h.input(Input::DeletionsCommitted {
        token: *token,
        outcome: CommitOutcome::Done,
    });
    assert_eq!(
        Harness::text(&outputs),
        "+OK pop.sluice.test POP3 Sluice signing off (2 messages deleted)\r\n"
    );
    assert!(closed(&outputs));
}

#[test]
fn a_failed_commit_says_so() {
    let mut h = Harness::plaintext();
    h.login();
    h.feed("DELE 1\r\n");
    let outputs = h.feed("QUIT\r\n");
    let outputs = h.input(Input::DeletionsCommitted {
        token: Harness::token(&outputs),
        outcome: CommitOutcome::Failed,
    });
    assert_eq!(
        Harness::text(&outputs),
        "-ERR [SYS/TEMP] some deleted messages not removed; try again later\r\n"
    );
    assert!(closed(&outputs));
}

#[test]
fn no_update_without_quit() {
    for ending in [Input::PeerClosed, Input::Tick] {
        let mut h = Harness::plaintext();
        h.login();
        h.feed("DELE 1\r\n");
        if ending == Input::Tick {
            let deadline = h.session.next_deadline().unwrap();
            assert_eq!(deadline, Instant::EPOCH + Duration::from_mins(10));
            h.now = deadline;
        }
        let outputs = h.input(ending);
        assert!(closed(&outputs));
        assert!(
            !outputs
                .iter()
                .any(|o| matches!(o, Output::CommitDeletions { .. } | Output::Send(_)))
        );
    }
}

#[test]
fn quit_without_deletions_needs_no_commit() {
    let mut h = Harness::plaintext();
    h.login();
    h.feed("DELE 1\r\nRSET\r\n");
    let outputs = h.feed("QUIT\r\n");
    assert!(closed(&outputs));
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::CommitDeletions { .. }))
    );
}

#[test]
fn commands_out_of_state() {
    let mut h = Harness::plaintext();
    h.drain();
    for command in [
        "STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL",
    ] {
        assert_eq!(
            h.say(&format!("{command}\r\n")),
            "-ERR command not valid in this state\r\n",
            "{command}"
        );
    }
    let mut h = Harness::plaintext();
    h.login();
    for command in ["USER a", "PASS b", "AUTH PLAIN", "STLS"] {
        assert_eq!(
            h.say(&format!("{command}\r\n")),
            "-ERR command not valid in this state\r\n",
            "{command}"
        );
    }
}

#[test]
fn bad_commands_are_counted_and_close() {
    let mut h = Harness::plaintext();
    h.drain();
    for _ in 0..9 {
        assert_eq!(h.say("BOGUS\r\n"), "-ERR unknown command\r\n");
    }
    let outputs = h.feed("BOGUS\r\n");
    assert_eq!(
        Harness::text(&outputs),
        "-ERR unknown command\r\n-ERR too many bad commands; closing connection\r\n"
    );
    assert!(closed(&outputs));
}

#[test]
fn overlong_lines_are_refused_and_skipped() {
    let mut h = Harness::plaintext();
    h.drain();
    let long = format!("NOOP {}\r\nCAPA\r\n", "x".repeat(300));
    let text = h.say(&long);
    assert!(text.starts_with("-ERR command line too long\r\n+OK capability list follows"));
    assert_eq!(h.say("NOOP\n"), "-ERR command lines end with CRLF\r\n");
}

#[test]
fn pipelined_commands_wait_for_the_driver() {
    let mut h = Harness::plaintext();
    h.drain();
    let outputs = h.feed("USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n");
    assert_eq!(Harness::text(&outputs), "+OK send PASS\r\n");
    let token = Harness::token(&outputs);
    let outputs = h.input(Input::CredentialsChecked {
        token,
        outcome: CredentialOutcome::Valid {
            identity: "alice".into(),
        },
    });
    assert_eq!(Harness::text(&outputs), "");
    let outputs = h.input(Input::MaildropOpened {
        token: Harness::token(&outputs),
        outcome: MaildropOutcome::Opened(vec![MaildropEntry {
            uid: "9.9".into(),
            size: 7,
        }]),
    });
    assert_eq!(
        Harness::text(&outputs),
        "+OK maildrop has 1 messages (7 octets)\r\n+OK 1 7\r\n\
         +OK pop.sluice.test POP3 Sluice signing off\r\n"
    );
}

#[test]
fn input_beyond_twice_the_pipeline_buffer_closes() {
    let mut h = Harness::plaintext();
    h.drain();
    h.feed("USER alice\r\nPASS secret\r\n");
    let chunk = "NOOP\r\n".repeat(12_000);
    let outputs = h.feed(&chunk);
    assert!(!closed(&outputs));
    assert!(!h.session.wants_input());
    let outputs = h.feed(&chunk);
    assert!(Harness::text(&outputs).contains("too much pipelined input"));
    assert!(closed(&outputs));
}

#[test]
fn malformed_listings_are_refused() {
    let mut h = Harness::plaintext();
    h.drain();
    h.feed("USER alice\r\n");
    let outputs = h.feed("PASS secret\r\n");
    let outputs = h.input(Input::CredentialsChecked {
        token: Harness::token(&outputs),
        outcome: CredentialOutcome::Valid {
            identity: "alice".into(),
        },
    });
    let outputs = h.input(Input::MaildropOpened {
        token: Harness::token(&outputs),
        outcome: MaildropOutcome::Opened(vec![MaildropEntry {
            uid: "has space".into(),
            size: 1,
        }]),
    });
    assert!(Harness::text(&outputs).starts_with("-ERR [SYS/TEMP]"));
}

#[test]
fn shutdown_closes_an_idle_session_but_finishes_a_commit() {
    let mut h = Harness::plaintext();
    h.drain();
    let outputs = h.input(Input::Shutdown);
    assert_eq!(
        Harness::text(&outputs),
        "-ERR [SYS/TEMP] server shutting down; try again later\r\n"
    );
    let mut h = Harness::plaintext();
    h.login();
    h.feed("DELE 1\r\n");
    let outputs = h.feed("QUIT\r\n");
    let token = Harness::token(&outputs);
    assert!(h.input(Input::Shutdown).is_empty());
    let outputs = h.input(Input::DeletionsCommitted {
        token,
        outcome: CommitOutcome::Done,
    });
    assert!(Harness::text(&outputs).starts_with("+OK"));
}

#[test]
fn stale_and_mismatched_answers_are_ignored() {
    let mut h = Harness::plaintext();
    h.drain();
    h.feed("USER alice\r\n");
    let outputs = h.feed("PASS secret\r\n");
    let token = Harness::token(&outputs);
    assert!(
        h.input(Input::MaildropOpened {
            token,
            outcome: MaildropOutcome::Locked
        })
        .is_empty()
    );
    assert!(
        h.input(Input::CredentialsChecked {
            token: Token(999),
            outcome: CredentialOutcome::Invalid
        })
        .is_empty()
    );
}
