//! Remote mail servers: core's own server session answers the dialogue, and this
//! model plays the remote's storage and policy from the seed — per-recipient
//! accept, 4xx or 5xx, greylisting, slowness, a hang or a close instead of the
//! final reply; and a DKIM verifier that checks every signature of every stored
//! copy. It stands for other organisations' servers, so its choices are test
//! inputs, not Sluice decisions. A relay (smarthost) is such a server that takes
//! mail for any domain: with an account, only from clients that authenticated on
//! its submission listener (core's session refuses MAIL before AUTH); without one,
//! from any client.

use crate::engine::Pcg32;
use crate::engine::trace::fnv1a;
use sluice_core::smtp::server::{
    CredentialOutcome, Credentials, ListenerKind, RecipientCheck, RecipientVerdict,
};
use sluice_core::time::{Duration, Instant};
use sluice_dkim::verify::{SignatureCheck, Verification, Verifier};
use std::collections::BTreeSet;

/// How one remote server behaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    pub temporary_ppm: u32,
    pub permanent_ppm: u32,
    /// Temporary failures stop at this instant (recovery).
    pub recover_at: Option<Instant>,
    pub greylisting: bool,
    pub slow_ms_max: u64,
    pub hang_ppm: u32,
    pub close_ppm: u32,
    /// Chance per connection that the remote advertises STARTTLS, which it cannot do.
    pub lie_ppm: u32,
    /// The remote closes a connection idle this long (its command timeout), if set.
    pub idle_close: Option<Duration>,
}

/// What the remote does with a complete message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// Store it and answer after this delay.
    Store(Duration),
    /// Never answer.
    Hang,
    /// Close the connection instead of answering; `stored` says whether it kept the
    /// message first (the reply was lost: the sender will send it again).
    Close { stored: bool },
}

#[derive(Debug)]
pub struct RemoteServer {
    /// The domain it is the MX of; for a relay, the relay's name.
    pub domain: String,
    pub behaviour: Behaviour,
    /// Set for a relay: it takes mail for every domain.
    pub relay: Option<RelayService>,
    greylisted: BTreeSet<(String, String)>,
}

/// What makes a remote server a relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayService {
    /// The one account it takes AUTH for (username, password); `None`: no AUTH,
    /// every client may relay.
    pub account: Option<(String, String)>,
}

impl RemoteServer {
    pub fn new(domain: String, behaviour: Behaviour) -> RemoteServer {
        RemoteServer {
            domain,
            behaviour,
            relay: None,
            greylisted: BTreeSet::new(),
        }
    }

    /// A relay named `name`.
    pub fn relay(name: String, behaviour: Behaviour, service: RelayService) -> RemoteServer {
        RemoteServer {
            relay: Some(service),
            ..RemoteServer::new(name, behaviour)
        }
    }

    /// The listener it answers on: a relay with an account on submission (MAIL
    /// only after AUTH), every other server on MX (no AUTH offered).
    pub fn listener(&self) -> ListenerKind {
        match &self.relay {
            Some(RelayService { account: Some(_) }) => ListenerKind::Submission,
            _ => ListenerKind::Mx,
        }
    }

    /// Its answer to AUTH: a relay's own account is valid, anything else is not.
    pub fn check_credentials(&self, credentials: &Credentials) -> CredentialOutcome {
        match &self.relay {
            Some(RelayService {
                account: Some((username, password)),
            }) if credentials.username == *username && credentials.password == *password => {
                CredentialOutcome::Valid {
                    identity: username.clone(),
                }
            }
            _ => CredentialOutcome::Invalid,
        }
    }

    /// The remote's verdict on one recipient at `now` (the simulation's clock).
    pub fn check(
        &mut self,
        rng: &mut Pcg32,
        now: Instant,
        check: &RecipientCheck,
    ) -> RecipientVerdict {
        let recipient = check.recipient.to_string().to_ascii_lowercase();
        let recipient = recipient
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned();
        let ours = match &self.relay {
            Some(RelayService { account: Some(_) }) => check.authenticated.is_some(),
            Some(RelayService { account: None }) => true,
            None => recipient
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain == self.domain),
        };
        if !ours {
            return RecipientVerdict::RelayDenied;
        }
        // A fixed share of addresses does not exist: the same every time, as in life.
        if fnv1a(recipient.as_bytes()) % 1_000_000 < u64::from(self.behaviour.permanent_ppm) {
            return RecipientVerdict::UnknownUser;
        }
        if self.behaviour.greylisting
            && self
                .greylisted
                .insert((check.reverse_path.to_string(), recipient))
        {
            return RecipientVerdict::TemporaryFailure;
        }
        let failing = self
            .behaviour
            .recover_at
            .is_none_or(|recover| now < recover);
        if failing && rng.chance(self.behaviour.temporary_ppm) {
            return RecipientVerdict::TemporaryFailure;
        }
        RecipientVerdict::Accept
    }

    pub fn store_choice(&mut self, rng: &mut Pcg32) -> StoreChoice {
        if rng.chance(self.behaviour.hang_ppm) {
            return StoreChoice::Hang;
        }
        if rng.chance(self.behaviour.close_ppm) {
            return StoreChoice::Close {
                stored: rng.chance(500_000),
            };
        }
        StoreChoice::Store(Duration::from_millis(
            rng.between(0, self.behaviour.slow_ms_max),
        ))
    }
}

