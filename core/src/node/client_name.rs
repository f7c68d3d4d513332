//! The name a Received field gives a connecting client: its forward-confirmed
//! reverse DNS name (FCrDNS, RFC 8601 §3's "iprev"): a PTR name of the client's
//! address that itself resolves back to that address. The driver performs the
//! lookups [`ClientNamer`] asks for; which names are tried, how many, and which one
//! wins is decided here, so that net and the simulator name clients alike.

use crate::delivery::mx::normalise_host;
use crate::smtp::address::Domain;
use core::net::IpAddr;

/// PTR names checked per address: a host with more is unusual, and each costs a
/// lookup while the session waits for nothing but may want the name.
pub const MAX_PTR_NAMES: usize = 4;

/// A lookup the namer needs answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameLookup {
    /// The PTR records of `ip`; answer with [`NameAnswer::Ptr`].
    Ptr { ip: IpAddr },
    /// The A and AAAA records of `name`; answer with [`NameAnswer::Addresses`].
    Addresses { name: String },
}

/// The answer to the namer's current lookup. A failed lookup is an empty list: the
/// name is a courtesy in a trace field, and nothing waits for a retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameAnswer {
    Ptr(Vec<String>),
    Addresses(Vec<IpAddr>),
}

/// What the namer wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameStep {
    Lookup(NameLookup),
    /// The confirmed name, or `None`: the Received field names the address only.
    Done(Option<Domain>),
}

/// Finds a client's forward-confirmed name: the PTR query, then the address query of
/// each PTR name in the order DNS gave them (lower case, without the trailing dot,
/// at most [`MAX_PTR_NAMES`]) until one resolves back to the client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientNamer {
    ip: IpAddr,
    state: NamerState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NamerState {
    Ptr,
    /// Checking `names[0]`; the rest wait.
    Confirming(Vec<String>),
    Done(Option<Domain>),
}

impl ClientNamer {
    pub fn new(ip: IpAddr) -> ClientNamer {
        ClientNamer {
            ip,
            state: NamerState::Ptr,
        }
    }

    /// The lookup to perform now, or the result (again on every call).
    pub fn step(&self) -> NameStep {
        match &self.state {
            NamerState::Ptr => NameStep::Lookup(NameLookup::Ptr { ip: self.ip }),
            NamerState::Confirming(names) => match names.first() {
                Some(name) => NameStep::Lookup(NameLookup::Addresses { name: name.clone() }),
                None => NameStep::Done(None),
            },
            NamerState::Done(name) => NameStep::Done(name.clone()),
        }
    }

    /// The answer to the lookup [`ClientNamer::step`] asked for. An answer of the
    /// other kind, or one after the result, is ignored.
    pub fn answer(&mut self, answer: NameAnswer) {
        let state = std::mem::replace(&mut self.state, NamerState::Ptr);
        self.state = match (state, answer) {
            (NamerState::Ptr, NameAnswer::Ptr(names)) => {
                let mut candidates: Vec<String> = Vec::new();
                for name in names.iter().map(|name| normalise_host(name)) {
                    // A name that is no domain could never be written in Received.
                    if Domain::parse(&name).is_ok() && !candidates.contains(&name) {
                        candidates.push(name);
                    }
                }
                candidates.truncate(MAX_PTR_NAMES);
                Self::next(candidates)
            }
            (NamerState::Confirming(mut names), NameAnswer::Addresses(addresses)) => {
                if addresses.contains(&self.ip) && !names.is_empty() {
                    let confirmed = names.swap_remove(0);
                    NamerState::Done(Domain::parse(&confirmed).ok())
                } else {
                    if !names.is_empty() {
                        names.remove(0);
                    }
                    Self::next(names)
                }
            }
            (state, _) => state,
        };
    }

