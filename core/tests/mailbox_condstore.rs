//! The mailbox model's CONDSTORE/QRESYNC state (MODSEQ, HIGHESTMODSEQ, expunge
//! tombstones and their bound), APPEND, subscriptions, the envelope sender and
//! Junk events: worked examples, and properties over random sequences.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sluice_core::mailbox::{
    ChangedMessage, FIRST_MODSEQ, FlagMode, FolderStatus, JunkDirection, JunkEvent, MailboxError,
    MailboxLimits, MailboxModel, Operation, Outcome,
};

const USER: &str = "alice@example.org";

fn model(limits: MailboxLimits) -> MailboxModel {
    let mut model = MailboxModel::with_limits(limits);
    model
        .apply(&Operation::AddUser {
            user: USER.to_owned(),
            uidvalidity_base: 100,
        })
        .unwrap();
    model
}

fn deliver(key: &str, blob: &str) -> Operation {
    Operation::Deliver {
        user: USER.to_owned(),
        delivery_key: key.to_owned(),
        blob: blob.to_owned(),
        size: 10,
        internal_date_ms: 7,
        reverse_path: format!("{key}@sender.example"),
    }
}

fn store(uids: &[u32], mode: FlagMode, flag: &str, unchanged_since: Option<u64>) -> Operation {
    Operation::StoreFlags {
        user: USER.to_owned(),
        folder: "INBOX".to_owned(),
        uids: uids.to_vec(),
        mode,
        flags: vec![flag.to_owned()],
        unchanged_since,
    }
}

fn expunge(folder: &str) -> Operation {
    Operation::Expunge {
        user: USER.to_owned(),
        folder: folder.to_owned(),
        uids: None,
    }
}

fn transfer(moving: bool, from: &str, to: &str, uids: &[u32]) -> Operation {
    let (user, from, to, uids, at_ms) = (
        USER.to_owned(),
        from.to_owned(),
        to.to_owned(),
        uids.to_vec(),
        1_700_000_000_000,
    );
    if moving {
        Operation::Move {
            user,
            from,
            to,
            uids,
            at_ms,
        }
    } else {
        Operation::Copy {
            user,
            from,
            to,
            uids,
            at_ms,
        }
    }
}

#[test]
fn every_change_advances_the_folder_modseq_once() {
    let mut model = model(MailboxLimits::default());
    assert_eq!(
        model.status(USER, "INBOX").unwrap().highestmodseq,
        FIRST_MODSEQ
    );
    model.apply(&deliver("a", "b1")).unwrap();
    model.apply(&deliver("b", "b2")).unwrap();
    assert_eq!(model.status(USER, "INBOX").unwrap().highestmodseq, 3);
    // One STORE on two messages: one new MODSEQ, shared.
    model
        .apply(&store(&[1, 2], FlagMode::Add, "\\Seen", None))
        .unwrap();
    let changes = model.changes_since(USER, "INBOX", 3).unwrap();
    assert_eq!(
        changes.changed,
        vec![
            ChangedMessage {
                uid: 1,
                flags: vec!["\\Seen".to_owned()],
                modseq: 4,
                internal_date_ms: 7,
                size: 10,
                reverse_path: "a@sender.example".to_owned(),
            },
            ChangedMessage {
                uid: 2,
                flags: vec!["\\Seen".to_owned()],
                modseq: 4,
                internal_date_ms: 7,
                size: 10,
                reverse_path: "b@sender.example".to_owned(),
            },
        ]
    );
    // A STORE that changes no flag changes no MODSEQ.
    model
        .apply(&store(&[1, 2], FlagMode::Add, "\\Seen", None))
        .unwrap();
    assert_eq!(model.status(USER, "INBOX").unwrap().highestmodseq, 4);
    assert!(
        model
            .changes_since(USER, "INBOX", 4)
            .unwrap()
            .changed
            .is_empty()
    );
    // An expunge advances it and leaves a tombstone at the new value.
    model
        .apply(&store(&[1], FlagMode::Add, "\\Deleted", None))
        .unwrap();
    model.apply(&expunge("INBOX")).unwrap();
    let changes = model.changes_since(USER, "INBOX", 5).unwrap();
    assert_eq!(changes.vanished, vec![1]);
    assert!(changes.vanished_complete);
    assert!(changes.changed.is_empty());
    assert_eq!(
        changes.status,
        FolderStatus {
            uidvalidity: 100,
            uidnext: 3,
            highestmodseq: 6,
            messages: 1,
            unseen: 0,
            deleted: 0,
            size: 10,
        }
    );
    assert!(
        model
            .changes_since(USER, "INBOX", 6)
            .unwrap()
            .vanished
            .is_empty()
    );
    // An expunge with nothing to remove changes nothing.
    model.apply(&expunge("INBOX")).unwrap();
    assert_eq!(model.status(USER, "INBOX").unwrap().highestmodseq, 6);
}

