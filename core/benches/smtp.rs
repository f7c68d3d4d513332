//! Benchmarks of the SMTP hot paths: parsing command lines, serialising replies, and
//! a whole server-session transaction (the per-message CPU cost a gateway pays
//! before any I/O). Run with `cargo bench -p sluice-core --bench smtp`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::machine::Machine;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::command::Command;
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::smtp::server::{
    Input, Limits, ListenerKind, Output, RecipientVerdict, ServerSession, SessionConfig,
    StoreOutcome, TlsMode,
};
use sluice_core::time::Instant;
use std::hint::black_box;

const COMMAND_LINES: [&[u8]; 6] = [
    b"EHLO client.example.org",
    b"MAIL FROM:<alice.smith@example.org> SIZE=5120 BODY=8BITMIME",
    b"RCPT TO:<bob@sluice.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@sluice.test",
    b"RCPT TO:<\"quoted local\"@[IPv6:2001:db8::1]>",
    b"DATA",
    b"BDAT 65536 LAST",
];

fn parse_commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("smtp_command_parse");
    group.throughput(Throughput::Elements(COMMAND_LINES.len() as u64));
    group.bench_function("typical_mix", |b| {
        b.iter(|| {
            for line in COMMAND_LINES {
                let _ = black_box(Command::parse(black_box(line)));
            }
        })
    });
    group.finish();
}

fn serialise_replies(c: &mut Criterion) {
    let reply = Reply::new(
        250,
        EnhancedStatus::new(2, 0, 0),
        "ok: queued as 01J5ZQ3XK9R2B7",
    );
    let mut group = c.benchmark_group("smtp_reply_serialise");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single_line", |b| {
        b.iter(|| black_box(black_box(&reply).to_bytes()))
    });
    group.finish();
}

/// A 5 KB message as a client sends it after DATA, dot-stuffed and terminated.
fn five_kilobyte_message() -> Vec<u8> {
    let mut message =
        b"From: alice@example.org\r\nTo: bob@sluice.test\r\nSubject: benchmark\r\n\r\n".to_vec();
    while message.len() < 5 * 1024 {
        message.extend_from_slice(
            b".A line of body text that is seventy-odd characters long, more or less.\r\n",
        );
    }
    message.extend_from_slice(b".\r\n");
    message
}

/// One transaction through a fresh session, answering every request at once.
fn run_transaction(config: &SessionConfig, message: &[u8]) -> usize {
    let now = Instant::EPOCH;
    let mut session = ServerSession::new(now, config.clone());
    let mut sent = 0;
    let mut inputs = vec![
        Input::Bytes(
            b"EHLO client.example.org\r\nMAIL FROM:<alice@example.org> SIZE=5200\r\n".to_vec(),
        ),
        Input::Bytes(b"RCPT TO:<bob@sluice.test>\r\nDATA\r\n".to_vec()),
        Input::Bytes(message.to_vec()),
        Input::Bytes(b"QUIT\r\n".to_vec()),
    ];
    inputs.reverse();
    while let Some(input) = inputs.pop() {
        session.handle(now, input);
        while let Some(output) = session.poll() {
            match output {
                Output::Send(bytes) => sent += bytes.len(),
                Output::CheckRecipient { token, .. } => session.handle(
                    now,
                    Input::RecipientChecked {
                        token,
                        verdict: RecipientVerdict::Accept,
                    },
                ),
                Output::StoreMessage { token, message } => {
                    sent += message.data.len();
                    session.handle(
                        now,
                        Input::MessageStored {
                            token,
                            outcome: StoreOutcome::Stored {
                                queue_id: "Q1".into(),
                            },
                        },
                    )
                }
                _ => {}
            }
        }
    }
    sent
}

fn session_transaction(c: &mut Criterion) {
    let Ok(hostname) = Domain::parse("mx.sluice.test") else {
        panic!("host name must parse")
    };
    let config = SessionConfig {
        kind: ListenerKind::Mx,
        hostname,
        tls: TlsMode::Unavailable,
        auth_requires_tls: true,
        limits: Limits::default(),
    };
    let message = five_kilobyte_message();
    let mut group = c.benchmark_group("smtp_session");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_5k_message_per_connection", |b| {
        b.iter(|| black_box(run_transaction(&config, black_box(&message))))
    });
    group.finish();
}

criterion_group!(
    benches,
    parse_commands,
    serialise_replies,
    session_transaction
);
criterion_main!(benches);
