//! The walk of one delivery attempt over its hosts: which host and address to try
//! next, with which TLS policy and for which recipients, and what every recipient
//! ends with. Drivers connect and run the client session for each [`Try`]; the walk
//! decides the rest:
//!
//! - hosts in the order given (MX preference order, or the one relay/LMTP host),
//!   each of their addresses in turn (RFC 5321 §5.1);
//! - a recipient with a final answer (delivered, or a 5xx) is done; one left
//!   unresolved by a failed session or a 4xx moves on to the next address;
//! - only the opportunistic TLS policy falls back to plain text, and only on the
//!   same address right after its handshake failed (RFC 3207 §4.1 leaves this to
//!   the client; a policy that requires TLS never does);
//! - a connection taken from the pool (reused) that ends before the server
//!   answered anything of this message's transaction was most likely closed by the
//!   server while idle: the same address is tried again at once on a fresh
//!   connection, once per address;
//! - a connection that ends after the end of the data was sent and before the final
//!   reply leaves the remote perhaps holding the message (RFC 5321 §4.1.1.4, RFC
//!   1047): those recipients are not tried anywhere else in this attempt, they end
//!   as [`RecipientResult::Ambiguous`] and the queue defers them;
//! - whatever no address resolved ends as a temporary failure carrying the last
//!   failure seen, so the queue defers it.

use super::{Failure, RecipientResult, TlsPolicy};
use crate::smtp::client::{
    OutgoingRecipient, Protocol, RecipientOutcome, SessionOutcome, TransactionProgress,
};
use core::net::{IpAddr, SocketAddr};

/// One host of the plan: its name (for TLS and Remote-MTA), addresses and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedHost {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
}

/// Fresh connections tried on one address after a reused one went stale: one is
/// enough to tell a stale pooled connection from a failing host, and the bound keeps
/// a driver that keeps reporting reuse from looping.
const FRESH_RETRIES_PER_ADDRESS: u8 = 1;

/// What to do next: connect to `address` (of host `name`) and run a session with
/// `tls` for `recipients`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Try {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    pub tls: TlsPolicy,
    pub recipients: Vec<OutgoingRecipient>,
    /// Open a new connection: an idle pooled one must not be used (the last one
    /// taken from the pool for this address went stale).
    pub fresh: bool,
}

/// How a try went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tried {
    /// No session: the connection could not be made.
    NoConnection(Failure),
    /// A session ran: an outcome per recipient of the try (in its order; a missing
    /// one counts as unresolved), how the session ended (`None`: it is still open and
    /// was handed back to a pool, every recipient answered), how far the message's
    /// transaction got (the report's `progress`), and whether the connection came
    /// from the pool rather than being opened for this try.
    Session {
        outcomes: Vec<RecipientOutcome>,
        ended: Option<SessionOutcome>,
        progress: TransactionProgress,
        reused: bool,
    },
}

impl Tried {
    /// A session on a connection opened for this try whose transaction finished.
    pub fn fresh_session(outcomes: Vec<RecipientOutcome>, ended: Option<SessionOutcome>) -> Tried {
        Tried::Session {
            outcomes,
            ended,
            progress: TransactionProgress::Finished,
            reused: false,
        }
    }
}

/// One attempt's walk; see the module documentation.
#[derive(Clone, Debug)]
pub struct Walk {
    hosts: Vec<PlannedHost>,
    host: usize,
    address: usize,
    /// The destination's TLS policy, restored for every new address.
    policy: TlsPolicy,
    tls: TlsPolicy,
    unresolved: Vec<OutgoingRecipient>,
    results: Vec<(String, RecipientResult)>,
    last_failure: Option<Failure>,
    /// The next try on this address must open a new connection.
    fresh: bool,
    /// Fresh retries made on this address after stale reused connections.
    fresh_retries: u8,
}

impl Walk {
    pub fn new(
        recipients: Vec<OutgoingRecipient>,
        policy: TlsPolicy,
        hosts: Vec<PlannedHost>,
    ) -> Walk {
        let mut walk = Walk {
            hosts,
            host: 0,
            address: 0,
            policy,
            tls: policy,
            unresolved: recipients,
            results: Vec::new(),
            last_failure: None,
            fresh: false,
            fresh_retries: 0,
        };
        walk.skip_empty_hosts();
        walk
    }

