//! The delivery policy: which [`Destination`] an external recipient's domain takes.
//! Rules map a domain pattern to a destination; the most specific rule wins and a
//! domain no rule matches goes to its own MX hosts with opportunistic TLS.
//!
//! Patterns: `example.com` (that domain only), `*.example.com` (every subdomain of
//! example.com at any depth, not example.com itself) and `*` (every domain). The
//! Postfix-style `.example.com` is refused with a hint, so that one concept has one
//! spelling. Domains compare ASCII-case-insensitively; IDNs must be given as A-labels.

use super::{DeliveryPath, Destination, TlsPolicy};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The longest domain name in presentation form without the trailing dot
/// (RFC 1035 §2.3.4: 255 octets on the wire).
const MAX_DOMAIN_LENGTH: usize = 253;
/// RFC 1035 §2.3.4.
const MAX_LABEL_LENGTH: usize = 63;

/// Which recipient domains a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainPattern {
    /// Exactly this domain (lower case, no trailing dot).
    Exact(String),
    /// Every proper subdomain of this domain (lower case, no trailing dot).
    Subdomains(String),
    /// Every domain.
    Any,
}

/// One rule of the policy: the domains it covers and where their mail goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    pub pattern: DomainPattern,
    pub path: RulePath,
    pub tls: TlsPolicy,
}

/// The path a rule names. Unlike [`DeliveryPath::Mx`], `OwnMx` names no domain: a
/// rule for many domains sends each to its own MX hosts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RulePath {
    OwnMx,
    Relay { host: String, port: u16 },
    Lmtp { host: String, port: u16 },
}

/// A rule as the configuration file spells it, before validation. `address` is the
/// value of the key named after the path (`relay = "host:port"` or `lmtp =
/// "host:port"`); `tls` is absent for the default (opportunistic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleText<'a> {
    pub pattern: &'a str,
    pub path: &'a str,
    pub address: Option<&'a str>,
    pub tls: Option<&'a str>,
}

/// The delivery policy: validated rules indexed for the most-specific-match lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPolicy {
    exact: BTreeMap<String, RuleTarget>,
    subdomains: BTreeMap<String, RuleTarget>,
    any: Option<RuleTarget>,
}

/// What a matched rule says, before the domain is known.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RuleTarget {
    path: RulePath,
    tls: TlsPolicy,
}

impl RuleTarget {
    fn destination(&self, domain: &str) -> Destination {
        let path = match &self.path {
            RulePath::OwnMx => DeliveryPath::Mx {
                domain: domain.to_owned(),
            },
            RulePath::Relay { host, port } => DeliveryPath::Relay {
                host: host.clone(),
                port: *port,
            },
            RulePath::Lmtp { host, port } => DeliveryPath::Lmtp {
                host: host.clone(),
                port: *port,
            },
        };
        Destination {
            path,
            tls: self.tls,
        }
    }
}

/// What was wrong with a rule; each names the offending text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("domain pattern {pattern:?} is not valid: {reason}")]
    BadPattern {
        pattern: String,
        reason: &'static str,
    },
    #[error("domain pattern {0:?} appears in more than one rule")]
    DuplicatePattern(String),
    #[error("unknown path {0:?}: expected mx, relay or lmtp")]
    UnknownPath(String),
    #[error("path {path} needs an address: {path} = \"host:port\"")]
    MissingAddress { path: &'static str },
    #[error("path mx takes no address (got {0:?}): the hosts come from DNS")]
    UnexpectedAddress(String),
    #[error("address {address:?} is not valid: {reason}")]
    BadAddress {
        address: String,
        reason: &'static str,
    },
    #[error("unknown tls policy {0:?}: expected opportunistic, required or disabled")]
    UnknownTls(String),
}

impl DeliveryPolicy {
    /// A policy from validated rules; a pattern listed twice is an error, because
    /// which of the two would win is not obvious to the reader of the file.
    pub fn new(rules: impl IntoIterator<Item = PolicyRule>) -> Result<Self, PolicyError> {
        let mut policy = DeliveryPolicy::default();
        for rule in rules {
            let target = RuleTarget {
                path: rule.path,
                tls: rule.tls,
            };
            let duplicate = match rule.pattern {
                DomainPattern::Exact(domain) => {
                    policy.exact.insert(domain.clone(), target).map(|_| domain)
                }
                DomainPattern::Subdomains(domain) => policy
                    .subdomains
                    .insert(domain.clone(), target)
                    .map(|_| format!("*.{domain}")),
                DomainPattern::Any => policy.any.replace(target).map(|_| "*".to_owned()),
            };
            if let Some(pattern) = duplicate {
                return Err(PolicyError::DuplicatePattern(pattern));
            }
        }
        Ok(policy)
    }

