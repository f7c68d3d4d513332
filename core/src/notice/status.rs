//! The machine-readable second part, `message/delivery-status` (RFC 3464 §2.1): one
//! group of per-message fields, then one group per recipient, each group ended by an
//! empty line, every value cleaned to one US-ASCII line and folded.

use super::field::{ascii_text, bounded, folded_field, original_recipient, typed_address};
use super::request::{NoticeAction, NoticeRecipient, NoticeRequest};
use crate::delivery::Diagnostic;
use crate::smtp::received::rfc5322_date;
use crate::smtp::reply::{EnhancedStatus, Reply};

/// The most octets of a diagnostic kept (a remote reply may run to many lines);
/// longer ones are cut and end in `...`.
pub(super) const LONGEST_DIAGNOSTIC: usize = 2048;

/// The most octets of an ENVID kept: RFC 3461 §4.4 allows 100 in xtext form, so a
/// longer value did not come through our parser; it is cut rather than refused.
const LONGEST_ENVID: usize = 100;

/// The most octets kept of a remote MTA's name (RFC 1035 §2.3.4).
const LONGEST_HOST: usize = 255;

/// The Action: keyword (RFC 3464 §2.3.3).
pub(super) fn action_keyword(action: NoticeAction) -> &'static str {
    match action {
        NoticeAction::Failed => "failed",
        NoticeAction::Delayed => "delayed",
        NoticeAction::Delivered => "delivered",
        NoticeAction::Relayed => "relayed",
    }
}

/// The recipient's Status: (RFC 3464 §2.3.4), consistent with its action whatever
/// the request says: 2.0.0 for delivered and relayed; for a failure the reported
/// status if it is a failure status (4.x.x stays, as when a retry schedule expires
/// on a temporary error), else 5.0.0; for a delay the reported 4.x.x, else 4.0.0.
pub(super) fn status_of(recipient: &NoticeRecipient) -> EnhancedStatus {
    let reported = recipient.failure.as_ref().map(|failure| failure.status);
    match recipient.action {
        NoticeAction::Delivered | NoticeAction::Relayed => EnhancedStatus::new(2, 0, 0),
        NoticeAction::Failed => reported
            .filter(|status| matches!(status.class, 4 | 5))
            .unwrap_or(EnhancedStatus::new(5, 0, 0)),
        NoticeAction::Delayed => reported
            .filter(|status| status.class == 4)
            .unwrap_or(EnhancedStatus::new(4, 0, 0)),
    }
}

/// A remote reply as one line: code, enhanced status, then the text of every line
/// joined by spaces (RFC 3464 §2.3.6 carries the reply; joining keeps the field one
/// logical line, which folding then splits for transport).
pub(super) fn reply_text(reply: &Reply) -> String {
    let mut text = reply.code.to_string();
    if let Some(status) = reply.status {
        text.push(' ');
        text.push_str(&status.to_string());
    }
    for line in &reply.lines {
        text.push(' ');
        text.push_str(line);
    }
    text
}

/// `Diagnostic-Code:` (RFC 3464 §2.3.6): `smtp; <reply>` for a remote reply; our own
/// explanation of a local failure under the private type `X-Sluice`, as §2.3.6
/// allows for types not registered with IANA.
fn diagnostic_code(diagnostic: &Diagnostic) -> String {
    let (diagnostic_type, text) = match diagnostic {
        Diagnostic::Reply(reply) => ("smtp", reply_text(reply)),
        Diagnostic::Local(text) => ("X-Sluice", text.clone()),
    };
    format!(
        "{diagnostic_type}; {}",
        bounded(&ascii_text(&text), LONGEST_DIAGNOSTIC)
    )
}

/// The queue id as an extension field value: only characters that cannot be misread.
fn queue_id_text(queue_id: &str) -> String {
    queue_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(LONGEST_HOST)
        .collect()
}

/// A host name for `Remote-MTA: dns; <host>`, cleaned and bounded; `None` if nothing
/// printable is left.
fn remote_mta_text(host: &str) -> Option<String> {
    let host = bounded(ascii_text(host).trim(), LONGEST_HOST);
    (!host.is_empty()).then_some(host)
}

