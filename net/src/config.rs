//! The configuration file: one TOML document, every key with a default, so that no
//! file at all is a working setup on high loopback ports. Unknown keys and bad values
//! are errors that name the file, the line and the key path.

mod delivery;

pub use crate::dns::DnsSection;
pub use delivery::{DeliverySection, PathSection, QueueSection, Role};

use serde::Deserialize;
use sluice_core::login::LoginLimits;
use sluice_core::smtp::address::Domain;
use sluice_core::time::Duration as CoreDuration;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The whole configuration, after defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub storage: StorageSection,
    pub tls: TlsSection,
    pub smtp: SmtpSection,
    pub login: LoginSection,
    pub listeners: ListenersSection,
    pub queue: QueueSection,
    pub delivery: DeliverySection,
    pub dns: DnsSection,
    pub log: LogSection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Which tiers this process runs: all, gateway or backend.
    pub role: Role,
    pub hostname: String,
    /// Whose postmaster `RCPT TO:<Postmaster>` reaches; None: the hostname.
    pub primary_domain: Option<String>,
    pub data_dir: PathBuf,
    /// Connections open at once over all listeners.
    pub max_connections: usize,
    /// Seconds live sessions get to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Threads that run sessions and deliveries; None: see [`Config::worker_threads`].
    pub worker_threads: Option<usize>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            role: Role::All,
            hostname: "localhost".to_owned(),
            primary_domain: None,
            data_dir: PathBuf::from("sluice-data"),
            max_connections: 1000,
            shutdown_grace_seconds: 30,
            worker_threads: None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// None: a SQLite file in the data folder.
    pub url: Option<String>,
}

/// How message bodies are kept and cleaned up.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Bodies up to this many octets go into the database with their records
    /// (one commit); larger ones are files in the blob folder. 0: all files.
    pub inline_body_limit: usize,
    /// Seconds between garbage collections of unreferenced bodies (also run at start).
    pub garbage_interval_seconds: u64,
    /// A file without a row is removed only once this many seconds old.
    pub garbage_grace_seconds: u64,
    /// Records of copies written into local mailboxes (queue records, delivery
    /// keys) are deleted this many days after their message arrived; 0 keeps them.
    pub delivery_record_days: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            inline_body_limit: crate::store::DEFAULT_INLINE_BODY_LIMIT,
            garbage_interval_seconds: 3600,
            garbage_grace_seconds: 3600,
            delivery_record_days: 30,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
}

/// How failed logins slow the next answers (SMTP AUTH, IMAP, POP3 alike): per
/// user name and per client address, core's `login::LoginLimits`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSection {
    /// The wait after one failure, doubling with each further one; 0 turns the
    /// slowing off (the failures are still audited).
    pub first_delay_ms: u64,
    /// The longest wait.
    pub longest_delay_ms: u64,
    /// A name or address with no failure for this long is forgotten.
    pub forget_after_seconds: u64,
}

impl Default for LoginSection {
    fn default() -> Self {
        let limits = LoginLimits::default();
        LoginSection {
            first_delay_ms: limits.first_delay.as_millis(),
            longest_delay_ms: limits.longest_delay.as_millis(),
            forget_after_seconds: limits.forget_after.as_millis() / 1000,
        }
    }
}

