//! Notices built from fixed requests, parsed back with mail-parser: the RFC 3464 /
//! RFC 6522 structure, every per-message and per-recipient field, what RET returns,
//! and that hostile input stays inside its fields. One failure notice is snapshotted.

#![allow(clippy::unwrap_used)]

mod notice_support;

use mail_parser::{MimeHeaders, PartType};
use notice_support::*;
use sluice_core::delivery::Diagnostic;
use sluice_core::notice::{DEFAULT_RETURN_LIMIT, NoticeAction, NoticeError, NoticeKind, build};
use sluice_core::smtp::params::{OriginalRecipient, Ret};

fn failure_request() -> sluice_core::notice::NoticeRequest {
    let mut bob = failed(
        "bob@example.org",
        reply(
            550,
            (5, 1, 1),
            &[
                "<bob@example.org>: Recipient address rejected:",
                "User unknown in virtual mailbox table",
            ],
        ),
    );
    bob.original_recipient = Some(OriginalRecipient {
        address_type: "rfc822".to_owned(),
        address: "Bob@Example.org".to_owned(),
    });
    let carol = failed(
        "carol@example.net",
        reply(552, (5, 2, 2), &["Mailbox full"]),
    );
    let mut request = request(NoticeKind::Failure, vec![bob, carol]);
    request.envid = Some("QQ314159".to_owned());
    request
}

#[test]
fn a_failure_notice_has_the_rfc_3464_structure() {
    let notice = build(&failure_request(), &original(), &context()).unwrap();
    assert_eq!(notice.recipient, "alice@sluice.test");
    assert!(!notice.eight_bit && !notice.smtputf8);
    assert_wire_clean(&notice.data);

    let message = parse(&notice.data);
    let content_type = message.content_type().unwrap();
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("report"));
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status")
    );
    assert_eq!(
        message.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Mail Delivery System"));
    assert_eq!(from.address(), Some("MAILER-DAEMON@mx.sluice.test"));
    assert_eq!(
        message.to().unwrap().first().unwrap().address(),
        Some("alice@sluice.test")
    );
    assert_eq!(message.message_id(), Some("notice.Q1@mx.sluice.test"));
    assert_eq!(message.date().unwrap().to_timestamp(), NOW);
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );

    let parts = top_parts(&message);
    let types: Vec<String> = parts.iter().map(|part| mime_type(part)).collect();
    assert_eq!(
        types,
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );

    // The explanation wraps its lines; compare it with white space collapsed.
    let text = parts[0].text_contents().unwrap();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("could not be delivered"), "{text}");
    assert!(text.contains("<bob@example.org>: delivery failed (status 5.1.1)."));
    assert!(text.contains(
        "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
    ));
    assert!(text.contains("<carol@example.net>: delivery failed (status 5.2.2)."));
    assert!(text.contains("Your original message is attached."));

    let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
    assert_eq!(groups.len(), 3);
    let per_message = &groups[0];
    assert_eq!(field(per_message, "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(
        field(per_message, "Reporting-MTA"),
        Some("dns; mx.sluice.test")
    );
    assert_eq!(
        field(per_message, "Arrival-Date"),
        Some("Tue, 14 Nov 2023 21:13:20 +0000")
    );
    let bob = &groups[1];
    assert_eq!(
        field(bob, "Original-Recipient"),
        Some("rfc822; Bob@Example.org")
    );
    assert_eq!(
        field(bob, "Final-Recipient"),
        Some("rfc822; bob@example.org")
    );
    assert_eq!(field(bob, "Action"), Some("failed"));
    assert_eq!(field(bob, "Status"), Some("5.1.1"));
    assert_eq!(field(bob, "Remote-MTA"), Some("dns; mx.example.org"));
    assert_eq!(
        field(bob, "Diagnostic-Code"),
        Some(
            "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
        )
    );
    assert_eq!(
        field(bob, "Last-Attempt-Date"),
        Some("Tue, 14 Nov 2023 22:12:20 +0000")
    );
    assert_eq!(field(bob, "Will-Retry-Until"), None);
    let carol = &groups[2];
    assert_eq!(field(carol, "Original-Recipient"), None);
    assert_eq!(
        field(carol, "Final-Recipient"),
        Some("rfc822; carol@example.net")
    );
    assert_eq!(field(carol, "Status"), Some("5.2.2"));
    assert_eq!(
        field(carol, "Diagnostic-Code"),
        Some("smtp; 552 5.2.2 Mailbox full")
    );

    // RET absent on a failure: the whole original, intact.
    let PartType::Message(returned) = &parts[2].body else {
        panic!("the third part is a nested message");
    };
    assert_eq!(returned.subject(), Some("Quarterly figures"));
    assert!(raw_body(&notice.data, parts[2]).starts_with(&original()));
}

