//! The mailbox model: the reference semantics of mail storage (users, folders,
//! UIDs, flags, idempotent delivery) as a pure data structure. The SQL store in
//! `net` implements the same [`Operation`]s and is tested against this model.
//!
//! Choices where the RFCs leave room, made once here for every store:
//! - UIDVALIDITY comes from a per-user counter that only grows, starting at a base
//!   chosen when the user is created (the store uses the creation time in seconds).
//!   Every folder ever created for a user gets a distinct value, so a folder
//!   deleted and created again under the same name never reuses a UIDVALIDITY
//!   (RFC 9051 §2.3.1.1).
//! - RENAME keeps the folder's UIDVALIDITY, UIDs and UIDNEXT: the folder is the
//!   same, only its name changed, and its UIDVALIDITY was never used by any
//!   other folder of that user, so clients that cached the old name cannot confuse
//!   the two (RFC 9051 §6.3.6 allows either; keeping it avoids a full resync).
//! - INBOX (any case) can be neither deleted nor renamed; other names are
//!   case-sensitive and flat (no hierarchy semantics).
//! - System flags are matched case-insensitively and stored in their canonical
//!   spelling; keywords are IMAP atoms, kept and compared as written. `\Recent`
//!   is a session property, not stored.
//! - MOVE into the same folder is refused; COPY into it makes copies.
//! - Delivery goes to INBOX and is idempotent per (user, delivery key), even
//!   after the delivered message was moved or expunged.
//! - MODSEQ (RFC 7162): every folder counts its own modification sequence,
//!   starting at [`FIRST_MODSEQ`]. An operation that changes a folder advances
//!   its HIGHESTMODSEQ by exactly one, and every message it adds or changes there
//!   takes that value (RFC 7162 §3.1 lets one command's changes share one). A
//!   flag change that leaves a message's flags as they were changes nothing, not
//!   even the MODSEQ. RENAME keeps the sequence; a folder created again starts
//!   over, under a new UIDVALIDITY.
//! - Every expunged message (EXPUNGE, MOVE out) leaves a tombstone: its UID and
//!   the MODSEQ of its expunge, so that [`MailboxModel::changes_since`] can tell
//!   VANISHED (EARLIER). A folder keeps the last
//!   [`MailboxLimits::tombstones_per_folder`] of them (by MODSEQ, then UID) and
//!   remembers the highest MODSEQ it let go (`vanished_floor`): a client whose
//!   MODSEQ is below it gets `vanished_complete: false` and resynchronises
//!   fully (RFC 7162 §3.2.5.2 allows the server that answer).
//! - Subscriptions (RFC 9051 §6.3.7) are names, not folders: a name may be
//!   subscribed whether or not it exists, DELETE leaves it subscribed, and RENAME
//!   moves no subscription (the server "MUST NOT unilaterally remove an existing
//!   mailbox name from the subscription list"). Both directions are idempotent.
//! - Each message keeps its envelope sender (the SMTP reverse-path without angle
//!   brackets, empty for the null path and for APPEND), copied by COPY and MOVE:
//!   core writes the Return-Path field from it on read (RFC 5321 §4.4).
//! - A COPY or MOVE between the Junk special-use folder and any other folder is
//!   a [`JunkEvent`] in the outcome (the store records it), for the classifier:
//!   into Junk is a user calling a message spam, out of it the opposite. A
//!   folder's special use goes with it on RENAME.

mod changes;
mod envelope;
mod model;
mod names;

pub use changes::{
    ChangedMessage, Changes, FIRST_MODSEQ, FolderStatus, JunkDirection, JunkEvent, MailboxLimits,
};
pub use envelope::{envelope_sender, return_path_field};
pub use model::{MailboxModel, appended_flags, junk_direction};
pub use names::{MAX_FLAG_LENGTH, MAX_FOLDER_NAME_LENGTH, normalise_flag, normalise_folder_name};

use std::collections::{BTreeMap, BTreeSet};

/// The folder every user has and that cannot go away.
pub const INBOX: &str = "INBOX";

/// The special-use folders (RFC 6154) created with every user, after INBOX.
pub const STANDARD_FOLDERS: [SpecialUse; 5] = [
    SpecialUse::Sent,
    SpecialUse::Drafts,
    SpecialUse::Junk,
    SpecialUse::Trash,
    SpecialUse::Archive,
];

/// The role of a special-use folder (RFC 6154).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Junk,
    Trash,
    Archive,
}

