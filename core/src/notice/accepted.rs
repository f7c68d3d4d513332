//! Success notices for copies written into a local mailbox at acceptance: those
//! never pass through the queue, so this is where RFC 3461 §4.1's NOTIFY=SUCCESS is
//! honoured for them ("delivered", the mailbox being the final destination).

use super::request::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest};
use crate::smtp::params::{Notify, OriginalRecipient, Ret};

/// One copy written at acceptance, with the DSN parameters of the RCPT behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedCopy {
    pub address: String,
    pub orcpt: Option<OriginalRecipient>,
    pub notify: Option<Notify>,
}

/// The success notice owed for `copies` of a message accepted at `arrived_at`
/// (seconds since the Unix epoch): `None` when the reverse-path is null (RFC 3461
/// §5.1) or no copy asked for SUCCESS (the default is FAILURE only).
pub fn success_at_acceptance(
    queue_id: &str,
    reverse_path: Option<&str>,
    envid: Option<&str>,
    ret: Option<Ret>,
    arrived_at: i64,
    copies: &[AcceptedCopy],
) -> Option<NoticeRequest> {
    let notify = reverse_path.filter(|path| !path.is_empty())?;
    let recipients: Vec<NoticeRecipient> = copies
        .iter()
        .filter(|copy| matches!(copy.notify, Some(Notify::On { success: true, .. })))
        .map(|copy| NoticeRecipient {
            final_recipient: copy.address.clone(),
            original_recipient: copy.orcpt.clone(),
            action: NoticeAction::Delivered,
            failure: None,
            last_attempt_at: Some(arrived_at),
            will_retry_until: None,
        })
        .collect();
    if recipients.is_empty() {
        return None;
    }
    Some(NoticeRequest {
        kind: NoticeKind::Success,
        queue_id: queue_id.to_owned(),
        notify: notify.to_owned(),
        envid: envid.map(str::to_owned),
        ret,
        arrived_at,
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(address: &str, notify: Option<Notify>) -> AcceptedCopy {
        AcceptedCopy {
            address: address.to_owned(),
            orcpt: None,
            notify,
        }
    }

    const SUCCESS: Option<Notify> = Some(Notify::On {
        success: true,
        failure: true,
        delay: false,
    });

    #[test]
    fn only_copies_that_asked_for_success_are_reported_as_delivered() {
        let copies = [
            copy("a@x.test", SUCCESS),
            copy("b@x.test", None),
            copy("c@x.test", Some(Notify::Never)),
        ];
        let request =
            success_at_acceptance("Q1", Some("s@y.test"), Some("E"), None, 1000, &copies).unwrap();
        assert_eq!(request.kind, NoticeKind::Success);
        assert_eq!(request.notify, "s@y.test");
        assert_eq!(request.envid.as_deref(), Some("E"));
        assert_eq!(request.recipients.len(), 1);
        assert_eq!(request.recipients[0].final_recipient, "a@x.test");
        assert_eq!(request.recipients[0].action, NoticeAction::Delivered);
    }

    #[test]
    fn nothing_for_the_null_reverse_path_or_when_nobody_asked() {
        let asked = [copy("a@x.test", SUCCESS)];
        assert_eq!(
            success_at_acceptance("Q", None, None, None, 0, &asked),
            None
        );
        assert_eq!(
            success_at_acceptance("Q", Some(""), None, None, 0, &asked),
            None
        );
        let silent = [copy("a@x.test", None)];
        assert_eq!(
            success_at_acceptance("Q", Some("s@y.test"), None, None, 0, &silent),
            None
        );
    }
}
