//! The record of an accepted message, as core decides it: which copies go into
//! local mailboxes now and which to the queue with what destination, the Received
//! trace field, the delivery key, and what the queue and the notice writer get
//! once the record is durable. Drivers store it; they decide none of it.

use crate::delivery::{DeliveryPath, DeliveryPolicy, Destination, TlsPolicy};
use crate::queue::{QueuedMessage, QueuedRecipient, RecipientState};
use crate::router::{MailboxAccess, Route, delivery_set, place};
use crate::smtp::address::{Domain, ForwardPath};
use crate::smtp::params::{Notify, OriginalRecipient, RcptParameters, Ret};
use crate::smtp::received::{ReceivedFields, count_received};
use crate::smtp::reply::{EnhancedStatus, Reply};
use crate::smtp::server::AcceptedMessage;
use crate::time::Instant;
use core::net::IpAddr;

/// A message the SMTP side accepted, routed, ready to be made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The queue id the session will announce (`250 2.0.0 ok: queued as <id>`).
    pub queue_id: String,
    /// `<>` or `<mailbox>`, as on the wire.
    pub reverse_path: String,
    /// When the message was accepted, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// What makes each local copy unique: a message stored again under the same key
    /// (a retried LMTP delivery) reaches no mailbox twice. The queue id for mail
    /// received over SMTP; for LMTP, a digest of the message as the gateway sent it.
    pub delivery_key: String,
    /// ENVID and RET from MAIL (RFC 3461), for notices and onward delivery.
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    /// The message needs SMTPUTF8 onward (MAIL said SMTPUTF8).
    pub smtputf8: bool,
    /// How many Received header fields the message carries (loop detection).
    pub received_headers: u32,
    pub recipients: Vec<RoutedRecipient>,
    /// The whole message as stored: the Received header followed by what the client sent.
    pub data: Vec<u8>,
}

/// Where one copy of the message goes, as core's router and placement decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutedRecipient {
    /// Into the INBOX of a local user (canonical address) now, in the transaction
    /// that makes the message durable; `original` is the RCPT address.
    Local {
        user: String,
        original: String,
        /// NOTIFY and ORCPT from that RCPT (RFC 3461): a copy asked for with
        /// NOTIFY=SUCCESS owes its sender a success notice.
        notify: Option<Notify>,
        orcpt: Option<OriginalRecipient>,
    },
    /// To the delivery queue: an external address, or a mailbox on a backend.
    Queued(QueuedCopy),
}

/// A copy for the delivery queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedCopy {
    pub address: String,
    /// The RCPT address that led here, as written.
    pub original: String,
    pub destination: Destination,
    /// NOTIFY and ORCPT from that RCPT (RFC 3461).
    pub notify: Option<Notify>,
    pub orcpt: Option<OriginalRecipient>,
}

impl QueuedCopy {
    /// An external copy by its address, with no DSN parameters, to the domain's MX hosts.
    pub fn to_mx(address: &str, original: &str) -> QueuedCopy {
        QueuedCopy {
            address: address.to_owned(),
            original: original.to_owned(),
            destination: Destination::mx_of_address(address),
            notify: None,
            orcpt: None,
        }
    }
}

impl RoutedRecipient {
    /// A local copy with no DSN parameters.
    pub fn local(user: &str, original: &str) -> RoutedRecipient {
        RoutedRecipient::Local {
            user: user.to_owned(),
            original: original.to_owned(),
            notify: None,
            orcpt: None,
        }
    }
}

impl IncomingMessage {
    /// The envelope sender its mailbox copies keep (no angle brackets; empty for
    /// the null reverse-path).
    pub fn envelope_sender(&self) -> &str {
        crate::mailbox::envelope_sender(&self.reverse_path)
    }

    /// Whether `recipient`, a copy written into a local mailbox at acceptance,
    /// owes the sender a success notice (RFC 3461 NOTIFY=SUCCESS; never to the null
    /// reverse-path). The store records it with the copy, in the same transaction,
    /// and the queue sends it (see [`queued_part`]), so a crash cannot lose it.
    pub fn owes_success_notice(&self, recipient: &RoutedRecipient) -> bool {
        let asked = matches!(
            recipient,
            RoutedRecipient::Local {
                notify: Some(Notify::On { success: true, .. }),
                ..
            }
        );
        asked && !unbracketed(&self.reverse_path).is_empty()
    }

    /// A message with no DSN parameters, its delivery key its queue id.
    pub fn new(
        queue_id: &str,
        reverse_path: &str,
        received_at_ms: i64,
        recipients: Vec<RoutedRecipient>,
        data: Vec<u8>,
    ) -> IncomingMessage {
        IncomingMessage {
            queue_id: queue_id.to_owned(),
            reverse_path: reverse_path.to_owned(),
            received_at_ms,
            delivery_key: queue_id.to_owned(),
            envid: None,
            ret: None,
            smtputf8: false,
            received_headers: 0,
            recipients,
            data,
        }
    }
}