    fn next(names: Vec<String>) -> NamerState {
        if names.is_empty() {
            NamerState::Done(None)
        } else {
            NamerState::Confirming(names)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(192, 0, 2, 8));

    /// Runs a namer against PTR names and each name's addresses; the lookups made and
    /// the result.
    fn name(ptr: &[&str], forward: &[(&str, IpAddr)]) -> (Vec<NameLookup>, Option<String>) {
        let mut namer = ClientNamer::new(CLIENT);
        let mut lookups = Vec::new();
        loop {
            let answer = match namer.step() {
                NameStep::Done(name) => {
                    return (lookups, name.map(|name| name.as_str().to_owned()));
                }
                NameStep::Lookup(lookup) => {
                    let answer = match &lookup {
                        NameLookup::Ptr { .. } => {
                            NameAnswer::Ptr(ptr.iter().map(|name| (*name).to_owned()).collect())
                        }
                        NameLookup::Addresses { name } => NameAnswer::Addresses(
                            forward
                                .iter()
                                .filter(|(host, _)| host == name)
                                .map(|(_, ip)| *ip)
                                .collect(),
                        ),
                    };
                    lookups.push(lookup);
                    answer
                }
            };
            namer.answer(answer);
        }
    }

    #[test]
    fn the_first_name_that_resolves_back_wins() {
        let (lookups, name) = name(
            &["Spoof.Example.", "mail.client.test."],
            &[("spoof.example", OTHER), ("mail.client.test", CLIENT)],
        );
        assert_eq!(name.as_deref(), Some("mail.client.test"));
        assert_eq!(lookups.len(), 3, "{lookups:?}");
        assert_eq!(
            lookups[1],
            NameLookup::Addresses {
                name: "spoof.example".to_owned()
            }
        );
    }

    #[test]
    fn no_ptr_or_no_confirmation_names_nothing() {
        assert_eq!(name(&[], &[]), (vec![NameLookup::Ptr { ip: CLIENT }], None));
        let (lookups, name) = name(&["a.test", "a.test.", "."], &[("a.test", OTHER)]);
        assert_eq!(name, None);
        assert_eq!(
            lookups.len(),
            2,
            "duplicates and the root are not tried: {lookups:?}"
        );
    }

    #[test]
    fn at_most_four_names_are_tried() {
        let ptr = ["n1.test", "n2.test", "n3.test", "n4.test", "n5.test"];
        let (lookups, name) = name(&ptr, &[("n5.test", CLIENT)]);
        assert_eq!(name, None, "the fifth name is never checked");
        assert_eq!(lookups.len(), 1 + MAX_PTR_NAMES);
    }

    #[test]
    fn stray_answers_change_nothing() {
        let mut namer = ClientNamer::new(CLIENT);
        namer.answer(NameAnswer::Addresses(vec![CLIENT]));
        assert_eq!(
            namer.step(),
            NameStep::Lookup(NameLookup::Ptr { ip: CLIENT })
        );
        namer.answer(NameAnswer::Ptr(vec!["a.test".to_owned()]));
        namer.answer(NameAnswer::Ptr(vec!["b.test".to_owned()]));
        assert_eq!(
            namer.step(),
            NameStep::Lookup(NameLookup::Addresses {
                name: "a.test".to_owned()
            })
        );
    }

    proptest::proptest! {
        /// Whatever DNS says: one PTR query first, then at most four address queries,
        /// each for a distinct name; and a name comes back only if its own address
        /// answer held the client's address.
        #[test]
        fn a_name_is_only_ever_a_confirmed_one(
            ptr in proptest::collection::vec("[a-d]\\.(test|example)\\.?", 0..8),
            confirmed in proptest::collection::vec(proptest::prelude::any::<bool>(), 8),
        ) {
            let names = ["a", "b", "c", "d"].iter().flat_map(|host| {
                ["test", "example"].map(|tld| format!("{host}.{tld}"))
            });
            let forward: Vec<(String, IpAddr)> = names
                .zip(confirmed)
                .map(|(name, yes)| (name, if yes { CLIENT } else { OTHER }))
                .collect();
            let forward_refs: Vec<(&str, IpAddr)> =
                forward.iter().map(|(name, ip)| (name.as_str(), *ip)).collect();
            let ptr_refs: Vec<&str> = ptr.iter().map(String::as_str).collect();
            let (lookups, name) = name(&ptr_refs, &forward_refs);
            proptest::prop_assert_eq!(&lookups[0], &NameLookup::Ptr { ip: CLIENT });
            let asked: Vec<&String> = lookups[1..]
                .iter()
                .map(|lookup| match lookup {
                    NameLookup::Addresses { name } => name,
                    NameLookup::Ptr { .. } => panic!("a second PTR query"),
                })
                .collect();
            proptest::prop_assert!(asked.len() <= MAX_PTR_NAMES);
            let mut distinct = asked.clone();
            distinct.sort();
            distinct.dedup();
            proptest::prop_assert_eq!(distinct.len(), asked.len());
            if let Some(name) = name {
                proptest::prop_assert_eq!(asked.last().map(|n| n.as_str()), Some(name.as_str()));
                proptest::prop_assert!(forward.contains(&(name, CLIENT)));
            }
        }
    }
}
