//! Session-level failures, refusals before sending, deadlines and driver mistakes.

use super::*;

const OK: &str = "250 2.0.0 ok\r\n";
const GREETING: &str = "220 mx.remote.example ESMTP\r\n";
const BYE: &str = "221 2.0.0 bye\r\n";

fn one() -> Vec<OutgoingMessage> {
    vec![message("Q1", &["bob@example.com"], b"hi\r\n")]
}

#[test]
fn a_refused_greeting_fails_the_session_politely() {
    let scripted = Scripted::new(smtp(), &["554 5.7.1 no service\r\n"]).run(one());
    assert_eq!(
        failed_kind(&scripted),
        Some(SessionFailureKind::GreetingRefused)
    );
    assert_eq!(scripted.sent(), "QUIT\r\n");
    let report = scripted.only_report();
    assert_eq!(kinds(report), "u");
    // Session failures are temporary: another host may serve us.
    assert_eq!(status(&report.recipients[0]), EnhancedStatus::new(4, 7, 1));
}

#[test]
fn ehlo_and_helo_refused_or_lhlo_refused_fail_the_session() {
    let smtp_refused =
        Scripted::new(smtp(), &[GREETING, "500 no\r\n", "550 5.7.1 not you\r\n"]).run(one());
    assert_eq!(
        failed_kind(&smtp_refused),
        Some(SessionFailureKind::HelloRefused)
    );
    assert_eq!(
        smtp_refused.sent(),
        "EHLO client.example\r\nHELO client.example\r\nQUIT\r\n"
    );
    let lmtp_refused = Scripted::new(
        config(Protocol::Lmtp, TlsPolicy::Disabled),
        &[GREETING, "500 no\r\n"],
    )
    .run(one());
    assert_eq!(
        failed_kind(&lmtp_refused),
        Some(SessionFailureKind::HelloRefused)
    );
    assert_eq!(lmtp_refused.sent(), "LHLO client.example\r\nQUIT\r\n");
    // A 4xx to EHLO is not "unknown command": no fallback.
    let busy = Scripted::new(smtp(), &[GREETING, "450 busy\r\n"]).run(one());
    assert_eq!(busy.sent(), "EHLO client.example\r\nQUIT\r\n");
}

#[test]
fn required_tls_not_offered_is_a_temporary_session_failure() {
    let ehlo = ehlo(&["PIPELINING"]);
    let scripted = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Required),
        &[GREETING, &ehlo],
    )
    .run(one());
    assert_eq!(
        failed_kind(&scripted),
        Some(SessionFailureKind::TlsRequired)
    );
    assert_eq!(
        status(&scripted.only_report().recipients[0]),
        EnhancedStatus::new(4, 7, 5)
    );
    assert!(!scripted.sent().contains("MAIL"));
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn required_tls_refused_by_the_server_fails_with_4_7_5_not_the_servers_status() {
    let offered = ehlo(&["STARTTLS"]);
    let scripted = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Required),
        &[GREETING, &offered, "454 4.7.0 TLS not available\r\n"],
    )
    .run(one());
    assert_eq!(
        failed_kind(&scripted),
        Some(SessionFailureKind::TlsRequired)
    );
    assert_eq!(
        status(&scripted.only_report().recipients[0]),
        EnhancedStatus::new(4, 7, 5)
    );
    assert!(!scripted.sent().contains("MAIL"));
}