/// How a node places copies: its mailboxes' access (its role) and the policy for
/// everything else.
#[derive(Clone, Debug)]
pub struct PlacementPolicy {
    pub mailboxes: MailboxAccess,
    pub delivery: DeliveryPolicy,
}

/// Where the connection came from, as the Received field names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTrace {
    pub ip: IpAddr,
    /// The forward-confirmed reverse DNS name, when known by the time of acceptance.
    pub name: Option<Domain>,
}

/// What names and dates one accepted message: supplied by the driver, which owns
/// the wall clock and the id sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The queue id the session will announce (`250 2.0.0 ok: queued as <id>`).
    pub queue_id: String,
    /// Milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    pub client: ClientTrace,
}

/// The node's side of an acceptance: who we are and how we place copies.
#[derive(Clone, Debug)]
pub struct Receiver<'a> {
    pub hostname: &'a Domain,
    pub placement: &'a PlacementPolicy,
    /// An LMTP session: the trace field names LMTP (RFC 3848), and since a
    /// redelivery of the same message must not reach a mailbox twice, the delivery
    /// key is a digest of what the gateway sent rather than our queue id.
    pub lmtp: bool,
}

/// Everything a driver carries out for one accepted message, in this order: make
/// `incoming` durable; only then hand `queued` to the queue; then answer the
/// session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    pub incoming: IncomingMessage,
    /// What the queue gets ([`queued_part`]); None when it has nothing to do.
    pub queued: Option<QueuedMessage>,
}

/// Decides the record of `message`: merges the routes decided at RCPT time into
/// the copies to make, places each, and prepends the Received field. `None` when
/// an accepted recipient has no deliverable route (a driver bug: the session
/// accepts only routed recipients).
pub fn accept(
    message: &AcceptedMessage,
    routes: &[(ForwardPath, Route)],
    stamp: &Stamp,
    receiver: &Receiver<'_>,
) -> Option<Acceptance> {
    let route_of = |path: &ForwardPath| {
        routes
            .iter()
            .rev()
            .find(|(recipient, _)| recipient == path)
            .map(|(_, route)| route)
    };
    let deliveries = delivery_set(
        message
            .recipients
            .iter()
            .map(|recipient| (&recipient.path, route_of(&recipient.path))),
    )?;
    let placement = place(
        deliveries,
        &receiver.placement.mailboxes,
        &receiver.placement.delivery,
    );
    let params_of = |path: &ForwardPath| -> RcptParameters {
        message
            .recipients
            .iter()
            .find(|recipient| &recipient.path == path)
            .map(|recipient| recipient.params.clone())
            .unwrap_or_default()
    };
    let local = placement.in_process.into_iter().map(|delivery| {
        let params = params_of(&delivery.original);
        RoutedRecipient::Local {
            user: delivery.address,
            original: bare(&delivery.original),
            notify: params.notify,
            orcpt: params.orcpt,
        }
    });
    let queued = placement.queued.into_iter().map(|(delivery, destination)| {
        let params = params_of(&delivery.original);
        RoutedRecipient::Queued(QueuedCopy {
            address: delivery.address,
            original: bare(&delivery.original),
            destination,
            notify: params.notify,
            orcpt: params.orcpt,
        })
    });
    let recipients = local.chain(queued).collect();
    let header = received_header(message, stamp, receiver);
    let delivery_key = if receiver.lmtp {
        content_key(&message.data)
    } else {
        stamp.queue_id.clone()
    };
    let mut data = Vec::with_capacity(header.len() + message.data.len());
    data.extend_from_slice(header.as_bytes());
    data.extend_from_slice(&message.data);
    let incoming = IncomingMessage {
        queue_id: stamp.queue_id.clone(),
        reverse_path: message.reverse_path.to_string(),
        received_at_ms: stamp.received_at_ms,
        delivery_key,
        envid: message.mail_params.envid.clone(),
        ret: message.mail_params.ret,
        smtputf8: message.mail_params.smtputf8,
        received_headers: u32::try_from(count_received(&data)).unwrap_or(u32::MAX),
        recipients,
        data,
    };
    Some(Acceptance {
        queued: queued_part(&incoming),
        incoming,
    })
}

