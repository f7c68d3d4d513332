//! What an IMAP session asks of the mailbox store, and what the store answers: the
//! whole interface between the session machine and the store and net drivers.
//!
//! The session never owns mail. Every request is about the authenticated user's
//! mailboxes (the user travels in `Output::Mailbox`); the store applies it and
//! answers with a [`MailboxAnswer`] under the same token. Decisions stay in core:
//! the store answers facts (which mailboxes exist, which UIDs, flags and MODSEQs
//! they hold, the bytes of a message), and the session chooses what the client
//! sees: pattern matching for LIST, sequence numbers, which changes may be
//! reported when (RFC 9051 §7.5.1), SEARCH matching and FETCH items (from the
//! metadata and bytes the store gives, through `core::message`).
//!
//! MODSEQ (RFC 7162): the store keeps one counter per mailbox that grows with every
//! change (a message added, its flags changed, a message expunged), stamps each
//! message with the value of its last change, and keeps the UIDs of expunged
//! messages with the value of their expunge (tombstones), so that "changes since N"
//! can be answered. Mailbox names are as the client sees them after decoding
//! (UTF-8; modified UTF-7 is decoded by the session), hierarchy delimiter `/`.

use crate::mailbox::{FlagMode, SpecialUse};

/// One request about the user's mailboxes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailboxRequest {
    /// SELECT or EXAMINE: the mailbox's state and its UIDs, and, for QRESYNC
    /// (RFC 7162 §3.2.5), what changed since the client's known state.
    /// Answered by [`MailboxAnswer::Selected`].
    Select {
        mailbox: String,
        /// EXAMINE: the session will not change the mailbox (no \Recent, no \Seen).
        read_only: bool,
        /// QRESYNC's "changes since modseq N" with UIDVALIDITY check: the store
        /// answers [`SelectedMailbox::changes`] only when `uidvalidity` matches.
        resync: Option<Resync>,
    },
    /// Every mailbox of the user, and the subscriptions, for LIST and LSUB. The
    /// session matches patterns and selection options itself. `with_status` asks
    /// for each existing mailbox's [`MailboxStatus`] too (LIST-STATUS, RFC 5819).
    /// Answered by [`MailboxAnswer::Mailboxes`].
    ListMailboxes { with_status: bool },
    /// STATUS of one mailbox. Answered by [`MailboxAnswer::Status`].
    Status { mailbox: String },
    /// CREATE, with the special use asked through RFC 6154 §5.2's USE parameter.
    /// Answered by [`MailboxAnswer::Done`].
    Create {
        mailbox: String,
        special_use: Option<SpecialUse>,
    },
    /// DELETE. Answered by [`MailboxAnswer::Done`].
    Delete { mailbox: String },
    /// RENAME (INBOX may not be renamed here: refused with `Cannot`). Answered by
    /// [`MailboxAnswer::Done`].
    Rename { from: String, to: String },
    /// SUBSCRIBE; a name need not exist (RFC 9051 §6.3.7). Answered by [`MailboxAnswer::Done`].
    Subscribe { mailbox: String },
    /// UNSUBSCRIBE. Answered by [`MailboxAnswer::Done`].
    Unsubscribe { mailbox: String },
    /// APPEND one message, durably before the answer. Answered by
    /// [`MailboxAnswer::Appended`] (for APPENDUID, RFC 4315).
    Append {
        mailbox: String,
        /// Canonical flag spellings (system flags as `\Seen`, keywords as atoms).
        flags: Vec<String>,
        /// Milliseconds since the Unix epoch; `None` means now.
        internal_date_ms: Option<i64>,
        message: Vec<u8>,
    },
    /// The metadata of messages in the selected mailbox, for FETCH of FLAGS, UID,
    /// INTERNALDATE, RFC822.SIZE, MODSEQ, and for SEARCH on them. UIDs that name no
    /// message are left out of the answer. Answered by [`MailboxAnswer::Metadata`].
    FetchMetadata {
        mailbox: String,
        uids: UidSet,
        /// CHANGEDSINCE (RFC 7162 §3.1.4.1): only messages whose MODSEQ is greater.
        changed_since: Option<u64>,
    },
    /// The stored bytes of one message, for ENVELOPE, BODYSTRUCTURE, BODY[...] and
    /// SEARCH on content (parsed in core). Answered by [`MailboxAnswer::Content`].
    /// The session asks for one message at a time, so a FETCH over many messages
    /// never holds more than one body.
    FetchContent { mailbox: String, uid: u32 },
    /// STORE flags on messages, with UNCHANGEDSINCE (RFC 7162 §3.1.3). Answered by
    /// [`MailboxAnswer::Stored`].
    Store {
        mailbox: String,
        uids: UidSet,
        mode: FlagMode,
        flags: Vec<String>,
        /// Only messages whose MODSEQ is at most this are changed; the others are
        /// answered in `MailboxAnswer::Stored::modified`.
        unchanged_since: Option<u64>,
    },
    /// COPY into another mailbox. Answered by [`MailboxAnswer::Copied`].
    Copy {
        from: String,
        to: String,
        uids: UidSet,
    },
    /// MOVE (RFC 6851): copy, then expunge the originals, atomically. Answered by
    /// [`MailboxAnswer::Copied`]; the expunges then show up as changes.
    Move {
        from: String,
        to: String,
        uids: UidSet,
    },
    /// EXPUNGE the messages flagged \Deleted; with `uids`, only those among them
    /// (UID EXPUNGE, RFC 4315). Answered by [`MailboxAnswer::Expunged`].
    Expunge {
        mailbox: String,
        uids: Option<UidSet>,
    },
    /// What changed in the selected mailbox since the session's last known state:
    /// for NOOP, IDLE, CHECK and the end of other commands. Answered by
    /// [`MailboxAnswer::Changes`].
    Changes {
        mailbox: String,
        /// The HIGHESTMODSEQ the session last saw: report changes above it.
        since_modseq: u64,
        /// The UIDNEXT the session last saw: messages from it on are new.
        known_uidnext: u32,
    },
}

