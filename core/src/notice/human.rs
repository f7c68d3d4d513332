//! The human-readable first part of a notice (RFC 3464 §2, RFC 6522 §3): what
//! happened to each recipient in plain words, with the remote server's reply, and what
//! of the original message follows.

use super::field::{bounded, display_text};
use super::original::{Returned, Shape, Shortfall};
use super::request::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest};
use super::status::{LONGEST_DIAGNOSTIC, reply_text, status_of};
use crate::delivery::Diagnostic;
use crate::smtp::received::rfc5322_date;

/// The Subject: of each kind of notice.
pub(super) fn subject(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Failure => "Undelivered Mail Returned to Sender",
        NoticeKind::Delay => "Delayed Mail (still being retried)",
        NoticeKind::Success => "Successful Mail Delivery Report",
    }
}

fn opening(request: &NoticeRequest) -> String {
    match request.kind {
        NoticeKind::Failure => {
            "Your message could not be delivered to one or more of its recipients.\n\
             The mail system has given up on them; the reasons follow.\n"
                .to_owned()
        }
        NoticeKind::Delay => {
            // The latest of the recipients' deadlines: until then the queue keeps trying.
            let until = request
                .recipients
                .iter()
                .filter_map(|recipient| recipient.will_retry_until)
                .max();
            let until = match until {
                Some(until) => format!("until {}", rfc5322_date(until, 0)),
                None => "for a while".to_owned(),
            };
            format!(
                "Your message has not been delivered yet to one or more of its\n\
                 recipients. The mail system will keep trying {until};\n\
                 you do not need to send it again. If it still cannot be delivered\n\
                 by then, you will be told.\n"
            )
        }
        NoticeKind::Success => {
            "Your message was delivered, or passed on, to the recipients below.\n".to_owned()
        }
    }
}

/// Where the explanation wraps its indented detail lines, so that a typical reply
/// stays readable and the part can travel as 7bit text rather than quoted-printable.
const WRAP_AT: usize = 76;

