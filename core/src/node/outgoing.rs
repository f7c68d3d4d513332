//! What one delivery attempt sends, taken from the queue's record of a message:
//! the envelope (reverse-path, ENVID, RET, and each recipient's NOTIFY and ORCPT
//! as accepted) and the body as stored. Drivers read the body; core decides what
//! the client machine is told.

use crate::queue::QueuedMessage;
use crate::smtp::client::{OutgoingMessage, OutgoingRecipient};
use crate::smtp::params::Ret;

/// The envelope of one attempt, copied out of the queue's record so that a driver
/// can read the body (asynchronously, perhaps) without holding the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub reverse_path: Option<String>,
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    pub recipients: Vec<OutgoingRecipient>,
}

impl Envelope {
    /// The envelope for the attempt's `addresses` of `message`; an address the
    /// record does not know goes without DSN parameters.
    pub fn of(message: &QueuedMessage, addresses: &[String]) -> Envelope {
        let recipients = addresses
            .iter()
            .map(|address| {
                let queued = message
                    .recipients
                    .iter()
                    .find(|recipient| &recipient.address == address);
                OutgoingRecipient {
                    address: address.clone(),
                    notify: queued.and_then(|recipient| recipient.notify),
                    orcpt: queued.and_then(|recipient| recipient.original.clone()),
                }
            })
            .collect();
        Envelope {
            reverse_path: message.reverse_path.clone(),
            envid: message.envid.clone(),
            ret: message.ret,
            recipients,
        }
    }

    /// The message for the client machine: the envelope with the stored body.
    /// `smtputf8` is what the message was accepted with; 8-bit content asks for
    /// 8BITMIME (RFC 6152).
    pub fn into_outgoing(self, queue_id: String, body: Vec<u8>, smtputf8: bool) -> OutgoingMessage {
        OutgoingMessage {
            queue_id,
            reverse_path: self.reverse_path,
            recipients: self.recipients,
            ret: self.ret,
            envid: self.envid,
            eight_bit: body.iter().any(|byte| *byte > 127),
            body: body.into(),
            smtputf8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Destination;
    use crate::queue::QueuedRecipient;
    use crate::smtp::params::Notify;
    use crate::time::Instant;

    fn message() -> QueuedMessage {
        let mut known = QueuedRecipient::new("a@far.test", Destination::mx("far.test"));
        known.notify = Some(Notify::Never);
        QueuedMessage {
            queue_id: "Q1".to_owned(),
            reverse_path: Some("s@here.test".to_owned()),
            envid: Some("E1".to_owned()),
            ret: Some(Ret::Headers),
            arrival: Instant::from_millis(0),
            size: 4,
            received_headers: 1,
            recipients: vec![known],
        }
    }

    #[test]
    fn recipients_keep_their_dsn_parameters_and_eight_bit_bodies_are_flagged() {
        let envelope = Envelope::of(
            &message(),
            &["a@far.test".to_owned(), "b@far.test".to_owned()],
        );
        assert_eq!(envelope.recipients[0].notify, Some(Notify::Never));
        assert_eq!(envelope.recipients[1].notify, None);
        let outgoing =
            envelope.into_outgoing("Q1".to_owned(), "caf\u{e9}".as_bytes().to_vec(), true);
        assert!(outgoing.eight_bit);
        assert!(outgoing.smtputf8);
        assert_eq!(outgoing.envid.as_deref(), Some("E1"));
        assert_eq!(outgoing.reverse_path.as_deref(), Some("s@here.test"));
    }
}
