//! Outbound delivery through real peers: the real `sluice serve` accepts mail from an
//! authenticated client for an external domain and its queue delivers it, through
//! the DNS override table, to Postfix's smtp-sink, to a private Postfix that
//! accepts, defers or refuses recipients, to a scripted server that drops the
//! connection in the middle of DATA, and to another Sluice — as its MX, and as a
//! relay on its submission port that requires AUTH. Failure notices come back into
//! the sender's mailbox and are read with mail-parser.

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sluice_tests::clients::{self, Auth, Security, Submission};
use sluice_tests::postfix::{Postfix, PostfixRole, SmtpSink, require_postfix, wait_until_closed};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::smtp::SmtpClient;
use sluice_tests::test_message;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const USER: &str = "user@sluice.test";
const PASSWORD: &str = "correct horse";
/// Retries a second apart, so that tests see several attempts quickly.
const FAST_RETRY: &str = "first_retry_seconds = 1\nmax_retry_interval_seconds = 2\n";
/// Long enough for anything a test waits for; only reached when something is wrong.
const PATIENCE: Duration = Duration::from_secs(60);

/// The configuration that sends mail for each of `domains` to `remote` as its only
/// MX host (`mx.DOMAIN`), with `queue` as the `[queue]` section and `extra` after.
fn delivery_config(queue: &str, domains: &[&str], remote: SocketAddr, extra: &str) -> String {
    let mut text = format!(
        "[queue]\n\
         {queue}\n\
         [delivery]\n\
         mx_port = {port}\n\
         connect_timeout_seconds = 5\n\
         \n\
         [dns]\n\
         nameservers = [\"127.0.0.1:9\"]\n\
         timeout_seconds = 1\n\
         attempts = 1\n",
        port = remote.port(),
    );
    for domain in domains {
        text.push_str(&format!(
            "\n[dns.override.\"{domain}\"]\n\
             mx = [\"10 mx.{domain}\"]\n\
             \n\
             [dns.override.\"mx.{domain}\"]\n\
             addresses = [\"{ip}\"]\n",
            ip = remote.ip(),
        ));
    }
    text.push_str(extra);
    text.push('\n');
    text
}

/// The configuration that sends mail for `domain` to `remote`, retrying fast.
fn route_to(domain: &str, remote: SocketAddr, extra: &str) -> String {
    delivery_config(FAST_RETRY, &[domain], remote, extra)
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
    submit_as(server, USER, name, to)
}

