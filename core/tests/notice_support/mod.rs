//! Shared by the notice tests: fixtures, the wire checks every notice must pass, and
//! a reader for `message/delivery-status` bodies (RFC 3464 §2.1) that is independent
//! of the builder's own code.

#![allow(dead_code, clippy::unwrap_used)]

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};
use sluice_core::delivery::{Diagnostic, Failure};
use sluice_core::notice::{
    NoticeAction, NoticeContext, NoticeKind, NoticeRecipient, NoticeRequest,
};
use sluice_core::smtp::reply::{EnhancedStatus, Reply, ReplyCode};

/// 2023-11-14T22:13:20Z.
pub(crate) const NOW: i64 = 1_700_000_000;

pub(crate) fn context() -> NoticeContext {
    NoticeContext::new("mx.sluice.test", "notice.Q1@mx.sluice.test", NOW)
}

pub(crate) fn original() -> Vec<u8> {
    b"Received: from client.example.org by mx.sluice.test; Tue, 14 Nov 2023 19:00:00 +0000\r\n\
      From: Alice <alice@sluice.test>\r\n\
      To: Bob <bob@example.org>\r\n\
      Subject: Quarterly figures\r\n\
      Message-ID: <orig.1@sluice.test>\r\n\
      Date: Tue, 14 Nov 2023 19:00:00 +0000\r\n\
      \r\n\
      Hello Bob,\r\n\
      the figures are attached.\r\n"
        .to_vec()
}

pub(crate) fn reply(code: u16, status: (u8, u16, u16), lines: &[&str]) -> Reply {
    Reply {
        code: ReplyCode(code),
        status: Some(EnhancedStatus::new(status.0, status.1, status.2)),
        lines: lines.iter().map(|line| (*line).to_owned()).collect(),
    }
}

pub(crate) fn failed(address: &str, reply: Reply) -> NoticeRecipient {
    NoticeRecipient {
        final_recipient: address.to_owned(),
        original_recipient: None,
        action: NoticeAction::Failed,
        failure: Some(Failure {
            status: reply.status.unwrap_or(EnhancedStatus::new(5, 0, 0)),
            remote_mta: Some("mx.example.org".to_owned()),
            diagnostic: Diagnostic::Reply(reply),
        }),
        last_attempt_at: Some(NOW - 60),
        will_retry_until: None,
    }
}

pub(crate) fn delayed(address: &str, until: i64) -> NoticeRecipient {
    NoticeRecipient {
        final_recipient: address.to_owned(),
        original_recipient: None,
        action: NoticeAction::Delayed,
        failure: Some(Failure {
            status: EnhancedStatus::new(4, 4, 1),
            remote_mta: None,
            diagnostic: Diagnostic::Local("connection to mx.example.org timed out".to_owned()),
        }),
        last_attempt_at: Some(NOW - 60),
        will_retry_until: Some(until),
    }
}

pub(crate) fn succeeded(address: &str, action: NoticeAction) -> NoticeRecipient {
    NoticeRecipient {
        final_recipient: address.to_owned(),
        original_recipient: None,
        action,
        failure: None,
        last_attempt_at: Some(NOW - 60),
        will_retry_until: None,
    }
}

pub(crate) fn request(kind: NoticeKind, recipients: Vec<NoticeRecipient>) -> NoticeRequest {
    NoticeRequest {
        kind,
        queue_id: "Q1".to_owned(),
        notify: "alice@sluice.test".to_owned(),
        envid: None,
        ret: None,
        arrived_at: NOW - 3600,
        recipients,
    }
}

/// RFC 5322 §2.1 and §2.3: every line ends in CRLF, no CR or LF stands alone, no line
/// is longer than 998 octets.
pub(crate) fn assert_wire_clean(data: &[u8]) {
    assert!(data.ends_with(b"\r\n"), "the message does not end in CRLF");
    for (index, &byte) in data.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(data.get(index + 1), Some(&b'\n'), "bare CR at {index}"),
            b'\n' => assert_eq!(
                data.get(index.wrapping_sub(1)),
                Some(&b'\r'),
                "bare LF at {index}"
            ),
            _ => {}
        }
    }
    for line in data.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "a line of {} octets", line.len());
    }
}

pub(crate) fn parse(data: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(data)
        .expect("the notice parses")
}

/// The children of the top-level multipart.
pub(crate) fn top_parts<'a>(message: &'a Message<'a>) -> Vec<&'a MessagePart<'a>> {
    message
        .root_part()
        .sub_parts()
        .expect("the notice is multipart")
        .iter()
        .map(|&id| message.part(id).expect("a listed part exists"))
        .collect()
}

pub(crate) fn mime_type(part: &MessagePart<'_>) -> String {
    let content_type = part.content_type().expect("every part has a Content-Type");
    format!(
        "{}/{}",
        content_type.ctype(),
        content_type.subtype().unwrap_or_default()
    )
    .to_ascii_lowercase()
}

/// The raw octets of a part's body, as they stand in the notice.
pub(crate) fn raw_body<'a>(data: &'a [u8], part: &MessagePart<'_>) -> &'a [u8] {
    &data[part.offset_body as usize..part.offset_end as usize]
}

/// One group of DSN fields: names (as written) and unfolded values, in order.
pub(crate) type Group = Vec<(String, String)>;

/// Reads a `message/delivery-status` body: groups separated by empty lines, fields
/// unfolded (RFC 3464 §2.1.1 follows RFC 822 header syntax).
pub(crate) fn dsn_groups(body: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut current: Group = Vec::new();
    for line in body.split("\r\n") {
        if line.is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            let (_, value) = current.last_mut().expect("a continuation follows a field");
            value.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a field has a colon");
            current.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// The value of `name` in a group, if it occurs exactly once.
pub(crate) fn field<'a>(group: &'a Group, name: &str) -> Option<&'a str> {
    let mut values = group
        .iter()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str());
    let value = values.next()?;
    assert!(values.next().is_none(), "{name} occurs more than once");
    Some(value)
}

/// The delivery-status part of a parsed notice, as text.
pub(crate) fn delivery_status_text(data: &[u8], message: &Message<'_>) -> String {
    let parts = top_parts(message);
    let status = parts
        .iter()
        .find(|part| mime_type(part) == "message/delivery-status")
        .expect("a delivery-status part");
    String::from_utf8(raw_body(data, status).to_vec()).expect("the status part is text")
}
