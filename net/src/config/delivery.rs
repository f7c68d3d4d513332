//! The delivery side of the configuration: the node's role, the queue's retry
//! schedule and limits, and where mail goes (the MX port, relays, the backend's LMTP
//! service, and the credentials of relays that require AUTH). DNS has its own section type in `crate::dns`; DKIM keys are the files
//! `sluice dkim generate` writes into the data folder.

use serde::Deserialize;

/// Which tiers this process runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Gateway and backend in one process: the embedded single-node setup.
    #[default]
    All,
    /// MX and submission; local-domain mail goes to the backend over LMTP.
    Gateway,
    /// Mailboxes, fed over LMTP.
    Backend,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Gateway => "gateway",
            Role::Backend => "backend",
        }
    }
}

/// `[queue]`: the retry schedule and the queue's limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    /// Seconds from the first temporary failure to the first retry.
    pub first_retry_seconds: u64,
    /// Each retry interval doubles up to this many seconds.
    pub max_retry_interval_seconds: u64,
    /// Seconds after arrival at which a recipient still not delivered fails.
    pub expire_after_seconds: u64,
    /// Seconds after arrival at which senders who asked get a delay notice; 0: never.
    pub delay_warning_seconds: u64,
    /// Delivery attempts in flight at once to one destination.
    pub max_attempts_per_destination: u32,
    /// Attempts started per minute to one destination; 0: no limit.
    pub max_attempts_per_minute: u32,
    /// Delivery attempts in flight at once over all destinations.
    pub max_attempts: usize,
    /// A message with more Received headers than this fails as a mail loop.
    pub max_received_headers: u32,
    /// Largest original returned whole in a failure notice; above it, headers only.
    pub notice_return_limit: usize,
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            first_retry_seconds: 300,
            max_retry_interval_seconds: 3600,
            expire_after_seconds: 5 * 24 * 3600,
            delay_warning_seconds: 4 * 3600,
            max_attempts_per_destination: 20,
            max_attempts_per_minute: 0,
            max_attempts: 500,
            max_received_headers: 50,
            notice_return_limit: sluice_core::notice::DEFAULT_RETURN_LIMIT,
        }
    }
}

/// `[delivery]`: where mail leaves to.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// Role gateway: the backend's LMTP service, "HOST:PORT".
    pub backend_lmtp: Option<String>,
    /// The port MX hosts are contacted on (25; tests and private networks may differ).
    pub mx_port: u16,
    /// STARTTLS policy where no route says otherwise: opportunistic, required, disabled.
    pub tls: String,
    /// Seconds to wait for a TCP connection to a remote host.
    pub connect_timeout_seconds: u64,
    /// Seconds an idle delivery connection waits in the pool for the next message
    /// to its host before QUIT.
    pub pool_idle_seconds: u64,
    /// Extra trust anchors (PEM) for tls = "required", beside the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// Rules per recipient-domain pattern: a relay, an LMTP service, or MX with a TLS
    /// policy. The most specific pattern wins; other domains go to their MX hosts.
    pub path: Vec<PathSection>,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            backend_lmtp: None,
            mx_port: 25,
            tls: "opportunistic".to_owned(),
            connect_timeout_seconds: 30,
            pool_idle_seconds: 5,
            ca_file: None,
            path: Vec::new(),
        }
    }
}

/// One `[[delivery.path]]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathSection {
    /// `example.org`, `*.example.org` (its subdomains) or `*` (every domain).
    pub domains: Vec<String>,
    /// mx, relay or lmtp.
    pub path: String,
    /// With path = "relay": "HOST:PORT" (port 25 when left out).
    pub relay: Option<String>,
    /// With path = "lmtp": "HOST:PORT".
    pub lmtp: Option<String>,
    /// opportunistic, required or disabled; delivery.tls when left out.
    pub tls: Option<String>,
    /// With path = "relay": the AUTH username (RFC 4954), with `password` or
    /// `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// A file holding the password on its first line, so that this file need not.
    pub password_file: Option<std::path::PathBuf>,
    /// Allow AUTH on a connection without TLS (a relay on a trusted network).
    pub plaintext_auth: bool,
}

