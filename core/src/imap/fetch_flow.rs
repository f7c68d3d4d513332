//! The FETCH and UID FETCH commands as a sequence of store requests: VANISHED
//! (QRESYNC) first if asked, then, batch by batch, the messages' metadata, \Seen set
//! through the store for BODY[...] without PEEK, and each message's bytes one at a
//! time. A message's response is sent as soon as it is written, so a FETCH over a
//! whole mailbox holds at most `Limits::fetch_batch` metadata entries and one body.

use super::fetch::{self, Content, FetchPlan};
use super::request::{MailboxAnswer, MailboxRequest, MessageMetadata, UidSet};
use super::responses::{self, Kind};
use super::{ImapSession, Purpose};
use crate::mailbox::FlagMode;
use crate::message::{MessageView, with_return_path};
use crate::time::Instant;
use std::collections::VecDeque;

/// The UIDs a command works through, a bounded batch at a time.
#[derive(Clone, Debug)]
pub(super) struct Batches {
    set: UidSet,
    /// The lowest UID not yet taken (u64: past `u32::MAX` when all are).
    next_from: u64,
    size: usize,
}

impl Batches {
    pub(super) fn new(set: UidSet, size: usize) -> Batches {
        Batches {
            set,
            next_from: 1,
            size: size.max(1),
        }
    }

    /// The next at most `size` UIDs, or `None` when all were taken.
    pub(super) fn next(&mut self) -> Option<UidSet> {
        let mut ranges = Vec::new();
        let mut room = self.size as u64;
        for &(start, end) in self.set.ranges() {
            let (start, end) = (u64::from(start).max(self.next_from), u64::from(end));
            if room == 0 || end < start {
                continue;
            }
            let last = end.min(start + room - 1);
            ranges.push((start, last));
            room -= last - start + 1;
            self.next_from = last + 1;
        }
        let ranges: Vec<(u32, u32)> = ranges
            .into_iter()
            .filter_map(|(a, b)| Some((u32::try_from(a).ok()?, u32::try_from(b).ok()?)))
            .collect();
        (!ranges.is_empty()).then(|| UidSet::from_ranges(ranges))
    }
}

/// One FETCH command in progress.
#[derive(Debug)]
pub(super) struct FetchJob {
    pub(super) tag: String,
    pub(super) by_uid: bool,
    pub(super) plan: FetchPlan,
    pub(super) changed_since: Option<u64>,
    /// The UIDs as the client named them, for VANISHED: expunged ones are no
    /// longer in the view, so not in `batches`.
    pub(super) asked: UidSet,
    pub(super) batches: Batches,
    /// The current batch's messages not yet answered, ascending UID.
    pub(super) batch: VecDeque<MessageMetadata>,
    /// UIDs whose \Seen this FETCH set: their FLAGS are reported.
    pub(super) seen_set: Vec<u32>,
    pub(super) stage: FetchStage,
}

/// Which answer the job waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FetchStage {
    Vanished,
    Metadata,
    Seen,
    Content,
}

impl ImapSession {
    /// Starts a FETCH: VANISHED (EARLIER) first when asked, else the first batch.
    pub(super) fn start_fetch(&mut self, now: Instant, job: FetchJob, vanished: bool) {
        match (&self.selected, job.changed_since) {
            (Some(view), Some(since)) if vanished => {
                let request = MailboxRequest::Changes {
                    mailbox: view.mailbox.clone(),
                    since_modseq: since,
                    known_uidnext: view.uidnext(),
                };
                let job = FetchJob {
                    stage: FetchStage::Vanished,
                    ..job
                };
                self.ask(now, request, Purpose::Fetch(Box::new(job)));
            }
            _ => self.fetch_next_batch(now, job),
        }
    }

    fn fetch_next_batch(&mut self, now: Instant, mut job: FetchJob) {
        let (Some(view), Some(uids)) = (&self.selected, job.batches.next()) else {
            let response = responses::tagged(&job.tag, Kind::Ok, None, "FETCH completed");
            // RFC 9051 §7.5.1: no EXPUNGE after a FETCH by sequence number.
            self.finish(now, response, job.by_uid);
            return;
        };
        let request = MailboxRequest::FetchMetadata {
            mailbox: view.mailbox.clone(),
            uids,
            changed_since: job.changed_since,
        };
        job.stage = FetchStage::Metadata;
        self.ask(now, request, Purpose::Fetch(Box::new(job)));
    }