/// Sends one message from `user` (password [`PASSWORD`]) to `to` over submission.
fn submit_as(server: &Server, user: &str, name: &str, to: &[&str]) -> Vec<u8> {
    let message = test_message(&format!("{name}@sluice.test"), to[0], 2000);
    let path = server.folder().join(format!("{name}.eml"));
    std::fs::write(&path, &message).unwrap();
    let mut submission = Submission::new(server.address("submission").unwrap(), user, to[0]);
    submission.to = to.to_vec();
    submission.security = Security::Plain;
    submission.auth = Auth::Plain;
    submission.user = user;
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

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn inbox(server: &Server, user: &str) -> Vec<Vec<u8>> {
    block_on(server.folder_contents(user, "INBOX")).unwrap()
}

/// Waits for exactly... at least `count` messages in `user`'s INBOX.
fn wait_for_inbox(server: &Server, user: &str, count: usize) -> Vec<Vec<u8>> {
    wait_until(
        &format!("{count} messages in {user}'s INBOX"),
        PATIENCE,
        || {
            let messages = inbox(server, user);
            (messages.len() >= count).then_some(messages)
        },
    )
}

/// The queue id of the (first) queued record for `recipient`, from `sluice queue list`.
fn queue_id_of(server: &Server, recipient: &str) -> Option<String> {
    let list = server.cli(&["queue", "list"]).unwrap();
    list.lines()
        .find(|line| line.contains(&format!(" to {recipient}")))
        .and_then(|line| line.split_whitespace().next())
        .map(str::to_owned)
}

/// Whether `sluice queue list` names `recipient` at all.
fn queued(server: &Server, recipient: &str) -> bool {
    queue_id_of(server, recipient).is_some()
}

/// Waits until `server`'s queue is finished with everything it was given (nothing
/// in memory, nothing in the store): the event after which nothing more can leave
/// it, so a test may assert that nothing more arrived.
fn wait_for_idle_queue(server: &Server) {
    wait_until("the queue to finish", PATIENCE, || {
        server.queue_is_idle().unwrap().then_some(())
    });
}

/// One recipient's block of `sluice queue show ID`, as field name → value.
fn show_recipient(
    server: &Server,
    queue_id: &str,
    recipient: &str,
) -> Option<HashMap<String, String>> {
    let finished = server.cli_unchecked(&["queue", "show", queue_id]).unwrap();
    if !finished.success {
        return None;
    }
    let mut fields = None;
    for line in finished.stdout.lines() {
        if let Some(name) = line.strip_prefix("recipient: ") {
            if fields.is_some() {
                break;
            }
            if name == recipient {
                fields = Some(HashMap::new());
            }
        } else if let (Some(fields), Some((name, value))) =
            (fields.as_mut(), line.trim().split_once(": "))
        {
            fields.insert(name.to_owned(), value.to_owned());
        }
    }
    fields
}

/// Waits until `recipient` of `queue_id` is deferred after at least `attempts` attempts.
fn wait_for_deferred(
    server: &Server,
    queue_id: &str,
    recipient: &str,
    attempts: u32,
) -> HashMap<String, String> {
    wait_until(
        &format!("{recipient} deferred after {attempts} attempts"),
        PATIENCE,
        || {
            let fields = show_recipient(server, queue_id, recipient)?;
            let tried: u32 = fields.get("attempts")?.parse().ok()?;
            (fields.get("state").map(String::as_str) == Some("deferred") && tried >= attempts)
                .then_some(fields)
        },
    )
}

/// What a failure notice says, read with mail-parser.
#[derive(Debug)]
struct Notice {
    from: String,
    subject: String,
    date: i64,
    /// The per-message fields of the delivery-status part.
    message_fields: HashMap<String, String>,
    /// One map per recipient group, field names in lower case.
    recipients: Vec<HashMap<String, String>>,
    /// The returned message (message/rfc822), as it is in the notice.
    returned: Option<Vec<u8>>,
}

/// Parses an RFC 3464 notice and checks its MIME structure on the way.
fn parse_notice(raw: &[u8]) -> Notice {
    let text = String::from_utf8_lossy(raw);
    let message = MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("not a message:\n{text}"));
    let content_type = message.content_type().expect("a Content-Type");
    assert_eq!(content_type.ctype(), "multipart", "{text}");
    assert_eq!(content_type.subtype(), Some("report"), "{text}");
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status"),
        "{text}"
    );
    let from = message
        .from()
        .and_then(|from| from.first())
        .and_then(|address| address.address())
        .unwrap_or_default()
        .to_owned();
    let mut status = None;
    let mut returned = None;
    let mut saw_text = false;
    for part in message.parts.iter().skip(1) {
        let Some(part_type) = part.content_type() else {
            continue;
        };
        match (part_type.ctype(), part_type.subtype()) {
            ("text", Some("plain")) => saw_text = true,
            ("message", Some("delivery-status")) => {
                status = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            ("message", Some("rfc822")) => {
                assert!(matches!(part.body, PartType::Message(_)), "{text}");
                returned = Some(part.contents().to_vec());
            }
            _ => {}
        }
    }
    assert!(saw_text, "no human-readable part:\n{text}");
    let status = status.unwrap_or_else(|| panic!("no message/delivery-status part:\n{text}"));
    let mut groups = status_groups(&status).into_iter();
    let message_fields = groups.next().unwrap_or_default();
    Notice {
        from,
        subject: message.subject().unwrap_or_default().to_owned(),
        date: message.date().expect("a Date").to_timestamp(),
        message_fields,
        recipients: groups.collect(),
        returned,
    }
}

/// The field groups of a message/delivery-status body (RFC 3464 §2.1), unfolded.
fn status_groups(body: &str) -> Vec<HashMap<String, String>> {
    let mut groups = Vec::new();
    let mut group: HashMap<String, String> = HashMap::new();
    let mut last = None::<String>;
    for line in body.split("\r\n").chain(std::iter::once("")) {
        if line.is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|name| group.get_mut(name)) {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            group.insert(name.clone(), value.trim().to_owned());
            last = Some(name);
        }
    }
    groups
}

/// Seconds since the epoch of an RFC 5322 date.
fn timestamp(date: &str) -> i64 {
    let header = format!("Date: {date}\r\n\r\n");
    MessageParser::default()
        .parse(header.as_bytes())
        .and_then(|message| message.date().map(|date| date.to_timestamp()))
        .unwrap_or_else(|| panic!("not a date: {date}"))
}

/// The reverse-path a stored message arrived with, from the store's queue records.
fn stored_reverse_path(server: &Server, user: &str, index: usize) -> String {
    block_on(async {
        let store = server.open_store().await.unwrap();
        let messages = store.folder_messages(user, "INBOX").await.unwrap();
        let queue_id = &messages[index].queue_id;
        store
            .queue_entries()
            .await
            .unwrap()
            .into_iter()
            .find(|entry| &entry.queue_id == queue_id)
            .unwrap_or_else(|| panic!("no queue record for {queue_id}"))
            .reverse_path
    })
}

