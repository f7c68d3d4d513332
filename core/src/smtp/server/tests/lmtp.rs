//! Unit tests of the LMTP listener (RFC 2033), and of SMTP's answer to a
//! per-recipient store outcome: whole dialogues with the shared harness.

use super::*;
use crate::smtp::reply::ReplyCode;

fn lmtp() -> SessionConfig {
    config(ListenerKind::Lmtp, TlsMode::StartTlsOffered)
}

fn recipient(address: &str) -> ForwardPath {
    ForwardPath::parse_prefix(address).unwrap().0
}

/// LHLO, MAIL and the given recipients, each accepted; returns the store request's
/// token after the message `hello`.
fn stored_message(harness: &mut Harness, recipients: &[&str]) -> Token {
    harness.feed(b"LHLO gateway.example.org\r\n");
    harness.feed(b"MAIL FROM:<alice@example.org>\r\n");
    for address in recipients {
        let out = harness.feed(format!("RCPT TO:{address}\r\n").as_bytes());
        let token = recipient_tokens(&out)[0];
        let out = harness.input(Input::RecipientChecked {
            token,
            verdict: RecipientVerdict::Accept,
        });
        assert_replies(&out, &["250 2.1.5"]);
    }
    let out = harness.feed(b"DATA\r\nhello\r\n.\r\n");
    assert_replies(&out, &["354"]);
    stored(&out)[0].0
}

#[test]
fn greeting_names_lmtp_and_lhlo_offers_no_starttls_or_auth() {
    let (mut harness, out) = Harness::new(lmtp(), Driver::Manual);
    assert_eq!(sent(&out), "220 mx.example.com LMTP Sluice\r\n");
    let text = sent(&harness.feed(b"LHLO gateway.example.org\r\n"));
    assert!(text.starts_with("250-mx.example.com greets gateway.example.org\r\n"));
    assert!(text.ends_with("250 DSN\r\n"), "{text}");
    assert!(
        !text.contains("STARTTLS") && !text.contains("AUTH"),
        "{text}"
    );
    assert_replies(&harness.feed(b"STARTTLS\r\n"), &["502 5.5.1"]);
    assert_replies(
        &harness.feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        &["502 5.5.1 AUTH not available"],
    );
}

#[test]
fn ehlo_and_helo_are_refused_and_count_as_errors() {
    let mut config = lmtp();
    config.limits.bad_commands = 3;
    let mut harness = Harness::started(config, Driver::Manual);
    assert_replies(&harness.feed(b"EHLO a.example\r\n"), &["500 5.5.1"]);
    assert_replies(&harness.feed(b"HELO a.example\r\n"), &["500 5.5.1"]);
    let out = harness.feed(b"EHLO bad_domain\r\n");
    assert_replies(&out, &["500 5.5.1", "421 4.7.0"]);
    assert_eq!(
        disconnect_reason(&out),
        Some(DisconnectReason::TooManyBadCommands)
    );
}

#[test]
fn lhlo_on_an_smtp_listener_is_an_unknown_command() {
    for config in [mx(), submission()] {
        let mut harness = Harness::started(config, Driver::Manual);
        for line in [&b"LHLO a.example\r\n"[..], b"LHLO\r\n", b"LHLO a b\r\n"] {
            let out = harness.feed(line);
            assert_replies(&out, &["500 5.5.2 command not recognised"]);
            assert!(events(&out).contains(&SessionEvent::CommandRejected {
                verb: "UNKNOWN".to_owned(),
                code: ReplyCode(500),
            }));
        }
    }
}

#[test]
fn one_reply_per_accepted_recipient_in_rcpt_order() {
    let mut harness = Harness::started(lmtp(), Driver::Manual);
    let token = stored_message(
        &mut harness,
        &["<a@example.com>", "<b@example.com>", "<c@example.com>"],
    );
    let out = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::PerRecipient {
            queue_id: "Q9".to_owned(),
            recipients: vec![
                RecipientStoreOutcome::MailboxFull,
                RecipientStoreOutcome::Stored,
                RecipientStoreOutcome::TemporaryFailure,
            ],
        },
    });
    assert_eq!(
        replies(&out),
        [
            "552 5.2.2 <a@example.com>: mailbox full",
            "250 2.0.0 <b@example.com>: ok, stored as Q9",
            "451 4.3.0 <c@example.com>: not stored; try again later",
        ]
    );
    assert!(events(&out).contains(&SessionEvent::TransactionAccepted {
        queue_id: "Q9".to_owned(),
        reverse_path: ReversePath::parse_prefix("<alice@example.org>").unwrap().0,
        recipients: 3,
        stored: vec![recipient("<b@example.com>")],
        size: 7,
    }));
    // The transaction is over.
    assert_replies(
        &harness.feed(b"RCPT TO:<d@example.com>\r\n"),
        &["503 5.5.1"],
    );
}

