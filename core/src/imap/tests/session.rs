//! One behaviour per test: states, authentication, framing, each mailbox command.

use super::{Harness, USER};
use crate::imap::request::MailboxRefusal;
use crate::imap::{Input, Limits, MailboxAnswer, SessionConfig, TlsMode};
use crate::machine::Machine;
use crate::mailbox::{FlagMode, Operation};
use crate::time::Duration;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

#[test]
fn greeting_advertises_logindisabled_before_tls() {
    let mut harness = Harness::new(TlsMode::StartTlsOffered, false);
    assert!(
        harness
            .sent
            .starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED ")
    );
    assert!(!harness.sent.contains("AUTH=PLAIN"));
    let answer = harness.client("a LOGIN alice secret\r\n");
    assert_eq!(answer, "a NO [PRIVACYREQUIRED] TLS required\r\n");
    let answer = harness.client("b AUTHENTICATE PLAIN\r\n");
    assert_eq!(answer, "b NO [PRIVACYREQUIRED] TLS required\r\n");
}

#[test]
fn starttls_then_login() {
    let mut harness = Harness::new(TlsMode::StartTlsOffered, false);
    assert_eq!(
        harness.client("a STARTTLS\r\n"),
        "a OK Begin TLS negotiation now\r\n"
    );
    assert!(harness.starttls);
    harness.input(Input::TlsEstablished);
    let caps = harness.client("b CAPABILITY\r\n");
    assert!(
        caps.contains("AUTH=PLAIN SASL-IR") && !caps.contains("STARTTLS"),
        "{caps}"
    );
    assert!(!caps.contains("LOGINDISABLED"));
    let answer = harness.client("c LOGIN alice secret\r\n");
    assert!(
        answer.starts_with("c OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+"),
        "{answer}"
    );
    assert!(answer.contains("QRESYNC") && !answer.contains("AUTH=PLAIN"));
    assert_eq!(
        harness.client("d STARTTLS\r\n"),
        "d BAD Command not valid in this state\r\n"
    );
}

#[test]
fn bytes_pipelined_after_starttls_close_the_connection() {
    let mut harness = Harness::new(TlsMode::StartTlsOffered, false);
    harness.client("a STARTTLS\r\nb LOGIN alice secret\r\n");
    assert!(harness.closed);
    assert!(!harness.starttls);
}

#[test]
fn plaintext_during_the_handshake_closes() {
    let mut harness = Harness::new(TlsMode::StartTlsOffered, false);
    harness.client("a STARTTLS\r\n");
    harness.client("b NOOP\r\n");
    assert!(harness.closed);
}

#[test]
fn implicit_tls_allows_login_at_once() {
    let mut harness = Harness::new(TlsMode::Implicit, false);
    assert!(!harness.sent.contains("STARTTLS") && harness.sent.contains("AUTH=PLAIN"));
    assert!(
        harness
            .client("a LOGIN alice secret\r\n")
            .starts_with("a OK")
    );
}

fn plain(authzid: &str, user: &str, password: &str) -> String {
    STANDARD.encode(format!("{authzid}\0{user}\0{password}"))
}

#[test]
fn authenticate_plain_with_initial_response() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    let answer = harness.client(&format!(
        "a AUTHENTICATE PLAIN {}\r\n",
        plain("", "alice", "secret")
    ));
    assert!(answer.starts_with("a OK [CAPABILITY"), "{answer}");
}

#[test]
fn authenticate_plain_with_continuation_and_cancel() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    assert_eq!(harness.client("a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    assert_eq!(harness.client("*\r\n"), "a BAD AUTHENTICATE cancelled\r\n");
    assert_eq!(harness.client("b AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    assert_eq!(
        harness.client("!!!\r\n"),
        "b BAD Malformed PLAIN response\r\n"
    );
    assert_eq!(harness.client("c AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    let answer = harness.client(&format!("{}\r\n", plain("", "alice", "secret")));
    assert!(answer.starts_with("c OK [CAPABILITY"), "{answer}");
}

#[test]
fn unknown_mechanism_is_refused() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    assert_eq!(
        harness.client("a AUTHENTICATE CRAM-MD5\r\n"),
        "a NO Unsupported mechanism\r\n"
    );
}

#[test]
fn failed_logins_end_the_session() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    for tag in ["a", "b"] {
        let answer = harness.client(&format!("{tag} LOGIN alice wrong\r\n"));
        assert_eq!(
            answer,
            format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")
        );
    }
    let answer = harness.client("c LOGIN alice wrong\r\n");
    assert!(
        answer.ends_with("* BYE Too many failed logins\r\n"),
        "{answer}"
    );
    assert!(harness.closed);
}

#[test]
fn mailbox_commands_need_authentication() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    for command in [
        "SELECT INBOX",
        "LIST \"\" *",
        "CREATE x",
        "ENABLE CONDSTORE",
        "CLOSE",
    ] {
        let answer = harness.client(&format!("t {command}\r\n"));
        assert_eq!(
            answer, "t BAD Command not valid in this state\r\n",
            "{command}"
        );
    }
    assert_eq!(
        harness.client("u FROB\r\n"),
        "u BAD Invalid command syntax\r\n"
    );
}

#[test]
fn selected_state_commands_need_a_selected_mailbox() {
    let mut harness = Harness::logged_in();
    for command in [
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "STORE 1 +FLAGS (\\Seen)",
        "COPY 1 Trash",
    ] {
        let answer = harness.client(&format!("t {command}\r\n"));
        assert_eq!(
            answer, "t BAD Command not valid in this state\r\n",
            "{command}"
        );
    }
}

#[test]
fn too_many_bad_commands_close() {
    let mut config = SessionConfig::new("h", TlsMode::Unavailable);
    config.limits = Limits {
        bad_commands: 3,
        ..Limits::default()
    };
    let mut harness = Harness::with_config(config);
    harness.client("a X\r\nb X\r\n");
    assert!(!harness.closed);
    let answer = harness.client("c X\r\n");
    assert!(answer.ends_with("* BYE Too many invalid commands\r\n"));
    assert!(harness.closed);
}

#[test]
fn login_with_literals() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    assert_eq!(
        harness.client("a LOGIN {5}\r\n"),
        "+ Ready for literal data\r\n"
    );
    let answer = harness.client("alice {6+}\r\nsecret\r\n");
    assert!(answer.starts_with("a OK [CAPABILITY"), "{answer}");
}

