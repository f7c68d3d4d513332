//! From a delivery path to the hosts its walk tries: which lookup a driver makes
//! (the MX plan of a domain, or the addresses of one named relay or LMTP host), and
//! the [`PlannedHost`] list core builds from the answer — with the port and protocol
//! each path implies. Drivers only perform the lookups.

use super::walk::PlannedHost;
use super::{DeliveryPath, Failure};
use crate::smtp::client::Protocol;
use core::net::IpAddr;

/// The lookup a path needs before its walk can start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostQuery {
    /// The MX plan of `domain` (core's `mx` ordering of the MX answer and the
    /// hosts' addresses); turn it into hosts with [`mx_hosts`].
    Mx { domain: String },
    /// The addresses of one named host (a relay or an LMTP service).
    Named(NamedHost),
}

/// A relay or LMTP host named by the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedHost {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

impl HostQuery {
    /// The lookup for `path`; a path the queue never delivers over (local delivery
    /// happens at acceptance) is a temporary failure.
    pub fn for_path(path: &DeliveryPath) -> Result<HostQuery, Failure> {
        match path {
            DeliveryPath::Mx { domain } => Ok(HostQuery::Mx {
                domain: domain.clone(),
            }),
            DeliveryPath::Relay { host, port } => Ok(HostQuery::Named(NamedHost {
                name: host.clone(),
                port: *port,
                protocol: Protocol::Smtp,
            })),
            DeliveryPath::Lmtp { host, port } => Ok(HostQuery::Named(NamedHost {
                name: host.clone(),
                port: *port,
                protocol: Protocol::Lmtp,
            })),
            DeliveryPath::Local => Err(Failure::local_error(
                "local delivery is made when the message is accepted, not by the queue",
            )),
        }
    }
}

impl NamedHost {
    /// The walk's one host once its addresses are known; a failed lookup (the
    /// resolver's reason) is a temporary failure to reach it.
    pub fn resolved(
        self,
        addresses: Result<Vec<IpAddr>, String>,
    ) -> Result<Vec<PlannedHost>, Failure> {
        let addresses = addresses.map_err(|reason| Failure::no_connection(&self.name, &reason))?;
        Ok(vec![PlannedHost {
            name: self.name,
            addresses,
            port: self.port,
            protocol: self.protocol,
        }])
    }
}

/// The walk's hosts from an MX plan (name and addresses per host, in order), all
/// spoken to with SMTP on `port` (25 outside tests).
pub fn mx_hosts(plan: Vec<(String, Vec<IpAddr>)>, port: u16) -> Vec<PlannedHost> {
    plan.into_iter()
        .map(|(name, addresses)| PlannedHost {
            name,
            addresses,
            port,
            protocol: Protocol::Smtp,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_asks_for_its_lookup_and_gets_its_port_and_protocol() {
        let mx = DeliveryPath::Mx {
            domain: "b.example".to_owned(),
        };
        assert_eq!(
            HostQuery::for_path(&mx),
            Ok(HostQuery::Mx {
                domain: "b.example".to_owned()
            })
        );
        let address: IpAddr = "192.0.2.7".parse().expect("ip");
        let hosts = mx_hosts(vec![("mx.b.example".to_owned(), vec![address])], 25);
        assert_eq!(hosts[0].port, 25);
        assert_eq!(hosts[0].protocol, Protocol::Smtp);

        for (path, protocol) in [
            (
                DeliveryPath::Lmtp {
                    host: "backend".to_owned(),
                    port: 24,
                },
                Protocol::Lmtp,
            ),
            (
                DeliveryPath::Relay {
                    host: "relay".to_owned(),
                    port: 587,
                },
                Protocol::Smtp,
            ),
        ] {
            let Ok(HostQuery::Named(named)) = HostQuery::for_path(&path) else {
                panic!("a named host for {path:?}");
            };
            assert_eq!(named.protocol, protocol);
            let port = named.port;
            let hosts = named.clone().resolved(Ok(vec![address])).expect("hosts");
            assert_eq!(
                (hosts.len(), hosts[0].port, hosts[0].protocol),
                (1, port, protocol)
            );
            let failure = named
                .resolved(Err("NXDOMAIN".to_owned()))
                .expect_err("no host");
            assert!(!failure.is_permanent());
        }
        let local = HostQuery::for_path(&DeliveryPath::Local).expect_err("not queued");
        assert!(!local.is_permanent());
    }
}