/// `text` as indented lines of at most [`WRAP_AT`] characters, broken at spaces (a
/// longer word stands alone on its line; the MIME writer's encoding copes with it).
fn wrapped(indent: &str, text: &str) -> String {
    let mut lines = String::new();
    let mut line = String::from(indent);
    for word in text.split(' ').filter(|word| !word.is_empty()) {
        let has_words = line.len() > indent.len();
        if has_words && line.chars().count() + 1 + word.chars().count() > WRAP_AT {
            lines.push_str(&line);
            lines.push('\n');
            line = String::from(indent);
        } else if has_words {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push_str(&line);
    lines.push('\n');
    lines
}

/// One recipient's paragraph: the address and what happened, then the detail.
fn recipient_paragraph(recipient: &NoticeRecipient) -> String {
    let address = display_text(&recipient.final_recipient);
    let status = status_of(recipient);
    let mut paragraph = match recipient.action {
        NoticeAction::Failed => format!("<{address}>: delivery failed (status {status}).\n"),
        NoticeAction::Delayed => {
            let until = recipient
                .will_retry_until
                .map(|until| format!(", retrying until {}", rfc5322_date(until, 0)))
                .unwrap_or_default();
            format!("<{address}>: not delivered yet (status {status}){until}.\n")
        }
        NoticeAction::Delivered => format!("<{address}>: delivered.\n"),
        NoticeAction::Relayed => format!(
            "<{address}>: relayed to a server that does not send delivery\n    \
             notifications; no further report will follow.\n"
        ),
    };
    let failure = recipient.failure.as_ref().filter(|_| {
        matches!(
            recipient.action,
            NoticeAction::Failed | NoticeAction::Delayed
        )
    });
    if let Some(failure) = failure {
        match &failure.diagnostic {
            Diagnostic::Reply(reply) => {
                let server = failure
                    .remote_mta
                    .as_deref()
                    .map(|host| format!("The server {} answered:", display_text(host)))
                    .unwrap_or_else(|| "The remote server answered:".to_owned());
                paragraph.push_str(&wrapped("    ", &bounded(&server, 300)));
                paragraph.push_str(&wrapped(
                    "    ",
                    &bounded(&display_text(&reply_text(reply)), LONGEST_DIAGNOSTIC),
                ));
            }
            Diagnostic::Local(text) => {
                paragraph.push_str(&wrapped(
                    "    ",
                    &bounded(&display_text(text), LONGEST_DIAGNOSTIC),
                ));
            }
        }
    }
    paragraph
}

/// The sentence on the third part.
fn returned_note(returned: &Returned, return_limit: usize) -> String {
    match (returned.shape, returned.shortfall) {
        (Shape::Message, _) => "Your original message is attached.".to_owned(),
        (Shape::Headers, None) => {
            "The header section of your original message is attached.".to_owned()
        }
        (Shape::Headers, Some(Shortfall::TooLarge)) => format!(
            "Only the header section of your original message is attached: the\n\
             whole message is larger than the {return_limit} octets a notice returns."
        ),
        (Shape::Headers, Some(Shortfall::NotIntact)) => {
            "Only the header section of your original message is attached: its\n\
             body holds data (NUL octets or overlong lines) a notice cannot carry."
                .to_owned()
        }
        (Shape::Headers, Some(Shortfall::HeadersTruncated)) => format!(
            "The start of the header section of your original message is attached:\n\
             the section is larger than the {return_limit} octets a notice returns."
        ),
        (Shape::Headers, Some(Shortfall::NoHeaders))
        | (Shape::Nothing, None | Some(Shortfall::NoHeaders | Shortfall::NotIntact)) => {
            "Nothing of your original message is attached: no header section\n\
             could be read in it."
                .to_owned()
        }
        (Shape::Nothing, Some(Shortfall::TooLarge | Shortfall::HeadersTruncated)) => format!(
            "Nothing of your original message is attached: even its first\n\
             header line is larger than the {return_limit} octets a notice returns."
        ),
    }
}

/// The whole text, lines ending in LF (the MIME writer turns them into CRLF).
pub(super) fn explanation(
    request: &NoticeRequest,
    reporting_mta: &str,
    returned: &Returned,
    return_limit: usize,
) -> String {
    let mut text = format!(
        "This is the mail system at {}.\n\n",
        display_text(reporting_mta)
    );
    text.push_str(&opening(request));
    text.push('\n');
    for recipient in &request.recipients {
        text.push_str(&recipient_paragraph(recipient));
        text.push('\n');
    }
    text.push_str(&format!(
        "The message arrived on {} (queue id {}).\n",
        rfc5322_date(request.arrived_at, 0),
        bounded(&display_text(&request.queue_id), 100)
    ));
    text.push_str(&returned_note(returned, return_limit));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Failure;
    use crate::smtp::reply::{EnhancedStatus, Reply};

    fn returned(shape: Shape, shortfall: Option<Shortfall>) -> Returned {
        Returned {
            shape,
            data: Vec::new(),
            global: false,
            eight_bit: false,
            shortfall,
        }
    }

    fn request(kind: NoticeKind, recipients: Vec<NoticeRecipient>) -> NoticeRequest {
        NoticeRequest {
            kind,
            queue_id: "Q1".to_owned(),
            notify: "alice@sluice.test".to_owned(),
            envid: None,
            ret: None,
            arrived_at: 1_700_000_000,
            recipients,
        }
    }

    fn recipient(action: NoticeAction, diagnostic: Option<Diagnostic>) -> NoticeRecipient {
        NoticeRecipient {
            final_recipient: "bob@example.org".to_owned(),
            original_recipient: None,
            action,
            failure: diagnostic.map(|diagnostic| Failure {
                status: EnhancedStatus::new(5, 1, 1),
                remote_mta: Some("mx.example.org".to_owned()),
                diagnostic,
            }),
            last_attempt_at: None,
            will_retry_until: Some(1_700_400_000),
        }
    }

    #[test]
    fn details_wrap_at_spaces() {
        assert_eq!(wrapped("  ", "a b"), "  a b\n");
        let text = "word ".repeat(40);
        let lines = wrapped("    ", &text);
        assert!(lines.lines().count() > 1);
        for line in lines.lines() {
            assert!(
                line.len() <= WRAP_AT && line.starts_with("    word"),
                "{line:?}"
            );
        }
        let long = "x".repeat(100);
        assert_eq!(
            wrapped("  ", &format!("a {long} b")),
            format!("  a\n  {long}\n  b\n")
        );
        assert_eq!(wrapped("  ", ""), "  \n");
    }

    #[test]
    fn a_failure_quotes_the_reply() {
        let reply = Reply::new(550, EnhancedStatus::new(5, 1, 1), "No such user\r\nX: y");
        let request = request(
            NoticeKind::Failure,
            vec![recipient(
                NoticeAction::Failed,
                Some(Diagnostic::Reply(reply)),
            )],
        );
        let text = explanation(
            &request,
            "mx.sluice.test",
            &returned(Shape::Message, None),
            1,
        );
        assert!(text.starts_with("This is the mail system at mx.sluice.test.\n"));
        assert!(text.contains("<bob@example.org>: delivery failed (status 5.1.1).\n"));
        assert!(text.contains("    The server mx.example.org answered:\n"));
        assert!(text.contains("    550 5.1.1 No such user X: y\n"));
        assert!(text.contains("queue id Q1"));
        assert!(text.ends_with("Your original message is attached.\n"));
    }

    #[test]
    fn a_delay_says_until_when() {
        let local = Diagnostic::Local("connection timed out".to_owned());
        let mut delayed = recipient(NoticeAction::Delayed, Some(local));
        if let Some(failure) = delayed.failure.as_mut() {
            failure.status = EnhancedStatus::new(4, 4, 1);
        }
        let request = request(NoticeKind::Delay, vec![delayed]);
        let text = explanation(&request, "mx", &returned(Shape::Headers, None), 1);
        assert!(text.contains("keep trying until Sun, 19 Nov 2023 13:20:00 +0000;"));
        assert!(text.contains("not delivered yet (status 4.4.1), retrying until Sun, 19 Nov"));
        assert!(text.contains("    connection timed out\n"));
        assert!(text.contains("The header section of your original message is attached."));
    }

    #[test]
    fn successes_say_delivered_or_relayed() {
        let request = request(
            NoticeKind::Success,
            vec![
                recipient(NoticeAction::Delivered, None),
                recipient(NoticeAction::Relayed, None),
            ],
        );
        let text = explanation(&request, "mx", &returned(Shape::Headers, None), 1);
        assert!(text.contains("<bob@example.org>: delivered.\n"));
        assert!(text.contains("<bob@example.org>: relayed to a server"));
        assert!(!text.contains("status"));
    }

    #[test]
    fn shortfalls_are_explained() {
        let request = request(NoticeKind::Failure, Vec::new());
        let notes = [
            (Shape::Headers, Some(Shortfall::TooLarge), "larger than"),
            (Shape::Headers, Some(Shortfall::NotIntact), "cannot carry"),
            (
                Shape::Headers,
                Some(Shortfall::HeadersTruncated),
                "The start of",
            ),
            (
                Shape::Nothing,
                Some(Shortfall::NoHeaders),
                "no header section",
            ),
            (
                Shape::Nothing,
                Some(Shortfall::HeadersTruncated),
                "even its first",
            ),
        ];
        for (shape, shortfall, expected) in notes {
            let text = explanation(&request, "mx", &returned(shape, shortfall), 1);
            assert!(text.contains(expected), "{text}");
        }
    }

    #[test]
    fn a_detail_line_of_exactly_76_characters_does_not_wrap() {
        let text = format!("{} {}", "a".repeat(10), "b".repeat(61));
        assert_eq!(wrapped("    ", &text), format!("    {text}\n"));
        // One character more and the second word goes to the next line.
        let text = format!("{} {}", "a".repeat(10), "b".repeat(62));
        assert_eq!(
            wrapped("    ", &text),
            format!("    {}\n    {}\n", "a".repeat(10), "b".repeat(62))
        );
    }
}