/// Removes what Postfix's `virtual` prepends and checks it: the sent message (with
/// LF line ends, as Maildir keeps it) preceded only by trace fields; the prefix.
fn maildir_prefix(delivered: &[u8], sent: &[u8]) -> String {
    let delivered = String::from_utf8_lossy(delivered).into_owned();
    let sent = String::from_utf8_lossy(sent).replace("\r\n", "\n");
    let prefix = delivered.strip_suffix(&sent).unwrap_or_else(|| {
        panic!("the delivered copy does not end with the sent message:\n{delivered}")
    });
    for line in prefix.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let name = line.split_once(':').map(|(name, _)| name).unwrap_or(line);
        assert!(
            ["Return-Path", "X-Original-To", "Delivered-To", "Received"]
                .iter()
                .any(|allowed| name.eq_ignore_ascii_case(allowed)),
            "unexpected field {name:?} before the sent message:\n{prefix}"
        );
    }
    prefix.to_owned()
}

/// Lines of the server's JSON log that mention `queue_id` and `needle`.
fn log_lines(server: &Server, queue_id: &str, needle: &str) -> Vec<String> {
    server
        .stderr_all()
        .lines()
        .filter(|line| line.contains(queue_id) && line.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn postfix_remote(folder: &std::path::Path, tempfail: &[&str], reject: &[&str]) -> Postfix {
    Postfix::start(
        folder,
        &PostfixRole::Remote {
            domain: "remote.test".to_owned(),
            tempfail: tempfail.iter().map(|s| (*s).to_owned()).collect(),
            reject: reject.iter().map(|s| (*s).to_owned()).collect(),
        },
    )
    .unwrap()
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
    // Once every recipient is delivered the message leaves the queue, and nothing
    // more reaches the sink.
    wait_for_idle_queue(&server);
    assert_eq!(sink.transactions().len(), 1, "delivered more than once");
    assert!(
        server
            .stderr_all()
            .contains("\"recipient\":\"someone@remote.test\",\"remote_mta\":\"mx.remote.test\"")
    );
}

/// One message to a recipient the remote accepts, one it defers (450) and one it
/// refuses (550): the first is in Postfix's Maildir as sent, the refusal comes back
/// as exactly one RFC 3464 failure notice with the null reverse-path, and the
/// deferred one keeps retrying without any notice.
#[test]
fn a_postfix_remote_accepts_defers_and_refuses_with_one_failure_notice() {
    if !require_postfix() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let postfix = postfix_remote(
        folder.path(),
        &["later@remote.test"],
        &["nobody@remote.test"],
    );
    let server = Server::start(&sender_setup(route_to(
        "remote.test",
        postfix.address(),
        "",
    )))
    .unwrap();
    let sent = submit(
        &server,
        "three-ways",
        &["ok@remote.test", "later@remote.test", "nobody@remote.test"],
    );
    let queue_id = queue_id_of(&server, "later@remote.test").expect("queued for later@");

    // ok@: in the Maildir once, as sent, unsigned (this node has no DKIM key).
    let delivered = postfix.wait_for_delivered(1, PATIENCE).unwrap();
    assert_eq!(delivered.len(), 1);
    let prefix = maildir_prefix(&delivered[0], &sent);
    assert!(
        prefix.starts_with("Return-Path: <user@sluice.test>\n"),
        "{prefix}"
    );
    assert!(
        prefix.contains("Delivered-To: ok@remote.test\n"),
        "{prefix}"
    );
    assert!(prefix.contains("by mx.sluice.test"), "{prefix}");
    assert!(
        !prefix.to_ascii_lowercase().contains("dkim-signature"),
        "{prefix}"
    );

    // nobody@: one failure notice in the sender's INBOX.
    let notices = wait_for_inbox(&server, USER, 1);
    let notice = parse_notice(&notices[0]);
    assert!(
        notice
            .from
            .eq_ignore_ascii_case("MAILER-DAEMON@mx.sluice.test"),
        "{notice:?}"
    );
    assert!(!notice.subject.is_empty(), "{notice:?}");
    assert_eq!(
        notice
            .message_fields
            .get("reporting-mta")
            .map(String::as_str),
        Some("dns; mx.sluice.test"),
        "{notice:?}"
    );
    assert_eq!(
        notice.recipients.len(),
        1,
        "only nobody@ failed: {notice:?}"
    );
    let failed = &notice.recipients[0];
    assert_eq!(
        failed.get("final-recipient").map(|v| v.replace(' ', "")),
        Some("rfc822;nobody@remote.test".to_owned()),
        "{notice:?}"
    );
    assert_eq!(failed.get("action").map(String::as_str), Some("failed"));
    assert_eq!(failed.get("status").map(String::as_str), Some("5.1.1"));
    assert_eq!(
        failed.get("remote-mta").map(String::as_str),
        Some("dns; mx.remote.test")
    );
    let diagnostic = failed.get("diagnostic-code").cloned().unwrap_or_default();
    assert!(diagnostic.starts_with("smtp; 550"), "{diagnostic}");
    assert!(diagnostic.contains("no such user here"), "{diagnostic}");
    let returned = notice.returned.as_deref().expect("the message is returned");
    let returned = String::from_utf8_lossy(returned);
    let sent_text = String::from_utf8_lossy(&sent);
    assert!(
        returned.trim_end().ends_with(sent_text.trim_end()),
        "the returned message is not the sent one:\n{returned}"
    );
    // The notice was sent with the null reverse-path.
    let reverse_path = stored_reverse_path(&server, USER, 0);
    assert!(
        reverse_path.is_empty() || reverse_path == "<>",
        "notice reverse-path {reverse_path:?}"
    );

    // later@: deferred, retried on schedule, never a notice.
    let first = wait_for_deferred(&server, &queue_id, "later@remote.test", 1);
    assert!(first.contains_key("next attempt"), "{first:?}");
    assert_eq!(
        first.get("status").map(String::as_str),
        Some("4.2.0"),
        "{first:?}"
    );
    let third = wait_for_deferred(&server, &queue_id, "later@remote.test", 3);
    assert!(third.contains_key("next attempt"), "{third:?}");
    assert!(
        third["last reply"].contains("450"),
        "the last reply is the remote's: {third:?}"
    );
    // No notice for the deferrals: none was written with any of them (the store
    // queues this message alone), nor delivered.
    let list = server.cli(&["queue", "list"]).unwrap();
    assert!(
        list.lines().all(|line| line.starts_with(&queue_id)),
        "a notice for a deferred recipient is queued:\n{list}"
    );
    assert_eq!(
        inbox(&server, USER).len(),
        1,
        "a notice for a deferred recipient"
    );
    assert_eq!(postfix.delivered().len(), 1, "ok@ got a second copy");
    for (recipient, state) in [
        ("ok@remote.test", "delivered"),
        ("nobody@remote.test", "failed"),
    ] {
        let fields = show_recipient(&server, &queue_id, recipient).unwrap();
        assert_eq!(
            fields.get("state").map(String::as_str),
            Some(state),
            "{fields:?}"
        );
    }
}

/// A recipient the remote defers forever fails when the queue's lifetime ends:
/// exactly one failure notice with the temporary status, and no second one.
#[test]
fn a_recipient_deferred_until_expiry_fails_with_one_notice() {
    if !require_postfix() {
        return;
    }
    const EXPIRE: i64 = 4;
    let folder = tempfile::tempdir().unwrap();
    let postfix = postfix_remote(folder.path(), &["later@remote.test"], &[]);
    // The delay warning (4 hours by default) must come before expiry: off here.
    let queue = format!("{FAST_RETRY}expire_after_seconds = {EXPIRE}\ndelay_warning_seconds = 0\n");
    let server = Server::start(&sender_setup(delivery_config(
        &queue,
        &["remote.test"],
        postfix.address(),
        "",
    )))
    .unwrap();
    let sent = submit(&server, "expires", &["later@remote.test"]);
    let notices = wait_for_inbox(&server, USER, 1);
    let notice = parse_notice(&notices[0]);
    assert_eq!(notice.recipients.len(), 1, "{notice:?}");
    let failed = &notice.recipients[0];
    assert_eq!(
        failed.get("final-recipient").map(|v| v.replace(' ', "")),
        Some("rfc822;later@remote.test".to_owned()),
        "{notice:?}"
    );
    assert_eq!(failed.get("action").map(String::as_str), Some("failed"));
    let status = failed.get("status").cloned().unwrap_or_default();
    assert!(
        status.starts_with("4."),
        "an expired 450 keeps its 4.x.x: {status}"
    );
    assert!(
        failed
            .get("diagnostic-code")
            .is_some_and(|code| code.starts_with("smtp; 450")),
        "{notice:?}"
    );
    // The lifetime ended it, by the server's own times (to the second): the queue
    // logged an expiry, the notice was written once the lifetime was over, and no
    // attempt started after it. How soon after is the queue machine's deadline,
    // which core's tests check; this test does not time the server.
    let arrived = timestamp(&notice.message_fields["arrival-date"]);
    assert!(
        notice.date - arrived >= EXPIRE,
        "the notice is dated {}s after arrival; expiry is {EXPIRE}s",
        notice.date - arrived
    );
    let last_attempt = timestamp(
        failed
            .get("last-attempt-date")
            .unwrap_or_else(|| panic!("no Last-Attempt-Date: {notice:?}")),
    );
    assert!(
        (arrived..=arrived + EXPIRE).contains(&last_attempt),
        "the last attempt is dated {}s after arrival; expiry is {EXPIRE}s",
        last_attempt - arrived
    );
    assert!(last_attempt <= notice.date, "{notice:?}");
    let logs = server.stderr_all();
    let expired = logs
        .lines()
        .filter(|line| {
            line.contains("\"message\":\"expired\"")
                && line.contains("\"recipient\":\"later@remote.test\"")
        })
        .count();
    assert_eq!(expired, 1, "one expiry in the log:\n{logs}");
    assert!(notice.returned.is_some(), "a failure returns the message");
    let sent_text = String::from_utf8_lossy(&sent);
    let returned = String::from_utf8_lossy(notice.returned.as_deref().unwrap_or_default());
    assert!(returned.trim_end().ends_with(sent_text.trim_end()));
    // Once the queue has finished (the expired message and the notice gone from
    // memory and store), nothing can bring a second notice.
    wait_for_idle_queue(&server);
    assert_eq!(inbox(&server, USER).len(), 1, "a second notice");
    assert!(postfix.delivered().is_empty());
}

/// A scripted remote (std::net, one thread): speaks SMTP until DATA's 354, reads a
/// part of the message and closes the connection without a reply.
struct DroppingRemote {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections closed in the middle of DATA.
    drops: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DroppingRemote {
    fn start() -> DroppingRemote {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let drops = Arc::clone(&drops);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if DroppingRemote::session(stream).unwrap_or(false) {
                                drops.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => break,
                    }
                }
                // The listener is dropped here: the port is free again.
            })
        };
        DroppingRemote {
            address,
            stop,
            drops,
            thread: Some(thread),
        }
    }

    /// One session; true when it ended by dropping the connection during DATA.
    fn session(stream: TcpStream) -> std::io::Result<bool> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        writer.write_all(b"220 drop.remote.test ESMTP scripted\r\n")?;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(false);
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 drop.remote.test\r\n",
                "MAIL" => b"250 2.1.0 ok\r\n",
                "RCPT" => b"250 2.1.5 ok\r\n",
                "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
                "QUIT" => {
                    writer.write_all(b"221 2.0.0 bye\r\n")?;
                    return Ok(false);
                }
                "DATA" => {
                    writer.write_all(b"354 go ahead\r\n")?;
                    // Part of the message, then the connection goes away.
                    let mut part = [0u8; 256];
                    let read = reader.read(&mut part)?;
                    let stream = reader.into_inner();
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return Ok(read > 0);
                }
                _ => b"502 5.5.2 not here\r\n",
            };
            writer.write_all(reply)?;
        }
    }

    fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }

    /// Stops accepting and frees the port.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DroppingRemote {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A remote that drops the connection in the middle of DATA leaves the recipient
