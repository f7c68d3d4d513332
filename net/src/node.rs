//! A running Sluice node, started from a `Config` for its role: the store, the
//! delivery service (the queue, its attempts and notices), the control socket, the
//! listeners (SMTP for gateways, LMTP for backends, POP3 for mailboxes), and garbage collection; with a
//! handle to read the bound addresses, to ask for a graceful shutdown and to wait.

use crate::config::{Config, ListenerName, Role, StorageSection};
use crate::delivery::{self, ClientTls, Deliverer, DeliveryHandle, NoticeWriter};
use crate::dns::{Resolver, ResolverSettings};
use crate::imap_driver::ImapContext;
use crate::listener::{self, ListenerSpec, Service, Shared};
use crate::login::Logins;
use crate::pop3_driver::{MaildropLocks, Pop3Context};
use crate::reception_store::ReceptionStore;
use crate::smtp_driver::DriverContext;
use crate::store::{Store, StoreOptions};
use crate::tls;
use anyhow::Context as _;
use sluice_core::imap::{SessionConfig as ImapConfig, TlsMode as ImapTlsMode};
use sluice_core::login::LoginGuard;
use sluice_core::node::PlacementPolicy;
use sluice_core::pop3::{Limits as Pop3Limits, Pop3Config};
use sluice_core::queue::Queue;
use sluice_core::router::MailboxAccess;
use sluice_core::router::RouterConfig;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::client::Limits as ClientLimits;
use sluice_core::smtp::server::{Limits, SessionConfig, TlsMode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Removes unreferenced bodies, and the records of local copies older than
/// `delivery_record_days`, now and then every `garbage_interval_seconds`, until
/// shutdown. A failed run is logged and tried again at the next interval.
async fn collect_garbage_periodically(
    store: Store,
    storage: StorageSection,
    mut shutdown: watch::Receiver<bool>,
) {
    let grace = Duration::from_secs(storage.garbage_grace_seconds);
    let interval = Duration::from_secs(storage.garbage_interval_seconds);
    let retention_ms = i64::try_from(storage.delivery_record_days)
        .unwrap_or(i64::MAX)
        .saturating_mul(86_400_000);
    loop {
        if retention_ms > 0 {
            let cutoff = crate::clock::unix_millis().saturating_sub(retention_ms);
            match store.prune_delivery_records(cutoff).await {
                Ok(report) => tracing::info!(
                    records = report.records,
                    keys = report.keys,
                    "delivery records pruned"
                ),
                Err(error) => tracing::warn!(%error, "pruning delivery records failed"),
            }
        }
        match store.collect_garbage(grace).await {
            Ok(report) => tracing::info!(
                rows = report.rows,
                files = report.files,
                bytes = report.bytes,
                "garbage collection"
            ),
            Err(error) => tracing::warn!(%error, "garbage collection failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// What a node runs besides its listeners.
struct Services {
    delivery: Option<DeliveryHandle>,
    resolver: Option<Resolver>,
    shutdown: (watch::Sender<bool>, watch::Receiver<bool>),
    /// The mailbox store POP3 reads; without it the POP3 listeners do not start.
    mailboxes: Option<Store>,
}

/// The router's configuration: `<Postmaster>` goes to the primary domain.
fn router_config(config: &Config) -> anyhow::Result<RouterConfig> {
    let primary_domain = match &config.server.primary_domain {
        Some(domain) => Domain::parse(domain)
            .map_err(|error| anyhow::anyhow!("server.primary_domain: {error}"))?,
        None => config.hostname().map_err(anyhow::Error::msg)?,
    };
    Ok(RouterConfig::new(primary_domain))
}

/// How this node places copies: a gateway queues local mailboxes for its backend.
fn placement_policy(config: &Config) -> anyhow::Result<PlacementPolicy> {
    let invalid = |(key, message): (&str, String)| anyhow::anyhow!("{key}: {message}");
    let mailboxes = match (
        config.server.role,
        config.delivery.backend().map_err(invalid)?,
    ) {
        (Role::Gateway, Some((host, port))) => MailboxAccess::Lmtp { host, port },
        (Role::Gateway, None) => anyhow::bail!("role gateway needs delivery.backend_lmtp"),
        (Role::All | Role::Backend, _) => MailboxAccess::InProcess,
    };
    Ok(PlacementPolicy {
        mailboxes,
        delivery: config.delivery.policy().map_err(invalid)?,
    })
}

/// The delivery service for `store`, restored from what it holds.
async fn start_delivery(
    config: &Config,
    store: &Store,
    resolver: &Resolver,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<DeliveryHandle> {
    let hostname = config.hostname().map_err(anyhow::Error::msg)?;
    let queue =
        Queue::new(config.queue.queue_config()).map_err(|error| anyhow::anyhow!("{error}"))?;
    let deliverer = Deliverer {
        dns: resolver.clone(),
        tls: ClientTls::new(config.delivery.ca_file.as_deref()).context("delivery.ca_file")?,
        hostname: hostname.clone(),
        mx_port: config.delivery.mx_port,
        connect_timeout: Duration::from_secs(config.delivery.connect_timeout_seconds),
        // Idle connections wait this long for the next message to their host.
        limits: ClientLimits {
            idle_timeout: sluice_core::time::Duration::from_secs(config.delivery.pool_idle_seconds),
            ..ClientLimits::default()
        },
        pool: Arc::default(),
        relay_credentials: config
            .delivery
            .relay_credentials()
            .map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?,
        dkim: crate::dkim::load_key_dir(&config.server.data_dir.join("dkim"))
            .context("cannot load the DKIM keys")?,
    };
    let notices = NoticeWriter {
        settings: config.queue.notice_settings(hostname),
        router: router_config(config)?,
        placement: placement_policy(config)?,
    };
    let (handle, _task) = delivery::start(
        queue,
        store.clone(),
        Arc::new(deliverer),
        Arc::new(notices),
        shutdown,
    )
    .await
    .context("cannot restore the queue")?;
    Ok(handle)
}

/// A started node. Dropping it does not stop it; call [`Node::shutdown`].
#[derive(Debug)]
pub struct Node {
    addresses: Vec<(ListenerName, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    listeners: JoinSet<()>,
    tls_fingerprint: String,
}

impl Node {
    /// Opens the store named by the configuration, starts the delivery service and
    /// the control socket, then every enabled listener.
    pub async fn start(config: &Config) -> anyhow::Result<(Node, Store)> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
        let options = StoreOptions {
            inline_body_limit: config.storage.inline_body_limit,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&config.database_url(), &config.blob_dir(), options)
            .await
            .context("cannot open the store")?;
        let resolver = Resolver::new(
            ResolverSettings::from_section(&config.dns).context("cannot configure DNS")?,
        )
        .context("cannot start the DNS resolver")?;
        let (shutdown, watcher) = watch::channel(false);
        let delivery = start_delivery(config, &store, &resolver, watcher.clone()).await?;
        let control = crate::control::socket_path(data_dir);
        let control_handle = delivery.clone();
        let control_watcher = watcher.clone();
        tokio::spawn(async move {
            if let Err(error) =
                crate::control::serve(control, control_handle, control_watcher).await
            {
                tracing::warn!(%error, "the control socket is not available");
            }
        });
        let services = Services {
            delivery: Some(delivery),
            resolver: Some(resolver),
            shutdown: (shutdown, watcher),
            mailboxes: Some(store.clone()),
        };
        let node = Node::start_listeners(config, store.clone(), services).await?;
        // IMAP sessions here hear of mail other processes store (another backend,
        // the command line) as well as this one's.
        store.hear_other_processes(&config.database_url());
        tokio::spawn(collect_garbage_periodically(
            store.clone(),
            config.storage.clone(),
            node.shutdown.subscribe(),
        ));
        Ok((node, store))
    }

    /// Starts every enabled listener on `store`, without a delivery service:
    /// queued copies stay in that store (for tests of the receiving side).
    pub async fn start_with<R: ReceptionStore>(config: &Config, store: R) -> anyhow::Result<Node> {
        let services = Services {
            delivery: None,
            resolver: None,
            shutdown: watch::channel(false),
            mailboxes: None,
        };
        Node::start_listeners(config, store, services).await
    }

    async fn start_listeners<R: ReceptionStore>(
        config: &Config,
        store: R,
        services: Services,
    ) -> anyhow::Result<Node> {
        let hostname = config.hostname().map_err(anyhow::Error::msg)?;
        let router = router_config(config)?;
        let files = config
            .tls
            .certificate
            .as_deref()
            .zip(config.tls.private_key.as_deref());
        let loaded = tls::load(files, &config.server.data_dir, hostname.as_str())?;
        if loaded.self_signed {
            tracing::info!(
                fingerprint = %loaded.fingerprint,
                folder = %config.server.data_dir.display(),
                "using a self-signed certificate (SHA-256 fingerprint)"
            );
        } else {
            tracing::info!(fingerprint = %loaded.fingerprint, "certificate loaded (SHA-256 fingerprint)");
        }
        let tls_acceptor = tokio_rustls::TlsAcceptor::from(loaded.config);
        // One login guard for every protocol, so failures over SMTP slow POP3 too.
        let logins = Logins::new(LoginGuard::new(config.login.limits()));
        let imap = services.mailboxes.clone().map(|store| {
            Arc::new(ImapContext {
                store,
                tls: tls_acceptor.clone(),
                logins: logins.clone(),
            })
        });
        let pop3 = services.mailboxes.map(|store| {
            Arc::new(Pop3Context {
                store,
                tls: tls_acceptor.clone(),
                logins: logins.clone(),
                locks: MaildropLocks::default(),
            })
        });
        let shared = Arc::new(Shared {
            driver: Arc::new(DriverContext {
                store,
                tls: tls_acceptor,
                router,
                hostname: hostname.clone(),
                placement: placement_policy(config)?,
                delivery: services.delivery,
                logins,
            }),
            connections: Arc::new(Semaphore::new(config.server.max_connections)),
            shutdown_grace: Duration::from_secs(config.server.shutdown_grace_seconds),
            resolver: services.resolver,
            pop3: pop3.clone(),
            imap,
        });
        let limits = Limits {
            recipients: config.smtp.max_recipients,
            message_size: config.smtp.max_message_size,
            transactions: config.smtp.max_messages_per_connection,
            ..Limits::default()
        };
        let (shutdown, watcher) = services.shutdown;
        let mut listeners = JoinSet::new();
        let mut addresses = Vec::new();
        for name in ListenerName::ALL {
            let section = config.listener(name);
            if !config.listener_enabled(name) {
                continue;
            }
            if name.is_retrieval() && pop3.is_none() {
                tracing::warn!(listener = %name, "no mailbox store in this node; not listening");
                continue;
            }
            let address = config.listener_address(name);
            let socket = TcpListener::bind(address)
                .await
                .with_context(|| format!("listeners.{name}: cannot listen on {address}"))?;
            let bound = socket.local_addr()?;
            let (kind, tls) = ListenerSpec::session_kind(name);
            let spec = ListenerSpec {
                name,
                session: SessionConfig {
                    kind,
                    hostname: hostname.clone(),
                    tls,
                    auth_requires_tls: config.smtp.auth_requires_tls,
                    limits: limits.clone(),
                },
                proxy_protocol: section.proxy_protocol,
                max_connections_per_ip: section.max_connections_per_ip,
                service: service(name, &hostname, tls),
            };
            tracing::info!(listener = %name, address = %bound, proxy_protocol = section.proxy_protocol, "listening");
            listeners.spawn(listener::run(
                socket,
                spec,
                Arc::clone(&shared),
                watcher.clone(),
            ));
            addresses.push((name, bound));
        }
        Ok(Node {
            addresses,
            shutdown,
            listeners,
            tls_fingerprint: loaded.fingerprint,
        })
    }

    /// The listeners' bound addresses, in configuration order.
    pub fn addresses(&self) -> &[(ListenerName, SocketAddr)] {
        &self.addresses
    }

    pub fn address(&self, name: ListenerName) -> Option<SocketAddr> {
        self.addresses
            .iter()
            .find(|(listener, _)| *listener == name)
            .map(|(_, address)| *address)
    }

    /// SHA-256 of the certificate the listeners present, lower-case hex.
    pub fn tls_fingerprint(&self) -> &str {
        &self.tls_fingerprint
    }

    /// Stops accepting; live sessions get the grace period.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until every listener has stopped and its sessions have ended.
    pub async fn wait(mut self) {
        while self.listeners.join_next().await.is_some() {}
    }
}

/// What a listener's connections run, with the TLS mode its name gives.
fn service(name: ListenerName, hostname: &Domain, tls: TlsMode) -> Service {
    if name.is_pop3() {
        Service::Pop3(Pop3Config {
            hostname: hostname.clone(),
            tls,
            allow_plaintext_auth: false,
            limits: Pop3Limits::default(),
        })
    } else if name.is_imap() {
        let tls = match tls {
            TlsMode::Implicit => ImapTlsMode::Implicit,
            _ => ImapTlsMode::StartTlsOffered,
        };
        Service::Imap(ImapConfig::new(hostname.as_str(), tls))
    } else {
        Service::Smtp
    }
}