    /// Every recipient fails with `failure` (the hosts could not be found).
    pub fn without_hosts(
        recipients: &[OutgoingRecipient],
        failure: &Failure,
    ) -> Vec<(String, RecipientResult)> {
        recipients
            .iter()
            .map(|recipient| {
                (
                    recipient.address.clone(),
                    RecipientResult::from_failure(failure.clone()),
                )
            })
            .collect()
    }

    /// The next try, or `None` when the walk is over.
    pub fn next_try(&self) -> Option<Try> {
        if self.unresolved.is_empty() {
            return None;
        }
        let host = self.hosts.get(self.host)?;
        let address = *host.addresses.get(self.address)?;
        Some(Try {
            name: host.name.clone(),
            address: SocketAddr::new(address, host.port),
            protocol: host.protocol,
            tls: self.tls,
            recipients: self.unresolved.clone(),
            fresh: self.fresh,
        })
    }

    /// Takes in how the try from [`Walk::next_try`] went.
    pub fn tried(&mut self, tried: Tried) {
        let (outcomes, ended, progress, reused) = match tried {
            Tried::NoConnection(failure) => {
                self.last_failure = Some(failure);
                self.next_address();
                return;
            }
            Tried::Session {
                outcomes,
                ended,
                progress,
                reused,
            } => (outcomes, ended, progress, reused),
        };
        // Only a session that ended can leave a final reply owed.
        let ambiguous = ended.is_some() && progress == TransactionProgress::AwaitingFinalReply;
        let mut still = Vec::new();
        for (index, recipient) in std::mem::take(&mut self.unresolved).into_iter().enumerate() {
            match outcomes.get(index) {
                Some(RecipientOutcome::Final(result)) => {
                    self.results.push((recipient.address, result.clone()));
                }
                Some(RecipientOutcome::Unresolved(failure)) if ambiguous => {
                    // Name the host that may hold the message.
                    let mut failure = failure.clone();
                    if failure.remote_mta.is_none() {
                        failure.remote_mta = self.hosts.get(self.host).map(|h| h.name.clone());
                    }
                    self.results
                        .push((recipient.address, RecipientResult::Ambiguous(failure)));
                }
                Some(RecipientOutcome::Unresolved(failure)) => {
                    self.last_failure = Some(failure.clone());
                    still.push(recipient);
                }
                None => still.push(recipient),
            }
        }
        self.unresolved = still;
        let failure = match ended {
            None | Some(SessionOutcome::Completed) => return self.next_address(),
            Some(SessionOutcome::Failed(failure)) => failure.failure,
            Some(SessionOutcome::RetryWithoutTls(failure)) => {
                self.last_failure = Some(failure.failure);
                if self.tls == TlsPolicy::Opportunistic {
                    // The same address again, in plain text.
                    self.tls = TlsPolicy::Disabled;
                } else {
                    self.next_address();
                }
                return;
            }
        };
        self.last_failure = Some(failure);
        let stale = reused
            && matches!(
                progress,
                TransactionProgress::NotStarted | TransactionProgress::Unanswered
            );
        if stale && self.fresh_retries < FRESH_RETRIES_PER_ADDRESS {
            // The server most likely closed the idle connection: nothing of this
            // transaction reached it, so the same address on a new connection is safe.
            self.fresh_retries += 1;
            self.fresh = true;
        } else {
            self.next_address();
        }
    }

    /// Every recipient's result: the final ones, and a temporary failure for each
    /// one no address resolved.
    pub fn finish(self) -> Vec<(String, RecipientResult)> {
        let failure = self
            .last_failure
            .unwrap_or_else(|| Failure::local_error("no host could be tried for this destination"));
        let mut results = self.results;
        results.extend(self.unresolved.into_iter().map(|recipient| {
            (
                recipient.address,
                RecipientResult::Temporary(failure.clone()),
            )
        }));
        results
    }

    fn next_address(&mut self) {
        self.tls = self.policy;
        self.fresh = false;
        self.fresh_retries = 0;
        self.address += 1;
        self.skip_empty_hosts();
    }

