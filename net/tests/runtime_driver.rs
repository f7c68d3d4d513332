//! The SMTP driver on an in-memory stream with a scripted reception store: it runs on any
//! stream type, turns a failed durable write into the session's 451, and sleeps
//! until the session's deadlines on tokio's (here paused) clock.

#![allow(clippy::unwrap_used)]

mod runtime_support;

use runtime_support::SmtpClient;
use sluice_core::delivery::DeliveryPolicy;
use sluice_core::directory::{DirectoryAnswer, DirectoryQuery};
use sluice_core::node::PlacementPolicy;
use sluice_core::router::{MailboxAccess, RouterConfig};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{Limits, ListenerKind, SessionConfig, TlsMode};
use sluice_net::incoming::ClientInfo;
use sluice_net::maybe_tls::MaybeTls;
use sluice_net::reception_store::ReceptionStore;
use sluice_net::smtp_driver::{self, DriverContext};
use sluice_net::store::{IncomingMessage, StoreError};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::io::DuplexStream;

/// One domain, `x.test`, with one user, `u@x.test`; accepts or fails every write.
#[derive(Clone, Default)]
struct ScriptedStore {
    fail_writes: bool,
    accepted: Arc<Mutex<Vec<IncomingMessage>>>,
}

// The trait asks for 'static futures, which `async fn` (borrowing self) cannot give.
#[allow(clippy::manual_async_fn)]
impl ReceptionStore for ScriptedStore {
    fn verify_credentials(
        &self,
        _username: String,
        _password: String,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send + 'static {
        async { Ok(None) }
    }

    fn query(
        &self,
        query: DirectoryQuery,
    ) -> impl Future<Output = Result<DirectoryAnswer, StoreError>> + Send + 'static {
        async move { Ok(runtime_support::one_user_directory(query)) }
    }

    fn accept(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let fail = self.fail_writes;
        let accepted = Arc::clone(&self.accepted);
        async move {
            if fail {
                return Err(StoreError::Invalid {
                    what: "disk",
                    reason: "full".to_owned(),
                });
            }
            accepted.lock().unwrap().push(message);
            Ok(())
        }
    }
}

/// A session driven on one end of an in-memory pipe; the client holds the other.
fn start(store: ScriptedStore) -> (SmtpClient<DuplexStream>, tempfile::TempDir) {
    start_with(store, ListenerKind::Mx, true)
}

/// As [`start`], on a listener of `kind`, offering AUTH before TLS when
/// `auth_requires_tls` is false.
fn start_with(
    store: ScriptedStore,
    kind: ListenerKind,
    auth_requires_tls: bool,
) -> (SmtpClient<DuplexStream>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tls = sluice_net::tls::load(None, dir.path(), "mx.x.test").unwrap();
    let hostname = Domain::parse("mx.x.test").unwrap();
    let context = Arc::new(DriverContext {
        store,
        tls: tokio_rustls::TlsAcceptor::from(tls.config),
        router: RouterConfig::new(Domain::parse("x.test").unwrap()),
        hostname: hostname.clone(),
        placement: PlacementPolicy {
            mailboxes: MailboxAccess::InProcess,
            delivery: DeliveryPolicy::default(),
        },
        delivery: None,
        logins: sluice_net::login::Logins::default(),
    });
    let config = SessionConfig {
        kind,
        hostname,
        tls: TlsMode::StartTlsOffered,
        auth_requires_tls,
        limits: Limits::default(),
    };
    let (client, server) = tokio::io::duplex(64 * 1024);
    let client_info = ClientInfo::new("192.0.2.1:1234".parse().unwrap());
    tokio::spawn(smtp_driver::drive(
        MaybeTls::Plain(server),
        config,
        client_info,
        context,
        // No shutdown in these tests: a dropped sender means none will come.
        tokio::sync::watch::channel(false).1,
    ));
    (SmtpClient::new(client), dir)
}

#[tokio::test]
async fn a_message_is_stored_before_its_250() {
    let store = ScriptedStore::default();
    let (mut client, _dir) = start(store.clone());
    assert_eq!(client.reply().await.0, 220);
    client.command("EHLO c.test").await;
    let (code, text) = client
        .send_mail("a@b.test", &["u@x.test"], "Subject: s\r\n\r\nbody")
        .await;
    assert_eq!(code, 250, "{text}");
    let accepted = store.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    assert!(text.ends_with(&accepted[0].queue_id), "{text}");
    assert_eq!(accepted[0].reverse_path, "<a@b.test>");
}

#[tokio::test]
async fn a_failed_write_is_answered_451_and_the_session_continues() {
    let store = ScriptedStore {
        fail_writes: true,
        ..ScriptedStore::default()
    };
    let (mut client, _dir) = start(store);
    client.reply().await;
    client.command("EHLO c.test").await;
    let (code, text) = client
        .send_mail("a@b.test", &["u@x.test"], "Subject: s\r\n\r\nbody")
        .await;
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("4.3.0"), "{text}");
    assert_eq!(client.command("NOOP").await.0, 250);
}

#[tokio::test]
async fn pipelined_recipients_are_answered_in_order() {
    let (mut client, _dir) = start(ScriptedStore::default());
    client.reply().await;
    client.command("EHLO c.test").await;
    client
        .send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<nobody@x.test>\r\nRCPT TO:<u@x.test>\r\nRCPT TO:<r@elsewhere.test>\r\n")
        .await;
    assert_eq!(client.reply().await.0, 250);
    assert_eq!(client.reply().await.0, 550);
    assert_eq!(client.reply().await.0, 250);
    assert_eq!(client.reply().await.0, 554);
}

#[tokio::test(start_paused = true)]
async fn an_idle_client_is_timed_out_by_the_session_deadline() {
    let (mut client, _dir) = start(ScriptedStore::default());
    assert_eq!(client.reply().await.0, 220);
    // Paused time jumps to the session's command deadline as soon as all is idle.
    let (code, text) = client.reply_untimed().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert_eq!(client.reply_untimed().await.0, 0);
}

#[tokio::test(start_paused = true)]
async fn each_failed_login_holds_back_the_next_answer_longer() {
    let (mut client, _dir) = start_with(ScriptedStore::default(), ListenerKind::Submission, false);
    client.reply().await;
    client.command("EHLO c.test").await;
    // u / wrong, as AUTH PLAIN's initial response.
    let wrong = "AUTH PLAIN AHUAd3Jvbmc=";
    let mut waited = Vec::new();
    for _ in 0..3 {
        let asked = tokio::time::Instant::now();
        let (code, text) = client.command(wrong).await;
        assert!(code == 535 || code == 421, "{code} {text}");
        waited.push(asked.elapsed().as_millis());
    }
    // Core's guard: nothing before the first failure, then 2 s, doubling (whole
    // seconds: tokio's paused timer may fire a millisecond past its deadline).
    let seconds: Vec<u128> = waited.iter().map(|ms| ms / 1000).collect();
    assert_eq!(seconds, [0, 2, 4], "waited {waited:?} ms");
}
