//! SEARCH and UID SEARCH, key family by key family, and the ESEARCH forms.

use super::USER;
use super::fetch::{MESSAGE, SENDER, selected};

/// INBOX with three messages: 1 is MESSAGE, 2 a small one from carol, 3 MESSAGE
/// again, flagged \Flagged and keyword `$Work`.
fn three() -> super::Harness {
    let mut harness = selected(0);
    harness.store.deliver_from(USER, SENDER, MESSAGE.as_bytes());
    harness.store.deliver_from(
        USER,
        "carol@example.org",
        b"From: carol@example.org\r\nSubject: lunch?\r\nDate: Tue, 01 Dec 2026 12:00:00 +0100\r\n\r\nsoup\r\n",
    );
    harness.store.deliver_from(USER, SENDER, MESSAGE.as_bytes());
    harness.client("s SELECT INBOX\r\n");
    harness.client("t STORE 3 +FLAGS (\\Flagged $Work)\r\n");
    harness.sent.clear();
    harness.store.content_requests = 0;
    harness
}

fn search(harness: &mut super::Harness, criteria: &str) -> String {
    harness.client(&format!("a SEARCH {criteria}\r\n"))
}

#[test]
fn flag_keys_read_metadata_only() {
    let mut harness = three();
    let cases = [
        ("FLAGGED", "* SEARCH 3"),
        ("UNFLAGGED", "* SEARCH 1 2"),
        ("KEYWORD $Work", "* SEARCH 3"),
        ("UNKEYWORD $Work", "* SEARCH 1 2"),
        ("SEEN", "* SEARCH"),
        ("UNSEEN DELETED", "* SEARCH"),
        ("ALL", "* SEARCH 1 2 3"),
    ];
    for (criteria, expected) in cases {
        assert_eq!(
            search(&mut harness, criteria),
            format!("{expected}\r\na OK SEARCH completed\r\n"),
            "{criteria}"
        );
    }
    assert_eq!(harness.store.content_requests, 0);
}

#[test]
fn sequence_uid_size_and_date_keys_read_metadata_only() {
    let mut harness = three();
    let cases = [
        ("2:3", "* SEARCH 2 3"),
        ("UID 1,3", "* SEARCH 1 3"),
        ("LARGER 200", "* SEARCH 1 3"),
        ("SMALLER 200", "* SEARCH 2"),
        ("SINCE 1-Nov-2023", "* SEARCH 1 2 3"),
        ("BEFORE 1-Nov-2023", "* SEARCH"),
        ("ON 14-Nov-2023", "* SEARCH 1 2 3"),
        ("OR 1 FLAGGED", "* SEARCH 1 3"),
        ("NOT 2", "* SEARCH 1 3"),
    ];
    for (criteria, expected) in cases {
        assert_eq!(
            search(&mut harness, criteria),
            format!("{expected}\r\na OK SEARCH completed\r\n"),
            "{criteria}"
        );
    }
    assert_eq!(harness.store.content_requests, 0);
}

#[test]
fn header_body_and_sent_keys_read_the_bytes() {
    let mut harness = three();
    let cases = [
        ("FROM carol", "* SEARCH 2"),
        ("TO alice", "* SEARCH 1 3"),
        ("SUBJECT hello", "* SEARCH 1 3"),
        ("HEADER Message-ID m1@example", "* SEARCH 1 3"),
        ("BODY soup", "* SEARCH 2"),
        ("TEXT lunch", "* SEARCH 2"),
        ("SENTON 7-Dec-2026", "* SEARCH 1 3"),
        ("SENTBEFORE 5-Dec-2026", "* SEARCH 2"),
        ("FLAGGED SUBJECT hello", "* SEARCH 3"),
        ("HEADER Return-Path carol", "* SEARCH 2"),
    ];
    for (criteria, expected) in cases {
        assert_eq!(
            search(&mut harness, criteria),
            format!("{expected}\r\na OK SEARCH completed\r\n"),
            "{criteria}"
        );
    }
    assert!(harness.store.content_requests > 0);
}

