//! The selected mailbox as this session's client knows it: the sequence number to
//! UID map, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, and the changes the store reported
//! that the client has not been told yet.
//!
//! RFC 9051 §7.5.1 forbids EXPUNGE responses while a FETCH, STORE or SEARCH by
//! sequence number runs (the numbers would shift under the client), so expunges
//! wait here until a permitted moment; new messages wait for the next EXISTS. The
//! map is kept as runs of consecutive UIDs while that is smaller (a mailbox of
//! 10,000 messages with few holes takes a few hundred bytes), else as plain UIDs
//! (4 bytes a message: 40 KB for 10,000, the worst case).

use crate::imap::request::{MailboxChanges, MessageMetadata, UidSet};

/// Consecutive UIDs `first .. first + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: u32,
    len: u32,
}

impl Run {
    fn last(self) -> u32 {
        self.first + (self.len - 1)
    }
}

/// How the UIDs are held: as runs while that is smaller, else one by one (4 bytes
/// a message), so the worst case never exceeds 4 bytes per message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Layout {
    Runs(Vec<Run>),
    Plain(Vec<u32>),
}

/// Ascending UIDs; sequence number `n` is the `n`-th UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidRuns {
    layout: Layout,
    count: u32,
}

impl Default for UidRuns {
    fn default() -> Self {
        UidRuns {
            layout: Layout::Runs(Vec::new()),
            count: 0,
        }
    }
}

impl UidRuns {
    /// From ascending UIDs; any UID not above its predecessor is skipped.
    pub fn from_ascending(uids: &[u32]) -> UidRuns {
        let mut runs = UidRuns::default();
        for &uid in uids {
            runs.push(uid);
        }
        runs.rebalance();
        runs
    }

    /// How many messages.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The highest UID, if any.
    pub fn max_uid(&self) -> Option<u32> {
        match &self.layout {
            Layout::Runs(runs) => runs.last().map(|run| run.last()),
            Layout::Plain(uids) => uids.last().copied(),
        }
    }

    /// Appends a UID above every other; false (and nothing changes) otherwise, or at 0.
    pub fn push(&mut self, uid: u32) -> bool {
        if uid == 0 || self.max_uid().is_some_and(|max| uid <= max) {
            return false;
        }
        match &mut self.layout {
            Layout::Runs(runs) => match runs.last_mut() {
                Some(run) if run.last().checked_add(1) == Some(uid) => run.len += 1,
                _ => runs.push(Run { first: uid, len: 1 }),
            },
            Layout::Plain(uids) => uids.push(uid),
        }
        self.count += 1;
        true
    }

    /// The UID at sequence number `seq` (1-based).
    pub fn uid_at(&self, seq: u32) -> Option<u32> {
        let mut index = seq.checked_sub(1)?;
        match &self.layout {
            Layout::Runs(runs) => {
                for run in runs {
                    if index < run.len {
                        return Some(run.first + index);
                    }
                    index -= run.len;
                }
                None
            }
            Layout::Plain(uids) => uids.get(index as usize).copied(),
        }
    }

