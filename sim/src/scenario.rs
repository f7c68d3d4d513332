//! Scenario files (TOML, `scenarios/*.toml`): topology, workload, fault mix and
//! intensities, duration and the guarantees that must hold. Unknown keys are
//! refused with the file and key named, so a typo never silently means "default".
//! Probabilities are written as fractions (0.01) and kept as parts per million,
//! so every draw from the seed is integer arithmetic.

use serde::Deserialize;
use std::path::Path;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seconds of workload and faults.
    pub duration_secs: u64,
    /// Seconds after that with no new mail and no new faults (crashed hosts restart,
    /// partitions heal) for queues to drain before the checkers look.
    #[serde(default = "default_drain")]
    pub drain_secs: u64,
    #[serde(default)]
    pub topology: Topology,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub disk: Disk,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub remote: Remote,
    #[serde(default)]
    pub crashes: Crashes,
    #[serde(default)]
    pub queue: Queue,
    #[serde(default)]
    pub guarantees: Guarantees,
    #[serde(default)]
    pub dkim: Dkim,
    /// `[[delivery.path]]` rules, as in net's configuration.
    #[serde(default)]
    pub delivery: Delivery,
    /// The simulated relays the rules name.
    #[serde(default)]
    pub relay: Relay,
    /// Pick a random mix of every fault per seed (intensities up to the ones given).
    #[serde(default)]
    pub swarm: bool,
    /// IMAP clients reading the mailboxes while mail arrives.
    #[serde(default)]
    pub retrieval: Retrieval,
}

