//! A real HAProxy (TCP mode) in front of the real binary, with `proxy_protocol = true`
//! on the proxied listeners: mail sent through `send-proxy` (v1) and `send-proxy-v2`
//! (v2, also before implicit TLS) must be recorded with the client's address, not
//! HAProxy's, and a client that skips the proxy must get no greeting at all.
//!
//! Telling the two apart needs two addresses on one machine: HAProxy reaches Sluice
//! from 127.0.0.1, and the clients connect to HAProxy from 127.0.0.2, .3 and .4
//! (Linux routes all of 127.0.0.0/8 to loopback, so binding those needs no setup).

// Helpers in test files panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::haproxy::{self, HaProxy, ProxyVersion, Route};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::smtp::SmtpClient;
use sluice_tests::tools::{python_code, require_tool};
use sluice_tests::{message_id_of, prepended_trace, test_message};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const USER: &str = "user@sluice.test";
const PASSWORD: &str = "correct horse";
/// Where HAProxy connects to Sluice from: the address a broken setup would record.
const PROXY_ADDRESS: &str = "127.0.0.1";
/// A deadline for reads that should end promptly, so a hang fails instead of stalling.
const READ_DEADLINE: Duration = Duration::from_secs(15);

fn setup() -> ServerSetup {
    ServerSetup {
        users: vec![(USER.to_owned(), PASSWORD.to_owned())],
        ..ServerSetup::default()
    }
}

/// Sluice with `proxy_protocol = true` on `listeners`, started.
fn start_proxied_server(listeners: &[&str]) -> Server {
    let mut server = Server::configure(&setup()).unwrap();
    haproxy::enable_proxy_protocol(&server, listeners).unwrap();
    server.launch().unwrap();
    server
}

/// A route from a fresh frontend port on 127.0.0.1 to `backend`.
fn route(name: &str, backend: SocketAddr, proxy: ProxyVersion) -> Route {
    let port = haproxy::free_port("127.0.0.1").unwrap();
    Route {
        name: name.to_owned(),
        frontend: SocketAddr::from(([127, 0, 0, 1], port)),
        backend,
        proxy,
    }
}

/// A TCP connection to `to` whose source address is `source`: bound before connecting,
/// so the address HAProxy sees (and must pass on) is not its own.
async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    let stream = socket.connect(to).await.unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), IpAddr::V4(source));
    stream
}

