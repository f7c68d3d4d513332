//! Which recipients want which notice (RFC 3461 §4.1, §5) and the notice request
//! handed to the builder. No notice ever goes to the null reverse-path, so a notice
//! (which is sent from it) never causes another.

use super::state::{QueuedMessage, QueuedRecipient};
use crate::delivery::{DeliveryPath, Failure};
use crate::notice::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest};
use crate::smtp::params::Notify;
use crate::time::Instant;

/// Whether a recipient with `notify` of a message from `reverse_path` asked for a
/// notice of `kind`. NOTIFY absent means FAILURE, plus DELAY when this queue sends
/// delay notices at all (RFC 3461 §4.1 leaves the default to the MTA); NOTIFY=NEVER
/// means none; the null reverse-path gets nothing (RFC 3461 §5.1).
pub(super) fn wants(
    reverse_path: Option<&str>,
    notify: Option<Notify>,
    kind: NoticeKind,
    delay_warnings_on: bool,
) -> bool {
    if reverse_path.is_none() {
        return false;
    }
    match (notify, kind) {
        (None, NoticeKind::Failure) => true,
        (None, NoticeKind::Delay) => delay_warnings_on,
        (None, NoticeKind::Success) | (Some(Notify::Never), _) => false,
        (Some(Notify::On { failure, .. }), NoticeKind::Failure) => failure,
        (Some(Notify::On { delay, .. }), NoticeKind::Delay) => delay && delay_warnings_on,
        (Some(Notify::On { success, .. }), NoticeKind::Success) => success,
    }
}

/// Notice times are whole seconds since the Unix epoch.
pub(super) fn seconds(instant: Instant) -> i64 {
    i64::try_from(instant.as_millis() / 1000).unwrap_or(i64::MAX)
}

/// The action a success notice reports (RFC 3464 §2.3.3): final delivery on the
/// paths that end here, relayed where a server without DSN took the message on.
pub(super) fn success_action(path: &DeliveryPath) -> NoticeAction {
    match path {
        DeliveryPath::Lmtp { .. } | DeliveryPath::Local => NoticeAction::Delivered,
        DeliveryPath::Mx { .. } | DeliveryPath::Relay { .. } => NoticeAction::Relayed,
    }
}

/// One recipient's line in a notice.
pub(super) fn line(
    recipient: &QueuedRecipient,
    action: NoticeAction,
    failure: Option<Failure>,
    last_attempt_at: Option<Instant>,
    will_retry_until: Option<Instant>,
) -> NoticeRecipient {
    NoticeRecipient {
        final_recipient: recipient.address.clone(),
        original_recipient: recipient.original.clone(),
        action,
        failure,
        last_attempt_at: last_attempt_at.map(seconds),
        will_retry_until: will_retry_until.map(seconds),
    }
}

/// The request for one notice about `message`, or `None` when nobody is listed or
/// the reverse-path is null.
pub(super) fn request(
    message: &QueuedMessage,
    kind: NoticeKind,
    recipients: Vec<NoticeRecipient>,
) -> Option<NoticeRequest> {
    let notify = message.reverse_path.clone()?;
    if recipients.is_empty() {
        return None;
    }
    Some(NoticeRequest {
        kind,
        queue_id: message.queue_id.clone(),
        notify,
        envid: message.envid.clone(),
        ret: message.ret,
        arrived_at: seconds(message.arrival),
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Destination;

    fn message(reverse_path: Option<&str>) -> QueuedMessage {
        QueuedMessage {
            queue_id: "Q1".into(),
            reverse_path: reverse_path.map(str::to_owned),
            envid: None,
            ret: None,
            arrival: Instant::from_millis(1_700_000_000_999),
            size: 10,
            received_headers: 1,
            recipients: Vec::new(),
        }
    }

    fn recipient(notify: Option<Notify>) -> QueuedRecipient {
        let mut recipient = QueuedRecipient::new("r@x.example", Destination::mx("x.example"));
        recipient.notify = notify;
        recipient
    }

    #[test]
    fn notify_absent_means_failure_and_delay_when_warnings_are_on() {
        let sender = message(Some("s@a.test"));
        let plain = recipient(None);
        assert!(wants(
            sender.reverse_path.as_deref(),
            plain.notify,
            NoticeKind::Failure,
            true
        ));
        assert!(wants(
            sender.reverse_path.as_deref(),
            plain.notify,
            NoticeKind::Delay,
            true
        ));
        assert!(!wants(
            sender.reverse_path.as_deref(),
            plain.notify,
            NoticeKind::Delay,
            false
        ));
        assert!(!wants(
            sender.reverse_path.as_deref(),
            plain.notify,
            NoticeKind::Success,
            true
        ));
    }

    #[test]
    fn notify_never_and_the_null_reverse_path_want_nothing() {
        let sender = message(Some("s@a.test"));
        let bounce = message(None);
        let never = recipient(Some(Notify::Never));
        let all = recipient(Some(Notify::On {
            success: true,
            failure: true,
            delay: true,
        }));
        for kind in [NoticeKind::Failure, NoticeKind::Delay, NoticeKind::Success] {
            assert!(!wants(
                sender.reverse_path.as_deref(),
                never.notify,
                kind,
                true
            ));
            assert!(!wants(
                bounce.reverse_path.as_deref(),
                all.notify,
                kind,
                true
            ));
            assert!(wants(
                sender.reverse_path.as_deref(),
                all.notify,
                kind,
                true
            ));
        }
        assert!(request(&bounce, NoticeKind::Failure, vec![]).is_none());
    }

    #[test]
    fn notify_lists_are_honoured_one_by_one() {
        let sender = message(Some("s@a.test"));
        let success_only = recipient(Some(Notify::On {
            success: true,
            failure: false,
            delay: false,
        }));
        assert!(wants(
            sender.reverse_path.as_deref(),
            success_only.notify,
            NoticeKind::Success,
            true
        ));
        assert!(!wants(
            sender.reverse_path.as_deref(),
            success_only.notify,
            NoticeKind::Failure,
            true
        ));
        assert!(!wants(
            sender.reverse_path.as_deref(),
            success_only.notify,
            NoticeKind::Delay,
            true
        ));
    }

    #[test]
    fn requests_carry_seconds_and_the_envelope() {
        let mut sender = message(Some("s@a.test"));
        sender.envid = Some("E1".into());
        let line = line(
            &recipient(None),
            NoticeAction::Failed,
            None,
            Some(Instant::from_millis(1_700_000_100_500)),
            None,
        );
        let request = request(&sender, NoticeKind::Failure, vec![line]);
        let request = request.as_ref();
        assert_eq!(request.map(|r| r.arrived_at), Some(1_700_000_000));
        assert_eq!(request.map(|r| r.notify.as_str()), Some("s@a.test"));
        assert_eq!(request.and_then(|r| r.envid.as_deref()), Some("E1"));
        assert_eq!(
            request.and_then(|r| r.recipients[0].last_attempt_at),
            Some(1_700_000_100)
        );
    }

    #[test]
    fn final_paths_deliver_and_network_paths_relay() {
        assert_eq!(
            success_action(&DeliveryPath::Local),
            NoticeAction::Delivered
        );
        let lmtp = DeliveryPath::Lmtp {
            host: "b".into(),
            port: 24,
        };
        assert_eq!(success_action(&lmtp), NoticeAction::Delivered);
        let mx = DeliveryPath::Mx { domain: "x".into() };
        assert_eq!(success_action(&mx), NoticeAction::Relayed);
    }
}