/// QRESYNC's SELECT parameters (RFC 7162 §3.2.5), as far as the store must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resync {
    pub uidvalidity: u32,
    pub since_modseq: u64,
    /// The UIDs the client knows; `None` means all.
    pub known_uids: Option<UidSet>,
}

/// UIDs as ascending, disjoint inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UidSet {
    ranges: Vec<(u32, u32)>,
}

impl UidSet {
    /// The set holding these ranges (in any order, overlapping or not).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> UidSet {
        let mut ranges: Vec<(u32, u32)> = ranges
            .into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        UidSet { ranges: merged }
    }

    /// The set of these UIDs.
    pub fn from_uids(uids: impl IntoIterator<Item = u32>) -> UidSet {
        UidSet::from_ranges(uids.into_iter().map(|uid| (uid, uid)))
    }

    /// Ascending, disjoint, non-adjacent ranges.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    pub fn contains(&self, uid: u32) -> bool {
        self.ranges
            .binary_search_by(|&(start, end)| {
                if end < uid {
                    core::cmp::Ordering::Less
                } else if start > uid {
                    core::cmp::Ordering::Greater
                } else {
                    core::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The IMAP sequence-set text (`1:3,7`).
    pub fn to_imap(&self) -> String {
        let mut text = String::new();
        for (index, (start, end)) in self.ranges.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            if start == end {
                text.push_str(&start.to_string());
            } else {
                text.push_str(&format!("{start}:{end}"));
            }
        }
        text
    }
}

/// The store's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailboxAnswer {
    Selected(SelectedMailbox),
    Mailboxes(Vec<ListedMailbox>),
    Status(MailboxStatus),
    /// CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE succeeded.
    Done,
    Appended {
        uidvalidity: u32,
        uid: u32,
    },
    /// By ascending UID.
    Metadata(Vec<MessageMetadata>),
    /// One message as stored, and its envelope sender (empty for the null
    /// reverse-path), from which the session writes the Return-Path the reader sees.
    Content {
        envelope_sender: String,
        bytes: Vec<u8>,
    },
    Stored {
        /// The messages changed, with their new flags and MODSEQ.
        changed: Vec<MessageMetadata>,
        /// The UIDs left alone because their MODSEQ was above UNCHANGEDSINCE.
        modified: UidSet,
    },
    /// (source UID, target UID) pairs by ascending source UID, for COPYUID.
    Copied {
        uidvalidity: u32,
        uids: Vec<(u32, u32)>,
    },
    /// The UIDs expunged, ascending.
    Expunged(Vec<u32>),
    Changes(MailboxChanges),
    /// The request was refused; nothing changed.
    Refused(MailboxRefusal),
}

