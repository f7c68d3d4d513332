//! A delivery notice on its way to becoming a stored message: built by core from
//! the original, its one recipient (the original sender) checked as a recipient
//! from the null reverse-path with the rights of the mailer daemon, and placed by
//! the route it got. The driver only reads the original and runs the router.

use super::accepted::{IncomingMessage, PlacementPolicy, notice_message};
use crate::notice::{self, NoticeContext, NoticeError, NoticeRequest, notice_message_id};
use crate::router::{Refusal, Route, TemporaryReason};
use crate::smtp::address::{Domain, ForwardPath, Mailbox, ReversePath};
use crate::smtp::server::RecipientCheck;

/// How a node writes its notices, from its configuration. Every driver builds
/// notices through [`start_notice`] with these, so a notice reads the same whether
/// production or the simulator wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeSettings {
    /// Our name: the Reporting-MTA, the MAILER-DAEMON address and the Message-ID's
    /// domain.
    pub reporting_mta: Domain,
    /// The largest original returned whole; a larger one is returned as its header
    /// section only. Default [`notice::DEFAULT_RETURN_LIMIT`].
    pub return_limit: usize,
}

impl NoticeSettings {
    /// Settings with the default return limit.
    pub fn new(reporting_mta: Domain) -> NoticeSettings {
        NoticeSettings {
            reporting_mta,
            return_limit: notice::DEFAULT_RETURN_LIMIT,
        }
    }

    /// The builder's context for notice `notice_id` dated `now_ms` (milliseconds
    /// since the Unix epoch; the Date: field has whole seconds).
    pub fn context(&self, notice_id: &str, now_ms: i64) -> NoticeContext {
        let host = self.reporting_mta.as_str();
        let mut context = NoticeContext::new(
            host,
            notice_message_id(notice_id, host),
            now_ms.div_euclid(1000),
        );
        context.return_limit = self.return_limit;
        context
    }
}

/// A built notice waiting for its recipient's route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingNotice {
    pub notice_id: String,
    /// What to ask the router.
    pub check: RecipientCheck,
    received_at_ms: i64,
    data: Vec<u8>,
    smtputf8: bool,
}

/// The first step: a notice to route, or one that can go nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticeStart {
    Route(Box<PendingNotice>),
    /// The original's reverse-path is not an address a notice can be sent to.
    NotAnAddress {
        recipient: String,
    },
}

/// The second step: what to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticePlaced {
    /// Store this message (with the queue write that asked for it).
    Message(IncomingMessage),
    /// The recipient is refused for good, or the route leads nowhere: the notice is
    /// dropped, never answered with another notice.
    Dropped(Option<Refusal>),
    /// The recipient cannot be routed now: fail the write, so that the queue tries
    /// it again.
    NotNow(TemporaryReason),
}

/// Builds the notice for `request` about `original` (the stored message) as
/// `notice_id` (the notice's own queue id), dated `now_ms`, as `settings` say.
pub fn start_notice(
    request: &NoticeRequest,
    original: &[u8],
    settings: &NoticeSettings,
    notice_id: String,
    now_ms: i64,
) -> Result<NoticeStart, NoticeError> {
    let built = notice::build(request, original, &settings.context(&notice_id, now_ms))?;
    let Ok(mailbox) = Mailbox::parse(&built.recipient) else {
        return Ok(NoticeStart::NotAnAddress {
            recipient: built.recipient,
        });
    };
    let check = RecipientCheck {
        reverse_path: ReversePath::Null,
        recipient: ForwardPath::Mailbox(mailbox),
        // Notices may go to any domain: they answer mail we accepted.
        authenticated: Some(String::from("MAILER-DAEMON")),
    };
    Ok(NoticeStart::Route(Box::new(PendingNotice {
        notice_id,
        check,
        received_at_ms: now_ms,
        data: built.data,
        smtputf8: built.smtputf8,
    })))
}

