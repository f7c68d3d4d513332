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
    /// This rule's AUTH credentials, if it has any; half-given ones are an error.
    fn client_auth(
        &self,
    ) -> Result<Option<sluice_core::smtp::client::ClientAuth>, (&'static str, String)> {
        use sluice_core::smtp::client::{ClientAuth, Password};
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err((
                    "delivery.path.password_file",
                    "give password or password_file, not both".to_owned(),
                ));
            }
            (Some(password), None) => Some(password.clone()),
            (None, Some(file)) => Some(read_password_file(file)?),
            (None, None) => None,
        };
        match (&self.username, password) {
            (Some(username), Some(password)) if !username.is_empty() => Ok(Some(ClientAuth {
                username: username.clone(),
                password: Password::new(password),
                plaintext_allowed: self.plaintext_auth,
            })),
            (Some(_), Some(_)) => Err(("delivery.path.username", "must not be empty".to_owned())),
            (Some(_), None) => Err((
                "delivery.path.password",
                "a username needs password or password_file".to_owned(),
            )),
            (None, Some(_)) => Err((
                "delivery.path.username",
                "a password needs a username".to_owned(),
            )),
            (None, None) if self.plaintext_auth => Err((
                "delivery.path.plaintext_auth",
                "only means something with a username and password".to_owned(),
            )),
            (None, None) => Ok(None),
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
    /// The delivery policy core's placement consults.
    pub fn policy(&self) -> Result<sluice_core::delivery::DeliveryPolicy, (&'static str, String)> {
        use sluice_core::delivery::{DeliveryPolicy, RuleText};
        let mut rules = Vec::new();
        for section in &self.path {
            if section.domains.is_empty() {
                return Err((
                    "delivery.path",
                    "a rule needs at least one entry in domains".to_owned(),
                ));
            }
            let address = match section.path.as_str() {
                "relay" => section.relay.as_deref(),
                "lmtp" => section.lmtp.as_deref(),
                _ => None,
            };
            for pattern in &section.domains {
                rules.push(RuleText {
                    pattern,
                    path: &section.path,
                    address,
                    tls: section.tls.as_deref().or(Some(self.tls.as_str())),
                });
            }
        }
        // A stricter default TLS policy covers the domains no rule names.
        let covers_every_domain = self
            .path
            .iter()
            .any(|section| section.domains.iter().any(|d| d == "*"));
        if self.tls != "opportunistic" && !covers_every_domain {
            rules.push(RuleText {
                pattern: "*",
                path: "mx",
                address: None,
                tls: Some(self.tls.as_str()),
            });
        }
        DeliveryPolicy::parse(rules).map_err(|error| ("delivery.path", error.to_string()))
    }

    /// The credentials of the relays that require AUTH, password files read.
    pub fn relay_credentials(
        &self,
    ) -> Result<sluice_core::delivery::RelayCredentials, (&'static str, String)> {
        use sluice_core::delivery::RelayCredentials;
        use sluice_core::delivery::path::parse_host_port;
        let mut credentials = RelayCredentials::default();
        for section in &self.path {
            let Some(auth) = section.client_auth()? else {
                continue;
            };
            let Some(relay) = section.relay.as_deref().filter(|_| section.path == "relay") else {
                return Err((
                    "delivery.path.username",
                    "credentials are for path = \"relay\" only".to_owned(),
                ));
            };
            let (host, port) = parse_host_port(relay, Some(25))
                .map_err(|error| ("delivery.path.relay", error.to_string()))?;
            credentials
                .insert(&host, port, auth)
                .map_err(|error| ("delivery.path.username", error.to_string()))?;
        }
        Ok(credentials)
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
