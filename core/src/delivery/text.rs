//! The text form of a [`Destination`], as the store keeps it and `sluice queue`
//! shows it: `mx:DOMAIN`, `relay:HOST:PORT`, `lmtp:HOST:PORT` or `local`, then a
//! space and `tls=opportunistic|required|disabled`. IPv6 hosts are bracketed.

use super::{DeliveryPath, Destination, TlsPolicy, path::parse_host_port};
use std::fmt;
use std::str::FromStr;

impl fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsPolicy::Opportunistic => "opportunistic",
            TlsPolicy::Required => "required",
            TlsPolicy::Disabled => "disabled",
        })
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for DeliveryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryPath::Mx { domain } => write!(f, "mx:{domain}"),
            DeliveryPath::Relay { host, port } => write!(f, "relay:{}", host_port(host, *port)),
            DeliveryPath::Lmtp { host, port } => write!(f, "lmtp:{}", host_port(host, *port)),
            DeliveryPath::Local => f.write_str("local"),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tls={}", self.path, self.tls)
    }
}

/// Why a stored destination could not be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a destination: {0:?}")]
pub struct DestinationTextError(pub String);

impl FromStr for Destination {
    type Err = DestinationTextError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || DestinationTextError(text.to_owned());
        let (path, tls) = text.split_once(" tls=").ok_or_else(bad)?;
        let tls = tls.parse::<TlsPolicy>().map_err(|_| bad())?;
        let path = if path == "local" {
            DeliveryPath::Local
        } else if let Some(domain) = path.strip_prefix("mx:") {
            if domain.is_empty() {
                return Err(bad());
            }
            DeliveryPath::Mx {
                domain: domain.to_owned(),
            }
        } else if let Some(address) = path.strip_prefix("relay:") {
            let (host, port) = parse_host_port(address, None).map_err(|_| bad())?;
            DeliveryPath::Relay { host, port }
        } else if let Some(address) = path.strip_prefix("lmtp:") {
            let (host, port) = parse_host_port(address, None).map_err(|_| bad())?;
            DeliveryPath::Lmtp { host, port }
        } else {
            return Err(bad());
        };
        Ok(Destination { path, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_destination_reads_back_as_written() {
        let cases = [
            Destination::mx("example.org"),
            Destination {
                path: DeliveryPath::Relay {
                    host: "smtp.example.net".to_owned(),
                    port: 587,
                },
                tls: TlsPolicy::Required,
            },
            Destination {
                path: DeliveryPath::Lmtp {
                    host: "::1".to_owned(),
                    port: 2424,
                },
                tls: TlsPolicy::Disabled,
            },
            Destination {
                path: DeliveryPath::Local,
                tls: TlsPolicy::Opportunistic,
            },
        ];
        for destination in cases {
            let text = destination.to_string();
            assert_eq!(text.parse::<Destination>(), Ok(destination), "{text}");
        }
        assert_eq!(
            Destination::mx("example.org").to_string(),
            "mx:example.org tls=opportunistic"
        );
    }

    #[test]
    fn junk_is_refused() {
        for text in [
            "",
            "mx:",
            "mx:a.test",
            "smtp:a.test tls=required",
            "relay:h tls=required",
            "mx:a.test tls=maybe",
        ] {
            assert!(text.parse::<Destination>().is_err(), "{text}");
        }
    }
}
