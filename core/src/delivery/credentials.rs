//! Which credentials a delivery path authenticates with: relays (smarthosts) may
//! require AUTH (RFC 4954), and each relay has one set of credentials. MX and LMTP
//! paths never authenticate. The credentials are configuration, never stored in
//! the queue, so a changed password applies to the next attempt.

use super::DeliveryPath;
use crate::smtp::client::ClientAuth;
use std::collections::BTreeMap;

/// Credentials per relay (host and port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayCredentials {
    by_relay: BTreeMap<(String, u16), ClientAuth>,
}

/// Two rules name the same relay with different credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("relay {host}:{port} is given two different sets of credentials")]
pub struct ConflictingCredentials {
    pub host: String,
    pub port: u16,
}

impl RelayCredentials {
    /// Adds the credentials of relay `host:port`; the same ones twice are fine (one
    /// relay serving several rules), different ones are an error: which would be
    /// used would depend on the recipient's domain, which is not what a reader of
    /// the configuration expects.
    pub fn insert(
        &mut self,
        host: &str,
        port: u16,
        auth: ClientAuth,
    ) -> Result<(), ConflictingCredentials> {
        let key = (host.to_ascii_lowercase(), port);
        match self.by_relay.get(&key) {
            Some(existing) if *existing != auth => {
                Err(ConflictingCredentials { host: key.0, port })
            }
            Some(_) => Ok(()),
            None => {
                self.by_relay.insert(key, auth);
                Ok(())
            }
        }
    }

    /// The credentials an attempt on `path` authenticates with, if any.
    pub fn for_path(&self, path: &DeliveryPath) -> Option<&ClientAuth> {
        match path {
            DeliveryPath::Relay { host, port } => {
                self.by_relay.get(&(host.to_ascii_lowercase(), *port))
            }
            DeliveryPath::Mx { .. } | DeliveryPath::Lmtp { .. } | DeliveryPath::Local => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_relay.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::client::Password;

    fn auth(password: &str) -> ClientAuth {
        ClientAuth {
            username: "user".to_owned(),
            password: Password::new(password),
            plaintext_allowed: false,
        }
    }

    #[test]
    fn only_the_named_relay_authenticates() {
        let mut credentials = RelayCredentials::default();
        assert!(credentials.is_empty());
        credentials.insert("Smart.Example", 587, auth("a")).unwrap();
        assert!(!credentials.is_empty());
        let relay = |host: &str, port| DeliveryPath::Relay {
            host: host.to_owned(),
            port,
        };
        assert_eq!(
            credentials.for_path(&relay("smart.example", 587)),
            Some(&auth("a"))
        );
        assert_eq!(credentials.for_path(&relay("smart.example", 25)), None);
        let mx = DeliveryPath::Mx {
            domain: "smart.example".to_owned(),
        };
        assert_eq!(credentials.for_path(&mx), None);
    }

    #[test]
    fn one_relay_has_one_set_of_credentials() {
        let mut credentials = RelayCredentials::default();
        credentials.insert("smart.example", 587, auth("a")).unwrap();
        credentials.insert("smart.example", 587, auth("a")).unwrap();
        assert_eq!(
            credentials.insert("smart.example", 587, auth("b")),
            Err(ConflictingCredentials {
                host: "smart.example".to_owned(),
                port: 587
            })
        );
    }
}
