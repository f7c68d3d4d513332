//! The `[[delivery.path]]` tables as a configuration writes them, read into the
//! delivery policy and the relays' credentials. One reading for every driver: net's
//! configuration file and the simulator's scenarios both hand their tables here, so
//! a table means the same in both (which address key a path takes, that a stricter
//! default TLS policy covers the domains no rule names, which credentials are
//! half-given or off a relay).

use super::credentials::{ConflictingCredentials, RelayCredentials};
use super::path::{DeliveryPolicy, PolicyError, RuleText, parse_host_port};
use crate::smtp::client::{ClientAuth, Password};

/// The port a relay is contacted on when its address names none (RFC 5321 §4.5.4).
const RELAY_DEFAULT_PORT: u16 = 25;

/// One `[[delivery.path]]` table as written. The password is the text itself: a
/// driver that keeps it in a file reads the file first.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathTable<'a> {
    /// `example.org`, `*.example.org` (its subdomains) or `*` (every domain).
    pub domains: &'a [String],
    /// mx, relay or lmtp.
    pub path: &'a str,
    /// With path = "relay": "HOST:PORT" (port 25 when left out).
    pub relay: Option<&'a str>,
    /// With path = "lmtp": "HOST:PORT".
    pub lmtp: Option<&'a str>,
    /// opportunistic, required or disabled; the default policy when absent.
    pub tls: Option<&'a str>,
    /// With path = "relay": the AUTH username (RFC 4954), with `password`.
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    /// AUTH may go out on a connection without TLS (a relay on a trusted network).
    pub plaintext_auth: bool,
}

/// What was wrong with the tables. [`PathTableError::key`] names the key, as both
/// net's configuration and the simulator's scenarios spell it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathTableError {
    #[error("a rule needs at least one entry in domains")]
    NoDomains,
    #[error(transparent)]
    Policy(PolicyError),
    #[error("{0}")]
    RelayAddress(PolicyError),
    #[error("credentials are for path = \"relay\" only")]
    CredentialsOffRelay,
    #[error("must not be empty")]
    EmptyUsername,
    #[error("a username needs a password")]
    UsernameWithoutPassword,
    #[error("a password needs a username")]
    PasswordWithoutUsername,
    #[error("only means something with a username and password")]
    PlaintextWithoutCredentials,
    #[error(transparent)]
    Conflicting(ConflictingCredentials),
}

impl PathTableError {
    /// The key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            PathTableError::NoDomains | PathTableError::Policy(_) => "delivery.path",
            PathTableError::RelayAddress(_) => "delivery.path.relay",
            PathTableError::UsernameWithoutPassword => "delivery.path.password",
            PathTableError::PlaintextWithoutCredentials => "delivery.path.plaintext_auth",
            PathTableError::CredentialsOffRelay
            | PathTableError::EmptyUsername
            | PathTableError::PasswordWithoutUsername
            | PathTableError::Conflicting(_) => "delivery.path.username",
        }
    }
}

impl PathTable<'_> {
    fn is_relay(&self) -> bool {
        self.path.eq_ignore_ascii_case("relay")
    }

    /// The address key that belongs to this table's path.
    fn address(&self) -> Option<&str> {
        if self.is_relay() {
            self.relay
        } else if self.path.eq_ignore_ascii_case("lmtp") {
            self.lmtp
        } else {
            None
        }
    }

    /// This table's AUTH credentials, if it has any; half-given ones are an error.
    pub fn client_auth(&self) -> Result<Option<ClientAuth>, PathTableError> {
        match (self.username, self.password) {
            (Some(""), Some(_)) => Err(PathTableError::EmptyUsername),
            (Some(username), Some(password)) => Ok(Some(ClientAuth {
                username: username.to_owned(),
                password: Password::new(password),
                plaintext_allowed: self.plaintext_auth,
            })),
            (Some(_), None) => Err(PathTableError::UsernameWithoutPassword),
            (None, Some(_)) => Err(PathTableError::PasswordWithoutUsername),
            (None, None) if self.plaintext_auth => Err(PathTableError::PlaintextWithoutCredentials),
            (None, None) => Ok(None),
        }
    }
}

