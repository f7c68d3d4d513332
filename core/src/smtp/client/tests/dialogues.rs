//! Whole dialogues against the scripted server, recorded as C:/S: transcripts.

use super::*;
use crate::smtp::params::{Notify, OriginalRecipient, Ret};

const OK: &str = "250 2.0.0 ok\r\n";
const GREETING: &str = "220 mx.remote.example ESMTP\r\n";
const BYE: &str = "221 2.0.0 bye\r\n";

#[test]
fn plain_dialogue_without_extensions() {
    let ehlo = ehlo(&[]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            "250 2.1.0 sender ok\r\n",
            "250 2.1.5 recipient ok\r\n",
            "354 go ahead\r\n",
            "250 2.0.0 queued as A1\r\n",
            BYE,
        ],
    )
    .run(vec![message(
        "Q1",
        &["bob@example.com"],
        b"Subject: hi\n\n.leading dot\r\nbare CR\rend",
    )]);
    assert_eq!(scripted.outcome, Some(SessionOutcome::Completed));
    assert_eq!(kinds(scripted.only_report()), "d");
    // Without PIPELINING every command waits for its reply: one write each.
    assert!(
        scripted
            .sends
            .iter()
            .all(|send| send.iter().filter(|&&b| b == b'\n').count() == 1
                || send.ends_with(b".\r\n"))
    );
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn pipelined_dialogue_sends_mail_rcpts_and_data_in_one_write() {
    let ehlo = ehlo(&[
        "PIPELINING",
        "8BITMIME",
        "SIZE 10000",
        "ENHANCEDSTATUSCODES",
    ]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            OK,
            OK,
            OK,
            "354 go ahead\r\n",
            "250 2.0.0 queued\r\n",
            BYE,
        ],
    )
    .run(vec![message(
        "Q1",
        &["bob@example.com", "carol@example.com"],
        "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n".as_bytes(),
    )]);
    assert_eq!(
        scripted.sends[1],
        b"MAIL FROM:<alice@example.org> SIZE=26 BODY=8BITMIME\r\n\
          RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n"
    );
    assert_eq!(kinds(scripted.only_report()), "dd");
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn opportunistic_starttls_says_ehlo_again_over_tls() {
    let before = ehlo(&["PIPELINING", "STARTTLS"]);
    let after = ehlo(&["PIPELINING"]);
    let scripted = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Opportunistic),
        &[
            GREETING,
            &before,
            "220 2.0.0 ready for TLS\r\n",
            &after,
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert_eq!(scripted.starttls, [(REMOTE.to_owned(), false)]);
    assert!(
        scripted
            .events
            .contains(&ClientEvent::TlsStarted { verified: false })
    );
    assert_eq!(kinds(scripted.only_report()), "d");
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn required_tls_verifies_the_remote_host_name() {
    let before = ehlo(&["STARTTLS"]);
    let after = ehlo(&[]);
    let scripted = Scripted::new(
        config(Protocol::Smtp, TlsPolicy::Required),
        &[GREETING, &before, "220 go\r\n", &after, BYE],
    )
    .run(vec![]);
    assert_eq!(scripted.starttls, [(REMOTE.to_owned(), true)]);
    assert!(
        scripted
            .events
            .contains(&ClientEvent::TlsStarted { verified: true })
    );
    assert_eq!(scripted.outcome, Some(SessionOutcome::Completed));
    assert!(scripted.sent().ends_with("EHLO client.example\r\nQUIT\r\n"));
}

#[test]
fn helo_fallback_after_ehlo_is_refused() {
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            "502 5.5.1 command not recognised\r\n",
            "250 mx.remote.example\r\n",
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert!(
        scripted
            .events
            .contains(&ClientEvent::Hello { extended: false })
    );
    assert_eq!(kinds(scripted.only_report()), "d");
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn lmtp_reports_one_final_reply_per_accepted_recipient() {
    let lhlo = ehlo(&["PIPELINING", "ENHANCEDSTATUSCODES", "DSN"]);
    let mut with_dsn = message(
        "Q1",
        &[
            "a@backend.example",
            "b@backend.example",
            "c@backend.example",
        ],
        b"hello\r\n",
    );
    with_dsn.recipients[0].notify = Some(Notify::Never);
    let scripted = Scripted::new(
        config(Protocol::Lmtp, TlsPolicy::Disabled),
        &[
            "220 backend LMTP\r\n",
            &lhlo,
            OK,
            OK,
            "550 5.1.1 no such user\r\n",
            OK,
            "354 go\r\n",
            // One reply per accepted recipient, after the one ".".
            "250 2.1.5 delivered to a\r\n452 4.2.2 mailbox of c is full\r\n",
            BYE,
        ],
    )
    .run(vec![with_dsn]);
    assert!(scripted.sent().starts_with("LHLO client.example\r\n"));
    // Final delivery: notices stay ours, so no DSN parameter goes to the backend.
    assert!(!scripted.sent().contains("NOTIFY"));
    assert_eq!(kinds(scripted.only_report()), "dpt");
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn chunking_sends_bdat_chunks_without_dot_stuffing() {
    let ehlo = ehlo(&["PIPELINING", "CHUNKING"]);
    let mut config = smtp();
    config.limits.data_block = 16;
    let scripted = Scripted::new(
        config,
        &[GREETING, &ehlo, OK, OK, OK, "250 2.0.0 queued\r\n", BYE],
    )
    .run(vec![message(
        "Q1",
        &["bob@example.com"],
        b"Subject: x\n\n.dot line\nend",
    )]);
    let sent = scripted.sent();
    assert!(sent.matches("BDAT ").count() >= 2, "{sent}");
    assert_eq!(sent.matches(" LAST\r\n").count(), 1, "{sent}");
    assert!(!sent.contains("DATA"));
    assert!(!sent.contains("..dot"));
    assert_eq!(kinds(scripted.only_report()), "d");
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn chunking_without_pipelining_waits_for_each_chunk_reply() {
    let ehlo = ehlo(&["CHUNKING"]);
    let mut config = smtp();
    config.limits.data_block = 16;
    let scripted = Scripted::new(
        config,
        &[GREETING, &ehlo, OK, OK, OK, "250 2.0.0 queued\r\n", BYE],
    )
    .run(vec![message(
        "Q1",
        &["bob@example.com"],
        b"Subject: x\n\n.dot line\nend",
    )]);
    assert_eq!(kinds(scripted.only_report()), "d");
    // Commands and replies in order: every BDAT is answered before the next is sent.
    let steps: Vec<&str> = scripted
        .transcript
        .iter()
        .map(String::as_str)
        .filter(|line| line.starts_with("C: BDAT") || line.starts_with("S: "))
        .collect();
    assert_eq!(
        steps
            .iter()
            .filter(|line| line.starts_with("C: BDAT"))
            .count(),
        2
    );
    assert!(
        steps
            .windows(2)
            .all(|pair| !(pair[0].starts_with("C: BDAT") && pair[1].starts_with("C: BDAT"))),
        "{steps:?}"
    );
}

#[test]
fn a_message_over_the_size_limit_is_refused_before_mail_and_the_next_goes_on() {
    let ehlo = ehlo(&["PIPELINING", "SIZE 100"]);
    let big = vec![b'x'; 200];
    let scripted =
        Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n", OK, BYE]).run(vec![
            message("BIG", &["bob@example.com", "carol@example.com"], &big),
            message("SMALL", &["bob@example.com"], b"small\r\n"),
        ]);
    assert_eq!(scripted.reports.len(), 2);
    assert_eq!(kinds(&scripted.reports[0]), "pp");
    assert_eq!(
        status(&scripted.reports[0].recipients[0]),
        EnhancedStatus::new(5, 3, 4)
    );
    assert_eq!(kinds(&scripted.reports[1]), "d");
    assert_eq!(scripted.sent().matches("MAIL FROM").count(), 1);
    assert!(scripted.sent().contains("SIZE=7"));
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn a_utf8_envelope_needs_smtputf8() {
    let mut utf8 = message("Q1", &["bob@example.com"], b"hi\r\n");
    utf8.reverse_path = Some("j\u{f6}rg@example.org".to_owned());
    let without = ehlo(&["PIPELINING", "8BITMIME"]);
    let refused = Scripted::new(smtp(), &[GREETING, &without, BYE]).run(vec![utf8.clone()]);
    assert_eq!(kinds(refused.only_report()), "p");
    assert_eq!(
        status(&refused.only_report().recipients[0]),
        EnhancedStatus::new(5, 6, 7)
    );
    assert!(!refused.sent().contains("MAIL"));
    insta::assert_snapshot!("smtputf8_refused", refused.render());

    let with = ehlo(&["PIPELINING", "8BITMIME", "SMTPUTF8"]);
    let sent =
        Scripted::new(smtp(), &[GREETING, &with, OK, OK, "354 go\r\n", OK, BYE]).run(vec![utf8]);
    assert!(
        sent.sent()
            .contains("MAIL FROM:<j\u{f6}rg@example.org> SMTPUTF8\r\n")
    );
    assert_eq!(kinds(sent.only_report()), "d");
}

#[test]
fn a_utf8_recipient_fails_alone_without_smtputf8() {
    let mixed = message(
        "Q1",
        &["bob@example.com", "j\u{f6}rg@example.com"],
        b"hi\r\n",
    );
    let without = ehlo(&["PIPELINING", "8BITMIME"]);
    let sent = Scripted::new(smtp(), &[GREETING, &without, OK, OK, "354 go\r\n", OK, BYE])
        .run(vec![mixed]);
    assert_eq!(kinds(sent.only_report()), "dp");
    assert_eq!(
        status(&sent.only_report().recipients[1]),
        EnhancedStatus::new(5, 6, 7)
    );
    assert!(
        sent.sent()
            .contains("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n")
    );
    assert!(!sent.sent().contains("j\u{f6}rg"));
}

#[test]
fn dsn_parameters_pass_through_only_when_offered() {
    let mut dsn = message("Q1", &["bob@example.com"], b"hi\r\n");
    dsn.ret = Some(Ret::Headers);
    dsn.envid = Some("id 42+x".to_owned());
    dsn.recipients[0].notify = Some(Notify::On {
        success: true,
        failure: true,
        delay: false,
    });
    dsn.recipients[0].orcpt = Some(OriginalRecipient {
        address_type: "rfc822".to_owned(),
        address: "bob+tag@example.com".to_owned(),
    });
    let offered = ehlo(&["PIPELINING", "DSN"]);
    let passed = Scripted::new(smtp(), &[GREETING, &offered, OK, OK, "354 go\r\n", OK, BYE])
        .run(vec![dsn.clone()]);
    assert!(passed.sent().contains(
        "MAIL FROM:<alice@example.org> RET=HDRS ENVID=id+2042+2Bx\r\n\
         RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Btag@example.com\r\n"
    ));
    insta::assert_snapshot!("dsn_passed_on", passed.render());

    let plain = ehlo(&["PIPELINING"]);
    let kept =
        Scripted::new(smtp(), &[GREETING, &plain, OK, OK, "354 go\r\n", OK, BYE]).run(vec![dsn]);
    assert!(
        kept.sent()
            .contains("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n")
    );
    assert!(matches!(
        kept.only_report().recipients[0],
        RecipientOutcome::Final(RecipientResult::Delivered {
            notify_passed_on: false,
            ..
        })
    ));
}

/// The DSN parameters a run reported as dropped, in order.
fn dropped(run: &Scripted) -> Vec<&'static str> {
    run.events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::ParameterDropped { parameter, .. } => Some(*parameter),
            _ => None,
        })
        .collect()
}