fn default_drain() -> u64 {
    6 * 3600
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// Gateway hosts (role gateway) behind the load balancer; 0 means one host of
    /// role `all` that takes mail and holds the mailboxes.
    pub gateways: u32,
    /// Backend hosts (role backend) holding the mailboxes, reached over LMTP. One is
    /// used when there are gateways.
    pub backends: u32,
    pub local_domain: String,
    pub users: u32,
    /// External domains, each with one remote mail server.
    pub remote_domains: u32,
    /// Seconds between the load balancer's health checks.
    pub health_check_secs: u64,
    /// Groups (distribution lists) `team<k>@` the local domain; each member gets a copy.
    pub groups: u32,
    /// Members per group, local users taken in turn.
    pub group_size: u32,
    /// Whether the local domain has a catch-all (`user1@`) for unknown local parts;
    /// without one, unknown local parts are refused at RCPT.
    pub catch_all: bool,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            gateways: 2,
            backends: 1,
            local_domain: "sluice.test".to_owned(),
            users: 10,
            remote_domains: 2,
            health_check_secs: 10,
            groups: 0,
            group_size: 3,
            catch_all: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Messages offered, at uniformly random times within the duration.
    pub messages: u32,
    /// Recipients per message, 1..=this.
    pub max_recipients: u32,
    /// Fraction of recipients in external domains (needs an authenticated or local sender).
    pub external_fraction: f64,
    /// Fraction of messages whose sender is external (MX senders); the rest are local users.
    pub external_sender_fraction: f64,
    /// Fraction of messages from authenticated submitters (local users on the
    /// submission listener), whose external recipients are addressed directly.
    pub submitter_fraction: f64,
    /// Fraction of messages with the null reverse-path (bounces from elsewhere).
    pub null_sender_fraction: f64,
    /// Fraction of messages from an unauthenticated client to an external recipient:
    /// relay attempts that must be refused.
    pub relay_attempt_fraction: f64,
    pub min_size: u32,
    pub max_size: u32,
    /// How many times a client tries one message before giving up.
    pub client_attempts: u32,
    /// Fraction of recipients with a DSN NOTIFY parameter (RFC 3461): NEVER, or
    /// FAILURE with SUCCESS and DELAY drawn at random.
    pub dsn_fraction: f64,
    /// Fraction of messages that also name a group address (needs `topology.groups`).
    pub group_fraction: f64,
    /// Fraction of messages that also name an unknown local part: delivered to the
    /// catch-all if the domain has one, else refused at RCPT.
    pub unknown_local_fraction: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            messages: 20,
            max_recipients: 3,
            external_fraction: 0.3,
            external_sender_fraction: 0.3,
            null_sender_fraction: 0.0,
            submitter_fraction: 0.0,
            relay_attempt_fraction: 0.0,
            min_size: 200,
            max_size: 4000,
            client_attempts: 20,
            dsn_fraction: 0.3,
            group_fraction: 0.0,
            unknown_local_fraction: 0.0,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Chance per segment of a long-tail latency, up to `latency_tail_ms_max`.
    pub latency_tail: f64,
    pub latency_tail_ms_max: u64,
    /// Chance per segment that it is lost and retransmitted (extra latency).
    pub loss: f64,
    /// Chance per segment that the connection is reset.
    pub reset: f64,
    /// Partitions during the duration, each between two random hosts.
    pub partitions: u32,
    pub partition_secs_max: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms_min: 1,
            latency_ms_max: 40,
            latency_tail: 0.0,
            latency_tail_ms_max: 5000,
            loss: 0.0,
            reset: 0.0,
            partitions: 0,
            partition_secs_max: 300,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Disk {
    pub fsync_ms_min: u64,
    pub fsync_ms_max: u64,
    /// Chance that an fsync fails (an I/O error: the write is not made).
    pub error: f64,
    /// Windows during which a random host's disk is full.
    pub full_windows: u32,
    pub full_secs_max: u64,
}

impl Default for Disk {
    fn default() -> Self {
        Disk {
            fsync_ms_min: 1,
            fsync_ms_max: 20,
            error: 0.0,
            full_windows: 0,
            full_secs_max: 300,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Chance that one lookup fails temporarily (SERVFAIL).
    pub failure: f64,
    /// Chance that one lookup times out (answered as a temporary failure, late).
    pub timeout: f64,
    /// Outages (every lookup fails) during the duration.
    pub outages: u32,
    pub outage_secs_max: u64,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            failure: 0.0,
            timeout: 0.0,
            outages: 0,
            outage_secs_max: 600,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Remote {
    /// Chance per recipient of a 4xx at RCPT.
    pub temporary: f64,
    /// Share of remote addresses that refuse for good (5xx), fixed per address.
    pub permanent: f64,
    /// Remote temporary failures stop after this many seconds (recovery), if set.
    pub recover_after_secs: Option<u64>,
    /// First contact of each (sender, recipient) gets a 4xx.
    pub greylisting: bool,
    /// Most extra milliseconds a remote takes to answer a store.
    pub slow_ms_max: u64,
    /// Chance per message that the remote never answers the end of data.
    pub hang: f64,
    /// Chance per message that the remote closes the connection instead of answering
    /// the end of data (half of these after having stored it).
    pub close_mid_data: f64,
    /// Remote servers that are down during the whole duration.
    pub down: u32,
    /// Chance per connection that a remote advertises STARTTLS it cannot do.
    pub lie_about_extensions: f64,
    /// A remote closes a connection idle this many seconds (421, then close), if set:
    /// shorter than the pool's idle time, pooled connections go stale.
    pub idle_close_secs: Option<u64>,
}

impl Default for Remote {
    fn default() -> Self {
        Remote {
            temporary: 0.0,
            permanent: 0.0,
            recover_after_secs: None,
            greylisting: false,
            slow_ms_max: 0,
            hang: 0.0,
            close_mid_data: 0.0,
            down: 0,
            lie_about_extensions: 0.0,
            idle_close_secs: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Crashes {
    /// Crashes of random gateways (or of the `all` host) during the duration.
    pub gateway: u32,
    pub backend: u32,
    pub restart_secs_min: u64,
    pub restart_secs_max: u64,
    /// Chance that a host crashes right when it is asked to store a message (during
    /// DATA, before the write is durable).
    pub on_store: f64,
    /// Chance that a host crashes right after its 250 (after the promise, before delivery).
    pub after_promise: f64,
    /// Chance that a crash is silent: peers get no reset and find out by timeout.
    pub silent: f64,
    /// Gateways down for the whole duration (behind the load balancer).
    pub gateways_down: u32,
    /// Clock jumps of random hosts during the duration.
    pub clock_jumps: u32,
    pub clock_jump_secs_max: u64,
}

impl Default for Crashes {
    fn default() -> Self {
        Crashes {
            gateway: 0,
            backend: 0,
            restart_secs_min: 5,
            restart_secs_max: 120,
            on_store: 0.0,
            after_promise: 0.0,
            silent: 0.0,
            gateways_down: 0,
            clock_jumps: 0,
            clock_jump_secs_max: 600,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    pub first_retry_secs: u64,
    pub backoff_factor: u32,
    pub max_retry_secs: u64,
    pub expire_after_secs: u64,
    /// Delay notices this long after arrival (NOTIFY=DELAY, or no NOTIFY); none if unset.
    pub delay_warning_secs: Option<u64>,
    /// How long an idle delivery connection waits in the pool for the next message
    /// (net's pool: 5 seconds).
    pub pool_idle_secs: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            first_retry_secs: 60,
            backoff_factor: 2,
            max_retry_secs: 900,
            expire_after_secs: 4 * 3600,
            delay_warning_secs: None,
            pool_idle_secs: 5,
        }
    }
}

/// `[retrieval]`: simulated IMAP clients, one per user from `user1@` on, connected
/// to the host that holds the mailboxes (the backend, or the `all` host). Each
/// logs in, selects INBOX and, with a think time between commands, lists its folder,
/// stores flags, moves to Archive, expunges, idles and switches folders, reconnecting
/// after a crash. None by default: a scenario without the section draws nothing
/// for them, so its runs stay as they were.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retrieval {
    pub clients: u32,
    /// Seconds between two commands of a client, drawn up to this.
    pub think_secs_max: u64,
    /// How long one IDLE lasts, drawn between the two.
    pub idle_secs_min: u64,
    pub idle_secs_max: u64,
    /// How long after a delivery an idling client must have heard of it.
    pub idle_bound_secs: u64,
}

impl Default for Retrieval {
    fn default() -> Self {
        Retrieval {
            clients: 0,
            think_secs_max: 20,
            idle_secs_min: 30,
            idle_secs_max: 300,
            idle_bound_secs: 20,
        }
    }
}

/// DKIM signing of outgoing mail (net's `<data_dir>/dkim/` keys): the sending
/// domains given a key, each an Ed25519 key derived from the seed and published in
/// the simulated DNS under `<selector>._domainkey.<domain>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim {
    pub domains: Vec<String>,
    pub selector: String,
}

impl Default for Dkim {
    fn default() -> Self {
        Dkim {
            domains: Vec::new(),
            selector: "sim".to_owned(),
        }
    }
}

/// `[delivery]`: where the gateways send external mail, in the shape of net's
/// `[delivery]` section (its `path` tables only), read by the same core code.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub path: Vec<PathRule>,
}

/// One `[[delivery.path]]` table: net's keys, without `password_file` (the
/// simulation has no files).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathRule {
    pub domains: Vec<String>,
    pub path: String,
    pub relay: Option<String>,
    pub lmtp: Option<String>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub plaintext_auth: bool,
}

/// A relay (smarthost) a rule names, as the simulated world builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelaySpec {
    /// The name in the rule: DNS answers it with the address of every relay host.
    pub name: String,
    /// The account the relay's hosts take AUTH for; `None`: they take mail from
    /// any client without AUTH (a relay that trusts its network).
    pub account: Option<(String, String)>,
}

impl Delivery {
    fn tables(&self) -> Vec<sluice_core::delivery::PathTable<'_>> {
        self.path
            .iter()
            .map(|rule| sluice_core::delivery::PathTable {
                domains: &rule.domains,
                path: &rule.path,
                relay: rule.relay.as_deref(),
                lmtp: rule.lmtp.as_deref(),
                tls: rule.tls.as_deref(),
                username: rule.username.as_deref(),
                password: rule.password.as_deref(),
                plaintext_auth: rule.plaintext_auth,
            })
            .collect()
    }

    /// The delivery policy, read by core as net reads its own (opportunistic TLS
    /// where a rule names none); the error names the key.
    pub fn policy(&self) -> Result<sluice_core::delivery::DeliveryPolicy, String> {
        sluice_core::delivery::tables::delivery_policy(&self.tables(), "opportunistic")
            .map_err(|error| format!("{}: {error}", error.key()))
    }

    /// The relays' credentials, read by core as net reads its own.
    pub fn credentials(&self) -> Result<sluice_core::delivery::RelayCredentials, String> {
        sluice_core::delivery::tables::relay_credentials(&self.tables())
            .map_err(|error| format!("{}: {error}", error.key()))
    }

    /// The relays the rules name, each once, in the order first named.
    pub fn relays(&self) -> Result<Vec<RelaySpec>, String> {
        let mut relays: Vec<RelaySpec> = Vec::new();
        for (rule, table) in self.path.iter().zip(self.tables()) {
            let Some(address) = rule
                .relay
                .as_deref()
                .filter(|_| table.path.eq_ignore_ascii_case("relay"))
            else {
                continue;
            };
            let (name, _) = sluice_core::delivery::path::parse_host_port(address, Some(25))
                .map_err(|error| format!("delivery.path.relay: {error}"))?;
            if name.parse::<std::net::IpAddr>().is_ok() {
                return Err(format!(
                    "delivery.path.relay: {address:?}: the simulation's relays have names"
                ));
            }
            let account = table
                .client_auth()
                .map_err(|error| format!("{}: {error}", error.key()))?
                .map(|auth| (auth.username, auth.password.expose().to_owned()));
            if account.is_some() && !rule.plaintext_auth {
                return Err(
                    "delivery.path.plaintext_auth: the simulation has no TLS, so AUTH \
                            to a relay needs plaintext_auth = true"
                        .to_owned(),
                );
            }
            match relays.iter().find(|relay| relay.name == name) {
                Some(known) if known.account != account => {
                    return Err(format!(
                        "delivery.path.username: relay {name} is named with different \
                         credentials (a simulated relay has one account)"
                    ));
                }
                Some(_) => {}
                None => relays.push(RelaySpec { name, account }),
            }
        }
        Ok(relays)
    }

    fn validate(&self, topology: &Topology) -> Result<(), String> {
        self.policy()?;
        self.credentials()?;
        if self
            .path
            .iter()
            .any(|rule| rule.path.eq_ignore_ascii_case("lmtp"))
        {
            return Err(
                "delivery.path.path: the simulation has no LMTP service for \
                        external domains (use mx or relay)"
                    .to_owned(),
            );
        }
        let local = topology.local_domain.to_ascii_lowercase();
        for relay in self.relays()? {
            let relay = relay.name;
            let taken = relay == local
                || relay.ends_with(&format!(".{local}"))
                || (1..=topology.remote_domains.max(1))
                    .any(|k| relay == format!("mx.remote{k}.example"));
            if taken {
                return Err(format!(
                    "delivery.path.relay: {relay} is a name the topology already uses"
                ));
            }
        }
        Ok(())
    }
}

/// `[relay]`: the simulated relays. Each relay a rule names is served by `hosts`
/// remote servers (core's server session answering, the `[remote]` behaviour),
/// named `r<k>.<relay>`, whose addresses DNS gives for the relay's name in order:
/// when one is down, the walk fails over to the next. A relay with credentials
/// takes mail only on its submission listener after AUTH; it stores what it takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    pub hosts: u32,
    /// Crashes of random relay hosts during the duration (down for the
    /// `[crashes]` restart times).
    pub crashes: u32,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            hosts: 1,
            crashes: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guarantees {
    pub no_loss: bool,
    pub no_duplicates: bool,
    pub notices: bool,
    pub retry_schedule: bool,
    /// Every offered message is accepted within this many seconds of its first offer.
    pub availability_secs: Option<u64>,
    pub no_relay: bool,
    /// After the drain nothing promised is still queued.
    pub drained: bool,
    /// Every copy a remote stores from a signing domain carries a signature that
    /// verifies, and none is signed by a domain it does not come from.
    pub dkim: bool,
    /// Mail under a relay rule reaches only that relay, after AUTH where the rule
    /// has credentials; other mail its domain's MX; credentials go nowhere else.
    pub delivery_paths: bool,
    /// With `[retrieval]` clients: every local copy seen through IMAP exactly once
    /// until expunged, no UID reused, a flag answered OK survives crashes, and an
    /// idling client hears of each new message.
    pub retrieval: bool,
}

impl Default for Guarantees {
    fn default() -> Self {
        Guarantees {
            no_loss: true,
            no_duplicates: true,
            notices: true,
            retry_schedule: true,
            availability_secs: None,
            no_relay: true,
            drained: true,
            dkim: true,
            delivery_paths: true,
            retrieval: true,
        }
    }
}

/// Why a scenario could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses scenario text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| ScenarioError::Parse {
            file: file.to_owned(),
            message: error.to_string(),
        })?;
        scenario
            .validate()
            .map_err(|message| ScenarioError::Invalid {
                file: file.to_owned(),
                message,
            })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        let fractions = [
            (
                "workload.external_fraction",
                self.workload.external_fraction,
            ),
            (
                "workload.external_sender_fraction",
                self.workload.external_sender_fraction,
            ),
            (
                "workload.null_sender_fraction",
                self.workload.null_sender_fraction,
            ),
            (
                "workload.relay_attempt_fraction",
                self.workload.relay_attempt_fraction,
            ),
            ("workload.group_fraction", self.workload.group_fraction),
            (
                "workload.unknown_local_fraction",
                self.workload.unknown_local_fraction,
            ),
            ("network.loss", self.network.loss),
            ("network.latency_tail", self.network.latency_tail),
            ("network.reset", self.network.reset),
            ("disk.error", self.disk.error),
            ("dns.failure", self.dns.failure),
            ("dns.timeout", self.dns.timeout),
            ("remote.temporary", self.remote.temporary),
            ("remote.permanent", self.remote.permanent),
            ("remote.hang", self.remote.hang),
            ("remote.close_mid_data", self.remote.close_mid_data),
            (
                "remote.lie_about_extensions",
                self.remote.lie_about_extensions,
            ),
            ("crashes.on_store", self.crashes.on_store),
            ("crashes.after_promise", self.crashes.after_promise),
            ("crashes.silent", self.crashes.silent),
        ];
        for (key, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{key}: must be between 0 and 1, not {value}"));
            }
        }
        if self.topology.users == 0 {
            return Err("topology.users: must be at least 1".to_owned());
        }
        if self.topology.gateways > 0 && self.topology.backends == 0 {
            return Err("topology.backends: gateways need a backend".to_owned());
        }
        if self.workload.max_recipients == 0 || self.workload.min_size > self.workload.max_size {
            return Err("workload: max_recipients ≥ 1 and min_size ≤ max_size".to_owned());
        }
        if self.duration_secs == 0 {
            return Err("duration_secs: must be longer than zero".to_owned());
        }
        for domain in &self.dkim.domains {
            sluice_dkim::DkimSigner::ed25519_from_seed(domain, &self.dkim.selector, [0; 32])
                .map_err(|error| format!("dkim: {error}"))?;
        }
        if self.retrieval.clients > self.topology.users {
            return Err("retrieval.clients: at most one per user (topology.users)".to_owned());
        }
        if self.retrieval.idle_secs_min > self.retrieval.idle_secs_max
            || self.retrieval.think_secs_max == 0
        {
            return Err(
                "retrieval: think_secs_max ≥ 1 and idle_secs_min ≤ idle_secs_max".to_owned(),
            );
        }
        if self.relay.hosts == 0 {
            return Err("relay.hosts: must be at least 1".to_owned());
        }
        self.delivery.validate(&self.topology)?;
        Ok(())
    }
}

