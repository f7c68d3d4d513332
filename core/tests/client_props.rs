//! Property tests of the SMTP/LMTP client session: for any server byte stream and
//! driver behaviour it never panics, reports every recipient exactly once, never
//! writes a bare CR or LF, times out on a deadline without progress, and delivers
//! any body to the real server session exactly as normalised.

#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::delivery::TlsPolicy;
use sluice_core::fuzzing::smtp_client_run;
use sluice_core::machine::Machine;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::{
    ClientConfig, ClientSession, Input, Limits, OutgoingMessage, OutgoingRecipient, Output,
    Protocol, RecipientOutcome, SessionFailureKind, SessionOutcome,
};
use sluice_core::smtp::server::{
    self, ListenerKind, RecipientVerdict, ServerSession, StoreOutcome, TlsMode,
};
use sluice_core::time::{Duration, Instant};
use std::sync::Arc;

fn config(protocol: Protocol, data_block: usize) -> ClientConfig {
    ClientConfig {
        hostname: Domain::parse("client.example").unwrap(),
        protocol,
        tls: TlsPolicy::Opportunistic,
        remote_host: "mx.example".to_owned(),
        auth: None,
        limits: Limits {
            data_block,
            ..Limits::default()
        },
    }
}

fn message(body: Vec<u8>, recipients: Vec<String>) -> OutgoingMessage {
    OutgoingMessage {
        queue_id: "Q1".to_owned(),
        reverse_path: Some("alice@example.org".to_owned()),
        recipients: recipients
            .into_iter()
            .map(|address| OutgoingRecipient {
                address,
                notify: None,
                orcpt: None,
            })
            .collect(),
        ret: None,
        envid: None,
        body: Arc::from(body),
        eight_bit: false,
        smtputf8: false,
    }
}

/// CRLF everywhere, and a final CRLF on a non-empty body.
fn normalised(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < body.len() {
        match body[index] {
            b'\r' if body.get(index + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                index += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn has_bare_line_ending(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(index, &byte)| match byte {
        b'\r' => bytes.get(index + 1) != Some(&b'\n'),
        b'\n' => index == 0 || bytes[index - 1] != b'\r',
        _ => false,
    })
}

/// Message text: lines of a few octets, with stray CRs, LFs, dots and 8-bit octets.
fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            4 => prop::sample::select(b"abc xyz".to_vec()),
            1 => Just(b'.'),
            1 => Just(b'\r'),
            1 => Just(b'\n'),
            1 => Just(0xe9u8),
        ],
        0..300,
    )
}

/// Server replies: canned ones that move the dialogue along, and arbitrary bytes.
fn server_chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![
            &b"220 mx ESMTP\r\n"[..],
            b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
            b"250 2.0.0 ok\r\n",
            b"354 go\r\n",
            b"451 4.3.0 later\r\n",
            b"550 5.1.1 no\r\n",
            b"421 4.3.2 bye\r\n",
            b"220 2.0.0 ready\r\n",
        ]).prop_map(<[u8]>::to_vec),
        1 => vec(any::<u8>(), 0..40),
    ]
}

/// Drives a client by hand; returns every output.
fn drain(client: &mut ClientSession) -> Vec<Output> {
    std::iter::from_fn(|| client.poll()).collect()
}