    /// Moves past hosts whose addresses are all tried (or that have none).
    fn skip_empty_hosts(&mut self) {
        while let Some(host) = self.hosts.get(self.host) {
            if self.address < host.addresses.len() {
                return;
            }
            self.host += 1;
            self.address = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::client::{SessionFailure, SessionFailureKind};
    use crate::smtp::reply::{EnhancedStatus, Reply};

    fn recipient(address: &str) -> OutgoingRecipient {
        OutgoingRecipient {
            address: address.to_owned(),
            notify: None,
            orcpt: None,
        }
    }

    #[test]
    fn without_hosts_every_recipient_fails_with_the_lookup_failure() {
        let failure = Failure::no_connection("far.example", "no MX and no address");
        let results = Walk::without_hosts(
            &[recipient("a@far.example"), recipient("b@far.example")],
            &failure,
        );
        assert_eq!(
            results,
            vec![
                (
                    "a@far.example".to_owned(),
                    RecipientResult::from_failure(failure.clone())
                ),
                (
                    "b@far.example".to_owned(),
                    RecipientResult::from_failure(failure)
                ),
            ]
        );
    }

    fn host(name: &str, addresses: &[&str]) -> PlannedHost {
        PlannedHost {
            name: name.to_owned(),
            addresses: addresses.iter().map(|a| a.parse().expect("ip")).collect(),
            port: 25,
            protocol: Protocol::Smtp,
        }
    }

    fn temporary(text: &str) -> Failure {
        Failure::no_connection("mx", text)
    }

    fn delivered() -> RecipientOutcome {
        let status = EnhancedStatus {
            class: 2,
            subject: 0,
            detail: 0,
        };
        RecipientOutcome::Final(RecipientResult::Delivered {
            remote_mta: Some("mx".to_owned()),
            reply: Reply::new(250, status, "ok"),
            notify_passed_on: false,
        })
    }

    fn session_failure(text: &str) -> SessionFailure {
        SessionFailure {
            kind: SessionFailureKind::TlsFailed,
            failure: temporary(text),
        }
    }

    #[test]
    fn tries_every_address_of_every_host_in_order_until_all_are_resolved() {
        let mut walk = Walk::new(
            vec![recipient("a@x.test"), recipient("b@x.test")],
            TlsPolicy::Opportunistic,
            vec![
                host("mx1", &["192.0.2.1", "192.0.2.2"]),
                host("empty", &[]),
                host("mx2", &["192.0.2.3"]),
            ],
        );
        let first = walk.next_try().expect("a try");
        assert_eq!(first.address.to_string(), "192.0.2.1:25");
        walk.tried(Tried::NoConnection(temporary("refused")));
        let second = walk.next_try().expect("a try");
        assert_eq!(second.address.to_string(), "192.0.2.2:25");
        // a@ delivered, b@ deferred by a 4xx: b@ moves on to the next host.
        walk.tried(Tried::fresh_session(
            vec![delivered(), RecipientOutcome::Unresolved(temporary("4xx"))],
            Some(SessionOutcome::Completed),
        ));
        let third = walk.next_try().expect("a try");
        assert_eq!(third.name, "mx2");
        assert_eq!(third.recipients, vec![recipient("b@x.test")]);
        walk.tried(Tried::fresh_session(vec![delivered()], None));
        assert_eq!(walk.next_try(), None);
        let results = walk.finish();
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|(_, result)| matches!(result, RecipientResult::Delivered { .. }))
        );
    }

    #[test]
    fn only_opportunistic_tls_falls_back_to_plain_text_on_the_same_address() {
        for (policy, falls_back) in [
            (TlsPolicy::Opportunistic, true),
            (TlsPolicy::Required, false),
        ] {
            let mut walk = Walk::new(
                vec![recipient("a@x.test")],
                policy,
                vec![host("mx", &["192.0.2.1", "192.0.2.2"])],
            );
            walk.tried(Tried::fresh_session(
                vec![RecipientOutcome::Unresolved(temporary("tls"))],
                Some(SessionOutcome::RetryWithoutTls(session_failure(
                    "handshake",
                ))),
            ));
            let next = walk.next_try().expect("a try");
            if falls_back {
                assert_eq!(
                    (next.address.to_string().as_str(), next.tls),
                    ("192.0.2.1:25", TlsPolicy::Disabled)
                );
                // The next address starts from the policy again.
                walk.tried(Tried::NoConnection(temporary("refused")));
                let after = walk.next_try().expect("a try");
                assert_eq!(
                    (after.address.to_string().as_str(), after.tls),
                    ("192.0.2.2:25", TlsPolicy::Opportunistic)
                );
            } else {
                assert_eq!(
                    (next.address.to_string().as_str(), next.tls),
                    ("192.0.2.2:25", TlsPolicy::Required)
                );
            }
        }
    }

