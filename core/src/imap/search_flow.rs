//! SEARCH and UID SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 7162 MODSEQ): the
//! keys are matched by `core::message::search`, message by message, from the
//! metadata of a bounded batch and, only when a key reads the content, each
//! message's bytes one at a time. Results are `* SEARCH` for IMAP4rev1 clients and
//! `* ESEARCH` for clients that enabled IMAP4rev2 or asked RETURN.

use super::fetch::reader_size;
use super::fetch_flow::Batches;
use super::request::{MailboxAnswer, MailboxRequest, MessageMetadata, UidSet};
use super::responses::{self, Kind};
use super::{ImapSession, Purpose};
use crate::message::search::matches_all;
use crate::message::{MessageMeta, MessageView, with_return_path};
use crate::time::Instant;
use imap_types::IntoStatic;
use imap_types::datetime::DateTime;
use imap_types::flag::Flag;
use imap_types::search::SearchKey;
use std::collections::VecDeque;
use std::num::NonZeroU32;

/// RFC 4731's RETURN options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ReturnOptions {
    pub(super) min: bool,
    pub(super) max: bool,
    pub(super) count: bool,
    pub(super) all: bool,
}

/// `tag [UID] SEARCH RETURN (...) criteria`: the command without its RETURN
/// clause (imap-codec does not parse it), and the options. `None` when the command
/// has no RETURN clause or an option this server does not know.
pub(super) fn strip_return(command: &[u8]) -> Option<(Vec<u8>, ReturnOptions)> {
    // The clause sits right after a tag of at most 64 octets: look only at the
    // start, so that a large command (APPEND's message) is never copied here.
    const HEAD_BOUND: usize = 256;
    let upper = command
        .get(..command.len().min(HEAD_BOUND))?
        .to_ascii_uppercase();
    let mut pos = upper.iter().position(|&b| b == b' ')? + 1;
    if upper.get(pos..)?.starts_with(b"UID ") {
        pos += 4;
    }
    const HEAD: &[u8] = b"SEARCH RETURN (";
    if !upper.get(pos..)?.starts_with(HEAD) {
        return None;
    }
    let list_start = pos + HEAD.len();
    let close = list_start + upper.get(list_start..)?.iter().position(|&b| b == b')')?;
    let mut options = ReturnOptions::default();
    for word in upper.get(list_start..close)?.split(|&b| b == b' ') {
        match word {
            b"" => {}
            b"MIN" => options.min = true,
            b"MAX" => options.max = true,
            b"COUNT" => options.count = true,
            b"ALL" => options.all = true,
            _ => return None,
        }
    }
    // RFC 4731 §3.1: RETURN () means ALL.
    if options == ReturnOptions::default() {
        options.all = true;
    }
    let mut stripped = command.get(..pos + b"SEARCH".len())?.to_vec();
    stripped.extend_from_slice(command.get(close + 1..)?);
    Some((stripped, options))
}

/// Whether a key reads the message's bytes (header fields, body, sent date).
fn needs_content(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_content),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::Not(k) => needs_content(k),
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_) => true,
        _ => false,
    }
}

pub(super) fn uses_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::ModSequence { .. } => true,
        _ => false,
    }
}

