//! The delivery-paths checker: mail for a domain under a relay rule reaches only
//! that relay's hosts, and where the rule has credentials only in a session that
//! authenticated with them; mail under an MX rule (or under no rule) reaches only
//! its domain's MX; and credentials go only to the relay they belong to, neither
//! given to a session for another server nor received by one. The rules are read
//! from the scenario by the checker's own matcher, apart from core's policy.

use super::{Guarantee, Observations, Violation};
use sluice_core::time::Instant;
use std::collections::{BTreeMap, BTreeSet};

/// A remote server (an MX or a relay host) stored a message for a recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub at: Instant,
    pub server: String,
    pub tag: String,
    pub recipient: String,
    /// The identity the session authenticated as, if it did.
    pub authenticated: Option<String>,
}

/// Credentials on their way: given to a delivery session by a host, or received
/// by a server in an AUTH command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsSeen {
    pub at: Instant,
    pub client: String,
    pub server: String,
    pub username: String,
    /// `None`: given to a session; `Some(valid)`: received, and the server's answer.
    pub received: Option<bool>,
}

/// Where the checker expects a domain's mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The domain's own MX server.
    Mx,
    /// One of the relay's hosts; after AUTH as `username` if set.
    Relay {
        name: String,
        hosts: BTreeSet<String>,
        username: Option<String>,
    },
}

/// The checker's model of the scenario's rules and of the world's MX servers.
#[derive(Clone, Debug, Default)]
pub struct PathOracle {
    /// (pattern as written, lower case; where its mail goes).
    pub rules: Vec<(String, Expected)>,
    /// Domain → the remote server that is its MX.
    pub mx: BTreeMap<String, String>,
}

impl PathOracle {
    /// The rule for `domain`: an exact pattern, else the `*.parent` pattern of the
    /// nearest parent, else `*`, else MX.
    pub fn expected(&self, domain: &str) -> Expected {
        let domain = domain.to_ascii_lowercase();
        let find = |pattern: &str| {
            self.rules
                .iter()
                .find(|(written, _)| written.trim_end_matches('.') == pattern)
                .map(|(_, expected)| expected.clone())
        };
        if let Some(expected) = find(&domain) {
            return expected;
        }
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(expected) = find(&format!("*.{parent}")) {
                return expected;
            }
            rest = parent;
        }
        find("*").unwrap_or(Expected::Mx)
    }

    /// The relay whose hosts include `server`, with its account's username.
    fn relay_of(&self, server: &str) -> Option<(&str, Option<&str>)> {
        self.rules.iter().find_map(|(_, expected)| match expected {
            Expected::Relay {
                name,
                hosts,
                username,
            } if hosts.contains(server) => Some((name.as_str(), username.as_deref())),
            _ => None,
        })
    }
}

/// What the run's remote servers took, by path: the summary's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathFigures {
    /// Copies stored by relay hosts, and of those the ones after AUTH.
    pub relay_copies: usize,
    pub relay_after_auth: usize,
    /// Copies stored by MX servers.
    pub mx_copies: usize,
    /// AUTH commands relay hosts received, and how many were refused.
    pub auth_received: usize,
    pub auth_refused: usize,
}

impl PathFigures {
    pub fn of(obs: &Observations, oracle: &PathOracle) -> PathFigures {
        let mut figures = PathFigures::default();
        for arrival in &obs.arrivals {
            if oracle.relay_of(&arrival.server).is_some() {
                figures.relay_copies += 1;
                figures.relay_after_auth += usize::from(arrival.authenticated.is_some());
            } else {
                figures.mx_copies += 1;
            }
        }
        for seen in &obs.credentials {
            if let Some(valid) = seen.received {
                figures.auth_received += 1;
                figures.auth_refused += usize::from(!valid);
            }
        }
        figures
    }
}

