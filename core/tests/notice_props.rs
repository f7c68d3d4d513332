//! Property tests of the notice builder with random requests, remote replies, ENVIDs
//! and original messages (well-formed, malformed and binary): it never panics, the
//! notice always parses as an RFC 3464 report, every recipient appears exactly once,
//! the wire form has no bare CR or LF and no line over 998 octets, and what is
//! returned follows RET and stays within the limit.

#![allow(clippy::unwrap_used)]

mod notice_support;

use notice_support::*;
use proptest::collection::vec;
use proptest::prelude::*;
use sluice_core::delivery::{Diagnostic, Failure};
use sluice_core::notice::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest, build};
use sluice_core::smtp::params::{OriginalRecipient, Ret};
use sluice_core::smtp::reply::{EnhancedStatus, Reply, ReplyCode};

fn kind() -> impl Strategy<Value = NoticeKind> {
    prop_oneof![
        Just(NoticeKind::Failure),
        Just(NoticeKind::Delay),
        Just(NoticeKind::Success)
    ]
}

fn action() -> impl Strategy<Value = NoticeAction> {
    prop_oneof![
        Just(NoticeAction::Failed),
        Just(NoticeAction::Delayed),
        Just(NoticeAction::Delivered),
        Just(NoticeAction::Relayed)
    ]
}

/// Text a remote server or a client might send: plain words, Unicode, controls.
fn outside_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,120}",
        any::<String>(),
        "([a-z]{1,12} ){0,200}",
        Just("x\r\n\r\nFinal-Recipient: rfc822; forged@example.com".to_owned()),
    ]
}

fn diagnostic() -> impl Strategy<Value = Diagnostic> {
    prop_oneof![
        (
            200u16..600,
            proptest::option::of((2u8..6, 0u16..1000, 0u16..1000)),
            vec(outside_text(), 1..5),
        )
            .prop_map(|(code, status, lines)| {
                Diagnostic::Reply(Reply {
                    code: ReplyCode(code),
                    status: status.map(|(class, subject, detail)| {
                        EnhancedStatus::new(class, subject, detail)
                    }),
                    lines,
                })
            }),
        outside_text().prop_map(Diagnostic::Local),
    ]
}

fn failure() -> impl Strategy<Value = Failure> {
    (
        (2u8..6, 0u16..1000, 0u16..1000),
        proptest::option::of(outside_text()),
        diagnostic(),
    )
        .prop_map(
            |((class, subject, detail), remote_mta, diagnostic)| Failure {
                status: EnhancedStatus::new(class, subject, detail),
                remote_mta,
                diagnostic,
            },
        )
}

/// A recipient whose address starts `r<index>.`, so that the checks can find it
/// whatever the random rest of the address turns into.
fn recipient(index: usize) -> impl Strategy<Value = NoticeRecipient> {
    (
        prop_oneof!["[a-z0-9.+-]{0,20}", any::<String>()],
        proptest::option::of((
            prop_oneof![Just("rfc822"), Just("utf-8"), Just("x400")],
            outside_text(),
        )),
        action(),
        proptest::option::of(failure()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            move |(rest, original, action, failure, last_attempt_at, will_retry_until)| {
                NoticeRecipient {
                    final_recipient: format!("r{index}.{rest}@example.org"),
                    original_recipient: original.map(|(address_type, address)| OriginalRecipient {
                        address_type: address_type.to_owned(),
                        address,
                    }),
                    action,
                    failure,
                    last_attempt_at,
                    will_retry_until,
                }
            },
        )
}

fn recipients() -> impl Strategy<Value = Vec<NoticeRecipient>> {
    (1usize..6).prop_flat_map(|count| (0..count).map(recipient).collect::<Vec<_>>())
}

fn request() -> impl Strategy<Value = NoticeRequest> {
    (
        kind(),
        proptest::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Headers)]),
        proptest::option::of(outside_text()),
        prop_oneof![
            "[a-z]{1,10}@sluice\\.test",
            "[a-z\u{e0}-\u{ff}]{1,10}@sluice\\.test"
        ],
        any::<i64>(),
        outside_text(),
        recipients(),
    )
        .prop_map(
            |(kind, ret, envid, notify, arrived_at, queue_id, recipients)| NoticeRequest {
                kind,
                queue_id,
                notify,
                envid,
                ret,
                arrived_at,
                recipients,
            },
        )
}

