//! What the builder needs besides the request and the original message (who reports,
//! when, under which Message-ID), what it produces, and how it can refuse.

/// Default for [`NoticeContext::return_limit`]: 256 KiB.
pub const DEFAULT_RETURN_LIMIT: usize = 256 * 1024;

/// The longest address accepted for the notice's recipient or From: RFC 5321
/// §4.5.3.1.3 allows 256 octets for a whole path; this leaves room for lenience while
/// keeping every header line of the notice far below 998 octets.
pub(super) const LONGEST_ADDRESS: usize = 512;

/// RFC 1035 §2.3.4: a domain name is at most 255 octets.
const LONGEST_HOST: usize = 255;

/// The longest Message-ID accepted, so that `Message-ID: <…>` fits one line.
const LONGEST_MESSAGE_ID: usize = 250;

/// The notice-independent facts a notice needs. Core has no clock and no randomness,
/// so the caller supplies the date and a unique Message-ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeContext {
    /// This MTA's host name: `Reporting-MTA: dns; <name>` (RFC 3464 §2.2.2).
    pub reporting_mta: String,
    /// The display name of the notice's From: field.
    pub postmaster_name: String,
    /// The address of the notice's From: field, e.g. `MAILER-DAEMON@host`.
    pub postmaster_address: String,
    /// The notice's Message-ID, without angle brackets: `unique@host`.
    pub message_id: String,
    /// The notice's Date:, seconds since the Unix epoch (written in UTC).
    pub date: i64,
    /// The most octets of the original message the notice returns. A message larger
    /// than this is returned as its header section only (itself cut to this size),
    /// and the human-readable part says so. Default [`DEFAULT_RETURN_LIMIT`].
    pub return_limit: usize,
}

impl NoticeContext {
    /// A context with the usual From: (`Mail Delivery System
    /// <MAILER-DAEMON@reporting_mta>`) and the default return limit.
    pub fn new(
        reporting_mta: impl Into<String>,
        message_id: impl Into<String>,
        date: i64,
    ) -> NoticeContext {
        let reporting_mta = reporting_mta.into();
        NoticeContext {
            postmaster_name: "Mail Delivery System".to_owned(),
            postmaster_address: format!("MAILER-DAEMON@{reporting_mta}"),
            reporting_mta,
            message_id: message_id.into(),
            date,
            return_limit: DEFAULT_RETURN_LIMIT,
        }
    }

    /// Checks the values that go into header fields unchanged.
    pub(super) fn validate(&self) -> Result<(), NoticeError> {
        if !is_host_name(&self.reporting_mta) {
            return Err(NoticeError::InvalidReportingMta);
        }
        if !is_ascii_address(&self.postmaster_address) {
            return Err(NoticeError::InvalidPostmaster);
        }
        if !is_message_id(&self.message_id) {
            return Err(NoticeError::InvalidMessageId);
        }
        Ok(())
    }
}

/// The Message-ID of notice `notice_id` written by `reporting_mta`, without angle
/// brackets: `<notice_id>.notice@<reporting_mta>`. The notice id is the notice's own
/// queue id, unique on the node, so the Message-ID is unique wherever the host
/// name is; the `.notice` part tells a reader what the message is.
pub fn notice_message_id(notice_id: &str, reporting_mta: &str) -> String {
    format!("{notice_id}.notice@{reporting_mta}")
}

/// A built notice, ready for the queue.
///
/// Its envelope sender is always the null reverse-path `<>`: RFC 5321 §4.5.5 requires
/// it, so that a notice about a notice can never be sent and no two systems can
/// bounce mail back and forth forever. The caller queues it with
/// reverse-path `None` and the single recipient [`Notice::recipient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The envelope recipient: the original message's reverse-path.
    pub recipient: String,
    /// The whole message, CRLF line endings, no line over 998 octets.
    pub data: Vec<u8>,
    /// The message holds 8-bit octets (a returned original, or a UTF-8 address in
    /// To:): send it with BODY=8BITMIME (RFC 6152).
    pub eight_bit: bool,
    /// The recipient address is not ASCII: send it with SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
}

/// Why no notice could be built. Every case is a caller's mistake: nothing in the
/// original message or in remote replies can cause one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("the notice request names no recipients")]
    NoRecipients,
    /// Empty (the null reverse-path never gets a notice), too long, or holding
    /// control characters.
    #[error("the notice's recipient address is not usable")]
    InvalidRecipient,
    #[error("the reporting MTA is not a host name")]
    InvalidReportingMta,
    #[error("the postmaster address is not an ASCII address")]
    InvalidPostmaster,
    #[error("the Message-ID is not of the form unique@host")]
    InvalidMessageId,
}

