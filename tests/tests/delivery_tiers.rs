//! The tiers as separate processes: a gateway (`role = gateway`) whose queue hands
//! local-domain mail to a backend (`role = backend`) over LMTP, with the backend down
//! and back, a recipient the backend refuses (one failure notice, read with
//! mail-parser), a real Postfix delivering into the backend's LMTP listener, LMTP
//! redelivery without duplicates, and the `sluice queue` commands against a running
//! and a stopped server with a remote that answers 450.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_parser::{MessageParser, MimeHeaders};
use sluice_tests::clients::{self, Auth, Security, Submission};
use sluice_tests::postfix::{Postfix, PostfixRole, require_postfix};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::smtp::SmtpClient;
use sluice_tests::{prepended_trace, test_message};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DOMAIN: &str = "sluice.test";
const ALICE: &str = "alice@sluice.test";
const BOB: &str = "bob@sluice.test";
/// Known to the gateway's directory only.
const GHOST: &str = "ghost@sluice.test";
const PASSWORD: &str = "correct horse";
/// Long enough for slow attempts on a loaded machine, short enough to fail visibly.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// No real DNS: every lookup (FCrDNS of the client, MX) fails fast or is overridden.
const NO_DNS: &str = "[dns]\n\
                      nameservers = [\"127.0.0.1:9\"]\n\
                      timeout_seconds = 1\n\
                      attempts = 1\n";

fn users(addresses: &[&str]) -> Vec<(String, String)> {
    addresses
        .iter()
        .map(|address| ((*address).to_owned(), PASSWORD.to_owned()))
        .collect()
}

/// A backend holding `addresses`, its LMTP port pinned so that it survives restarts.
fn start_backend(addresses: &[&str]) -> Server {
    let setup = ServerSetup {
        role: "backend".to_owned(),
        hostname: "backend.sluice.test".to_owned(),
        domains: vec![DOMAIN.to_owned()],
        users: users(addresses),
        extra_toml: NO_DNS.to_owned(),
        ..ServerSetup::default()
    };
    let backend = Server::start(&setup).unwrap();
    backend.pin_listener("lmtp").unwrap();
    backend
}

/// A gateway for the same domain whose local mailboxes are on `backend_lmtp`.
fn start_gateway(backend_lmtp: SocketAddr, addresses: &[&str], first_retry_seconds: u64) -> Server {
    let setup = ServerSetup {
        role: "gateway".to_owned(),
        hostname: "gateway.sluice.test".to_owned(),
        domains: vec![DOMAIN.to_owned()],
        users: users(addresses),
        auth_requires_tls: false,
        extra_toml: format!(
            "[queue]\n\
             first_retry_seconds = {first_retry_seconds}\n\
             max_retry_interval_seconds = {first_retry_seconds}\n\
             \n\
             [delivery]\n\
             backend_lmtp = \"{backend_lmtp}\"\n\
             connect_timeout_seconds = 5\n\
             \n\
             {NO_DNS}"
        ),
        ..ServerSetup::default()
    };
    Server::start(&setup).unwrap()
}

/// One message over the gateway's MX listener (no authentication) with smtplib.
fn send_mx(server: &Server, name: &str, from: &str, to: &[&str]) -> Vec<u8> {
    let message = test_message(&format!("{name}@client.test"), to[0], 3000);
    let path = server.folder().join(format!("{name}.eml"));
    std::fs::write(&path, &message).unwrap();
    let mut submission = Submission::new(server.address("mx").unwrap(), from, to[0]);
    submission.to = to.to_vec();
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(
        report.codes("rcpt"),
        vec![250; to.len()],
        "RCPT on the gateway: {}",
        report.raw
    );
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    message
}

/// One message over submission, authenticated as `user`.
fn submit(server: &Server, name: &str, user: &str, to: &str) -> Vec<u8> {
    let message = test_message(&format!("{name}@sluice.test"), to, 2000);
    let path = server.folder().join(format!("{name}.eml"));
    std::fs::write(&path, &message).unwrap();
    let mut submission = Submission::new(server.address("submission").unwrap(), user, to);
    submission.security = Security::Plain;
    submission.auth = Auth::Plain;
    submission.user = user;
    submission.password = PASSWORD;
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);
    message
}

