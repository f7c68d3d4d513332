//! The mailbox model's own guarantees: worked examples of each operation, and
//! properties over random operation sequences (UIDs only grow, UIDNEXT is above
//! every UID, UIDVALIDITY values never repeat for a user, delivery is idempotent,
//! a refused operation changes nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sluice_core::mailbox::{
    FlagMode, MAX_FLAGS_PER_MESSAGE, MailboxError, MailboxModel, Observation, Operation, Outcome,
    SpecialUse,
};
use std::collections::{BTreeMap, BTreeSet};

const USER: &str = "alice@example.org";

fn model_with_user() -> MailboxModel {
    let mut model = MailboxModel::new();
    model
        .apply(&Operation::AddUser {
            user: USER.to_owned(),
            uidvalidity_base: 100,
        })
        .unwrap();
    model
}

fn deliver(key: &str) -> Operation {
    Operation::Deliver {
        user: USER.to_owned(),
        delivery_key: key.to_owned(),
        blob: "ab".repeat(32),
        size: 42,
        internal_date_ms: 7,
        reverse_path: "bob@example.net".to_owned(),
    }
}

fn flags(model: &MailboxModel, folder: &str) -> Vec<(u32, Vec<String>)> {
    model.observe().users[USER].folders[folder]
        .messages
        .iter()
        .map(|message| (message.uid, message.flags.clone()))
        .collect()
}

#[test]
fn a_new_user_has_inbox_and_special_use_folders() {
    let model = model_with_user();
    let folders = &model.observe().users[USER].folders;
    let names: Vec<(&str, u32, Option<SpecialUse>)> = folders
        .iter()
        .map(|(name, folder)| (name.as_str(), folder.uidvalidity, folder.special_use))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Archive", 105, Some(SpecialUse::Archive)),
            ("Drafts", 102, Some(SpecialUse::Drafts)),
            ("INBOX", 100, None),
            ("Junk", 103, Some(SpecialUse::Junk)),
            ("Sent", 101, Some(SpecialUse::Sent)),
            ("Trash", 104, Some(SpecialUse::Trash)),
        ]
    );
    assert!(folders.values().all(|folder| folder.uidnext == 1));
}

#[test]
fn delivery_is_idempotent_even_after_expunge() {
    let mut model = model_with_user();
    assert_eq!(
        model.apply(&deliver("q1")),
        Ok(Outcome::Delivered { uid: 1 })
    );
    assert_eq!(model.apply(&deliver("q1")), Ok(Outcome::AlreadyDelivered));
    model
        .apply(&Operation::StoreFlags {
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: vec![1],
            mode: FlagMode::Add,
            flags: vec!["\\deleted".to_owned()],
            unchanged_since: None,
        })
        .unwrap();
    assert_eq!(
        model.apply(&Operation::Expunge {
            user: USER.to_owned(),
            folder: "inbox".to_owned(),
            uids: None,
        }),
        Ok(Outcome::Expunged { uids: vec![1] })
    );
    assert_eq!(model.apply(&deliver("q1")), Ok(Outcome::AlreadyDelivered));
    assert_eq!(
        model.apply(&deliver("q2")),
        Ok(Outcome::Delivered { uid: 2 })
    );
}