impl LoginSection {
    /// Core's limits with these values.
    pub fn limits(&self) -> LoginLimits {
        LoginLimits {
            first_delay: CoreDuration::from_millis(self.first_delay_ms),
            longest_delay: CoreDuration::from_millis(
                self.longest_delay_ms.max(self.first_delay_ms),
            ),
            forget_after: CoreDuration::from_secs(self.forget_after_seconds),
            ..LoginLimits::default()
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSection {
    pub auth_requires_tls: bool,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Messages (MAIL commands) one connection may carry before the session says 421.
    pub max_messages_per_connection: u32,
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            auth_requires_tls: true,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_messages_per_connection: 100,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersSection {
    pub mx: ListenerSection,
    pub submission: ListenerSection,
    pub submissions: ListenerSection,
    /// Final delivery from gateways (RFC 2033); on by default in role backend only.
    pub lmtp: ListenerSection,
    /// POP3 with STLS (RFC 1939, RFC 2595); on by default in roles all and backend.
    pub pop3: ListenerSection,
    /// POP3 over implicit TLS (RFC 8314); on by default in roles all and backend.
    pub pop3s: ListenerSection,
    /// IMAP with STARTTLS (RFC 9051); on by default in roles all and backend.
    pub imap: ListenerSection,
    /// IMAP over implicit TLS (RFC 8314); on by default in roles all and backend.
    pub imaps: ListenerSection,
}

/// One listener. The address has no serde default because it differs per listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerSection {
    /// None: the role's default (see [`Config::listener_enabled`]).
    pub enabled: Option<bool>,
    pub address: Option<SocketAddr>,
    pub proxy_protocol: bool,
    pub max_connections_per_ip: usize,
}

impl Default for ListenerSection {
    fn default() -> Self {
        ListenerSection {
            enabled: None,
            address: None,
            proxy_protocol: false,
            max_connections_per_ip: 20,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info` or `sluice_net=debug`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// The listeners, by their configuration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerName {
    Mx,
    Submission,
    Submissions,
    Lmtp,
    Pop3,
    Pop3s,
    Imap,
    Imaps,
}

impl ListenerName {
    pub const ALL: [ListenerName; 8] = [
        ListenerName::Mx,
        ListenerName::Submission,
        ListenerName::Submissions,
        ListenerName::Lmtp,
        ListenerName::Pop3,
        ListenerName::Pop3s,
        ListenerName::Imap,
        ListenerName::Imaps,
    ];

    /// Whether the listener serves POP3 rather than SMTP, LMTP or IMAP.
    pub fn is_pop3(self) -> bool {
        matches!(self, ListenerName::Pop3 | ListenerName::Pop3s)
    }

    /// Whether the listener serves IMAP.
    pub fn is_imap(self) -> bool {
        matches!(self, ListenerName::Imap | ListenerName::Imaps)
    }

    /// Whether the listener serves mail retrieval (POP3 or IMAP): it needs the
    /// node's mailbox store.
    pub fn is_retrieval(self) -> bool {
        self.is_pop3() || self.is_imap()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListenerName::Mx => "mx",
            ListenerName::Submission => "submission",
            ListenerName::Submissions => "submissions",
            ListenerName::Lmtp => "lmtp",
            ListenerName::Pop3 => "pop3",
            ListenerName::Pop3s => "pop3s",
            ListenerName::Imap => "imap",
            ListenerName::Imaps => "imaps",
        }
    }

    /// High loopback ports, so that an unprivileged first run works.
    fn default_address(self) -> SocketAddr {
        let port = match self {
            ListenerName::Mx => 2525,
            ListenerName::Submission => 2587,
            ListenerName::Submissions => 2465,
            ListenerName::Lmtp => 2424,
            ListenerName::Pop3 => 2110,
            ListenerName::Pop3s => 2995,
            ListenerName::Imap => 2143,
            ListenerName::Imaps => 2993,
        };
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    /// The file at `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Config::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
                    file: path.to_path_buf(),
                    line: None,
                    key: None,
                    message: format!("cannot read: {error}"),
                })?;
                Config::parse(&text, path)
            }
        }
    }