/// LARGER and SMALLER decided from the metadata's size, so that a search on
/// metadata alone never needs the bytes (the view it runs on is empty).
fn sizes_decided(key: &SearchKey<'static>, size: u64) -> SearchKey<'static> {
    let decided = |yes: bool| {
        if yes {
            SearchKey::All
        } else {
            SearchKey::Not(Box::new(SearchKey::All))
        }
    };
    match key {
        SearchKey::Larger(n) => decided(size > u64::from(*n)),
        SearchKey::Smaller(n) => decided(size < u64::from(*n)),
        SearchKey::Not(k) => SearchKey::Not(Box::new(sizes_decided(k, size))),
        SearchKey::Or(a, b) => SearchKey::Or(
            Box::new(sizes_decided(a, size)),
            Box::new(sizes_decided(b, size)),
        ),
        SearchKey::And(keys) => {
            let mapped: Vec<SearchKey<'static>> = keys
                .as_ref()
                .iter()
                .map(|k| sizes_decided(k, size))
                .collect();
            match imap_types::core::Vec1::try_from(mapped) {
                Ok(keys) => SearchKey::And(keys),
                Err(_) => SearchKey::All,
            }
        }
        other => other.clone(),
    }
}

/// One SEARCH command in progress.
#[derive(Debug)]
pub(super) struct SearchJob {
    pub(super) tag: String,
    pub(super) by_uid: bool,
    pub(super) keys: Vec<SearchKey<'static>>,
    /// `Some` for ESEARCH (asked with RETURN, or the client enabled IMAP4rev2).
    pub(super) returns: Option<ReturnOptions>,
    pub(super) batches: Batches,
    pub(super) batch: VecDeque<MessageMetadata>,
    /// Matching messages: (sequence number or UID, MODSEQ).
    pub(super) hits: Vec<(u32, u64)>,
    pub(super) content_stage: bool,
}

impl SearchJob {
    fn needs_content(&self) -> bool {
        self.keys.iter().any(needs_content)
    }
}

impl ImapSession {
    pub(super) fn search_next_batch(&mut self, now: Instant, mut job: SearchJob) {
        let (Some(view), Some(uids)) = (&self.selected, job.batches.next()) else {
            return self.search_done(now, job);
        };
        let request = MailboxRequest::FetchMetadata {
            mailbox: view.mailbox.clone(),
            uids,
            changed_since: None,
        };
        job.content_stage = false;
        self.ask(now, request, Purpose::Search(Box::new(job)));
    }

    pub(super) fn on_search_answer(
        &mut self,
        now: Instant,
        mut job: SearchJob,
        answer: MailboxAnswer,
    ) {
        match answer {
            MailboxAnswer::Metadata(list) if !job.content_stage => {
                job.batch = list.into();
                self.search_batch(now, job);
            }
            MailboxAnswer::Content {
                envelope_sender,
                bytes,
            } if job.content_stage => {
                if let Some(meta) = job.batch.pop_front() {
                    let seen = with_return_path(&envelope_sender, &bytes);
                    let view = MessageView::parse(&seen, &crate::message::Limits::default());
                    self.judge(&mut job, &meta, &view, false);
                }
                self.search_batch(now, job);
            }
            MailboxAnswer::Refused(_) if job.content_stage => {
                // Expunged meanwhile: it matches nothing.
                job.batch.pop_front();
                self.search_batch(now, job);
            }
            MailboxAnswer::Refused(refusal) => {
                let (code, text) = responses::refusal(&refusal);
                self.rejected("SEARCH", false);
                self.finish(
                    now,
                    responses::tagged(&job.tag, Kind::No, Some(code), &text),
                    job.by_uid,
                );
            }
            _ => {
                self.rejected("SEARCH", false);
                let response =
                    responses::tagged(&job.tag, Kind::No, Some("SERVERBUG"), "Internal error");
                self.finish(now, response, job.by_uid);
            }
        }
    }

    fn search_batch(&mut self, now: Instant, mut job: SearchJob) {
        let empty = MessageView::parse(b"", &crate::message::Limits::default());
        loop {
            let Some(meta) = job.batch.front() else {
                return self.search_next_batch(now, job);
            };
            if job.needs_content() {
                let Some(view) = &self.selected else {
                    return;
                };
                let request = MailboxRequest::FetchContent {
                    mailbox: view.mailbox.clone(),
                    uid: meta.uid,
                };
                job.content_stage = true;
                return self.ask(now, request, Purpose::Search(Box::new(job)));
            }
            if let Some(meta) = job.batch.pop_front() {
                self.judge(&mut job, &meta, &empty, true);
            }
        }
    }

    /// Matches one message and records it if it matches.
    fn judge(
        &self,
        job: &mut SearchJob,
        meta: &MessageMetadata,
        view: &MessageView<'_>,
        metadata_only: bool,
    ) {
        let Some(selected) = &self.selected else {
            return;
        };
        let (Some(seq), Some(uid)) = (selected.uids().seq_of(meta.uid), NonZeroU32::new(meta.uid))
        else {
            return;
        };
        let flags: Vec<Flag<'static>> = meta
            .flags
            .iter()
            .filter_map(|f| Flag::try_from(f.as_str()).ok().map(IntoStatic::into_static))
            .collect();
        // IMAP dates have whole seconds (RFC 9051 `date-time`); imap-types refuses
        // a date with a fraction, and stores keep milliseconds.
        let date = chrono::DateTime::from_timestamp(meta.internal_date_ms.div_euclid(1000), 0)
            .unwrap_or_default()
            .fixed_offset();
        let Ok(internal_date) = DateTime::try_from(date) else {
            return;
        };
        let Some(seq_nz) = NonZeroU32::new(seq) else {
            return;
        };
        let largest_seq = NonZeroU32::new(selected.exists()).unwrap_or(seq_nz);
        let largest_uid = selected
            .uids()
            .max_uid()
            .and_then(NonZeroU32::new)
            .unwrap_or(uid);
        let message = MessageMeta {
            seq: seq_nz,
            uid,
            flags: &flags,
            recent: false,
            internal_date: &internal_date,
            modseq: meta.modseq,
            largest_seq,
            largest_uid,
        };
        let matched = if metadata_only {
            let size = reader_size(meta);
            let keys: Vec<SearchKey<'static>> =
                job.keys.iter().map(|k| sizes_decided(k, size)).collect();
            matches_all(view, &message, &keys)
        } else {
            matches_all(view, &message, &job.keys)
        };
        if matched {
            let id = if job.by_uid { meta.uid } else { seq };
            job.hits.push((id, meta.modseq));
        }
    }

    fn search_done(&mut self, now: Instant, job: SearchJob) {
        let modseq = job
            .keys
            .iter()
            .any(uses_modseq)
            .then(|| job.hits.iter().map(|h| h.1).max())
            .flatten();
        let line = match job.returns {
            None => {
                let mut line = String::from("* SEARCH");
                for (id, _) in &job.hits {
                    line.push_str(&format!(" {id}"));
                }
                if let Some(modseq) = modseq {
                    line.push_str(&format!(" (MODSEQ {modseq})"));
                }
                line
            }
            Some(options) => {
                let mut line = format!("* ESEARCH (TAG \"{}\")", job.tag);
                if job.by_uid {
                    line.push_str(" UID");
                }
                let ids = || job.hits.iter().map(|h| h.0);
                if options.min
                    && let Some(min) = ids().min()
                {
                    line.push_str(&format!(" MIN {min}"));
                }
                if options.max
                    && let Some(max) = ids().max()
                {
                    line.push_str(&format!(" MAX {max}"));
                }
                if options.count {
                    line.push_str(&format!(" COUNT {}", job.hits.len()));
                }
                if options.all && !job.hits.is_empty() {
                    line.push_str(&format!(" ALL {}", UidSet::from_uids(ids()).to_imap()));
                }
                if let Some(modseq) = modseq {
                    line.push_str(&format!(" MODSEQ {modseq}"));
                }
                line
            }
        };
        self.send(format!("{line}\r\n").into_bytes());
        let response = responses::tagged(&job.tag, Kind::Ok, None, "SEARCH completed");
        self.finish(now, response, job.by_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_clause_is_taken_out() {
        let (rest, options) =
            strip_return(b"a UID search return (min COUNT) FROM x\r\n").expect("RETURN");
        assert_eq!(rest, b"a UID search FROM x\r\n");
        assert_eq!(
            options,
            ReturnOptions {
                min: true,
                count: true,
                ..ReturnOptions::default()
            }
        );
        let (_, options) = strip_return(b"b SEARCH RETURN () ALL\r\n").expect("RETURN");
        assert!(options.all && !options.min);
        assert_eq!(strip_return(b"c SEARCH ALL\r\n"), None);
        assert_eq!(strip_return(b"d SEARCH RETURN (SAVE) ALL\r\n"), None);
    }
}