/// A fraction as parts per million (the generator's unit).
pub fn per_million(fraction: f64) -> u32 {
    // In range by validation; `as` saturates anyway.
    (fraction * 1_000_000.0).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_file_and_key_named() {
        let text = "name = \"x\"\nduration_secs = 10\n[network]\nlatency = 5\n";
        let error = Scenario::parse("bad.toml", text)
            .err()
            .map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(error.contains("bad.toml"), "{error}");
        assert!(error.contains("latency"), "{error}");
    }

    #[test]
    fn defaults_fill_what_is_not_said_and_fractions_are_checked() {
        let scenario = Scenario::parse("ok.toml", "name = \"x\"\nduration_secs = 10\n").unwrap();
        assert_eq!(scenario.topology.gateways, 2);
        let text = "name = \"x\"\nduration_secs = 10\n[disk]\nerror = 2.0\n";
        let error = Scenario::parse("f.toml", text).err().map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("disk.error"));
        assert_eq!(per_million(0.25), 250_000);
    }

    const RELAY_RULE: &str = "name = \"x\"\nduration_secs = 10\n[[delivery.path]]\n\
                              domains = [\"remote2.example\"]\npath = \"relay\"\n\
                              relay = \"smart.example:587\"\n";

    fn error_of(text: &str) -> String {
        Scenario::parse("p.toml", text)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default()
    }

    /// The rules are net's `[[delivery.path]]` tables, read by core: the policy and
    /// the relays' credentials come out, and every mistake names its key.
    #[test]
    fn path_rules_are_read_by_core_and_mistakes_name_their_key() {
        let text =
            format!("{RELAY_RULE}username = \"gw\"\npassword = \"pw\"\nplaintext_auth = true\n");
        let scenario = Scenario::parse("p.toml", &text).unwrap();
        let destination = scenario
            .delivery
            .policy()
            .unwrap()
            .destination_for("remote2.example");
        let relay = sluice_core::delivery::DeliveryPath::Relay {
            host: "smart.example".to_owned(),
            port: 587,
        };
        assert_eq!(destination.path, relay);
        let credentials = scenario.delivery.credentials().unwrap();
        assert_eq!(
            credentials.for_path(&relay).map(|a| a.username.as_str()),
            Some("gw")
        );
        let relays = scenario.delivery.relays().unwrap();
        assert_eq!(relays.len(), 1);
        assert_eq!(relays[0].account, Some(("gw".to_owned(), "pw".to_owned())));
        for (extra, key) in [
            ("username = \"gw\"\n", "delivery.path.password"),
            (
                "username = \"gw\"\npassword = \"pw\"\n",
                "delivery.path.plaintext_auth",
            ),
            ("passwd = \"pw\"\n", "passwd"),
            ("password_file = \"/x\"\n", "password_file"),
        ] {
            let error = error_of(&format!("{RELAY_RULE}{extra}"));
            assert!(
                error.contains("p.toml") && error.contains(key),
                "{key}: {error}"
            );
        }
        let error = error_of(&RELAY_RULE.replace("smart.example", "mx.remote1.example"));
        assert!(error.contains("delivery.path.relay"), "{error}");
        let error = error_of(&RELAY_RULE.replace("relay\"\nrelay", "lmtp\"\nlmtp"));
        assert!(error.contains("delivery.path.path"), "{error}");
    }
}