impl PathSection {
    /// The password, read from `password_file` when the table names one; giving
    /// both is an error.
    fn password(&self) -> Result<Option<String>, (&'static str, String)> {
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => Err((
                "delivery.path.password_file",
                "give password or password_file, not both".to_owned(),
            )),
            (Some(password), None) => Ok(Some(password.clone())),
            (None, Some(file)) => read_password_file(file).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The table as core reads it, with its password once read.
    fn table<'a>(&'a self, password: Option<&'a str>) -> sluice_core::delivery::PathTable<'a> {
        sluice_core::delivery::PathTable {
            domains: &self.domains,
            path: &self.path,
            relay: self.relay.as_deref(),
            lmtp: self.lmtp.as_deref(),
            tls: self.tls.as_deref(),
            username: self.username.as_deref(),
            password,
            plaintext_auth: self.plaintext_auth,
        }
    }
}

/// The first line of a password file, without its line ending. The error names the
/// file, never its content.
fn read_password_file(path: &std::path::Path) -> Result<String, (&'static str, String)> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        (
            "delivery.path.password_file",
            format!("cannot read {}: {error}", path.display()),
        )
    })?;
    let password = text.lines().next().unwrap_or("");
    if password.is_empty() {
        return Err((
            "delivery.path.password_file",
            format!("{} has an empty first line", path.display()),
        ));
    }
    Ok(password.to_owned())
}

impl QueueSection {
    /// The queue machine's configuration; core validates it.
    pub fn queue_config(&self) -> sluice_core::queue::QueueConfig {
        use sluice_core::queue::{AttemptRate, QueueConfig};
        use sluice_core::time::Duration;
        let mut config = QueueConfig::default();
        config.schedule.first_retry = Duration::from_secs(self.first_retry_seconds);
        config.schedule.max_retry_interval = Duration::from_secs(self.max_retry_interval_seconds);
        config.schedule.expire_after = Duration::from_secs(self.expire_after_seconds);
        config.schedule.delay_warning_after = (self.delay_warning_seconds > 0)
            .then(|| Duration::from_secs(self.delay_warning_seconds));
        config.limits.max_concurrent_per_destination = self.max_attempts_per_destination;
        config.limits.max_attempts_in_flight = self.max_attempts;
        config.limits.max_received_headers = self.max_received_headers;
        config.limits.destination_rate =
            (self.max_attempts_per_minute > 0).then_some(AttemptRate {
                per_minute: self.max_attempts_per_minute,
                burst: self.max_attempts_per_minute,
            });
        config
    }

    /// How this node's notices are written, reported by `hostname`.
    pub fn notice_settings(
        &self,
        hostname: sluice_core::smtp::address::Domain,
    ) -> sluice_core::node::NoticeSettings {
        sluice_core::node::NoticeSettings {
            reporting_mta: hostname,
            return_limit: self.notice_return_limit,
        }
    }
}

impl DeliverySection {
    /// The delivery policy core's placement consults (core reads the tables).
    pub fn policy(&self) -> Result<sluice_core::delivery::DeliveryPolicy, (&'static str, String)> {
        let tables: Vec<_> = self
            .path
            .iter()
            .map(|section| section.table(None))
            .collect();
        sluice_core::delivery::tables::delivery_policy(&tables, &self.tls)
            .map_err(|error| (error.key(), error.to_string()))
    }

    /// The credentials of the relays that require AUTH, password files read (core
    /// reads the tables).
    pub fn relay_credentials(
        &self,
    ) -> Result<sluice_core::delivery::RelayCredentials, (&'static str, String)> {
        let passwords = self
            .path
            .iter()
            .map(PathSection::password)
            .collect::<Result<Vec<_>, _>>()?;
        let tables: Vec<_> = self
            .path
            .iter()
            .zip(&passwords)
            .map(|(section, password)| section.table(password.as_deref()))
            .collect();
        sluice_core::delivery::tables::relay_credentials(&tables)
            .map_err(|error| (error.key(), error.to_string()))
    }

    /// Role gateway: the backend's LMTP service as host and port.
    pub fn backend(&self) -> Result<Option<(String, u16)>, (&'static str, String)> {
        self.backend_lmtp
            .as_deref()
            .map(|text| {
                sluice_core::delivery::path::parse_host_port(text, None)
                    .map_err(|error| ("delivery.backend_lmtp", error.to_string()))
            })
            .transpose()
    }
}