/// The Received fields Sluice prepended to the one stored copy of `sent` in USER's
/// INBOX; the rest of the stored message must be `sent` byte for byte.
async fn stored_trace(server: &Server, sent: &[u8]) -> String {
    let id = message_id_of(sent).unwrap();
    let inbox = server.folder_contents(USER, "INBOX").await.unwrap();
    let copies: Vec<&Vec<u8>> = inbox
        .iter()
        .filter(|stored| message_id_of(stored).as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(copies.len(), 1, "{id} in the INBOX {} times", copies.len());
    prepended_trace(copies[0], sent)
        .unwrap_or_else(|| {
            panic!(
                "{id}: stored message is not the sent one after Received fields:\n{}",
                String::from_utf8_lossy(copies[0])
            )
        })
        .to_owned()
}

/// The trace names the real client (as an address literal) and never HAProxy.
fn assert_names_client(trace: &str, client: Ipv4Addr) {
    println!("{trace}");
    assert!(
        trace.contains(&format!("[{client}]")),
        "Received should name the client [{client}]: {trace}"
    );
    assert!(
        !trace.contains(PROXY_ADDRESS),
        "Received must not name HAProxy's address {PROXY_ADDRESS}: {trace}"
    );
}

/// A client that connects straight to a proxied listener and speaks SMTP first: Sluice
/// must read it as a missing PROXY header and close without sending a byte, because
/// greeting it would let anyone claim any address with a header of their own.
async fn assert_closed_without_greeting(listener: SocketAddr) {
    let mut stream = TcpStream::connect(listener).await.unwrap();
    // A write error just means the server closed first, which is the expected outcome.
    let _ = stream.write_all(b"EHLO direct.test\r\n").await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(READ_DEADLINE, stream.read_to_end(&mut received))
        .await
        .expect("the server neither greeted nor closed the connection");
    // A reset (unread bytes at close) is a close as well; what matters is no greeting.
    if let Err(error) = read {
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    }
    assert!(
        received.is_empty(),
        "a direct client got {:?}",
        String::from_utf8_lossy(&received)
    );
}

/// One message over plain SMTP through `frontend`, from `source`; returns what was sent.
async fn send_through(frontend: SocketAddr, source: Ipv4Addr, name: &str) -> Vec<u8> {
    let sent = test_message(&format!("{name}@client.test"), USER, 2000);
    let stream = connect_from(source, frontend).await;
    let mut client = SmtpClient::new(stream);
    let greeting = tokio::time::timeout(READ_DEADLINE, client.read_reply())
        .await
        .expect("no greeting through haproxy")
        .unwrap();
    assert_eq!(greeting.code, 220, "{name}: {greeting}");
    let ehlo = client.command("EHLO relay.client.test").await.unwrap();
    assert_eq!(ehlo.code, 250, "{name}: {ehlo}");
    let transaction = client
        .send_mail("sender@client.test", &[USER], &sent)
        .await
        .unwrap();
    assert!(transaction.accepted().is_some(), "{name}: {transaction:?}");
    client.quit().await;
    sent
}

#[tokio::test]
async fn mx_behind_haproxy_records_the_client_address_with_v1_and_v2() {
    let Some(binary) = haproxy::require_haproxy() else {
        return;
    };
    println!("using {}", haproxy::version(&binary));
    let server = start_proxied_server(&["mx"]);
    let mx = server.address("mx").unwrap();
    let routes = [
        route("mx_v1", mx, ProxyVersion::V1),
        route("mx_v2", mx, ProxyVersion::V2),
    ];
    let proxy = HaProxy::start(&binary, server.folder(), &routes).unwrap();

    let v1_client = Ipv4Addr::new(127, 0, 0, 2);
    let v2_client = Ipv4Addr::new(127, 0, 0, 3);
    let v1_sent = send_through(routes[0].frontend, v1_client, "haproxy-v1").await;
    let v2_sent = send_through(routes[1].frontend, v2_client, "haproxy-v2").await;
    assert_names_client(&stored_trace(&server, &v1_sent).await, v1_client);
    assert_names_client(&stored_trace(&server, &v2_sent).await, v2_client);

    assert_closed_without_greeting(mx).await;
    drop(proxy);
}

/// HAProxy in TCP mode does not terminate TLS: it writes the v2 header, then relays
/// the client's TLS bytes, so Sluice must read the header before its TLS handshake.
#[tokio::test]
async fn submissions_behind_haproxy_reads_a_v2_header_before_implicit_tls() {
    let Some(binary) = haproxy::require_haproxy() else {
        return;
    };
    if !require_tool("python3") {
        return;
    }
    let server = start_proxied_server(&["submissions"]);
    let submissions = server.address("submissions").unwrap();
    let routes = [route("submissions_v2", submissions, ProxyVersion::V2)];
    let proxy = HaProxy::start(&binary, server.folder(), &routes).unwrap();

    let client = Ipv4Addr::new(127, 0, 0, 4);
    let sent = test_message("haproxy-tls@client.test", USER, 2000);
    let path: PathBuf = server.folder().join("haproxy-tls.eml");
    std::fs::write(&path, &sent).unwrap();
    // smtplib binds the source address itself; the test certificate is self-signed,
    // and what is under test is the address, not the chain, so verification is off.
    let code = "\
import smtplib, ssl, sys
host, port, source, user, password, path = sys.argv[1:]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with open(path, 'rb') as f:
    message = f.read()
with smtplib.SMTP_SSL(host, int(port), source_address=(source, 0), context=context, timeout=20) as smtp:
    smtp.ehlo('laptop.client.test')
    smtp.login(user, password)
    refused = smtp.sendmail(user, [user], message)
    assert not refused, refused
print('sent')
";
    let frontend = routes[0].frontend;
    let finished = python_code(
        code,
        &[
            frontend.ip().to_string(),
            frontend.port().to_string(),
            client.to_string(),
            USER.to_owned(),
            PASSWORD.to_owned(),
            path.display().to_string(),
        ],
    )
    .unwrap()
    .ok("smtplib over implicit TLS through haproxy")
    .unwrap();
    assert_eq!(finished.stdout.trim(), "sent");
    assert_names_client(&stored_trace(&server, &sent).await, client);

    assert_closed_without_greeting(submissions).await;
    drop(proxy);
}