/// A mailbox as SELECT/EXAMINE opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedMailbox {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    /// Every message's UID, ascending.
    pub uids: Vec<u32>,
    /// The UID of the first message without \Seen (for IMAP4rev1's UNSEEN code).
    pub first_unseen: Option<u32>,
    /// Keywords in use, for FLAGS and PERMANENTFLAGS.
    pub keywords: Vec<String>,
    /// The user may not change this mailbox (shared read-only): SELECT answers READ-ONLY.
    pub read_only: bool,
    /// With [`Resync`] and a matching UIDVALIDITY: the changes since its MODSEQ.
    pub changes: Option<MailboxChanges>,
}

/// One mailbox (or subscription) for LIST and LSUB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedMailbox {
    pub name: String,
    /// False for a subscription whose mailbox does not exist (LIST \NonExistent).
    pub exists: bool,
    pub subscribed: bool,
    pub special_use: Option<SpecialUse>,
    /// With `ListMailboxes { with_status: true }`, for existing mailboxes.
    pub status: Option<MailboxStatus>,
}

/// The counters STATUS reports (RFC 9051 §6.3.11, RFC 7162, RFC 8438's SIZE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub unseen: u32,
    pub deleted: u32,
    /// Total octets of the messages.
    pub size: u64,
    pub highest_modseq: u64,
}

/// What the store knows of one message, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMetadata {
    pub uid: u32,
    /// Canonical spellings, sorted.
    pub flags: Vec<String>,
    pub modseq: u64,
    pub internal_date_ms: i64,
    /// Octets as stored, without the Return-Path field the reader sees.
    pub size: u64,
    /// The envelope sender (empty for the null reverse-path): with `size`, the
    /// RFC822.SIZE a reader sees without asking for the bytes.
    pub envelope_sender: String,
}

/// Changes in one mailbox since a MODSEQ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxChanges {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    /// Messages from the known UIDNEXT on that still exist, ascending.
    pub added: Vec<u32>,
    /// Messages expunged since the MODSEQ, ascending (tombstones).
    pub expunged: Vec<u32>,
    /// Existing messages changed since the MODSEQ (flags), ascending by UID.
    pub changed: Vec<MessageMetadata>,
}

/// Why the store refused a request. The session maps each to a response code
/// (RFC 5530).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailboxRefusal {
    /// \[NONEXISTENT\]
    NoSuchMailbox,
    /// \[ALREADYEXISTS\]
    AlreadyExists,
    /// \[CANNOT\]: INBOX deleted or renamed, MOVE into the same mailbox, an invalid name.
    Cannot(String),
    /// \[OVERQUOTA\]
    OverQuota,
    /// \[TOOBIG\]
    TooBig,
    /// \[LIMIT\]: UIDs or flags exhausted.
    Limit(String),
    /// \[UNAVAILABLE\]: the store could not answer now; try again later.
    Unavailable,
}
