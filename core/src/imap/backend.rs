//! How a mail store answers the IMAP session's [`MailboxRequest`]s: written once,
//! here, for every store. A store implements [`MailboxBackend`] (the facts it
//! keeps: apply a mailbox [`Operation`], read a folder's status, its changes
//! since a MODSEQ, its messages, a body) and [`answer`] turns each request into
//! those calls and their results into a [`MailboxAnswer`].
//!
//! The trait is async because net's SQL store is; core's reference model (and the
//! simulator's store, which holds it) answers at once, and [`answer_now`] runs such
//! a backend's futures to completion without a runtime. Nothing here waits on I/O
//! itself: core stays sans-IO, the backend does the I/O.

use crate::imap::request::{
    ListedMailbox, MailboxAnswer, MailboxChanges, MailboxRefusal, MailboxRequest, MailboxStatus,
    MessageMetadata, Resync, SelectedMailbox, UidSet,
};
pub use crate::mailbox::FolderEntry;
use crate::mailbox::{
    ChangedMessage, Changes, FolderStatus, MailboxError, MessageObservation, Operation, Outcome,
};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Why a backend could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The mailbox rules refuse it (no such folder, an invalid name, …); nothing changed.
    #[error(transparent)]
    Refused(#[from] MailboxError),
    /// The store failed (a database or disk error); the client may try again.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A message to append (IMAP APPEND): the store places the body and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub user: String,
    pub folder: String,
    pub flags: Vec<String>,
    pub internal_date_ms: i64,
    pub bytes: Vec<u8>,
}

/// The facts a store keeps for IMAP, each read in one consistent state. A read of
/// a missing user or folder is `Refused` with the model's error.
#[allow(async_fn_in_trait)] // Used with concrete types only: their futures' Send is known.
pub trait MailboxBackend {
    /// Applies one mailbox operation atomically, as core's model does.
    async fn apply(&mut self, operation: Operation) -> Result<Outcome, BackendError>;
    /// Stores a body and appends it ([`Operation::Append`] with the body placed):
    /// `Outcome::Appended`.
    async fn append(&mut self, message: NewMessage) -> Result<Outcome, BackendError>;
    async fn status(&mut self, user: &str, folder: &str) -> Result<FolderStatus, BackendError>;
    async fn changes_since(
        &mut self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, BackendError>;
    /// Every folder of the user, in byte order of the name.
    async fn folders(&mut self, user: &str) -> Result<Vec<FolderEntry>, BackendError>;
    /// The user's subscribed names, in byte order.
    async fn subscriptions(&mut self, user: &str) -> Result<Vec<String>, BackendError>;
    /// The messages of a folder whose UIDs are in `uids` (all with `None`), by
    /// ascending UID.
    async fn messages(
        &mut self,
        user: &str,
        folder: &str,
        uids: Option<&UidSet>,
    ) -> Result<Vec<MessageObservation>, BackendError>;
    /// A message's stored bytes, by its blob name.
    async fn content(&mut self, blob: &str) -> Result<Vec<u8>, BackendError>;
}

/// The answer to one request of `user`'s session. `now_ms` (milliseconds since
/// the Unix epoch) dates an APPEND without a date and any Junk event.
pub async fn answer<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    request: MailboxRequest,
    now_ms: i64,
) -> MailboxAnswer {
    match respond(backend, user, request, now_ms).await {
        Ok(answer) => answer,
        Err(error) => MailboxAnswer::Refused(refusal(&error)),
    }
}

/// [`answer`] for a backend whose futures are ready at once (core's model, the
/// simulator's store). Panics if the backend ever waits: such a backend must be
/// driven by a runtime through [`answer`].
pub fn answer_now<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    request: MailboxRequest,
    now_ms: i64,
) -> MailboxAnswer {
    let mut future = pin!(answer(backend, user, request, now_ms));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(answer) => answer,
        Poll::Pending => panic!("answer_now: the backend waited; drive it with `answer`"),
    }
}