    /// Parses and validates every rule, then builds the policy.
    pub fn parse<'a>(rules: impl IntoIterator<Item = RuleText<'a>>) -> Result<Self, PolicyError> {
        let rules = rules
            .into_iter()
            .map(PolicyRule::parse)
            .collect::<Result<Vec<_>, _>>()?;
        DeliveryPolicy::new(rules)
    }

    /// Where mail for `domain` goes: the exact rule, else the rule for the longest
    /// matching parent domain, else `*`, else the domain's own MX hosts.
    pub fn destination_for(&self, domain: &str) -> Destination {
        let domain = normalise(domain);
        match self.matching_rule(&domain) {
            Some(target) => target.destination(&domain),
            None => Destination::mx(&domain),
        }
    }

    fn matching_rule(&self, domain: &str) -> Option<&RuleTarget> {
        if let Some(target) = self.exact.get(domain) {
            return Some(target);
        }
        // Walk the proper parents from the longest: the first hit is the most specific.
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(target) = self.subdomains.get(parent) {
                return Some(target);
            }
            rest = parent;
        }
        self.any.as_ref()
    }

    /// Whether the policy has no rules (every domain goes to its MX hosts).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.subdomains.is_empty() && self.any.is_none()
    }
}

impl PolicyRule {
    /// A rule from the configuration file's strings.
    pub fn parse(text: RuleText<'_>) -> Result<PolicyRule, PolicyError> {
        let pattern = text.pattern.parse::<DomainPattern>()?;
        let path = parse_path(text.path, text.address)?;
        let tls = match text.tls {
            Some(tls) => tls.parse::<TlsPolicy>()?,
            None => TlsPolicy::default(),
        };
        Ok(PolicyRule { pattern, path, tls })
    }
}

fn parse_path(path: &str, address: Option<&str>) -> Result<RulePath, PolicyError> {
    match path.to_ascii_lowercase().as_str() {
        "mx" => match address {
            None => Ok(RulePath::OwnMx),
            Some(address) => Err(PolicyError::UnexpectedAddress(address.to_owned())),
        },
        "relay" => {
            let address = address.ok_or(PolicyError::MissingAddress { path: "relay" })?;
            // A relay without a port is an MTA on the SMTP port (RFC 5321 §4.5.4.2).
            let (host, port) = parse_host_port(address, Some(25))?;
            Ok(RulePath::Relay { host, port })
        }
        "lmtp" => {
            let address = address.ok_or(PolicyError::MissingAddress { path: "lmtp" })?;
            // LMTP has no well-known TCP port and must not use 25 (RFC 2033 §5).
            let (host, port) = parse_host_port(address, None)?;
            Ok(RulePath::Lmtp { host, port })
        }
        _ => Err(PolicyError::UnknownPath(path.to_owned())),
    }
}

/// `host:port`, `192.0.2.1:port` or `[2001:db8::1]:port`; the port may be left out
/// only where `default_port` says which it is.
pub fn parse_host_port(
    text: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), PolicyError> {
    let bad = |reason: &'static str| PolicyError::BadAddress {
        address: text.to_owned(),
        reason,
    };
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
        if inside.parse::<core::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address inside the brackets"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("expected ':' and a port after ']'"))?,
            ),
        };
        (inside.to_owned(), port)
    } else {
        match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err(bad(
                    "an IPv6 address must be written in brackets: [addr]:port",
                ));
            }
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (text.to_owned(), None),
        }
    };
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("the port must be a number from 1 to 65535")),
            Ok(port) => port,
        },
        None => default_port.ok_or_else(|| bad("a port is required: host:port"))?,
    };
    if host.contains(':') {
        return Ok((host, port));
    }
    if host.parse::<core::net::Ipv4Addr>().is_ok() {
        return Ok((host, port));
    }
    let host = validate_domain(&host).map_err(bad)?;
    Ok((host, port))
}

impl FromStr for DomainPattern {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &'static str| PolicyError::BadPattern {
            pattern: text.to_owned(),
            reason,
        };
        if text == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(parent) = text.strip_prefix("*.") {
            return validate_domain(parent)
                .map(DomainPattern::Subdomains)
                .map_err(bad);
        }
        if text.starts_with('.') {
            return Err(bad("write subdomains as *.example.com"));
        }
        if text.contains('*') {
            return Err(bad(
                "'*' is allowed only alone or as the first label (*.example.com)",
            ));
        }
        validate_domain(text).map(DomainPattern::Exact).map_err(bad)
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(domain) => f.write_str(domain),
            DomainPattern::Subdomains(domain) => write!(f, "*.{domain}"),
            DomainPattern::Any => f.write_str("*"),
        }
    }
}

impl FromStr for TlsPolicy {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "opportunistic" => Ok(TlsPolicy::Opportunistic),
            "required" => Ok(TlsPolicy::Required),
            "disabled" => Ok(TlsPolicy::Disabled),
            _ => Err(PolicyError::UnknownTls(text.to_owned())),
        }
    }
}

