//! Property tests of the delivery policy: the most specific rule wins (exact, then
//! the longest `*.parent`, then `*`), a domain no rule matches goes to its own MX
//! hosts, and matching ignores ASCII case and a trailing dot.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sluice_core::delivery::{
    DeliveryPath, DeliveryPolicy, Destination, DomainPattern, PolicyRule, RulePath, RuleText,
    TlsPolicy,
};

const LABELS: [&str; 4] = ["a", "b", "mail", "example"];

/// A relay whose port identifies the rule that chose it.
fn relay_rule(pattern: &str, port: u16) -> PolicyRule {
    PolicyRule {
        pattern: pattern.parse().unwrap(),
        path: RulePath::Relay {
            host: "relay.test".to_owned(),
            port,
        },
        tls: TlsPolicy::Required,
    }
}

fn domain() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(proptest::sample::select(&LABELS[..]), 1..5)
}

/// The reference: the most specific of the patterns that match, by brute force.
fn expected_port(patterns: &[(String, u16)], domain: &str) -> Option<u16> {
    let mut best: Option<(usize, u16)> = None; // (specificity, port)
    for (pattern, port) in patterns {
        let specificity = if pattern == "*" {
            Some(0)
        } else if let Some(parent) = pattern.strip_prefix("*.") {
            domain
                .ends_with(&format!(".{parent}"))
                .then_some(1 + parent.len())
        } else {
            (pattern == domain).then_some(usize::MAX)
        };
        if let Some(specificity) = specificity
            && best.is_none_or(|(known, _)| specificity > known)
        {
            best = Some((specificity, *port));
        }
    }
    best.map(|(_, port)| port)
}

proptest! {
    #[test]
    fn the_most_specific_rule_wins(
        rule_domains in proptest::collection::btree_set((domain(), 0..3u8), 0..8),
        asked in domain(),
        upper in any::<bool>(),
    ) {
        let mut patterns = Vec::new();
        for (index, (labels, kind)) in rule_domains.iter().enumerate() {
            let joined = labels.join(".");
            let pattern = match kind {
                0 => joined,
                1 => format!("*.{joined}"),
                _ => "*".to_owned(),
            };
            if patterns.iter().all(|(known, _)| known != &pattern) {
                patterns.push((pattern, 1000 + index as u16));
            }
        }
        let policy = DeliveryPolicy::new(
            patterns.iter().map(|(pattern, port)| relay_rule(pattern, *port)),
        ).unwrap();
        let asked = asked.join(".");
        let query = if upper { format!("{}.", asked.to_uppercase()) } else { asked.clone() };
        let destination = policy.destination_for(&query);
        match expected_port(&patterns, &asked) {
            Some(port) => prop_assert_eq!(destination.path, DeliveryPath::Relay {
                host: "relay.test".to_owned(), port,
            }),
            None => prop_assert_eq!(destination, Destination::mx(&asked)),
        }
    }
}

#[test]
fn subdomain_rules_do_not_cover_the_apex() {
    let policy = DeliveryPolicy::new([relay_rule("*.example.com", 587)]).unwrap();
    assert_eq!(
        policy.destination_for("example.com"),
        Destination::mx("example.com")
    );
    assert_eq!(
        policy.destination_for("deep.sub.Example.COM").path,
        DeliveryPath::Relay {
            host: "relay.test".to_owned(),
            port: 587
        }
    );
    // A suffix match is by whole labels: notexample.com is not under example.com.
    assert_eq!(
        policy.destination_for("notexample.com"),
        Destination::mx("notexample.com")
    );
}

#[test]
fn an_mx_rule_sends_each_domain_to_its_own_mx_with_the_rule_tls() {
    let policy = DeliveryPolicy::parse([
        RuleText {
            pattern: "*.bank.example",
            path: "mx",
            address: None,
            tls: Some("required"),
        },
        RuleText {
            pattern: "*",
            path: "relay",
            address: Some("smarthost.example.net:587"),
            tls: None,
        },
        RuleText {
            pattern: "corp.example",
            path: "lmtp",
            address: Some("[2001:db8::24]:2424"),
            tls: Some("disabled"),
        },
    ])
    .unwrap();
    assert_eq!(
        policy.destination_for("EU.Bank.Example"),
        Destination {
            path: DeliveryPath::Mx {
                domain: "eu.bank.example".to_owned()
            },
            tls: TlsPolicy::Required,
        }
    );
    assert_eq!(
        policy.destination_for("corp.example"),
        Destination {
            path: DeliveryPath::Lmtp {
                host: "2001:db8::24".to_owned(),
                port: 2424
            },
            tls: TlsPolicy::Disabled,
        }
    );
    assert_eq!(
        policy.destination_for("anything.else"),
        Destination {
            path: DeliveryPath::Relay {
                host: "smarthost.example.net".to_owned(),
                port: 587
            },
            tls: TlsPolicy::Opportunistic,
        }
    );
    assert!(DeliveryPolicy::default().is_empty());
    assert_eq!(
        "*.a.b".parse::<DomainPattern>().unwrap(),
        DomainPattern::Subdomains("a.b".to_owned())
    );
}
