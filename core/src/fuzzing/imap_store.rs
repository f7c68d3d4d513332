//! A test store: answers the IMAP session's mailbox requests from core's reference
//! `MailboxModel`, wrapped, not changed. Shared by the session's unit tests, the
//! `imap_session` fuzz target and the IMAP conformance vectors (sluice-spec), so that
//! all three answer requests the same way. What the model lacks is kept here:
//! MODSEQ per message and per folder with expunge tombstones (found by comparing
//! the model's observations before and after each operation), subscriptions,
//! message bytes, and APPEND (a delivery into INBOX moved to its target).

use crate::imap::request::{
    ListedMailbox, MailboxAnswer, MailboxChanges, MailboxRefusal, MailboxRequest, MailboxStatus,
    MessageMetadata, SelectedMailbox, UidSet,
};
use crate::mailbox::{
    FolderObservation, MailboxError, MailboxModel, Operation, Outcome, normalise_folder_name,
};
use std::collections::{BTreeMap, BTreeSet};

/// MODSEQ bookkeeping of one folder, keyed by its UIDVALIDITY (unique per user,
/// and kept across RENAME).
#[derive(Clone, Debug, Default)]
struct Modseqs {
    highest: u64,
    messages: BTreeMap<u32, (u64, Vec<String>)>,
    tombstones: Vec<(u32, u64)>,
}

/// The store: the model plus what it lacks. Panics on a failed delivery (test code).
#[derive(Debug, Default)]
pub struct TestStore {
    model: MailboxModel,
    modseqs: BTreeMap<(String, u32), Modseqs>,
    subscriptions: BTreeSet<(String, String)>,
    blobs: BTreeMap<String, Vec<u8>>,
    deliveries: u64,
    /// How many times a message's bytes were asked for (SEARCH on metadata asks none).
    pub content_requests: u64,
}

fn refusal(error: MailboxError) -> MailboxAnswer {
    MailboxAnswer::Refused(match error {
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
    })
}

impl TestStore {
    pub fn with_user(user: &str) -> TestStore {
        let mut store = TestStore::default();
        store
            .apply(&Operation::AddUser {
                user: user.to_owned(),
                uidvalidity_base: 1000,
            })
            .expect("user added");
        store
    }

    /// A message delivered to INBOX, as the SMTP side would.
    pub fn deliver(&mut self, user: &str, bytes: &[u8]) -> u32 {
        self.deliver_from(user, "", bytes)
    }

    /// A message delivered to INBOX with this envelope sender.
    pub fn deliver_from(&mut self, user: &str, sender: &str, bytes: &[u8]) -> u32 {
        self.deliveries += 1;
        let blob = format!("blob-{}", self.deliveries);
        self.blobs.insert(blob.clone(), bytes.to_vec());
        match self.apply(&Operation::Deliver {
            reverse_path: sender.to_owned(),
            user: user.to_owned(),
            delivery_key: blob.clone(),
            blob,
            size: bytes.len() as u64,
            internal_date_ms: 1_700_000_000_000,
        }) {
            Ok(Outcome::Delivered { uid }) => uid,
            other => panic!("delivery failed: {other:?}"),
        }
    }

    /// The UIDs in the user's INBOX now.
    pub fn inbox_uids(&self, user: &str) -> Vec<u32> {
        self.folder(user, "INBOX")
            .map(|(_, folder)| folder.messages.iter().map(|m| m.uid).collect())
            .unwrap_or_default()
    }

    /// Applies an operation directly (another session's doing).
    pub fn apply(&mut self, operation: &Operation) -> Result<Outcome, MailboxError> {
        let outcome = self.model.apply(operation)?;
        self.sync(operation.user());
        Ok(outcome)
    }