#[test]
fn oversized_literals_are_refused() {
    let mut config = SessionConfig::new("h", TlsMode::Unavailable);
    config.plaintext_auth = true;
    config.limits = Limits {
        command: 100,
        ..Limits::default()
    };
    let mut harness = Harness::with_config(config);
    // Synchronising: refused before the client sends it.
    assert_eq!(
        harness.client("a LOGIN {500}\r\n"),
        "a BAD [TOOBIG] Literal too big\r\n"
    );
    // Non-synchronising: its octets and the rest of the command are dropped.
    let answer = harness.client(&format!(
        "b LOGIN {{200+}}\r\n{} x\r\nc NOOP\r\n",
        "z".repeat(200)
    ));
    assert_eq!(
        answer,
        "b BAD [TOOBIG] Literal too big\r\nc OK NOOP completed\r\n"
    );
}

#[test]
fn a_literal_where_none_may_be_is_refused() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    assert_eq!(
        harness.client("a NOOP {5}\r\n"),
        "a BAD Invalid command\r\n"
    );
    assert_eq!(harness.client("b NOOP\r\n"), "b OK NOOP completed\r\n");
}

#[test]
fn overlong_lines_are_refused() {
    let mut config = SessionConfig::new("h", TlsMode::Unavailable);
    config.limits = Limits {
        line: 64,
        ..Limits::default()
    };
    let mut harness = Harness::with_config(config);
    let answer = harness.client(&format!("a NOOP {}\r\nb NOOP\r\n", "x".repeat(100)));
    assert_eq!(
        answer,
        "a BAD [TOOBIG] Line too long\r\nb OK NOOP completed\r\n"
    );
}

#[test]
fn noop_id_namespace_enable_logout() {
    let mut harness = Harness::logged_in();
    assert_eq!(harness.client("a NOOP\r\n"), "a OK NOOP completed\r\n");
    assert_eq!(
        harness.client("b ID (\"name\" \"Thunderbird\")\r\n"),
        "* ID (\"name\" \"Sluice\")\r\nb OK ID completed\r\n"
    );
    assert_eq!(
        harness.client("c NAMESPACE\r\n"),
        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nc OK NAMESPACE completed\r\n"
    );
    assert_eq!(
        harness.client("d ENABLE CONDSTORE QRESYNC X-UNKNOWN\r\n"),
        "* ENABLED CONDSTORE QRESYNC\r\nd OK ENABLE completed\r\n"
    );
    assert_eq!(
        harness.client("e ENABLE CONDSTORE\r\n"),
        "* ENABLED\r\ne OK ENABLE completed\r\n"
    );
    assert_eq!(
        harness.client("f LOGOUT\r\n"),
        "* BYE Logging out\r\nf OK LOGOUT completed\r\n"
    );
    assert!(harness.closed);
}

#[test]
fn autologout_after_idle_time() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    assert_eq!(harness.wait(Duration::from_secs(59)), "");
    assert_eq!(
        harness.wait(Duration::from_secs(1)),
        "* BYE Autologout; idle for too long\r\n"
    );
    assert!(harness.closed);
    let mut harness = Harness::logged_in();
    assert_eq!(harness.wait(Duration::from_mins(29)), "");
    harness.client("a IDLE\r\n");
    assert_eq!(harness.wait(Duration::from_mins(29)), "");
    assert!(
        harness
            .wait(Duration::from_mins(1))
            .starts_with("* BYE Autologout")
    );
}

#[test]
fn driver_timeout_closes() {
    let mut harness = Harness::logged_in();
    harness.answering = false;
    harness.client("a SELECT INBOX\r\n");
    assert_eq!(
        harness.session.next_deadline(),
        Some(harness.now + Duration::from_mins(2))
    );
    let answer = harness.wait(Duration::from_mins(2));
    assert_eq!(answer, "* BYE Internal timeout, try again later\r\n");
}