/// deferred (no notice); smtp-sink on the same port then gets the message once.
#[test]
fn a_connection_dropped_during_data_is_retried_and_delivered_once() {
    if !require_postfix() {
        return;
    }
    let mut remote = DroppingRemote::start();
    let server = Server::start(&sender_setup(route_to("remote.test", remote.address, ""))).unwrap();
    let sent = submit(&server, "dropped", &["someone@remote.test"]);
    let queue_id = queue_id_of(&server, "someone@remote.test").unwrap();
    let deferred = wait_for_deferred(&server, &queue_id, "someone@remote.test", 1);
    assert!(remote.drops() >= 1, "the scripted remote saw no DATA");
    assert!(
        deferred
            .get("status")
            .is_some_and(|status| status.starts_with("4.")),
        "a lost connection is temporary: {deferred:?}"
    );
    assert!(deferred.contains_key("next attempt"), "{deferred:?}");
    assert!(
        inbox(&server, USER).is_empty(),
        "a notice for a temporary failure"
    );

    // The remote comes back as smtp-sink on the same port.
    remote.stop();
    let dump = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start_on(remote.address.port(), Some(&dump.path().join("dump"))).unwrap();
    server.cli(&["queue", "flush"]).unwrap();
    wait_for_idle_queue(&server);
    let transactions = sink.transactions();
    assert_eq!(transactions.len(), 1, "delivered more than once");
    let dumped = String::from_utf8_lossy(&transactions[0]);
    assert!(dumped.contains("someone@remote.test"), "{dumped}");
    assert!(
        dumped.contains("Message-ID: <dropped@sluice.test>"),
        "{dumped}"
    );
    let last_line = String::from_utf8_lossy(&sent);
    assert!(
        dumped.contains(last_line.lines().nth(10).unwrap()),
        "{dumped}"
    );
    assert!(inbox(&server, USER).is_empty(), "a notice after delivery");
}