#[test]
fn flags_are_set_added_and_removed_canonically() {
    let mut model = model_with_user();
    model.apply(&deliver("q1")).unwrap();
    let store = |mode, list: &[&str]| Operation::StoreFlags {
        user: USER.to_owned(),
        folder: "INBOX".to_owned(),
        uids: vec![1, 9],
        mode,
        flags: list.iter().map(|flag| (*flag).to_owned()).collect(),
        unchanged_since: None,
    };
    assert_eq!(
        model.apply(&store(FlagMode::Add, &["\\SEEN", "$Work"])),
        Ok(Outcome::FlagsStored {
            uids: vec![1],
            modified: vec![]
        })
    );
    assert_eq!(
        flags(&model, "INBOX"),
        vec![(1, vec!["$Work".to_owned(), "\\Seen".to_owned()])]
    );
    model.apply(&store(FlagMode::Remove, &["\\seen"])).unwrap();
    assert_eq!(flags(&model, "INBOX"), vec![(1, vec!["$Work".to_owned()])]);
    model.apply(&store(FlagMode::Set, &["\\Flagged"])).unwrap();
    assert_eq!(
        flags(&model, "INBOX"),
        vec![(1, vec!["\\Flagged".to_owned()])]
    );
    let many: Vec<String> = (0..MAX_FLAGS_PER_MESSAGE)
        .map(|n| format!("k{n}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    model.apply(&store(FlagMode::Set, &many)).unwrap();
    let before = model.observe();
    assert_eq!(
        model.apply(&store(FlagMode::Add, &["\\Seen"])),
        Err(MailboxError::TooManyFlags(MAX_FLAGS_PER_MESSAGE))
    );
    assert_eq!(model.observe(), before);
    assert_eq!(
        model.apply(&store(FlagMode::Add, &["\\Recent"])),
        Err(MailboxError::InvalidFlag("\\Recent".to_owned()))
    );
    assert_eq!(model.observe(), before);
}

#[test]
fn copy_and_move_assign_new_uids_and_keep_flags() {
    let mut model = model_with_user();
    for key in ["a", "b", "c"] {
        model.apply(&deliver(key)).unwrap();
    }
    model
        .apply(&Operation::StoreFlags {
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: vec![2],
            mode: FlagMode::Add,
            flags: vec!["\\Seen".to_owned()],
            unchanged_since: None,
        })
        .unwrap();
    assert_eq!(
        model.apply(&Operation::Copy {
            user: USER.to_owned(),
            from: "INBOX".to_owned(),
            to: "Archive".to_owned(),
            uids: vec![3, 2, 7],
            at_ms: 5,
        }),
        Ok(Outcome::Copied {
            uids: vec![(2, 1), (3, 2)],
            junk: vec![],
        })
    );
    assert_eq!(
        model.apply(&Operation::Move {
            user: USER.to_owned(),
            from: "INBOX".to_owned(),
            to: "Trash".to_owned(),
            uids: vec![1, 2],
            at_ms: 5,
        }),
        Ok(Outcome::Moved {
            uids: vec![(1, 1), (2, 2)],
            junk: vec![],
        })
    );
    assert_eq!(flags(&model, "INBOX"), vec![(3, vec![])]);
    assert_eq!(
        flags(&model, "Trash"),
        vec![(1, vec![]), (2, vec!["\\Seen".to_owned()])]
    );
    assert_eq!(
        model.apply(&Operation::Move {
            user: USER.to_owned(),
            from: "Trash".to_owned(),
            to: "Trash".to_owned(),
            uids: vec![1],
            at_ms: 5,
        }),
        Err(MailboxError::SameFolder)
    );
}

#[test]
fn folders_are_created_renamed_and_deleted() {
    let mut model = model_with_user();
    let create = |name: &str| Operation::CreateFolder {
        user: USER.to_owned(),
        name: name.to_owned(),
    };
    assert_eq!(
        model.apply(&create("Work")),
        Ok(Outcome::FolderCreated { uidvalidity: 106 })
    );
    assert_eq!(
        model.apply(&create("Work")),
        Err(MailboxError::FolderExists("Work".to_owned()))
    );
    assert_eq!(
        model.apply(&create("inbox")),
        Err(MailboxError::FolderExists("INBOX".to_owned()))
    );
    assert_eq!(
        model.apply(&create("a*")),
        Err(MailboxError::InvalidFolderName("a*".to_owned()))
    );
    assert_eq!(
        model.apply(&Operation::RenameFolder {
            user: USER.to_owned(),
            from: "Work".to_owned(),
            to: "Projects".to_owned(),
        }),
        Ok(Outcome::FolderRenamed)
    );
    // Renaming keeps the folder's UIDVALIDITY.
    assert_eq!(
        model.observe().users[USER].folders["Projects"].uidvalidity,
        106
    );
    for refused in [
        Operation::RenameFolder {
            user: USER.to_owned(),
            from: "INBOX".to_owned(),
            to: "Old".to_owned(),
        },
        Operation::DeleteFolder {
            user: USER.to_owned(),
            name: "Inbox".to_owned(),
        },
    ] {
        assert_eq!(model.apply(&refused), Err(MailboxError::InboxIsPermanent));
    }
    model
        .apply(&Operation::DeleteFolder {
            user: USER.to_owned(),
            name: "Projects".to_owned(),
        })
        .unwrap();
    // The same name again gets a UIDVALIDITY it never had.
    assert_eq!(
        model.apply(&create("Projects")),
        Ok(Outcome::FolderCreated { uidvalidity: 107 })
    );
    assert_eq!(
        model.apply(&Operation::Expunge {
            user: "nobody@example.org".to_owned(),
            folder: "INBOX".to_owned(),
            uids: None,
        }),
        Err(MailboxError::NoSuchUser("nobody@example.org".to_owned()))
    );
    assert_eq!(
        model.apply(&Operation::Expunge {
            user: USER.to_owned(),
            folder: "Nope".to_owned(),
            uids: None,
        }),
        Err(MailboxError::NoSuchFolder("Nope".to_owned()))
    );
}

fn operation() -> impl Strategy<Value = Operation> {
    let folder = prop_oneof![
        Just("INBOX"),
        Just("Sent"),
        Just("Trash"),
        Just("Work"),
        Just("Lists"),
        Just("")
    ]
    .prop_map(str::to_owned);
    let uids = proptest::collection::vec(1..10_u32, 0..4);
    let flags = proptest::collection::vec(
        prop_oneof![
            Just("\\Seen"),
            Just("\\Deleted"),
            Just("$Key"),
            Just("\\Recent")
        ]
        .prop_map(str::to_owned),
        0..3,
    );
    let mode = prop_oneof![
        Just(FlagMode::Set),
        Just(FlagMode::Add),
        Just(FlagMode::Remove)
    ];
    prop_oneof![
        4 => (0..5_u32).prop_map(|key| deliver(&format!("k{key}"))),
        3 => (folder.clone(), uids.clone(), mode, flags).prop_map(|(folder, uids, mode, flags)| {
            Operation::StoreFlags { user: USER.to_owned(), folder, uids, mode, flags, unchanged_since: None }
        }),
        2 => (folder.clone(), proptest::option::of(uids.clone())).prop_map(|(folder, uids)| Operation::Expunge { user: USER.to_owned(), folder, uids }),
        2 => (folder.clone(), folder.clone(), uids.clone(), any::<bool>()).prop_map(
            |(from, to, uids, moving)| if moving {
                Operation::Move { user: USER.to_owned(), from, to, uids, at_ms: 5 }
            } else {
                Operation::Copy { user: USER.to_owned(), from, to, uids, at_ms: 5 }
            }
        ),
        1 => folder.clone().prop_map(|name| Operation::CreateFolder { user: USER.to_owned(), name }),
        1 => folder.clone().prop_map(|name| Operation::DeleteFolder { user: USER.to_owned(), name }),
        1 => (folder.clone(), folder).prop_map(|(from, to)| Operation::RenameFolder {
            user: USER.to_owned(), from, to
        }),
    ]
}

/// Every UIDVALIDITY a user's folders have now.
fn uidvalidities(observation: &Observation) -> BTreeMap<String, u32> {
    observation.users[USER]
        .folders
        .iter()
        .map(|(name, folder)| (name.clone(), folder.uidvalidity))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sequences_keep_the_invariants(operations in proptest::collection::vec(operation(), 1..60)) {
        let mut model = model_with_user();
        let mut seen_uidvalidities: BTreeSet<u32> =
            uidvalidities(&model.observe()).into_values().collect();
        let mut delivered_keys = BTreeSet::new();
        for operation in &operations {
            let before = model.observe();
            let result = model.apply(operation);
            let after = model.observe();
            match &result {
                Err(_) => prop_assert_eq!(&before, &after, "a refusal changed state"),
                Ok(Outcome::Delivered { .. }) => {
                    if let Operation::Deliver { delivery_key, .. } = operation {
                        prop_assert!(delivered_keys.insert(delivery_key.clone()));
                    }
                }
                Ok(Outcome::AlreadyDelivered) => prop_assert_eq!(&before, &after),
                Ok(Outcome::FolderCreated { uidvalidity }) => {
                    prop_assert!(seen_uidvalidities.insert(*uidvalidity), "UIDVALIDITY reused");
                }
                Ok(_) => {}
            }
            for (name, folder) in &after.users[USER].folders {
                let uids: Vec<u32> = folder.messages.iter().map(|message| message.uid).collect();
                prop_assert!(uids.windows(2).all(|pair| pair[0] < pair[1]));
                prop_assert!(uids.iter().all(|uid| *uid < folder.uidnext));
                let sorted = folder
                    .messages
                    .iter()
                    .all(|message| message.flags.windows(2).all(|pair| pair[0] < pair[1]));
                prop_assert!(sorted, "flags not canonical");
                if let Some(previous) = before.users[USER].folders.get(name)
                    && previous.uidvalidity == folder.uidvalidity
                {
                    prop_assert!(folder.uidnext >= previous.uidnext, "UIDNEXT went back");
                }
            }
        }
    }
}