/// Runs the client against the real server session; returns the stored bodies and the
/// client's report.
fn deliver(
    protocol_block: usize,
    body: Vec<u8>,
    tls: TlsMode,
) -> (Vec<Vec<u8>>, Vec<RecipientOutcome>) {
    let now = Instant::from_millis(1);
    let mut client = ClientSession::new(now, config(Protocol::Smtp, protocol_block));
    let mut server = ServerSession::new(
        now,
        server::SessionConfig {
            kind: ListenerKind::Mx,
            hostname: Domain::parse("mx.example").unwrap(),
            tls,
            auth_requires_tls: true,
            limits: server::Limits::default(),
        },
    );
    client.handle(
        now,
        Input::Message(message(body, vec!["bob@example.com".to_owned()])),
    );
    let mut stored = Vec::new();
    let mut outcomes = Vec::new();
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some(output) = server.poll() {
            moved = true;
            match output {
                server::Output::Send(bytes) => client.handle(now, Input::Bytes(bytes)),
                server::Output::StartTls => {
                    server.handle(now, server::Input::TlsEstablished);
                    client.handle(now, Input::TlsEstablished);
                }
                server::Output::CheckRecipient { token, .. } => server.handle(
                    now,
                    server::Input::RecipientChecked {
                        token,
                        verdict: RecipientVerdict::Accept,
                    },
                ),
                server::Output::StoreMessage { token, message } => {
                    stored.push(message.data);
                    server.handle(
                        now,
                        server::Input::MessageStored {
                            token,
                            outcome: StoreOutcome::Stored {
                                queue_id: "S".into(),
                            },
                        },
                    );
                }
                _ => {}
            }
        }
        while let Some(output) = client.poll() {
            moved = true;
            match output {
                Output::Send(bytes) => {
                    assert!(!has_bare_line_ending(&bytes));
                    server.handle(now, server::Input::Bytes(bytes));
                    client.handle(now, Input::Written);
                }
                Output::Ready => client.handle(now, Input::Finish),
                Output::Report(report) => outcomes = report.recipients,
                _ => {}
            }
        }
        if !moved {
            return (stored, outcomes);
        }
    }
    panic!("the dialogue did not settle");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary server bytes, driver inputs and ticks: no panic, every message
    /// reported once with one outcome per recipient, one Close, no bare CR or LF
    /// written (the fuzz target's own checks).
    #[test]
    fn any_server_and_driver_behaviour_settles_every_recipient(
        data in vec(any::<u8>(), 0..2048)
    ) {
        let run = smtp_client_run(&data);
        prop_assert_eq!(run.closes, 1);
    }

    /// A server speaking random replies and bytes, split anywhere.
    #[test]
    fn random_replies_never_break_the_accounting(
        chunks in vec(server_chunk(), 0..30),
        recipients in vec("[a-c]{1,3}@example\\.com|bad\r\naddress", 0..4),
        lmtp in any::<bool>(),
        acknowledge in any::<bool>(),
    ) {
        let protocol = if lmtp { Protocol::Lmtp } else { Protocol::Smtp };
        let now = Instant::EPOCH;
        let mut client = ClientSession::new(now, config(protocol, 8));
        let count = recipients.len();
        client.handle(now, Input::Message(message(b"x\n.y\rz".to_vec(), recipients)));
        let mut outputs = drain(&mut client);
        for chunk in chunks {
            client.handle(now, Input::Bytes(chunk));
            if acknowledge {
                client.handle(now, Input::Written);
            }
            outputs.extend(drain(&mut client));
            prop_assert!(client.buffered_bytes() <= 100 * 2050);
        }
        client.handle(now, Input::PeerClosed);
        outputs.extend(drain(&mut client));
        let reports: Vec<usize> = outputs
            .iter()
            .filter_map(|output| match output {
                Output::Report(report) => Some(report.recipients.len()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(reports, vec![count]);
        let closes = outputs.iter().filter(|output| matches!(output, Output::Close(_))).count();
        prop_assert_eq!(closes, 1);
        let sent: Vec<u8> = outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        prop_assert!(!has_bare_line_ending(&sent));
    }

    /// Any body reaches the real server exactly as normalised: CRLF line endings, a final
    /// CRLF, dot-stuffing undone; through DATA-less BDAT chunks of any size, with TLS or not.
    #[test]
    fn any_body_reaches_the_real_server_normalised(
        body in body(),
        block in 4usize..64,
        tls in any::<bool>(),
    ) {
        let tls = if tls { TlsMode::StartTlsOffered } else { TlsMode::Unavailable };
        let (stored, outcomes) = deliver(block, body.clone(), tls);
        prop_assert_eq!(outcomes.len(), 1);
        prop_assert!(matches!(outcomes[0], RecipientOutcome::Final(_)));
        prop_assert_eq!(stored, vec![normalised(&body)]);
    }

    /// Wherever the dialogue stands, a tick at the deadline without progress ends the
    /// wait: a timeout failure, or (idle, or after QUIT) a clean end; never nothing.
    #[test]
    fn a_tick_at_the_deadline_without_progress_times_out(
        chunks in vec(server_chunk(), 0..12),
        extra in 0u64..1000,
    ) {
        let now = Instant::from_millis(10);
        let mut client = ClientSession::new(now, config(Protocol::Smtp, 16));
        client.handle(now, Input::Message(message(b"hi".to_vec(), vec!["b@example.com".into()])));
        drain(&mut client);
        for chunk in chunks {
            client.handle(now, Input::Bytes(chunk));
            drain(&mut client);
        }
        let Some(deadline) = client.next_deadline() else {
            prop_assert!(client.is_closed());
            return Ok(());
        };
        // Just before: nothing happens.
        client.handle(Instant::from_millis(deadline.as_millis() - 1), Input::Tick);
        prop_assert!(drain(&mut client).is_empty());
        let at = Instant::from_millis(deadline.as_millis() + extra);
        client.handle(at, Input::Tick);
        let outputs = drain(&mut client);
        let close = outputs.iter().find_map(|output| match output {
            Output::Close(outcome) => Some(outcome.clone()),
            _ => None,
        });
        match close {
            Some(SessionOutcome::Failed(failure)) => {
                prop_assert_eq!(failure.kind, SessionFailureKind::Timeout)
            }
            Some(SessionOutcome::Completed) => {}
            Some(other) => prop_assert!(false, "unexpected outcome {:?}", other),
            // Idle: the session says QUIT and waits for its (short) reply.
            None => {
                let quit = outputs.iter().any(|o| *o == Output::Send(b"QUIT\r\n".to_vec()));
                prop_assert!(quit, "no progress and no timeout: {:?}", outputs);
                prop_assert!(client.next_deadline() <= Some(at + Duration::from_secs(30)));
            }
        }
    }

    /// Same inputs, same outputs.
    #[test]
    fn the_session_is_deterministic(chunks in vec(server_chunk(), 0..20)) {
        let run = |chunks: &[Vec<u8>]| {
            let now = Instant::EPOCH;
            let mut client = ClientSession::new(now, config(Protocol::Smtp, 8));
            client.handle(now, Input::Message(message(b"x".to_vec(), vec!["a@b.example".into()])));
            let mut outputs = drain(&mut client);
            for chunk in chunks {
                client.handle(now, Input::Bytes(chunk.clone()));
                client.handle(now, Input::Written);
                outputs.extend(drain(&mut client));
            }
            outputs
        };
        prop_assert_eq!(run(&chunks), run(&chunks));
    }
}