/// The remote's DKIM verifier on a copy it stored: mail-auth's, checking every
/// DKIM-Signature against the key records the simulated DNS publishes (read
/// without lookup faults: the checker judges the signatures, not the remote's DNS).
/// A verifier that cannot run fails every signature it was given.
pub fn verify_dkim(verifier: &Verifier, data: &[u8]) -> Verification {
    verifier.verify(data).unwrap_or_else(|error| Verification {
        from: Vec::new(),
        signatures: vec![SignatureCheck {
            domain: String::new(),
            selector: String::new(),
            passed: false,
            result: error.to_string(),
        }],
    })
}

/// A lying EHLO reply: a STARTTLS line inserted after the greeting line of a
/// multi-line reply that lists PIPELINING. The inserted line reuses the reply's own
/// code and separator, so the simulator writes no reply code of its own; any other
/// reply passes unchanged.
pub fn advertise_starttls(bytes: Vec<u8>) -> Vec<u8> {
    let lists_extensions =
        bytes.get(3) == Some(&b'-') && bytes.windows(10).any(|window| window == b"PIPELINING");
    let Some(first_line_end) = bytes.windows(2).position(|pair| pair == b"\r\n") else {
        return bytes;
    };
    if !lists_extensions {
        return bytes;
    }
    let mut lied = Vec::with_capacity(bytes.len() + 14);
    lied.extend_from_slice(&bytes[..first_line_end + 2]);
    lied.extend_from_slice(&bytes[..4]);
    lied.extend_from_slice(b"STARTTLS\r\n");
    lied.extend_from_slice(&bytes[first_line_end + 2..]);
    lied
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::smtp::address::{ForwardPath, ReversePath};

    fn check(recipient: &str, authenticated: Option<&str>) -> RecipientCheck {
        RecipientCheck {
            reverse_path: ReversePath::parse_prefix("<a@sluice.test>").unwrap().0,
            recipient: ForwardPath::parse_prefix(&format!("<{recipient}>"))
                .unwrap()
                .0,
            authenticated: authenticated.map(str::to_owned),
        }
    }

    #[test]
    fn a_relay_with_an_account_takes_any_domain_after_auth_only() {
        let account = Some(("gw".to_owned(), "pw".to_owned()));
        let mut relay = RemoteServer::relay(
            "smart.example".to_owned(),
            Behaviour::default(),
            RelayService { account },
        );
        assert_eq!(relay.listener(), ListenerKind::Submission);
        let mut rng = Pcg32::new(1, 1);
        let now = Instant::EPOCH;
        let verdict = relay.check(&mut rng, now, &check("x@far.example", Some("gw")));
        assert_eq!(verdict, RecipientVerdict::Accept);
        let verdict = relay.check(&mut rng, now, &check("x@far.example", None));
        assert_eq!(verdict, RecipientVerdict::RelayDenied);
        let credentials = |password: &str| Credentials {
            mechanism: "PLAIN",
            authorization_id: None,
            username: "gw".to_owned(),
            password: password.to_owned(),
        };
        assert!(matches!(
            relay.check_credentials(&credentials("pw")),
            CredentialOutcome::Valid { .. }
        ));
        assert_eq!(
            relay.check_credentials(&credentials("nope")),
            CredentialOutcome::Invalid
        );
        let mut mx = RemoteServer::new("far.example".to_owned(), Behaviour::default());
        assert_eq!(mx.listener(), ListenerKind::Mx);
        let verdict = mx.check(&mut rng, now, &check("x@other.example", Some("gw")));
        assert_eq!(verdict, RecipientVerdict::RelayDenied);
    }

    #[test]
    fn the_lie_goes_into_ehlo_replies_only() {
        let ehlo = b"250-mx greets you\r\n250-PIPELINING\r\n250 SIZE 100\r\n".to_vec();
        let lied = advertise_starttls(ehlo);
        assert!(lied.starts_with(b"250-mx greets you\r\n250-STARTTLS\r\n250-PIPELINING"));
        let ok = b"250 2.1.0 ok\r\n".to_vec();
        assert_eq!(advertise_starttls(ok.clone()), ok);
    }
}
