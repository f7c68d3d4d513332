//! DNS for delivery: MX, A/AAAA and PTR lookups on hickory, with an override table
//! from the configuration file consulted before DNS (split horizon, tests, hosts
//! that must not depend on DNS). Answers are mapped to core's [`MxAnswer`] and
//! [`AddressAnswer`]; what to do with them (ordering, null MX, which failures are
//! permanent) is decided by `sluice_core::delivery::mx`.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use serde::Deserialize;
use sluice_core::delivery::mx::{
    AddressAnswer, HostPlan, HostPlanner, MxAnswer, MxLimits, PlanAnswer, PlanLookup, PlanStep,
    combine_address_answers, normalise_host,
};
use sluice_core::node::client_name::{ClientNamer, NameAnswer, NameLookup, NameStep};
use sluice_core::smtp::address::Domain;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The `[dns]` section of the configuration file.
///
/// ```toml
/// [dns]
/// nameservers = ["10.0.0.53:53", "[2001:db8::53]:53"]   # absent: /etc/resolv.conf
/// timeout_seconds = 5                                    # per query
/// attempts = 2
///
/// [dns.override."example.org"]
/// mx = ["10 mx1.example.org", "20 mx2.example.org"]
///
/// [dns.override."mx1.example.org"]
/// addresses = ["192.0.2.10", "2001:db8::10"]
///
/// [dns.override."nomail.example"]
/// mx = ["0 ."]                                           # null MX (RFC 7505)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSection {
    /// Name servers as `ip:port`; None reads the system configuration.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// How long one query waits for an answer. Default 5 seconds.
    pub timeout_seconds: u64,
    /// How many times a query is sent before it fails. Default 2.
    pub attempts: usize,
    #[serde(rename = "override")]
    pub overrides: BTreeMap<String, OverrideSpec>,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            nameservers: None,
            timeout_seconds: 5,
            attempts: 2,
            overrides: BTreeMap::new(),
        }
    }
}

/// One `[dns.override."name"]` table, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    /// `"preference exchange"` strings; an empty list means "no MX records"
    /// (the implicit MX applies).
    pub mx: Option<Vec<String>>,
    /// An empty list means "no address records".
    pub addresses: Option<Vec<IpAddr>>,
}

/// What the override table says about one name; an absent part is asked of DNS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverrideEntry {
    pub mx: Option<Vec<(u16, String)>>,
    pub addresses: Option<Vec<IpAddr>>,
}

/// Names whose answers come from the configuration instead of DNS. Names are
/// compared ASCII-case-insensitively, with or without the trailing dot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverrideTable {
    entries: BTreeMap<String, OverrideEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsConfigError {
    #[error("dns.override: {name:?} is not a domain name")]
    BadOverrideName { name: String },
    #[error(
        "dns.override.{name:?}.mx: {record:?} is not \"preference exchange\" (e.g. \"10 mx.example.org\")"
    )]
    BadMxRecord { name: String, record: String },
    #[error("cannot read the system DNS configuration (/etc/resolv.conf): {0}")]
    SystemConfig(NetError),
    #[error("cannot start the DNS resolver: {0}")]
    Build(NetError),
}

/// Why an address lookup found nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("{0} does not exist (NXDOMAIN)")]
    NoSuchDomain(String),
    #[error("{0} has no address records")]
    NoRecords(String),
    #[error("lookup of {name} failed: {reason}")]
    Temporary { name: String, reason: String },
}

impl OverrideTable {
    pub fn new() -> OverrideTable {
        OverrideTable::default()
    }

