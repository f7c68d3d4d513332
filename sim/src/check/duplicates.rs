//! The no-duplicates checker. A local mailbox never holds a message twice (LMTP
//! delivery is keyed by content). A remote server may: when the sending host never
//! hears the final reply to the end of data (the ambiguity of RFC 5321 §4.1.1.4,
//! RFC 1047) it must send the message again, and a crash between the reply and the
//! durable record of it does the same. Every copy a remote stored twice is counted,
//! and each one must be explained by such an earlier copy; the rest are violations.

use super::{Guarantee, Observations, Violation};
use sluice_core::time::Instant;
use std::collections::BTreeMap;

/// One copy a remote server stored: when, over which connection, sent by which host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteCopy {
    pub at: Instant,
    pub conn: u64,
    /// The sending host's name.
    pub sender: String,
}

/// Why a remote holds a second copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DuplicateCause {
    /// An earlier transaction's final reply never reached the sender.
    LostReply,
    /// The sender heard the reply but crashed before it was durable.
    Crash,
    /// Nothing explains it: a violation.
    Unexplained,
}

/// Whether `earlier` explains a later copy of the same message for the same
/// recipient sent at `later_at`. It does when the attempt that sent it ended
/// ambiguous (core's delivery walk: the connection was lost after the end of data
/// and before the final reply, so the host could not know the remote had the
/// message, and deferring it was right), or when the sending host crashed after
/// the attempt that sent that copy started and before the later copy, losing what
/// it had learned.
/// The ambiguity is matched by host, message (its tag, and its queue id where the
/// copy names one: a notice made on the host names none), recipient and the time
/// between the two copies, never by connection: a pooled connection carries many
/// transactions.
pub fn explains_duplicate(
    obs: &Observations,
    (tag, recipient, origin): (&str, &str, &str),
    earlier: &RemoteCopy,
    later_at: Instant,
) -> Option<DuplicateCause> {
    let ambiguous = obs.ambiguous.iter().any(|attempt| {
        attempt.host == earlier.sender
            && attempt.tag.as_deref() == Some(tag)
            && (origin.is_empty() || attempt.queue_id == origin)
            && attempt.recipient.eq_ignore_ascii_case(recipient)
            && (earlier.at..=later_at).contains(&attempt.at)
    });
    if ambiguous {
        return Some(DuplicateCause::LostReply);
    }
    // The crash may come while the earlier copy is still in flight, so the window
    // opens when the attempt that sent it started (where the copy names its queue
    // id; a notice made on the host names none).
    let sent_from = obs
        .attempt_starts
        .get(&(
            earlier.sender.clone(),
            origin.to_owned(),
            recipient.to_ascii_lowercase(),
        ))
        .and_then(|starts| starts.iter().rev().find(|start| **start <= earlier.at))
        .copied()
        .unwrap_or(earlier.at);
    let crashed = obs
        .crashes
        .get(&earlier.sender)
        .is_some_and(|crashes| crashes.iter().any(|at| (sent_from..=later_at).contains(at)));
    crashed.then_some(DuplicateCause::Crash)
}

/// Each copy after the first of (message, recipient, origin), with its cause.
pub fn remote_duplicates(obs: &Observations) -> BTreeMap<DuplicateCause, usize> {
    let mut causes = BTreeMap::new();
    for_each_duplicate(obs, |_, cause| *causes.entry(cause).or_insert(0) += 1);
    causes
}

fn for_each_duplicate(
    obs: &Observations,
    mut found: impl FnMut(&(String, String, String), DuplicateCause),
) {
    for (key, copies) in &obs.remote_copies {
        let (tag, recipient, origin) = key;
        for (index, copy) in copies.iter().enumerate().skip(1) {
            let cause = copies[..index]
                .iter()
                .filter_map(|earlier| {
                    explains_duplicate(obs, (tag, recipient, origin), earlier, copy.at)
                })
                .min()
                .unwrap_or(DuplicateCause::Unexplained);
            found(key, cause);
        }
    }
}

pub(super) fn no_duplicates(obs: &Observations, violations: &mut Vec<Violation>) {
    for ((host, user, tag, origin), count) in &obs.mailbox {
        if *count > 1 {
            violations.push(Violation {
                guarantee: Guarantee::NoDuplicates,
                subject: tag.clone(),
                detail: format!(
                    "{tag} (accepted as {origin}) is in the mailbox of {user} on {host} {count} times"
                ),
            });
        }
    }
    for_each_duplicate(obs, |(tag, recipient, origin), cause| {
        if cause == DuplicateCause::Unexplained {
            violations.push(Violation {
                guarantee: Guarantee::NoDuplicates,
                subject: tag.clone(),
                detail: format!(
                    "{tag} (accepted as {origin}) reached {recipient}'s server again, though the \
                     sender had heard the final reply to every earlier copy and did not crash"
                ),
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::AmbiguousAttempt;

    fn stored_twice(obs: &mut Observations) {
        let t = |ms| Instant::from_millis(ms);
        let data =
            b"Received: from c by gw1 with ESMTP id Q-gw1-0-1;\r\n x\r\nMessage-ID: <m1@w>\r\n\r\n";
        obs.remote_accepted(t(10), 7, "gw1", "a@remote1.example", data);
        obs.remote_accepted(t(90), 8, "gw1", "a@remote1.example", data);
    }

    #[test]
    fn a_second_copy_is_explained_only_by_an_ambiguous_attempt_or_a_crash() {
        let mut obs = Observations::default();
        stored_twice(&mut obs);
        let mut violations = Vec::new();
        no_duplicates(&obs, &mut violations);
        assert_eq!(violations.len(), 1, "nothing explains it: {violations:?}");
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::Unexplained, 1)])
        );

        // An ambiguous attempt of another message, or outside the two copies' time,
        // explains nothing.
        let ambiguous = |at, queue_id: &str, tag: &str| AmbiguousAttempt {
            at: Instant::from_millis(at),
            host: "gw1".into(),
            queue_id: queue_id.into(),
            tag: Some(tag.into()),
            recipient: "a@remote1.example".into(),
            remote: None,
        };
        obs.ambiguous.push(ambiguous(50, "Q-gw1-0-2", "m1"));
        obs.ambiguous.push(ambiguous(95, "Q-gw1-0-1", "m1"));
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::Unexplained, 1)])
        );

        obs.ambiguous.push(ambiguous(20, "Q-gw1-0-1", "m1"));
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::LostReply, 1)])
        );

        obs.ambiguous.clear();
        // A crash before the attempt that sent the earlier copy explains nothing; one
        // while that copy was in flight (after its attempt started) does.
        obs.attempt_started(
            Instant::from_millis(5),
            "gw1",
            "Q-gw1-0-1",
            &["a@remote1.example".to_owned()],
            Instant::from_millis(5),
            0,
        );
        obs.crashed(Instant::from_millis(2), "gw1");
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::Unexplained, 1)])
        );
        obs.crashed(Instant::from_millis(8), "gw1");
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::Crash, 1)])
        );
        obs.crashes.clear();
        obs.crashed(Instant::from_millis(50), "gw1");
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::Crash, 1)])
        );
    }
}