#[test]
fn unchanged_since_leaves_newer_messages_alone_and_reports_them() {
    let mut model = model(MailboxLimits::default());
    model.apply(&deliver("a", "b1")).unwrap(); // MODSEQ 2
    model.apply(&deliver("b", "b2")).unwrap(); // MODSEQ 3
    assert_eq!(
        model.apply(&store(&[1, 2, 9], FlagMode::Add, "$Work", Some(2))),
        Ok(Outcome::FlagsStored {
            uids: vec![1],
            modified: vec![2]
        })
    );
    let flags: Vec<(u32, Vec<String>, u64)> = model
        .changes_since(USER, "INBOX", 0)
        .unwrap()
        .changed
        .into_iter()
        .map(|message| (message.uid, message.flags, message.modseq))
        .collect();
    assert_eq!(
        flags,
        vec![(1, vec!["$Work".to_owned()], 4), (2, vec![], 3)]
    );
    // UNCHANGEDSINCE 0 fails every message (all MODSEQs are positive).
    assert_eq!(
        model.apply(&store(&[1, 2], FlagMode::Set, "\\Seen", Some(0))),
        Ok(Outcome::FlagsStored {
            uids: vec![],
            modified: vec![1, 2]
        })
    );
    assert_eq!(model.status(USER, "INBOX").unwrap().highestmodseq, 4);
}

#[test]
fn tombstones_past_the_bound_go_and_old_clients_are_told_to_resync() {
    let mut model = model(MailboxLimits {
        tombstones_per_folder: 2,
        ..MailboxLimits::default()
    });
    for key in ["a", "b", "c"] {
        model.apply(&deliver(key, "b1")).unwrap(); // MODSEQ 2, 3, 4
    }
    for uid in 1..=3 {
        model
            .apply(&store(&[uid], FlagMode::Add, "\\Deleted", None))
            .unwrap();
        model.apply(&expunge("INBOX")).unwrap();
    }
    // Expunges at MODSEQ 6, 8 and 10; the first tombstone is let go.
    let folder = &model.observe().users[USER].folders["INBOX"];
    assert_eq!(folder.vanished, vec![(2, 8), (3, 10)]);
    assert_eq!(folder.vanished_floor, 6);
    let behind = model.changes_since(USER, "INBOX", 5).unwrap();
    assert_eq!(behind.vanished, vec![2, 3]);
    assert!(!behind.vanished_complete);
    let recent = model.changes_since(USER, "INBOX", 6).unwrap();
    assert_eq!(recent.vanished, vec![2, 3]);
    assert!(recent.vanished_complete);
}

#[test]
fn move_out_leaves_tombstones_and_copy_keeps_the_envelope_sender() {
    let mut model = model(MailboxLimits::default());
    model.apply(&deliver("a", "b1")).unwrap();
    model.apply(&deliver("b", "b2")).unwrap();
    model
        .apply(&transfer(false, "INBOX", "Archive", &[1]))
        .unwrap();
    model
        .apply(&transfer(true, "INBOX", "Trash", &[2]))
        .unwrap();
    let user = &model.observe().users[USER];
    assert_eq!(user.folders["INBOX"].vanished, vec![(2, 4)]);
    assert_eq!(user.folders["Archive"].highestmodseq, 2);
    assert_eq!(user.folders["Archive"].messages[0].modseq, 2);
    assert_eq!(
        user.folders["Archive"].messages[0].reverse_path,
        "a@sender.example"
    );
    assert_eq!(
        user.folders["Trash"].messages[0].reverse_path,
        "b@sender.example"
    );
}

