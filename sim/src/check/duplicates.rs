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
/// recipient sent at `later_at`: its transaction's final reply never reached the
/// sending host (the host could not know the remote had the message, so sending
/// it again is right), or the sending host crashed after that copy was stored and
/// before the later one, losing what it had learned. The hook for the delivery
/// walk's ambiguous outcome: an attempt that reports its result as ambiguous is
/// exactly one whose reply was not received.
pub fn explains_duplicate(
    obs: &Observations,
    tag: &str,
    earlier: &RemoteCopy,
    later_at: Instant,
) -> Option<DuplicateCause> {
    if !obs
        .replies_received
        .contains(&(earlier.conn, tag.to_owned()))
    {
        return Some(DuplicateCause::LostReply);
    }
    let crashed = obs.crashes.get(&earlier.sender).is_some_and(|crashes| {
        crashes
            .iter()
            .any(|at| (earlier.at..=later_at).contains(at))
    });
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
        let (tag, _, _) = key;
        for (index, copy) in copies.iter().enumerate().skip(1) {
            let cause = copies[..index]
                .iter()
                .filter_map(|earlier| explains_duplicate(obs, tag, earlier, copy.at))
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

    fn stored_twice(obs: &mut Observations) {
        let t = |ms| Instant::from_millis(ms);
        let data =
            b"Received: from c by gw1 with ESMTP id Q-gw1-0-1;\r\n x\r\nMessage-ID: <m1@w>\r\n\r\n";
        obs.remote_accepted(t(10), 7, "gw1", "a@remote1.example", data);
        obs.remote_accepted(t(90), 8, "gw1", "a@remote1.example", data);
    }

    #[test]
    fn a_second_copy_is_explained_only_by_a_lost_reply_or_a_crash() {
        let mut obs = Observations::default();
        stored_twice(&mut obs);
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::LostReply, 1)])
        );
        obs.reply_received(7, Some("m1".into()));
        let mut violations = Vec::new();
        no_duplicates(&obs, &mut violations);
        assert_eq!(violations.len(), 1, "{violations:?}");
        obs.crashed(Instant::from_millis(50), "gw1");
        assert_eq!(
            remote_duplicates(&obs),
            BTreeMap::from([(DuplicateCause::Crash, 1)])
        );
    }
}