#[test]
fn late_and_unknown_tokens_are_ignored() {
    let mut harness = Harness::logged_in();
    harness.answering = false;
    harness.client("a STATUS INBOX (MESSAGES)\r\n");
    harness.input(Input::MailboxAnswered {
        token: crate::machine::Token(999),
        answer: MailboxAnswer::Done,
    });
    assert_eq!(harness.sent, "");
    harness.answer_pending(MailboxAnswer::Done);
    assert_eq!(harness.sent, "a NO [SERVERBUG] Internal error\r\n");
}

#[test]
fn pipelined_commands_wait_for_the_answer_in_order() {
    let mut harness = Harness::logged_in();
    harness.answering = false;
    let answer = harness.client("a STATUS INBOX (MESSAGES)\r\nb NOOP\r\n");
    assert_eq!(answer, "");
    harness.answer_pending(MailboxAnswer::Refused(MailboxRefusal::Unavailable));
    assert_eq!(
        harness.sent,
        "a NO [UNAVAILABLE] Try again later\r\nb OK NOOP completed\r\n"
    );
}

#[test]
fn input_beyond_the_bound_while_waiting_closes() {
    let mut config = SessionConfig::new("h", TlsMode::Unavailable);
    config.plaintext_auth = true;
    config.limits = Limits {
        pipeline_buffer: 100,
        ..Limits::default()
    };
    let mut harness = Harness::with_config(config);
    harness.client("l LOGIN alice secret\r\n");
    harness.answering = false;
    harness.client("a STATUS INBOX (MESSAGES)\r\n");
    assert!(!harness.closed);
    harness.client(&"b NOOP\r\n".repeat(20));
    assert!(harness.closed);
    assert!(harness.sent.ends_with("* BYE Too much input\r\n"));
}

#[test]
fn select_reports_the_mailbox() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"Subject: one\r\n\r\nx\r\n");
    harness.store.deliver(USER, b"Subject: two\r\n\r\ny\r\n");
    let answer = harness.client("a SELECT INBOX\r\n");
    assert_eq!(
        answer,
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
         * 2 EXISTS\r\n\
         * 0 RECENT\r\n\
         * OK [UNSEEN 1] First unseen\r\n\
         * OK [UIDVALIDITY 1000] UIDs valid\r\n\
         * OK [UIDNEXT 3] Predicted next UID\r\n\
         * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n\
         a OK [READ-WRITE] SELECT completed\r\n"
    );
    let answer = harness.client("b EXAMINE Sent\r\n");
    assert!(
        answer.starts_with("* OK [CLOSED] Previous mailbox closed\r\n"),
        "{answer}"
    );
    assert!(answer.contains("* 0 EXISTS") && answer.contains("[PERMANENTFLAGS ()]"));
    assert!(answer.ends_with("b OK [READ-ONLY] EXAMINE completed\r\n"));
    assert_eq!(
        harness.client("c SELECT Nowhere\r\n"),
        "* OK [CLOSED] Previous mailbox closed\r\nc NO [NONEXISTENT] No such mailbox\r\n"
    );
    // A failed SELECT leaves no mailbox selected.
    assert_eq!(
        harness.client("d CLOSE\r\n"),
        "d BAD Command not valid in this state\r\n"
    );
}

#[test]
fn select_under_imap4rev2_and_condstore() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.client("e ENABLE IMAP4rev2\r\n");
    let answer = harness.client("a SELECT INBOX (CONDSTORE)\r\n");
    assert!(
        !answer.contains("RECENT") && !answer.contains("UNSEEN"),
        "{answer}"
    );
    assert!(
        answer.contains("* OK [HIGHESTMODSEQ 2] Highest\r\n"),
        "{answer}"
    );
}

#[test]
fn qresync_select_reports_vanished_and_changed() {
    let mut harness = Harness::logged_in();
    for _ in 0..4 {
        harness.store.deliver(USER, b"x\r\n");
    }
    harness.client("e ENABLE QRESYNC\r\n");
    let answer = harness.client("a SELECT INBOX\r\n");
    // The test store starts counting at 1 with the empty folder.
    assert!(answer.contains("[HIGHESTMODSEQ 5]"), "{answer}");
    harness.client("b UNSELECT\r\n");
    let flag = |uids: Vec<u32>, flags: &[&str]| Operation::StoreFlags {
        unchanged_since: None,
        user: USER.to_owned(),
        folder: "INBOX".to_owned(),
        uids,
        mode: FlagMode::Add,
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
    };
    harness.store.apply(&flag(vec![2], &["\\Deleted"])).unwrap();
    harness
        .store
        .apply(&Operation::Expunge {
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: None,
        })
        .unwrap();
    harness.store.apply(&flag(vec![3], &["\\Seen"])).unwrap();
    let answer = harness.client("c SELECT INBOX (QRESYNC (1000 5))\r\n");
    assert!(answer.contains("* VANISHED (EARLIER) 2\r\n"), "{answer}");
    assert!(
        answer.contains("* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (8))\r\n"),
        "{answer}"
    );
}

#[test]
fn qresync_needs_enable() {
    let mut harness = Harness::logged_in();
    assert_eq!(
        harness.client("a SELECT INBOX (QRESYNC (1000 4))\r\n"),
        "a BAD QRESYNC is not enabled\r\n"
    );
}