#[test]
fn append_needs_the_folder_and_returns_appenduid() {
    let mut model = model(MailboxLimits::default());
    let append = |folder: &str, flags: &[&str]| Operation::Append {
        user: USER.to_owned(),
        folder: folder.to_owned(),
        flags: flags.iter().map(|flag| (*flag).to_owned()).collect(),
        internal_date_ms: 42,
        blob: "b9".to_owned(),
        size: 99,
    };
    assert_eq!(
        model.apply(&append("Sent", &["\\seen", "\\Seen"])),
        Ok(Outcome::Appended {
            uidvalidity: 101,
            uid: 1
        })
    );
    let sent = &model.observe().users[USER].folders["Sent"];
    assert_eq!(sent.messages[0].flags, vec!["\\Seen".to_owned()]);
    assert_eq!(sent.messages[0].reverse_path, "");
    assert_eq!(sent.messages[0].modseq, 2);
    let before = model.observe();
    assert_eq!(
        model.apply(&append("Nope", &[])),
        Err(MailboxError::NoSuchFolder("Nope".to_owned()))
    );
    assert_eq!(
        model.apply(&append("Sent", &["\\Recent"])),
        Err(MailboxError::InvalidFlag("\\Recent".to_owned()))
    );
    assert_eq!(model.observe(), before);
}

#[test]
fn subscriptions_are_names_that_outlive_their_folders() {
    let mut model = model(MailboxLimits {
        subscriptions_per_user: 3,
        ..MailboxLimits::default()
    });
    let subscribe = |name: &str| Operation::Subscribe {
        user: USER.to_owned(),
        name: name.to_owned(),
    };
    model.apply(&subscribe("Work")).unwrap();
    model.apply(&subscribe("inbox")).unwrap();
    assert_eq!(model.apply(&subscribe("Work")), Ok(Outcome::Subscribed));
    model
        .apply(&Operation::CreateFolder {
            user: USER.to_owned(),
            name: "Work".to_owned(),
        })
        .unwrap();
    model
        .apply(&Operation::RenameFolder {
            user: USER.to_owned(),
            from: "Work".to_owned(),
            to: "Play".to_owned(),
        })
        .unwrap();
    // RENAME moves no subscription, DELETE removes none.
    assert_eq!(
        model.subscriptions(USER).unwrap(),
        vec!["INBOX".to_owned(), "Work".to_owned()]
    );
    model.apply(&subscribe("Play")).unwrap();
    model
        .apply(&Operation::DeleteFolder {
            user: USER.to_owned(),
            name: "Play".to_owned(),
        })
        .unwrap();
    assert_eq!(model.subscriptions(USER).unwrap().len(), 3);
    assert_eq!(
        model.apply(&subscribe("More")),
        Err(MailboxError::TooManySubscriptions(3))
    );
    let unsubscribe = |name: &str| Operation::Unsubscribe {
        user: USER.to_owned(),
        name: name.to_owned(),
    };
    assert_eq!(model.apply(&unsubscribe("Work")), Ok(Outcome::Unsubscribed));
    assert_eq!(model.apply(&unsubscribe("Work")), Ok(Outcome::Unsubscribed));
    assert_eq!(
        model.apply(&subscribe("a*")),
        Err(MailboxError::InvalidFolderName("a*".to_owned()))
    );
    assert_eq!(
        model.subscriptions(USER).unwrap(),
        vec!["INBOX".to_owned(), "Play".to_owned()]
    );
}

#[test]
fn crossing_the_junk_folder_is_an_event() {
    let mut model = model(MailboxLimits::default());
    model.apply(&deliver("a", "b1")).unwrap();
    model.apply(&deliver("b", "b2")).unwrap();
    let event = |blob: &str, direction| JunkEvent {
        blob: blob.to_owned(),
        direction,
        at_ms: 1_700_000_000_000,
    };
    assert_eq!(
        model.apply(&transfer(true, "INBOX", "Junk", &[2, 1])),
        Ok(Outcome::Moved {
            uids: vec![(1, 1), (2, 2)],
            junk: vec![
                event("b1", JunkDirection::IntoJunk),
                event("b2", JunkDirection::IntoJunk)
            ],
        })
    );
    // Within Junk, or between two other folders: no event.
    match model.apply(&transfer(false, "Junk", "Junk", &[1])) {
        Ok(Outcome::Copied { junk, .. }) => assert!(junk.is_empty()),
        other => panic!("{other:?}"),
    }
    // The special use goes with a renamed Junk folder.
    model
        .apply(&Operation::RenameFolder {
            user: USER.to_owned(),
            from: "Junk".to_owned(),
            to: "Spam".to_owned(),
        })
        .unwrap();
    assert_eq!(
        model.apply(&transfer(false, "Spam", "Archive", &[2])),
        Ok(Outcome::Copied {
            uids: vec![(2, 1)],
            junk: vec![event("b2", JunkDirection::OutOfJunk)],
        })
    );
}