async fn inbox(server: &Server, user: &str) -> Vec<Vec<u8>> {
    server.folder_contents(user, "INBOX").await.unwrap()
}

/// Polls the user's INBOX until it holds at least `count` messages.
async fn wait_for_inbox(server: &Server, user: &str, count: usize) -> Vec<Vec<u8>> {
    let started = Instant::now();
    loop {
        let messages = inbox(server, user).await;
        if messages.len() >= count {
            return messages;
        }
        assert!(
            started.elapsed() < DELIVERY_TIMEOUT,
            "{user}'s INBOX holds {} of {count} messages after {DELIVERY_TIMEOUT:?}",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` until it yields a value.
async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < DELIVERY_TIMEOUT,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lines of `sluice queue list`.
fn queue_lines(server: &Server) -> Vec<String> {
    server
        .cli(&["queue", "list"])
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Waits until `server`'s queue is finished with everything it was given (nothing
/// in memory, nothing in the store): the event after which nothing more leaves it,
/// so a test may assert that no duplicate or notice followed.
async fn wait_for_idle_queue(server: &Server) {
    wait_until("the queue to finish", || {
        server.queue_is_idle().unwrap().then_some(())
    })
    .await;
}

/// The number of `Received:` fields a stored copy carries before `sent`, which must
/// follow them byte for byte.
fn received_before(stored: &[u8], sent: &[u8]) -> usize {
    let trace = prepended_trace(stored, sent).unwrap_or_else(|| {
        panic!(
            "the stored copy is not the sent message after Received fields:\n{}",
            String::from_utf8_lossy(stored)
        )
    });
    trace
        .split("\r\n")
        .filter(|line| line.to_ascii_lowercase().starts_with("received:"))
        .count()
}

/// The `attempts N` of a `queue list` line.
fn attempts_of(line: &str) -> Option<u32> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let index = words.iter().position(|word| *word == "attempts")?;
    words.get(index + 1)?.parse().ok()
}

#[tokio::test]
async fn gateway_delivers_local_mail_to_the_backend_over_lmtp() {
    if !sluice_tests::tools::require_tool("python3") {
        return;
    }
    let backend = start_backend(&[ALICE, BOB]);
    let gateway = start_gateway(backend.address("lmtp").unwrap(), &[ALICE, BOB], 1);
    let both = send_mx(&gateway, "both", "sender@client.test", &[ALICE, BOB]);
    let only_alice = send_mx(&gateway, "alice-only", "sender@client.test", &[ALICE]);

    let alice = wait_for_inbox(&backend, ALICE, 2).await;
    let bob = wait_for_inbox(&backend, BOB, 1).await;
    wait_for_idle_queue(&gateway).await;
    let alice_after = inbox(&backend, ALICE).await;
    let bob_after = inbox(&backend, BOB).await;
    assert_eq!(alice_after.len(), 2, "alice got a duplicate");
    assert_eq!(bob_after.len(), 1, "bob got a duplicate");
    assert_eq!(alice, alice_after);
    assert_eq!(bob, bob_after);

    // The gateway's Received and the backend's, then the message as sent.
    let alice_both = alice.iter().find(|stored| stored.ends_with(&both)).unwrap();
    let alice_only = alice
        .iter()
        .find(|stored| stored.ends_with(&only_alice))
        .unwrap();
    assert_eq!(received_before(alice_both, &both), 2);
    assert_eq!(received_before(alice_only, &only_alice), 2);
    assert_eq!(received_before(&bob[0], &both), 2);
    let trace = String::from_utf8_lossy(&bob[0][..bob[0].len() - both.len()]).into_owned();
    let backend_at = trace.find("by backend.sluice.test").expect(&trace);
    let gateway_at = trace.find("by gateway.sluice.test").expect(&trace);
    assert!(backend_at < gateway_at, "newest trace field first: {trace}");
    assert!(
        trace.contains("LMTP"),
        "the backend names the protocol: {trace}"
    );
    // Nothing of the gateway's is kept in mailboxes of its own.
    assert!(inbox(&gateway, ALICE).await.is_empty());
}

#[tokio::test]
async fn mail_waits_in_the_gateway_while_the_backend_is_down() {
    if !sluice_tests::tools::require_tool("python3") {
        return;
    }
    let mut backend = start_backend(&[ALICE]);
    let lmtp = backend.address("lmtp").unwrap();
    // No automatic retry within the test: only the flush can deliver.
    let gateway = start_gateway(lmtp, &[ALICE], 3600);
    backend.terminate().unwrap();

    let sent = send_mx(&gateway, "while-down", "sender@client.test", &[ALICE]);
    let line = wait_until("the recipient to be deferred", || {
        queue_lines(&gateway)
            .into_iter()
            .find(|line| line.contains("deferred") && line.contains(ALICE))
    })
    .await;
    assert_eq!(attempts_of(&line), Some(1), "{line}");
    assert!(line.contains("  next "), "{line}");
    assert!(line.contains("  last: 4."), "a temporary failure: {line}");
    let queue_id = line.split_whitespace().next().unwrap();
    let show = gateway.cli(&["queue", "show", queue_id]).unwrap();
    assert!(
        show.contains(&format!("destination: lmtp:{lmtp}")),
        "the backend's LMTP service: {show}"
    );

    backend.launch().unwrap();
    assert_eq!(backend.address("lmtp").unwrap(), lmtp, "the pinned port");
    let flushed = gateway.cli(&["queue", "flush"]).unwrap();
    assert!(flushed.contains("retrying"), "{flushed}");
    let stored = wait_for_inbox(&backend, ALICE, 1).await;
    wait_for_idle_queue(&gateway).await;
    assert_eq!(inbox(&backend, ALICE).await.len(), 1, "delivered twice");
    assert_eq!(received_before(&stored[0], &sent), 2);
}

/// The delivery-status groups of a notice: (name, value) per field, unfolded.
fn delivery_status(notice: &[u8]) -> Vec<Vec<(String, String)>> {
    let message = MessageParser::default().parse(notice).expect("it parses");
    let content_type = message.content_type().expect("a Content-Type");
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("report"));
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status")
    );
    let status = message
        .parts
        .iter()
        .find(|part| {
            part.content_type().is_some_and(|kind| {
                kind.ctype() == "message" && kind.subtype() == Some("delivery-status")
            })
        })
        .expect("a message/delivery-status part");
    let body = &notice[status.offset_body as usize..status.offset_end as usize];
    let text = String::from_utf8_lossy(body);
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn a_recipient_the_backend_refuses_gets_one_failure_notice() {
    if !sluice_tests::tools::require_tool("python3") {
        return;
    }
    let backend = start_backend(&[ALICE]);
    let gateway = start_gateway(backend.address("lmtp").unwrap(), &[ALICE, GHOST], 1);
    submit(&gateway, "to-ghost", ALICE, GHOST);

    let notices = wait_for_inbox(&backend, ALICE, 1).await;
    wait_for_idle_queue(&gateway).await;
    assert_eq!(
        inbox(&backend, ALICE).await.len(),
        1,
        "more than one notice"
    );
    let notice = &notices[0];
    let text = String::from_utf8_lossy(notice).into_owned();
    let parsed = MessageParser::default().parse(notice.as_slice()).unwrap();
    let from = parsed.from().and_then(|from| from.first()).expect(&text);
    assert!(
        from.address()
            .is_some_and(|address| address.to_ascii_lowercase().starts_with("mailer-daemon@")),
        "{text}"
    );
    let groups = delivery_status(notice);
    assert_eq!(
        groups.len(),
        2,
        "per-message and one recipient group: {text}"
    );
    let recipient = &groups[1];
    assert_eq!(field(recipient, "action"), Some("failed"), "{text}");
    let status = field(recipient, "status").expect(&text);
    assert!(status.starts_with("5."), "{status}");
    assert!(
        field(recipient, "final-recipient").is_some_and(|value| value.contains(GHOST)),
        "{text}"
    );
    assert!(
        field(recipient, "remote-mta").is_some_and(|value| value.starts_with("dns;")),
        "{text}"
    );
    assert!(
        field(recipient, "diagnostic-code").is_some_and(|value| value.contains("smtp; 5")),
        "{text}"
    );
    // The notice was itself delivered by the gateway's queue, from the null reverse-path.
    assert!(text.contains("by gateway.sluice.test"), "{text}");
    let logs = gateway.stderr_all();
    let failed = logs
        .lines()
        .filter(|line| {
            line.contains("\"message\":\"failed\"")
                && line.contains(&format!("\"recipient\":\"{GHOST}\""))
        })
        .count();
    assert_eq!(failed, 1, "{logs}");
    // The notice reached the backend from the null reverse-path.
    let backend_logs = backend.stderr_all();
    assert!(
        backend_logs
            .lines()
            .any(|line| line.contains("\"message\":\"message accepted\"")
                && line.contains("\"from\":\"<>\"")),
        "{backend_logs}"
    );
}

#[tokio::test]
async fn postfix_delivers_into_the_backend_over_lmtp() {
    if !require_postfix() || !sluice_tests::tools::require_tool("python3") {
        return;
    }
    let backend = start_backend(&[ALICE]);
    let postfix = Postfix::start_retrying(
        backend.folder(),
        &PostfixRole::LmtpRelay {
            domain: DOMAIN.to_owned(),
            lmtp: backend.address("lmtp").unwrap(),
        },
    )
    .unwrap();
    let message = test_message("via-postfix@client.test", ALICE, 3000);
    let path = backend.folder().join("via-postfix.eml");
    std::fs::write(&path, &message).unwrap();
    let mut submission = Submission::new(postfix.address(), "sender@client.test", ALICE);
    submission.to = vec![ALICE, "nobody@sluice.test"];
    submission.message = Some(&path);
    let report = clients::smtplib(&submission).unwrap();
    assert_eq!(report.codes("rcpt"), vec![250, 250], "{}", report.raw);
    assert_eq!(report.code("data"), Some(250), "{}", report.raw);

    let stored = wait_for_inbox(&backend, ALICE, 1).await;
    // Postfix's Received and Sluice's, then the message as sent.
    assert_eq!(received_before(&stored[0], &message), 2);
    let bounced = wait_until("Postfix to bounce the unknown recipient", || {
        postfix
            .log()
            .lines()
            .find(|line| line.contains("to=<nobody@sluice.test>") && line.contains("status="))
            .map(str::to_owned)
    })
    .await;
    assert!(bounced.contains("status=bounced"), "{bounced}");
    assert!(bounced.contains("said: 550"), "{bounced}");
    assert!(bounced.contains("RCPT TO"), "refused at RCPT: {bounced}");
    // Postfix is finished with the message once its queue manager removes it (both
    // recipients done): it sends no copy after that.
    let postfix_id = bounced
        .split(": to=<")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no queue id in {bounced:?}"))
        .to_owned();
    wait_until("Postfix to remove the message from its queue", || {
        postfix
            .log()
            .contains(&format!(" {postfix_id}: removed"))
            .then_some(())
    })
    .await;
    assert_eq!(inbox(&backend, ALICE).await.len(), 1, "delivered twice");
    let delivered = postfix
        .log()
        .lines()
        .filter(|line| line.contains("to=<alice@sluice.test>") && line.contains("status=sent"))
        .count();
    assert_eq!(delivered, 1, "{}", postfix.log());
}

/// LHLO, then one transaction; the replies after the message, one per accepted recipient.
async fn lmtp_transaction(
    client: &mut SmtpClient<tokio::net::TcpStream>,
    recipients: &[&str],
    message: &[u8],
) -> (Vec<u16>, Vec<u16>) {
    let mail = client
        .command("MAIL FROM:<sender@client.test>")
        .await
        .unwrap();
    assert_eq!(mail.code, 250, "{mail}");
    let mut rcpt = Vec::new();
    for recipient in recipients {
        rcpt.push(
            client
                .command(&format!("RCPT TO:<{recipient}>"))
                .await
                .unwrap()
                .code,
        );
    }
    let data = client.command("DATA").await.unwrap();
    assert_eq!(data.code, 354, "{data}");
    let mut after = vec![client.send_data(message).await.unwrap().code];
    let accepted = rcpt.iter().filter(|code| **code == 250).count();
    for _ in 1..accepted {
        after.push(client.read_reply().await.unwrap().code);
    }
    // Nothing more is owed: the next reply answers the NOOP.
    let noop = client.command("NOOP").await.unwrap();
    assert_eq!(noop.code, 250, "{noop}");
    (rcpt, after)
}

#[tokio::test]
async fn lmtp_redelivery_of_the_same_message_does_not_duplicate() {
    let backend = start_backend(&[ALICE, BOB]);
    let (mut client, greeting) = SmtpClient::connect(backend.address("lmtp").unwrap())
        .await
        .unwrap();
    assert_eq!(greeting.code, 220, "{greeting}");
    let lhlo = client.command("LHLO client.test").await.unwrap();
    assert_eq!(lhlo.code, 250, "{lhlo}");

    let first = test_message("same@client.test", ALICE, 1500);
    let (rcpt, after) = lmtp_transaction(&mut client, &[ALICE, GHOST, BOB], &first).await;
    assert_eq!(
        rcpt,
        vec![250, 550, 250],
        "the unknown user is refused at RCPT"
    );
    assert_eq!(after, vec![250, 250], "one reply per accepted recipient");
    // The same octets again (a gateway retrying after a lost reply): no second copy.
    let (rcpt, after) = lmtp_transaction(&mut client, &[ALICE], &first).await;
    assert_eq!((rcpt, after), (vec![250], vec![250]));
    // ... also over a new connection.
    let (mut second, _) = SmtpClient::connect(backend.address("lmtp").unwrap())
        .await
        .unwrap();
    assert_eq!(second.command("LHLO client.test").await.unwrap().code, 250);
    let (rcpt, after) = lmtp_transaction(&mut second, &[ALICE, BOB], &first).await;
    assert_eq!((rcpt, after), (vec![250, 250], vec![250, 250]));
    let other = test_message("other@client.test", ALICE, 1500);
    let (rcpt, after) = lmtp_transaction(&mut second, &[ALICE], &other).await;
    assert_eq!((rcpt, after), (vec![250], vec![250]));
    client.quit().await;
    second.quit().await;

    let alice = inbox(&backend, ALICE).await;
    assert_eq!(alice.len(), 2, "the same message once, the other once");
    assert_eq!(received_before(&alice[0], &first), 1);
    assert_eq!(received_before(&alice[1], &other), 1);
    let bob = inbox(&backend, BOB).await;
    assert_eq!(bob.len(), 1);
    assert_eq!(received_before(&bob[0], &first), 1);
}

/// An `all` server that sends remote.test to `remote` and retries only when told.
fn start_sender(remote: SocketAddr) -> Server {
    let setup = ServerSetup {
        auth_requires_tls: false,
        users: users(&[ALICE]),
        extra_toml: format!(
            "[queue]\n\
             first_retry_seconds = 3600\n\
             max_retry_interval_seconds = 3600\n\
             \n\
             [delivery]\n\
             mx_port = {port}\n\
             connect_timeout_seconds = 5\n\
             \n\
             {NO_DNS}\n\
             [dns.override.\"remote.test\"]\n\
             mx = [\"10 mx.remote.test\"]\n\
             \n\
             [dns.override.\"mx.remote.test\"]\n\
             addresses = [\"{ip}\"]\n",
            port = remote.port(),
            ip = remote.ip(),
        ),
        ..ServerSetup::default()
    };
    Server::start(&setup).unwrap()
}

#[tokio::test]
async fn queue_commands_against_a_running_and_a_stopped_server() {
    if !require_postfix() || !sluice_tests::tools::require_tool("python3") {
        return;
    }
    const LATER: &str = "later@remote.test";
    let folder = tempfile::tempdir().unwrap();
    let postfix = Postfix::start_retrying(
        folder.path(),
        &PostfixRole::Remote {
            domain: "remote.test".to_owned(),
            tempfail: vec![LATER.to_owned()],
            reject: Vec::new(),
        },
    )
    .unwrap();
    let mut server = start_sender(postfix.address());
    submit(&server, "deferred", ALICE, LATER);
    let deferred = |server: &Server, attempts: u32| {
        queue_lines(server)
            .into_iter()
            .find(|line| line.contains(LATER) && attempts_of(line) == Some(attempts))
    };
    let line = wait_until("the first attempt to defer", || deferred(&server, 1)).await;
    assert!(line.contains("deferred"), "{line}");
    assert!(line.contains("  next "), "{line}");
    assert!(line.contains("last: 4.2.0"), "{line}");
    assert!(
        line.contains("try again later"),
        "the remote's text: {line}"
    );
    let queue_id = line.split_whitespace().next().unwrap().to_owned();

    let show = server.cli(&["queue", "show", &queue_id]).unwrap();
    for expected in [
        format!("queue id: {queue_id}"),
        format!("from: <{ALICE}>"),
        format!("recipient: {LATER}"),
        "state: deferred".to_owned(),
        "attempts: 1".to_owned(),
        "next attempt: ".to_owned(),
        "status: 4.2.0".to_owned(),
        "remote: mx.remote.test".to_owned(),
        "last reply: 450".to_owned(),
    ] {
        assert!(show.contains(&expected), "{expected:?} missing in:\n{show}");
    }
    let destination = show
        .lines()
        .find_map(|line| line.trim().strip_prefix("destination: "))
        .expect(&show);
    assert!(destination.contains("remote.test"), "{show}");

    // A retry on demand, long before the schedule's hour.
    let retried = server.cli(&["queue", "retry", &queue_id]).unwrap();
    assert!(retried.contains("retrying"), "{retried}");
    wait_until("the second attempt", || deferred(&server, 2)).await;

    // Stopped: the flush goes to the store, and the next start tries at once.
    server.terminate().unwrap();
    let flushed = server.cli(&["queue", "flush"]).unwrap();
    assert!(flushed.starts_with("1 deferred"), "{flushed}");
    server.launch().unwrap();
    wait_until("the attempt after the restart", || deferred(&server, 3)).await;
    let refusals = postfix
        .log()
        .lines()
        .filter(|line| line.contains("450 4.2.0") && line.contains(LATER))
        .count();
    assert_eq!(refusals, 3, "one RCPT per attempt:\n{}", postfix.log());

    // Deleted: gone from the queue, and no notice to the sender.
    let deleted = server.cli(&["queue", "delete", &queue_id]).unwrap();
    assert!(deleted.contains("deleted"), "{deleted}");
    wait_for_idle_queue(&server).await;
    assert!(
        inbox(&server, ALICE).await.is_empty(),
        "a notice after delete"
    );
    // A message that is not (or no longer) queued is an error, not a silent success.
    for command in ["show", "retry", "delete"] {
        let missing = server
            .cli_unchecked(&["queue", command, &queue_id])
            .unwrap();
        assert!(!missing.success, "queue {command}: {}", missing.stdout);
        assert!(
            missing.stderr.contains("no message"),
            "queue {command}: {}",
            missing.stderr
        );
    }
    server.terminate().unwrap();
    let missing = server
        .cli_unchecked(&["queue", "delete", "NOSUCH"])
        .unwrap();
    assert!(!missing.success, "stopped: {}", missing.stdout);
}
