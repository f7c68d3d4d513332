//! MIRRORS NET: the glue between a session's accepted message and the store, as
//! `net/src/incoming.rs` (build, queued, success_notice, notice_message,
//! received_header, content_key) and `net/src/delivery/service.rs` (`Envelope::of`) write it. Every
//! decision is core's (`delivery_set`, `place`, `ReceivedFields`, `count_received`);
//! this file only moves fields. It is meant to be replaced by the planned
//! `core::node` calls, shared with net, once they exist.

use sluice_core::delivery::{DeliveryPolicy, Destination};
use sluice_core::notice::{AcceptedCopy, NoticeRequest, success_at_acceptance};
use sluice_core::queue::{QueuedMessage, QueuedRecipient};
use sluice_core::router::{MailboxAccess, Route, delivery_set, place};
use sluice_core::smtp::address::{Domain, ForwardPath};
use sluice_core::smtp::client::{OutgoingMessage, OutgoingRecipient};
use sluice_core::smtp::params::{Notify, OriginalRecipient, RcptParameters, Ret};
use sluice_core::smtp::received::{ReceivedFields, count_received};
use sluice_core::smtp::server::AcceptedMessage;
use sluice_core::time::Instant;
use std::net::IpAddr;

/// How this host places copies (net's `PlacementPolicy`).
#[derive(Clone, Debug)]
pub struct PlacementPolicy {
    pub mailboxes: MailboxAccess,
    pub delivery: DeliveryPolicy,
}

/// One copy of an accepted message (net's `RoutedRecipient`).
#[derive(Clone, Debug)]
pub enum RoutedRecipient {
    Local {
        user: String,
        /// The RCPT address that led here, without angle brackets.
        original: String,
    },
    Queued {
        address: String,
        destination: Destination,
        notify: Option<Notify>,
        orcpt: Option<OriginalRecipient>,
    },
}

/// The store's record of an accepted message (net's `IncomingMessage`).
#[derive(Clone, Debug)]
pub struct Incoming {
    pub queue_id: String,
    /// Without angle brackets; empty for the null reverse-path.
    pub reverse_path: String,
    pub received_at_ms: i64,
    pub delivery_key: String,
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    pub smtputf8: bool,
    pub received_headers: u32,
    pub recipients: Vec<RoutedRecipient>,
    pub data: Vec<u8>,
}

/// What the store needs besides the session's message (net's `Acceptance`).
#[derive(Debug)]
pub struct Acceptance<'a> {
    pub queue_id: String,
    pub client_ip: IpAddr,
    pub hostname: &'a Domain,
    pub received_at_ms: i64,
    pub placement: &'a PlacementPolicy,
    pub lmtp: bool,
}

/// net's `incoming::build`: the routes merged and placed, the Received header added.
pub fn build(
    message: &AcceptedMessage,
    routes: &[(ForwardPath, Route)],
    acceptance: &Acceptance<'_>,
) -> Option<Incoming> {
    let route_of = |path: &ForwardPath| {
        routes
            .iter()
            .find(|(known, _)| known == path)
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
        &acceptance.placement.mailboxes,
        &acceptance.placement.delivery,
    );
    let params_of = |path: &ForwardPath| -> RcptParameters {
        message
            .recipients
            .iter()
            .find(|recipient| &recipient.path == path)
            .map(|recipient| recipient.params.clone())
            .unwrap_or_default()
    };
    let local = placement
        .in_process
        .into_iter()
        .map(|delivery| RoutedRecipient::Local {
            user: delivery.address,
            original: bare(&delivery.original),
        });
    let queued = placement.queued.into_iter().map(|(delivery, destination)| {
        let params = params_of(&delivery.original);
        RoutedRecipient::Queued {
            address: delivery.address,
            destination,
            notify: params.notify,
            orcpt: params.orcpt,
        }
    });
    let recipients = local.chain(queued).collect();
    let header = received_header(message, acceptance);
    let delivery_key = if acceptance.lmtp {
        content_key(&message.data)
    } else {
        acceptance.queue_id.clone()
    };
    let mut data = Vec::with_capacity(header.len() + message.data.len());
    data.extend_from_slice(header.as_bytes());
    data.extend_from_slice(&message.data);
    let reverse_path = message.reverse_path.to_string();
    Some(Incoming {
        queue_id: acceptance.queue_id.clone(),
        reverse_path: reverse_path
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
        received_at_ms: acceptance.received_at_ms,
        delivery_key,
        envid: message.mail_params.envid.clone(),
        ret: message.mail_params.ret,
        smtputf8: message.mail_params.smtputf8,
        received_headers: u32::try_from(count_received(&data)).unwrap_or(u32::MAX),
        recipients,
        data,
    })
}