fn operation() -> impl Strategy<Value = Operation> {
    let folder = prop_oneof![Just("INBOX"), Just("Junk"), Just("Work")].prop_map(str::to_owned);
    let uids = proptest::collection::vec(1..8_u32, 0..4);
    let flag = prop_oneof![Just("\\Seen"), Just("\\Deleted"), Just("$Key")].prop_map(str::to_owned);
    let mode = prop_oneof![
        Just(FlagMode::Set),
        Just(FlagMode::Add),
        Just(FlagMode::Remove)
    ];
    prop_oneof![
        3 => (0..6_u32).prop_map(|key| deliver(&format!("k{key}"), "b1")),
        4 => (folder.clone(), uids.clone(), mode, flag, proptest::option::of(0..12_u64)).prop_map(
            |(folder, uids, mode, flag, unchanged_since)| Operation::StoreFlags {
                user: USER.to_owned(), folder, uids, mode, flags: vec![flag], unchanged_since,
            }
        ),
        2 => folder.clone().prop_map(|folder| expunge(&folder)),
        2 => (any::<bool>(), folder.clone(), folder.clone(), uids)
            .prop_map(|(moving, from, to, uids)| transfer(moving, &from, &to, &uids)),
        1 => folder.clone().prop_map(|name| Operation::CreateFolder { user: USER.to_owned(), name }),
        1 => folder.prop_map(|name| Operation::DeleteFolder { user: USER.to_owned(), name }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// HIGHESTMODSEQ never goes back within one UIDVALIDITY, bounds every
    /// message's MODSEQ and tombstone, and grows with every changed folder; the
    /// tombstones stay within their bound; and what `changes_since` reports about
    /// a state it saw before is exactly what changed since.
    #[test]
    fn modseqs_describe_every_change(operations in proptest::collection::vec(operation(), 1..50)) {
        let mut model = model(MailboxLimits { tombstones_per_folder: 3, ..MailboxLimits::default() });
        for operation in &operations {
            let before = model.observe();
            let _ = model.apply(operation);
            let after = model.observe();
            for (name, folder) in &after.users[USER].folders {
                prop_assert!(folder.vanished.len() <= 3);
                prop_assert!(folder.messages.iter().all(|m| m.modseq <= folder.highestmodseq));
                prop_assert!(folder.vanished.iter().all(|(_, modseq)| *modseq <= folder.highestmodseq));
                let Some(previous) = before.users[USER].folders.get(name) else { continue };
                if previous.uidvalidity != folder.uidvalidity {
                    continue;
                }
                prop_assert!(folder.highestmodseq >= previous.highestmodseq);
                let changes = model.changes_since(USER, name, previous.highestmodseq).unwrap();
                let unchanged = previous.messages == folder.messages;
                prop_assert_eq!(unchanged, folder.highestmodseq == previous.highestmodseq);
                // Every message now present that differs from before is reported.
                for message in &folder.messages {
                    let old = previous.messages.iter().find(|old| old.uid == message.uid);
                    let reported = changes.changed.iter().any(|changed| changed.uid == message.uid);
                    prop_assert_eq!(old != Some(message), reported);
                }
                // Every message gone since is vanished, when the tombstones suffice.
                if changes.vanished_complete {
                    let gone: Vec<u32> = previous
                        .messages
                        .iter()
                        .map(|message| message.uid)
                        .filter(|uid| !folder.messages.iter().any(|message| message.uid == *uid))
                        .collect();
                    prop_assert_eq!(&changes.vanished, &gone);
                }
            }
        }
    }
}
