//! Delivery: what happens to an accepted copy once it leaves the receiving session —
//! the path it takes (a domain's MX hosts, a relay, a backend's LMTP service, or this
//! node's own mailboxes) and what one attempt on that path learned per recipient.
//!
//! These types are the contract between the queue (which schedules attempts and
//! keeps per-recipient state), the SMTP/LMTP client session (which makes one attempt)
//! and the notice builder (which tells the sender). Submodules:
//! - `path`: the delivery policy, domain patterns to [`Destination`]s (the router's
//!   decision for external recipients);
//! - `mx`: an MX answer to the ordered list of hosts to try (RFC 5321 §5.1, RFC 7505);
//! - `hosts`: which lookup a path needs, and the hosts its walk tries from the answer;
//! - `walk`: one attempt's walk over those hosts and their addresses, with the TLS
//!   fallback, to a result per recipient;
//! - `credentials`: which credentials a relay path authenticates with (RFC 4954);
//! - `tables`: the `[[delivery.path]]` tables as written, read into the policy and
//!   the relays' credentials (net's configuration and the simulator's scenarios).

pub mod credentials;
pub mod hosts;
pub mod mx;
pub mod path;
pub mod tables;
mod text;
pub mod walk;

pub use credentials::{ConflictingCredentials, RelayCredentials};
pub use path::{DeliveryPolicy, DomainPattern, PolicyError, PolicyRule, RulePath, RuleText};
pub use tables::{PathTable, PathTableError};
pub use text::DestinationTextError;

use crate::smtp::reply::{EnhancedStatus, Reply};

/// How a path is reached: the transport and, for the network ones, where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryPath {
    /// Straight to the MX hosts of `domain` (ASCII, lower case; A-labels for IDNs).
    Mx { domain: String },
    /// Through a configured relay (smarthost); `host` is a name or an address literal.
    Relay { host: String, port: u16 },
    /// Final delivery to a backend's LMTP service (RFC 2033).
    Lmtp { host: String, port: u16 },
    /// Final delivery into this node's own mailboxes, in-process (role `all`).
    Local,
}

impl DeliveryPath {
    /// Whether mail on this path leaves our own tiers for another organisation's
    /// server (MX or relay), rather than reaching our backend (LMTP, local): such
    /// mail is DKIM-signed for its sending domain.
    pub fn leaves_our_tiers(&self) -> bool {
        matches!(self, DeliveryPath::Mx { .. } | DeliveryPath::Relay { .. })
    }
}

/// What the client demands of TLS on a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsPolicy {
    /// STARTTLS when the server offers it, without certificate verification; plain
    /// text otherwise, and plain text again after a failed handshake (RFC 3207 §4.1
    /// leaves this to the client; it is what the established MTAs do by default).
    #[default]
    Opportunistic,
    /// STARTTLS must succeed and the certificate must verify for the host name;
    /// otherwise the attempt is a temporary failure (4.7.5).
    Required,
    /// Never STARTTLS (for peers known to have broken TLS).
    Disabled,
}

/// Where a recipient's copy goes: the queue's unit of grouping, concurrency and
/// rate limits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub path: DeliveryPath,
    pub tls: TlsPolicy,
}

impl Destination {
    /// The default: the domain's MX hosts, opportunistic TLS.
    pub fn mx(domain: &str) -> Destination {
        Destination {
            path: DeliveryPath::Mx {
                domain: domain.to_ascii_lowercase(),
            },
            tls: TlsPolicy::Opportunistic,
        }
    }

    /// The MX hosts of `address`'s domain: where a copy goes when nothing else was
    /// decided for it — a queue record written before records kept their
    /// destination, or a copy made without a delivery policy.
    pub fn mx_of_address(address: &str) -> Destination {
        Destination::mx(address_domain(address))
    }
}

/// The domain of an address: the text after its last `@` (a quoted local part may
/// itself hold one). Text without any `@` is taken whole, so that a malformed
/// address still names something DNS answers (with NXDOMAIN, a permanent failure)
/// instead of an empty name.
pub fn address_domain(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map_or(address, |(_, domain)| domain)
}

/// Why a recipient was not delivered on an attempt (RFC 3464's per-recipient fields).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Failure {
    /// The RFC 3463 status reported in the notice's `Status:` field.
    pub status: EnhancedStatus,
    /// The host that answered, for `Remote-MTA:` (`dns; name`), if one did.
    pub remote_mta: Option<String>,
    pub diagnostic: Diagnostic,
}

/// What went wrong, as a notice and the queue listing show it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// The remote server's reply: becomes `Diagnostic-Code: smtp; <code> <text>`.
    Reply(Reply),
    /// A failure on our side of the conversation (no MX, connection refused, TLS
    /// required but failed, timeout, loop detected): for humans only.
    Local(String),
}