/// A host name or an address literal in printable ASCII, as RFC 3464's `dns` name
/// type expects.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= LONGEST_HOST
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:_".contains(&b))
}

/// An address with an `@`, without controls, of bounded length. Not a full RFC 5321
/// parse: the queue hands over addresses its parser accepted; this only makes sure
/// that nothing can break a header line.
pub(super) fn is_usable_address(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= LONGEST_ADDRESS
        && address.contains('@')
        && !address
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>')
}

fn is_ascii_address(address: &str) -> bool {
    is_usable_address(address) && address.chars().all(|c| c.is_ascii_graphic())
}

/// RFC 5322 §3.6.4 `id-left "@" id-right`, in printable ASCII without brackets.
fn is_message_id(id: &str) -> bool {
    let Some((left, right)) = id.split_once('@') else {
        return false;
    };
    id.len() <= LONGEST_MESSAGE_ID
        && !left.is_empty()
        && !right.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\'))
        && !right.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_context_validates() {
        let context = NoticeContext::new("mx.sluice.test", "n1@mx.sluice.test", 0);
        assert_eq!(context.postmaster_address, "MAILER-DAEMON@mx.sluice.test");
        assert_eq!(context.return_limit, DEFAULT_RETURN_LIMIT);
        assert_eq!(context.validate(), Ok(()));
    }

    #[test]
    fn header_values_are_checked() {
        let good = NoticeContext::new("mx.sluice.test", "n1@mx.sluice.test", 0);
        let mut bad = good.clone();
        bad.reporting_mta = "mx\r\nBcc: x".to_owned();
        assert_eq!(bad.validate(), Err(NoticeError::InvalidReportingMta));
        bad = good.clone();
        bad.message_id = "<n1@host>".to_owned();
        assert_eq!(bad.validate(), Err(NoticeError::InvalidMessageId));
        bad.message_id = "no-at-sign".to_owned();
        assert_eq!(bad.validate(), Err(NoticeError::InvalidMessageId));
        bad.message_id = "a@b@c".to_owned();
        assert_eq!(bad.validate(), Err(NoticeError::InvalidMessageId));
        bad = good.clone();
        bad.postmaster_address = "mailer daemon@host".to_owned();
        assert_eq!(bad.validate(), Err(NoticeError::InvalidPostmaster));
        bad.postmaster_address = "m\u{e9}@host".to_owned();
        assert_eq!(bad.validate(), Err(NoticeError::InvalidPostmaster));
    }

    #[test]
    fn a_notice_message_id_names_the_notice_and_the_host() {
        let id = notice_message_id("Q-1a2b", "mx.sluice.test");
        assert_eq!(id, "Q-1a2b.notice@mx.sluice.test");
        assert!(is_message_id(&id));
    }

    proptest::proptest! {
        /// Every queue id a node makes (letters, digits, `-`, `_`, `.`) under any host
        /// name gives a valid Message-ID, and distinct ids distinct Message-IDs.
        #[test]
        fn notice_message_ids_are_valid_and_distinct(
            first in "[A-Za-z0-9_.-]{1,40}",
            second in "[A-Za-z0-9_.-]{1,40}",
            host in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,3}",
        ) {
            let one = notice_message_id(&first, &host);
            proptest::prop_assert!(is_message_id(&one), "{one}");
            let context = NoticeContext::new(host.clone(), one.clone(), 0);
            proptest::prop_assert_eq!(context.validate(), Ok(()));
            if first != second {
                proptest::prop_assert_ne!(one, notice_message_id(&second, &host));
            }
        }
    }

    #[test]
    fn usable_addresses() {
        assert!(is_usable_address("bob@example.org"));
        assert!(is_usable_address("\"a b\"@example.org"));
        assert!(is_usable_address("j\u{f6}rg@example.org"));
        assert!(!is_usable_address(""));
        assert!(!is_usable_address("postmaster"));
        assert!(!is_usable_address("a@b\r\nBcc: c@d"));
        assert!(!is_usable_address("<a@b>"));
        assert!(!is_usable_address(&format!("{}@b", "a".repeat(600))));
    }
}
