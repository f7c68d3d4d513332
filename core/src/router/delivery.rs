//! The delivery set of one message: the routes of its accepted recipients merged
//! into the local mailboxes and external addresses that each get exactly one copy.

use super::Route;
use crate::smtp::address::ForwardPath;
use std::collections::BTreeSet;

/// One copy of the message: where it goes, and which envelope recipient led there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// A local user's canonical address, or an external address.
    pub address: String,
    /// The RCPT address that first reached `address` (RFC 3461's original recipient).
    pub original: ForwardPath,
}

/// Where one message goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliverySet {
    pub local: Vec<Delivery>,
    pub external: Vec<Delivery>,
}

/// Merges the routes of a message's recipients, in envelope order. An address
/// reached twice — an alias and its user both named, two lists sharing a member —
/// gets one copy, credited to the first recipient that reached it; otherwise a
/// mailbox would hold duplicates. `None` when a recipient has no deliverable route,
/// which means the driver stored a recipient the router had not accepted.
pub fn delivery_set<'a, I>(recipients: I) -> Option<DeliverySet>
where
    I: IntoIterator<Item = (&'a ForwardPath, Option<&'a Route>)>,
{
    let mut set = DeliverySet::default();
    let mut seen_local = BTreeSet::new();
    let mut seen_external = BTreeSet::new();
    for (recipient, route) in recipients {
        let Some(Route::Deliver {
            local_mailboxes,
            external,
        }) = route
        else {
            return None;
        };
        for address in local_mailboxes {
            if seen_local.insert(address.as_str()) {
                set.local.push(Delivery {
                    address: address.clone(),
                    original: recipient.clone(),
                });
            }
        }
        for address in external {
            if seen_external.insert(address.as_str()) {
                set.external.push(Delivery {
                    address: address.clone(),
                    original: recipient.clone(),
                });
            }
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Refusal;
    use crate::smtp::address::Mailbox;

    fn path(text: &str) -> ForwardPath {
        ForwardPath::Mailbox(Mailbox::parse(text).unwrap())
    }

    fn deliver(local: &[&str], external: &[&str]) -> Route {
        Route::Deliver {
            local_mailboxes: local.iter().map(|s| (*s).to_owned()).collect(),
            external: external.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn an_address_reached_twice_gets_one_copy_credited_to_the_first_recipient() {
        let (alias, user, list) = (
            path("team@sluice.test"),
            path("bob@sluice.test"),
            path("all@sluice.test"),
        );
        let team = deliver(
            &["bob@sluice.test", "carol@sluice.test"],
            &["x@ext.example"],
        );
        let bob = deliver(&["bob@sluice.test"], &[]);
        let all = deliver(
            &["carol@sluice.test", "dave@sluice.test"],
            &["x@ext.example"],
        );
        let set = delivery_set([
            (&alias, Some(&team)),
            (&user, Some(&bob)),
            (&list, Some(&all)),
        ])
        .unwrap();
        let local: Vec<(&str, &ForwardPath)> = set
            .local
            .iter()
            .map(|d| (d.address.as_str(), &d.original))
            .collect();
        assert_eq!(
            local,
            vec![
                ("bob@sluice.test", &alias),
                ("carol@sluice.test", &alias),
                ("dave@sluice.test", &list),
            ]
        );
        assert_eq!(set.external.len(), 1);
        assert_eq!(set.external[0].original, alias);
    }

    #[test]
    fn a_recipient_without_a_deliverable_route_makes_no_set() {
        let recipient = path("bob@sluice.test");
        let refused = Route::Refused(Refusal::UnknownUser);
        assert_eq!(delivery_set([(&recipient, Some(&refused))]), None);
        assert_eq!(delivery_set([(&recipient, None)]), None);
    }
}