    #[test]
    fn leftovers_end_as_temporary_failures_with_the_last_failure_seen() {
        let mut walk = Walk::new(
            vec![recipient("a@x.test")],
            TlsPolicy::Disabled,
            vec![host("mx", &["192.0.2.1"])],
        );
        walk.tried(Tried::NoConnection(temporary("connection refused")));
        assert_eq!(walk.next_try(), None);
        let results = walk.finish();
        assert_eq!(
            results,
            vec![(
                "a@x.test".to_owned(),
                RecipientResult::Temporary(temporary("connection refused"))
            )]
        );
        let none = Walk::new(vec![recipient("a@x.test")], TlsPolicy::Disabled, vec![]);
        assert_eq!(none.next_try(), None);
        assert!(matches!(none.finish()[0].1, RecipientResult::Temporary(_)));
    }

    fn lost(progress: TransactionProgress, reused: bool, recipients: usize) -> Tried {
        Tried::Session {
            outcomes: (0..recipients)
                .map(|_| RecipientOutcome::Unresolved(temporary("connection lost")))
                .collect(),
            ended: Some(SessionOutcome::Failed(SessionFailure {
                kind: SessionFailureKind::ConnectionLost,
                failure: temporary("connection lost"),
            })),
            progress,
            reused,
        }
    }

    #[test]
    fn a_stale_reused_connection_is_retried_once_on_a_fresh_one_at_the_same_address() {
        for progress in [
            TransactionProgress::NotStarted,
            TransactionProgress::Unanswered,
        ] {
            let mut walk = Walk::new(
                vec![recipient("a@x.test")],
                TlsPolicy::Opportunistic,
                vec![host("mx", &["192.0.2.1", "192.0.2.2"])],
            );
            let first = walk.next_try().expect("a try");
            assert!(!first.fresh, "the first try may use the pool");
            walk.tried(lost(progress, true, 1));
            let again = walk.next_try().expect("a fresh try");
            assert_eq!(
                (again.address.to_string().as_str(), again.fresh),
                ("192.0.2.1:25", true)
            );
            // The fresh connection fails too: that is the host, move on.
            walk.tried(lost(progress, false, 1));
            let next = walk.next_try().expect("the next address");
            assert_eq!(
                (next.address.to_string().as_str(), next.fresh),
                ("192.0.2.2:25", false)
            );
        }
    }

    #[test]
    fn fresh_retries_are_bounded_even_if_every_connection_claims_reuse() {
        let mut walk = Walk::new(
            vec![recipient("a@x.test")],
            TlsPolicy::Disabled,
            vec![host("mx", &["192.0.2.1"])],
        );
        let mut tries = 0;
        while walk.next_try().is_some() {
            tries += 1;
            assert!(tries <= 2, "one try and one fresh retry per address");
            walk.tried(lost(TransactionProgress::Unanswered, true, 1));
        }
        assert_eq!(tries, 2);
        assert!(matches!(walk.finish()[0].1, RecipientResult::Temporary(_)));
    }

    #[test]
    fn a_reused_connection_that_failed_after_answers_moves_on_like_any_failure() {
        let mut walk = Walk::new(
            vec![recipient("a@x.test")],
            TlsPolicy::Disabled,
            vec![host("mx", &["192.0.2.1", "192.0.2.2"])],
        );
        walk.tried(lost(TransactionProgress::Answered, true, 1));
        let next = walk.next_try().expect("a try");
        assert_eq!(
            (next.address.to_string().as_str(), next.fresh),
            ("192.0.2.2:25", false)
        );
    }