#[test]
fn opportunistic_tls_goes_on_in_plain_text_when_not_offered_or_refused() {
    let plain = ehlo(&[]);
    let not_offered = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Opportunistic),
        &[GREETING, &plain, BYE],
    )
    .run(vec![]);
    assert!(
        not_offered
            .events
            .contains(&ClientEvent::TlsSkipped { refused_with: None })
    );
    assert_eq!(not_offered.outcome, Some(SessionOutcome::Completed));
    let offered = ehlo(&["STARTTLS"]);
    let refused = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Opportunistic),
        &[GREETING, &offered, "454 4.7.0 TLS not available\r\n", BYE],
    )
    .run(vec![]);
    assert!(refused.events.contains(&ClientEvent::TlsSkipped {
        refused_with: Some(ReplyCode(454))
    }));
    assert_eq!(refused.outcome, Some(SessionOutcome::Completed));
    // Disabled never asks.
    let disabled = Scripted::new(smtp(), &[GREETING, &offered, BYE]).run(vec![]);
    assert!(!disabled.sent().contains("STARTTLS"));
}

#[test]
fn a_failed_opportunistic_handshake_asks_for_a_retry_without_tls() {
    let offered = ehlo(&["STARTTLS"]);
    let mut scripted = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Opportunistic),
        &[GREETING, &offered, "220 go\r\n"],
    );
    scripted.tls_succeeds = false;
    let scripted = scripted.run(one());
    assert!(matches!(
        &scripted.outcome,
        Some(SessionOutcome::RetryWithoutTls(SessionFailure {
            kind: SessionFailureKind::TlsFailed,
            ..
        }))
    ));
    assert_eq!(kinds(scripted.only_report()), "u");

    let mut required = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Required),
        &[GREETING, &offered, "220 go\r\n"],
    );
    required.tls_succeeds = false;
    let required = required.run(one());
    assert_eq!(failed_kind(&required), Some(SessionFailureKind::TlsFailed));
}

#[test]
fn plaintext_after_the_starttls_reply_is_an_injection() {
    let offered = ehlo(&["STARTTLS"]);
    let scripted = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Opportunistic),
        &[GREETING, &offered, "220 go\r\n250 injected\r\n"],
    )
    .run(one());
    assert_eq!(
        failed_kind(&scripted),
        Some(SessionFailureKind::ProtocolViolation)
    );
    assert!(scripted.starttls.is_empty());
}

#[test]
fn garbage_and_overlong_replies_are_protocol_violations() {
    let garbage = Scripted::new(smtp(), &["HTTP/1.1 400 Bad Request\r\n"]).run(one());
    assert_eq!(
        failed_kind(&garbage),
        Some(SessionFailureKind::ProtocolViolation)
    );
    assert_eq!(kinds(garbage.only_report()), "u");

    let mut small = smtp();
    small.limits.reply_line = 32;
    let long = format!("220 {}\r\n", "x".repeat(100));
    let overlong = Scripted::new(small, &[&long]).run(one());
    assert_eq!(
        failed_kind(&overlong),
        Some(SessionFailureKind::ProtocolViolation)
    );

    let ehlo = ehlo(&[]);
    let unasked = Scripted::new(smtp(), &[GREETING, &format!("{ehlo}{OK}")]).run(vec![]);
    assert_eq!(
        failed_kind(&unasked),
        Some(SessionFailureKind::ProtocolViolation)
    );
}

#[test]
fn no_accepted_recipient_with_pipelined_data_sends_an_empty_body_then_rset() {
    let ehlo = ehlo(&["PIPELINING"]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            OK,
            "550 5.1.1 unknown\r\n",
            "354 go anyway\r\n",
            "554 5.5.1 no valid recipients\r\n",
            OK,
            "550 5.1.1 unknown\r\n",
            "554 5.5.1 no valid recipients\r\n",
            OK,
            "421 4.3.2 closing\r\n",
        ],
    )
    .run(vec![
        message("Q1", &["gone@example.com"], b"hi\r\n"),
        message("Q2", &["gone@example.com"], b"hi\r\n"),
        message("Q3", &["gone@example.com"], b"hi\r\n"),
    ]);
    let kinds: Vec<String> = scripted.reports.iter().map(kinds).collect();
    assert_eq!(kinds, ["p", "p", "u"]);
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn refused_mail_gives_every_recipient_its_reply_and_needs_no_rset() {
    let ehlo = ehlo(&[]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            "451 4.3.0 try later\r\n",
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![
        message("Q1", &["a@example.com", "b@example.com"], b"hi\r\n"),
        message("Q2", &["a@example.com"], b"hi\r\n"),
    ]);
    assert_eq!(kinds(&scripted.reports[0]), "tt");
    assert_eq!(kinds(&scripted.reports[1]), "d");
    assert!(!scripted.sent().contains("RSET"));
}