/// Two Sluice nodes: A (a.test) relays to B's MX listener (b.test) through the
/// override table. bob@b.test gets the message with A's trace field; B refuses an
/// unknown user at RCPT, and A turns that into a failure notice for its sender.
#[test]
fn two_sluice_nodes_relay_and_a_refusal_becomes_a_notice() {
    // B needs no DNS beyond what it looks up for its trace fields.
    let b = Server::start(&ServerSetup {
        hostname: "mx.b.test".to_owned(),
        domains: vec!["b.test".to_owned()],
        users: vec![(BOB.to_owned(), PASSWORD.to_owned())],
        auth_requires_tls: false,
        extra_toml: "[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout_seconds = 1\nattempts = 1\n"
            .to_owned(),
        ..ServerSetup::default()
    })
    .unwrap();
    let a = Server::start(&ServerSetup {
        hostname: "mx.a.test".to_owned(),
        domains: vec!["a.test".to_owned()],
        users: vec![(ALICE.to_owned(), PASSWORD.to_owned())],
        auth_requires_tls: false,
        extra_toml: route_to("b.test", b.address("mx").unwrap(), ""),
        ..ServerSetup::default()
    })
    .unwrap();
    let sent = submit_as(&a, ALICE, "a-to-b", &[BOB, "ghost@b.test"]);

    let stored = wait_for_inbox(&b, BOB, 1);
    assert_eq!(stored.len(), 1);
    let trace = sluice_tests::prepended_trace(&stored[0], &sent).unwrap_or_else(|| {
        panic!(
            "B's copy is not the sent message after trace fields:\n{}",
            String::from_utf8_lossy(&stored[0])
        )
    });
    assert!(
        trace.contains("by mx.a.test"),
        "A's Received is missing:\n{trace}"
    );
    assert!(
        trace.contains("by mx.b.test"),
        "B's Received is missing:\n{trace}"
    );
    // B's own field is on top, A's below it.
    assert!(
        trace.find("by mx.b.test") < trace.find("by mx.a.test"),
        "{trace}"
    );
    assert_eq!(
        stored_reverse_path(&b, BOB, 0).trim_matches(['<', '>']),
        ALICE
    );

    let notices = wait_for_inbox(&a, ALICE, 1);
    let notice = parse_notice(&notices[0]);
    assert!(
        notice.from.eq_ignore_ascii_case("MAILER-DAEMON@mx.a.test"),
        "{notice:?}"
    );
    assert_eq!(notice.recipients.len(), 1, "{notice:?}");
    let failed = &notice.recipients[0];
    assert_eq!(
        failed.get("final-recipient").map(|v| v.replace(' ', "")),
        Some("rfc822;ghost@b.test".to_owned()),
        "{notice:?}"
    );
    assert_eq!(failed.get("action").map(String::as_str), Some("failed"));
    assert!(
        failed
            .get("status")
            .is_some_and(|status| status.starts_with("5.")),
        "{notice:?}"
    );
    assert_eq!(
        failed.get("remote-mta").map(String::as_str),
        Some("dns; mx.b.test")
    );
    assert!(
        failed
            .get("diagnostic-code")
            .is_some_and(|code| code.starts_with("smtp; 550")),
        "{notice:?}"
    );
    // Only A could send bob a second copy or alice a second notice.
    wait_for_idle_queue(&a);
    assert_eq!(inbox(&b, BOB).len(), 1, "bob got a second copy");
    assert_eq!(inbox(&a, ALICE).len(), 1, "alice got a second notice");
}

