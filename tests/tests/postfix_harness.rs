//! The Postfix harness itself, against Python's smtplib: a remote keeps what it
//! accepts and answers the configured recipients 4xx and 5xx; smtp-sink dumps
//! transactions. The delivery tests rely on both.

use sluice_tests::postfix::{Postfix, PostfixRole, SmtpSink, require_postfix};
use sluice_tests::tools::python_code;
use std::time::Duration;

const SEND: &str = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
with smtplib.SMTP(host, int(port), timeout=30) as smtp:
    refused = smtp.sendmail("sender@client.test", sys.argv[2:], b"Subject: harness\r\n\r\nhello\r\n")
    print(sorted(refused.items()))
"#;

#[test]
fn a_postfix_remote_keeps_accepted_mail_and_refuses_the_configured_recipients() {
    if !require_postfix() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let postfix = Postfix::start(
        folder.path(),
        &PostfixRole::Remote {
            domain: "remote.test".to_owned(),
            tempfail: vec!["later@remote.test".to_owned()],
            reject: vec!["nobody@remote.test".to_owned()],
        },
    )
    .unwrap();
    let sent = python_code(
        SEND,
        &[
            postfix.address().to_string(),
            "ok@remote.test".to_owned(),
            "later@remote.test".to_owned(),
            "nobody@remote.test".to_owned(),
        ],
    )
    .unwrap()
    .ok("smtplib")
    .unwrap();
    assert!(
        sent.stdout.contains("('later@remote.test', (450"),
        "{}",
        sent.stdout
    );
    assert!(
        sent.stdout.contains("('nobody@remote.test', (550"),
        "{}",
        sent.stdout
    );
    let delivered = postfix
        .wait_for_delivered(1, Duration::from_secs(30))
        .unwrap();
    assert_eq!(delivered.len(), 1);
    let text = String::from_utf8_lossy(&delivered[0]);
    assert!(text.contains("Subject: harness"), "{text}");
    assert!(text.contains("ok@remote.test"), "{text}");
}

#[test]
fn smtp_sink_dumps_each_transaction() {
    if !require_postfix() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(Some(&folder.path().join("dump"))).unwrap();
    python_code(
        SEND,
        &[sink.address().to_string(), "anyone@sink.test".to_owned()],
    )
    .unwrap()
    .ok("smtplib")
    .unwrap();
    let mut transactions = Vec::new();
    for _ in 0..100 {
        transactions = sink.transactions();
        if !transactions.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(transactions.len(), 1);
    let text = String::from_utf8_lossy(&transactions[0]);
    assert!(text.contains("anyone@sink.test"), "{text}");
    assert!(text.contains("Subject: harness"), "{text}");
}
