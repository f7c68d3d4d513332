//! The in-memory reference implementation of the mailbox [`Operation`]s: plain
//! maps, checked in a fixed order so that every store refuses the same way.

use super::{
    FolderObservation, INBOX, MailboxError, MessageObservation, Observation, Operation, Outcome,
    STANDARD_FOLDERS, SpecialUse, UserObservation, changed_flags, normalise_flag,
    normalise_folder_name,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
struct Message {
    flags: Vec<String>,
    size: u64,
    blob: String,
    internal_date_ms: i64,
}

#[derive(Clone, Debug)]
struct Folder {
    uidvalidity: u32,
    uidnext: u32,
    special_use: Option<SpecialUse>,
    messages: BTreeMap<u32, Message>,
}

impl Folder {
    fn new(uidvalidity: u32, special_use: Option<SpecialUse>) -> Folder {
        Folder {
            uidvalidity,
            uidnext: 1,
            special_use,
            messages: BTreeMap::new(),
        }
    }

    /// Reserves `count` consecutive UIDs; the first. The highest UID a message
    /// can get is `u32::MAX - 1`, so that UIDNEXT always fits.
    fn allocate(&mut self, name: &str, count: u32) -> Result<u32, MailboxError> {
        let first = self.uidnext;
        match first.checked_add(count) {
            Some(next) => {
                self.uidnext = next;
                Ok(first)
            }
            None => Err(MailboxError::UidsExhausted(name.to_owned())),
        }
    }

    fn would_exhaust(&self, count: u32) -> bool {
        self.uidnext.checked_add(count).is_none()
    }
}

#[derive(Clone, Debug)]
struct User {
    /// The address as first given: how observations name the user.
    name: String,
    next_uidvalidity: u64,
    folders: BTreeMap<String, Folder>,
    delivered: BTreeSet<String>,
}

impl User {
    fn take_uidvalidity(&mut self) -> Result<u32, MailboxError> {
        let taken = u32::try_from(self.next_uidvalidity)
            .map_err(|_| MailboxError::UidValidityExhausted(self.name.clone()))?;
        self.next_uidvalidity += 1;
        Ok(taken)
    }

    /// The stored name and the folder, or why not.
    fn folder(&self, name: &str) -> Result<(String, &Folder), MailboxError> {
        let name = normalise_folder_name(name)?;
        match self.folders.get(&name) {
            Some(folder) => Ok((name, folder)),
            None => Err(MailboxError::NoSuchFolder(name)),
        }
    }
}

/// Every user's folders and messages, in memory.
#[derive(Clone, Debug, Default)]
pub struct MailboxModel {
    /// By ASCII-lower-cased address: users match case-insensitively, as in the directory.
    users: BTreeMap<String, User>,
}

impl MailboxModel {
    pub fn new() -> MailboxModel {
        MailboxModel::default()
    }

    fn user_mut(&mut self, user: &str) -> Result<&mut User, MailboxError> {
        self.users
            .get_mut(&user.to_ascii_lowercase())
            .ok_or_else(|| MailboxError::NoSuchUser(user.to_owned()))
    }

    /// Applies one operation; a refused operation changes nothing (every check
    /// runs before the first change).
    pub fn apply(&mut self, operation: &Operation) -> Result<Outcome, MailboxError> {
        match operation {
            Operation::AddUser {
                user,
                uidvalidity_base,
            } => self.add_user(user, *uidvalidity_base),
            Operation::Deliver {
                user,
                delivery_key,
                blob,
                size,
                internal_date_ms,
            } => {
                let account = self.user_mut(user)?;
                if account.delivered.contains(delivery_key) {
                    return Ok(Outcome::AlreadyDelivered);
                }
                let inbox = account
                    .folders
                    .get_mut(INBOX)
                    .ok_or_else(|| MailboxError::NoSuchFolder(INBOX.to_owned()))?;
                let uid = inbox.allocate(INBOX, 1)?;
                inbox.messages.insert(
                    uid,
                    Message {
                        flags: Vec::new(),
                        size: *size,
                        blob: blob.clone(),
                        internal_date_ms: *internal_date_ms,
                    },
                );
                account.delivered.insert(delivery_key.clone());
                Ok(Outcome::Delivered { uid })
            }
            Operation::StoreFlags {
                user,
                folder,
                uids,
                mode,
                flags,
            } => {
                let account = self.user_mut(user)?;
                let (name, _) = account.folder(folder)?;
                let normalised = flags
                    .iter()
                    .map(|flag| normalise_flag(flag))
                    .collect::<Result<Vec<String>, MailboxError>>()?;
                let Some(found) = account.folders.get_mut(&name) else {
                    return Err(MailboxError::NoSuchFolder(name));
                };
                // Every new flag set first: a refusal for one message changes none.
                let mut changes = Vec::new();
                for (uid, message) in &found.messages {
                    if uids.contains(uid) {
                        changes.push((*uid, changed_flags(&message.flags, *mode, &normalised)?));
                    }
                }
                let mut touched = Vec::with_capacity(changes.len());
                for (uid, flags) in changes {
                    if let Some(message) = found.messages.get_mut(&uid) {
                        message.flags = flags;
                    }
                    touched.push(uid);
                }
                Ok(Outcome::FlagsStored { uids: touched })
            }
            Operation::Expunge { user, folder } => {
                let account = self.user_mut(user)?;
                let (name, _) = account.folder(folder)?;
                let Some(found) = account.folders.get_mut(&name) else {
                    return Err(MailboxError::NoSuchFolder(name));
                };
                let doomed: Vec<u32> = found
                    .messages
                    .iter()
                    .filter(|(_, message)| message.flags.iter().any(|flag| flag == "\\Deleted"))
                    .map(|(uid, _)| *uid)
                    .collect();
                for uid in &doomed {
                    found.messages.remove(uid);
                }
                Ok(Outcome::Expunged { uids: doomed })
            }
            Operation::Copy {
                user,
                from,
                to,
                uids,
            } => self.transfer(user, from, to, uids, false),
            Operation::Move {
                user,
                from,
                to,
                uids,
            } => self.transfer(user, from, to, uids, true),
            Operation::CreateFolder { user, name } => {
                let account = self.user_mut(user)?;
                let name = normalise_folder_name(name)?;
                if account.folders.contains_key(&name) {
                    return Err(MailboxError::FolderExists(name));
                }
                let uidvalidity = account.take_uidvalidity()?;
                account.folders.insert(name, Folder::new(uidvalidity, None));
                Ok(Outcome::FolderCreated { uidvalidity })
            }
            Operation::DeleteFolder { user, name } => {
                let account = self.user_mut(user)?;
                let (name, _) = account.folder(name)?;
                if name == INBOX {
                    return Err(MailboxError::InboxIsPermanent);
                }
                account.folders.remove(&name);
                Ok(Outcome::FolderDeleted)
            }
            Operation::RenameFolder { user, from, to } => {
                let account = self.user_mut(user)?;
                let (from, _) = account.folder(from)?;
                if from == INBOX {
                    return Err(MailboxError::InboxIsPermanent);
                }
                let to = normalise_folder_name(to)?;
                if account.folders.contains_key(&to) {
                    return Err(MailboxError::FolderExists(to));
                }
                if let Some(folder) = account.folders.remove(&from) {
                    account.folders.insert(to, folder);
                }
                Ok(Outcome::FolderRenamed)
            }
        }
    }

    fn add_user(&mut self, user: &str, uidvalidity_base: u32) -> Result<Outcome, MailboxError> {
        let key = user.to_ascii_lowercase();
        if self.users.contains_key(&key) {
            return Err(MailboxError::UserExists(user.to_owned()));
        }
        let mut account = User {
            name: user.to_owned(),
            next_uidvalidity: u64::from(uidvalidity_base.max(1)),
            folders: BTreeMap::new(),
            delivered: BTreeSet::new(),
        };
        let inbox = account.take_uidvalidity()?;
        account
            .folders
            .insert(INBOX.to_owned(), Folder::new(inbox, None));
        for special in STANDARD_FOLDERS {
            let uidvalidity = account.take_uidvalidity()?;
            account.folders.insert(
                special.folder_name().to_owned(),
                Folder::new(uidvalidity, Some(special)),
            );
        }
        self.users.insert(key, account);
        Ok(Outcome::UserAdded)
    }

    /// COPY and MOVE: the chosen messages, by ascending UID, get consecutive new
    /// UIDs in the target; MOVE then removes the originals.
    fn transfer(
        &mut self,
        user: &str,
        from: &str,
        to: &str,
        uids: &[u32],
        moving: bool,
    ) -> Result<Outcome, MailboxError> {
        let account = self.user_mut(user)?;
        let (source_name, source) = account.folder(from)?;
        let (target_name, target) = account.folder(to)?;
        if moving && source_name == target_name {
            return Err(MailboxError::SameFolder);
        }
        let chosen: Vec<(u32, Message)> = source
            .messages
            .iter()
            .filter(|(uid, _)| uids.contains(uid))
            .map(|(uid, message)| (*uid, message.clone()))
            .collect();
        let count = u32::try_from(chosen.len())
            .map_err(|_| MailboxError::UidsExhausted(target_name.clone()))?;
        if count > 0 && target.would_exhaust(count) {
            return Err(MailboxError::UidsExhausted(target_name));
        }
        let mut pairs = Vec::with_capacity(chosen.len());
        if count > 0 {
            let Some(target) = account.folders.get_mut(&target_name) else {
                return Err(MailboxError::NoSuchFolder(target_name));
            };
            let first = target.allocate(&target_name, count)?;
            for (new_uid, (uid, message)) in (first..).zip(chosen) {
                target.messages.insert(new_uid, message);
                pairs.push((uid, new_uid));
            }
            if moving && let Some(source) = account.folders.get_mut(&source_name) {
                for (uid, _) in &pairs {
                    source.messages.remove(uid);
                }
            }
        }
        Ok(if moving {
            Outcome::Moved { uids: pairs }
        } else {
            Outcome::Copied { uids: pairs }
        })
    }

    /// The canonical snapshot of every user.
    pub fn observe(&self) -> Observation {
        let mut observation = Observation::default();
        for account in self.users.values() {
            let mut user = UserObservation::default();
            for (name, folder) in &account.folders {
                user.folders.insert(
                    name.clone(),
                    FolderObservation {
                        uidvalidity: folder.uidvalidity,
                        uidnext: folder.uidnext,
                        special_use: folder.special_use,
                        messages: folder
                            .messages
                            .iter()
                            .map(|(uid, message)| MessageObservation {
                                uid: *uid,
                                flags: message.flags.clone(),
                                size: message.size,
                                blob: message.blob.clone(),
                                internal_date_ms: message.internal_date_ms,
                            })
                            .collect(),
                    },
                );
            }
            observation.users.insert(account.name.clone(), user);
        }
        observation
    }
}