#[test]
fn uid_search_answers_uids() {
    let mut harness = three();
    harness.client("b STORE 1 +FLAGS (\\Deleted)\r\n");
    harness.client("c EXPUNGE\r\n");
    harness.sent.clear();
    assert_eq!(
        harness.client("d UID SEARCH FROM bob\r\n"),
        "* SEARCH 3\r\nd OK SEARCH completed\r\n"
    );
    assert_eq!(
        harness.client("e SEARCH FROM bob\r\n"),
        "* SEARCH 2\r\ne OK SEARCH completed\r\n"
    );
}

#[test]
fn charsets() {
    let mut harness = three();
    assert_eq!(
        harness.client("a SEARCH CHARSET UTF-8 SUBJECT lunch\r\n"),
        "* SEARCH 2\r\na OK SEARCH completed\r\n"
    );
    assert_eq!(
        harness.client("b SEARCH CHARSET KOI8-R SUBJECT lunch\r\n"),
        "b NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"
    );
}

#[test]
fn esearch_with_return_options() {
    let mut harness = three();
    assert_eq!(
        harness.client("a SEARCH RETURN (MIN MAX COUNT) FROM bob\r\n"),
        "* ESEARCH (TAG \"a\") MIN 1 MAX 3 COUNT 2\r\na OK SEARCH completed\r\n"
    );
    assert_eq!(
        harness.client("b UID SEARCH RETURN () ALL\r\n"),
        "* ESEARCH (TAG \"b\") UID ALL 1:3\r\nb OK SEARCH completed\r\n"
    );
    assert_eq!(
        harness.client("c SEARCH RETURN (COUNT ALL) SUBJECT nothing\r\n"),
        "* ESEARCH (TAG \"c\") COUNT 0\r\nc OK SEARCH completed\r\n"
    );
}

#[test]
fn imap4rev2_clients_get_esearch() {
    let mut harness = three();
    harness.client("e ENABLE IMAP4rev2\r\n");
    assert_eq!(
        harness.client("a SEARCH UNFLAGGED\r\n"),
        "* ESEARCH (TAG \"a\") ALL 1:2\r\na OK SEARCH completed\r\n"
    );
}

#[test]
fn modseq_key_reports_the_highest_modseq() {
    let mut harness = three();
    let line = harness.client("m FETCH 3 (MODSEQ)\r\n");
    let modseq: u64 = line
        .split("MODSEQ (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .expect("modseq");
    assert_eq!(
        harness.client(&format!("a SEARCH MODSEQ {modseq}\r\n")),
        format!("* SEARCH 3 (MODSEQ {modseq})\r\na OK SEARCH completed\r\n")
    );
    assert_eq!(
        harness.client("b SEARCH RETURN (COUNT) MODSEQ 1\r\n"),
        format!("* ESEARCH (TAG \"b\") COUNT 3 MODSEQ {modseq}\r\nb OK SEARCH completed\r\n")
    );
}

/// Stores keep internal dates in milliseconds; IMAP dates have whole seconds, so a
/// date with a fraction must still be searchable (it once matched nothing at all).
#[test]
fn an_internal_date_with_milliseconds_is_searched_by_its_second() {
    let mut harness = selected(0);
    harness
        .store
        .apply(&crate::mailbox::Operation::Deliver {
            user: USER.to_owned(),
            delivery_key: "fractional".to_owned(),
            blob: "fractional".to_owned(),
            size: 10,
            internal_date_ms: 1_700_000_000_999,
            reverse_path: String::new(),
        })
        .expect("delivered");
    harness.client("s SELECT INBOX\r\n");
    harness.sent.clear();
    for (criteria, expected) in [
        ("ALL", "* SEARCH 1"),
        ("ON 14-Nov-2023", "* SEARCH 1"),
        ("BEFORE 14-Nov-2023", "* SEARCH"),
    ] {
        assert_eq!(
            search(&mut harness, criteria),
            format!("{expected}\r\na OK SEARCH completed\r\n"),
            "{criteria}"
        );
    }
}