impl SpecialUse {
    /// The folder name created for it.
    pub fn folder_name(self) -> &'static str {
        match self {
            SpecialUse::Sent => "Sent",
            SpecialUse::Drafts => "Drafts",
            SpecialUse::Junk => "Junk",
            SpecialUse::Trash => "Trash",
            SpecialUse::Archive => "Archive",
        }
    }
    /// The LIST attribute (`\Sent`, …).
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Archive => "\\Archive",
        }
    }
    /// The inverse of [`SpecialUse::attribute`].
    pub fn from_attribute(text: &str) -> Option<SpecialUse> {
        STANDARD_FOLDERS
            .into_iter()
            .find(|special| special.attribute().eq_ignore_ascii_case(text))
    }
}

/// How a flag operation changes the flags of each addressed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagMode {
    /// Replace the flags (`STORE FLAGS`).
    Set,
    /// Add to them (`STORE +FLAGS`).
    Add,
    /// Remove from them (`STORE -FLAGS`).
    Remove,
}

/// One change to mail storage. UIDs that name no message are ignored, as IMAP's
/// UID commands do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Creates a user with INBOX and the special-use folders; their UIDVALIDITY
    /// values are `uidvalidity_base`, `uidvalidity_base + 1`, … in that order.
    AddUser {
        user: String,
        uidvalidity_base: u32,
    },
    /// Puts a message into the user's INBOX unless `delivery_key` was delivered before.
    Deliver {
        user: String,
        delivery_key: String,
        blob: String,
        size: u64,
        internal_date_ms: i64,
        /// The SMTP reverse-path without angle brackets; empty for the null path.
        reverse_path: String,
    },
    /// Puts a message into a folder that exists (IMAP APPEND): no envelope
    /// sender. Refused with [`MailboxError::NoSuchFolder`] otherwise (TRYCREATE).
    Append {
        user: String,
        folder: String,
        flags: Vec<String>,
        internal_date_ms: i64,
        blob: String,
        size: u64,
    },
    /// Changes the flags of the given messages. With `unchanged_since` (RFC 7162
    /// UNCHANGEDSINCE), a message whose MODSEQ is above it is left alone and
    /// reported as modified.
    StoreFlags {
        user: String,
        folder: String,
        uids: Vec<u32>,
        mode: FlagMode,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    },
    /// Removes every message flagged `\Deleted`; with `uids`, only those among
    /// them (IMAP's UID EXPUNGE, RFC 4315 §2.1), leaving the other `\Deleted` ones.
    Expunge {
        user: String,
        folder: String,
        uids: Option<Vec<u32>>,
    },
    /// Copies messages (flags, internal date and envelope sender kept) with new
    /// UIDs in `to`. `at_ms` (milliseconds since the Unix epoch) dates any
    /// [`JunkEvent`].
    Copy {
        user: String,
        from: String,
        to: String,
        uids: Vec<u32>,
        at_ms: i64,
    },
    /// Like copy, then removes the originals (RFC 6851).
    Move {
        user: String,
        from: String,
        to: String,
        uids: Vec<u32>,
        at_ms: i64,
    },
    CreateFolder {
        user: String,
        name: String,
    },
    /// Deletes a folder and its messages.
    DeleteFolder {
        user: String,
        name: String,
    },
    RenameFolder {
        user: String,
        from: String,
        to: String,
    },
    /// Adds a name to the user's subscriptions (it need not exist).
    Subscribe {
        user: String,
        name: String,
    },
    /// Removes a name from the user's subscriptions (subscribed or not).
    Unsubscribe {
        user: String,
        name: String,
    },
}

impl Operation {
    /// The user the operation acts on.
    pub fn user(&self) -> &str {
        match self {
            Operation::AddUser { user, .. }
            | Operation::Deliver { user, .. }
            | Operation::Append { user, .. }
            | Operation::StoreFlags { user, .. }
            | Operation::Expunge { user, .. }
            | Operation::Copy { user, .. }
            | Operation::Move { user, .. }
            | Operation::CreateFolder { user, .. }
            | Operation::DeleteFolder { user, .. }
            | Operation::RenameFolder { user, .. }
            | Operation::Subscribe { user, .. }
            | Operation::Unsubscribe { user, .. } => user,
        }
    }
}