/// Lower case, without the trailing dot of an absolute name.
fn normalise(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// A domain name in LDH form (RFC 5321 §4.1.2 `Domain`, RFC 1035 §2.3.4 lengths),
/// normalised; the error says what was wrong.
fn validate_domain(text: &str) -> Result<String, &'static str> {
    let domain = normalise(text);
    if domain.is_empty() {
        return Err("empty domain");
    }
    if !domain.is_ascii() {
        return Err("not ASCII: give internationalised domains as A-labels (xn--...)");
    }
    if domain.len() > MAX_DOMAIN_LENGTH {
        return Err("longer than 253 characters");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > MAX_LABEL_LENGTH {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        {
            return Err("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule<'a>(pattern: &'a str, path: &'a str, address: Option<&'a str>) -> RuleText<'a> {
        RuleText {
            pattern,
            path,
            address,
            tls: None,
        }
    }

    #[test]
    fn patterns_parse_and_print_back() {
        for text in ["example.com", "*.example.com", "*", "xn--bcher-kva.example"] {
            assert_eq!(text.parse::<DomainPattern>().unwrap().to_string(), text);
        }
        assert_eq!(
            "Example.COM.".parse::<DomainPattern>().unwrap(),
            DomainPattern::Exact("example.com".to_owned())
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, reason) in [
            (".example.com", "write subdomains as *.example.com"),
            (
                "a.*.example.com",
                "'*' is allowed only alone or as the first label (*.example.com)",
            ),
            (
                "bücher.example",
                "not ASCII: give internationalised domains as A-labels (xn--...)",
            ),
            ("a..b", "empty label"),
            ("", "empty domain"),
            ("-a.example", "a label starts or ends with '-'"),
            (
                "a_b.example",
                "only letters, digits, '-' and '.' are allowed",
            ),
        ] {
            assert_eq!(
                text.parse::<DomainPattern>(),
                Err(PolicyError::BadPattern {
                    pattern: text.to_owned(),
                    reason
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("[2001:db8::1]", Some(25)).unwrap(),
            ("2001:db8::1".to_owned(), 25),
            "a bracketed address without a port takes the default"
        );
        assert_eq!(
            parse_host_port("Smtp.Example.net:587", None).unwrap(),
            ("smtp.example.net".to_owned(), 587)
        );
        assert_eq!(
            parse_host_port("192.0.2.1", Some(25)).unwrap(),
            ("192.0.2.1".to_owned(), 25)
        );
        assert_eq!(
            parse_host_port("[2001:db8::1]:24", None).unwrap(),
            ("2001:db8::1".to_owned(), 24)
        );
        for text in [
            "2001:db8::1",
            "host:0",
            "host:x",
            "host",
            "[::1",
            "[nope]:25",
            "[::1]25",
        ] {
            assert!(
                matches!(
                    parse_host_port(text, None),
                    Err(PolicyError::BadAddress { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn an_unbracketed_ipv6_address_is_told_to_use_brackets() {
        // Even with a port after it: the reason names the fix, not the port.
        for text in ["2001:db8::1", "2001:db8::1:25"] {
            assert_eq!(
                parse_host_port(text, Some(25)),
                Err(PolicyError::BadAddress {
                    address: text.to_owned(),
                    reason: "an IPv6 address must be written in brackets: [addr]:port",
                })
            );
        }
    }

    #[test]
    fn path_kinds_and_their_errors() {
        let relay = PolicyRule::parse(rule("*", "relay", Some("smtp.example.net"))).unwrap();
        assert_eq!(
            relay.path,
            RulePath::Relay {
                host: "smtp.example.net".to_owned(),
                port: 25
            }
        );
        assert_eq!(
            PolicyRule::parse(rule("*", "lmtp", Some("backend"))),
            Err(PolicyError::BadAddress {
                address: "backend".to_owned(),
                reason: "a port is required: host:port"
            })
        );
        assert_eq!(
            PolicyRule::parse(rule("*", "relay", None)),
            Err(PolicyError::MissingAddress { path: "relay" })
        );
        assert_eq!(
            PolicyRule::parse(rule("*", "mx", Some("x:25"))),
            Err(PolicyError::UnexpectedAddress("x:25".to_owned()))
        );
        assert_eq!(
            PolicyRule::parse(rule("*", "uucp", None)),
            Err(PolicyError::UnknownPath("uucp".to_owned()))
        );
        let mut text = rule("*", "mx", None);
        text.tls = Some("mandatory");
        assert_eq!(
            PolicyRule::parse(text),
            Err(PolicyError::UnknownTls("mandatory".to_owned()))
        );
    }

    #[test]
    fn a_policy_with_any_one_kind_of_rule_is_not_empty() {
        assert!(DeliveryPolicy::default().is_empty());
        for pattern in ["example.com", "*.example.com", "*"] {
            let policy = DeliveryPolicy::parse([rule(pattern, "mx", None)]).unwrap();
            assert!(!policy.is_empty(), "{pattern}");
        }
    }

    #[test]
    fn a_domain_of_253_octets_is_the_longest_accepted() {
        let label = "a".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(validate_domain(&longest), Ok(longest.clone()));
        assert_eq!(
            validate_domain(&format!("c{longest}")),
            Err("longer than 253 characters")
        );
    }

    #[test]
    fn duplicate_patterns_are_refused() {
        let rules = [
            rule("Example.com", "mx", None),
            rule("example.com.", "mx", None),
        ];
        assert_eq!(
            DeliveryPolicy::parse(rules),
            Err(PolicyError::DuplicatePattern("example.com".to_owned()))
        );
    }
}