/// The response code a refusal gets (RFC 5530).
pub fn refusal(error: &BackendError) -> MailboxRefusal {
    let error = match error {
        BackendError::Refused(error) => error,
        BackendError::Unavailable(_) => return MailboxRefusal::Unavailable,
    };
    match error {
        MailboxError::NoSuchFolder(_) | MailboxError::NoSuchUser(_) => {
            MailboxRefusal::NoSuchMailbox
        }
        MailboxError::FolderExists(_) => MailboxRefusal::AlreadyExists,
        MailboxError::InboxIsPermanent
        | MailboxError::InvalidFolderName(_)
        | MailboxError::InvalidFlag(_)
        | MailboxError::SameFolder => MailboxRefusal::Cannot(error.to_string()),
        MailboxError::TooManyFlags(_)
        | MailboxError::TooManySubscriptions(_)
        | MailboxError::UidsExhausted(_)
        | MailboxError::UidValidityExhausted(_) => MailboxRefusal::Limit(error.to_string()),
        MailboxError::UserExists(_) => MailboxRefusal::Unavailable,
    }
}

async fn respond<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    request: MailboxRequest,
    now_ms: i64,
) -> Result<MailboxAnswer, BackendError> {
    let user_owned = user.to_owned();
    Ok(match request {
        MailboxRequest::Select {
            mailbox, resync, ..
        } => MailboxAnswer::Selected(select(backend, user, &mailbox, resync).await?),
        MailboxRequest::ListMailboxes { with_status } => {
            MailboxAnswer::Mailboxes(list(backend, user, with_status).await?)
        }
        MailboxRequest::Status { mailbox } => {
            MailboxAnswer::Status(mailbox_status(backend.status(user, &mailbox).await?))
        }
        MailboxRequest::Create { mailbox, .. } => {
            // A special use asked with CREATE (USE, RFC 6154 §5.2) is not kept:
            // the special-use folders are the ones every user is created with.
            done(
                backend
                    .apply(Operation::CreateFolder {
                        user: user_owned,
                        name: mailbox,
                    })
                    .await?,
            )
        }
        MailboxRequest::Delete { mailbox } => done(
            backend
                .apply(Operation::DeleteFolder {
                    user: user_owned,
                    name: mailbox,
                })
                .await?,
        ),
        MailboxRequest::Rename { from, to } => done(
            backend
                .apply(Operation::RenameFolder {
                    user: user_owned,
                    from,
                    to,
                })
                .await?,
        ),
        MailboxRequest::Subscribe { mailbox } => done(
            backend
                .apply(Operation::Subscribe {
                    user: user_owned,
                    name: mailbox,
                })
                .await?,
        ),
        MailboxRequest::Unsubscribe { mailbox } => {
            // RFC 9051 §6.3.8: UNSUBSCRIBE of a name not subscribed is a failure.
            if !backend.subscriptions(user).await?.contains(&mailbox) {
                return Err(MailboxError::NoSuchFolder(mailbox).into());
            }
            done(
                backend
                    .apply(Operation::Unsubscribe {
                        user: user_owned,
                        name: mailbox,
                    })
                    .await?,
            )
        }
        MailboxRequest::Append {
            mailbox,
            flags,
            internal_date_ms,
            message,
        } => match backend
            .append(NewMessage {
                user: user_owned,
                folder: mailbox,
                flags,
                internal_date_ms: internal_date_ms.unwrap_or(now_ms),
                bytes: message,
            })
            .await?
        {
            Outcome::Appended { uidvalidity, uid } => MailboxAnswer::Appended { uidvalidity, uid },
            other => return Err(unexpected("append", &other)),
        },
        MailboxRequest::FetchMetadata {
            mailbox,
            uids,
            changed_since,
        } => MailboxAnswer::Metadata(
            backend
                .messages(user, &mailbox, Some(&uids))
                .await?
                .into_iter()
                .filter(|message| changed_since.is_none_or(|since| message.modseq > since))
                .map(metadata)
                .collect(),
        ),
        MailboxRequest::FetchContent { mailbox, uid } => {
            let found = backend
                .messages(user, &mailbox, Some(&UidSet::from_uids([uid])))
                .await?;
            let Some(message) = found.into_iter().next() else {
                // Expunged by another session since the session asked.
                return Err(MailboxError::NoSuchFolder(mailbox).into());
            };
            MailboxAnswer::Content {
                bytes: backend.content(&message.blob).await?,
                envelope_sender: message.reverse_path,
            }
        }
        MailboxRequest::Store {
            mailbox,
            uids,
            mode,
            flags,
            unchanged_since,
        } => {
            let targets = existing_uids(backend, user, &mailbox, &uids).await?;
            let outcome = backend
                .apply(Operation::StoreFlags {
                    user: user_owned,
                    folder: mailbox.clone(),
                    uids: targets,
                    mode,
                    flags,
                    unchanged_since,
                })
                .await?;
            let Outcome::FlagsStored { uids, modified } = outcome else {
                return Err(unexpected("store", &outcome));
            };
            let changed = if uids.is_empty() {
                Vec::new()
            } else {
                backend
                    .messages(user, &mailbox, Some(&UidSet::from_uids(uids)))
                    .await?
                    .into_iter()
                    .map(metadata)
                    .collect()
            };
            MailboxAnswer::Stored {
                changed,
                modified: UidSet::from_uids(modified),
            }
        }
        MailboxRequest::Copy { from, to, uids } => {
            transfer(backend, user, from, to, &uids, false, now_ms).await?
        }
        MailboxRequest::Move { from, to, uids } => {
            transfer(backend, user, from, to, &uids, true, now_ms).await?
        }
        MailboxRequest::Expunge { mailbox, uids } => {
            let uids = match uids {
                Some(uids) => Some(existing_uids(backend, user, &mailbox, &uids).await?),
                None => None,
            };
            match backend
                .apply(Operation::Expunge {
                    user: user_owned,
                    folder: mailbox,
                    uids,
                })
                .await?
            {
                Outcome::Expunged { uids } => MailboxAnswer::Expunged(uids),
                other => return Err(unexpected("expunge", &other)),
            }
        }
        MailboxRequest::Changes {
            mailbox,
            since_modseq,
            known_uidnext,
        } => {
            let changes = backend.changes_since(user, &mailbox, since_modseq).await?;
            MailboxAnswer::Changes(mailbox_changes(changes, known_uidnext, None))
        }
    })
}