    /// The sequence number of `uid`, if present.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        match &self.layout {
            Layout::Runs(runs) => {
                let mut before = 0u32;
                for run in runs {
                    if uid < run.first {
                        return None;
                    }
                    if uid <= run.last() {
                        return Some(before + (uid - run.first) + 1);
                    }
                    before += run.len;
                }
                None
            }
            Layout::Plain(uids) => uids
                .binary_search(&uid)
                .ok()
                .and_then(|index| u32::try_from(index + 1).ok()),
        }
    }

    /// Removes `uid`; its sequence number before removal.
    pub fn remove(&mut self, uid: u32) -> Option<u32> {
        let seq = self.seq_of(uid)?;
        match &mut self.layout {
            Layout::Runs(runs) => {
                let index = runs
                    .iter()
                    .position(|run| run.first <= uid && uid <= run.last())?;
                let run = runs[index];
                let before = uid - run.first;
                let after = run.len - before - 1;
                let mut replacement = Vec::with_capacity(2);
                if before > 0 {
                    replacement.push(Run {
                        first: run.first,
                        len: before,
                    });
                }
                if after > 0 {
                    replacement.push(Run {
                        first: uid + 1,
                        len: after,
                    });
                }
                runs.splice(index..=index, replacement);
            }
            Layout::Plain(uids) => {
                uids.remove(seq as usize - 1);
            }
        }
        self.count -= 1;
        Some(seq)
    }

    /// Every UID, ascending.
    pub fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match &self.layout {
            Layout::Runs(runs) => Box::new(runs.iter().flat_map(|run| run.first..=run.last())),
            Layout::Plain(uids) => Box::new(uids.iter().copied()),
        }
    }

    /// Heap bytes held: for the memory bound of idle sessions.
    pub fn heap_bytes(&self) -> usize {
        match &self.layout {
            Layout::Runs(runs) => runs.capacity() * core::mem::size_of::<Run>(),
            Layout::Plain(uids) => uids.capacity() * 4,
        }
    }

    /// Picks the smaller layout and gives back spare memory: after a SELECT, and
    /// after a burst of expunges or arrivals.
    pub fn rebalance(&mut self) {
        let runs_count = match &self.layout {
            Layout::Runs(runs) => runs.len(),
            Layout::Plain(uids) => {
                1 + uids
                    .windows(2)
                    .filter(|pair| pair[1] != pair[0] + 1)
                    .count()
            }
        };
        // A run takes 8 bytes, a plain UID 4.
        let want_runs = runs_count * 2 <= self.count as usize;
        self.layout = match (
            core::mem::replace(&mut self.layout, Layout::Plain(Vec::new())),
            want_runs,
        ) {
            (Layout::Plain(uids), true) => {
                let mut runs = UidRuns::default();
                for uid in uids {
                    runs.push(uid);
                }
                runs.layout
            }
            (Layout::Runs(runs), false) => {
                Layout::Plain(runs.iter().flat_map(|run| run.first..=run.last()).collect())
            }
            (layout, _) => layout,
        };
        match &mut self.layout {
            Layout::Runs(runs) => runs.shrink_to_fit(),
            Layout::Plain(uids) => uids.shrink_to_fit(),
        }
    }
}

/// Something the client must be told about the selected mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewReport {
    /// `* n EXPUNGE`: sequence numbers as they are when this report is read.
    Expunge(u32),
    /// `* VANISHED uids` (QRESYNC enabled, RFC 7162 §3.2.10).
    Vanished(UidSet),
    /// `* n EXISTS`.
    Exists(u32),
}

/// The selected mailbox did not survive: deleted, or its UIDVALIDITY changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxGone;

/// The session's view of its selected mailbox.
#[derive(Clone, Debug)]
pub struct SelectedView {
    pub mailbox: String,
    pub read_only: bool,
    uids: UidRuns,
    uidvalidity: u32,
    uidnext: u32,
    highest_modseq: u64,
    /// Expunged in the store, still in `uids` until reported; ascending.
    pending_expunged: Vec<u32>,
    /// New in the store, not yet in `uids`; ascending, all above `uids`.
    pending_added: Vec<u32>,
}

impl SelectedView {
    pub fn new(
        mailbox: String,
        read_only: bool,
        uidvalidity: u32,
        uidnext: u32,
        highest_modseq: u64,
        uids: &[u32],
    ) -> SelectedView {
        SelectedView {
            mailbox,
            read_only,
            uids: UidRuns::from_ascending(uids),
            uidvalidity,
            uidnext,
            highest_modseq,
            pending_expunged: Vec::new(),
            pending_added: Vec::new(),
        }
    }

    /// The messages the client knows of, sequence number order.
    pub fn uids(&self) -> &UidRuns {
        &self.uids
    }

    pub fn exists(&self) -> u32 {
        self.uids.len()
    }

