//! Listener features around the session: the PROXY header (v1 and v2) sets the client
//! address the Received header records, and per-address connection limits hold.

#![allow(clippy::unwrap_used)]

mod runtime_support;

use runtime_support::{SmtpClient, TestServer, USER};
use sluice_core::proxy::ProxyHeader;
use sluice_net::config::{Config, ListenerName};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::net::TcpStream;

fn proxied(config: &mut Config) {
    config.listeners.mx.proxy_protocol = true;
    config.listeners.submissions.proxy_protocol = true;
}

#[tokio::test]
async fn a_v1_header_sets_the_client_address() {
    let server = TestServer::start_with(proxied).await;
    let mut client = server.connect(ListenerName::Mx).await;
    client
        .send(b"PROXY TCP4 198.51.100.23 192.0.2.1 40000 25\r\n")
        .await;
    assert_eq!(client.reply().await.0, 220);
    client.command("EHLO relay.example").await;
    let (code, text) = client
        .send_mail("a@example.org", &[USER], "Subject: proxied\r\n\r\nhi")
        .await;
    assert_eq!(code, 250, "{text}");
    let inbox = server.inbox(USER).await;
    assert!(inbox[0].contains("[198.51.100.23]"), "{}", inbox[0]);
}

#[tokio::test]
async fn a_v2_header_before_implicit_tls_sets_the_client_address() {
    let server = TestServer::start_with(proxied).await;
    let mut tcp = TcpStream::connect(server.address(ListenerName::Submissions))
        .await
        .unwrap();
    let header = ProxyHeader {
        source: Some((
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
            5000,
        )),
        destination: Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 465)),
    };
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &header.to_v2())
        .await
        .unwrap();
    let mut client = SmtpClient::new(server.tls_handshake(tcp).await);
    assert_eq!(client.reply().await.0, 220);
    client.command("EHLO laptop.example").await;
    let auth = runtime_support::auth_plain(USER, runtime_support::PASSWORD);
    assert_eq!(client.command(&format!("AUTH PLAIN {auth}")).await.0, 235);
    let (code, text) = client
        .send_mail(USER, &[USER], "Subject: v2\r\n\r\nhi")
        .await;
    assert_eq!(code, 250, "{text}");
    let inbox = server.inbox(USER).await;
    assert!(inbox[0].contains("[IPv6:2001:db8::7]"), "{}", inbox[0]);
}

#[tokio::test]
async fn a_connection_without_a_header_is_closed() {
    let server = TestServer::start_with(proxied).await;
    let mut client = server.connect(ListenerName::Mx).await;
    client.send(b"EHLO client.example\r\n").await;
    assert_eq!(client.reply().await.0, 0, "closed without a greeting");
}

#[tokio::test]
async fn the_per_address_limit_refuses_extra_connections_with_421() {
    let server =
        TestServer::start_with(|config| config.listeners.mx.max_connections_per_ip = 2).await;
    let mut first = server.connect(ListenerName::Mx).await;
    let mut second = server.connect(ListenerName::Mx).await;
    assert_eq!(first.reply().await.0, 220);
    assert_eq!(second.reply().await.0, 220);
    let mut third = server.connect(ListenerName::Mx).await;
    let (code, text) = third.reply().await;
    assert_eq!(code, 421, "third connection got {text:?}");
    assert!(
        text.contains("4.7.0 ") && text.contains("too many connections"),
        "{text}"
    );
    assert_eq!(third.reply().await.0, 0, "then closed");
    // Other listeners count separately.
    let mut submission = server.connect(ListenerName::Submission).await;
    assert_eq!(submission.reply().await.0, 220);

    assert_eq!(first.command("QUIT").await.0, 221);
    drop(first);
    // The slot frees when the session task ends, a moment after QUIT: polled, with a
    // bound (300 tries, 30 s) that only a slot never freed reaches.
    let mut greeted = false;
    for _ in 0..300 {
        let mut retry = server.connect(ListenerName::Mx).await;
        if retry.reply().await.0 == 220 {
            greeted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(greeted, "a freed slot is usable again");
}

#[tokio::test]
async fn proxied_clients_are_limited_by_their_real_address() {
    let server = TestServer::start_with(|config| {
        config.listeners.mx.proxy_protocol = true;
        config.listeners.mx.max_connections_per_ip = 1;
    })
    .await;
    let header = |ip: Ipv4Addr| {
        ProxyHeader {
            source: Some((IpAddr::V4(ip), 1000)),
            destination: Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 25)),
        }
        .to_v1()
    };
    let mut one = server.connect(ListenerName::Mx).await;
    one.send(&header(Ipv4Addr::new(192, 0, 2, 1))).await;
    assert_eq!(one.reply().await.0, 220);
    let mut other = server.connect(ListenerName::Mx).await;
    other.send(&header(Ipv4Addr::new(192, 0, 2, 2))).await;
    assert_eq!(
        other.reply().await.0,
        220,
        "another client behind the same proxy"
    );
    let mut again = server.connect(ListenerName::Mx).await;
    again.send(&header(Ipv4Addr::new(192, 0, 2, 1))).await;
    assert_eq!(again.reply().await.0, 421, "the same client twice");
}
