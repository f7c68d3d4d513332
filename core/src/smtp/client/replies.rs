//! Reading the server's replies (incrementally, within the reply limits) and turning
//! a reply into a recipient's result: the status comes from the reply's enhanced
//! code (RFC 3463), or is derived from its class (4.0.0, 5.0.0) when it has none.

use super::config::Limits;
use crate::delivery::{Diagnostic, Failure, RecipientResult};
use crate::smtp::reply::{EnhancedStatus, Reply, ReplyClass, ReplyError};

/// The server's bytes not yet read as replies: never more than one reply in progress,
/// which [`Reply::parse`] bounds by `reply_lines` lines of `reply_line` octets.
#[derive(Debug)]
pub(super) struct ReplyReader {
    buffer: Vec<u8>,
    max_line: usize,
    max_lines: usize,
    /// Whether a line ending arrived since the last parse that found no whole reply;
    /// without one, parsing again cannot find more (it can only find a line too long).
    line_ended: bool,
}

impl ReplyReader {
    pub(super) fn new(limits: &Limits) -> ReplyReader {
        ReplyReader {
            buffer: Vec::new(),
            max_line: limits.reply_line,
            max_lines: limits.reply_lines,
            line_ended: false,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.line_ended |= bytes.contains(&b'\n');
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole reply, `Ok(None)` if more bytes are needed, or why the bytes
    /// cannot be a reply within the limits.
    pub(super) fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        let too_long_yet = self.buffer.len() > self.max_line.saturating_add(2);
        if !self.line_ended && !too_long_yet {
            return Ok(None);
        }
        match Reply::parse(&self.buffer, self.max_line, self.max_lines)? {
            Some((reply, consumed)) => {
                self.buffer.drain(..consumed.min(self.buffer.len()));
                Ok(Some(reply))
            }
            None => {
                self.line_ended = false;
                Ok(None)
            }
        }
    }

    /// Whether bytes are waiting that are not yet a whole reply.
    pub(super) fn has_pending(&self) -> bool {
        !self.buffer.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.buffer.clear();
        self.line_ended = false;
    }

    /// Octets held. For the property tests of the memory bound.
    pub(super) fn len(&self) -> usize {
        self.buffer.len()
    }
}

/// The reply's enhanced status, or `class.0.0` from its code.
pub(super) fn status_of(reply: &Reply) -> EnhancedStatus {
    reply.status.unwrap_or_else(|| {
        let class = match reply.code.class() {
            ReplyClass::PositiveCompletion | ReplyClass::PositiveIntermediate => 2,
            ReplyClass::TransientNegative => 4,
            ReplyClass::PermanentNegative => 5,
        };
        EnhancedStatus::new(class, 0, 0)
    })
}

/// The failure a 4xx or 5xx reply reports for a recipient.
fn reply_failure(reply: &Reply, remote_host: &str) -> Failure {
    Failure {
        status: status_of(reply),
        remote_mta: Some(remote_host.to_owned()),
        diagnostic: Diagnostic::Reply(reply.clone()),
    }
}

/// A refusal: 4xx is temporary, 5xx permanent. `None` for any other class.
pub(super) fn refusal(reply: &Reply, remote_host: &str) -> Option<RecipientResult> {
    match reply.code.class() {
        ReplyClass::TransientNegative => Some(RecipientResult::Temporary(reply_failure(
            reply,
            remote_host,
        ))),
        ReplyClass::PermanentNegative => Some(RecipientResult::Permanent(reply_failure(
            reply,
            remote_host,
        ))),
        ReplyClass::PositiveCompletion | ReplyClass::PositiveIntermediate => None,
    }
}

/// The result of a final reply after the data (or LMTP's per-recipient reply): 2xx
/// delivered, 4xx/5xx refused; `None` for a 3xx, which cannot end the data.
pub(super) fn final_answer(
    reply: &Reply,
    remote_host: &str,
    notify_passed_on: bool,
) -> Option<RecipientResult> {
    match reply.code.class() {
        ReplyClass::PositiveCompletion => Some(RecipientResult::Delivered {
            remote_mta: Some(remote_host.to_owned()),
            reply: reply.clone(),
            notify_passed_on,
        }),
        _ => refusal(reply, remote_host),
    }
}

/// A session-level failure caused by a reply: always temporary (another host or a
/// later attempt may work), so a 5xx's status keeps its subject and detail in class 4.
pub(super) fn session_failure(reply: &Reply, remote_host: &str) -> Failure {
    let status = status_of(reply);
    Failure {
        status: EnhancedStatus::new(4, status.subject, status.detail),
        remote_mta: Some(remote_host.to_owned()),
        diagnostic: Diagnostic::Reply(reply.clone()),
    }
}

/// A failure decided on our side, with a text for humans.
pub(super) fn local_failure(
    status: EnhancedStatus,
    remote_host: Option<&str>,
    text: &str,
) -> Failure {
    Failure {
        status,
        remote_mta: remote_host.map(str::to_owned),
        diagnostic: Diagnostic::Local(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::ReplyCode;

    fn reader() -> ReplyReader {
        ReplyReader::new(&Limits {
            reply_line: 20,
            reply_lines: 3,
            ..Limits::default()
        })
    }

    #[test]
    fn reads_replies_split_anywhere_and_back_to_back() {
        let mut reader = reader();
        reader.push(b"250-a\r\n25");
        assert_eq!(reader.next_reply(), Ok(None));
        // At least the "25" of the unfinished line is held.
        assert!(reader.len() >= 2);
        reader.push(b"0 b\r\n220 c\r\n");
        let first = reader.next_reply().unwrap().unwrap();
        assert_eq!(first.lines, ["a", "b"]);
        assert_eq!(reader.next_reply().unwrap().unwrap().code, ReplyCode(220));
        assert_eq!(reader.next_reply(), Ok(None));
        assert!(!reader.has_pending());
        assert_eq!(reader.len(), 0);
    }

    #[test]
    fn refuses_what_goes_over_the_limits() {
        let mut long = reader();
        long.push(&[b'2'; 30]);
        assert_eq!(long.next_reply(), Err(ReplyError::LineTooLong));
        let mut many = reader();
        many.push(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n");
        assert_eq!(many.next_reply(), Err(ReplyError::TooManyLines));
        let mut garbage = reader();
        garbage.push(b"hello\r\n");
        assert_eq!(garbage.next_reply(), Err(ReplyError::BadCode));
    }

    #[test]
    fn statuses_come_from_the_reply_or_its_class() {
        let coded = Reply::new(550, EnhancedStatus::new(5, 1, 1), "no such user");
        assert_eq!(status_of(&coded), EnhancedStatus::new(5, 1, 1));
        let bare = Reply {
            code: ReplyCode(451),
            status: None,
            lines: vec!["later".into()],
        };
        assert_eq!(status_of(&bare), EnhancedStatus::new(4, 0, 0));
        assert!(matches!(
            refusal(&bare, "mx"),
            Some(RecipientResult::Temporary(Failure { status, .. })) if status == EnhancedStatus::new(4, 0, 0)
        ));
        assert!(matches!(
            refusal(&coded, "mx"),
            Some(RecipientResult::Permanent(_))
        ));
        let greeting = Reply::new(554, EnhancedStatus::new(5, 7, 1), "go away");
        assert_eq!(
            session_failure(&greeting, "mx").status,
            EnhancedStatus::new(4, 7, 1)
        );
        let ok = Reply::new(250, EnhancedStatus::new(2, 0, 0), "ok");
        assert_eq!(refusal(&ok, "mx"), None);
        assert!(matches!(
            final_answer(&ok, "mx", true),
            Some(RecipientResult::Delivered {
                notify_passed_on: true,
                ..
            })
        ));
    }
}
