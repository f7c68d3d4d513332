//! Assembles a notice: the RFC 6522 `multipart/report` with the explanation, the
//! delivery status and the returned original, written with mail-builder under a
//! boundary chosen deterministically and proven absent from every part.
//!
//! mail-builder writes the header fields, the text part's transfer encoding and the
//! MIME structure. The `message/delivery-status` body and the returned original are
//! handed to it ready-made (with their transfer encoding declared, so it copies them
//! as they are): RFC 3464's field syntax is not a MIME header it knows, and
//! `message/rfc822` must not be base64- or quoted-printable-encoded (RFC 2046 §5.2.1).
//! It would also draw the boundary from the clock and a thread-local counter, which
//! core cannot allow, so the boundary is always given.

use super::context::{Notice, NoticeContext, NoticeError, is_usable_address};
use super::field::{bounded, display_text};
use super::human::{explanation, subject};
use super::original::{Wanted, prepare};
use super::request::{NoticeKind, NoticeRequest};
use super::status::delivery_status;
use crate::smtp::params::Ret;
use crate::smtp::received::rfc5322_date;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use std::collections::BTreeSet;

/// Every boundary starts so. It begins with a letter that is no hex digit and holds
/// neither `=` nor `+`/`/`, so quoted-printable or base64 encoding cannot create it:
/// only text that already held it can.
const BOUNDARY_PREFIX: &str = "sluice-report-";

/// The counter after the prefix, always this many digits wide so that no candidate
/// is a prefix of another.
const BOUNDARY_DIGITS: usize = 10;

/// The longest display name kept for From:.
const LONGEST_DISPLAY_NAME: usize = 100;

/// What to return of the original (RFC 3461 §4.3): RET=FULL the whole message,
/// RET=HDRS the headers; without RET, the whole message for a failure (the sender may
/// need to send it again) and only headers for a delay or success notice, where the
/// message is not lost.
fn wanted(request: &NoticeRequest) -> Wanted {
    match (request.ret, request.kind) {
        (Some(Ret::Full), _) | (None, NoticeKind::Failure) => Wanted::Message,
        (Some(Ret::Headers), _) | (None, NoticeKind::Delay | NoticeKind::Success) => {
            Wanted::Headers
        }
    }
}

/// Where `needle` starts in `haystack`, every occurrence.
fn occurrences<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(move |(_, window)| *window == needle)
        .map(|(start, _)| start)
}

/// The first boundary `sluice-report-NNNNNNNNNN` that none of `parts` contains. The
/// counters that do occur after the prefix are collected in one pass over each part;
/// as there are fewer of them than counters, the smallest free one always exists.
fn boundary(parts: &[&[u8]]) -> String {
    let prefix = BOUNDARY_PREFIX.as_bytes();
    let mut taken = BTreeSet::new();
    for part in parts {
        for start in occurrences(part, prefix) {
            let digits = part
                .get(start + prefix.len()..)
                .and_then(|rest| rest.get(..BOUNDARY_DIGITS))
                .filter(|digits| digits.iter().all(u8::is_ascii_digit));
            if let Some(digits) = digits {
                let counter = digits
                    .iter()
                    .fold(0u64, |value, &digit| value * 10 + u64::from(digit - b'0'));
                taken.insert(counter);
            }
        }
    }
    // Counters the parts hold, in order: the first gap is free.
    let free = (0u64..)
        .zip(taken.iter().chain(core::iter::once(&u64::MAX)))
        .find(|(candidate, used)| candidate != *used)
        .map_or(0, |(candidate, _)| candidate);
    format!("{BOUNDARY_PREFIX}{free:0width$}", width = BOUNDARY_DIGITS)
}