#[test]
fn failure_notice_snapshot() {
    let notice = build(&failure_request(), &original(), &context()).unwrap();
    insta::assert_snapshot!(String::from_utf8(notice.data).unwrap());
}

#[test]
fn the_same_inputs_give_the_same_octets() {
    let first = build(&failure_request(), &original(), &context()).unwrap();
    let second = build(&failure_request(), &original(), &context()).unwrap();
    assert_eq!(first, second);
}

#[test]
fn ret_hdrs_returns_the_header_section() {
    let mut request = failure_request();
    request.ret = Some(Ret::Headers);
    let notice = build(&request, &original(), &context()).unwrap();
    assert_wire_clean(&notice.data);
    let message = parse(&notice.data);
    let parts = top_parts(&message);
    assert_eq!(mime_type(parts[2]), "text/rfc822-headers");
    let headers = raw_body(&notice.data, parts[2]);
    let expected = original();
    let header_end = expected.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    assert!(headers.starts_with(&expected[..header_end]));
    assert!(!headers.windows(9).any(|w| w == b"Hello Bob"));
    assert!(
        parts[0]
            .text_contents()
            .unwrap()
            .contains("The header section of your original message is attached.")
    );
}

#[test]
fn a_delay_notice_says_until_when_and_returns_headers() {
    let until = NOW + 4 * 86_400;
    let request = request(NoticeKind::Delay, vec![delayed("bob@example.org", until)]);
    let notice = build(&request, &original(), &context()).unwrap();
    assert_wire_clean(&notice.data);
    let message = parse(&notice.data);
    assert_eq!(
        message.subject(),
        Some("Delayed Mail (still being retried)")
    );
    let parts = top_parts(&message);
    assert_eq!(mime_type(parts[2]), "text/rfc822-headers");
    let text = parts[0].text_contents().unwrap();
    assert!(
        text.contains("will keep trying until Sat, 18 Nov 2023 22:13:20 +0000"),
        "{text}"
    );
    assert!(text.contains("connection to mx.example.org timed out"));
    let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
    let bob = &groups[1];
    assert_eq!(field(bob, "Action"), Some("delayed"));
    assert_eq!(field(bob, "Status"), Some("4.4.1"));
    assert_eq!(field(bob, "Remote-MTA"), None);
    assert_eq!(
        field(bob, "Diagnostic-Code"),
        Some("X-Sluice; connection to mx.example.org timed out")
    );
    assert_eq!(
        field(bob, "Will-Retry-Until"),
        Some("Sat, 18 Nov 2023 22:13:20 +0000")
    );

    // RET=FULL asks for the whole message even in a delay notice.
    let mut full = request.clone();
    full.ret = Some(Ret::Full);
    let notice = build(&full, &original(), &context()).unwrap();
    let message = parse(&notice.data);
    assert_eq!(mime_type(top_parts(&message)[2]), "message/rfc822");
}

#[test]
fn a_success_notice_reports_delivered_and_relayed() {
    let request = request(
        NoticeKind::Success,
        vec![
            succeeded("bob@example.org", NoticeAction::Delivered),
            succeeded("carol@example.net", NoticeAction::Relayed),
        ],
    );
    let notice = build(&request, &original(), &context()).unwrap();
    assert_wire_clean(&notice.data);
    let message = parse(&notice.data);
    assert_eq!(message.subject(), Some("Successful Mail Delivery Report"));
    let parts = top_parts(&message);
    assert_eq!(mime_type(parts[2]), "text/rfc822-headers");
    let text = parts[0].text_contents().unwrap();
    assert!(text.contains("<bob@example.org>: delivered."));
    assert!(text.contains("<carol@example.net>: relayed"));
    let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
    assert_eq!(field(&groups[1], "Action"), Some("delivered"));
    assert_eq!(field(&groups[2], "Action"), Some("relayed"));
    for group in &groups[1..] {
        assert_eq!(field(group, "Status"), Some("2.0.0"));
        assert_eq!(field(group, "Diagnostic-Code"), None);
        assert_eq!(field(group, "Remote-MTA"), None);
    }
}