#[test]
fn a_refused_data_command_needs_rset_before_the_next_message() {
    let ehlo = ehlo(&[]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            OK,
            OK,
            "554 5.7.1 not from you\r\n",
            OK,
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![
        message("Q1", &["a@example.com"], b"hi\r\n"),
        message("Q2", &["a@example.com"], b"hi\r\n"),
    ]);
    assert_eq!(kinds(&scripted.reports[0]), "p");
    assert_eq!(kinds(&scripted.reports[1]), "d");
    assert_eq!(scripted.sent().matches("RSET\r\n").count(), 1);
}

#[test]
fn addresses_that_cannot_be_commands_are_refused_before_sending() {
    let ehlo = ehlo(&["PIPELINING"]);
    let scripted =
        Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n", OK, BYE]).run(vec![
            message(
                "Q1",
                &["evil@example.com>\r\nRSET", "bob@example.com", "no-at-sign"],
                b"hi\r\n",
            ),
        ]);
    let report = scripted.only_report();
    assert_eq!(kinds(report), "pdp");
    assert_eq!(status(&report.recipients[0]), EnhancedStatus::new(5, 1, 3));
    assert!(!scripted.sent().contains("evil"));

    let mut bad_sender = message("Q2", &["bob@example.com"], b"hi\r\n");
    bad_sender.reverse_path = Some("alice@example.org\r\nDATA".to_owned());
    let refused = Scripted::new(smtp(), &[GREETING, &ehlo, BYE]).run(vec![bad_sender]);
    assert_eq!(
        status(&refused.only_report().recipients[0]),
        EnhancedStatus::new(5, 1, 7)
    );
    assert!(!refused.sent().contains("MAIL"));
}

#[test]
fn an_8bit_body_to_a_server_without_8bitmime_fails_permanently() {
    let ehlo = ehlo(&["PIPELINING"]);
    let scripted = Scripted::new(smtp(), &[GREETING, &ehlo, BYE]).run(vec![message(
        "Q1",
        &["bob@example.com"],
        "caf\u{e9}\r\n".as_bytes(),
    )]);
    assert_eq!(
        status(&scripted.only_report().recipients[0]),
        EnhancedStatus::new(5, 6, 3)
    );
    assert!(!scripted.sent().contains("MAIL"));
}

#[test]
fn too_many_recipients_wait_for_the_next_attempt() {
    let mut config = smtp();
    config.limits.recipients = 2;
    let ehlo = ehlo(&["PIPELINING"]);
    let scripted = Scripted::new(
        config,
        &[GREETING, &ehlo, OK, OK, OK, "354 go\r\n", OK, BYE],
    )
    .run(vec![message(
        "Q1",
        &["a@example.com", "b@example.com", "c@example.com"],
        b"hi\r\n",
    )]);
    assert_eq!(kinds(scripted.only_report()), "ddt");
    assert_eq!(
        status(&scripted.only_report().recipients[2]),
        EnhancedStatus::new(4, 5, 3)
    );
}

