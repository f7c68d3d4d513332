//! The retrieval checkers: what the simulated IMAP clients saw, judged against
//! what the hosts promised. Four guarantees, each read from the clients' own
//! record (`RetrievalLog`) and the mailbox deliveries the hosts made durable:
//!
//! - `imap-exactly-once`: every local copy a host made durable is seen by its
//!   user's client (in INBOX, or in the folder it was moved to) once the client
//!   listed INBOX after it, never twice in one folder, never again in INBOX after
//!   a MOVE took it away, never again after an expunge the client saw answered OK;
//! - `imap-uids`: no UID of a folder, under one UIDVALIDITY, names two messages;
//! - `imap-flags-durable`: a flag a STORE added (tagged OK) is on the message in
//!   every later listing that shows it, crashes in between or not;
//! - `imap-idle`: a client idling on INBOX hears an EXISTS that counts each new
//!   message delivered meanwhile, within the scenario's bound, unless the host
//!   crashed before it could tell.
//!
//! The checkers judge; the clients only record what they were answered.

use super::{Guarantee, Observations, Violation};
use sluice_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

/// The name of one copy of a message, as the host that stored it and a client
/// that reads its header fields both tell it: the workload's tag and the queue id
/// the first Sluice host gave the message (`m17@Q-gw1-0-4`). A client that sends
/// again after a lost 250 makes a second copy, under its own queue id; empty when
/// the message has no tag.
pub fn copy_name(data: &[u8]) -> String {
    let tag = super::message_tag(data).unwrap_or_default();
    match super::origin_queue_id(data) {
        Some(origin) if !tag.is_empty() => format!("{tag}@{origin}"),
        _ => tag,
    }
}

/// One message as a listing (`UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS
/// (MESSAGE-ID RECEIVED)])`) showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub uid: u32,
    /// The copy's name (`copy_name`); empty when it had no tag.
    pub tag: String,
    pub flags: Vec<String>,
}

/// A whole folder as one listing showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub user: String,
    pub folder: String,
    pub uidvalidity: u32,
    /// When the command was sent, and when its tagged OK arrived.
    pub sent: Instant,
    pub done: Instant,
    pub messages: Vec<Listed>,
}

/// A STORE +FLAGS answered OK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagsStored {
    pub user: String,
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub flags: Vec<String>,
    /// When the tagged OK arrived.
    pub at: Instant,
}

/// A UID MOVE answered OK, with the COPYUID the server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub user: String,
    pub tag: String,
    pub from: String,
    pub from_uidvalidity: u32,
    pub uid: u32,
    pub to: String,
    /// (UIDVALIDITY, UID) in the target, from COPYUID.
    pub target: Option<(u32, u32)>,
    pub at: Instant,
}

/// A UID EXPUNGE answered OK for a message the client had flagged \Deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expunged {
    pub user: String,
    pub tag: String,
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub at: Instant,
}

/// One IDLE on INBOX: from the continuation to DONE (or the connection's end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idled {
    pub user: String,
    pub started: Instant,
    pub ended: Instant,
    /// The message count the client knew when the server said it was idling.
    pub exists_at_start: u32,
    /// Every EXISTS heard meanwhile: (when, count).
    pub exists: Vec<(Instant, u32)>,
}

/// Everything the IMAP clients were answered, in order.
#[derive(Debug, Default)]
pub struct RetrievalLog {
    pub listings: Vec<Listing>,
    pub flags: Vec<FlagsStored>,
    pub moves: Vec<Moved>,
    pub expunges: Vec<Expunged>,
    pub idles: Vec<Idled>,
    /// Logins that succeeded, for the summary.
    pub logins: u64,
    /// Responses the clients could not read or did not expect (a BAD, a broken
    /// FETCH): each one is a violation of `imap-exactly-once`, since the client's
    /// view can no longer be trusted.
    pub protocol_errors: Vec<(Instant, String, String)>,
}

/// A new message that reached a mailbox, when its write became durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxArrival {
    pub at: Instant,
    pub host: String,
    pub user: String,
    /// The copy's name (`copy_name`).
    pub tag: String,
}

