//! FETCH and UID FETCH, item by item, against the test store.

use super::{Harness, USER};
use crate::imap::SessionConfig;
use crate::imap::TlsMode;
use proptest::prelude::*;

pub(super) const SENDER: &str = "bob@example.net";
pub(super) const RETURN_PATH: &str = "Return-Path: <bob@example.net>\r\n";

/// A multipart message: a text part, a base64 part, a part with an unknown encoding.
pub(super) const MESSAGE: &str = "From: Bob <bob@example.net>\r\n\
To: alice@example.test\r\n\
Subject: Hello\r\n\
Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <m1@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain body\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGVsbG8=\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
Content-Transfer-Encoding: x-weird\r\n\
\r\n\
odd\r\n\
--b--\r\n";

/// Logged in, INBOX selected with `count` copies of MESSAGE.
pub(super) fn selected(count: usize) -> Harness {
    let mut harness = Harness::logged_in();
    for _ in 0..count {
        harness.store.deliver_from(USER, SENDER, MESSAGE.as_bytes());
    }
    harness.client("s SELECT INBOX\r\n");
    harness.sent.clear();
    harness
}

fn reader_size() -> usize {
    RETURN_PATH.len() + MESSAGE.len()
}

#[test]
fn metadata_items_need_no_bytes() {
    let mut harness = selected(1);
    let answer = harness.client("a FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)\r\n");
    assert_eq!(
        answer,
        format!(
            "* 1 FETCH (FLAGS () INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE {} UID 1)\r\n\
             a OK FETCH completed\r\n",
            reader_size()
        )
    );
    assert_eq!(harness.store.content_requests, 0);
}

#[test]
fn macros_expand() {
    let mut harness = selected(1);
    let fast = harness.client("a FETCH 1 FAST\r\n");
    assert!(fast.starts_with(&format!(
        "* 1 FETCH (FLAGS () INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE {})\r\n",
        reader_size()
    )));
    let all = harness.client("b FETCH 1 ALL\r\n");
    assert!(all.contains(" ENVELOPE (\"Mon, 07 Dec 2026 10:00:00 +0000\" \"Hello\" ((\"Bob\" NIL \"bob\" \"example.net\"))"), "{all}");
    assert!(!all.contains("BODY"), "{all}");
    let full = harness.client("c FETCH 1 FULL\r\n");
    assert!(
        full.contains(" ENVELOPE (") && full.contains(" BODY (("),
        "{full}"
    );
    assert!(!full.contains("BODYSTRUCTURE"), "{full}");
}

#[test]
fn envelope_and_bodystructure() {
    let mut harness = selected(1);
    let answer = harness.client("a FETCH 1 (BODYSTRUCTURE)\r\n");
    assert_eq!(
        answer,
        "* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)\
         (\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 8 NIL NIL NIL NIL)\
         (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"x-weird\" 3 0 NIL NIL NIL NIL) \
         \"mixed\" (\"boundary\" \"b\") NIL NIL NIL))\r\na OK FETCH completed\r\n"
    );
    let body = harness.client("b FETCH 1 (BODY)\r\n");
    assert!(
        body.starts_with("* 1 FETCH (BODY ((\"TEXT\" \"plain\""),
        "{body}"
    );
    assert!(body.contains("\"mixed\"))\r\n"), "{body}");
}

#[test]
fn body_sections_and_partial() {
    let mut harness = selected(1);
    assert_eq!(
        harness.client("a FETCH 1 (BODY.PEEK[1] BODY.PEEK[]<0.11>)\r\n"),
        "* 1 FETCH (BODY[1] {10}\r\nplain body BODY[]<0> {11}\r\nReturn-Path)\r\n\
         a OK FETCH completed\r\n"
    );
    assert_eq!(
        harness.client("b FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[2.MIME])\r\n"),
        "* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: Hello\r\n\r\n \
         BODY[2.MIME] {77}\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n)\r\nb OK FETCH completed\r\n"
    );
    // A part that does not exist is NIL, as Dovecot answers.
    assert_eq!(
        harness.client("c FETCH 1 (BODY.PEEK[9] BODY.PEEK[1.HEADER])\r\n"),
        "* 1 FETCH (BODY[9] NIL BODY[1.HEADER] NIL)\r\nc OK FETCH completed\r\n"
    );
}