/// net's `incoming::queued`: the queue's record, or `None` when every copy went
/// into a local mailbox at acceptance.
pub fn queued(message: &Incoming) -> Option<QueuedMessage> {
    let recipients: Vec<QueuedRecipient> = message
        .recipients
        .iter()
        .filter_map(|recipient| match recipient {
            RoutedRecipient::Queued {
                address,
                destination,
                notify,
                orcpt,
            } => {
                let mut queued = QueuedRecipient::new(address, destination.clone());
                queued.notify = *notify;
                queued.original = orcpt.clone();
                Some(queued)
            }
            RoutedRecipient::Local { .. } => None,
        })
        .collect();
    if recipients.is_empty() {
        return None;
    }
    Some(QueuedMessage {
        queue_id: message.queue_id.clone(),
        reverse_path: (!message.reverse_path.is_empty()).then(|| message.reverse_path.clone()),
        envid: message.envid.clone(),
        ret: message.ret,
        arrival: Instant::from_millis(u64::try_from(message.received_at_ms).unwrap_or(0)),
        size: message.data.len() as u64,
        received_headers: message.received_headers,
        recipients,
    })
}

/// net's `incoming::notice_message`: a notice as a message from the null
/// reverse-path to its one routed recipient.
pub fn notice_message(
    queue_id: String,
    recipient: &ForwardPath,
    route: &Route,
    placement: &PlacementPolicy,
    received_at_ms: i64,
    data: Vec<u8>,
    smtputf8: bool,
) -> Option<Incoming> {
    let deliveries = delivery_set([(recipient, Some(route))])?;
    let placed = place(deliveries, &placement.mailboxes, &placement.delivery);
    let local = placed
        .in_process
        .into_iter()
        .map(|delivery| RoutedRecipient::Local {
            user: delivery.address,
            original: bare(&delivery.original),
        });
    let queued = placed
        .queued
        .into_iter()
        .map(|(delivery, destination)| RoutedRecipient::Queued {
            address: delivery.address,
            destination,
            notify: None,
            orcpt: None,
        });
    let recipients: Vec<RoutedRecipient> = local.chain(queued).collect();
    if recipients.is_empty() {
        return None;
    }
    Some(Incoming {
        delivery_key: queue_id.clone(),
        queue_id,
        reverse_path: String::new(),
        received_at_ms,
        envid: None,
        ret: None,
        smtputf8,
        received_headers: u32::try_from(count_received(&data)).unwrap_or(u32::MAX),
        recipients,
        data,
    })
}

/// net's `incoming::success_notice`: the success notice owed for the copies
/// written into local mailboxes at acceptance (core decides).
pub fn success_notice(message: &AcceptedMessage, incoming: &Incoming) -> Option<NoticeRequest> {
    let copies: Vec<AcceptedCopy> = incoming
        .recipients
        .iter()
        .filter_map(|recipient| match recipient {
            RoutedRecipient::Local { user, original } => {
                let params = message
                    .recipients
                    .iter()
                    .find(|rcpt| bare(&rcpt.path) == *original)
                    .map(|rcpt| rcpt.params.clone())
                    .unwrap_or_default();
                Some(AcceptedCopy {
                    address: user.clone(),
                    orcpt: params.orcpt,
                    notify: params.notify,
                })
            }
            RoutedRecipient::Queued { .. } => None,
        })
        .collect();
    success_at_acceptance(
        &incoming.queue_id,
        Some(incoming.reverse_path.as_str()),
        incoming.envid.as_deref(),
        incoming.ret,
        incoming.received_at_ms.div_euclid(1000),
        &copies,
    )
}

/// The recipient as written, without angle brackets (net's `bare`).
fn bare(path: &ForwardPath) -> String {
    match path {
        ForwardPath::Postmaster => "Postmaster".to_owned(),
        ForwardPath::Mailbox(mailbox) => mailbox.to_string(),
    }
}

/// net's `Envelope::of` + `into_outgoing`: what one attempt sends.
pub fn outgoing(message: &QueuedMessage, addresses: &[String], body: &[u8]) -> OutgoingMessage {
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
    OutgoingMessage {
        queue_id: message.queue_id.clone(),
        reverse_path: message.reverse_path.clone(),
        recipients,
        ret: message.ret,
        envid: message.envid.clone(),
        eight_bit: body.iter().any(|byte| *byte > 127),
        body: body.into(),
        smtputf8: false,
    }
}

/// net's `content_key`: the LMTP delivery key, SHA-256 of the message as received.
pub fn content_key(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn received_header(message: &AcceptedMessage, acceptance: &Acceptance<'_>) -> String {
    let recipient = match message.recipients.as_slice() {
        [only] => Some(only.path.clone()),
        _ => None,
    };
    ReceivedFields {
        helo: message.helo.clone(),
        esmtp: message.esmtp,
        lmtp: acceptance.lmtp,
        client_ip: acceptance.client_ip,
        client_name: None,
        hostname: acceptance.hostname.clone(),
        tls: message.tls,
        authenticated: message.authenticated.is_some(),
        smtputf8: message.mail_params.smtputf8,
        queue_id: acceptance.queue_id.clone(),
        recipient,
        timestamp: acceptance.received_at_ms.div_euclid(1000),
        utc_offset_minutes: 0,
    }
    .to_header()
}