/// A SIGKILL in the middle of a retry schedule keeps it: after the restart the
/// recipient is deferred with the same attempts and next attempt, and is not tried
/// early; a retry once the remote accepts delivers it exactly once.
#[test]
fn a_restart_keeps_the_retry_schedule() {
    if !require_postfix() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let postfix = postfix_remote(folder.path(), &["later@remote.test"], &[]);
    let port = postfix.address().port();
    // A retry a minute away: nothing but the restart could make it come early.
    let queue = "first_retry_seconds = 60\nmax_retry_interval_seconds = 120\n";
    let mut server = Server::start(&ServerSetup {
        // The queue's debug events name every attempt it starts.
        log_level: "info,sluice_net::delivery=debug".to_owned(),
        ..sender_setup(delivery_config(
            queue,
            &["remote.test"],
            postfix.address(),
            "",
        ))
    })
    .unwrap();
    submit(&server, "restart", &["later@remote.test"]);
    let queue_id = queue_id_of(&server, "later@remote.test").unwrap();
    let before = wait_for_deferred(&server, &queue_id, "later@remote.test", 1);
    let refusals = |postfix: &Postfix| postfix.log().matches("reject: RCPT").count();
    assert_eq!(refusals(&postfix), 1, "{}", postfix.log());
    let attempts_started = |server: &Server| {
        server
            .stderr_all()
            .lines()
            .filter(|line| line.contains("AttemptStarted") && line.contains(&queue_id))
            .count()
    };
    // The log shows attempts: the one before the kill is there.
    assert_eq!(attempts_started(&server), 1, "{}", server.stderr_all());

    server.kill();
    server.launch().unwrap();
    let after = show_recipient(&server, &queue_id, "later@remote.test").unwrap();
    for field in ["state", "attempts", "next attempt", "status"] {
        assert_eq!(
            before.get(field),
            after.get(field),
            "{field}: {before:?} / {after:?}"
        );
    }
    // The restored schedule is the one in force. The control socket answers between
    // two turns of the delivery service's loop, after the turn that restored the
    // queue and started whatever it found due: the message is back in memory, and
    // no attempt was started for it.
    let held = wait_until("the control socket to answer", PATIENCE, || {
        server.queued_in_memory().ok()
    });
    assert_eq!(held, 1, "the restored queue");
    assert_eq!(
        attempts_started(&server),
        1,
        "retried at once after the restart:\n{}",
        server.stderr_all()
    );
    assert_eq!(
        show_recipient(&server, &queue_id, "later@remote.test").unwrap()["attempts"],
        before["attempts"]
    );

    // The remote is replaced by one that accepts; an administrator's retry delivers.
    drop(postfix);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_closed(address, PATIENCE).unwrap();
    let dump = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start_on(port, Some(&dump.path().join("dump"))).unwrap();
    let retried = server.cli(&["queue", "retry", &queue_id]).unwrap();
    assert!(retried.contains("retrying"), "{retried}");
    wait_for_idle_queue(&server);
    let transactions = sink.transactions();
    assert_eq!(transactions.len(), 1, "delivered more than once");
    assert!(
        String::from_utf8_lossy(&transactions[0]).contains("Message-ID: <restart@sluice.test>")
    );
    // Two attempts in all: the one before the kill and the administrator's retry.
    assert_eq!(attempts_started(&server), 2, "{}", server.stderr_all());
    assert!(
        inbox(&server, USER).is_empty(),
        "a notice for a delivered message"
    );
}