async fn select<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    mailbox: &str,
    resync: Option<Resync>,
) -> Result<SelectedMailbox, BackendError> {
    let status = backend.status(user, mailbox).await?;
    let messages = backend.messages(user, mailbox, None).await?;
    let keywords: BTreeSet<&String> = messages
        .iter()
        .flat_map(|message| message.flags.iter())
        .filter(|flag| !flag.starts_with('\\'))
        .collect();
    let changes = match resync {
        Some(resync) if resync.uidvalidity == status.uidvalidity => {
            let changes = backend
                .changes_since(user, mailbox, resync.since_modseq)
                .await?;
            let present: Vec<u32> = messages.iter().map(|message| message.uid).collect();
            // Every change is reported as a change (none as an arrival): the
            // client's own state is what is being brought up to date.
            Some(mailbox_changes(
                changes,
                u32::MAX,
                Some((&present, resync.known_uids.as_ref())),
            ))
        }
        _ => None,
    };
    Ok(SelectedMailbox {
        uidvalidity: status.uidvalidity,
        uidnext: status.uidnext,
        highest_modseq: status.highestmodseq,
        first_unseen: messages
            .iter()
            .find(|message| !message.flags.iter().any(|flag| flag == "\\Seen"))
            .map(|message| message.uid),
        keywords: keywords.into_iter().cloned().collect(),
        uids: messages.iter().map(|message| message.uid).collect(),
        read_only: false,
        changes,
    })
}

async fn list<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    with_status: bool,
) -> Result<Vec<ListedMailbox>, BackendError> {
    let folders = backend.folders(user).await?;
    let subscriptions = backend.subscriptions(user).await?;
    let mut listed = Vec::with_capacity(folders.len());
    for folder in &folders {
        let status = if with_status {
            Some(mailbox_status(backend.status(user, &folder.name).await?))
        } else {
            None
        };
        listed.push(ListedMailbox {
            subscribed: subscriptions.contains(&folder.name),
            name: folder.name.clone(),
            exists: true,
            special_use: folder.special_use,
            status,
        });
    }
    for name in subscriptions {
        if !folders.iter().any(|folder| folder.name == name) {
            listed.push(ListedMailbox {
                name,
                exists: false,
                subscribed: true,
                special_use: None,
                status: None,
            });
        }
    }
    Ok(listed)
}

/// COPY or MOVE of the UIDs that exist, answered with COPYUID's values.
async fn transfer<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    from: String,
    to: String,
    uids: &UidSet,
    moving: bool,
    now_ms: i64,
) -> Result<MailboxAnswer, BackendError> {
    let uidvalidity = backend.status(user, &to).await?.uidvalidity;
    let uids = existing_uids(backend, user, &from, uids).await?;
    let user = user.to_owned();
    let operation = if moving {
        Operation::Move {
            user,
            from,
            to,
            uids,
            at_ms: now_ms,
        }
    } else {
        Operation::Copy {
            user,
            from,
            to,
            uids,
            at_ms: now_ms,
        }
    };
    match backend.apply(operation).await? {
        Outcome::Copied { uids, .. } | Outcome::Moved { uids, .. } => {
            Ok(MailboxAnswer::Copied { uidvalidity, uids })
        }
        other => Err(unexpected("copy", &other)),
    }
}