#[test]
fn timeouts_follow_rfc_5321_and_fail_the_session() {
    // Greeting: 5 minutes.
    let mut silent = Scripted::new(smtp(), &[]).run(one());
    assert_eq!(silent.client.next_deadline(), Some(silent.now + minutes(5)));
    silent.tick_at_deadline();
    assert_eq!(failed_kind(&silent), Some(SessionFailureKind::Timeout));
    assert_eq!(kinds(silent.only_report()), "u");

    // DATA initiation: 2 minutes; the final reply: 10 minutes.
    let ehlo = ehlo(&[]);
    let mut waiting = Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK]).run(one());
    assert!(waiting.sent().ends_with("DATA\r\n"));
    assert_eq!(
        waiting.client.next_deadline(),
        Some(waiting.now + minutes(2))
    );
    let mut final_reply =
        Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n"]).run(one());
    assert!(final_reply.sent().ends_with(".\r\n"));
    assert_eq!(
        final_reply.client.next_deadline(),
        Some(final_reply.now + minutes(10))
    );
    // A tick before the deadline changes nothing.
    final_reply.now = final_reply.now + minutes(9);
    final_reply.input(Input::Tick);
    assert!(final_reply.outcome.is_none());
    final_reply.tick_at_deadline();
    assert_eq!(failed_kind(&final_reply), Some(SessionFailureKind::Timeout));
    assert_eq!(kinds(final_reply.only_report()), "u");
    waiting.tick_at_deadline();
    assert_eq!(failed_kind(&waiting), Some(SessionFailureKind::Timeout));
}

#[test]
fn an_idle_session_says_quit_and_a_silent_quit_still_completes() {
    let ehlo = ehlo(&[]);
    let mut scripted = Scripted::new(smtp(), &[GREETING, &ehlo]);
    scripted
        .client
        .handle(scripted.now, Input::Bytes(GREETING.as_bytes().to_vec()));
    scripted.replies.pop_front();
    // Driven by hand, so that Ready is not answered.
    let mut outputs = Vec::new();
    scripted
        .client
        .handle(scripted.now, Input::Bytes(ehlo.clone().into_bytes()));
    while let Some(output) = scripted.client.poll() {
        outputs.push(output);
    }
    assert!(outputs.contains(&Output::Ready));
    assert_eq!(
        scripted.client.next_deadline(),
        Some(scripted.now + minutes(1))
    );
    scripted.replies.clear();
    scripted.tick_at_deadline();
    assert!(scripted.sent().ends_with("QUIT\r\n"));
    assert_eq!(
        scripted.client.next_deadline(),
        Some(scripted.now + Duration::from_secs(30))
    );
    scripted.tick_at_deadline();
    assert_eq!(scripted.outcome, Some(SessionOutcome::Completed));
}

#[test]
fn a_lost_connection_before_the_final_reply_is_unresolved_after_it_final() {
    let ehlo = ehlo(&[]);
    let mut cut = Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n"]).run(one());
    cut.input(Input::PeerClosed);
    assert_eq!(failed_kind(&cut), Some(SessionFailureKind::ConnectionLost));
    assert_eq!(kinds(cut.only_report()), "u");

    let mut after = Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n", OK]).run(one());
    assert_eq!(kinds(after.only_report()), "d");
    assert!(after.sent().ends_with("QUIT\r\n"));
    after.input(Input::PeerClosed);
    assert_eq!(after.outcome, Some(SessionOutcome::Completed));
}

#[test]
fn the_body_streams_one_block_per_written_acknowledgement() {
    let mut config = smtp();
    config.limits.data_block = 8;
    let ehlo = ehlo(&[]);
    let mut scripted = Scripted::new(config, &[GREETING, &ehlo, OK, OK, "354 go\r\n", OK, BYE]);
    scripted.acknowledge_writes = false;
    let mut scripted = scripted.run(vec![message(
        "Q1",
        &["bob@example.com"],
        b"line one\r\nline two\r\nline three\r\n",
    )]);
    let blocks_before = scripted.sends.len();
    assert!(scripted.reports.is_empty());
    assert_eq!(
        scripted.client.next_deadline(),
        Some(scripted.now + minutes(3))
    );
    let mut acknowledgements = 0;
    while scripted.reports.is_empty() && acknowledgements < 20 {
        scripted.input(Input::Written);
        acknowledgements += 1;
    }
    assert!(scripted.sends.len() > blocks_before + 2);
    assert!(
        scripted
            .sends
            .iter()
            .all(|send| send.len() <= 8 + 3 || !send.starts_with(b"line"))
    );
    assert_eq!(kinds(scripted.only_report()), "d");
}