/// Builds the delivery status notification `request` asks for about `original` (the
/// message as queued, header section and body).
///
/// The result is an RFC 3464 report: `multipart/report; report-type=delivery-status`
/// with a text/plain explanation, a `message/delivery-status` part with one group of
/// fields per recipient in the request's order, and the original as RET and the
/// notice kind ask (see [`Notice`] for how to send it: always with a null
/// reverse-path). The output is deterministic: the same inputs give the same octets.
///
/// Nothing in `original`, in remote replies or in the request's addresses can make
/// this fail, panic or inject a line: errors are only for an empty request or an
/// unusable recipient or context.
pub fn build(
    request: &NoticeRequest,
    original: &[u8],
    context: &NoticeContext,
) -> Result<Notice, NoticeError> {
    if request.recipients.is_empty() {
        return Err(NoticeError::NoRecipients);
    }
    if !is_usable_address(&request.notify) {
        return Err(NoticeError::InvalidRecipient);
    }
    context.validate()?;

    let returned = prepare(original, wanted(request), context.return_limit);
    let text = explanation(
        request,
        &context.reporting_mta,
        &returned,
        context.return_limit,
    );
    let status = delivery_status(request, &context.reporting_mta);
    let boundary = boundary(&[text.as_bytes(), status.as_bytes(), &returned.data]);

    let mut parts = vec![
        MimePart::new("text/plain", text),
        MimePart::new(
            "message/delivery-status",
            BodyPart::Binary(status.into_bytes().into()),
        )
        .transfer_encoding("7bit"),
    ];
    if let Some(content_type) = returned.content_type() {
        let encoding = if returned.eight_bit { "8bit" } else { "7bit" };
        parts.push(
            MimePart::new(content_type, BodyPart::Binary(returned.data.into()))
                .transfer_encoding(encoding),
        );
    }
    let report = MimePart::new(
        ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status")
            .attribute("boundary", boundary),
        parts,
    );

    let postmaster_name = bounded(
        display_text(&context.postmaster_name).trim(),
        LONGEST_DISPLAY_NAME,
    );
    let from = if postmaster_name.is_empty() {
        Address::new_address(None::<&str>, context.postmaster_address.as_str())
    } else {
        Address::new_address(Some(postmaster_name), context.postmaster_address.as_str())
    };
    let mut data = Vec::new();
    MessageBuilder::new()
        .from(from)
        .to(Address::new_address(None::<&str>, request.notify.as_str()))
        .subject(subject(request.kind))
        .header("Date", Raw::new(rfc5322_date(context.date, 0)))
        .message_id(MessageId::new(context.message_id.as_str()))
        // RFC 3834 §5: an automatic response, which responders must not answer.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .serialize(&mut data);

    Ok(Notice {
        recipient: request.notify.clone(),
        // The returned original, or a UTF-8 To: field.
        eight_bit: !data.is_ascii(),
        data,
        smtputf8: !request.notify.is_ascii(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: NoticeKind, ret: Option<Ret>) -> NoticeRequest {
        NoticeRequest {
            kind,
            queue_id: "Q1".to_owned(),
            notify: "alice@sluice.test".to_owned(),
            envid: None,
            ret,
            arrived_at: 0,
            recipients: Vec::new(),
        }
    }

    #[test]
    fn ret_and_kind_choose_what_returns() {
        use NoticeKind::{Delay, Failure, Success};
        assert_eq!(wanted(&request(Failure, None)), Wanted::Message);
        assert_eq!(wanted(&request(Delay, None)), Wanted::Headers);
        assert_eq!(wanted(&request(Success, None)), Wanted::Headers);
        for kind in [Failure, Delay, Success] {
            assert_eq!(wanted(&request(kind, Some(Ret::Full))), Wanted::Message);
            assert_eq!(wanted(&request(kind, Some(Ret::Headers))), Wanted::Headers);
        }
    }

    #[test]
    fn the_boundary_avoids_the_parts() {
        assert_eq!(boundary(&[b"plain"]), "sluice-report-0000000000");
        let crafted = b"sluice-report-0000000000 sluice-report-0000000001 sluice-report-0000000003";
        assert_eq!(boundary(&[b"x", crafted]), "sluice-report-0000000002");
        // A shorter counter is no candidate, and does not take one.
        assert_eq!(boundary(&[b"sluice-report-1"]), "sluice-report-0000000000");
        assert_eq!(boundary(&[b"sluice-report-"]), "sluice-report-0000000000");
    }

    #[test]
    fn empty_requests_and_null_recipients_are_refused() {
        let context = NoticeContext::new("mx.sluice.test", "n@mx.sluice.test", 0);
        let empty = request(NoticeKind::Failure, None);
        assert_eq!(build(&empty, b"", &context), Err(NoticeError::NoRecipients));
    }

    #[test]
    fn a_counter_of_several_digits_is_read_whole() {
        // Counters 0 to 10 are taken: 10 must read as ten, not as a second 0.
        let taken: String = (0..=10)
            .map(|counter| format!("sluice-report-{counter:010} "))
            .collect();
        assert_eq!(boundary(&[taken.as_bytes()]), "sluice-report-0000000011");
    }
}