/// What one attempt learned about one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecipientResult {
    /// The remote took responsibility (2xx after the data, or LMTP's per-recipient 2xx).
    Delivered {
        remote_mta: Option<String>,
        reply: Reply,
        /// The remote offered DSN and got this recipient's NOTIFY/ORCPT (and the
        /// message's RET/ENVID): notices are its job from here (RFC 3461 §5.2.2).
        /// False for final delivery (LMTP, local) and for servers without DSN, where a
        /// requested success notice is ours to send ("delivered" or "relayed").
        notify_passed_on: bool,
    },
    /// Try again later: 4xx, connection or TLS failure, timeout, DNS failure.
    Temporary(Failure),
    /// The end of the data was sent and the connection ended before the final reply
    /// (RFC 5321 §4.1.1.4, RFC 1047): the remote may hold the message already. It is
    /// deferred like a temporary failure — never sent again at once to another host —
    /// and a copy the next attempt delivers may reach the recipient twice. Kept apart
    /// so that the queue's log and the simulator can account for such duplicates.
    Ambiguous(Failure),
    /// Never going to work: 5xx, null MX, a UTF-8 envelope to a server without SMTPUTF8.
    Permanent(Failure),
}

impl Failure {
    /// No connection could be made to `host` (refused, unreachable, timed out): a
    /// temporary failure, RFC 3463 4.4.1 "no answer from host".
    pub fn no_connection(host: &str, reason: &str) -> Failure {
        Failure {
            status: EnhancedStatus::new(4, 4, 1),
            remote_mta: None,
            diagnostic: Diagnostic::Local(format!("cannot connect to {host}: {reason}")),
        }
    }

    /// Our own side failed before any server was asked (the message could not be
    /// read, say): temporary, RFC 3463 4.3.0 "other or undefined mail system status".
    pub fn local_error(reason: &str) -> Failure {
        Failure {
            status: EnhancedStatus::new(4, 3, 0),
            remote_mta: None,
            diagnostic: Diagnostic::Local(reason.to_owned()),
        }
    }

    /// Whether the failure is for good (class 5).
    pub fn is_permanent(&self) -> bool {
        self.status.class == 5
    }
}

impl RecipientResult {
    /// Whether the recipient waits for another attempt (temporary or ambiguous).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            RecipientResult::Temporary(_) | RecipientResult::Ambiguous(_)
        )
    }

    /// A failure as the result it is: permanent for class 5, else temporary.
    pub fn from_failure(failure: Failure) -> RecipientResult {
        if failure.is_permanent() {
            RecipientResult::Permanent(failure)
        } else {
            RecipientResult::Temporary(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mx_and_relay_paths_leave_our_tiers() {
        let mx = DeliveryPath::Mx {
            domain: "far.example".to_owned(),
        };
        let relay = DeliveryPath::Relay {
            host: "smart.example".to_owned(),
            port: 587,
        };
        let backend = DeliveryPath::Lmtp {
            host: "backend.inside".to_owned(),
            port: 24,
        };
        assert!(mx.leaves_our_tiers());
        assert!(relay.leaves_our_tiers());
        assert!(!backend.leaves_our_tiers());
        assert!(!DeliveryPath::Local.leaves_our_tiers());
    }

    #[test]
    fn only_a_class_5_failure_is_permanent() {
        assert!(!Failure::no_connection("mx.far.example", "refused").is_permanent());
        assert!(!Failure::local_error("the body is unreadable").is_permanent());
        let refused = Failure {
            status: EnhancedStatus::new(5, 1, 1),
            remote_mta: None,
            diagnostic: Diagnostic::Local("no such user".to_owned()),
        };
        assert!(refused.is_permanent());
    }

    #[test]
    fn an_address_goes_to_its_domains_mx_hosts_by_the_last_at() {
        assert_eq!(
            Destination::mx_of_address("Bob@Far.Example"),
            Destination::mx("far.example")
        );
        // A quoted local part may hold an `@`; the domain follows the last one.
        assert_eq!(
            Destination::mx_of_address("\"a@b\"@c.example").path,
            DeliveryPath::Mx {
                domain: "c.example".to_owned()
            }
        );
        assert_eq!(
            Destination::mx_of_address("x@y.test").tls,
            TlsPolicy::Opportunistic
        );
    }

    #[test]
    fn only_temporary_and_ambiguous_results_wait_for_another_attempt() {
        let failure = Failure::no_connection("mx.far.example", "refused");
        assert!(RecipientResult::Temporary(failure.clone()).is_temporary());
        assert!(RecipientResult::Ambiguous(failure.clone()).is_temporary());
        assert!(!RecipientResult::Permanent(failure).is_temporary());
        let delivered = RecipientResult::Delivered {
            remote_mta: None,
            reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "ok"),
            notify_passed_on: false,
        };
        assert!(!delivered.is_temporary());
    }

    #[test]
    fn text_without_an_at_is_its_own_domain() {
        assert_eq!(address_domain("postmaster"), "postmaster");
        assert_eq!(address_domain("a@"), "");
        assert_eq!(
            Destination::mx_of_address("nobody"),
            Destination::mx("nobody")
        );
    }
}