#[test]
fn list_shows_special_use_and_children() {
    let mut harness = Harness::logged_in();
    harness.client("c CREATE Projects/Alpha\r\n");
    harness.client("d CREATE Projects\r\n");
    let answer = harness.client("a LIST \"\" \"*\"\r\n");
    assert_eq!(
        answer,
        "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"\r\n\
         * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"\r\n\
         * LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n\
         * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"\r\n\
         * LIST (\\HasChildren) \"/\" \"Projects\"\r\n\
         * LIST (\\HasNoChildren) \"/\" \"Projects/Alpha\"\r\n\
         * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n\
         * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"\r\n\
         a OK LIST completed\r\n"
    );
    assert_eq!(
        harness.client("b LIST \"\" \"\"\r\n"),
        "* LIST (\\Noselect) \"/\" \"\"\r\nb OK LIST completed\r\n"
    );
    assert_eq!(
        harness.client("e LIST \"Projects/\" %\r\n"),
        "* LIST (\\HasNoChildren) \"/\" \"Projects/Alpha\"\r\ne OK LIST completed\r\n"
    );
}

#[test]
fn list_extended_selection_and_return_options() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.client("a SUBSCRIBE INBOX\r\nb SUBSCRIBE Gone\r\n");
    let answer = harness.client("c LIST (SPECIAL-USE) \"\" *\r\n");
    assert!(
        !answer.contains("INBOX") && answer.contains("\\Sent"),
        "{answer}"
    );
    let answer = harness.client("d LIST (SUBSCRIBED) \"\" *\r\n");
    assert_eq!(
        answer,
        "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" \"Gone\"\r\n\
         * LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"\r\n\
         d OK LIST completed\r\n"
    );
    let answer =
        harness.client("e LIST \"\" (INBOX Junk) RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))\r\n");
    assert_eq!(
        answer,
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"\r\n\
         * STATUS \"INBOX\" (MESSAGES 1 UNSEEN 1)\r\n\
         * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"\r\n\
         * STATUS \"Junk\" (MESSAGES 0 UNSEEN 0)\r\n\
         e OK LIST completed\r\n"
    );
    assert_eq!(
        harness.client("f LIST (BOGUS) \"\" *\r\n"),
        "f BAD Invalid command syntax\r\n"
    );
}

#[test]
fn lsub_lists_subscriptions() {
    let mut harness = Harness::logged_in();
    harness.client("a SUBSCRIBE Sent\r\nb SUBSCRIBE Old\r\n");
    assert_eq!(
        harness.client("c LSUB \"\" *\r\n"),
        "* LSUB (\\Noselect) \"/\" \"Old\"\r\n* LSUB (\\Sent) \"/\" \"Sent\"\r\nc OK LSUB completed\r\n"
    );
    assert_eq!(
        harness.client("d UNSUBSCRIBE Old\r\n"),
        "d OK UNSUBSCRIBE completed\r\n"
    );
    assert_eq!(
        harness.client("e UNSUBSCRIBE Old\r\n"),
        "e NO [NONEXISTENT] No such mailbox\r\n"
    );
}

#[test]
fn status_reports_counters() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.store.deliver(USER, b"y\r\n");
    assert_eq!(
        harness.client(
            "a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED HIGHESTMODSEQ RECENT)\r\n"
        ),
        "* STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1000 UNSEEN 2 DELETED 0 HIGHESTMODSEQ 3 RECENT 0)\r\n\
         a OK STATUS completed\r\n"
    );
    assert_eq!(
        harness.client("b STATUS Nowhere (MESSAGES)\r\n"),
        "b NO [NONEXISTENT] No such mailbox\r\n"
    );
}

#[test]
fn create_rename_delete() {
    let mut harness = Harness::logged_in();
    assert_eq!(
        harness.client("a CREATE Work\r\n"),
        "a OK CREATE completed\r\n"
    );
    assert_eq!(
        harness.client("b CREATE Work\r\n"),
        "b NO [ALREADYEXISTS] Mailbox exists already\r\n"
    );
    assert_eq!(
        harness.client("c RENAME Work Play\r\n"),
        "c OK RENAME completed\r\n"
    );
    assert_eq!(
        harness.client("d DELETE Work\r\n"),
        "d NO [NONEXISTENT] No such mailbox\r\n"
    );
    assert_eq!(
        harness.client("e DELETE Play\r\n"),
        "e OK DELETE completed\r\n"
    );
    assert_eq!(
        harness.client("f DELETE INBOX\r\n"),
        "f NO [CANNOT] INBOX cannot be deleted or renamed\r\n"
    );
    assert_eq!(
        harness.client("g CREATE Trailing/\r\n"),
        "g OK CREATE completed\r\n"
    );
    assert!(
        harness
            .client("h LIST \"\" Trailing\r\n")
            .contains("\"Trailing\"")
    );
}

#[test]
fn noop_reports_arrivals_and_expunges() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.store.deliver(USER, b"y\r\n");
    harness.client("a SELECT INBOX\r\n");
    harness.store.deliver(USER, b"z\r\n");
    harness
        .store
        .apply(&Operation::StoreFlags {
            unchanged_since: None,
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: vec![1],
            mode: FlagMode::Add,
            flags: vec!["\\Deleted".to_owned()],
        })
        .unwrap();
    harness
        .store
        .apply(&Operation::Expunge {
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: None,
        })
        .unwrap();
    assert_eq!(
        harness.client("b NOOP\r\n"),
        "* 1 EXPUNGE\r\n* 2 EXISTS\r\nb OK NOOP completed\r\n"
    );
    assert_eq!(harness.client("c NOOP\r\n"), "c OK NOOP completed\r\n");
}