/// Original messages: well-formed ones with random fields and bodies, bare line
/// endings, and arbitrary bytes.
fn original_message() -> impl Strategy<Value = Vec<u8>> {
    let line_ending = prop_oneof![Just("\r\n"), Just("\n"), Just("\r")];
    let structured = (
        vec("[A-Za-z-]{1,15}: [ -~\u{e9}]{0,60}", 0..12),
        vec(
            prop_oneof!["[ -~]{0,100}", "[ -~]{990,1010}", any::<String>()],
            0..20,
        ),
        line_ending,
    )
        .prop_map(|(headers, body, ending)| {
            let mut message = String::new();
            for line in headers.iter().chain([&String::new()]).chain(&body) {
                message.push_str(line);
                message.push_str(ending);
            }
            message.into_bytes()
        });
    prop_oneof![structured, vec(any::<u8>(), 0..3000)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_notice_is_a_clean_parseable_report(
        request in request(),
        original in original_message(),
        return_limit in prop_oneof![0usize..4000, Just(256 * 1024)],
    ) {
        let mut context = context();
        context.return_limit = return_limit;
        let notice = build(&request, &original, &context).unwrap();
        prop_assert_eq!(&notice.recipient, &request.notify);
        prop_assert_eq!(notice.smtputf8, !request.notify.is_ascii());
        prop_assert_eq!(notice.eight_bit, !notice.data.is_ascii());
        assert_wire_clean(&notice.data);

        let message = parse(&notice.data);
        let content_type = mail_parser::MimeHeaders::content_type(&message).unwrap();
        prop_assert_eq!(content_type.subtype(), Some("report"));
        prop_assert_eq!(content_type.attribute("report-type"), Some("delivery-status"));
        let parts = top_parts(&message);
        prop_assert!((2..=3).contains(&parts.len()));
        prop_assert_eq!(mime_type(parts[0]), "text/plain");
        prop_assert_eq!(mime_type(parts[1]), "message/delivery-status");

        // One per-message group, then one group per recipient, in order.
        let groups = dsn_groups(&delivery_status_text(&notice.data, &message));
        prop_assert_eq!(groups.len(), request.recipients.len() + 1);
        prop_assert!(field(&groups[0], "Reporting-MTA").is_some());
        prop_assert!(field(&groups[0], "Arrival-Date").is_some());
        let status = delivery_status_text(&notice.data, &message);
        prop_assert!(status.is_ascii());
        for (index, (recipient, group)) in request.recipients.iter().zip(&groups[1..]).enumerate() {
            let final_recipient = field(group, "Final-Recipient").unwrap();
            let marker = format!("r{index}.");
            prop_assert!(
                final_recipient.starts_with(&format!("rfc822; {marker}"))
                    || final_recipient.starts_with(&format!("utf-8; {marker}")),
                "{}", final_recipient
            );
            let mentions = groups[1..]
                .iter()
                .filter(|group| {
                    field(group, "Final-Recipient")
                        .and_then(|value| value.split_once("; "))
                        .is_some_and(|(_, address)| address.starts_with(&marker))
                })
                .count();
            prop_assert_eq!(mentions, 1);
            let action = field(group, "Action").unwrap();
            let expected_class = match recipient.action {
                NoticeAction::Failed => {
                    prop_assert_eq!(action, "failed");
                    "45"
                }
                NoticeAction::Delayed => {
                    prop_assert_eq!(action, "delayed");
                    "4"
                }
                NoticeAction::Delivered => {
                    prop_assert_eq!(action, "delivered");
                    "2"
                }
                NoticeAction::Relayed => {
                    prop_assert_eq!(action, "relayed");
                    "2"
                }
            };
            let status = field(group, "Status").unwrap();
            prop_assert!(expected_class.contains(&status[..1]), "{} for {:?}", status, recipient.action);
            prop_assert_eq!(
                field(group, "Will-Retry-Until").is_some(),
                recipient.action == NoticeAction::Delayed && recipient.will_retry_until.is_some()
            );
        }

        // The returned content: never more than asked, never over the limit.
        if let Some(returned) = parts.get(2) {
            let returned_type = mime_type(returned);
            let whole = returned_type == "message/rfc822" || returned_type == "message/global";
            if request.ret == Some(Ret::Headers)
                || request.ret.is_none() && request.kind != NoticeKind::Failure
            {
                prop_assert!(!whole, "{}", returned_type);
            }
            let body = raw_body(&notice.data, returned);
            prop_assert!(body.len() <= return_limit + 2);
        }
    }

    #[test]
    fn small_well_formed_failures_return_the_whole_message(
        body in vec("[ -~]{0,80}", 0..20),
        subject in "[ -~]{0,60}",
    ) {
        let mut original = format!("From: a@sluice.test\r\nSubject: {subject}\r\n\r\n");
        for line in &body {
            original.push_str(line);
            original.push_str("\r\n");
        }
        let request = notice_support::request(
            NoticeKind::Failure,
            vec![failed("bob@example.org", reply(550, (5, 1, 1), &["unknown"]))],
        );
        let notice = build(&request, original.as_bytes(), &context()).unwrap();
        let message = parse(&notice.data);
        let parts = top_parts(&message);
        prop_assert_eq!(mime_type(parts[2]), "message/rfc822");
        prop_assert!(raw_body(&notice.data, parts[2]).starts_with(original.as_bytes()));
    }
}