    #[test]
    fn a_connection_lost_after_the_end_of_data_is_ambiguous_and_tried_nowhere_else() {
        for reused in [true, false] {
            let mut walk = Walk::new(
                vec![recipient("a@x.test"), recipient("b@x.test")],
                TlsPolicy::Disabled,
                vec![host("mx", &["192.0.2.1"]), host("mx2", &["192.0.2.2"])],
            );
            let mut tried = lost(TransactionProgress::AwaitingFinalReply, reused, 2);
            // b@ was refused at RCPT: its answer stays final.
            if let Tried::Session { outcomes, .. } = &mut tried {
                outcomes[1] = RecipientOutcome::Final(RecipientResult::Permanent(Failure {
                    status: EnhancedStatus::new(5, 1, 1),
                    remote_mta: Some("mx".to_owned()),
                    diagnostic: crate::delivery::Diagnostic::Local("no such user".to_owned()),
                }));
            }
            walk.tried(tried);
            assert_eq!(walk.next_try(), None, "no second copy within the attempt");
            let results = walk.finish();
            assert!(matches!(results[0].1, RecipientResult::Ambiguous(_)));
            assert!(results[0].1.is_temporary());
            assert!(matches!(results[1].1, RecipientResult::Permanent(_)));
        }
    }

    proptest::proptest! {
        /// Whatever the sessions answer, the walk ends within one try per address
        /// (two with a TLS fallback) and every recipient gets exactly one result.
        #[test]
        fn every_recipient_ends_with_exactly_one_result(
            addresses in proptest::collection::vec(0usize..3, 0..4),
            recipients in 1usize..5,
            answers in proptest::collection::vec(0u8..7, 0..40),
        ) {
            let hosts: Vec<PlannedHost> = addresses.iter().enumerate().map(|(h, count)| PlannedHost {
                name: format!("mx{h}"),
                addresses: (0..*count).map(|a| IpAddr::from([192, 0, 2, u8::try_from(h * 4 + a).unwrap_or(0)])).collect(),
                port: 25,
                protocol: Protocol::Smtp,
            }).collect();
            let total: usize = addresses.iter().sum();
            let all: Vec<OutgoingRecipient> = (0..recipients).map(|r| recipient(&format!("r{r}@x.test"))).collect();
            let mut walk = Walk::new(all.clone(), TlsPolicy::Opportunistic, hosts);
            let mut tries = 0;
            let mut ambiguous_given = false;
            let mut answers = answers.into_iter();
            while let Some(next) = walk.next_try() {
                tries += 1;
                let answer = answers.next().unwrap_or(0);
                let tried = match answer {
                    0 => Tried::NoConnection(temporary("down")),
                    1 => Tried::fresh_session(next.recipients.iter().map(|_| delivered()).collect(), None),
                    2 => Tried::fresh_session(vec![delivered()], Some(SessionOutcome::Failed(session_failure("dropped")))),
                    3 => Tried::fresh_session(vec![], Some(SessionOutcome::RetryWithoutTls(session_failure("tls")))),
                    // A pooled connection found closed before any answer.
                    5 => lost(TransactionProgress::Unanswered, true, next.recipients.len()),
                    // Lost after the end of the data.
                    6 => { ambiguous_given = true; lost(TransactionProgress::AwaitingFinalReply, answers.len() % 2 == 0, next.recipients.len()) }
                    _ => Tried::fresh_session(next.recipients.iter().map(|_| RecipientOutcome::Unresolved(temporary("4xx"))).collect(), Some(SessionOutcome::Completed)),
                };
                walk.tried(tried);
                // Per address: one try, one TLS fallback, one fresh retry.
                proptest::prop_assert!(tries <= 3 * total);
            }
            let results = walk.finish();
            let ambiguous = results.iter().any(|(_, result)| matches!(result, RecipientResult::Ambiguous(_)));
            proptest::prop_assert!(!ambiguous || ambiguous_given, "ambiguity only from a lost final reply");
            let mut named: Vec<String> = results.iter().map(|(address, _)| address.clone()).collect();
            named.sort();
            let mut expected: Vec<String> = all.iter().map(|r| r.address.clone()).collect();
            expected.sort();
            proptest::prop_assert_eq!(named, expected);
        }
    }
}