pub(super) fn delivery_paths(
    obs: &Observations,
    oracle: &PathOracle,
    violations: &mut Vec<Violation>,
) {
    for arrival in &obs.arrivals {
        let domain = arrival
            .recipient
            .rsplit_once('@')
            .map_or(arrival.recipient.as_str(), |(_, domain)| domain);
        let wrong = match oracle.expected(domain) {
            Expected::Mx => match oracle.mx.get(&domain.to_ascii_lowercase()) {
                Some(mx) if *mx == arrival.server => None,
                mx => Some(format!(
                    "its domain's MX is {}",
                    mx.map_or("unknown", String::as_str)
                )),
            },
            Expected::Relay {
                name,
                hosts,
                username,
            } => {
                if !hosts.contains(&arrival.server) {
                    Some(format!("its rule sends it through relay {name}"))
                } else if username.is_some() && arrival.authenticated != username {
                    Some(format!(
                        "relay {name} took it in a session authenticated as {:?}, not {:?}",
                        arrival.authenticated, username
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(wrong) = wrong {
            violations.push(Violation {
                guarantee: Guarantee::DeliveryPaths,
                subject: arrival.tag.clone(),
                detail: format!(
                    "{} for {} reached {} at t+{}ms, but {wrong}",
                    arrival.tag,
                    arrival.recipient,
                    arrival.server,
                    arrival.at.as_millis()
                ),
            });
        }
    }
    for seen in &obs.credentials {
        let belongs = oracle
            .relay_of(&seen.server)
            .is_some_and(|(_, username)| username == Some(seen.username.as_str()));
        if !belongs {
            let how = if seen.received.is_some() {
                "received"
            } else {
                "was given"
            };
            violations.push(Violation {
                guarantee: Guarantee::DeliveryPaths,
                subject: seen.server.clone(),
                detail: format!(
                    "{} {how} the credentials of {} on a connection from {} at t+{}ms, \
                     and no rule gives it credentials",
                    seen.server,
                    seen.username,
                    seen.client,
                    seen.at.as_millis()
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle() -> PathOracle {
        let relay = Expected::Relay {
            name: "smart.example".to_owned(),
            hosts: BTreeSet::from(["r1.smart.example".to_owned()]),
            username: Some("gw".to_owned()),
        };
        PathOracle {
            rules: vec![
                ("*.remote2.example".to_owned(), relay.clone()),
                ("remote2.example".to_owned(), relay),
                ("x.remote2.example".to_owned(), Expected::Mx),
            ],
            mx: BTreeMap::from([
                (
                    "remote1.example".to_owned(),
                    "mx.remote1.example".to_owned(),
                ),
                (
                    "remote2.example".to_owned(),
                    "mx.remote2.example".to_owned(),
                ),
            ]),
        }
    }

    fn arrival(server: &str, recipient: &str, authenticated: Option<&str>) -> Arrival {
        Arrival {
            at: Instant::from_millis(1),
            server: server.to_owned(),
            tag: "m1".to_owned(),
            recipient: recipient.to_owned(),
            authenticated: authenticated.map(str::to_owned),
        }
    }

    fn violations(obs: &Observations) -> Vec<Violation> {
        let mut found = Vec::new();
        delivery_paths(obs, &oracle(), &mut found);
        found
    }

    #[test]
    fn the_most_specific_rule_decides_where_mail_must_arrive() {
        let oracle = oracle();
        assert!(matches!(
            oracle.expected("a.b.remote2.example"),
            Expected::Relay { .. }
        ));
        assert_eq!(oracle.expected("x.remote2.example"), Expected::Mx);
        assert_eq!(oracle.expected("remote1.example"), Expected::Mx);
    }

    #[test]
    fn relayed_mail_must_arrive_at_its_relay_after_auth() {
        let mut obs = Observations::default();
        obs.arrivals
            .push(arrival("r1.smart.example", "a@remote2.example", Some("gw")));
        obs.arrivals
            .push(arrival("mx.remote1.example", "b@remote1.example", None));
        assert!(violations(&obs).is_empty());
        obs.arrivals
            .push(arrival("mx.remote2.example", "c@remote2.example", None));
        obs.arrivals
            .push(arrival("r1.smart.example", "d@remote2.example", None));
        obs.arrivals
            .push(arrival("r1.smart.example", "e@remote1.example", Some("gw")));
        let found = violations(&obs);
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn credentials_belong_to_their_relay_only() {
        let mut obs = Observations::default();
        let seen = |server: &str, received| CredentialsSeen {
            at: Instant::from_millis(1),
            client: "gw1".to_owned(),
            server: server.to_owned(),
            username: "gw".to_owned(),
            received,
        };
        obs.credentials.push(seen("r1.smart.example", None));
        obs.credentials.push(seen("r1.smart.example", Some(true)));
        assert!(violations(&obs).is_empty());
        obs.credentials.push(seen("mx.remote1.example", None));
        assert_eq!(violations(&obs).len(), 1);
    }
}
