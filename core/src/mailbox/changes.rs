//! What CONDSTORE/QRESYNC, SELECT and STATUS read of a folder (RFC 7162, RFC
//! 9051 §6.3.11), the events a COPY or MOVE through the Junk folder leaves for
//! the classifier, and the bounds every store keeps on what only grows.

/// The HIGHESTMODSEQ of a folder that nothing has changed yet: RFC 7162
/// mod-sequences are positive, so even an empty folder reports one.
pub const FIRST_MODSEQ: u64 = 1;

/// Bounds on the mailbox state that grows with use; the model and every store
/// enforce the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MailboxLimits {
    /// Expunge tombstones kept per folder (the newest). Past it, clients whose
    /// MODSEQ is older than the oldest kept resynchronise fully. Default 10,000:
    /// a few hundred kilobytes per folder, weeks of a busy folder's expunges.
    pub tombstones_per_folder: usize,
    /// Subscribed names per user. Default 1,000.
    pub subscriptions_per_user: usize,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        MailboxLimits {
            tombstones_per_folder: 10_000,
            subscriptions_per_user: 1_000,
        }
    }
}

/// A folder's state as SELECT and STATUS report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FolderStatus {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// Messages in the folder.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Messages flagged `\Deleted` (STATUS DELETED, RFC 9051 §6.3.11).
    pub deleted: u32,
    /// The sum of the messages' sizes, in octets (STATUS SIZE, RFC 8438).
    pub size: u64,
}

/// A message changed (added or its flags changed) after some MODSEQ, with what
/// a client may fetch of it without its bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangedMessage {
    pub uid: u32,
    /// Canonical spellings, sorted by byte order.
    pub flags: Vec<String>,
    pub modseq: u64,
    pub internal_date_ms: i64,
    pub size: u64,
    /// The envelope sender without angle brackets; empty for none.
    pub reverse_path: String,
}

/// What changed in a folder after a MODSEQ (CHANGEDSINCE, QRESYNC).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Changes {
    pub status: FolderStatus,
    /// The messages whose MODSEQ is above the one asked about, by ascending UID.
    pub changed: Vec<ChangedMessage>,
    /// UIDs expunged after the MODSEQ asked about, ascending, from the tombstones kept.
    pub vanished: Vec<u32>,
    /// False when tombstones newer than the MODSEQ asked about were let go:
    /// `vanished` may then miss UIDs and the client must resynchronise fully.
    pub vanished_complete: bool,
}

/// Which way a message crossed the Junk folder's boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JunkDirection {
    /// Copied or moved into Junk: the user calls it spam.
    IntoJunk,
    /// Copied or moved out of Junk: the user calls it not spam.
    OutOfJunk,
}

impl JunkDirection {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            JunkDirection::IntoJunk => "into-junk",
            JunkDirection::OutOfJunk => "out-of-junk",
        }
    }

    /// The inverse of [`JunkDirection::as_str`].
    pub fn parse(text: &str) -> Option<JunkDirection> {
        [JunkDirection::IntoJunk, JunkDirection::OutOfJunk]
            .into_iter()
            .find(|direction| direction.as_str() == text)
    }
}

/// One message copied or moved across the Junk folder's boundary.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JunkEvent {
    /// The message body's blob name.
    pub blob: String,
    pub direction: JunkDirection,
    /// When, in milliseconds since the Unix epoch (the operation's `at_ms`).
    pub at_ms: i64,
}