#[test]
fn a_message_given_while_another_waits_or_after_finish_is_reported_unattempted() {
    let mut client = ClientSession::new(Instant::EPOCH, smtp());
    client.handle(
        Instant::EPOCH,
        Input::Message(message("Q1", &["a@x.example"], b"")),
    );
    client.handle(
        Instant::EPOCH,
        Input::Message(message("Q2", &["a@x.example", "b@x.example"], b"")),
    );
    let outputs: Vec<Output> = std::iter::from_fn(|| client.poll()).collect();
    let reports: Vec<&MessageReport> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Report(report) => Some(report),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].queue_id, "Q2");
    assert_eq!(kinds(reports[0]), "uu");

    client.handle(Instant::EPOCH, Input::PeerClosed);
    let closing: Vec<Output> = std::iter::from_fn(|| client.poll()).collect();
    assert!(
        closing
            .iter()
            .any(|output| matches!(output, Output::Report(report) if report.queue_id == "Q1"))
    );
    assert!(matches!(closing.last(), Some(Output::Close(_))));
    client.handle(
        Instant::EPOCH,
        Input::Message(message("Q3", &["a@x.example"], b"")),
    );
    assert!(matches!(client.poll(), Some(Output::Report(report)) if report.queue_id == "Q3"));
    assert!(client.next_deadline().is_none());
}

/// The report says how far the transaction got when the connection ended: what the
/// delivery walk needs to tell a stale pooled connection from a message the server
/// may already hold.
#[test]
fn the_report_says_how_far_the_transaction_got_when_the_connection_ended() {
    let plain = ehlo(&[]);
    let pipelining = ehlo(&["PIPELINING"]);
    let cases: [(&[&str], TransactionProgress); 5] = [
        // MAIL sent, never answered.
        (&[GREETING, &plain], TransactionProgress::Unanswered),
        // MAIL, RCPT and DATA in one write, nothing answered.
        (&[GREETING, &pipelining], TransactionProgress::Unanswered),
        // MAIL answered, RCPT not.
        (&[GREETING, &plain, OK], TransactionProgress::Answered),
        // The body and its "." sent, the final reply lost.
        (
            &[GREETING, &plain, OK, OK, "354 go\r\n"],
            TransactionProgress::AwaitingFinalReply,
        ),
        // Every reply read.
        (
            &[GREETING, &plain, OK, OK, "354 go\r\n", OK],
            TransactionProgress::Finished,
        ),
    ];
    for (replies, progress) in cases {
        let mut scripted = Scripted::new(smtp(), replies).run(one());
        scripted.input(Input::PeerClosed);
        assert_eq!(scripted.only_report().progress, progress, "{replies:?}");
    }
    // The session failed before the transaction began: nothing of it was sent.
    let refused = Scripted::new(smtp(), &["554 no service\r\n"]).run(one());
    assert_eq!(
        refused.only_report().progress,
        TransactionProgress::NotStarted
    );
    // A 421 as the first answer is the server closing, not an answer to the message.
    let closing =
        Scripted::new(smtp(), &[GREETING, &plain, "421 4.4.2 idle too long\r\n"]).run(one());
    assert_eq!(
        closing.only_report().progress,
        TransactionProgress::Unanswered
    );
}

/// LMTP owes one final reply per accepted recipient: one missing leaves the
/// transaction awaiting its final reply although another arrived.
#[test]
fn an_lmtp_final_reply_missing_for_one_recipient_awaits_the_final_reply() {
    let lhlo = ehlo(&[]);
    let mut scripted = Scripted::new(
        config(Protocol::Lmtp, TlsPolicy::Disabled),
        &[GREETING, &lhlo, OK, OK, OK, "354 go\r\n", OK],
    )
    .run(vec![message(
        "Q1",
        &["a@b.example", "c@b.example"],
        b"hi\r\n",
    )]);
    scripted.input(Input::PeerClosed);
    let report = scripted.only_report();
    assert_eq!(report.progress, TransactionProgress::AwaitingFinalReply);
    assert_eq!(kinds(report), "du");
}