    /// Parses and validates `text`; `file` only names the source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let span = error.span();
            let key = span.as_ref().and_then(|span| key_at(text, span));
            ConfigError {
                file: file.to_path_buf(),
                line: span.map(|span| line_of(text, span.start)),
                key,
                message: error.message().trim().to_owned(),
            }
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            file: file.to_path_buf(),
            line: line_of_key(text, key),
            key: Some(key.to_owned()),
            message,
        })?;
        Ok(config)
    }

    /// How many threads run sessions and deliveries on a machine with `cores`
    /// cores: `server.worker_threads` when set; else one per core, less one on
    /// SQLite, whose group commit runs on a thread of its own that keeps a core
    /// busy under load (a worker more than the cores left only adds wake-ups and
    /// context switches: 7 % more CPU per message in the bench at 10 sessions on
    /// 2 cores); at least one.
    pub fn worker_threads(&self, cores: usize) -> usize {
        let on_sqlite = self.database.url.as_deref().is_none_or(|url| {
            crate::store::SqlEngine::from_url(url) == Some(crate::store::SqlEngine::Sqlite)
        });
        let default = if on_sqlite {
            cores.saturating_sub(1)
        } else {
            cores
        };
        self.server.worker_threads.unwrap_or(default).max(1)
    }

    /// Checks that serde cannot express: relations between keys and value grammars.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.hostname()
            .map_err(|message| ("server.hostname", message))?;
        if let Some(domain) = &self.server.primary_domain
            && let Err(error) = Domain::parse(domain)
        {
            return Err((
                "server.primary_domain",
                format!("{domain:?} is not a domain: {error}"),
            ));
        }
        if let Some(threads) = self.server.worker_threads
            && !(1..=1024).contains(&threads)
        {
            return Err((
                "server.worker_threads",
                format!("{threads} is not between 1 and 1024"),
            ));
        }
        match (&self.tls.certificate, &self.tls.private_key) {
            (Some(_), None) => {
                return Err((
                    "tls.certificate",
                    "tls.private_key must be set with it".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "tls.private_key",
                    "tls.certificate must be set with it".to_owned(),
                ));
            }
            _ => {}
        }
        if self.smtp.max_recipients == 0 {
            return Err(("smtp.max_recipients", "must be at least 1".to_owned()));
        }
        if self.smtp.max_messages_per_connection == 0 {
            return Err((
                "smtp.max_messages_per_connection",
                "must be at least 1".to_owned(),
            ));
        }
        if self.smtp.max_message_size == 0 {
            return Err(("smtp.max_message_size", "must be at least 1".to_owned()));
        }
        if self.storage.inline_body_limit > crate::store::MAX_INLINE_BODY_LIMIT {
            return Err((
                "storage.inline_body_limit",
                format!("must be at most {}", crate::store::MAX_INLINE_BODY_LIMIT),
            ));
        }
        if self.storage.garbage_interval_seconds == 0 {
            return Err((
                "storage.garbage_interval_seconds",
                "must be at least 1".to_owned(),
            ));
        }
        let retention_days = self.storage.delivery_record_days;
        let expiry_days = self.queue.expire_after_seconds.div_ceil(86_400);
        if retention_days != 0 && retention_days < expiry_days {
            // A redelivery within the queue's lifetime must still find its key.
            return Err((
                "storage.delivery_record_days",
                format!(
                    "must be 0 (keep) or at least {expiry_days}, the days of \
                     queue.expire_after_seconds"
                ),
            ));
        }
        if retention_days > 36_500 {
            return Err((
                "storage.delivery_record_days",
                "must be at most 36500".to_owned(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(("server.max_connections", "must be at least 1".to_owned()));
        }
        for name in ListenerName::ALL {
            if self.listener(name).max_connections_per_ip == 0 {
                let key = match name {
                    ListenerName::Mx => "listeners.mx.max_connections_per_ip",
                    ListenerName::Submission => "listeners.submission.max_connections_per_ip",
                    ListenerName::Submissions => "listeners.submissions.max_connections_per_ip",
                    ListenerName::Lmtp => "listeners.lmtp.max_connections_per_ip",
                    ListenerName::Pop3 => "listeners.pop3.max_connections_per_ip",
                    ListenerName::Pop3s => "listeners.pop3s.max_connections_per_ip",
                    ListenerName::Imap => "listeners.imap.max_connections_per_ip",
                    ListenerName::Imaps => "listeners.imaps.max_connections_per_ip",
                };
                return Err((key, "must be at least 1".to_owned()));
            }
        }
        if let Some(url) = &self.database.url
            && !["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return Err((
                "database.url",
                "must start with sqlite:, postgres:// or mysql://".to_owned(),
            ));
        }
        self.queue
            .queue_config()
            .validate()
            .map_err(|error| (queue_key(error.field), error.to_string()))?;
        if self
            .delivery
            .tls
            .parse::<sluice_core::delivery::TlsPolicy>()
            .is_err()
        {
            return Err((
                "delivery.tls",
                format!(
                    "{:?} is not opportunistic, required or disabled",
                    self.delivery.tls
                ),
            ));
        }
        self.delivery.policy()?;
        self.delivery.relay_credentials()?;
        if self.server.role == Role::Gateway && self.delivery.backend()?.is_none() {
            return Err((
                "delivery.backend_lmtp",
                "role gateway needs the backend's LMTP service (\"HOST:PORT\")".to_owned(),
            ));
        }
        self.delivery.backend()?;
        crate::dns::OverrideTable::from_specs(&self.dns.overrides)
            .map_err(|error| ("dns.override", error.to_string()))?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(("log.level", format!("not a filter: {:?}", self.log.level)));
        }
        Ok(())
    }

    /// The server's name as the sessions announce it.
    pub fn hostname(&self) -> Result<Domain, String> {
        Domain::parse(&self.server.hostname)
            .map_err(|error| format!("{:?} is not a domain: {error}", self.server.hostname))
    }

    pub fn listener(&self, name: ListenerName) -> &ListenerSection {
        match name {
            ListenerName::Mx => &self.listeners.mx,
            ListenerName::Submission => &self.listeners.submission,
            ListenerName::Submissions => &self.listeners.submissions,
            ListenerName::Lmtp => &self.listeners.lmtp,
            ListenerName::Pop3 => &self.listeners.pop3,
            ListenerName::Pop3s => &self.listeners.pop3s,
            ListenerName::Imap => &self.listeners.imap,
            ListenerName::Imaps => &self.listeners.imaps,
        }
    }

    /// Whether a listener runs: as configured, else as the role has it (gateways and
    /// `all` receive SMTP; backends receive LMTP; mailboxes, in `all` and backends,
    /// are read over POP3 and IMAP).
    pub fn listener_enabled(&self, name: ListenerName) -> bool {
        self.listener(name).enabled.unwrap_or(match name {
            ListenerName::Lmtp => self.server.role == Role::Backend,
            name if name.is_retrieval() => self.server.role != Role::Gateway,
            _ => self.server.role != Role::Backend,
        })
    }

    pub fn listener_address(&self, name: ListenerName) -> SocketAddr {
        self.listener(name)
            .address
            .unwrap_or_else(|| name.default_address())
    }

    /// The database URL; a SQLite file is created when missing, as the default does.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) if url.starts_with("sqlite:") && !url.contains("mode=") => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}mode=rwc")
            }
            Some(url) => url.clone(),
            None => format!(
                "sqlite:{}?mode=rwc",
                self.server.data_dir.join("sluice.db").display()
            ),
        }
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.server.data_dir.join("blobs")
    }
}