#[test]
fn rfc822_items_see_the_return_path() {
    let mut harness = selected(1);
    let answer = harness.client("a FETCH 1 (RFC822.HEADER)\r\n");
    assert!(
        answer.starts_with("* 1 FETCH (RFC822.HEADER {")
            && answer.contains(&format!("}}\r\n{RETURN_PATH}From: Bob")),
        "{answer}"
    );
    let text = harness.client("b FETCH 1 (RFC822.TEXT)\r\n");
    let body = MESSAGE
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!(
            "* 1 FETCH (RFC822.TEXT {{{}}}\r\n--b\r\n",
            body.len()
        )),
        "{text}"
    );
    // RFC822.TEXT reads the body: \Seen is set and reported.
    assert!(text.contains(" FLAGS (\\Seen))\r\n"), "{text}");
    let whole = harness.client("c FETCH 1 RFC822\r\n");
    assert!(
        whole.starts_with(&format!(
            "* 1 FETCH (RFC822 {{{}}}\r\n{RETURN_PATH}",
            reader_size()
        )),
        "{whole}"
    );
}

#[test]
fn body_without_peek_sets_seen_and_reports_flags() {
    let mut harness = selected(2);
    let answer = harness.client("a FETCH 1 (BODY[1])\r\n");
    assert_eq!(
        answer,
        "* 1 FETCH (BODY[1] {10}\r\nplain body FLAGS (\\Seen))\r\na OK FETCH completed\r\n"
    );
    // Once seen, no FLAGS unless asked; and the store's change report does not repeat it.
    assert_eq!(
        harness.client("b FETCH 1:2 (FLAGS)\r\n"),
        "* 1 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (FLAGS ())\r\nb OK FETCH completed\r\n"
    );
    assert_eq!(harness.client("c NOOP\r\n"), "c OK NOOP completed\r\n");
    // PEEK leaves the flags alone.
    harness.client("d FETCH 2 (BODY.PEEK[1])\r\n");
    assert!(
        harness
            .client("e FETCH 2 FLAGS\r\n")
            .starts_with("* 2 FETCH (FLAGS ())")
    );
}

#[test]
fn examine_never_sets_seen() {
    let mut harness = Harness::logged_in();
    harness.store.deliver_from(USER, SENDER, MESSAGE.as_bytes());
    harness.client("s EXAMINE INBOX\r\n");
    harness.sent.clear();
    assert_eq!(
        harness.client("a FETCH 1 (BODY[1])\r\n"),
        "* 1 FETCH (BODY[1] {10}\r\nplain body)\r\na OK FETCH completed\r\n"
    );
    assert!(
        harness
            .client("b FETCH 1 FLAGS\r\n")
            .starts_with("* 1 FETCH (FLAGS ())")
    );
}

#[test]
fn binary_items() {
    let mut harness = selected(1);
    assert_eq!(
        harness
            .client("a FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[9] BINARY.PEEK[9])\r\n"),
        "* 1 FETCH (BINARY[2] ~{5}\r\nhello BINARY.SIZE[2] 5 BINARY.SIZE[9] 0 BINARY[9] NIL)\r\n\
         a OK FETCH completed\r\n"
    );
    assert_eq!(
        harness.client("b FETCH 1 (BINARY.PEEK[3])\r\n"),
        "b NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding x-weird\r\n"
    );
    assert_eq!(
        harness.client("c FETCH 1 (BINARY.SIZE[3])\r\n"),
        "c NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding x-weird\r\n"
    );
}

#[test]
fn uid_fetch_always_reports_the_uid() {
    let mut harness = selected(3);
    assert_eq!(
        harness.client("a UID FETCH 2:* FLAGS\r\n"),
        "* 2 FETCH (UID 2 FLAGS ())\r\n* 3 FETCH (UID 3 FLAGS ())\r\na OK FETCH completed\r\n"
    );
    // UIDs that name no message are left out.
    assert_eq!(
        harness.client("b UID FETCH 7 FLAGS\r\n"),
        "b OK FETCH completed\r\n"
    );
}

