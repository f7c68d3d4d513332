//! `net::dns` against a real DNS server: dnsmasq from Debian, run by each test as an
//! unprivileged foreground child on 127.0.0.1 and a free high port, answering only
//! from its command line (no resolv.conf, no hosts file, no upstream). Covers MX
//! ordering, the implicit MX, null MX, NXDOMAIN, REFUSED as a temporary failure and
//! forward-confirmed PTR. Without dnsmasq the tests print `skipped: dnsmasq not
//! installed` and pass, unless CI=true.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_core::delivery::mx::{AddressAnswer, MxAnswer, MxLimits};
use sluice_net::dns::{LookupError, OverrideEntry, OverrideTable, Resolver, ResolverSettings};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The zone every test serves: `.test` names answered locally (NXDOMAIN for the
/// unknown ones), the reverse zone of 192.0.2.0/24 likewise; anything else REFUSED.
const ZONE: &[&str] = &[
    "--local=/test/",
    "--local=/2.0.192.in-addr.arpa/",
    "--mx-host=mail.test,mx1.mail.test,10",
    "--mx-host=mail.test,mx2.mail.test,10",
    "--mx-host=mail.test,MX3.mail.test,20",
    "--host-record=mx1.mail.test,192.0.2.11,2001:db8::11",
    "--host-record=mx2.mail.test,192.0.2.12",
    "--host-record=mx3.mail.test,192.0.2.13",
    "--mx-host=null.test,.,0",
    "--host-record=implicit.test,192.0.2.5",
    "--mx-host=dangling.test,gone.dangling.test,10",
    "--host-record=noaddr.test,2001:db8::99",
    "--ptr-record=11.2.0.192.in-addr.arpa,mx1.mail.test",
    // A PTR whose name does not resolve back to the address.
    "--ptr-record=98.2.0.192.in-addr.arpa,liar.test",
    "--host-record=liar.test,192.0.2.97",
];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// dnsmasq on PATH or in /usr/sbin (Debian's place, often missing from PATH).
fn find_dnsmasq() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
}

/// A running dnsmasq, killed (and reaped) when dropped, also when a test panics.
struct Dnsmasq {
    child: Child,
    address: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (dnsmasq serves both).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_dnsmasq() -> Option<Dnsmasq> {
    let Some(binary) = find_dnsmasq() else {
        if in_ci() {
            panic!("dnsmasq is not installed, but CI=true: tests/install-peers.sh must install it");
        }
        println!("skipped: dnsmasq not installed");
        return None;
    };
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(&binary)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .args(ZONE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let mut server = Dnsmasq {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Ready once it accepts TCP; gone early if the port was taken meanwhile.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(server.address).is_ok() {
                return Some(server);
            }
            if server.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("dnsmasq did not start");
}

fn resolver(server: &Dnsmasq, overrides: OverrideTable) -> Resolver {
    Resolver::new(ResolverSettings {
        nameservers: Some(vec![server.address]),
        timeout: Duration::from_secs(2),
        attempts: 2,
        overrides,
        limits: MxLimits::default(),
    })
    .unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn mx_records_are_ordered_by_preference_and_shuffled_by_seed() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let dns = resolver(&server, OverrideTable::new());
    let MxAnswer::Records(mut records) = dns.mx("Mail.Test").await else {
        panic!("expected MX records");
    };
    records.sort();
    assert_eq!(
        records,
        vec![
            (10, "mx1.mail.test.".to_owned()),
            (10, "mx2.mail.test.".to_owned()),
            (20, "mx3.mail.test.".to_owned()),
        ]
    );
    let mut firsts = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let plan = dns.host_plan("mail.test", seed).await.unwrap();
        assert_eq!(
            plan,
            dns.host_plan("mail.test", seed).await.unwrap(),
            "seed {seed}"
        );
        let hosts: Vec<&str> = plan.iter().map(|(host, _)| host.as_str()).collect();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[2], "mx3.mail.test");
        firsts.insert(hosts[0].to_owned());
        for (host, addresses) in &plan {
            let expected = match host.as_str() {
                "mx1.mail.test" => vec![ip("192.0.2.11"), ip("2001:db8::11")],
                "mx2.mail.test" => vec![ip("192.0.2.12")],
                _ => vec![ip("192.0.2.13")],
            };
            assert_eq!(addresses, &expected, "{host}");
        }
    }
    assert_eq!(
        firsts.len(),
        2,
        "equal preferences were never reordered: {firsts:?}"
    );
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_implicit_mx() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let dns = resolver(&server, OverrideTable::new());
    assert_eq!(dns.mx("implicit.test").await, MxAnswer::NoRecords);
    assert_eq!(
        dns.host_plan("implicit.test", 1).await.unwrap(),
        vec![("implicit.test".to_owned(), vec![ip("192.0.2.5")])]
    );
}

#[tokio::test]
async fn null_mx_from_dns_is_a_permanent_failure() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let dns = resolver(&server, OverrideTable::new());
    assert_eq!(
        dns.mx("null.test").await,
        MxAnswer::Records(vec![(0, ".".to_owned())])
    );
    let failure = dns.host_plan("null.test", 1).await.unwrap_err();
    assert_eq!(failure.status.to_string(), "5.1.10");
}