#[test]
fn international_addresses_and_headers() {
    let mut bob = failed(
        "b\u{f6}b@b\u{fc}cher.example",
        reply(550, (5, 1, 1), &["unknown"]),
    );
    bob.original_recipient = Some(OriginalRecipient {
        address_type: "utf-8".to_owned(),
        address: "B\u{f6}b@b\u{fc}cher.example".to_owned(),
    });
    let mut request = request(NoticeKind::Failure, vec![bob]);
    request.notify = "j\u{f6}rg@sluice.test".to_owned();
    let original =
        "From: J\u{f6}rg <j\u{f6}rg@sluice.test>\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nHallo\r\n";
    let notice = build(&request, original.as_bytes(), &context()).unwrap();
    assert!(notice.eight_bit && notice.smtputf8);
    assert_wire_clean(&notice.data);
    let message = parse(&notice.data);
    assert_eq!(
        message.to().unwrap().first().unwrap().address(),
        Some("j\u{f6}rg@sluice.test")
    );
    let parts = top_parts(&message);
    // RFC 6533 §6.3: a message with UTF-8 headers is returned as message/global.
    assert_eq!(mime_type(parts[2]), "message/global");
    assert_eq!(parts[2].content_transfer_encoding(), Some("8bit"));
    let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
    // RFC 6533 §3: utf-8 addresses in message/delivery-status use utf-8-addr-xtext.
    assert_eq!(
        field(&groups[1], "Final-Recipient"),
        Some("utf-8; b\\x{F6}b@b\\x{FC}cher.example")
    );
    assert_eq!(
        field(&groups[1], "Original-Recipient"),
        Some("utf-8; B\\x{F6}b@b\\x{FC}cher.example")
    );
    assert!(
        parts[0]
            .text_contents()
            .unwrap()
            .contains("<b\u{f6}b@b\u{fc}cher.example>")
    );
}

#[test]
fn a_message_over_the_limit_returns_its_headers_and_says_so() {
    let mut large = original();
    large.extend(b"0123456789abcdef0123456789abcdef\r\n".repeat(DEFAULT_RETURN_LIMIT / 34 + 1));
    let notice = build(&failure_request(), &large, &context()).unwrap();
    assert!(notice.data.len() < 16 * 1024);
    assert_wire_clean(&notice.data);
    let message = parse(&notice.data);
    let parts = top_parts(&message);
    assert_eq!(mime_type(parts[2]), "text/rfc822-headers");
    let text = parts[0].text_contents().unwrap();
    assert!(
        text.contains("larger than the 262144 octets a notice returns"),
        "{text}"
    );

    let mut small = context();
    small.return_limit = 100;
    let notice = build(&failure_request(), &original(), &small).unwrap();
    let message = parse(&notice.data);
    assert_eq!(mime_type(top_parts(&message)[2]), "text/rfc822-headers");
    assert!(raw_body(&notice.data, top_parts(&message)[2]).len() <= 102);
}

#[test]
fn malformed_originals_still_give_a_notice() {
    let junk: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let no_split = b"From: a@b\nthis is no header\n\x00\x01\x02\r\rend".to_vec();
    let bare = b"From: a@b\nSubject: bare LFs\n\nbody\nmore\n".to_vec();
    let long_line = format!("From: a@b\r\n\r\n{}\r\n", "x".repeat(5000)).into_bytes();
    for original in [junk, no_split, bare, long_line, Vec::new()] {
        for ret in [None, Some(Ret::Full), Some(Ret::Headers)] {
            let mut request = failure_request();
            request.ret = ret;
            let notice = build(&request, &original, &context()).unwrap();
            assert_wire_clean(&notice.data);
            let message = parse(&notice.data);
            let parts = top_parts(&message);
            assert!((2..=3).contains(&parts.len()));
            assert_eq!(mime_type(parts[1]), "message/delivery-status");
        }
    }
}