/// A delivery key from the content: SHA-256 of the message as received.
fn content_key(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut key = String::with_capacity(7 + 64);
    key.push_str("sha256:");
    for byte in Sha256::digest(data) {
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// A reverse-path without its angle brackets (empty for the null path).
fn unbracketed(reverse_path: &str) -> &str {
    reverse_path.trim_start_matches('<').trim_end_matches('>')
}

/// The queue's record of a stored message: its queued copies, and its local copies
/// that owe a success notice, as delivered recipients whose notice the queue has
/// yet to store. `None` when the queue has nothing to do.
pub fn queued_part(message: &IncomingMessage) -> Option<QueuedMessage> {
    let mut recipients: Vec<QueuedRecipient> = Vec::new();
    for recipient in &message.recipients {
        let queued = match recipient {
            RoutedRecipient::Queued(copy) => {
                let mut queued = QueuedRecipient::new(&copy.address, copy.destination.clone());
                queued.notify = copy.notify;
                queued.original = copy.orcpt.clone();
                queued
            }
            RoutedRecipient::Local {
                user,
                notify,
                orcpt,
                ..
            } if message.owes_success_notice(recipient) => {
                let mut queued = QueuedRecipient::new(user, local_destination());
                queued.notify = *notify;
                queued.original = orcpt.clone();
                queued.state = delivered_at_acceptance(message.received_at_ms);
                queued.success_owed = true;
                queued
            }
            RoutedRecipient::Local { .. } => continue,
        };
        // Two RCPTs may lead to one mailbox or one address: one record each.
        if !recipients.iter().any(|seen| seen.address == queued.address) {
            recipients.push(queued);
        }
    }
    if recipients.is_empty() {
        return None;
    }
    let reverse_path = unbracketed(&message.reverse_path);
    Some(QueuedMessage {
        queue_id: message.queue_id.clone(),
        reverse_path: (!reverse_path.is_empty()).then(|| reverse_path.to_owned()),
        envid: message.envid.clone(),
        ret: message.ret,
        arrival: Instant::from_millis(u64::try_from(message.received_at_ms).unwrap_or(0)),
        size: message.data.len() as u64,
        received_headers: message.received_headers,
        recipients,
    })
}

/// Where a copy written into a mailbox at acceptance went, for the queue's record.
pub fn local_destination() -> Destination {
    Destination {
        path: DeliveryPath::Local,
        tls: TlsPolicy::Opportunistic,
    }
}

/// The state of a copy written into a mailbox at acceptance.
pub fn delivered_at_acceptance(received_at_ms: i64) -> RecipientState {
    RecipientState::Delivered {
        at: Instant::from_millis(u64::try_from(received_at_ms).unwrap_or(0)),
        remote_mta: None,
        reply: Reply::new(250, EnhancedStatus::new(2, 0, 0), "delivered to mailbox"),
        notify_passed_on: false,
    }
}

/// A delivery notice as a message to store: from the null reverse-path, to the one
/// recipient its route names, placed like any accepted copy. `None` when the route
/// leads nowhere deliverable.
pub fn notice_message(
    queue_id: String,
    recipient: &ForwardPath,
    route: &Route,
    placement: &PlacementPolicy,
    received_at_ms: i64,
    data: Vec<u8>,
    smtputf8: bool,
) -> Option<IncomingMessage> {
    let deliveries = delivery_set([(recipient, Some(route))])?;
    let placed = place(deliveries, &placement.mailboxes, &placement.delivery);
    // A notice asks for no notices (RFC 3461 §5.1: its sender is null anyway).
    let local = placed
        .in_process
        .into_iter()
        .map(|delivery| RoutedRecipient::local(&delivery.address, &bare(&delivery.original)));
    let queued = placed.queued.into_iter().map(|(delivery, destination)| {
        RoutedRecipient::Queued(QueuedCopy {
            address: delivery.address,
            original: bare(&delivery.original),
            destination,
            // A notice asks for no notices (RFC 3461 §5.1: its sender is null anyway).
            notify: None,
            orcpt: None,
        })
    });
    let recipients: Vec<RoutedRecipient> = local.chain(queued).collect();
    if recipients.is_empty() {
        return None;
    }
    Some(IncomingMessage {
        delivery_key: queue_id.clone(),
        queue_id,
        reverse_path: "<>".to_owned(),
        received_at_ms,
        envid: None,
        ret: None,
        smtputf8,
        received_headers: u32::try_from(count_received(&data)).unwrap_or(u32::MAX),
        recipients,
        data,
    })
}

/// The recipient as written, without angle brackets.
fn bare(path: &ForwardPath) -> String {
    match path {
        ForwardPath::Postmaster => "Postmaster".to_owned(),
        ForwardPath::Mailbox(mailbox) => mailbox.to_string(),
    }
}

/// The trace field (RFC 5321 §4.4); the date in UTC.
fn received_header(message: &AcceptedMessage, stamp: &Stamp, receiver: &Receiver<'_>) -> String {
    let recipient = match message.recipients.as_slice() {
        [only] => Some(only.path.clone()),
        _ => None,
    };
    ReceivedFields {
        helo: message.helo.clone(),
        esmtp: message.esmtp,
        lmtp: receiver.lmtp,
        client_ip: stamp.client.ip,
        client_name: stamp.client.name.clone(),
        hostname: receiver.hostname.clone(),
        tls: message.tls,
        authenticated: message.authenticated.is_some(),
        smtputf8: message.mail_params.smtputf8,
        queue_id: stamp.queue_id.clone(),
        recipient,
        timestamp: stamp.received_at_ms.div_euclid(1000),
        utc_offset_minutes: 0,
    }
    .to_header()
}
