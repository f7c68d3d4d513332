//! Where each copy of an accepted message goes from this node: into a local mailbox
//! as part of the acceptance itself, or to the queue with a destination. The node's
//! role decides how local mailboxes are reached; the delivery policy decides the
//! path of every other address.

use super::delivery::{Delivery, DeliverySet};
use crate::delivery::{DeliveryPath, DeliveryPolicy, Destination, TlsPolicy, address_domain};

/// How this node reaches the mailboxes of local users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailboxAccess {
    /// They live here (roles `all` and `backend`): written in the same transaction
    /// that accepts the message, so a local copy is never pending.
    InProcess,
    /// They live on a backend (role `gateway`): queued for its LMTP service.
    Lmtp { host: String, port: u16 },
}

/// The copies of one message, by how they are made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Written into local mailboxes at acceptance.
    pub in_process: Vec<Delivery>,
    /// Handed to the queue.
    pub queued: Vec<(Delivery, Destination)>,
}

/// Places every copy of `set`.
pub fn place(set: DeliverySet, mailboxes: &MailboxAccess, policy: &DeliveryPolicy) -> Placement {
    let mut placement = Placement::default();
    for delivery in set.local {
        match mailboxes {
            MailboxAccess::InProcess => placement.in_process.push(delivery),
            MailboxAccess::Lmtp { host, port } => {
                let destination = Destination {
                    path: DeliveryPath::Lmtp {
                        host: host.clone(),
                        port: *port,
                    },
                    // LMTP runs between our own tiers on a trusted network (RFC 2033 §1).
                    tls: TlsPolicy::Disabled,
                };
                placement.queued.push((delivery, destination));
            }
        }
    }
    for delivery in set.external {
        let destination = policy.destination_for(address_domain(&delivery.address));
        placement.queued.push((delivery, destination));
    }
    placement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::{ForwardPath, Mailbox};

    fn delivery(address: &str) -> Delivery {
        Delivery {
            address: address.to_owned(),
            original: ForwardPath::Mailbox(Mailbox::parse(address).unwrap()),
        }
    }

    fn set() -> DeliverySet {
        DeliverySet {
            local: vec![delivery("alice@here.test")],
            external: vec![delivery("bob@Far.Example")],
        }
    }

    #[test]
    fn in_process_mailboxes_are_written_at_acceptance_and_external_copies_queued() {
        let placement = place(set(), &MailboxAccess::InProcess, &DeliveryPolicy::default());
        assert_eq!(placement.in_process, vec![delivery("alice@here.test")]);
        assert_eq!(
            placement.queued,
            vec![(delivery("bob@Far.Example"), Destination::mx("far.example"))]
        );
    }

    #[test]
    fn a_gateway_queues_local_mailboxes_for_its_backend() {
        let access = MailboxAccess::Lmtp {
            host: "127.0.0.1".to_owned(),
            port: 2424,
        };
        let placement = place(set(), &access, &DeliveryPolicy::default());
        assert!(placement.in_process.is_empty());
        assert_eq!(placement.queued.len(), 2);
        assert_eq!(
            placement.queued[0].1.path,
            DeliveryPath::Lmtp {
                host: "127.0.0.1".to_owned(),
                port: 2424
            }
        );
        assert_eq!(placement.queued[1].1, Destination::mx("far.example"));
    }
}