    fn folder(&self, user: &str, name: &str) -> Option<(String, FolderObservation)> {
        let observation = self.model.observe();
        let account = observation
            .users
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(user))?
            .1
            .clone();
        let name = normalise_folder_name(name).ok()?;
        account
            .folders
            .get(&name)
            .cloned()
            .map(|folder| (name, folder))
    }

    fn folders(&self, user: &str) -> BTreeMap<String, FolderObservation> {
        self.model
            .observe()
            .users
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(user))
            .map(|(_, account)| account.folders)
            .unwrap_or_default()
    }

    /// Bumps MODSEQs for what changed in the user's folders since the last sync.
    fn sync(&mut self, user: &str) {
        let user = user.to_ascii_lowercase();
        for folder in self.folders(&user).values() {
            let state = self
                .modseqs
                .entry((user.clone(), folder.uidvalidity))
                .or_default();
            let present: BTreeSet<u32> = folder.messages.iter().map(|m| m.uid).collect();
            let gone: Vec<u32> = state
                .messages
                .keys()
                .filter(|uid| !present.contains(uid))
                .copied()
                .collect();
            for uid in gone {
                state.highest += 1;
                state.messages.remove(&uid);
                state.tombstones.push((uid, state.highest));
            }
            for message in &folder.messages {
                let changed = state
                    .messages
                    .get(&message.uid)
                    .is_none_or(|(_, flags)| *flags != message.flags);
                if changed {
                    state.highest += 1;
                    state
                        .messages
                        .insert(message.uid, (state.highest, message.flags.clone()));
                }
            }
            state.highest = state.highest.max(1);
        }
    }

    fn modseqs(&self, user: &str, uidvalidity: u32) -> Modseqs {
        self.modseqs
            .get(&(user.to_ascii_lowercase(), uidvalidity))
            .cloned()
            .unwrap_or_default()
    }

    fn metadata(&self, user: &str, folder: &FolderObservation) -> Vec<MessageMetadata> {
        let modseqs = self.modseqs(user, folder.uidvalidity);
        folder
            .messages
            .iter()
            .map(|message| MessageMetadata {
                uid: message.uid,
                flags: message.flags.clone(),
                modseq: modseqs
                    .messages
                    .get(&message.uid)
                    .map_or(1, |entry| entry.0),
                internal_date_ms: message.internal_date_ms,
                size: message.size,
                envelope_sender: message.reverse_path.clone(),
            })
            .collect()
    }

    fn status(&self, user: &str, folder: &FolderObservation) -> MailboxStatus {
        let flagged = |flag: &str| {
            folder
                .messages
                .iter()
                .filter(|m| m.flags.iter().any(|f| f == flag))
                .count() as u32
        };
        MailboxStatus {
            messages: folder.messages.len() as u32,
            uidnext: folder.uidnext,
            uidvalidity: folder.uidvalidity,
            unseen: folder.messages.len() as u32 - flagged("\\Seen"),
            deleted: flagged("\\Deleted"),
            size: folder.messages.iter().map(|m| m.size).sum(),
            highest_modseq: self.modseqs(user, folder.uidvalidity).highest.max(1),
        }
    }

    fn changes(
        &self,
        user: &str,
        folder: &FolderObservation,
        since: u64,
        known_uidnext: u32,
    ) -> MailboxChanges {
        let modseqs = self.modseqs(user, folder.uidvalidity);
        let metadata = self.metadata(user, folder);
        MailboxChanges {
            uidvalidity: folder.uidvalidity,
            uidnext: folder.uidnext,
            highest_modseq: modseqs.highest.max(1),
            added: metadata
                .iter()
                .filter(|m| m.uid >= known_uidnext)
                .map(|m| m.uid)
                .collect(),
            expunged: modseqs
                .tombstones
                .iter()
                .filter(|(_, modseq)| *modseq > since)
                .map(|(uid, _)| *uid)
                .collect(),
            changed: metadata
                .into_iter()
                .filter(|m| m.uid < known_uidnext && m.modseq > since)
                .collect(),
        }
    }

    /// The answer to one request, as a driver would give it.
    pub fn answer(&mut self, user: &str, request: MailboxRequest) -> MailboxAnswer {
        let owned = |text: &str| text.to_owned();
        match request {
            MailboxRequest::Select {
                mailbox, resync, ..
            } => {
                let Some((_, folder)) = self.folder(user, &mailbox) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                let mut keywords: BTreeSet<String> = BTreeSet::new();
                for message in &folder.messages {
                    keywords.extend(
                        message
                            .flags
                            .iter()
                            .filter(|f| !f.starts_with('\\'))
                            .cloned(),
                    );
                }
                let changes = resync
                    .filter(|resync| resync.uidvalidity == folder.uidvalidity)
                    .map(|resync| self.changes(user, &folder, resync.since_modseq, u32::MAX));
                MailboxAnswer::Selected(SelectedMailbox {
                    uidvalidity: folder.uidvalidity,
                    uidnext: folder.uidnext,
                    highest_modseq: self.modseqs(user, folder.uidvalidity).highest.max(1),
                    uids: folder.messages.iter().map(|m| m.uid).collect(),
                    first_unseen: folder
                        .messages
                        .iter()
                        .find(|m| !m.flags.iter().any(|f| f == "\\Seen"))
                        .map(|m| m.uid),
                    keywords: keywords.into_iter().collect(),
                    read_only: false,
                    changes,
                })
            }
            MailboxRequest::ListMailboxes { with_status } => {
                let user_key = user.to_ascii_lowercase();
                let folders = self.folders(user);
                let mut listed: Vec<ListedMailbox> = folders
                    .iter()
                    .map(|(name, folder)| ListedMailbox {
                        name: name.clone(),
                        exists: true,
                        subscribed: self
                            .subscriptions
                            .contains(&(user_key.clone(), name.clone())),
                        special_use: folder.special_use,
                        status: with_status.then(|| self.status(user, folder)),
                    })
                    .collect();
                for (_, name) in self.subscriptions.iter().filter(|(u, _)| *u == user_key) {
                    if !folders.contains_key(name) {
                        listed.push(ListedMailbox {
                            name: name.clone(),
                            exists: false,
                            subscribed: true,
                            special_use: None,
                            status: None,
                        });
                    }
                }
                MailboxAnswer::Mailboxes(listed)
            }
            MailboxRequest::Status { mailbox } => match self.folder(user, &mailbox) {
                Some((_, folder)) => MailboxAnswer::Status(self.status(user, &folder)),
                None => MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox),
            },
            MailboxRequest::Create { mailbox, .. } => self.done(Operation::CreateFolder {
                user: owned(user),
                name: mailbox,
            }),
            MailboxRequest::Delete { mailbox } => self.done(Operation::DeleteFolder {
                user: owned(user),
                name: mailbox,
            }),
            MailboxRequest::Rename { from, to } => self.done(Operation::RenameFolder {
                user: owned(user),
                from,
                to,
            }),
            MailboxRequest::Subscribe { mailbox } => {
                self.subscriptions
                    .insert((user.to_ascii_lowercase(), mailbox));
                MailboxAnswer::Done
            }
            MailboxRequest::Unsubscribe { mailbox } => {
                if self
                    .subscriptions
                    .remove(&(user.to_ascii_lowercase(), mailbox))
                {
                    MailboxAnswer::Done
                } else {
                    MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox)
                }
            }
            MailboxRequest::Append {
                mailbox,
                flags,
                message,
                ..
            } => {
                let Some((name, folder)) = self.folder(user, &mailbox) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                let uid = self.deliver(user, &message);
                let uid = if name == "INBOX" {
                    uid
                } else {
                    match self.apply(&Operation::Move {
                        at_ms: 0,
                        user: owned(user),
                        from: owned("INBOX"),
                        to: name.clone(),
                        uids: vec![uid],
                    }) {
                        Ok(Outcome::Moved { uids, .. }) => uids.first().map_or(0, |pair| pair.1),
                        Ok(_) => 0,
                        Err(error) => return refusal(error),
                    }
                };
                if !flags.is_empty()
                    && let Err(error) = self.apply(&Operation::StoreFlags {
                        unchanged_since: None,
                        user: owned(user),
                        folder: name,
                        uids: vec![uid],
                        mode: crate::mailbox::FlagMode::Set,
                        flags,
                    })
                {
                    return refusal(error);
                }
                MailboxAnswer::Appended {
                    uidvalidity: folder.uidvalidity,
                    uid,
                }
            }
            MailboxRequest::FetchMetadata {
                mailbox,
                uids,
                changed_since,
            } => {
                let Some((_, folder)) = self.folder(user, &mailbox) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                MailboxAnswer::Metadata(
                    self.metadata(user, &folder)
                        .into_iter()
                        .filter(|m| uids.contains(m.uid))
                        .filter(|m| changed_since.is_none_or(|since| m.modseq > since))
                        .collect(),
                )
            }
            MailboxRequest::FetchContent { mailbox, uid } => {
                let Some((_, folder)) = self.folder(user, &mailbox) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                match folder.messages.iter().find(|m| m.uid == uid) {
                    Some(message) => {
                        self.content_requests += 1;
                        MailboxAnswer::Content {
                            envelope_sender: message.reverse_path.clone(),
                            bytes: self.blobs.get(&message.blob).cloned().unwrap_or_default(),
                        }
                    }
                    None => MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox),
                }
            }
            MailboxRequest::Store {
                mailbox,
                uids,
                mode,
                flags,
                unchanged_since,
            } => {
                let Some((name, folder)) = self.folder(user, &mailbox) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                let metadata = self.metadata(user, &folder);
                let (allowed, refused): (Vec<&MessageMetadata>, Vec<&MessageMetadata>) = metadata
                    .iter()
                    .filter(|m| uids.contains(m.uid))
                    .partition(|m| unchanged_since.is_none_or(|limit| m.modseq <= limit));
                let targets: Vec<u32> = allowed.iter().map(|m| m.uid).collect();
                if let Err(error) = self.apply(&Operation::StoreFlags {
                    unchanged_since: None,
                    user: owned(user),
                    folder: name.clone(),
                    uids: targets.clone(),
                    mode,
                    flags,
                }) {
                    return refusal(error);
                }
                let Some((_, after)) = self.folder(user, &name) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                MailboxAnswer::Stored {
                    changed: self
                        .metadata(user, &after)
                        .into_iter()
                        .filter(|m| targets.contains(&m.uid))
                        .collect(),
                    modified: UidSet::from_uids(refused.iter().map(|m| m.uid)),
                }
            }
            MailboxRequest::Copy { from, to, uids } => {
                let Some((_, target)) = self.folder(user, &to) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                let uids: Vec<u32> = uids.ranges().iter().flat_map(|&(a, b)| a..=b).collect();
                self.copied(
                    Operation::Copy {
                        at_ms: 0,
                        user: owned(user),
                        from,
                        to,
                        uids,
                    },
                    target.uidvalidity,
                )
            }
            MailboxRequest::Move { from, to, uids } => {
                let Some((_, target)) = self.folder(user, &to) else {
                    return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
                };
                let uids: Vec<u32> = uids.ranges().iter().flat_map(|&(a, b)| a..=b).collect();
                self.copied(
                    Operation::Move {
                        at_ms: 0,
                        user: owned(user),
                        from,
                        to,
                        uids,
                    },
                    target.uidvalidity,
                )
            }
            MailboxRequest::Expunge { mailbox, uids } => self.expunge(user, &mailbox, uids),
            MailboxRequest::Changes {
                mailbox,
                since_modseq,
                known_uidnext,
            } => match self.folder(user, &mailbox) {
                Some((_, folder)) => {
                    MailboxAnswer::Changes(self.changes(user, &folder, since_modseq, known_uidnext))
                }
                None => MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox),
            },
        }
    }

    fn copied(&mut self, operation: Operation, uidvalidity: u32) -> MailboxAnswer {
        match self.apply(&operation) {
            Ok(Outcome::Copied { uids, .. } | Outcome::Moved { uids, .. }) => {
                MailboxAnswer::Copied { uidvalidity, uids }
            }
            Ok(_) => MailboxAnswer::Refused(MailboxRefusal::Unavailable),
            Err(error) => refusal(error),
        }
    }

    fn done(&mut self, operation: Operation) -> MailboxAnswer {
        match self.apply(&operation) {
            Ok(_) => MailboxAnswer::Done,
            Err(error) => refusal(error),
        }
    }

    /// EXPUNGE through the model; for UID EXPUNGE the other \Deleted messages are
    /// unflagged around it and flagged again (the sync runs only once, after).
    fn expunge(&mut self, user: &str, mailbox: &str, uids: Option<UidSet>) -> MailboxAnswer {
        let Some((name, folder)) = self.folder(user, mailbox) else {
            return MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox);
        };
        let spared: Vec<u32> = match &uids {
            Some(uids) => folder
                .messages
                .iter()
                .filter(|m| !uids.contains(m.uid) && m.flags.iter().any(|f| f == "\\Deleted"))
                .map(|m| m.uid)
                .collect(),
            None => Vec::new(),
        };
        let flag = |mode| Operation::StoreFlags {
            unchanged_since: None,
            user: user.to_owned(),
            folder: name.clone(),
            uids: spared.clone(),
            mode,
            flags: vec!["\\Deleted".to_owned()],
        };
        let steps = [
            flag(crate::mailbox::FlagMode::Remove),
            Operation::Expunge {
                user: user.to_owned(),
                folder: name.clone(),
            },
            flag(crate::mailbox::FlagMode::Add),
        ];
        let mut expunged = Vec::new();
        for step in &steps {
            match self.model.apply(step) {
                Ok(Outcome::Expunged { uids }) => expunged = uids,
                Ok(_) => {}
                Err(error) => return refusal(error),
            }
        }
        self.sync(user);
        MailboxAnswer::Expunged(expunged)
    }
}