impl PendingNotice {
    /// Places the notice by the route its recipient got.
    pub fn place(self, route: &Route, placement: &PlacementPolicy) -> NoticePlaced {
        match route {
            Route::Deliver { .. } => {}
            Route::Refused(refusal) => return NoticePlaced::Dropped(Some(*refusal)),
            Route::TemporaryFailure(reason) => return NoticePlaced::NotNow(*reason),
        }
        match notice_message(
            self.notice_id,
            &self.check.recipient,
            route,
            placement,
            self.received_at_ms,
            self.data,
            self.smtputf8,
        ) {
            Some(message) => NoticePlaced::Message(message),
            None => NoticePlaced::Dropped(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::DeliveryPolicy;
    use crate::notice::{NoticeAction, NoticeKind, NoticeRecipient};
    use crate::router::MailboxAccess;

    fn settings() -> NoticeSettings {
        NoticeSettings::new(Domain::parse("mx.here.test").expect("a domain"))
    }

    fn request(notify: &str) -> NoticeRequest {
        NoticeRequest {
            kind: NoticeKind::Failure,
            queue_id: "Q1".to_owned(),
            notify: notify.to_owned(),
            envid: None,
            ret: None,
            arrived_at: 0,
            recipients: vec![NoticeRecipient {
                final_recipient: "gone@far.test".to_owned(),
                original_recipient: None,
                action: NoticeAction::Failed,
                failure: None,
                last_attempt_at: None,
                will_retry_until: None,
            }],
        }
    }

    fn pending(notify: &str) -> NoticeStart {
        let original = b"Subject: hi\r\n\r\nbody\r\n";
        start_notice(
            &request(notify),
            original,
            &settings(),
            "N1".to_owned(),
            1_000,
        )
        .expect("built")
    }

    fn built_text(start: NoticeStart) -> String {
        let NoticeStart::Route(notice) = start else {
            panic!("an address");
        };
        String::from_utf8_lossy(&notice.data).into_owned()
    }

    #[test]
    fn the_settings_name_the_reporter_the_message_id_and_the_date() {
        let context = settings().context("N7", 1_999);
        assert_eq!(context.reporting_mta, "mx.here.test");
        assert_eq!(context.message_id, "N7.notice@mx.here.test");
        assert_eq!(context.date, 1, "whole seconds");
        assert_eq!(context.return_limit, notice::DEFAULT_RETURN_LIMIT);
        // Before the epoch, the second is rounded down, not towards zero.
        assert_eq!(settings().context("N7", -1).date, -1);
        let text = built_text(pending("alice@here.test"));
        assert!(
            text.contains("Message-ID: <N1.notice@mx.here.test>"),
            "{text}"
        );
        assert!(text.contains("Reporting-MTA: dns; mx.here.test"), "{text}");
    }

    #[test]
    fn the_return_limit_comes_from_the_settings() {
        let body = "x".repeat(400);
        let original = format!("Subject: big\r\n\r\n{body}\r\n");
        let start = |settings: &NoticeSettings| {
            let start = start_notice(
                &request("alice@here.test"),
                original.as_bytes(),
                settings,
                "N1".to_owned(),
                0,
            );
            built_text(start.expect("built"))
        };
        let whole = start(&settings());
        assert!(
            whole.contains(&body),
            "returned whole under the default limit"
        );
        let small = NoticeSettings {
            return_limit: 100,
            ..settings()
        };
        let headers_only = start(&small);
        assert!(!headers_only.contains(&body), "the body is not returned");
        assert!(headers_only.contains("Subject: big"), "{headers_only}");
        assert!(headers_only.contains("100 octets"), "{headers_only}");
    }

    fn placement() -> PlacementPolicy {
        PlacementPolicy {
            mailboxes: MailboxAccess::InProcess,
            delivery: DeliveryPolicy::default(),
        }
    }

    #[test]
    fn a_notice_is_checked_from_the_null_path_and_placed_by_its_route() {
        let NoticeStart::Route(notice) = pending("alice@here.test") else {
            panic!("an address");
        };
        assert_eq!(notice.check.reverse_path, ReversePath::Null);
        assert_eq!(notice.check.authenticated.as_deref(), Some("MAILER-DAEMON"));
        let route = Route::Deliver {
            local_mailboxes: vec!["alice@here.test".to_owned()],
            external: vec![],
        };
        let NoticePlaced::Message(message) = notice.clone().place(&route, &placement()) else {
            panic!("a message");
        };
        assert_eq!(message.reverse_path, "<>");
        assert_eq!(message.queue_id, "N1");
        let refused = Route::Refused(Refusal::UnknownUser);
        assert_eq!(
            notice.clone().place(&refused, &placement()),
            NoticePlaced::Dropped(Some(Refusal::UnknownUser))
        );
        let later = Route::TemporaryFailure(TemporaryReason::Timeout);
        assert!(matches!(
            notice.place(&later, &placement()),
            NoticePlaced::NotNow(_)
        ));
    }
}
