//! The open maildrop of a session in TRANSACTION: the driver's listing, which
//! messages are marked deleted, and what the client may see (RFC 1939 §5: a
//! deleted message is no longer listed, counted or retrievable).

use crate::pop3::io::{MaildropEntry, MessageRef};
use std::collections::HashSet;

#[derive(Debug)]
pub(super) struct Maildrop {
    entries: Vec<MaildropEntry>,
    deleted: Vec<bool>,
}

/// Why a listing cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListingError {
    TooLarge,
    Malformed,
}

/// RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
pub(super) fn valid_uid(uid: &str) -> bool {
    (1..=70).contains(&uid.len()) && uid.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl Maildrop {
    pub(super) fn open(
        entries: Vec<MaildropEntry>,
        max_messages: usize,
    ) -> Result<Maildrop, ListingError> {
        if entries.len() > max_messages {
            return Err(ListingError::TooLarge);
        }
        let mut seen = HashSet::with_capacity(entries.len());
        if !entries
            .iter()
            .all(|entry| valid_uid(&entry.uid) && seen.insert(entry.uid.as_str()))
        {
            return Err(ListingError::Malformed);
        }
        let deleted = vec![false; entries.len()];
        Ok(Maildrop { entries, deleted })
    }

    /// The message with this number (1-based), unless it is deleted or absent.
    pub(super) fn get(&self, number: u64) -> Option<(usize, &MaildropEntry)> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        match (self.entries.get(index), self.deleted.get(index)) {
            (Some(entry), Some(false)) => Some((index, entry)),
            _ => None,
        }
    }

    /// Every message not deleted, with its number.
    pub(super) fn visible(&self) -> impl Iterator<Item = (usize, &MaildropEntry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.deleted[*index])
            .map(|(index, entry)| (index + 1, entry))
    }

    /// The count and total size of the messages not deleted (STAT).
    pub(super) fn stat(&self) -> (usize, u64) {
        self.visible().fold((0, 0), |(count, octets), (_, entry)| {
            (count + 1, octets.saturating_add(entry.size))
        })
    }

    pub(super) fn delete(&mut self, index: usize) {
        if let Some(flag) = self.deleted.get_mut(index) {
            *flag = true;
        }
    }

    /// RSET: every deletion mark removed.
    pub(super) fn reset(&mut self) {
        self.deleted.fill(false);
    }

    pub(super) fn deleted(&self) -> Vec<MessageRef> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, _)| self.deleted[*index])
            .map(|(index, entry)| MessageRef {
                index,
                uid: entry.uid.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: &str, size: u64) -> MaildropEntry {
        MaildropEntry {
            uid: uid.into(),
            size,
        }
    }

    #[test]
    fn deleted_messages_disappear_until_reset() {
        let mut drop = Maildrop::open(vec![entry("7.1", 10), entry("7.2", 20)], 10).unwrap();
        assert_eq!(drop.stat(), (2, 30));
        drop.delete(0);
        assert_eq!(drop.stat(), (1, 20));
        assert!(drop.get(1).is_none());
        assert_eq!(drop.get(2).map(|(i, _)| i), Some(1));
        assert!(drop.get(0).is_none() && drop.get(3).is_none());
        assert_eq!(
            drop.deleted(),
            vec![MessageRef {
                index: 0,
                uid: "7.1".into()
            }]
        );
        drop.reset();
        assert_eq!(drop.stat(), (2, 30));
        assert!(drop.deleted().is_empty());
    }

    #[test]
    fn listings_are_checked() {
        assert_eq!(
            Maildrop::open(vec![entry("1", 1), entry("2", 1)], 1).err(),
            Some(ListingError::TooLarge)
        );
        for bad in ["", "a b", &"x".repeat(71), "caf\u{e9}"] {
            assert_eq!(
                Maildrop::open(vec![entry(bad, 1)], 10).err(),
                Some(ListingError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            Maildrop::open(vec![entry("1.1", 1), entry("1.1", 2)], 10).err(),
            Some(ListingError::Malformed)
        );
    }
}
