//! Glue between the session's accepted message and the store: core merges the routes
//! decided at RCPT time into the copies to make and places each (a local mailbox now,
//! or the queue with a destination); the message gets its Received header and queue
//! id. Also the conversions to the queue's types. Nothing here decides where mail goes.

use crate::store::{IncomingMessage, QueuedCopy, RoutedRecipient};
use sluice_core::delivery::DeliveryPolicy;
use sluice_core::notice::{AcceptedCopy, NoticeRequest, success_at_acceptance};
use sluice_core::queue::{QueuedMessage, QueuedRecipient};
use sluice_core::router::{MailboxAccess, Route, delivery_set, place};
use sluice_core::smtp::address::{Domain, ForwardPath};
use sluice_core::smtp::params::RcptParameters;
use sluice_core::smtp::received::{ReceivedFields, count_received};
use sluice_core::smtp::server::AcceptedMessage;
use sluice_core::time::Instant;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Where the connection came from, as the Received header names it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub address: SocketAddr,
    /// The forward-confirmed reverse DNS name of the address, once a lookup running
    /// beside the session has found one; a message accepted before that (or without
    /// a name) is traced by its address literal alone.
    pub name: std::sync::Arc<std::sync::OnceLock<Domain>>,
}

impl ClientInfo {
    pub fn new(address: SocketAddr) -> ClientInfo {
        ClientInfo {
            address,
            name: std::sync::Arc::default(),
        }
    }
}

/// How this node places copies: its mailboxes' access (its role) and the policy
/// for everything else.
#[derive(Clone, Debug)]
pub struct PlacementPolicy {
    pub mailboxes: MailboxAccess,
    pub delivery: DeliveryPolicy,
}

/// What the store needs besides the session's message.
#[derive(Clone, Debug)]
pub struct Acceptance<'a> {
    pub queue_id: String,
    pub client: &'a ClientInfo,
    pub hostname: &'a Domain,
    pub received_at_ms: i64,
    pub placement: &'a PlacementPolicy,
    /// An LMTP session: the trace field names LMTP (RFC 3848), and since a
    /// redelivery of the same message must not reach a mailbox twice, the delivery
    /// key is a digest of what the gateway sent rather than our queue id.
    pub lmtp: bool,
}

/// The store's record of `message`, or `None` when an accepted recipient has no
/// deliverable route (a driver bug: the session accepts only routed recipients).
pub fn build(
    message: &AcceptedMessage,
    routes: &HashMap<ForwardPath, Route>,
    acceptance: &Acceptance<'_>,
) -> Option<IncomingMessage> {
    let deliveries = delivery_set(
        message
            .recipients
            .iter()
            .map(|recipient| (&recipient.path, routes.get(&recipient.path))),
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
        RoutedRecipient::Queued(QueuedCopy {
            address: delivery.address,
            original: bare(&delivery.original),
            destination,
            notify: params.notify,
            orcpt: params.orcpt,
        })
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
    Some(IncomingMessage {
        queue_id: acceptance.queue_id.clone(),
        reverse_path: message.reverse_path.to_string(),
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

/// The success notice owed for the copies of `incoming` written into local
/// mailboxes at acceptance (core decides; RFC 3461 NOTIFY=SUCCESS).
pub fn success_notice(
    message: &AcceptedMessage,
    incoming: &IncomingMessage,
) -> Option<NoticeRequest> {
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
            RoutedRecipient::Queued(_) => None,
        })
        .collect();
    let reverse_path = incoming
        .reverse_path
        .trim_start_matches('<')
        .trim_end_matches('>');
    success_at_acceptance(
        &incoming.queue_id,
        Some(reverse_path),
        incoming.envid.as_deref(),
        incoming.ret,
        incoming.received_at_ms.div_euclid(1000),
        &copies,
    )
}

/// A delivery key from the content: SHA-256 of the message as received.
fn content_key(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The queue's record of a stored message: its queued copies, or `None` when every
/// copy went into a local mailbox at acceptance.
pub fn queued(message: &IncomingMessage) -> Option<QueuedMessage> {
    let recipients: Vec<QueuedRecipient> = message
        .recipients
        .iter()
        .filter_map(|recipient| match recipient {
            RoutedRecipient::Queued(copy) => {
                let mut queued = QueuedRecipient::new(&copy.address, copy.destination.clone());
                queued.notify = copy.notify;
                queued.original = copy.orcpt.clone();
                Some(queued)
            }
            RoutedRecipient::Local { .. } => None,
        })
        .collect();
    if recipients.is_empty() {
        return None;
    }
    let reverse_path = message
        .reverse_path
        .trim_start_matches('<')
        .trim_end_matches('>');
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
    let local = placed
        .in_process
        .into_iter()
        .map(|delivery| RoutedRecipient::Local {
            user: delivery.address,
            original: bare(&delivery.original),
        });
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

/// The trace field (RFC 5321 §4.4), as core writes it; the date in UTC.
fn received_header(message: &AcceptedMessage, acceptance: &Acceptance<'_>) -> String {
    let recipient = match message.recipients.as_slice() {
        [only] => Some(only.path.clone()),
        _ => None,
    };
    ReceivedFields {
        helo: message.helo.clone(),
        esmtp: message.esmtp,
        lmtp: acceptance.lmtp,
        client_ip: acceptance.client.address.ip(),
        client_name: acceptance.client.name.get().cloned(),
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