#[test]
fn nothing_stored_is_a_rejected_transaction() {
    let mut harness = Harness::started(lmtp(), Driver::Manual);
    let token = stored_message(&mut harness, &["<a@example.com>", "<b@example.com>"]);
    let out = harness.input(Input::MessageStored {
        token,
        outcome: StoreOutcome::PerRecipient {
            queue_id: "Q1".to_owned(),
            recipients: vec![RecipientStoreOutcome::UnknownUser],
        },
    });
    // The driver answered for one recipient only: the other gets no promise.
    assert_replies(
        &out,
        &["550 5.1.1 <a@example.com>", "451 4.3.0 <b@example.com>"],
    );
    let events = events(&out);
    assert!(events.contains(&SessionEvent::TransactionRejected {
        code: ReplyCode(550),
        reason: RejectReason::StoreFailed,
    }));
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, SessionEvent::TransactionAccepted { .. }))
    );
}

#[test]
fn bdat_last_before_mail_gets_no_reply_on_lmtp() {
    let mut harness = Harness::started(lmtp(), Driver::Manual);
    harness.feed(b"LHLO gateway.example.org\r\n");
    let out = harness.feed(b"BDAT 4 LAST\r\nabcdNOOP\r\n");
    // The chunk is consumed; only NOOP is answered.
    assert_replies(&out, &["250 2.0.0 ok"]);
    assert!(events(&out).contains(&SessionEvent::CommandRejected {
        verb: "BDAT".to_owned(),
        code: ReplyCode(503),
    }));
    assert_replies(&harness.feed(b"BDAT 2\r\nab"), &["503 5.5.1 need MAIL"]);
}

#[test]
fn smtp_promises_only_when_every_recipient_was_stored() {
    for (outcomes, expected) in [
        (
            vec![RecipientStoreOutcome::Stored, RecipientStoreOutcome::Stored],
            "250 2.0.0 ok: queued as Q1",
        ),
        (
            vec![
                RecipientStoreOutcome::Stored,
                RecipientStoreOutcome::MailboxFull,
            ],
            "451 4.3.0 message not stored",
        ),
        (
            vec![RecipientStoreOutcome::Stored],
            "451 4.3.0 message not stored",
        ),
        // Entries beyond the recipients are ignored.
        (
            vec![
                RecipientStoreOutcome::Stored,
                RecipientStoreOutcome::Stored,
                RecipientStoreOutcome::MailboxFull,
            ],
            "250 2.0.0 ok: queued as Q1",
        ),
    ] {
        let mut harness = Harness::started(mx(), Driver::Manual);
        harness.open_transaction();
        let out = harness.feed(b"RCPT TO:<carol@example.com>\r\n");
        harness.input(Input::RecipientChecked {
            token: recipient_tokens(&out)[0],
            verdict: RecipientVerdict::Accept,
        });
        let out = harness.feed(b"DATA\r\nhello\r\n.\r\n");
        let token = stored(&out)[0].0;
        let out = harness.input(Input::MessageStored {
            token,
            outcome: StoreOutcome::PerRecipient {
                queue_id: "Q1".to_owned(),
                recipients: outcomes,
            },
        });
        assert_replies(&out, &[expected]);
    }
}

#[test]
fn smtp_transaction_accepted_lists_every_recipient_as_stored() {
    let mut harness = Harness::started(mx(), Driver::Accepting);
    harness.open_transaction();
    let out = harness.feed(b"DATA\r\nhello\r\n.\r\n");
    assert!(events(&out).iter().any(|event| matches!(
        event,
        SessionEvent::TransactionAccepted { recipients: 1, stored, .. }
            if *stored == [recipient("<bob@example.com>")]
    )));
}