fn per_message_fields(request: &NoticeRequest, reporting_mta: &str) -> String {
    let mut fields = String::new();
    if let Some(envid) = &request.envid {
        // RFC 3464 §2.2.1: the ENVID as the client gave it, decoded from xtext.
        let envid = bounded(&ascii_text(envid), LONGEST_ENVID);
        fields.push_str(&folded_field("Original-Envelope-Id", &envid));
    }
    fields.push_str(&folded_field(
        "Reporting-MTA",
        &format!("dns; {}", ascii_text(reporting_mta)),
    ));
    let queue_id = queue_id_text(&request.queue_id);
    if !queue_id.is_empty() {
        // An extension field (RFC 3464 §2.2 allows them after the standard ones) so
        // that a postmaster can find the message in our logs.
        fields.push_str(&folded_field("X-Sluice-Queue-Id", &queue_id));
    }
    fields.push_str(&folded_field(
        "Arrival-Date",
        &rfc5322_date(request.arrived_at, 0),
    ));
    fields
}

fn per_recipient_fields(recipient: &NoticeRecipient) -> String {
    let mut fields = String::new();
    if let Some(original) = &recipient.original_recipient {
        fields.push_str(&folded_field(
            "Original-Recipient",
            &original_recipient(&original.address_type, &original.address),
        ));
    }
    fields.push_str(&folded_field(
        "Final-Recipient",
        &typed_address(&recipient.final_recipient),
    ));
    fields.push_str(&folded_field("Action", action_keyword(recipient.action)));
    fields.push_str(&folded_field("Status", &status_of(recipient).to_string()));
    // Only a failed or delayed recipient has a remote MTA and a diagnostic to show: for
    // delivered and relayed ones the status says all (2.0.0).
    let failure = recipient.failure.as_ref().filter(|_| {
        matches!(
            recipient.action,
            NoticeAction::Failed | NoticeAction::Delayed
        )
    });
    let remote_mta = failure
        .and_then(|failure| failure.remote_mta.as_deref())
        .and_then(remote_mta_text);
    if let Some(host) = remote_mta {
        fields.push_str(&folded_field("Remote-MTA", &format!("dns; {host}")));
    }
    if let Some(failure) = failure {
        fields.push_str(&folded_field(
            "Diagnostic-Code",
            &diagnostic_code(&failure.diagnostic),
        ));
    }
    if let Some(at) = recipient.last_attempt_at {
        fields.push_str(&folded_field("Last-Attempt-Date", &rfc5322_date(at, 0)));
    }
    // RFC 3464 §2.3.9: only for a delayed recipient.
    let retry_until = recipient
        .will_retry_until
        .filter(|_| recipient.action == NoticeAction::Delayed);
    if let Some(until) = retry_until {
        fields.push_str(&folded_field("Will-Retry-Until", &rfc5322_date(until, 0)));
    }
    fields
}