    pub fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }

    pub fn uidnext(&self) -> u32 {
        self.uidnext
    }

    pub fn highest_modseq(&self) -> u64 {
        self.highest_modseq
    }

    /// Whether anything waits to be reported.
    pub fn has_pending(&self) -> bool {
        !self.pending_expunged.is_empty() || !self.pending_added.is_empty()
    }

    /// Takes in what the store reported. Flag changes of messages the client knows
    /// (and that are not waiting to be reported expunged) come back with their
    /// sequence numbers, to be sent at once: FETCH responses are allowed at any
    /// time. `limit` bounds the messages the view may hold; new messages beyond it
    /// are not shown.
    pub fn absorb(
        &mut self,
        changes: &MailboxChanges,
        limit: usize,
    ) -> Result<Vec<(u32, MessageMetadata)>, MailboxGone> {
        if changes.uidvalidity != self.uidvalidity {
            return Err(MailboxGone);
        }
        for &uid in &changes.expunged {
            if let Ok(index) = self.pending_added.binary_search(&uid) {
                self.pending_added.remove(index);
            } else if self.uids.seq_of(uid).is_some()
                && let Err(index) = self.pending_expunged.binary_search(&uid)
            {
                self.pending_expunged.insert(index, uid);
            }
        }
        for &uid in &changes.added {
            let above_view = self.uids.max_uid().is_none_or(|max| uid > max);
            let above_pending = self.pending_added.last().is_none_or(|&last| uid > last);
            let room = (self.uids.len() as usize).saturating_add(self.pending_added.len()) < limit;
            if above_view && above_pending && room && !changes.expunged.contains(&uid) {
                self.pending_added.push(uid);
            }
        }
        self.uidnext = self.uidnext.max(changes.uidnext);
        self.highest_modseq = self.highest_modseq.max(changes.highest_modseq);
        let mut flags = Vec::new();
        for message in &changes.changed {
            if self.pending_expunged.binary_search(&message.uid).is_ok() {
                continue;
            }
            if let Some(seq) = self.uids.seq_of(message.uid) {
                flags.push((seq, message.clone()));
            }
        }
        Ok(flags)
    }

    /// What to tell the client now. Expunges only when `expunge_allowed` (as
    /// VANISHED when `vanished`), highest sequence number first so that each number
    /// is right when read; then EXISTS if messages were added.
    pub fn report(&mut self, expunge_allowed: bool, vanished: bool) -> Vec<ViewReport> {
        let mut reports = Vec::new();
        if expunge_allowed && !self.pending_expunged.is_empty() {
            let gone = core::mem::take(&mut self.pending_expunged);
            if vanished {
                for &uid in &gone {
                    self.uids.remove(uid);
                }
                reports.push(ViewReport::Vanished(UidSet::from_uids(gone)));
            } else {
                for &uid in gone.iter().rev() {
                    if let Some(seq) = self.uids.remove(uid) {
                        reports.push(ViewReport::Expunge(seq));
                    }
                }
            }
        }
        if !self.pending_added.is_empty() {
            for uid in core::mem::take(&mut self.pending_added) {
                self.uids.push(uid);
            }
            reports.push(ViewReport::Exists(self.uids.len()));
        }
        if !reports.is_empty() {
            self.uids.rebalance();
        }
        reports
    }

    /// Heap bytes held: for the memory bound of idle sessions.
    pub fn heap_bytes(&self) -> usize {
        self.uids.heap_bytes()
            + self.mailbox.capacity()
            + (self.pending_expunged.capacity() + self.pending_added.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn changes(added: Vec<u32>, expunged: Vec<u32>) -> MailboxChanges {
        MailboxChanges {
            uidvalidity: 7,
            uidnext: added.last().map_or(1, |uid| uid + 1),
            highest_modseq: 1,
            added,
            expunged,
            changed: Vec::new(),
        }
    }

    #[test]
    fn runs_map_sequence_numbers() {
        let mut runs = UidRuns::from_ascending(&[1, 2, 3, 7, 8, 20]);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs.uid_at(4), Some(7));
        assert_eq!(runs.uid_at(6), Some(20));
        assert_eq!(runs.uid_at(7), None);
        assert_eq!(runs.uid_at(0), None);
        assert_eq!(runs.seq_of(8), Some(5));
        assert_eq!(runs.seq_of(5), None);
        assert_eq!(runs.remove(2), Some(2));
        assert_eq!(runs.iter().collect::<Vec<_>>(), vec![1, 3, 7, 8, 20]);
        assert!(!runs.push(20));
        assert!(runs.push(21));
        assert_eq!(runs.max_uid(), Some(21));
    }

    #[test]
    fn the_worst_case_is_four_bytes_a_message() {
        let uids: Vec<u32> = (1..=20_000).filter(|uid| uid % 2 == 0).collect();
        let runs = UidRuns::from_ascending(&uids);
        assert_eq!(runs.heap_bytes(), 40_000);
        assert_eq!(runs.seq_of(20_000), Some(10_000));
        assert_eq!(runs.uid_at(3), Some(6));
    }

    #[test]
    fn ten_thousand_messages_fit_in_little_memory() {
        let uids: Vec<u32> = (1..=10_000).filter(|uid| uid % 97 != 0).collect();
        let runs = UidRuns::from_ascending(&uids);
        assert!(runs.heap_bytes() < 2048, "{}", runs.heap_bytes());
    }

    #[test]
    fn expunges_wait_for_a_permitted_moment() {
        let mut view = SelectedView::new("INBOX".into(), false, 7, 5, 1, &[1, 2, 3, 4]);
        view.absorb(&changes(vec![5], vec![2, 4]), 100).unwrap();
        assert_eq!(view.report(false, false), vec![ViewReport::Exists(5)]);
        assert_eq!(
            view.uids().uid_at(2),
            Some(2),
            "still numbered as the client knows"
        );
        assert_eq!(
            view.report(true, false),
            vec![ViewReport::Expunge(4), ViewReport::Expunge(2)]
        );
        assert_eq!(view.uids().iter().collect::<Vec<_>>(), vec![1, 3, 5]);
    }

    #[test]
    fn vanished_reports_uids() {
        let mut view = SelectedView::new("INBOX".into(), false, 7, 5, 1, &[1, 2, 3, 4]);
        view.absorb(&changes(vec![], vec![2, 3]), 100).unwrap();
        assert_eq!(
            view.report(true, true),
            vec![ViewReport::Vanished(UidSet::from_uids([2, 3]))]
        );
    }

    #[test]
    fn another_uidvalidity_is_gone() {
        let mut view = SelectedView::new("INBOX".into(), false, 7, 5, 1, &[1]);
        let mut other = changes(vec![], vec![]);
        other.uidvalidity = 8;
        assert_eq!(view.absorb(&other, 100), Err(MailboxGone));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Arrive(u8),
        Expunge(u8),
        Report(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u8..4).prop_map(Step::Arrive),
            any::<u8>().prop_map(Step::Expunge),
            any::<bool>().prop_map(Step::Report),
        ]
    }

    proptest! {
        /// The client's idea of the mailbox, built only from the reports it was
        /// sent, always equals the view; UIDs only grow; EXISTS never shrinks the
        /// count below what the client was told minus reported expunges.
        #[test]
        fn the_client_and_the_view_agree(steps in proptest::collection::vec(step(), 0..60)) {
            let mut store: Vec<u32> = vec![1, 2, 3];
            let mut next_uid = 4u32;
            let mut view = SelectedView::new("INBOX".into(), false, 7, next_uid, 1, &store);
            let mut client: Vec<u32> = store.clone();
            for step in steps {
                match step {
                    Step::Arrive(count) => {
                        let added: Vec<u32> = (next_uid..next_uid + u32::from(count)).collect();
                        next_uid += u32::from(count);
                        store.extend(&added);
                        view.absorb(&changes(added, vec![]), 1_000).unwrap();
                    }
                    Step::Expunge(pick) => {
                        if !store.is_empty() {
                            let uid = store.remove(usize::from(pick) % store.len());
                            view.absorb(&changes(vec![], vec![uid]), 1_000).unwrap();
                        }
                    }
                    Step::Report(allowed) => {
                        for report in view.report(allowed, false) {
                            match report {
                                ViewReport::Expunge(seq) => {
                                    prop_assert!(allowed);
                                    prop_assert!(seq >= 1 && seq as usize <= client.len());
                                    client.remove(seq as usize - 1);
                                }
                                ViewReport::Exists(count) => {
                                    prop_assert!(count as usize >= client.len());
                                    // The client learns the new UIDs by fetching them.
                                    let fresh: Vec<u32> = view.uids().iter().skip(client.len()).collect();
                                    prop_assert_eq!(fresh.len(), count as usize - client.len());
                                    client.extend(fresh);
                                }
                                ViewReport::Vanished(_) => prop_assert!(false, "not asked for"),
                            }
                        }
                    }
                }
                prop_assert!(client.windows(2).all(|pair| pair[0] < pair[1]), "UIDs ascend");
                let known: Vec<u32> = view.uids().iter().collect();
                prop_assert_eq!(&known[..client.len()], &client[..]);
                for (index, uid) in client.iter().enumerate() {
                    prop_assert_eq!(view.uids().seq_of(*uid), Some(index as u32 + 1));
                    prop_assert_eq!(view.uids().uid_at(index as u32 + 1), Some(*uid));
                }
            }
            view.report(true, false);
            let known: Vec<u32> = view.uids().iter().collect();
            prop_assert_eq!(known, store);
        }
    }
}