#[test]
fn expunges_wait_while_store_by_sequence_number_runs() {
    let mut harness = Harness::logged_in();
    for _ in 0..3 {
        harness.store.deliver(USER, b"x\r\n");
    }
    harness.client("a SELECT INBOX\r\n");
    harness
        .store
        .apply(&Operation::StoreFlags {
            unchanged_since: None,
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: vec![1],
            mode: FlagMode::Add,
            flags: vec!["\\Deleted".to_owned()],
        })
        .unwrap();
    harness
        .store
        .apply(&Operation::Expunge {
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: None,
        })
        .unwrap();
    harness.input(Input::MailboxChanged);
    let answer = harness.client("b STORE 3 +FLAGS (\\Flagged)\r\n");
    // Message 3 is still number 3: the expunge of number 1 waits.
    assert_eq!(
        answer,
        "* 3 FETCH (UID 3 FLAGS (\\Flagged))\r\nb OK STORE completed\r\n"
    );
    assert_eq!(
        harness.client("c NOOP\r\n"),
        "* 1 EXPUNGE\r\nc OK NOOP completed\r\n"
    );
}

#[test]
fn store_expunge_and_uid_expunge() {
    let mut harness = Harness::logged_in();
    for _ in 0..4 {
        harness.store.deliver(USER, b"x\r\n");
    }
    harness.client("a SELECT INBOX\r\n");
    assert_eq!(
        harness.client("b STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n"),
        "b OK STORE completed\r\n"
    );
    assert_eq!(
        harness.client("c UID EXPUNGE 2\r\n"),
        "* 2 EXPUNGE\r\nc OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        harness.client("d EXPUNGE\r\n"),
        "* 2 EXPUNGE\r\n* 1 EXPUNGE\r\nd OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        harness.client("e STATUS INBOX (MESSAGES)\r\n"),
        "* STATUS \"INBOX\" (MESSAGES 1)\r\ne OK STATUS completed\r\n"
    );
}

#[test]
fn store_unchangedsince_reports_modified() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.store.deliver(USER, b"y\r\n");
    harness.client("a SELECT INBOX (CONDSTORE)\r\n");
    harness.client("b STORE 2 +FLAGS (\\Seen)\r\n");
    let answer = harness.client("c STORE 1:2 (UNCHANGEDSINCE 2) +FLAGS (\\Flagged)\r\n");
    assert_eq!(
        answer,
        "* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (5))\r\nc OK [MODIFIED 2] Conditional STORE failed\r\n"
    );
}

#[test]
fn examine_is_read_only() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.client("a EXAMINE INBOX\r\n");
    assert_eq!(
        harness.client("b STORE 1 +FLAGS (\\Seen)\r\n"),
        "b NO [READ-ONLY] Mailbox is read-only\r\n"
    );
    assert_eq!(
        harness.client("c EXPUNGE\r\n"),
        "c NO [READ-ONLY] Mailbox is read-only\r\n"
    );
}

#[test]
fn copy_and_move() {
    let mut harness = Harness::logged_in();
    for _ in 0..3 {
        harness.store.deliver(USER, b"x\r\n");
    }
    harness.client("a SELECT INBOX\r\n");
    assert_eq!(
        harness.client("b COPY 1:2 Archive\r\n"),
        "b OK [COPYUID 1005 1:2 1:2] COPY completed\r\n"
    );
    assert_eq!(
        harness.client("c UID MOVE 2:3 Trash\r\n"),
        "* OK [COPYUID 1004 2:3 1:2] Moved\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\nc OK MOVE completed\r\n"
    );
    assert_eq!(
        harness.client("d COPY 1 Nowhere\r\n"),
        "d NO [TRYCREATE] No such mailbox\r\n"
    );
}

#[test]
fn close_expunges_silently_and_unselect_does_not() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.store.deliver(USER, b"y\r\n");
    harness.client("a SELECT INBOX\r\nb STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    assert_eq!(
        harness.client("c UNSELECT\r\n"),
        "c OK UNSELECT completed\r\n"
    );
    harness.client("d SELECT INBOX\r\n");
    assert_eq!(harness.client("e CLOSE\r\n"), "e OK CLOSE completed\r\n");
    assert_eq!(
        harness.client("f STATUS INBOX (MESSAGES)\r\n"),
        "* STATUS \"INBOX\" (MESSAGES 1)\r\nf OK STATUS completed\r\n"
    );
}

#[test]
fn idle_reports_changes_as_they_happen() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.client("a SELECT INBOX\r\n");
    assert_eq!(harness.client("b IDLE\r\n"), "+ idling\r\n");
    harness.store.deliver(USER, b"y\r\n");
    let before = harness.sent.len();
    harness.input(Input::MailboxChanged);
    assert_eq!(&harness.sent[before..], "* 2 EXISTS\r\n");
    assert_eq!(harness.client("DONE\r\n"), "b OK IDLE terminated\r\n");
    assert_eq!(harness.client("c IDLE\r\n"), "+ idling\r\n");
    assert_eq!(harness.client("nonsense\r\n"), "c BAD Expected DONE\r\n");
}