    /// The table from the configuration's `[dns.override]` tables.
    pub fn from_specs(specs: &BTreeMap<String, OverrideSpec>) -> Result<Self, DnsConfigError> {
        let mut table = OverrideTable::new();
        for (name, spec) in specs {
            let mx = match &spec.mx {
                None => None,
                Some(records) => Some(
                    records
                        .iter()
                        .map(|record| {
                            parse_mx_record(record).ok_or_else(|| DnsConfigError::BadMxRecord {
                                name: name.clone(),
                                record: record.clone(),
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let entry = OverrideEntry {
                mx,
                addresses: spec.addresses.clone(),
            };
            table.insert(name, entry)?;
        }
        Ok(table)
    }

    /// Adds or replaces the entry for `name`.
    pub fn insert(&mut self, name: &str, entry: OverrideEntry) -> Result<(), DnsConfigError> {
        let key = normalise_host(name);
        if Name::from_ascii(&key).is_err() || key.is_empty() {
            return Err(DnsConfigError::BadOverrideName {
                name: name.to_owned(),
            });
        }
        self.entries.insert(key, entry);
        Ok(())
    }

    /// The MX answer for `domain`, if the table has one.
    pub fn mx(&self, domain: &str) -> Option<MxAnswer> {
        let records = self.entries.get(&normalise_host(domain))?.mx.as_ref()?;
        Some(if records.is_empty() {
            MxAnswer::NoRecords
        } else {
            MxAnswer::Records(records.clone())
        })
    }

    /// The addresses of `host`, if the table has them (possibly none).
    pub fn addresses(&self, host: &str) -> Option<&[IpAddr]> {
        self.entries
            .get(&normalise_host(host))?
            .addresses
            .as_deref()
    }
}

/// `"10 mx.example.org"` to (10, "mx.example.org"); `"0 ."` is a null MX.
fn parse_mx_record(text: &str) -> Option<(u16, String)> {
    let mut parts = text.split_whitespace();
    let preference = parts.next()?.parse::<u16>().ok()?;
    let exchange = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    if exchange != "." && Name::from_ascii(exchange).is_err() {
        return None;
    }
    Some((preference, exchange.to_owned()))
}

/// Where the resolver sends its queries and how long it waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverSettings {
    /// None: the system configuration (/etc/resolv.conf).
    pub nameservers: Option<Vec<SocketAddr>>,
    pub timeout: Duration,
    pub attempts: usize,
    pub overrides: OverrideTable,
    pub limits: MxLimits,
}

impl ResolverSettings {
    pub fn from_section(section: &DnsSection) -> Result<Self, DnsConfigError> {
        Ok(ResolverSettings {
            nameservers: section.nameservers.clone(),
            timeout: Duration::from_secs(section.timeout_seconds.max(1)),
            attempts: section.attempts.max(1),
            overrides: OverrideTable::from_specs(&section.overrides)?,
            limits: MxLimits::default(),
        })
    }
}

/// The delivery resolver: the override table, then DNS.
#[derive(Clone)]
pub struct Resolver {
    dns: TokioResolver,
    overrides: OverrideTable,
    limits: MxLimits,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(settings: ResolverSettings) -> Result<Resolver, DnsConfigError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match &settings.nameservers {
            None => TokioResolver::builder(provider).map_err(DnsConfigError::SystemConfig)?,
            Some(servers) => {
                let servers = servers.iter().map(|server| name_server(*server)).collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    provider,
                )
            }
        };
        let options = builder.options_mut();
        options.timeout = settings.timeout;
        options.attempts = settings.attempts;
        if settings.nameservers.is_some() {
            // Explicit servers are the whole truth: /etc/hosts is for the system's
            // resolver, and the override table is ours.
            options.use_hosts_file = ResolveHosts::Never;
        }
        let dns = builder.build().map_err(DnsConfigError::Build)?;
        Ok(Resolver {
            dns,
            overrides: settings.overrides,
            limits: settings.limits,
        })
    }

    /// The MX answer for `domain` (ASCII; A-labels for IDNs).
    pub async fn mx(&self, domain: &str) -> MxAnswer {
        if let Some(answer) = self.overrides.mx(domain) {
            return answer;
        }
        let Some(name) = absolute_name(domain) else {
            // Not a name DNS could hold: as permanent as a name that does not exist.
            return MxAnswer::NoSuchDomain;
        };
        match self.dns.mx_lookup(name).await {
            Ok(lookup) => {
                let records: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    // Only a CNAME chain without MX at its end.
                    MxAnswer::NoRecords
                } else {
                    MxAnswer::Records(records)
                }
            }
            Err(error) => match classify(&error) {
                Negative::NoSuchDomain => MxAnswer::NoSuchDomain,
                Negative::NoRecords => MxAnswer::NoRecords,
                Negative::Temporary(reason) => MxAnswer::TemporaryFailure(reason),
            },
        }
    }

    /// The addresses of `host`: IPv4 (A) first, then IPv6 (AAAA). An IP literal
    /// (also in brackets) is returned as it is.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        let literal = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(address) = literal.parse::<IpAddr>() {
            return Ok(vec![address]);
        }
        let host_name = normalise_host(host);
        if let Some(addresses) = self.overrides.addresses(&host_name) {
            return match addresses {
                [] => Err(LookupError::NoRecords(host_name)),
                addresses => Ok(addresses.to_vec()),
            };
        }
        let Some(name) = absolute_name(&host_name) else {
            return Err(LookupError::NoSuchDomain(host_name));
        };
        let (v4, v6) = tokio::join!(
            self.dns.ipv4_lookup(name.clone()),
            self.dns.ipv6_lookup(name)
        );
        let answers = [v4, v6].into_iter().map(|result| match result {
            Ok(lookup) => AddressAnswer::Addresses(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(error) => match classify(&error) {
                Negative::NoSuchDomain => AddressAnswer::NoSuchDomain,
                Negative::NoRecords => AddressAnswer::NoRecords,
                Negative::Temporary(reason) => AddressAnswer::TemporaryFailure(reason),
            },
        });
        // Which answer wins when neither query found an address is core's.
        match combine_address_answers(answers) {
            AddressAnswer::Addresses(addresses) => Ok(addresses),
            AddressAnswer::TemporaryFailure(reason) => Err(LookupError::Temporary {
                name: host_name,
                reason,
            }),
            AddressAnswer::NoSuchDomain => Err(LookupError::NoSuchDomain(host_name)),
            AddressAnswer::NoRecords => Err(LookupError::NoRecords(host_name)),
        }
    }

    /// [`Resolver::addresses`] as core's answer type.
    pub async fn address_answer(&self, host: &str) -> AddressAnswer {
        match self.addresses(host).await {
            Ok(addresses) => AddressAnswer::Addresses(addresses),
            Err(LookupError::NoSuchDomain(_)) => AddressAnswer::NoSuchDomain,
            Err(LookupError::NoRecords(_)) => AddressAnswer::NoRecords,
            Err(LookupError::Temporary { reason, .. }) => AddressAnswer::TemporaryFailure(reason),
        }
    }

    /// The hosts to connect to for mail to `domain`, with their addresses, in the
    /// order core decides (`seed` shuffles hosts of equal preference): core's
    /// planner asks for each lookup in turn, this only performs them.
    pub async fn host_plan(&self, domain: &str, seed: u64) -> HostPlan {
        let mut planner = HostPlanner::new(domain, seed, self.limits.clone());
        loop {
            let answer = match planner.step() {
                PlanStep::Done(plan) => return plan,
                PlanStep::Lookup(PlanLookup::Mx { domain }) => {
                    PlanAnswer::Mx(self.mx(&domain).await)
                }
                PlanStep::Lookup(PlanLookup::Addresses { host }) => {
                    PlanAnswer::Addresses(self.address_answer(&host).await)
                }
            };
            planner.answer(answer);
        }
    }

    /// The forward-confirmed name of `ip` (FCrDNS), as core's `ClientNamer` decides
    /// it from the PTR and address lookups it asks for. None when there is no PTR
    /// record, no name confirms, or DNS fails: the caller writes the bare address
    /// literal.
    pub async fn reverse_name(&self, ip: IpAddr) -> Option<Domain> {
        let mut namer = ClientNamer::new(ip);
        loop {
            let answer = match namer.step() {
                NameStep::Done(name) => return name,
                NameStep::Lookup(NameLookup::Ptr { ip }) => {
                    NameAnswer::Ptr(match self.dns.reverse_lookup(ip).await {
                        Ok(lookup) => lookup
                            .answers()
                            .iter()
                            .filter_map(|record| match &record.data {
                                RData::PTR(ptr) => Some(ptr.0.to_ascii()),
                                _ => None,
                            })
                            .collect(),
                        Err(_) => Vec::new(),
                    })
                }
                NameStep::Lookup(NameLookup::Addresses { name }) => {
                    NameAnswer::Addresses(self.addresses(&name).await.unwrap_or_default())
                }
            };
            namer.answer(answer);
        }
    }
}

fn name_server(address: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = address.port();
    // TCP too, for answers that do not fit a UDP datagram (RFC 7766).
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = address.port();
    NameServerConfig::new(address.ip(), true, vec![udp, tcp])
}

/// `domain` as an absolute name, so that the search list of resolv.conf never
/// turns `example.com` into `example.com.corp.internal`.
fn absolute_name(domain: &str) -> Option<Name> {
    let domain = normalise_host(domain);
    if domain.is_empty() {
        return None;
    }
    Name::from_ascii(format!("{domain}.")).ok()
}

/// What a failed hickory lookup means for mail.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Negative {
    /// NXDOMAIN (RFC 1035 §4.1.1 RCODE 3).
    NoSuchDomain,
    /// NOERROR without records of the type (NODATA, RFC 2308 §2.2).
    NoRecords,
    /// SERVFAIL, REFUSED, timeouts, unreachable servers, malformed answers.
    Temporary(String),
}