/// The UIDs of `uids` that name messages now: a request's set may be a range
/// (`1:*`) far wider than the folder, and operations take UIDs one by one.
async fn existing_uids<B: MailboxBackend>(
    backend: &mut B,
    user: &str,
    folder: &str,
    uids: &UidSet,
) -> Result<Vec<u32>, BackendError> {
    Ok(backend
        .messages(user, folder, Some(uids))
        .await?
        .into_iter()
        .map(|message| message.uid)
        .collect())
}

/// The session's view of a folder's changes. Messages from `known_uidnext` on are
/// arrivals, the others changes. With `resync` (the UIDs present, and the UIDs the
/// client knows), a folder that let tombstones go reports as expunged every UID
/// the client may know that is no longer present (RFC 7162 §3.2.5.1 allows more
/// UIDs than were expunged, never fewer).
fn mailbox_changes(
    changes: Changes,
    known_uidnext: u32,
    resync: Option<(&[u32], Option<&UidSet>)>,
) -> MailboxChanges {
    let status = changes.status;
    let expunged = match resync {
        Some((present, known)) if !changes.vanished_complete => {
            missing_uids(present, known, status.uidnext)
        }
        _ => changes.vanished,
    };
    let (added, changed): (Vec<ChangedMessage>, Vec<ChangedMessage>) = changes
        .changed
        .into_iter()
        .partition(|message| message.uid >= known_uidnext);
    MailboxChanges {
        uidvalidity: status.uidvalidity,
        uidnext: status.uidnext,
        highest_modseq: status.highestmodseq,
        added: added.into_iter().map(|message| message.uid).collect(),
        expunged,
        changed: changed.into_iter().map(changed_metadata).collect(),
    }
}

/// The UIDs below `uidnext` (and in `known`, if given) that are not `present`.
fn missing_uids(present: &[u32], known: Option<&UidSet>, uidnext: u32) -> Vec<u32> {
    let everything = UidSet::from_ranges([(1, uidnext.saturating_sub(1).max(1))]);
    let known = known.unwrap_or(&everything);
    let mut missing = Vec::new();
    for &(start, end) in known.ranges() {
        for uid in start..=end.min(uidnext.saturating_sub(1)) {
            if present.binary_search(&uid).is_err() {
                missing.push(uid);
            }
        }
    }
    missing
}

fn mailbox_status(status: FolderStatus) -> MailboxStatus {
    MailboxStatus {
        messages: status.messages,
        uidnext: status.uidnext,
        uidvalidity: status.uidvalidity,
        unseen: status.unseen,
        deleted: status.deleted,
        size: status.size,
        highest_modseq: status.highestmodseq,
    }
}

fn metadata(message: MessageObservation) -> MessageMetadata {
    MessageMetadata {
        uid: message.uid,
        flags: message.flags,
        modseq: message.modseq,
        internal_date_ms: message.internal_date_ms,
        size: message.size,
        envelope_sender: message.reverse_path,
    }
}

fn changed_metadata(message: ChangedMessage) -> MessageMetadata {
    MessageMetadata {
        uid: message.uid,
        flags: message.flags,
        modseq: message.modseq,
        internal_date_ms: message.internal_date_ms,
        size: message.size,
        envelope_sender: message.reverse_path,
    }
}

fn done(_outcome: Outcome) -> MailboxAnswer {
    MailboxAnswer::Done
}

/// A backend answered an operation with another operation's outcome: a bug in
/// the backend, reported as a store failure rather than a panic.
fn unexpected(what: &str, outcome: &Outcome) -> BackendError {
    BackendError::Unavailable(format!("{what} answered {outcome:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_uids_are_those_known_and_absent_below_uidnext() {
        assert_eq!(missing_uids(&[2, 4], None, 6), vec![1, 3, 5]);
        let known = UidSet::from_ranges([(3, 9)]);
        assert_eq!(missing_uids(&[2, 4], Some(&known), 6), vec![3, 5]);
        assert_eq!(missing_uids(&[], None, 1), Vec::<u32>::new());
    }
}
