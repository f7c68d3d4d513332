//! The DNS override table: parsed from the configuration's `[dns]` section and
//! consulted before DNS. The resolver here points at a UDP socket that never
//! answers, so any answer that arrives came from the table (or from an IP literal),
//! and a name the table lacks fails temporarily — which is also how a DNS timeout
//! is classified.

#![allow(clippy::unwrap_used)]

use sluice_core::delivery::mx::MxAnswer;
use sluice_net::dns::{DnsConfigError, DnsSection, OverrideTable, Resolver, ResolverSettings};
use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

const SECTION: &str = r#"
nameservers = ["127.0.0.1:5353"]
timeout_seconds = 3

[override."Example.ORG."]
mx = ["10 mx1.example.org", "10 mx2.example.org", "20 backup.example.org"]

[override."mx1.example.org"]
addresses = ["192.0.2.10", "2001:db8::10"]

[override."mx2.example.org"]
addresses = []

[override."backup.example.org"]
addresses = ["192.0.2.30"]

[override."nomail.example"]
mx = ["0 ."]

[override."implicit.example"]
mx = []
addresses = ["192.0.2.40"]
"#;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A resolver whose only name server never answers; the socket must live as long.
fn silent_resolver(section: &DnsSection) -> (Resolver, UdpSocket) {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut settings = ResolverSettings::from_section(section).unwrap();
    settings.nameservers = Some(vec![silent.local_addr().unwrap()]);
    settings.timeout = Duration::from_millis(200);
    settings.attempts = 1;
    (Resolver::new(settings).unwrap(), silent)
}

#[test]
fn the_section_parses_with_defaults() {
    let section: DnsSection = toml::from_str(SECTION).unwrap();
    assert_eq!(
        section.nameservers,
        Some(vec!["127.0.0.1:5353".parse().unwrap()])
    );
    assert_eq!(section.timeout_seconds, 3);
    assert_eq!(section.attempts, 2);
    let table = OverrideTable::from_specs(&section.overrides).unwrap();
    assert_eq!(
        table.mx("example.org"),
        Some(MxAnswer::Records(vec![
            (10, "mx1.example.org".to_owned()),
            (10, "mx2.example.org".to_owned()),
            (20, "backup.example.org".to_owned()),
        ]))
    );
    assert_eq!(table.mx("implicit.example"), Some(MxAnswer::NoRecords));
    assert_eq!(table.mx("mx1.example.org"), None);
    assert_eq!(table.addresses("MX2.example.org."), Some(&[][..]));
    assert_eq!(table.addresses("unknown.example"), None);
    let empty: DnsSection = toml::from_str("").unwrap();
    assert_eq!(empty, DnsSection::default());
}

#[test]
fn bad_override_entries_name_the_culprit() {
    let section: DnsSection =
        toml::from_str("[override.\"a.example\"]\nmx = [\"mx.a.example\"]").unwrap();
    let error = OverrideTable::from_specs(&section.overrides).unwrap_err();
    assert!(matches!(error, DnsConfigError::BadMxRecord { .. }));
    assert!(error.to_string().contains("\"mx.a.example\""), "{error}");
    let section: DnsSection = toml::from_str("[override.\"bad name!\"]\naddresses = []").unwrap();
    assert!(matches!(
        OverrideTable::from_specs(&section.overrides),
        Err(DnsConfigError::BadOverrideName { .. })
    ));
    assert!(toml::from_str::<DnsSection>("[override.\"a.example\"]\ncname = \"b\"").is_err());
}

#[tokio::test]
async fn overrides_answer_without_dns() {
    let section: DnsSection = toml::from_str(SECTION).unwrap();
    let (dns, _silent) = silent_resolver(&section);
    // mx2 has no addresses and is skipped; the two hosts keep their MX order.
    for seed in 0..8 {
        assert_eq!(
            dns.host_plan("example.org", seed).await.unwrap(),
            vec![
                (
                    "mx1.example.org".to_owned(),
                    vec![ip("192.0.2.10"), ip("2001:db8::10")]
                ),
                ("backup.example.org".to_owned(), vec![ip("192.0.2.30")]),
            ]
        );
    }
    assert_eq!(
        dns.host_plan("implicit.example", 0).await.unwrap(),
        vec![("implicit.example".to_owned(), vec![ip("192.0.2.40")])]
    );
    let failure = dns.host_plan("nomail.example", 0).await.unwrap_err();
    assert_eq!(failure.status.to_string(), "5.1.10");
    assert_eq!(
        dns.addresses("[192.0.2.9]").await,
        Ok(vec![ip("192.0.2.9")])
    );
    assert_eq!(
        dns.addresses("2001:db8::9").await,
        Ok(vec![ip("2001:db8::9")])
    );
}

#[tokio::test]
async fn a_silent_server_is_a_temporary_failure() {
    let (dns, _silent) = silent_resolver(&DnsSection::default());
    let answer = dns.mx("unlisted.example").await;
    assert!(
        matches!(answer, MxAnswer::TemporaryFailure(_)),
        "{answer:?}"
    );
    let failure = dns.host_plan("unlisted.example", 0).await.unwrap_err();
    assert_eq!(failure.status.to_string(), "4.4.3");
    assert_eq!(dns.reverse_name(ip("192.0.2.1")).await, None);
}