/// The delivery policy of `tables`; `default_tls` is the policy where a table names
/// none. A default stricter than opportunistic also covers every domain no table
/// names (an MX rule for `*`), unless a table already covers every domain.
pub fn delivery_policy(
    tables: &[PathTable<'_>],
    default_tls: &str,
) -> Result<DeliveryPolicy, PathTableError> {
    let mut rules = Vec::new();
    for table in tables {
        if table.domains.is_empty() {
            return Err(PathTableError::NoDomains);
        }
        for pattern in table.domains {
            rules.push(RuleText {
                pattern,
                path: table.path,
                address: table.address(),
                tls: table.tls.or(Some(default_tls)),
            });
        }
    }
    let covers_every_domain = tables
        .iter()
        .any(|table| table.domains.iter().any(|domain| domain == "*"));
    if default_tls != "opportunistic" && !covers_every_domain {
        rules.push(RuleText {
            pattern: "*",
            path: "mx",
            address: None,
            tls: Some(default_tls),
        });
    }
    DeliveryPolicy::parse(rules).map_err(PathTableError::Policy)
}

/// The credentials of the relays in `tables` that require AUTH.
pub fn relay_credentials(tables: &[PathTable<'_>]) -> Result<RelayCredentials, PathTableError> {
    let mut credentials = RelayCredentials::default();
    for table in tables {
        let Some(auth) = table.client_auth()? else {
            continue;
        };
        let Some(relay) = table.relay.filter(|_| table.is_relay()) else {
            return Err(PathTableError::CredentialsOffRelay);
        };
        let (host, port) = parse_host_port(relay, Some(RELAY_DEFAULT_PORT))
            .map_err(PathTableError::RelayAddress)?;
        credentials
            .insert(&host, port, auth)
            .map_err(PathTableError::Conflicting)?;
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{DeliveryPath, TlsPolicy};

    #[test]
    fn a_table_without_credentials_has_no_auth() {
        let relayed = domains(&["far.example"]);
        let table = PathTable {
            domains: &relayed,
            path: "relay",
            relay: Some("smart.example"),
            ..PathTable::default()
        };
        assert_eq!(table.client_auth(), Ok(None));
    }

    #[test]
    fn an_opportunistic_default_adds_no_rule() {
        // Opportunistic TLS over MX is what an unnamed domain gets anyway: the
        // policy of no tables is the empty policy, not one with a `*` rule.
        assert_eq!(
            delivery_policy(&[], "opportunistic"),
            Ok(DeliveryPolicy::default())
        );
    }

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|domain| (*domain).to_owned()).collect()
    }

    #[test]
    fn each_path_takes_its_own_address_key() {
        let relayed = domains(&["far.example"]);
        let backend = domains(&["*.inside.example"]);
        let tables = [
            PathTable {
                domains: &relayed,
                path: "relay",
                relay: Some("smart.example:587"),
                lmtp: Some("ignored:24"),
                ..PathTable::default()
            },
            PathTable {
                domains: &backend,
                path: "lmtp",
                lmtp: Some("be.example:24"),
                tls: Some("disabled"),
                ..PathTable::default()
            },
        ];
        let policy = delivery_policy(&tables, "opportunistic").unwrap();
        assert_eq!(
            policy.destination_for("far.example").path,
            DeliveryPath::Relay {
                host: "smart.example".to_owned(),
                port: 587
            }
        );
        let inside = policy.destination_for("a.inside.example");
        assert_eq!(inside.tls, TlsPolicy::Disabled);
        assert!(matches!(inside.path, DeliveryPath::Lmtp { port: 24, .. }));
        assert_eq!(
            policy.destination_for("other.example").tls,
            TlsPolicy::Opportunistic
        );
    }

    #[test]
    fn a_strict_default_covers_the_domains_no_table_names() {
        let relayed = domains(&["far.example"]);
        let tables = [PathTable {
            domains: &relayed,
            path: "relay",
            relay: Some("smart.example"),
            ..PathTable::default()
        }];
        let policy = delivery_policy(&tables, "required").unwrap();
        let other = policy.destination_for("other.example");
        assert_eq!(other.tls, TlsPolicy::Required);
        assert!(matches!(other.path, DeliveryPath::Mx { .. }));
        assert_eq!(
            delivery_policy(
                &[PathTable {
                    path: "mx",
                    ..PathTable::default()
                }],
                "opportunistic"
            ),
            Err(PathTableError::NoDomains)
        );
    }

    #[test]
    fn credentials_belong_to_relays_and_come_whole() {
        let every = domains(&["*"]);
        let relay = PathTable {
            domains: &every,
            path: "relay",
            relay: Some("Smart.Example"),
            username: Some("u"),
            password: Some("hunter2"),
            plaintext_auth: true,
            ..PathTable::default()
        };
        let credentials = relay_credentials(&[relay]).unwrap();
        let auth = credentials
            .for_path(&DeliveryPath::Relay {
                host: "smart.example".to_owned(),
                port: 25,
            })
            .unwrap();
        assert_eq!(auth.username, "u");
        assert!(auth.plaintext_allowed);
        let errors = [
            (
                PathTable {
                    password: None,
                    ..relay
                },
                "delivery.path.password",
            ),
            (
                PathTable {
                    username: None,
                    ..relay
                },
                "delivery.path.username",
            ),
            (
                PathTable {
                    username: Some(""),
                    ..relay
                },
                "delivery.path.username",
            ),
            (
                PathTable {
                    username: None,
                    password: None,
                    ..relay
                },
                "delivery.path.plaintext_auth",
            ),
            (
                PathTable {
                    path: "mx",
                    ..relay
                },
                "delivery.path.username",
            ),
            (
                PathTable {
                    relay: Some("smart.example:x"),
                    ..relay
                },
                "delivery.path.relay",
            ),
        ];
        for (table, key) in errors {
            let error = relay_credentials(&[table]).unwrap_err();
            assert_eq!(error.key(), key, "{error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let other = PathTable {
            password: Some("q"),
            ..relay
        };
        assert_eq!(
            relay_credentials(&[relay, other]).unwrap_err().key(),
            "delivery.path.username"
        );
    }
}