#[test]
fn a_deleted_selected_mailbox_ends_the_session() {
    let mut harness = Harness::logged_in();
    harness.client("a CREATE Work\r\nb SELECT Work\r\n");
    harness
        .store
        .apply(&Operation::DeleteFolder {
            user: USER.to_owned(),
            name: "Work".to_owned(),
        })
        .unwrap();
    assert_eq!(
        harness.client("c NOOP\r\n"),
        "* BYE Selected mailbox no longer exists\r\n"
    );
    assert!(harness.closed);
}

#[test]
fn append_reports_appenduid_and_exists() {
    let mut harness = Harness::logged_in();
    harness.client("a SELECT INBOX\r\n");
    assert_eq!(
        harness.client("b APPEND INBOX (\\Seen) {5}\r\n"),
        "+ Ready for literal data\r\n"
    );
    assert_eq!(
        harness.client("hello\r\n"),
        "* 1 EXISTS\r\nb OK [APPENDUID 1000 1] APPEND completed\r\n"
    );
    assert_eq!(
        harness.client("c APPEND Drafts {3+}\r\nabc\r\n"),
        "c OK [APPENDUID 1002 1] APPEND completed\r\n"
    );
}

#[test]
fn append_over_the_limit_is_refused_before_the_literal() {
    let mut config = SessionConfig::new("h", TlsMode::Unavailable);
    config.plaintext_auth = true;
    config.limits = Limits {
        append_limit: 10,
        ..Limits::default()
    };
    let mut harness = Harness::with_config(config);
    harness.client("l LOGIN alice secret\r\n");
    assert_eq!(
        harness.client("a APPEND INBOX {11}\r\n"),
        "a NO [TOOBIG] Message too big\r\n"
    );
}

#[test]
fn an_idle_view_of_ten_thousand_messages_is_small() {
    let mut harness = Harness::logged_in();
    harness.answering = false;
    harness.client("a SELECT INBOX\r\n");
    harness.answer_pending(MailboxAnswer::Selected(
        crate::imap::request::SelectedMailbox {
            uidvalidity: 1,
            uidnext: 12_001,
            highest_modseq: 1,
            uids: (1..=12_000).filter(|uid| uid % 6 != 0).collect(),
            first_unseen: None,
            keywords: Vec::new(),
            read_only: false,
            changes: None,
        },
    ));
    assert!(harness.sent.contains("* 10000 EXISTS"));
    let bytes = harness.session.view_bytes() + harness.session.buffered_bytes();
    assert!(bytes < 64 * 1024, "{bytes}");
}

/// The dialogue used by the split property: every command once.
const DIALOGUE: &str = "a CAPABILITY\r\nb LOGIN {5}\r\nalice {6+}\r\nsecret\r\nc ENABLE CONDSTORE\r\n\
d LIST \"\" *\r\ne SELECT INBOX\r\nf STORE 1 +FLAGS (\\Seen)\r\ng IDLE\r\nDONE\r\n\
h STATUS Sent (MESSAGES)\r\ni CREATE x\r\nj LOGOUT\r\n";

fn run_split(cuts: &[usize]) -> String {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    harness.store.deliver(USER, b"x\r\n");
    let input = DIALOGUE.as_bytes();
    let mut last = 0;
    for &cut in cuts {
        let cut = cut.min(input.len()).max(last);
        harness.bytes(&input[last..cut]);
        last = cut;
    }
    harness.bytes(&input[last..]);
    harness.sent
}

proptest! {
    #[test]
    fn any_split_of_the_input_gives_the_same_output(mut cuts in proptest::collection::vec(0usize..400, 0..12)) {
        cuts.sort_unstable();
        let whole = run_split(&[]);
        prop_assert!(whole.contains("j OK LOGOUT completed"), "{}", whole);
        prop_assert_eq!(run_split(&cuts), whole);
    }

    /// Arbitrary bytes, before and after login, never panic and never grow the
    /// session's buffers past its bounds.
    #[test]
    fn arbitrary_input_is_survived(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20), login in any::<bool>()) {
        let mut config = SessionConfig::new("h", TlsMode::Unavailable);
        config.plaintext_auth = true;
        config.limits = Limits { line: 256, command: 1024, ..Limits::default() };
        let mut harness = Harness::with_config(config);
        if login {
            harness.client("l LOGIN alice secret\r\na SELECT INBOX\r\n");
        }
        for chunk in chunks {
            harness.bytes(&chunk);
            prop_assert!(harness.session.buffered_bytes() <= 256 + 1024 + 200);
        }
    }

    /// Commands made of the grammar's pieces, in any order: never a panic, and
    /// every tagged command gets its tagged answer unless the session closed.
    #[test]
    fn every_command_is_answered(picks in proptest::collection::vec(0usize..16, 1..25)) {
        const COMMANDS: [&str; 16] = [
            "NOOP", "CAPABILITY", "SELECT INBOX", "EXAMINE Sent", "LIST \"\" %", "LSUB \"\" *",
            "STATUS INBOX (MESSAGES UIDNEXT)", "CREATE n", "DELETE n", "RENAME n m", "SUBSCRIBE n",
            "UNSELECT", "CLOSE", "EXPUNGE", "STORE 1:* +FLAGS (\\Deleted)", "UID MOVE 1:* Trash",
        ];
        let mut harness = Harness::logged_in();
        harness.store.deliver(USER, b"x\r\n");
        for (index, pick) in picks.into_iter().enumerate() {
            let tag = format!("t{index}");
            let answer = harness.client(&format!("{tag} {}\r\n", COMMANDS[pick]));
            prop_assert!(harness.closed || answer.contains(&format!("{tag} ")), "{}: {}", COMMANDS[pick], answer);
        }
    }
}