#[test]
fn changedsince_and_modseq() {
    let mut harness = selected(3);
    harness.client("a STORE 2 +FLAGS (\\Flagged)\r\n");
    let modseq_line = harness.client("b FETCH 2 (MODSEQ)\r\n");
    let modseq: u64 = modseq_line
        .split("MODSEQ (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .expect("modseq");
    let answer = harness.client(&format!(
        "c FETCH 1:* (FLAGS) (CHANGEDSINCE {})\r\n",
        modseq - 1
    ));
    assert_eq!(
        answer,
        format!("* 2 FETCH (FLAGS (\\Flagged) MODSEQ ({modseq}))\r\nc OK FETCH completed\r\n")
    );
}

#[test]
fn vanished_needs_qresync_and_reports_expunges() {
    let mut harness = Harness::logged_in();
    for _ in 0..3 {
        harness.store.deliver_from(USER, SENDER, MESSAGE.as_bytes());
    }
    assert!(
        harness
            .client("e ENABLE QRESYNC\r\n")
            .contains("ENABLED QRESYNC")
    );
    harness.client("s SELECT INBOX\r\n");
    harness.client("a STORE 2 +FLAGS (\\Deleted)\r\n");
    harness.client("b EXPUNGE\r\n");
    harness.sent.clear();
    let answer = harness.client("c UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n");
    assert!(answer.starts_with("* VANISHED (EARLIER) 2\r\n"), "{answer}");
    assert_eq!(
        harness.client("d FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n"),
        "d BAD VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC\r\n"
    );
}

#[test]
fn no_expunge_during_fetch_by_sequence_number() {
    let mut harness = selected(3);
    let uid = harness.store.inbox_uids(USER)[0];
    let store = crate::mailbox::Operation::StoreFlags {
        user: USER.to_owned(),
        folder: "INBOX".to_owned(),
        uids: vec![uid],
        mode: crate::mailbox::FlagMode::Add,
        flags: vec!["\\Deleted".to_owned()],
        unchanged_since: None,
    };
    harness.store.apply(&store).expect("flagged");
    let expunge = crate::mailbox::Operation::Expunge {
        user: USER.to_owned(),
        folder: "INBOX".to_owned(),
        uids: None,
    };
    harness.store.apply(&expunge).expect("expunged");
    harness.input(crate::imap::Input::MailboxChanged);
    let answer = harness.client("a FETCH 1:* (UID)\r\n");
    assert!(!answer.contains("EXPUNGE"), "{answer}");
    let answer = harness.client("b UID FETCH 1:* (UID)\r\n");
    assert!(answer.contains("* 1 EXPUNGE\r\n"), "{answer}");
}

#[test]
fn many_messages_stream_one_body_at_a_time() {
    let mut config = SessionConfig::new("imap.example.test", TlsMode::Unavailable);
    config.plaintext_auth = true;
    config.limits.fetch_batch = 2;
    let mut harness = Harness::with_config(config);
    harness.client("l LOGIN alice secret\r\n");
    for _ in 0..5 {
        harness.store.deliver_from(USER, SENDER, MESSAGE.as_bytes());
    }
    harness.client("s SELECT INBOX\r\n");
    harness.sent.clear();
    harness.answering = false;
    harness.client("a FETCH 1:* (BODY.PEEK[1])\r\n");
    let mut requests = Vec::new();
    while let Some(crate::imap::Output::Mailbox { request, .. }) = harness.pending.last().cloned() {
        requests.push(request.clone());
        let answer = harness.store.answer(USER, request);
        harness.answer_pending(answer);
    }
    use crate::imap::MailboxRequest;
    let metadata: Vec<usize> = requests
        .iter()
        .filter_map(|r| match r {
            MailboxRequest::FetchMetadata { uids, .. } => Some(
                uids.ranges()
                    .iter()
                    .map(|(a, b)| (b - a + 1) as usize)
                    .sum(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(metadata, vec![2, 2, 1], "{requests:?}");
    let contents = requests
        .iter()
        .filter(|r| matches!(r, MailboxRequest::FetchContent { .. }))
        .count();
    assert_eq!(contents, 5);
    for seq in 1..=5 {
        assert!(
            harness
                .sent
                .contains(&format!("* {seq} FETCH (BODY[1] {{10}}\r\nplain body)\r\n"))
        );
    }
    assert!(harness.sent.ends_with("a OK FETCH completed\r\n"));
}

/// The literal after `marker` in `text`: its announced length and its bytes.
fn literal_after<'t>(text: &'t str, marker: &str) -> Option<(usize, &'t str)> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let close = rest.find("}\r\n")?;
    let length: usize = rest.get(1..close)?.parse().ok()?;
    let data = rest.get(close + 3..close + 3 + length)?;
    Some((length, data))
}

proptest! {
    #[test]
    fn body_literal_round_trips_the_stored_bytes(
        body in "[ -~\r\n]{0,400}",
        sender in "[a-z]{0,8}(@[a-z]{1,8}\\.test)?",
    ) {
        let mut harness = Harness::logged_in();
        harness.store.deliver_from(USER, &sender, body.as_bytes());
        harness.client("s SELECT INBOX\r\n");
        let answer = harness.client("a FETCH 1 (BODY.PEEK[] RFC822.SIZE)\r\n");
        let expected = crate::message::with_return_path(&sender, body.as_bytes()).into_owned();
        let (length, data) = literal_after(&answer, "BODY[] ").expect("a literal");
        prop_assert_eq!(length, expected.len());
        prop_assert_eq!(data.as_bytes(), expected.as_slice());
        let size = format!("RFC822.SIZE {})", expected.len());
        prop_assert!(answer.contains(&size), "{}", answer);
    }
}