#[test]
fn hostile_values_cannot_inject_lines() {
    let mut bob = failed(
        "bob@example.org\r\nBcc: victim@example.com",
        reply(
            550,
            (5, 1, 1),
            &[
                "x\r\n\r\nFinal-Recipient: rfc822; forged@example.com",
                "Action: delivered",
            ],
        ),
    );
    if let Some(failure) = bob.failure.as_mut() {
        failure.remote_mta = Some("mx\r\nStatus: 2.0.0".to_owned());
    }
    let mut request = request(NoticeKind::Failure, vec![bob]);
    request.envid = Some("id\r\nReporting-MTA: dns; forged".to_owned());
    let mut context = context();
    context.postmaster_name = "Postmaster\r\nBcc: victim@example.com".to_owned();
    let notice = build(&request, &original(), &context).unwrap();
    assert_wire_clean(&notice.data);
    let message = parse(&notice.data);
    assert!(message.header("Bcc").is_none());
    let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
    assert_eq!(groups.len(), 2);
    assert_eq!(
        field(&groups[0], "Reporting-MTA"),
        Some("dns; mx.sluice.test")
    );
    assert_eq!(field(&groups[1], "Action"), Some("failed"));
    assert_eq!(field(&groups[1], "Status"), Some("5.1.1"));
    assert!(
        field(&groups[1], "Final-Recipient")
            .unwrap()
            .starts_with("utf-8; bob@example.org\\x{D}\\x{A}Bcc:")
    );
    let text = top_parts(&message)[0].text_contents().unwrap();
    assert!(!text.contains("\nFinal-Recipient"));

    let mut bad_notify = request.clone();
    bad_notify.notify = "alice@sluice.test\r\nBcc: x@y".to_owned();
    assert_eq!(
        build(&bad_notify, b"", &context),
        Err(NoticeError::InvalidRecipient)
    );
}

#[test]
fn caller_mistakes_are_errors() {
    let empty = request(NoticeKind::Failure, Vec::new());
    assert_eq!(
        build(&empty, &original(), &context()),
        Err(NoticeError::NoRecipients)
    );
    let mut null = failure_request();
    null.notify = String::new();
    assert_eq!(
        build(&null, &original(), &context()),
        Err(NoticeError::InvalidRecipient)
    );
    let mut bad = context();
    bad.message_id = "missing-at".to_owned();
    assert_eq!(
        build(&failure_request(), &original(), &bad),
        Err(NoticeError::InvalidMessageId)
    );
    let mut bad = context();
    bad.reporting_mta = String::new();
    assert_eq!(
        build(&failure_request(), &original(), &bad),
        Err(NoticeError::InvalidReportingMta)
    );
}

#[test]
fn local_diagnostics_read_as_such() {
    let mut bob = failed("bob@example.org", reply(550, (5, 1, 1), &["x"]));
    if let Some(failure) = bob.failure.as_mut() {
        failure.remote_mta = None;
        failure.diagnostic =
            Diagnostic::Local("no MX or address record for example.org".to_owned());
    }
    let notice = build(
        &request(NoticeKind::Failure, vec![bob]),
        &original(),
        &context(),
    )
    .unwrap();
    let message = parse(&notice.data);
    let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
    assert_eq!(
        field(&groups[1], "Diagnostic-Code"),
        Some("X-Sluice; no MX or address record for example.org")
    );
    assert_eq!(field(&groups[1], "Remote-MTA"), None);
}

#[test]
fn an_original_holding_the_boundary_gets_another() {
    let mut original = original();
    original.extend_from_slice(b"--sluice-report-0000000000\r\n--sluice-report-0000000000--\r\n");
    let notice = build(&failure_request(), &original, &context()).unwrap();
    let text = String::from_utf8(notice.data.clone()).unwrap();
    assert!(text.contains("boundary=\"sluice-report-0000000001\""));
    let message = parse(&notice.data);
    let parts = top_parts(&message);
    assert_eq!(parts.len(), 3);
    assert!(raw_body(&notice.data, parts[2]).starts_with(&original));
}