#[test]
fn the_last_block_waits_for_its_write_with_the_block_timeout_then_ten_minutes() {
    // The whole body goes in one block: while it is being written, the block timeout
    // (3 minutes) applies, not the 10 minutes for the final reply that comes after.
    let ehlo = ehlo(&[]);
    let mut scripted = Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n"]);
    scripted.acknowledge_writes = false;
    let mut scripted = scripted.run(one());
    assert!(scripted.sent().ends_with(".\r\n"));
    assert_eq!(
        scripted.client.next_deadline(),
        Some(scripted.now + minutes(3))
    );
    scripted.input(Input::Written);
    assert_eq!(
        scripted.client.next_deadline(),
        Some(scripted.now + minutes(10))
    );
}

#[test]
fn starttls_gets_five_minutes_for_its_reply_and_two_for_the_handshake() {
    // Driven by hand: the scripted driver would finish the handshake at once.
    let offered = ehlo(&["STARTTLS"]);
    let now = Instant::from_millis(1_000);
    let mut client = ClientSession::new(now, config(Protocol::Smtp, TlsPolicy::Opportunistic));
    let mut outputs = Vec::new();
    for reply in [GREETING, offered.as_str()] {
        client.handle(now, Input::Bytes(reply.as_bytes().to_vec()));
        outputs.extend(std::iter::from_fn(|| client.poll()));
    }
    assert!(outputs.contains(&Output::Send(b"STARTTLS\r\n".to_vec())));
    assert_eq!(client.next_deadline(), Some(now + minutes(5)));
    client.handle(now, Input::Bytes(b"220 go\r\n".to_vec()));
    let outputs: Vec<Output> = std::iter::from_fn(|| client.poll()).collect();
    assert!(
        outputs
            .iter()
            .any(|output| matches!(output, Output::StartTls { .. }))
    );
    assert_eq!(client.next_deadline(), Some(now + minutes(2)));
    client.handle(now + minutes(2), Input::Tick);
    let closed = std::iter::from_fn(|| client.poll()).any(|output| {
        matches!(
            output,
            Output::Close(SessionOutcome::Failed(SessionFailure {
                kind: SessionFailureKind::Timeout,
                ..
            }))
        )
    });
    assert!(closed);
}

#[test]
fn an_unanswered_rset_times_out_after_the_command_timeout() {
    let ehlo = ehlo(&[]);
    // DATA is refused, so the second message starts with RSET, which gets no answer.
    let mut scripted = Scripted::new(
        smtp(),
        &[GREETING, &ehlo, OK, OK, "554 5.7.1 not from you\r\n"],
    )
    .run(vec![
        message("Q1", &["a@example.com"], b"hi\r\n"),
        message("Q2", &["a@example.com"], b"hi\r\n"),
    ]);
    assert!(scripted.sent().ends_with("RSET\r\n"));
    assert_eq!(
        scripted.client.next_deadline(),
        Some(scripted.now + minutes(5))
    );
    scripted.tick_at_deadline();
    assert_eq!(failed_kind(&scripted), Some(SessionFailureKind::Timeout));
}

#[test]
fn a_closed_session_holds_none_of_the_servers_bytes() {
    // The unreadable reply is still held when the session fails on it.
    let garbage = Scripted::new(smtp(), &["HTTP/1.1 400 Bad Request\r\n"]).run(one());
    assert_eq!(
        failed_kind(&garbage),
        Some(SessionFailureKind::ProtocolViolation)
    );
    assert!(garbage.client.is_closed());
    assert_eq!(garbage.client.buffered_bytes(), 0);
}
