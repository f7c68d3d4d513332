//! The in-memory reference implementation of the mailbox [`Operation`]s: plain
//! maps, checked in a fixed order so that every store refuses the same way.

use super::{
    ChangedMessage, Changes, FIRST_MODSEQ, FlagMode, FolderEntry, FolderObservation, FolderStatus,
    INBOX, JunkDirection, JunkEvent, MAX_FLAGS_PER_MESSAGE, MailboxError, MailboxLimits,
    MessageObservation, Observation, Operation, Outcome, STANDARD_FOLDERS, SpecialUse,
    UserObservation, canonical_flags, changed_flags, normalise_flag, normalise_folder_name,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
struct Message {
    flags: Vec<String>,
    size: u64,
    blob: String,
    internal_date_ms: i64,
    modseq: u64,
    reverse_path: String,
}

#[derive(Clone, Debug)]
struct Folder {
    uidvalidity: u32,
    uidnext: u32,
    special_use: Option<SpecialUse>,
    highestmodseq: u64,
    messages: BTreeMap<u32, Message>,
    /// UID -> MODSEQ of its expunge.
    tombstones: BTreeMap<u32, u64>,
    vanished_floor: u64,
}

impl Folder {
    fn new(uidvalidity: u32, special_use: Option<SpecialUse>) -> Folder {
        Folder {
            uidvalidity,
            uidnext: 1,
            special_use,
            highestmodseq: FIRST_MODSEQ,
            messages: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            vanished_floor: 0,
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

    /// Advances HIGHESTMODSEQ for one operation's changes; the new value.
    fn next_modseq(&mut self) -> u64 {
        self.highestmodseq += 1;
        self.highestmodseq
    }

    /// Removes `uids` (expunged at `modseq`), leaving tombstones, and lets go of
    /// the oldest tombstones (by MODSEQ, then UID) past `keep`.
    fn expunge(&mut self, uids: &[u32], modseq: u64, keep: usize) {
        for uid in uids {
            self.messages.remove(uid);
            self.tombstones.insert(*uid, modseq);
        }
        if self.tombstones.len() <= keep {
            return;
        }
        let mut by_age: Vec<(u64, u32)> = self
            .tombstones
            .iter()
            .map(|(uid, modseq)| (*modseq, *uid))
            .collect();
        by_age.sort_unstable();
        let excess = self.tombstones.len() - keep;
        for (modseq, uid) in by_age.into_iter().take(excess) {
            self.tombstones.remove(&uid);
            self.vanished_floor = self.vanished_floor.max(modseq);
        }
    }

    fn status(&self) -> FolderStatus {
        let unseen = self
            .messages
            .values()
            .filter(|message| !message.flags.iter().any(|flag| flag == "\\Seen"))
            .count();
        let deleted = self
            .messages
            .values()
            .filter(|message| message.flags.iter().any(|flag| flag == "\\Deleted"))
            .count();
        FolderStatus {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highestmodseq: self.highestmodseq,
            messages: u32::try_from(self.messages.len()).unwrap_or(u32::MAX),
            unseen: u32::try_from(unseen).unwrap_or(u32::MAX),
            deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
            size: self.messages.values().map(|message| message.size).sum(),
        }
    }
}

#[derive(Clone, Debug)]
struct User {
    /// The address as first given: how observations name the user.
    name: String,
    next_uidvalidity: u64,
    folders: BTreeMap<String, Folder>,
    delivered: BTreeSet<String>,
    subscriptions: BTreeSet<String>,
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

    /// Like [`User::folder`], mutably.
    fn folder_mut(&mut self, name: &str) -> Result<(String, &mut Folder), MailboxError> {
        let name = normalise_folder_name(name)?;
        match self.folders.get_mut(&name) {
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
    limits: MailboxLimits,
}

impl MailboxModel {
    pub fn new() -> MailboxModel {
        MailboxModel::default()
    }

    /// A model with other bounds than the default ones.
    pub fn with_limits(limits: MailboxLimits) -> MailboxModel {
        MailboxModel {
            users: BTreeMap::new(),
            limits,
        }
    }

    fn user(&self, user: &str) -> Result<&User, MailboxError> {
        self.users
            .get(&user.to_ascii_lowercase())
            .ok_or_else(|| MailboxError::NoSuchUser(user.to_owned()))
    }

    fn user_mut(&mut self, user: &str) -> Result<&mut User, MailboxError> {
        self.users
            .get_mut(&user.to_ascii_lowercase())
            .ok_or_else(|| MailboxError::NoSuchUser(user.to_owned()))
    }

    /// Applies one operation; a refused operation changes nothing (every check
    /// runs before the first change).
    pub fn apply(&mut self, operation: &Operation) -> Result<Outcome, MailboxError> {
        let keep_tombstones = self.limits.tombstones_per_folder;
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
                reverse_path,
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
                let modseq = inbox.next_modseq();
                inbox.messages.insert(
                    uid,
                    Message {
                        flags: Vec::new(),
                        size: *size,
                        blob: blob.clone(),
                        internal_date_ms: *internal_date_ms,
                        modseq,
                        reverse_path: reverse_path.clone(),
                    },
                );
                account.delivered.insert(delivery_key.clone());
                Ok(Outcome::Delivered { uid })
            }
            Operation::Append {
                user,
                folder,
                flags,
                internal_date_ms,
                blob,
                size,
            } => {
                let account = self.user_mut(user)?;
                let (name, found) = account.folder_mut(folder)?;
                let flags = appended_flags(flags)?;
                let uid = found.allocate(&name, 1)?;
                let modseq = found.next_modseq();
                found.messages.insert(
                    uid,
                    Message {
                        flags,
                        size: *size,
                        blob: blob.clone(),
                        internal_date_ms: *internal_date_ms,
                        modseq,
                        reverse_path: String::new(),
                    },
                );
                Ok(Outcome::Appended {
                    uidvalidity: found.uidvalidity,
                    uid,
                })
            }
            Operation::StoreFlags {
                user,
                folder,
                uids,
                mode,
                flags,
                unchanged_since,
            } => {
                let account = self.user_mut(user)?;
                let (_, found) = account.folder_mut(folder)?;
                let normalised = flags
                    .iter()
                    .map(|flag| normalise_flag(flag))
                    .collect::<Result<Vec<String>, MailboxError>>()?;
                store_flags(found, uids, *mode, &normalised, *unchanged_since)
            }
            Operation::Expunge { user, folder, uids } => {
                let account = self.user_mut(user)?;
                let (_, found) = account.folder_mut(folder)?;
                let doomed: Vec<u32> = found
                    .messages
                    .iter()
                    .filter(|(uid, _)| uids.as_ref().is_none_or(|only| only.contains(uid)))
                    .filter(|(_, message)| message.flags.iter().any(|flag| flag == "\\Deleted"))
                    .map(|(uid, _)| *uid)
                    .collect();
                if !doomed.is_empty() {
                    let modseq = found.next_modseq();
                    found.expunge(&doomed, modseq, keep_tombstones);
                }
                Ok(Outcome::Expunged { uids: doomed })
            }
            Operation::Copy {
                user,
                from,
                to,
                uids,
                at_ms,
            } => self.transfer(user, from, to, uids, *at_ms, false),
            Operation::Move {
                user,
                from,
                to,
                uids,
                at_ms,
            } => self.transfer(user, from, to, uids, *at_ms, true),
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
            Operation::Subscribe { user, name } => {
                let most = self.limits.subscriptions_per_user;
                let account = self.user_mut(user)?;
                let name = normalise_folder_name(name)?;
                if !account.subscriptions.contains(&name) {
                    if account.subscriptions.len() >= most {
                        return Err(MailboxError::TooManySubscriptions(most));
                    }
                    account.subscriptions.insert(name);
                }
                Ok(Outcome::Subscribed)
            }
            Operation::Unsubscribe { user, name } => {
                let account = self.user_mut(user)?;
                let name = normalise_folder_name(name)?;
                account.subscriptions.remove(&name);
                Ok(Outcome::Unsubscribed)
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
            subscriptions: BTreeSet::new(),
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
        at_ms: i64,
        moving: bool,
    ) -> Result<Outcome, MailboxError> {
        let keep_tombstones = self.limits.tombstones_per_folder;
        let account = self.user_mut(user)?;
        let (source_name, source) = account.folder(from)?;
        let (target_name, target) = account.folder(to)?;
        if moving && source_name == target_name {
            return Err(MailboxError::SameFolder);
        }
        let direction = junk_direction(source.special_use, target.special_use);
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
        let junk: Vec<JunkEvent> = match direction {
            Some(direction) => chosen
                .iter()
                .map(|(_, message)| JunkEvent {
                    blob: message.blob.clone(),
                    direction,
                    at_ms,
                })
                .collect(),
            None => Vec::new(),
        };
        let mut pairs = Vec::with_capacity(chosen.len());
        if count > 0 {
            let Some(target) = account.folders.get_mut(&target_name) else {
                return Err(MailboxError::NoSuchFolder(target_name));
            };
            let first = target.allocate(&target_name, count)?;
            let modseq = target.next_modseq();
            for (new_uid, (uid, mut message)) in (first..).zip(chosen) {
                message.modseq = modseq;
                target.messages.insert(new_uid, message);
                pairs.push((uid, new_uid));
            }
            if moving && let Some(source) = account.folders.get_mut(&source_name) {
                let moved: Vec<u32> = pairs.iter().map(|(uid, _)| *uid).collect();
                let modseq = source.next_modseq();
                source.expunge(&moved, modseq, keep_tombstones);
            }
        }
        Ok(if moving {
            Outcome::Moved { uids: pairs, junk }
        } else {
            Outcome::Copied { uids: pairs, junk }
        })
    }

    /// SELECT's and STATUS's view of a folder.
    pub fn status(&self, user: &str, folder: &str) -> Result<FolderStatus, MailboxError> {
        let (_, found) = self.user(user)?.folder(folder)?;
        Ok(found.status())
    }

    /// What changed in a folder after `modseq`: messages added or changed since,
    /// UIDs expunged since, and the folder's status.
    pub fn changes_since(
        &self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, MailboxError> {
        let (_, found) = self.user(user)?.folder(folder)?;
        Ok(Changes {
            status: found.status(),
            changed: found
                .messages
                .iter()
                .filter(|(_, message)| message.modseq > modseq)
                .map(|(uid, message)| ChangedMessage {
                    uid: *uid,
                    flags: message.flags.clone(),
                    modseq: message.modseq,
                    internal_date_ms: message.internal_date_ms,
                    size: message.size,
                    reverse_path: message.reverse_path.clone(),
                })
                .collect(),
            vanished: found
                .tombstones
                .iter()
                .filter(|(_, expunged)| **expunged > modseq)
                .map(|(uid, _)| *uid)
                .collect(),
            vanished_complete: modseq >= found.vanished_floor,
        })
    }

    /// The user's folders, by name in byte order.
    pub fn folders(&self, user: &str) -> Result<Vec<FolderEntry>, MailboxError> {
        Ok(self
            .user(user)?
            .folders
            .iter()
            .map(|(name, folder)| FolderEntry {
                name: name.clone(),
                special_use: folder.special_use,
            })
            .collect())
    }

    /// The messages of a folder whose UID is `wanted`, by ascending UID.
    pub fn messages(
        &self,
        user: &str,
        folder: &str,
        wanted: impl Fn(u32) -> bool,
    ) -> Result<Vec<MessageObservation>, MailboxError> {
        let (_, found) = self.user(user)?.folder(folder)?;
        Ok(observe_folder(found)
            .messages
            .into_iter()
            .filter(|message| wanted(message.uid))
            .collect())
    }

    /// The user's subscribed names, sorted by byte order.
    pub fn subscriptions(&self, user: &str) -> Result<Vec<String>, MailboxError> {
        Ok(self.user(user)?.subscriptions.iter().cloned().collect())
    }

    /// The canonical snapshot of every user.
    pub fn observe(&self) -> Observation {
        let mut observation = Observation::default();
        for account in self.users.values() {
            let mut user = UserObservation {
                subscriptions: account.subscriptions.clone(),
                ..UserObservation::default()
            };
            for (name, folder) in &account.folders {
                user.folders.insert(name.clone(), observe_folder(folder));
            }
            observation.users.insert(account.name.clone(), user);
        }
        observation
    }
}

fn observe_folder(folder: &Folder) -> FolderObservation {
    FolderObservation {
        uidvalidity: folder.uidvalidity,
        uidnext: folder.uidnext,
        special_use: folder.special_use,
        highestmodseq: folder.highestmodseq,
        vanished: folder
            .tombstones
            .iter()
            .map(|(uid, modseq)| (*uid, *modseq))
            .collect(),
        vanished_floor: folder.vanished_floor,
        messages: folder
            .messages
            .iter()
            .map(|(uid, message)| MessageObservation {
                uid: *uid,
                flags: message.flags.clone(),
                size: message.size,
                blob: message.blob.clone(),
                internal_date_ms: message.internal_date_ms,
                modseq: message.modseq,
                reverse_path: message.reverse_path.clone(),
            })
            .collect(),
    }
}

/// The flags an appended message starts with, or why not.
pub fn appended_flags(flags: &[String]) -> Result<Vec<String>, MailboxError> {
    let normalised = flags
        .iter()
        .map(|flag| normalise_flag(flag))
        .collect::<Result<Vec<String>, MailboxError>>()?;
    let flags = canonical_flags(normalised);
    if flags.len() > MAX_FLAGS_PER_MESSAGE {
        return Err(MailboxError::TooManyFlags(MAX_FLAGS_PER_MESSAGE));
    }
    Ok(flags)
}

/// Which Junk event a transfer from a folder of `source` use to one of `target`
/// use is: only one that crosses the Junk folder's boundary is one.
pub fn junk_direction(
    source: Option<SpecialUse>,
    target: Option<SpecialUse>,
) -> Option<JunkDirection> {
    let junk = Some(SpecialUse::Junk);
    match (source == junk, target == junk) {
        (false, true) => Some(JunkDirection::IntoJunk),
        (true, false) => Some(JunkDirection::OutOfJunk),
        _ => None,
    }
}

/// STORE on one folder: every new flag set is computed first, so that a refusal
/// for one message changes none.
fn store_flags(
    found: &mut Folder,
    uids: &[u32],
    mode: FlagMode,
    flags: &[String],
    unchanged_since: Option<u64>,
) -> Result<Outcome, MailboxError> {
    let mut stored = Vec::new();
    let mut modified = Vec::new();
    let mut changes = Vec::new();
    for (uid, message) in &found.messages {
        if !uids.contains(uid) {
            continue;
        }
        if unchanged_since.is_some_and(|since| message.modseq > since) {
            modified.push(*uid);
            continue;
        }
        let new_flags = changed_flags(&message.flags, mode, flags)?;
        if new_flags != message.flags {
            changes.push((*uid, new_flags));
        }
        stored.push(*uid);
    }
    if !changes.is_empty() {
        let modseq = found.next_modseq();
        for (uid, new_flags) in changes {
            if let Some(message) = found.messages.get_mut(&uid) {
                message.flags = new_flags;
                message.modseq = modseq;
            }
        }
    }
    Ok(Outcome::FlagsStored {
        uids: stored,
        modified,
    })
}