fn classify(error: &NetError) -> Negative {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => match no_records.response_code {
            ResponseCode::NXDomain => Negative::NoSuchDomain,
            ResponseCode::NoError => Negative::NoRecords,
            code => Negative::Temporary(format!("DNS answered {code}")),
        },
        NetError::Dns(DnsError::ResponseCode(code)) => {
            Negative::Temporary(format!("DNS answered {code}"))
        }
        NetError::Timeout => Negative::Temporary("DNS query timed out".to_owned()),
        other => Negative::Temporary(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mx_record_strings() {
        assert_eq!(
            parse_mx_record("10 mx.example.org"),
            Some((10, "mx.example.org".to_owned()))
        );
        assert_eq!(parse_mx_record(" 0   . "), Some((0, ".".to_owned())));
        for bad in [
            "mx.example.org",
            "10",
            "x mx",
            "70000 mx",
            "10 a b",
            "10 a..b",
        ] {
            assert_eq!(parse_mx_record(bad), None, "{bad}");
        }
    }

    #[test]
    fn classify_maps_hickory_errors() {
        assert_eq!(
            classify(&NetError::Timeout),
            Negative::Temporary("DNS query timed out".to_owned())
        );
        assert!(matches!(
            classify(&NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))),
            Negative::Temporary(reason) if reason.contains("Server Failure")
        ));
    }
}
