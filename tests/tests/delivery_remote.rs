//! Outbound delivery through real peers: the real `sluice serve` accepts mail from an
//! authenticated client for an external domain and its queue delivers it, through
//! the DNS override table, to Postfix's smtp-sink, to a private Postfix that
//! accepts, defers or refuses recipients, and to another Sluice. Failure notices come
//! back into the sender's mailbox and are read with mail-parser.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::clients::{self, Auth, Security, Submission};
use sluice_tests::postfix::{SmtpSink, require_postfix};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::test_message;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const USER: &str = "user@sluice.test";
const PASSWORD: &str = "correct horse";

/// The configuration that sends mail for `domain` to `remote` as its only MX host.
fn route_to(domain: &str, remote: SocketAddr, extra: &str) -> String {
    format!(
        "[queue]\n\
         first_retry_seconds = 1\n\
         max_retry_interval_seconds = 2\n\
         \n\
         [delivery]\n\
         mx_port = {port}\n\
         connect_timeout_seconds = 5\n\
         \n\
         [dns]\n\
         nameservers = [\"127.0.0.1:9\"]\n\
         timeout_seconds = 1\n\
         attempts = 1\n\
         \n\
         [dns.override.\"{domain}\"]\n\
         mx = [\"10 mx.{domain}\"]\n\
         \n\
         [dns.override.\"mx.{domain}\"]\n\
         addresses = [\"{ip}\"]\n\
         {extra}\n",
        port = remote.port(),
        ip = remote.ip(),
    )
}

fn sender_setup(extra_toml: String) -> ServerSetup {
    ServerSetup {
        auth_requires_tls: false,
        extra_toml,
        ..ServerSetup::default()
    }
}

/// Sends one message from the authenticated user to `to` over submission.
fn submit(server: &Server, name: &str, to: &[&str]) -> Vec<u8> {
    let message = test_message(&format!("{name}@sluice.test"), to[0], 2000);
    let path = server.folder().join(format!("{name}.eml"));
    std::fs::write(&path, &message).unwrap();
    let mut submission = Submission::new(server.address("submission").unwrap(), USER, to[0]);
    submission.to = to.to_vec();
    submission.security = Security::Plain;
    submission.auth = Auth::Plain;
    submission.user = USER;
    submission.password = PASSWORD;
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    message
}

fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mail_for_an_external_domain_reaches_smtp_sink() {
    if !require_postfix() {
        return;
    }
    let dump = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(Some(&dump.path().join("dump"))).unwrap();
    let server = Server::start(&sender_setup(route_to("remote.test", sink.address(), ""))).unwrap();
    let sent = submit(&server, "to-sink", &["someone@remote.test"]);
    let transactions = wait_until(
        "the sink to receive the message",
        Duration::from_secs(30),
        || {
            let found = sink.transactions();
            (!found.is_empty()).then_some(found)
        },
    );
    assert_eq!(transactions.len(), 1);
    let dumped = String::from_utf8_lossy(&transactions[0]).into_owned();
    assert!(dumped.contains("someone@remote.test"), "{dumped}");
    let body_line = "..and one with two";
    assert!(
        String::from_utf8_lossy(&sent).contains(&body_line[1..]),
        "test message changed"
    );
    // Once every recipient is delivered the message leaves the queue.
    wait_until(
        "the queue to let the message go",
        Duration::from_secs(10),
        || {
            let list = server.cli(&["queue", "list"]).unwrap();
            (!list.contains("someone@remote.test")).then_some(())
        },
    );
    assert!(
        server
            .stderr_all()
            .contains("\"recipient\":\"someone@remote.test\",\"remote_mta\":\"mx.remote.test\"")
    );
}