    pub(super) fn on_fetch_answer(
        &mut self,
        now: Instant,
        mut job: FetchJob,
        answer: MailboxAnswer,
    ) {
        match (job.stage, answer) {
            (FetchStage::Vanished, MailboxAnswer::Changes(changes)) => {
                let gone = UidSet::from_uids(
                    changes
                        .expunged
                        .iter()
                        .copied()
                        .filter(|uid| job.asked.contains(*uid)),
                );
                if !gone.is_empty() {
                    self.send(format!("* VANISHED (EARLIER) {}\r\n", gone.to_imap()).into_bytes());
                }
                self.fetch_next_batch(now, job);
            }
            (FetchStage::Metadata, MailboxAnswer::Metadata(list)) => {
                let Some(view) = &self.selected else {
                    return;
                };
                job.batch = list
                    .into_iter()
                    .filter(|m| view.uids().seq_of(m.uid).is_some())
                    .collect();
                let unseen = UidSet::from_uids(
                    job.batch
                        .iter()
                        .filter(|m| !m.flags.iter().any(|f| f == "\\Seen"))
                        .map(|m| m.uid),
                );
                if job.plan.sets_seen() && !view.read_only && !unseen.is_empty() {
                    let request = MailboxRequest::Store {
                        mailbox: view.mailbox.clone(),
                        uids: unseen,
                        mode: FlagMode::Add,
                        flags: vec!["\\Seen".to_owned()],
                        unchanged_since: None,
                    };
                    job.stage = FetchStage::Seen;
                    self.ask(now, request, Purpose::Fetch(Box::new(job)));
                } else {
                    self.fetch_contents(now, job);
                }
            }
            (FetchStage::Seen, MailboxAnswer::Stored { changed, .. }) => {
                for message in &changed {
                    if let Some(entry) = job.batch.iter_mut().find(|m| m.uid == message.uid) {
                        entry.flags.clone_from(&message.flags);
                        entry.modseq = message.modseq;
                    }
                    job.seen_set.push(message.uid);
                }
                // The store's change report after this FETCH must not repeat these.
                self.reported_flags
                    .extend(changed.iter().map(|m| (m.uid, m.modseq)));
                self.changed = true;
                self.fetch_contents(now, job);
            }
            (
                FetchStage::Content,
                MailboxAnswer::Content {
                    envelope_sender,
                    bytes,
                },
            ) => {
                let Some(meta) = job.batch.pop_front() else {
                    return self.fetch_contents(now, job);
                };
                let seen = with_return_path(&envelope_sender, &bytes);
                let content = Content {
                    view: MessageView::parse(&seen, &crate::message::Limits::default()),
                };
                if self.send_fetch(&job, &meta, Some(&content)) {
                    self.fetch_contents(now, job);
                }
            }
            (FetchStage::Content, MailboxAnswer::Refused(_)) => {
                // Expunged by another session since the metadata: as Dovecot, the
                // message is left out and the others are still answered.
                job.batch.pop_front();
                self.fetch_contents(now, job);
            }
            (_, MailboxAnswer::Refused(refusal)) => {
                let (code, text) = responses::refusal(&refusal);
                self.rejected("FETCH", false);
                self.finish(
                    now,
                    responses::tagged(&job.tag, Kind::No, Some(code), &text),
                    job.by_uid,
                );
            }
            _ => {
                self.rejected("FETCH", false);
                let response =
                    responses::tagged(&job.tag, Kind::No, Some("SERVERBUG"), "Internal error");
                self.finish(now, response, job.by_uid);
            }
        }
    }

    /// Answers the batch's messages: at once from metadata, or asking each one's bytes.
    fn fetch_contents(&mut self, now: Instant, mut job: FetchJob) {
        loop {
            let Some(meta) = job.batch.front() else {
                return self.fetch_next_batch(now, job);
            };
            if job.plan.needs_content() {
                let Some(view) = &self.selected else {
                    return;
                };
                let request = MailboxRequest::FetchContent {
                    mailbox: view.mailbox.clone(),
                    uid: meta.uid,
                };
                job.stage = FetchStage::Content;
                return self.ask(now, request, Purpose::Fetch(Box::new(job)));
            }
            let Some(meta) = job.batch.pop_front() else {
                continue;
            };
            if !self.send_fetch(&job, &meta, None) {
                return;
            }
        }
    }

    /// Sends one message's response; false when it ended the command (UNKNOWN-CTE).
    fn send_fetch(
        &mut self,
        job: &FetchJob,
        meta: &MessageMetadata,
        content: Option<&Content<'_>>,
    ) -> bool {
        let Some(seq) = self
            .selected
            .as_ref()
            .and_then(|v| v.uids().seq_of(meta.uid))
        else {
            return true;
        };
        let extra_flags = job.seen_set.contains(&meta.uid);
        match fetch::render(&job.plan, seq, meta, content, extra_flags) {
            Ok(bytes) => {
                self.send(bytes);
                true
            }
            Err(fetch::UnknownCte(cte)) => {
                let text = format!(
                    "Unknown Content-Transfer-Encoding {}",
                    responses::sanitise(&cte)
                );
                self.rejected("FETCH", false);
                self.send(responses::tagged(
                    &job.tag,
                    Kind::No,
                    Some("UNKNOWN-CTE"),
                    &text,
                ));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_the_set_in_order_up_to_the_last_uid() {
        let set = UidSet::from_ranges([(1, 3), (u32::MAX - 1, u32::MAX)]);
        let mut batches = Batches::new(set, 2);
        let mut taken = Vec::new();
        while let Some(batch) = batches.next() {
            taken.push(batch.ranges().to_vec());
        }
        assert_eq!(
            taken,
            vec![
                vec![(1, 2)],
                vec![(3, 3), (u32::MAX - 1, u32::MAX - 1)],
                vec![(u32::MAX, u32::MAX)],
            ]
        );
    }
}