/// A message with the null reverse-path (here arriving over MX for an alias that
/// forwards to a refusing remote) fails without any notice: a notice is never
/// answered with another.
#[test]
fn no_notice_for_a_message_from_the_null_reverse_path() {
    if !require_postfix() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let postfix = postfix_remote(folder.path(), &[], &["nobody@remote.test"]);
    let server = Server::start(&sender_setup(route_to(
        "remote.test",
        postfix.address(),
        "",
    )))
    .unwrap();
    server
        .cli(&["alias", "add", "fwd@sluice.test", "nobody@remote.test"])
        .unwrap();
    let message = test_message("null-sender@client.test", "fwd@sluice.test", 1000);
    let queue_id = block_on(async {
        let (mut client, greeting) = SmtpClient::connect(server.address("mx").unwrap())
            .await
            .unwrap();
        assert_eq!(greeting.code, 220);
        assert!(
            client
                .command("EHLO client.test")
                .await
                .unwrap()
                .is_positive()
        );
        let transaction = client
            .send_mail("", &["fwd@sluice.test"], &message)
            .await
            .unwrap();
        let accepted = transaction
            .accepted()
            .unwrap_or_else(|| panic!("not accepted: {transaction:?}"))
            .clone();
        client.quit().await;
        accepted.queue_id().expect("a queue id in the 250")
    });
    wait_until("the refusal to fail the recipient", PATIENCE, || {
        (!log_lines(&server, &queue_id, "\"failed\"").is_empty()).then_some(())
    });
    wait_until("the failed message to leave the queue", PATIENCE, || {
        (!queued(&server, "nobody@remote.test")).then_some(())
    });
    assert!(
        log_lines(&server, &queue_id, "notice").is_empty(),
        "a notice for a null reverse-path: {:?}",
        log_lines(&server, &queue_id, "notice")
    );
    let list = server.cli(&["queue", "list"]).unwrap();
    assert!(!list.contains("MAILER-DAEMON"), "{list}");
    assert!(
        list.lines()
            .all(|line| !line.contains("from <>") && !line.contains("from  ")),
        "{list}"
    );
    wait_for_idle_queue(&server);
    assert!(
        log_lines(&server, &queue_id, "notice").is_empty(),
        "a notice for a null reverse-path: {:?}",
        log_lines(&server, &queue_id, "notice")
    );
    assert!(inbox(&server, USER).is_empty());
    assert!(postfix.delivered().is_empty());
}

/// Sends one message over the MX listener with Python's smtplib and RCPT options.
fn send_with_rcpt_options(server: &Server, from: &str, to: &str, options: &str) {
    const SEND: &str = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
with smtplib.SMTP(host, int(port), timeout=30) as smtp:
    smtp.ehlo("client.test")
    smtp.sendmail(sys.argv[2], [sys.argv[3]],
                  b"Subject: success please\r\n\r\nhello\r\n",
                  rcpt_options=sys.argv[4].split())
"#;
    sluice_tests::tools::python_code(
        SEND,
        &[
            server.address("mx").unwrap().to_string(),
            from.to_owned(),
            to.to_owned(),
            options.to_owned(),
        ],
    )
    .unwrap()
    .ok("smtplib")
    .unwrap();
}

#[test]
fn notify_success_for_a_local_mailbox_gets_one_delivered_notice() {
    if !sluice_tests::tools::require_tool("python3") {
        return;
    }
    let setup = ServerSetup {
        users: vec![
            (USER.to_owned(), PASSWORD.to_owned()),
            ("other@sluice.test".to_owned(), "pw".to_owned()),
        ],
        ..ServerSetup::default()
    };
    let server = Server::start(&setup).unwrap();
    send_with_rcpt_options(
        &server,
        USER,
        "other@sluice.test",
        "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Other@sluice.test",
    );
    assert_eq!(wait_for_inbox(&server, "other@sluice.test", 1).len(), 1);
    let notices = wait_for_inbox(&server, USER, 1);
    let notice = parse_notice(&notices[0]);
    assert_eq!(notice.recipients.len(), 1, "{:?}", notice.recipients);
    let recipient = &notice.recipients[0];
    assert_eq!(recipient["action"], "delivered");
    assert_eq!(recipient["status"], "2.0.0");
    assert!(recipient["final-recipient"].contains("other@sluice.test"));
    assert!(recipient["original-recipient"].contains("Other@sluice.test"));
    // Without NOTIFY=SUCCESS there is none: once the queue has finished with the
    // second message, the sender's INBOX still holds one message.
    send_with_rcpt_options(&server, USER, "other@sluice.test", "NOTIFY=FAILURE");
    assert_eq!(wait_for_inbox(&server, "other@sluice.test", 2).len(), 2);
    wait_for_idle_queue(&server);
    assert_eq!(inbox(&server, USER).len(), 1);
}