/// What an operation did, as far as a client can tell.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    UserAdded,
    Delivered {
        uid: u32,
    },
    /// The delivery key was seen before; nothing changed.
    AlreadyDelivered,
    /// The UID of the appended message in a folder of that UIDVALIDITY (APPENDUID).
    Appended {
        uidvalidity: u32,
        uid: u32,
    },
    /// `uids`: the addressed messages that exist and were not `modified`,
    /// ascending (their flags are now as asked); `modified`: those left alone
    /// because their MODSEQ was above UNCHANGEDSINCE, ascending (RFC 7162 MODIFIED).
    FlagsStored {
        uids: Vec<u32>,
        modified: Vec<u32>,
    },
    /// The UIDs removed, ascending.
    Expunged {
        uids: Vec<u32>,
    },
    /// (source UID, new UID in the target) pairs, by ascending source UID (COPYUID).
    /// `junk`: one event per message, by ascending source UID, when exactly one
    /// of the two folders is the Junk folder.
    Copied {
        uids: Vec<(u32, u32)>,
        junk: Vec<JunkEvent>,
    },
    Moved {
        uids: Vec<(u32, u32)>,
        junk: Vec<JunkEvent>,
    },
    FolderCreated {
        uidvalidity: u32,
    },
    FolderDeleted,
    FolderRenamed,
    Subscribed,
    Unsubscribed,
}

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MailboxError {
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("user exists already: {0}")]
    UserExists(String),
    #[error("no such folder: {0}")]
    NoSuchFolder(String),
    #[error("folder exists already: {0}")]
    FolderExists(String),
    #[error("INBOX cannot be deleted or renamed")]
    InboxIsPermanent,
    #[error("invalid folder name {0:?}")]
    InvalidFolderName(String),
    #[error("invalid flag {0:?}")]
    InvalidFlag(String),
    #[error("a message can carry at most {0} flags")]
    TooManyFlags(usize),
    #[error("cannot move messages into the folder they are in")]
    SameFolder,
    #[error("folder {0} has used up its UIDs")]
    UidsExhausted(String),
    #[error("user {0} has used up its UIDVALIDITY values")]
    UidValidityExhausted(String),
    #[error("a user can subscribe to at most {0} names")]
    TooManySubscriptions(usize),
}

/// One message as a client can observe it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageObservation {
    pub uid: u32,
    /// Canonical spellings, sorted by byte order.
    pub flags: Vec<String>,
    pub size: u64,
    pub blob: String,
    pub internal_date_ms: i64,
    pub modseq: u64,
    /// The envelope sender without angle brackets; empty for none.
    pub reverse_path: String,
}

/// One of a user's folders, as IMAP's LIST needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FolderEntry {
    /// The canonical name (`INBOX` upper-cased, `/` as the delimiter).
    pub name: String,
    pub special_use: Option<SpecialUse>,
}

/// One folder as a client can observe it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FolderObservation {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub special_use: Option<SpecialUse>,
    pub highestmodseq: u64,
    /// The tombstones kept: (UID, MODSEQ of its expunge), by ascending UID.
    pub vanished: Vec<(u32, u64)>,
    /// The highest MODSEQ of a tombstone let go; 0 for none.
    pub vanished_floor: u64,
    /// By ascending UID.
    pub messages: Vec<MessageObservation>,
}

/// A canonical snapshot of one user's storage: folders by name, and the
/// subscribed names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserObservation {
    pub folders: BTreeMap<String, FolderObservation>,
    pub subscriptions: BTreeSet<String>,
}

/// A canonical snapshot of everything: two stores in the same state have equal
/// observations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Observation {
    pub users: BTreeMap<String, UserObservation>,
}

/// Most flags one message may carry: bounds every store's flag column.
pub const MAX_FLAGS_PER_MESSAGE: usize = 24;

/// The flags a message has after a flag operation (`flags` already normalised),
/// or [`MailboxError::TooManyFlags`] past [`MAX_FLAGS_PER_MESSAGE`].
pub fn changed_flags(
    current: &[String],
    mode: FlagMode,
    flags: &[String],
) -> Result<Vec<String>, MailboxError> {
    let changed = match mode {
        FlagMode::Set => canonical_flags(flags.iter().cloned()),
        FlagMode::Add => canonical_flags(current.iter().chain(flags.iter()).cloned()),
        FlagMode::Remove => {
            canonical_flags(current.iter().filter(|flag| !flags.contains(flag)).cloned())
        }
    };
    if changed.len() > MAX_FLAGS_PER_MESSAGE {
        return Err(MailboxError::TooManyFlags(MAX_FLAGS_PER_MESSAGE));
    }
    Ok(changed)
}

/// Sorts and deduplicates normalised flags into their canonical order.
pub fn canonical_flags<I: IntoIterator<Item = String>>(flags: I) -> Vec<String> {
    let mut flags: Vec<String> = flags.into_iter().collect();
    flags.sort();
    flags.dedup();
    flags
}
