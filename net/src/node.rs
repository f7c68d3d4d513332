//! A running Sluice node: the store, the TLS configuration and the three listeners,
//! started from a `Config`, with a handle to read the bound addresses, to ask for a
//! graceful shutdown and to wait for it.

use crate::backend::Backend;
use crate::config::{Config, ListenerName, StorageSection};
use crate::listener::{self, ListenerSpec, Shared};
use crate::smtp_driver::DriverContext;
use crate::store::{Store, StoreOptions};
use crate::tls;
use anyhow::Context as _;
use sluice_core::router::RouterConfig;
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{Limits, SessionConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Removes unreferenced bodies now and then every `garbage_interval_seconds`,
/// until shutdown. A failed run is logged and tried again at the next interval.
async fn collect_garbage_periodically(
    store: Store,
    storage: StorageSection,
    mut shutdown: watch::Receiver<bool>,
) {
    let grace = Duration::from_secs(storage.garbage_grace_seconds);
    let interval = Duration::from_secs(storage.garbage_interval_seconds);
    loop {
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

/// A started node. Dropping it does not stop it; call [`Node::shutdown`].
#[derive(Debug)]
pub struct Node {
    addresses: Vec<(ListenerName, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    listeners: JoinSet<()>,
    tls_fingerprint: String,
}

impl Node {
    /// Opens the store named by the configuration and starts every enabled listener.
    pub async fn start(config: &Config) -> anyhow::Result<(Node, Store)> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
        let options = StoreOptions {
            inline_body_limit: config.storage.inline_body_limit,
        };
        let store = Store::open_with(&config.database_url(), &config.blob_dir(), options)
            .await
            .context("cannot open the store")?;
        let node = Node::start_with(config, store.clone()).await?;
        tokio::spawn(collect_garbage_periodically(
            store.clone(),
            config.storage.clone(),
            node.shutdown.subscribe(),
        ));
        Ok((node, store))
    }

    /// Starts every enabled listener on `backend`.
    pub async fn start_with<B: Backend>(config: &Config, backend: B) -> anyhow::Result<Node> {
        let hostname = config.hostname().map_err(anyhow::Error::msg)?;
        let primary_domain = match &config.server.primary_domain {
            Some(domain) => Domain::parse(domain)
                .map_err(|error| anyhow::anyhow!("server.primary_domain: {error}"))?,
            None => hostname.clone(),
        };
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
        let shared = Arc::new(Shared {
            driver: Arc::new(DriverContext {
                backend,
                tls: tokio_rustls::TlsAcceptor::from(loaded.config),
                router: RouterConfig::new(primary_domain),
                hostname: hostname.clone(),
            }),
            connections: Arc::new(Semaphore::new(config.server.max_connections)),
            shutdown_grace: Duration::from_secs(config.server.shutdown_grace_seconds),
        });
        let limits = Limits {
            recipients: config.smtp.max_recipients,
            message_size: config.smtp.max_message_size,
            transactions: config.smtp.max_messages_per_connection,
            ..Limits::default()
        };
        let (shutdown, watcher) = watch::channel(false);
        let mut listeners = JoinSet::new();
        let mut addresses = Vec::new();
        for name in ListenerName::ALL {
            let section = config.listener(name);
            if !section.enabled {
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
