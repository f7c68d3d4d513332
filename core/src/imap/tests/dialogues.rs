//! Whole dialogues as snapshot transcripts: `C:` what the client sent, `S:` what
//! the server answered.

use super::{Harness, USER};
use crate::imap::{Input, TlsMode};

/// Runs client lines one by one (each may hold several lines), recording both sides.
fn transcript(harness: &mut Harness, steps: &[Step]) -> String {
    let mut text = String::new();
    for line in harness.sent.lines() {
        text.push_str(&format!("S: {line}\n"));
    }
    harness.sent.clear();
    for step in steps {
        let answer = match step {
            Step::Client(line) => {
                for sent in line.lines() {
                    text.push_str(&format!("C: {sent}\n"));
                }
                harness.client(line)
            }
            Step::Deliver => {
                text.push_str("-- a message is delivered --\n");
                harness.store.deliver(USER, b"Subject: hi\r\n\r\nhello\r\n");
                harness.input(Input::MailboxChanged);
                String::new()
            }
        };
        let answer = if answer.is_empty() {
            std::mem::take(&mut harness.sent)
        } else {
            harness.sent.clear();
            answer
        };
        for line in answer.lines() {
            text.push_str(&format!("S: {line}\n"));
        }
    }
    text
}

enum Step {
    Client(&'static str),
    Deliver,
}

#[test]
fn thunderbird_like_startup() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    harness.store.deliver(USER, b"Subject: first\r\n\r\nx\r\n");
    let text = transcript(
        &mut harness,
        &[
            Step::Client("1 capability\r\n"),
            Step::Client("2 ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n"),
            Step::Client("3 login \"alice\" \"secret\"\r\n"),
            Step::Client("4 ENABLE CONDSTORE\r\n"),
            Step::Client("5 namespace\r\n"),
            Step::Client("6 list (subscribed) \"\" \"*\" return (special-use)\r\n"),
            Step::Client("7 list \"\" \"*\"\r\n"),
            Step::Client("8 select \"INBOX\" (CONDSTORE)\r\n"),
            Step::Client("9 noop\r\n"),
            Step::Client("10 IDLE\r\n"),
            Step::Deliver,
            Step::Client("DONE\r\n"),
            Step::Client("11 logout\r\n"),
        ],
    );
    insta::assert_snapshot!(text);
}

#[test]
fn starttls_and_sasl_ir() {
    let mut harness = Harness::new(TlsMode::StartTlsOffered, false);
    let mut text = transcript(
        &mut harness,
        &[
            Step::Client("a CAPABILITY\r\n"),
            Step::Client("b STARTTLS\r\n"),
        ],
    );
    harness.input(Input::TlsEstablished);
    text.push_str("-- TLS established --\n");
    text.push_str(&transcript(
        &mut harness,
        &[
            Step::Client("c CAPABILITY\r\n"),
            Step::Client("d AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
            Step::Client("e LOGOUT\r\n"),
        ],
    ));
    insta::assert_snapshot!(text);
}

#[test]
fn thunderbird_like_fetch() {
    let mut harness = Harness::new(TlsMode::Unavailable, true);
    harness.store.deliver_from(
        USER,
        "bob@example.net",
        b"From: Bob <bob@example.net>\r\nTo: alice@example.test\r\nSubject: first\r\n\
          Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\
          Content-Type: text/plain; charset=utf-8\r\nX-Other: dropped\r\n\r\nhello\r\n",
    );
    harness.store.deliver_from(
        USER,
        "",
        b"From: MAILER-DAEMON@example.test\r\nSubject: second\r\n\r\nnotice\r\n",
    );
    let text = transcript(
        &mut harness,
        &[
            Step::Client("3 login \"alice\" \"secret\"\r\n"),
            Step::Client("4 select \"INBOX\"\r\n"),
            Step::Client(
                "5 UID fetch 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc \
                 Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To \
                 Content-Type Reply-To)])\r\n",
            ),
            Step::Client("6 UID fetch 1 (UID RFC822.SIZE BODY[])\r\n"),
            Step::Client("7 logout\r\n"),
        ],
    );
    insta::assert_snapshot!(text);
}