#[test]
fn only_an_authenticated_client_may_send_a_message_sized_literal() {
    let mut config = SessionConfig::new("h", TlsMode::Unavailable);
    config.limits = Limits {
        command: 1000,
        ..Limits::default()
    };
    let mut harness = Harness::with_config(config);
    assert_eq!(
        harness.client("a APPEND INBOX {5000}\r\n"),
        "a NO [TOOBIG] Message too big\r\n"
    );
}

#[test]
fn own_flag_changes_are_reported_once() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.client("a SELECT INBOX\r\n");
    assert_eq!(
        harness.client("b STORE 1 +FLAGS (\\Seen)\r\n"),
        "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\nb OK STORE completed\r\n"
    );
    assert_eq!(harness.client("c NOOP\r\n"), "c OK NOOP completed\r\n");
    harness.input(Input::MailboxChanged);
    assert_eq!(harness.client("d NOOP\r\n"), "d OK NOOP completed\r\n");
}

#[test]
fn another_sessions_flag_change_is_reported() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"x\r\n");
    harness.client("a ENABLE CONDSTORE\r\nb SELECT INBOX\r\n");
    harness
        .store
        .apply(&Operation::StoreFlags {
            unchanged_since: None,
            user: USER.to_owned(),
            folder: "INBOX".to_owned(),
            uids: vec![1],
            mode: FlagMode::Add,
            flags: vec!["$Important".to_owned()],
        })
        .unwrap();
    assert_eq!(
        harness.client("c NOOP\r\n"),
        "* 1 FETCH (UID 1 FLAGS ($Important) MODSEQ (3))\r\nc OK NOOP completed\r\n"
    );
}

#[test]
fn imap4rev1_names_are_modified_utf7_and_imap4rev2_names_utf8() {
    let mut harness = Harness::logged_in();
    assert_eq!(
        harness.client("a CREATE Entw&APw-rfe\r\n"),
        "a OK CREATE completed\r\n"
    );
    assert_eq!(
        harness.client("b LIST \"\" Entw*\r\n"),
        "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"\r\nb OK LIST completed\r\n"
    );
    assert_eq!(
        harness.client("c CREATE &Jjo\r\n"),
        "c BAD Invalid mailbox name\r\n"
    );
    harness.client("d ENABLE IMAP4rev2\r\n");
    assert_eq!(
        harness.client("e LIST \"\" Entw*\r\n"),
        "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\ne OK LIST completed\r\n"
    );
    assert_eq!(
        harness.client("f STATUS \"Entwürfe\" (MESSAGES)\r\n"),
        "* STATUS \"Entwürfe\" (MESSAGES 0)\r\nf OK STATUS completed\r\n"
    );
}

#[derive(Clone, Debug)]
enum Elsewhere {
    Deliver,
    Expunge(u8),
    Noop,
    StoreBySequence(u8),
    UidStore(u8),
}

fn elsewhere() -> impl Strategy<Value = Elsewhere> {
    prop_oneof![
        Just(Elsewhere::Deliver),
        any::<u8>().prop_map(Elsewhere::Expunge),
        Just(Elsewhere::Noop),
        any::<u8>().prop_map(Elsewhere::StoreBySequence),
        any::<u8>().prop_map(Elsewhere::UidStore),
    ]
}