/// What the retrieval checkers need besides the log.
#[derive(Clone, Debug, Default)]
pub struct RetrievalContext {
    /// The host whose mailboxes the clients read.
    pub host: String,
    /// Users with a client.
    pub users: BTreeSet<String>,
    /// How soon an idling client must hear of a new message.
    pub idle_bound: Duration,
}

/// Runs the retrieval checkers of `wanted`.
pub fn check(
    obs: &Observations,
    context: &RetrievalContext,
    wanted: &BTreeSet<Guarantee>,
    violations: &mut Vec<Violation>,
) {
    let log = &obs.retrieval;
    if wanted.contains(&Guarantee::ImapExactlyOnce) {
        exactly_once(obs, context, violations);
    }
    if wanted.contains(&Guarantee::ImapUids) {
        uids_not_reused(log, violations);
    }
    if wanted.contains(&Guarantee::ImapFlagsDurable) {
        flags_durable(obs, context, violations);
    }
    if wanted.contains(&Guarantee::ImapIdle) {
        idle_hears(obs, context, violations);
    }
}

/// A violation about a copy (or a user): its subject is what the trace names, the
/// copy's queue id rather than its whole name.
fn violation(guarantee: Guarantee, subject: &str, detail: String) -> Violation {
    let subject = subject
        .split_once('@')
        .map_or(subject, |(_, queue_id)| queue_id);
    Violation {
        guarantee,
        subject: subject.to_owned(),
        detail,
    }
}

fn exactly_once(obs: &Observations, context: &RetrievalContext, violations: &mut Vec<Violation>) {
    let log = &obs.retrieval;
    for (at, user, text) in &log.protocol_errors {
        violations.push(violation(
            Guarantee::ImapExactlyOnce,
            user,
            format!(
                "the client of {user} could not follow the server at t+{}ms: {text}",
                at.as_millis()
            ),
        ));
    }
    // Never twice in one folder (each copy reported once).
    let mut reported: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    for listing in &log.listings {
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for message in listing.messages.iter().filter(|m| !m.tag.is_empty()) {
            if let Some(first) = seen.insert(&message.tag, message.uid)
                && reported.insert((&listing.user, &listing.folder, &message.tag))
            {
                violations.push(violation(
                    Guarantee::ImapExactlyOnce,
                    &message.tag,
                    format!(
                        "{} of {} is in {} twice, as UID {first} and UID {} (listing at t+{}ms)",
                        message.tag,
                        listing.user,
                        listing.folder,
                        message.uid,
                        listing.sent.as_millis()
                    ),
                ));
            }
        }
    }
    // Gone from where a MOVE or an expunge took it.
    let gone = log
        .moves
        .iter()
        .map(|moved| {
            (
                &moved.user,
                &moved.tag,
                &moved.from,
                moved.from_uidvalidity,
                moved.at,
                "moved out",
            )
        })
        .chain(log.expunges.iter().map(|expunged| {
            (
                &expunged.user,
                &expunged.tag,
                &expunged.folder,
                expunged.uidvalidity,
                expunged.at,
                "expunged",
            )
        }));
    for (user, tag, folder, uidvalidity, at, how) in gone {
        if tag.is_empty() {
            continue;
        }
        let again = log.listings.iter().find(|listing| {
            listing.user == *user
                && listing.folder == *folder
                && listing.uidvalidity == uidvalidity
                && listing.sent > at
                && listing.messages.iter().any(|m| m.tag == *tag)
        });
        if let Some(listing) = again {
            violations.push(violation(
                Guarantee::ImapExactlyOnce,
                tag,
                format!(
                    "{tag} of {user} was {how} of {folder} (OK at t+{}ms) and is there again \
                     in a listing at t+{}ms",
                    at.as_millis(),
                    listing.sent.as_millis()
                ),
            ));
        }
    }
    // Seen at least once, once INBOX was listed after the delivery.
    let mut seen_tags: BTreeSet<(&str, &str)> = BTreeSet::new();
    for listing in &log.listings {
        for message in &listing.messages {
            seen_tags.insert((&listing.user, &message.tag));
        }
    }
    for arrival in &obs.mailbox_arrivals {
        if arrival.host != context.host
            || !context.users.contains(&arrival.user)
            || arrival.tag.is_empty()
            || seen_tags.contains(&(arrival.user.as_str(), arrival.tag.as_str()))
        {
            continue;
        }
        // A listing covers the messages its session knew of when it began; the
        // first one after the delivery ends with the EXISTS that announces it, so
        // the next one must show it.
        let inbox = |listing: &&Listing| listing.user == arrival.user && listing.folder == "INBOX";
        let announced = log
            .listings
            .iter()
            .filter(inbox)
            .find(|listing| listing.sent > arrival.at);
        let listed_after = announced.and_then(|first| {
            log.listings
                .iter()
                .filter(inbox)
                .find(|listing| listing.sent >= first.done)
        });
        if let Some(listing) = listed_after {
            violations.push(violation(
                Guarantee::ImapExactlyOnce,
                &arrival.tag,
                format!(
                    "{} reached the mailbox of {} durably at t+{}ms, and no listing shows it, \
                     though INBOX was listed at t+{}ms",
                    arrival.tag,
                    arrival.user,
                    arrival.at.as_millis(),
                    listing.sent.as_millis()
                ),
            ));
        }
    }
}