/// A's rule for b.test: relay through B's submission port, which takes mail only
/// after AUTH (and AUTH only over TLS), with `password`.
fn relay_through_submission(relay: SocketAddr, password: &str) -> String {
    format!(
        "[queue]\n\
         {FAST_RETRY}\n\
         [delivery]\n\
         connect_timeout_seconds = 5\n\
         \n\
         [[delivery.path]]\n\
         domains = [\"b.test\"]\n\
         path = \"relay\"\n\
         relay = \"{relay}\"\n\
         tls = \"opportunistic\"\n\
         username = \"relay@b.test\"\n\
         password = \"{password}\"\n"
    )
}

/// B: a Sluice for b.test whose submission listener needs AUTH over TLS, with the
/// relay account and bob.
fn start_submission_relay() -> Server {
    Server::start(&ServerSetup {
        hostname: "mx.b.test".to_owned(),
        domains: vec!["b.test".to_owned()],
        users: vec![
            ("bob@b.test".to_owned(), PASSWORD.to_owned()),
            ("relay@b.test".to_owned(), "relay secret".to_owned()),
        ],
        auth_requires_tls: true,
        ..ServerSetup::default()
    })
    .unwrap()
}

const ALICE: &str = "alice@a.test";
const BOB: &str = "bob@b.test";

/// A (a.test, alice) relaying everything through B's submission listener as
/// relay@b.test with `password`; B as `start_submission_relay` makes it.
fn relaying_through_submission(password: &str) -> (Server, Server) {
    let b = start_submission_relay();
    let a = Server::start(&ServerSetup {
        hostname: "mx.a.test".to_owned(),
        domains: vec!["a.test".to_owned()],
        users: vec![(ALICE.to_owned(), PASSWORD.to_owned())],
        auth_requires_tls: false,
        extra_toml: relay_through_submission(b.address("submission").unwrap(), password),
        ..ServerSetup::default()
    })
    .unwrap();
    (a, b)
}

#[test]
fn a_relay_on_submission_gets_auth_after_starttls() {
    let (a, b) = relaying_through_submission("relay secret");
    let sent = submit_as(&a, ALICE, "a-via-b", &[BOB]);

    let stored = wait_for_inbox(&b, BOB, 1);
    let trace = sluice_tests::prepended_trace(&stored[0], &sent).unwrap_or_else(|| {
        panic!(
            "B's copy is not the sent message after trace fields:\n{}",
            String::from_utf8_lossy(&stored[0])
        )
    });
    // RFC 3848: B saw an authenticated session over TLS.
    let by_b = trace
        .split("Received:")
        .find(|field| field.contains("by mx.b.test"))
        .unwrap_or_else(|| panic!("B's Received is missing:\n{trace}"));
    assert!(by_b.contains("ESMTPSA"), "{by_b}");
    wait_for_idle_queue(&a);
    assert!(
        inbox(&a, ALICE).is_empty(),
        "no notice: {:?}",
        inbox(&a, ALICE)
    );
    // The password is in A's configuration, never in its log.
    assert!(!a.stderr_all().contains("relay secret"));
}

#[test]
fn credentials_the_relay_refuses_fail_the_message_with_one_notice() {
    let (a, b) = relaying_through_submission("wrong secret");
    submit_as(&a, ALICE, "a-via-b-refused", &[BOB]);

    let notices = wait_for_inbox(&a, ALICE, 1);
    let notice = parse_notice(&notices[0]);
    assert_eq!(notice.recipients.len(), 1, "{notice:?}");
    let failed = &notice.recipients[0];
    assert_eq!(failed.get("action").map(String::as_str), Some("failed"));
    assert!(
        failed
            .get("diagnostic-code")
            .is_some_and(|code| code.starts_with("smtp; 535")),
        "{notice:?}"
    );
    assert!(
        failed
            .get("status")
            .is_some_and(|status| status.starts_with("5.7.")),
        "{notice:?}"
    );
    wait_for_idle_queue(&a);
    assert_eq!(inbox(&a, ALICE).len(), 1, "a second notice");
    assert!(inbox(&b, BOB).is_empty());
    assert!(!a.stderr_all().contains("wrong secret"));
}