proptest! {
    /// Other sessions deliver and expunge while this one works: the client's count,
    /// kept only from EXISTS and EXPUNGE, never sees an EXPUNGE during STORE by
    /// sequence number nor a number beyond what it knows, and matches the store
    /// after a final NOOP.
    #[test]
    fn the_client_count_follows_the_store(steps in proptest::collection::vec(elsewhere(), 0..40)) {
        let mut harness = Harness::logged_in();
        harness.store.deliver(USER, b"x\r\n");
        harness.store.deliver(USER, b"y\r\n");
        let mut count = 0u32;
        let apply = |answer: &str, count: &mut u32, expunge_allowed: bool| -> Result<(), TestCaseError> {
            for line in answer.lines() {
                let words: Vec<&str> = line.split(' ').collect();
                if words.len() == 3 && words[0] == "*" && words[2] == "EXISTS" {
                    let exists: u32 = words[1].parse().unwrap();
                    prop_assert!(exists >= *count);
                    *count = exists;
                } else if words.len() == 3 && words[0] == "*" && words[2] == "EXPUNGE" {
                    prop_assert!(expunge_allowed, "EXPUNGE during STORE by number: {}", answer);
                    let seq: u32 = words[1].parse().unwrap();
                    prop_assert!(seq >= 1 && seq <= *count);
                    *count -= 1;
                }
            }
            Ok(())
        };
        let answer = harness.client("s SELECT INBOX\r\n");
        apply(&answer, &mut count, true)?;
        for (index, step) in steps.into_iter().enumerate() {
            let answer = match step {
                Elsewhere::Deliver => {
                    harness.store.deliver(USER, b"z\r\n");
                    harness.input(Input::MailboxChanged);
                    continue;
                }
                Elsewhere::Expunge(pick) => {
                    let uids = harness.store.inbox_uids(USER);
                    if let Some(&uid) = uids.get(usize::from(pick) % uids.len().max(1)) {
                        harness.store.apply(&Operation::StoreFlags {
                            unchanged_since: None,
                            user: USER.to_owned(),
                            folder: "INBOX".to_owned(),
                            uids: vec![uid],
                            mode: FlagMode::Add,
                            flags: vec!["\\Deleted".to_owned()],
                        }).unwrap();
                        harness.store.apply(&Operation::Expunge { user: USER.to_owned(), folder: "INBOX".to_owned(), uids: None }).unwrap();
                        harness.input(Input::MailboxChanged);
                    }
                    continue;
                }
                Elsewhere::Noop => (harness.client(&format!("n{index} NOOP\r\n")), true),
                Elsewhere::StoreBySequence(pick) => {
                    let seq = u32::from(pick) % count.max(1) + 1;
                    (harness.client(&format!("t{index} STORE {seq} +FLAGS (\\Seen)\r\n")), false)
                }
                Elsewhere::UidStore(pick) => {
                    let uid = u32::from(pick) % 8 + 1;
                    (harness.client(&format!("u{index} UID STORE {uid} +FLAGS (\\Flagged)\r\n")), true)
                }
            };
            apply(&answer.0, &mut count, answer.1)?;
        }
        let answer = harness.client("z NOOP\r\n");
        apply(&answer, &mut count, true)?;
        prop_assert_eq!(count as usize, harness.store.inbox_uids(USER).len());
    }
}

#[test]
fn status_with_appendlimit_and_size() {
    let mut harness = Harness::logged_in();
    harness.store.deliver(USER, b"hello\r\n");
    assert_eq!(
        harness.client("a STATUS inbox (MESSAGES APPENDLIMIT SIZE)\r\n"),
        "* STATUS \"INBOX\" (MESSAGES 1 APPENDLIMIT 26214400 SIZE 7)\r\na OK STATUS completed\r\n"
    );
    assert_eq!(
        harness.client("b STATUS INBOX (APPENDLIMIT BOGUS)\r\n"),
        "b BAD Invalid command syntax\r\n"
    );
    let mut fresh = Harness::new(TlsMode::Unavailable, true);
    assert_eq!(
        fresh.client("c STATUS INBOX (APPENDLIMIT)\r\n"),
        "c BAD Command not valid in this state\r\n"
    );
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("INBOX".to_owned()),
        Just("\"\"".to_owned()),
        Just("*".to_owned()),
        Just("%".to_owned()),
        Just("0".to_owned()),
        Just("1:*".to_owned()),
        Just("4294967295".to_owned()),
        Just("*:4294967295".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("{3}\r\nabc".to_owned()),
        Just("{2+}\r\nab".to_owned()),
        Just("(\\Seen \\Deleted $k)".to_owned()),
        Just("(UNCHANGEDSINCE 1)".to_owned()),
        Just("RETURN (STATUS (MESSAGES SIZE APPENDLIMIT))".to_owned()),
        Just("(QRESYNC (1000 1 1:5))".to_owned()),
        Just("&Jjo-".to_owned()),
        "[a-zA-Z&ü/\\-]{1,8}",
    ]
}

fn verb() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "SELECT",
        "EXAMINE",
        "LIST",
        "LSUB",
        "STATUS",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "APPEND",
        "STORE",
        "UID STORE",
        "COPY",
        "UID COPY",
        "MOVE",
        "UID MOVE",
        "EXPUNGE",
        "UID EXPUNGE",
        "CLOSE",
        "UNSELECT",
        "IDLE",
        "ENABLE",
        "NOOP",
        "FETCH",
        "SEARCH",
        "AUTHENTICATE",
        "LOGIN",
        "STARTTLS",
        "ID",
        "NAMESPACE",
        "CAPABILITY",
        "DONE",
    ])
}

proptest! {
    /// Commands assembled from the grammar's pieces, valid or not: no panic, and
    /// the session stays within its bounds.
    #[test]
    fn grammar_pieces_never_panic(
        commands in proptest::collection::vec((verb(), proptest::collection::vec(piece(), 0..5)), 1..20),
        changes in any::<bool>(),
    ) {
        let mut harness = Harness::logged_in();
        harness.store.deliver(USER, b"x\r\n");
        harness.store.deliver(USER, b"y\r\n");
        for (index, (verb, pieces)) in commands.into_iter().enumerate() {
            let line = format!("t{index} {verb} {}\r\n", pieces.join(" "));
            harness.client(&line);
            if changes {
                harness.store.deliver(USER, b"z\r\n");
                harness.input(Input::MailboxChanged);
            }
            prop_assert!(harness.session.buffered_bytes() < 1024 * 1024);
        }
    }
}