/// The configuration key behind a field of core's queue configuration.
fn queue_key(field: &str) -> &'static str {
    match field {
        "schedule.first_retry" => "queue.first_retry_seconds",
        "schedule.max_retry_interval" => "queue.max_retry_interval_seconds",
        "schedule.expire_after" => "queue.expire_after_seconds",
        "schedule.delay_warning_after" => "queue.delay_warning_seconds",
        "limits.max_concurrent_per_destination" => "queue.max_attempts_per_destination",
        "limits.max_attempts_in_flight" => "queue.max_attempts",
        "limits.destination_rate.per_minute" | "limits.destination_rate.burst" => {
            "queue.max_attempts_per_minute"
        }
        "limits.max_received_headers" => "queue.max_received_headers",
        _ => "queue",
    }
}

/// A configuration error, displayed as `file:line: key: message`.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The dotted key path, e.g. `listeners.mx.address`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count()
        + 1
}

/// The dotted path of the deepest key whose name or value covers `span`.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_key(document.get_ref(), span.start, &mut path).then(|| path.join("."))
}

fn find_key(table: &toml::de::DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        // Tables opened by a `[header]` do not span their keys, so look inside first.
        if let Some(inner) = value.get_ref().as_table()
            && find_key(inner, offset, path)
        {
            return true;
        }
        if key.span().contains(&offset) || value.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

/// The line of the key at `dotted`, if the file sets it.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, value) = table.iter().find(|(key, _)| key.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some(line_of(text, key.span().start));
        }
        table = value.get_ref().as_table()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> ConfigError {
        match Config::parse(text, Path::new("sluice.toml")) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn no_file_means_every_default() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.server.hostname, "localhost");
        assert_eq!(
            config.listener_address(ListenerName::Mx).to_string(),
            "127.0.0.1:2525"
        );
        assert_eq!(
            config.database_url(),
            "sqlite:sluice-data/sluice.db?mode=rwc"
        );
    }

    #[test]
    fn a_sqlite_file_is_created_unless_the_url_says_otherwise() {
        let parse = |text: &str| Config::parse(text, Path::new("x.toml")).unwrap();
        let url = parse("[database]\nurl = \"sqlite:d/s.db\"\n").database_url();
        assert_eq!(url, "sqlite:d/s.db?mode=rwc");
        let url = parse("[database]\nurl = \"sqlite:d/s.db?mode=ro\"\n").database_url();
        assert_eq!(url, "sqlite:d/s.db?mode=ro");
        let url = parse("[database]\nurl = \"postgres://u@h/db\"\n").database_url();
        assert_eq!(url, "postgres://u@h/db");
    }

    #[test]
    fn a_partial_listener_keeps_its_own_default_address() {
        let config = Config::parse(
            "[listeners.submissions]\nproxy_protocol = true\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert!(config.listeners.submissions.proxy_protocol);
        assert_eq!(
            config
                .listener_address(ListenerName::Submissions)
                .to_string(),
            "127.0.0.1:2465"
        );
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let error = error_of("[server]\nhostname = \"mx.test\"\n\n[listeners.mx]\nport = 25\n");
        assert_eq!(error.line, Some(5));
        assert_eq!(error.key.as_deref(), Some("listeners.mx.port"));
        assert!(
            error
                .to_string()
                .starts_with("sluice.toml:5: listeners.mx.port: ")
        );
        assert!(error.message.contains("unknown field"), "{}", error.message);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let error = error_of("[listeners.submission]\naddress = \"nowhere\"\n");
        assert_eq!(error.line, Some(2));
        assert_eq!(error.key.as_deref(), Some("listeners.submission.address"));
        let error = error_of("[log]\nformat = \"xml\"\n");
        assert_eq!(error.key.as_deref(), Some("log.format"));
        let error = error_of("[smtp]\nmax_recipients = \"many\"\n");
        assert_eq!(error.key.as_deref(), Some("smtp.max_recipients"));
    }

    #[test]
    fn validation_errors_name_the_line_of_their_key() {
        let error = error_of("# comment\n[server]\n\nhostname = \"not a host!\"\n");
        assert_eq!(error.line, Some(4));
        assert_eq!(error.key.as_deref(), Some("server.hostname"));
        let error = error_of("[tls]\ncertificate = \"/c.pem\"\n");
        assert_eq!(error.key.as_deref(), Some("tls.certificate"));
        assert_eq!(error.line, Some(2));
        let error = error_of("[smtp]\nmax_recipients = 5\nmax_messages_per_connection = 0\n");
        assert_eq!(
            error.key.as_deref(),
            Some("smtp.max_messages_per_connection")
        );
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn storage_keys_have_defaults_and_bounds() {
        let parse = |text: &str| Config::parse(text, Path::new("x.toml")).unwrap();
        let config = parse("");
        assert_eq!(config.storage.inline_body_limit, 64 * 1024);
        assert_eq!(config.storage.garbage_interval_seconds, 3600);
        assert_eq!(config.storage.garbage_grace_seconds, 3600);
        let config = parse("[storage]\ninline_body_limit = 0\ngarbage_grace_seconds = 0\n");
        assert_eq!(config.storage.inline_body_limit, 0);
        assert_eq!(config.storage.garbage_grace_seconds, 0);
        let error = error_of("[storage]\n\ninline_body_limit = 1048577\n");
        assert_eq!(error.key.as_deref(), Some("storage.inline_body_limit"));
        assert_eq!(error.line, Some(3));
        let error = error_of("[storage]\ngarbage_interval_seconds = 0\n");
        assert_eq!(
            error.key.as_deref(),
            Some("storage.garbage_interval_seconds")
        );
        assert_eq!(config.storage.delivery_record_days, 30);
        assert_eq!(
            parse("[storage]\ndelivery_record_days = 0\n")
                .storage
                .delivery_record_days,
            0
        );
        // Shorter than the queue keeps a message: a redelivery could go in twice.
        let error = error_of("[storage]\ndelivery_record_days = 4\n");
        assert_eq!(error.key.as_deref(), Some("storage.delivery_record_days"));
        assert!(error.to_string().contains("at least 5"), "{error}");
        let config =
            parse("[storage]\ndelivery_record_days = 2\n[queue]\nexpire_after_seconds = 86400\n");
        assert_eq!(config.storage.delivery_record_days, 2);
    }

    #[test]
    fn roles_choose_the_default_listeners() {
        let parse = |text: &str| Config::parse(text, Path::new("x.toml")).unwrap();
        let all = parse("");
        assert!(all.listener_enabled(ListenerName::Mx));
        assert!(!all.listener_enabled(ListenerName::Lmtp));
        let backend = parse("[server]\nrole = \"backend\"\n");
        assert!(!backend.listener_enabled(ListenerName::Mx));
        assert!(backend.listener_enabled(ListenerName::Lmtp));
        assert!(all.listener_enabled(ListenerName::Pop3));
        assert!(backend.listener_enabled(ListenerName::Pop3s));
        let gateway =
            parse("[server]\nrole = \"gateway\"\n\n[delivery]\nbackend_lmtp = \"127.0.0.1:24\"\n");
        assert!(!gateway.listener_enabled(ListenerName::Pop3));
        assert_eq!(
            all.listener_address(ListenerName::Pop3s).to_string(),
            "127.0.0.1:2995"
        );
        let error = error_of("[listeners.pop3]\nstarttls = true\n");
        assert_eq!(error.key.as_deref(), Some("listeners.pop3.starttls"));
        let forced = parse("[listeners.lmtp]\nenabled = true\n");
        assert!(forced.listener_enabled(ListenerName::Lmtp));
    }

    #[test]
    fn a_gateway_needs_its_backend_and_delivery_keys_are_checked() {
        let error = error_of("[server]\nrole = \"gateway\"\n");
        assert_eq!(error.key.as_deref(), Some("delivery.backend_lmtp"));
        Config::parse(
            "[server]\nrole = \"gateway\"\n[delivery]\nbackend_lmtp = \"127.0.0.1:2424\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let error = error_of("[delivery]\nbackend_lmtp = \"nowhere\"\n");
        assert_eq!(error.key.as_deref(), Some("delivery.backend_lmtp"));
        let error = error_of(
            "[[delivery.path]]\ndomains = [\".example.org\"]\npath = \"relay\"\nrelay = \"r.test\"\n",
        );
        assert_eq!(error.key.as_deref(), Some("delivery.path"));
        assert!(
            error.message.contains("write subdomains as"),
            "{}",
            error.message
        );
        let error = error_of("[delivery]\ntls = \"sometimes\"\n");
        assert_eq!(error.key.as_deref(), Some("delivery.tls"));
        let error = error_of("[queue]\nfirst_retry_seconds = 0\n");
        assert_eq!(error.key.as_deref(), Some("queue.first_retry_seconds"));
        assert_eq!(error.line, Some(2));
        let error = error_of("[dns.override.\"x.test\"]\nmx = [\"ten mx.x.test\"]\n");
        assert_eq!(error.key.as_deref(), Some("dns.override"));
    }

    #[test]
    fn a_strict_default_tls_policy_covers_every_domain() {
        let config =
            Config::parse("[delivery]\ntls = \"required\"\n", Path::new("x.toml")).unwrap();
        let destination = config
            .delivery
            .policy()
            .unwrap()
            .destination_for("far.test");
        assert_eq!(destination.tls, sluice_core::delivery::TlsPolicy::Required);
        assert_eq!(
            destination.path,
            sluice_core::delivery::DeliveryPath::Mx {
                domain: "far.test".to_owned()
            }
        );
    }

    #[test]
    fn relay_credentials_are_checked_and_read_from_their_file() {
        const RELAY: &str = "[[delivery.path]]\ndomains = [\"*\"]\npath = \"relay\"\n\
                             relay = \"smart.example:587\"\n";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.password");
        std::fs::write(&file, "from the file\nignored\n").unwrap();
        let text = format!(
            "{RELAY}username = \"u\"\npassword_file = \"{}\"\n",
            file.display()
        );
        let config = Config::parse(&text, Path::new("x.toml")).unwrap();
        let credentials = config.delivery.relay_credentials().unwrap();
        let relay = sluice_core::delivery::DeliveryPath::Relay {
            host: "smart.example".to_owned(),
            port: 587,
        };
        let auth = credentials.for_path(&relay).unwrap();
        assert_eq!(auth.password.expose(), "from the file");
        assert!(!auth.plaintext_allowed);
        // Half-given credentials, credentials off a relay, and misspelt keys fail.
        let error = error_of(&format!("{RELAY}username = \"u\"\n"));
        assert_eq!(error.key.as_deref(), Some("delivery.path.password"));
        let error = error_of(&format!("{RELAY}password = \"p\"\n"));
        assert_eq!(error.key.as_deref(), Some("delivery.path.username"));
        let error = error_of(
            "[[delivery.path]]\ndomains = [\"*\"]\npath = \"mx\"\n\
             username = \"u\"\npassword = \"p\"\n",
        );
        assert_eq!(error.key.as_deref(), Some("delivery.path.username"));
        let error = error_of(&format!("{RELAY}username = \"u\"\npasswd = \"p\"\n"));
        assert!(error.message.contains("unknown field"), "{}", error.message);
        let missing = dir.path().join("missing");
        let error = error_of(&format!(
            "{RELAY}username = \"u\"\npassword_file = \"{}\"\n",
            missing.display()
        ));
        assert_eq!(error.key.as_deref(), Some("delivery.path.password_file"));
        // The password never shows in an error.
        let error = error_of(&format!(
            "{RELAY}username = \"u\"\npassword = \"hunter2\"\npassword_file = \"{}\"\n",
            file.display()
        ));
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn the_example_file_is_valid_and_documents_every_key() {
        let text = include_str!("../sluice.example.toml");
        Config::parse(text, Path::new("sluice.example.toml")).unwrap();
        for key in [
            "hostname",
            "primary_domain",
            "data_dir",
            "max_connections",
            "shutdown_grace_seconds",
            "worker_threads",
            "url",
            "inline_body_limit",
            "garbage_interval_seconds",
            "garbage_grace_seconds",
            "delivery_record_days",
            "certificate",
            "private_key",
            "auth_requires_tls",
            "max_message_size",
            "max_recipients",
            "max_messages_per_connection",
            "enabled",
            "address",
            "proxy_protocol",
            "max_connections_per_ip",
            "format",
            "level",
            "role",
            "first_retry_seconds",
            "max_retry_interval_seconds",
            "expire_after_seconds",
            "delay_warning_seconds",
            "max_attempts_per_destination",
            "max_attempts",
            "max_attempts_per_minute",
            "max_received_headers",
            "notice_return_limit",
            "backend_lmtp",
            "mx_port",
            "tls",
            "connect_timeout_seconds",
            "ca_file",
            "domains",
            "path",
            "relay",
            "username",
            "password",
            "password_file",
            "plaintext_auth",
            "nameservers",
            "timeout_seconds",
            "attempts",
            "mx",
            "addresses",
        ] {
            assert!(text.contains(&format!("{key} =")), "{key} undocumented");
        }
    }
    #[test]
    fn workers_default_to_the_cores_less_the_sqlite_writer() {
        let sqlite = Config::default();
        assert_eq!(sqlite.worker_threads(8), 7);
        assert_eq!(sqlite.worker_threads(2), 1);
        assert_eq!(sqlite.worker_threads(1), 1, "never none");
        let mut file = Config::default();
        file.database.url = Some("sqlite:/var/lib/sluice/sluice.db".to_owned());
        assert_eq!(file.worker_threads(4), 3);
        let mut postgres = Config::default();
        postgres.database.url = Some("postgres://sluice@db/mail".to_owned());
        assert_eq!(postgres.worker_threads(4), 4, "no writer thread of ours");
        let mut set = Config::default();
        set.server.worker_threads = Some(6);
        assert_eq!(set.worker_threads(2), 6);
    }

    #[test]
    fn zero_worker_threads_is_refused_by_name() {
        let error = Config::parse("[server]\nworker_threads = 0\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("server.worker_threads"), "{error}");
    }
}