/// The whole `message/delivery-status` body: US-ASCII, CRLF line endings.
pub(super) fn delivery_status(request: &NoticeRequest, reporting_mta: &str) -> String {
    let mut body = per_message_fields(request, reporting_mta);
    for recipient in &request.recipients {
        body.push_str("\r\n");
        body.push_str(&per_recipient_fields(recipient));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Failure;
    use crate::notice::request::NoticeKind;
    use crate::smtp::params::OriginalRecipient;

    fn failed(address: &str, diagnostic: Diagnostic) -> NoticeRecipient {
        NoticeRecipient {
            final_recipient: address.to_owned(),
            original_recipient: None,
            action: NoticeAction::Failed,
            failure: Some(Failure {
                status: EnhancedStatus::new(5, 1, 1),
                remote_mta: Some("mx.example.org".to_owned()),
                diagnostic,
            }),
            last_attempt_at: Some(1_700_000_000),
            will_retry_until: None,
        }
    }

    fn request(recipients: Vec<NoticeRecipient>) -> NoticeRequest {
        NoticeRequest {
            kind: NoticeKind::Failure,
            queue_id: "Q1".to_owned(),
            notify: "alice@sluice.test".to_owned(),
            envid: Some("env-1".to_owned()),
            ret: None,
            arrived_at: 1_699_990_000,
            recipients,
        }
    }

    #[test]
    fn a_failure_in_full() {
        let mut recipient = failed(
            "bob@example.org",
            Diagnostic::Reply(Reply {
                code: crate::smtp::reply::ReplyCode(550),
                status: Some(EnhancedStatus::new(5, 1, 1)),
                lines: vec!["No such user".to_owned(), "try again never".to_owned()],
            }),
        );
        recipient.original_recipient = Some(OriginalRecipient {
            address_type: "rfc822".to_owned(),
            address: "Bob@example.org".to_owned(),
        });
        let body = delivery_status(&request(vec![recipient]), "mx.sluice.test");
        assert_eq!(
            body,
            "Original-Envelope-Id: env-1\r\n\
             Reporting-MTA: dns; mx.sluice.test\r\n\
             X-Sluice-Queue-Id: Q1\r\n\
             Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\r\n\
             \r\n\
             Original-Recipient: rfc822; Bob@example.org\r\n\
             Final-Recipient: rfc822; bob@example.org\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx.example.org\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 No such user try again never\r\n\
             Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        );
    }

    #[test]
    fn local_failures_use_a_private_type() {
        let recipient = failed(
            "bob@example.org",
            Diagnostic::Local("connect to mx.example.org: refused".to_owned()),
        );
        let body = delivery_status(&request(vec![recipient]), "mx.sluice.test");
        assert!(body.contains("Diagnostic-Code: X-Sluice; connect to mx.example.org: refused\r\n"));
    }

    #[test]
    fn statuses_follow_the_action() {
        let mut recipient = failed("b@c", Diagnostic::Local(String::new()));
        assert_eq!(status_of(&recipient), EnhancedStatus::new(5, 1, 1));
        recipient.action = NoticeAction::Delayed;
        assert_eq!(status_of(&recipient), EnhancedStatus::new(4, 0, 0));
        recipient.action = NoticeAction::Relayed;
        assert_eq!(status_of(&recipient), EnhancedStatus::new(2, 0, 0));
        recipient.action = NoticeAction::Failed;
        if let Some(failure) = recipient.failure.as_mut() {
            failure.status = EnhancedStatus::new(4, 4, 7);
        }
        assert_eq!(status_of(&recipient), EnhancedStatus::new(4, 4, 7));
        recipient.failure = None;
        assert_eq!(status_of(&recipient), EnhancedStatus::new(5, 0, 0));
    }

    #[test]
    fn delays_say_until_when() {
        let mut recipient = failed("b@c", Diagnostic::Local("timeout".to_owned()));
        recipient.action = NoticeAction::Delayed;
        recipient.will_retry_until = Some(1_700_400_000);
        if let Some(failure) = recipient.failure.as_mut() {
            failure.status = EnhancedStatus::new(4, 4, 1);
        }
        let body = delivery_status(&request(vec![recipient]), "mx");
        assert!(body.contains("Status: 4.4.1\r\n"));
        assert!(body.contains("Will-Retry-Until: Sun, 19 Nov 2023 13:20:00 +0000\r\n"));
    }

    #[test]
    fn hostile_values_stay_inside_their_fields() {
        let mut recipient = failed(
            "b@c\r\nAction: delivered",
            Diagnostic::Reply(Reply {
                code: crate::smtp::reply::ReplyCode(550),
                status: None,
                lines: vec!["x\r\n\r\nFinal-Recipient: rfc822; evil@x".to_owned()],
            }),
        );
        if let Some(failure) = recipient.failure.as_mut() {
            failure.remote_mta = Some("mx\r\nStatus: 2.0.0".to_owned());
        }
        let mut request = request(vec![recipient]);
        request.envid = Some("e\r\nReporting-MTA: dns; evil".to_owned());
        request.queue_id = "Q\r\n1".to_owned();
        let body = delivery_status(&request, "mx.sluice.test");
        let names: Vec<&str> = body
            .split("\r\n")
            .filter(|line| !line.is_empty() && !line.starts_with(' '))
            .filter_map(|line| line.split_once(':').map(|(name, _)| name))
            .collect();
        assert_eq!(
            names,
            [
                "Original-Envelope-Id",
                "Reporting-MTA",
                "X-Sluice-Queue-Id",
                "Arrival-Date",
                "Final-Recipient",
                "Action",
                "Status",
                "Remote-MTA",
                "Diagnostic-Code",
                "Last-Attempt-Date",
            ]
        );
        assert_eq!(body.matches("\r\n\r\n").count(), 1);
    }

    #[test]
    fn long_diagnostics_are_bounded_and_folded() {
        let recipient = failed(
            "b@c",
            Diagnostic::Reply(Reply {
                code: crate::smtp::reply::ReplyCode(550),
                status: None,
                lines: vec!["word ".repeat(2000)],
            }),
        );
        let body = delivery_status(&request(vec![recipient]), "mx");
        let diagnostic: String = body
            .split("Diagnostic-Code:")
            .nth(1)
            .and_then(|rest| rest.split("\r\nLast").next())
            .unwrap()
            .replace("\r\n", "");
        assert!(diagnostic.len() <= LONGEST_DIAGNOSTIC + 100);
        assert!(diagnostic.ends_with("..."));
        assert!(body.split("\r\n").all(|line| line.len() <= 78));
    }
}