#[test]
fn only_an_envid_too_long_to_send_is_reported_dropped() {
    let offered = ehlo(&["PIPELINING", "DSN"]);
    let replies = [GREETING, offered.as_str(), OK, OK, "354 go\r\n", OK, BYE];
    let mut short = message("Q1", &["bob@example.com"], b"hi\r\n");
    short.envid = Some("id-1".to_owned());
    let mut long = short.clone();
    // 101 octets in xtext: one more than RFC 3461 §4.4 allows.
    long.envid = Some("x".repeat(101));
    let sent = Scripted::new(smtp(), &replies).run(vec![short]);
    assert!(
        sent.sent()
            .contains("MAIL FROM:<alice@example.org> ENVID=id-1\r\n")
    );
    assert!(dropped(&sent).is_empty());
    let sent = Scripted::new(smtp(), &replies).run(vec![long]);
    assert!(sent.sent().contains("MAIL FROM:<alice@example.org>\r\n"));
    assert_eq!(dropped(&sent), vec!["ENVID"]);
}

#[test]
fn a_421_mid_transaction_leaves_unanswered_recipients_unresolved() {
    let ehlo = ehlo(&[]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            OK,
            "550 5.1.1 unknown\r\n",
            "421 4.3.2 shutting down\r\n",
        ],
    )
    .run(vec![message(
        "Q1",
        &["gone@example.com", "bob@example.com", "carol@example.com"],
        b"hi\r\n",
    )]);
    assert_eq!(kinds(scripted.only_report()), "puu");
    assert_eq!(
        failed_kind(&scripted),
        Some(SessionFailureKind::ServiceClosing)
    );
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn rcpt_replies_mixing_2xx_4xx_and_5xx() {
    let ehlo = ehlo(&["PIPELINING", "ENHANCEDSTATUSCODES"]);
    let scripted = Scripted::new(
        smtp(),
        &[
            GREETING,
            &ehlo,
            OK,
            "250 2.1.5 ok\r\n",
            "451 4.7.1 greylisted, try later\r\n",
            "550 5.1.1 no such user\r\n",
            "251 2.1.5 will forward\r\n",
            "354 go\r\n",
            "250 2.0.0 queued\r\n",
            BYE,
        ],
    )
    .run(vec![message(
        "Q1",
        &[
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com",
        ],
        b"hi\r\n",
    )]);
    assert_eq!(kinds(scripted.only_report()), "dtpd");
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn only_an_orcpt_that_reads_back_the_same_is_sent_and_a_dropped_one_is_reported() {
    let offered = ehlo(&["PIPELINING", "DSN"]);
    let replies = [GREETING, offered.as_str(), OK, OK, "354 go\r\n", OK, BYE];
    let mut valid = message("Q1", &["bob@example.com"], b"hi\r\n");
    valid.recipients[0].orcpt = Some(OriginalRecipient {
        address_type: "rfc822".to_owned(),
        address: "bob@example.com".to_owned(),
    });
    let mut malformed = valid.clone();
    // A space in the address type would split the parameter in two.
    if let Some(orcpt) = malformed.recipients[0].orcpt.as_mut() {
        orcpt.address_type = "rfc 822".to_owned();
    }
    let sent = Scripted::new(smtp(), &replies).run(vec![valid]);
    assert!(
        sent.sent()
            .contains("RCPT TO:<bob@example.com> ORCPT=rfc822;bob@example.com\r\n")
    );
    assert!(dropped(&sent).is_empty());
    let sent = Scripted::new(smtp(), &replies).run(vec![malformed]);
    assert!(sent.sent().contains("RCPT TO:<bob@example.com>\r\n"));
    assert_eq!(dropped(&sent), vec!["ORCPT"]);
}

#[test]
fn the_session_counts_the_server_octets_it_holds_until_a_reply_is_whole() {
    // No scripted replies: the greeting is given by hand, and EHLO stays unanswered.
    let mut scripted = Scripted::new(smtp(), &[]);
    assert_eq!(scripted.client.buffered_bytes(), 0);
    // Half a greeting is held, octet for octet.
    let (first, rest) = GREETING.split_at(10);
    scripted.input(Input::Bytes(first.as_bytes().to_vec()));
    assert_eq!(scripted.client.buffered_bytes(), 10);
    // Once whole, the greeting is read and nothing is held.
    scripted.input(Input::Bytes(rest.as_bytes().to_vec()));
    assert!(scripted.sent().contains("EHLO client.example\r\n"));
    assert_eq!(scripted.client.buffered_bytes(), 0);
}

#[test]
fn a_refused_chunk_ends_the_transaction_and_no_more_chunks_follow() {
    let ehlo = ehlo(&["CHUNKING"]);
    let mut config = smtp();
    // The first message takes two chunks; the server refuses the first.
    config.limits.data_block = 16;
    let scripted = Scripted::new(
        config,
        &[
            GREETING,
            &ehlo,
            OK,
            OK,
            "554 5.6.0 content refused\r\n",
            OK,
            OK,
            OK,
            "250 2.0.0 queued\r\n",
            BYE,
        ],
    )
    .run(vec![
        message("Q1", &["bob@example.com"], b"Subject: x\n\n.dot line\nend"),
        message("Q2", &["bob@example.com"], b"hi\r\n"),
    ]);
    assert_eq!(kinds(&scripted.reports[0]), "p");
    assert_eq!(
        status(&scripted.reports[0].recipients[0]),
        EnhancedStatus::new(5, 6, 0)
    );
    assert_eq!(kinds(&scripted.reports[1]), "d");
    // One chunk of Q1, then RSET (RFC 3030 §3), then Q2 in one last chunk.
    let sent = scripted.sent();
    assert_eq!(sent.matches("BDAT ").count(), 2, "{sent}");
    assert!(
        sent.contains("RSET\r\nMAIL FROM:<alice@example.org>"),
        "{sent}"
    );
}

#[test]
fn a_message_exactly_at_the_size_limit_is_sent() {
    let ehlo = ehlo(&["PIPELINING", "SIZE 100"]);
    // 98 octets and the CRLF the body is given at its end: 100, the server's limit.
    let body = vec![b'x'; 98];
    let scripted = Scripted::new(smtp(), &[GREETING, &ehlo, OK, OK, "354 go\r\n", OK, BYE])
        .run(vec![message("Q1", &["bob@example.com"], &body)]);
    assert_eq!(kinds(scripted.only_report()), "d");
    assert!(scripted.sent().contains(" SIZE=100\r\n"));
}