#[tokio::test]
async fn nxdomain_is_permanent_and_nodata_is_not_nxdomain() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let dns = resolver(&server, OverrideTable::new());
    assert_eq!(dns.mx("nothere.test").await, MxAnswer::NoSuchDomain);
    assert_eq!(
        dns.host_plan("nothere.test", 1)
            .await
            .unwrap_err()
            .status
            .to_string(),
        "5.1.2"
    );
    assert_eq!(
        dns.addresses("nothere.test").await,
        Err(LookupError::NoSuchDomain("nothere.test".to_owned()))
    );
    // AAAA only: the A query is NODATA, the AAAA query answers.
    assert_eq!(
        dns.addresses("noaddr.test").await,
        Ok(vec![ip("2001:db8::99")])
    );
    // An MX whose only host does not exist: nothing to connect to, permanently.
    let failure = dns.host_plan("dangling.test", 1).await.unwrap_err();
    assert_eq!(failure.status.to_string(), "5.1.2");
    // mail.test exists (it has MX records) but no address records of its own.
    assert_eq!(
        dns.address_answer("mail.test").await,
        AddressAnswer::NoRecords
    );
}

#[tokio::test]
async fn a_refusing_server_is_a_temporary_failure() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let dns = resolver(&server, OverrideTable::new());
    // Outside the local zones dnsmasq has nowhere to forward to and refuses.
    let answer = dns.mx("example.com").await;
    assert!(
        matches!(answer, MxAnswer::TemporaryFailure(_)),
        "{answer:?}"
    );
    assert_eq!(
        dns.host_plan("example.com", 1)
            .await
            .unwrap_err()
            .status
            .to_string(),
        "4.4.3"
    );
}

#[tokio::test]
async fn reverse_names_are_forward_confirmed() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let dns = resolver(&server, OverrideTable::new());
    assert_eq!(
        dns.reverse_name(ip("192.0.2.11"))
            .await
            .map(|name| name.as_str().to_owned()),
        Some("mx1.mail.test".to_owned())
    );
    // liar.test is the PTR of .98 but resolves to .97.
    assert_eq!(dns.reverse_name(ip("192.0.2.98")).await, None);
    assert_eq!(dns.reverse_name(ip("192.0.2.77")).await, None);
}

#[tokio::test]
async fn the_override_table_answers_before_dns() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let mut overrides = OverrideTable::new();
    overrides
        .insert(
            "mail.test",
            OverrideEntry {
                mx: Some(vec![(5, "inside.mail.test".to_owned())]),
                addresses: None,
            },
        )
        .unwrap();
    overrides
        .insert(
            "inside.mail.test",
            OverrideEntry {
                mx: None,
                addresses: Some(vec![ip("10.1.2.3")]),
            },
        )
        .unwrap();
    let dns = resolver(&server, overrides);
    assert_eq!(
        dns.host_plan("mail.test", 3).await.unwrap(),
        vec![("inside.mail.test".to_owned(), vec![ip("10.1.2.3")])]
    );
    // Names the table does not mention still go to DNS.
    assert_eq!(
        dns.addresses("mx2.mail.test").await,
        Ok(vec![ip("192.0.2.12")])
    );
}
