//! The real node, in-process: mail arrives over MX, submission with STARTTLS and AUTH,
//! and submissions with implicit TLS, and lands in the store with a Received header.

#![allow(clippy::unwrap_used)]

mod runtime_support;

use runtime_support::{DOMAIN, PASSWORD, SmtpClient, TestServer, USER, auth_plain};
use sluice_net::config::ListenerName;

#[tokio::test]
async fn mx_delivers_to_a_local_user() {
    let server = TestServer::start().await;
    let mut client = server.connect(ListenerName::Mx).await;
    let (code, greeting) = client.reply().await;
    assert_eq!(code, 220, "{greeting}");
    assert!(greeting.starts_with("mx.sluice.test"), "{greeting}");
    let (code, ehlo) = client.command("EHLO client.example").await;
    assert_eq!(code, 250);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let (code, text) = client
        .send_mail(
            "sender@example.org",
            &[USER],
            "Subject: over mx\r\n\r\nhello",
        )
        .await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(client.command("QUIT").await.0, 221);

    let inbox = server.inbox(USER).await;
    assert_eq!(inbox.len(), 1);
    let message = &inbox[0];
    assert!(
        message.starts_with("Received: from client.example"),
        "{message}"
    );
    assert!(message.contains("[127.0.0.1]"), "{message}");
    // Folded lines read as one (the client's reverse name may lengthen the field).
    let unfolded = message.replace("\r\n\t", " ");
    assert!(
        unfolded.contains("by mx.sluice.test with ESMTP"),
        "{message}"
    );
    let queue_id = text.rsplit(' ').next().unwrap();
    assert!(
        message.contains(queue_id),
        "queue id {queue_id} in {message}"
    );
    assert!(
        message.ends_with("Subject: over mx\r\n\r\nhello\r\n"),
        "{message}"
    );
    let queue = server.store.queue_entries().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].queue_id, queue_id);
}

#[tokio::test]
async fn mx_refuses_unknown_users_and_relaying() {
    let server = TestServer::start().await;
    let mut client = server.connect(ListenerName::Mx).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    assert_eq!(client.command("MAIL FROM:<a@example.org>").await.0, 250);
    let unknown = client.command(&format!("RCPT TO:<nobody@{DOMAIN}>")).await;
    assert_eq!(unknown.0, 550, "{}", unknown.1);
    let relay = client.command("RCPT TO:<someone@elsewhere.example>").await;
    assert_eq!(relay.0, 554, "{}", relay.1);
}

#[tokio::test]
async fn submission_requires_starttls_then_auth() {
    let server = TestServer::start().await;
    let mut client = server.connect(ListenerName::Submission).await;
    client.reply().await;
    let (_, ehlo) = client.command("EHLO laptop.example").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert_eq!(client.command("STARTTLS").await.0, 220);
    let tls = server.tls_handshake(client.into_inner()).await;
    let mut client = SmtpClient::new(tls);
    let (_, ehlo) = client.command("EHLO laptop.example").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    let wrong = client
        .command(&format!("AUTH PLAIN {}", auth_plain(USER, "wrong")))
        .await;
    assert_eq!(wrong.0, 535, "{}", wrong.1);
    let (code, text) = client
        .command(&format!("AUTH PLAIN {}", auth_plain(USER, PASSWORD)))
        .await;
    assert_eq!(code, 235, "{text}");
    let (code, text) = client
        .send_mail(
            USER,
            &[USER, "friend@elsewhere.example"],
            "Subject: submitted\r\n\r\nhi",
        )
        .await;
    assert_eq!(code, 250, "{text}");
    let inbox = server.inbox(USER).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("with ESMTPSA"), "{}", inbox[0]);
    let queue = server.store.queue_entries().await.unwrap();
    assert!(
        queue
            .iter()
            .any(|entry| entry.recipient == "friend@elsewhere.example"),
        "{queue:?}"
    );
}

#[tokio::test]
async fn submission_refuses_mail_before_auth() {
    let server = TestServer::start().await;
    let mut client = server.connect(ListenerName::Submission).await;
    client.reply().await;
    client.command("EHLO laptop.example").await;
    let (code, text) = client.command(&format!("MAIL FROM:<{USER}>")).await;
    assert_eq!(code / 100, 5, "{text}");
}

#[tokio::test]
async fn submissions_speaks_tls_from_the_first_byte() {
    let server = TestServer::start().await;
    let mut client = server.connect_tls(ListenerName::Submissions).await;
    assert_eq!(client.reply().await.0, 220);
    let (_, ehlo) = client.command("EHLO laptop.example").await;
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    let (code, _) = client
        .command(&format!("AUTH PLAIN {}", auth_plain(USER, PASSWORD)))
        .await;
    assert_eq!(code, 235);
    let (code, text) = client
        .send_mail(USER, &[USER], "Subject: implicit\r\n\r\nhi")
        .await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(server.inbox(USER).await.len(), 1);
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_never_reaches_the_session() {
    let server = TestServer::start().await;
    let mut client = server.connect(ListenerName::Submission).await;
    client.reply().await;
    client.command("EHLO laptop.example").await;
    client
        .send(b"STARTTLS\r\nMAIL FROM:<x@y.example>\r\n")
        .await;
    let (code, text) = client.reply().await;
    assert_eq!(code, 421, "{text}");
    assert_eq!(client.reply().await.0, 0, "connection closed");
}

#[tokio::test]
async fn shutdown_lets_a_transaction_in_flight_finish_and_refuses_new_connections() {
    // A grace period no test outlives: if the node stops, its sessions ended it.
    let server =
        TestServer::start_with(|config| config.server.shutdown_grace_seconds = 86_400).await;
    let mut busy = server.connect(ListenerName::Mx).await;
    busy.reply().await;
    busy.command("EHLO client.example").await;
    assert_eq!(busy.command("MAIL FROM:<a@example.org>").await.0, 250);
    assert_eq!(busy.command(&format!("RCPT TO:<{USER}>")).await.0, 250);
    assert_eq!(busy.command("DATA").await.0, 354);
    let mut idle = server.connect(ListenerName::Mx).await;
    idle.reply().await;

    server.node.shutdown();
    // The idle session is told at once, and so is every new connection.
    let (code, text) = idle.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("4.3.2"), "{text}");
    let mut late = server.connect(ListenerName::Mx).await;
    let (code, text) = late.reply().await;
    assert_eq!(code, 421, "{text}");
    assert_eq!(late.reply().await.0, 0, "a refused connection is closed");

    // The transaction in flight still gets its 250, then the 421.
    busy.send(b"Subject: late\r\n\r\nbody\r\n.\r\n").await;
    assert_eq!(busy.reply().await.0, 250);
    assert_eq!(busy.reply().await.0, 421);
    assert_eq!(server.inbox(USER).await.len(), 1);

    let TestServer {
        node,
        store: _store,
        dir: _dir,
    } = server;
    // Every session has ended, so the node stops, long before its grace period
    // could end it (the timeout only bounds the wait when something is wrong).
    tokio::time::timeout(std::time::Duration::from_secs(60), node.wait())
        .await
        .expect("the node stops once its sessions have ended");
}