fn uids_not_reused(log: &RetrievalLog, violations: &mut Vec<Violation>) {
    // (user, folder, UIDVALIDITY, UID) → the tag first seen there, and when.
    let mut named: BTreeMap<(&str, &str, u32, u32), (&str, Instant)> = BTreeMap::new();
    // Each reused UID is reported once, for the first other message it named.
    let mut reported: BTreeSet<(&str, &str, u32, u32)> = BTreeSet::new();
    for listing in &log.listings {
        for message in listing.messages.iter().filter(|m| !m.tag.is_empty()) {
            let key = (
                listing.user.as_str(),
                listing.folder.as_str(),
                listing.uidvalidity,
                message.uid,
            );
            match named.get(&key) {
                Some((tag, first)) if *tag != message.tag => {
                    if !reported.insert(key) {
                        continue;
                    }
                    violations.push(violation(
                        Guarantee::ImapUids,
                        &message.tag,
                        format!(
                            "UID {} of {} in {} (UIDVALIDITY {}) named {tag} at t+{}ms and \
                             {} at t+{}ms",
                            message.uid,
                            listing.user,
                            listing.folder,
                            listing.uidvalidity,
                            first.as_millis(),
                            message.tag,
                            listing.sent.as_millis()
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    named.insert(key, (&message.tag, listing.sent));
                }
            }
        }
    }
}

/// The crashes of `host` in `(from, to]`.
fn crashed_between(obs: &Observations, host: &str, from: Instant, to: Instant) -> bool {
    obs.crashes
        .get(host)
        .is_some_and(|times| times.iter().any(|at| *at > from && *at <= to))
}

fn flags_durable(obs: &Observations, context: &RetrievalContext, violations: &mut Vec<Violation>) {
    let log = &obs.retrieval;
    for stored in &log.flags {
        let later = log.listings.iter().filter(|listing| {
            listing.user == stored.user
                && listing.folder == stored.folder
                && listing.uidvalidity == stored.uidvalidity
                && listing.sent > stored.at
        });
        for listing in later {
            let Some(message) = listing.messages.iter().find(|m| m.uid == stored.uid) else {
                continue;
            };
            let missing: Vec<&String> = stored
                .flags
                .iter()
                .filter(|flag| {
                    !message
                        .flags
                        .iter()
                        .any(|have| have.eq_ignore_ascii_case(flag))
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let crash = if crashed_between(obs, &context.host, stored.at, listing.sent) {
                format!(", after a crash of {}", context.host)
            } else {
                String::new()
            };
            violations.push(violation(
                Guarantee::ImapFlagsDurable,
                &message.tag,
                format!(
                    "UID {} ({}) of {} in {}: STORE +FLAGS {:?} answered OK at t+{}ms, and a \
                     listing at t+{}ms shows it without {:?}{crash}",
                    stored.uid,
                    message.tag,
                    stored.user,
                    stored.folder,
                    stored.flags,
                    stored.at.as_millis(),
                    listing.sent.as_millis(),
                    missing
                ),
            ));
            break;
        }
    }
}

fn idle_hears(obs: &Observations, context: &RetrievalContext, violations: &mut Vec<Violation>) {
    let log = &obs.retrieval;
    let bound = context.idle_bound;
    for idle in &log.idles {
        let arrivals: Vec<&MailboxArrival> = obs
            .mailbox_arrivals
            .iter()
            .filter(|arrival| {
                arrival.host == context.host
                    && arrival.user == idle.user
                    && arrival.at > idle.started
                    && arrival.at <= idle.ended
            })
            .collect();
        for (index, arrival) in arrivals.iter().enumerate() {
            let deadline = arrival.at + bound;
            // Too close to the end of the IDLE to be owed, or the host crashed
            // before it could tell (the session died with it).
            if deadline > idle.ended || crashed_between(obs, &context.host, idle.started, deadline)
            {
                continue;
            }
            let expected = idle.exists_at_start + u32::try_from(index + 1).unwrap_or(u32::MAX);
            let heard = idle
                .exists
                .iter()
                .any(|(at, count)| *at >= arrival.at && *at <= deadline && *count >= expected);
            if !heard {
                violations.push(violation(
                    Guarantee::ImapIdle,
                    &arrival.tag,
                    format!(
                        "{} reached the INBOX of {} at t+{}ms while its client idled (from \
                         t+{}ms to t+{}ms), and no EXISTS of at least {expected} came within {}s",
                        arrival.tag,
                        idle.user,
                        arrival.at.as_millis(),
                        idle.started.as_millis(),
                        idle.ended.as_millis(),
                        bound.as_millis() / 1000
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "user1@sluice.test";
    const HOST: &str = "be1.sluice.test";

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    fn listed(uid: u32, tag: &str, flags: &[&str]) -> Listed {
        Listed {
            uid,
            tag: tag.to_owned(),
            flags: flags.iter().map(|flag| (*flag).to_owned()).collect(),
        }
    }

    fn listing(folder: &str, sent: u64, messages: Vec<Listed>) -> Listing {
        Listing {
            user: USER.to_owned(),
            folder: folder.to_owned(),
            uidvalidity: 1,
            sent: at(sent),
            done: at(sent + 10),
            messages,
        }
    }

    fn context() -> RetrievalContext {
        RetrievalContext {
            host: HOST.to_owned(),
            users: BTreeSet::from([USER.to_owned()]),
            idle_bound: Duration::from_secs(20),
        }
    }

    fn found(obs: &Observations, guarantee: Guarantee) -> Vec<Violation> {
        let mut violations = Vec::new();
        check(
            obs,
            &context(),
            &BTreeSet::from([guarantee]),
            &mut violations,
        );
        violations
    }

    fn arrival(millis: u64, tag: &str) -> MailboxArrival {
        MailboxArrival {
            at: at(millis),
            host: HOST.to_owned(),
            user: USER.to_owned(),
            tag: tag.to_owned(),
        }
    }

    #[test]
    fn copies_copy_names_tell_a_resent_message_from_a_duplicate() {
        let data = b"Received: from c by gw1 with ESMTP id Q-gw1-0-7;\r\n date\r\n\
Message-ID: <m3@workload.sim>\r\n\r\n";
        assert_eq!(copy_name(data), "m3@Q-gw1-0-7");
        let mut obs = Observations::default();
        obs.retrieval.listings.push(listing(
            "INBOX",
            100,
            vec![
                listed(1, "m3@Q-gw1-0-7", &[]),
                listed(2, "m3@Q-gw1-0-9", &[]),
            ],
        ));
        assert!(found(&obs, Guarantee::ImapExactlyOnce).is_empty());
        obs.retrieval.listings.push(listing(
            "INBOX",
            200,
            vec![
                listed(1, "m3@Q-gw1-0-7", &[]),
                listed(3, "m3@Q-gw1-0-7", &[]),
            ],
        ));
        let violations = found(&obs, Guarantee::ImapExactlyOnce);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].subject, "Q-gw1-0-7");
    }

    #[test]
    fn a_copy_is_owed_to_the_listing_after_the_one_that_announced_it() {
        let mut obs = Observations::default();
        obs.mailbox_arrivals.push(arrival(50, "m1@Q-1"));
        // The first listing after the delivery may predate the session's EXISTS.
        obs.retrieval
            .listings
            .push(listing("INBOX", 100, vec![listed(1, "m0@Q-0", &[])]));
        assert!(found(&obs, Guarantee::ImapExactlyOnce).is_empty());
        obs.retrieval
            .listings
            .push(listing("INBOX", 200, vec![listed(1, "m0@Q-0", &[])]));
        assert_eq!(found(&obs, Guarantee::ImapExactlyOnce).len(), 1);
        // Seen in Archive (moved there) counts as seen.
        obs.retrieval
            .listings
            .push(listing("Archive", 300, vec![listed(1, "m1@Q-1", &[])]));
        assert!(found(&obs, Guarantee::ImapExactlyOnce).is_empty());
    }

    #[test]
    fn a_moved_copy_back_in_its_folder_is_seen_twice() {
        let mut obs = Observations::default();
        obs.retrieval.moves.push(Moved {
            user: USER.to_owned(),
            tag: "m1@Q-1".to_owned(),
            from: "INBOX".to_owned(),
            from_uidvalidity: 1,
            uid: 4,
            to: "Archive".to_owned(),
            target: Some((2, 1)),
            at: at(100),
        });
        obs.retrieval
            .listings
            .push(listing("INBOX", 50, vec![listed(4, "m1@Q-1", &[])]));
        assert!(found(&obs, Guarantee::ImapExactlyOnce).is_empty());
        obs.retrieval
            .listings
            .push(listing("INBOX", 150, vec![listed(4, "m1@Q-1", &[])]));
        assert_eq!(found(&obs, Guarantee::ImapExactlyOnce).len(), 1);
    }

    #[test]
    fn a_uid_naming_two_copies_is_reported_once() {
        let mut obs = Observations::default();
        for sent in [100, 200, 300] {
            let tag = if sent == 100 { "m1@Q-1" } else { "m2@Q-2" };
            obs.retrieval
                .listings
                .push(listing("INBOX", sent, vec![listed(1, tag, &[])]));
        }
        assert_eq!(found(&obs, Guarantee::ImapUids).len(), 1);
    }

    #[test]
    fn a_flag_answered_ok_must_stay() {
        let mut obs = Observations::default();
        obs.retrieval.flags.push(FlagsStored {
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uidvalidity: 1,
            uid: 1,
            flags: vec!["\\Flagged".to_owned()],
            at: at(100),
        });
        obs.retrieval
            .listings
            .push(listing("INBOX", 50, vec![listed(1, "m1@Q-1", &[])]));
        obs.retrieval.listings.push(listing(
            "INBOX",
            150,
            vec![listed(1, "m1@Q-1", &["\\Flagged", "\\Seen"])],
        ));
        assert!(found(&obs, Guarantee::ImapFlagsDurable).is_empty());
        obs.crashed(at(160), HOST);
        obs.retrieval.listings.push(listing(
            "INBOX",
            250,
            vec![listed(1, "m1@Q-1", &["\\Seen"])],
        ));
        let violations = found(&obs, Guarantee::ImapFlagsDurable);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].detail.contains("after a crash"));
    }

    #[test]
    fn an_idling_client_must_hear_each_new_message_unless_the_host_crashed() {
        let idle = |exists: Vec<(Instant, u32)>| Idled {
            user: USER.to_owned(),
            started: at(1_000),
            ended: at(100_000),
            exists_at_start: 5,
            exists,
        };
        let mut obs = Observations::default();
        obs.mailbox_arrivals.push(arrival(2_000, "m1@Q-1"));
        obs.mailbox_arrivals.push(arrival(3_000, "m2@Q-2"));
        // Near the end of the IDLE: not owed within it.
        obs.mailbox_arrivals.push(arrival(90_000, "m3@Q-3"));
        obs.retrieval.idles.push(idle(vec![(at(3_100), 7)]));
        assert!(found(&obs, Guarantee::ImapIdle).is_empty());
        obs.retrieval.idles[0] = idle(vec![(at(2_100), 6)]);
        let violations = found(&obs, Guarantee::ImapIdle);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].subject, "Q-2");
        obs.crashed(at(2_500), HOST);
        assert!(found(&obs, Guarantee::ImapIdle).is_empty());
    }
}
