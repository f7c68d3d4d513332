//! Glue between the session's accepted message and the store: core merges the routes
//! decided at RCPT time into the copies to make, and the message gets its Received
//! header and queue id. Nothing here decides where mail goes.

use crate::store::{IncomingMessage, RoutedRecipient};
use sluice_core::router::{Route, delivery_set};
use sluice_core::smtp::address::{Domain, ForwardPath};
use sluice_core::smtp::received::ReceivedFields;
use sluice_core::smtp::server::AcceptedMessage;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Where the connection came from, as the Received header names it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub address: SocketAddr,
}

/// The store's record of `message`, or `None` when an accepted recipient has no
/// deliverable route (a driver bug: the session accepts only routed recipients).
pub fn build(
    message: &AcceptedMessage,
    routes: &HashMap<ForwardPath, Route>,
    queue_id: String,
    client: &ClientInfo,
    hostname: &Domain,
    received_at_ms: i64,
) -> Option<IncomingMessage> {
    let deliveries = delivery_set(
        message
            .recipients
            .iter()
            .map(|recipient| (&recipient.path, routes.get(&recipient.path))),
    )?;
    let local = deliveries
        .local
        .into_iter()
        .map(|delivery| RoutedRecipient::Local {
            user: delivery.address,
            original: bare(&delivery.original),
        });
    let external = deliveries
        .external
        .into_iter()
        .map(|delivery| RoutedRecipient::External {
            address: delivery.address,
            original: bare(&delivery.original),
        });
    let recipients = local.chain(external).collect();
    let header = received_header(message, client, hostname, &queue_id, received_at_ms);
    let mut data = Vec::with_capacity(header.len() + message.data.len());
    data.extend_from_slice(header.as_bytes());
    data.extend_from_slice(&message.data);
    Some(IncomingMessage {
        queue_id,
        reverse_path: message.reverse_path.to_string(),
        received_at_ms,
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
fn received_header(
    message: &AcceptedMessage,
    client: &ClientInfo,
    hostname: &Domain,
    queue_id: &str,
    received_at_ms: i64,
) -> String {
    let recipient = match message.recipients.as_slice() {
        [only] => Some(only.path.clone()),
        _ => None,
    };
    ReceivedFields {
        helo: message.helo.clone(),
        esmtp: message.esmtp,
        client_ip: client.address.ip(),
        client_name: None,
        hostname: hostname.clone(),
        tls: message.tls,
        authenticated: message.authenticated.is_some(),
        smtputf8: message.mail_params.smtputf8,
        queue_id: queue_id.to_owned(),
        recipient,
        timestamp: received_at_ms.div_euclid(1000),
        utc_offset_minutes: 0,
    }
    .to_header()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::smtp::address::{Host, Mailbox, ReversePath};
    use sluice_core::smtp::params::{MailParameters, RcptParameters};
    use sluice_core::smtp::server::EnvelopeRecipient;

    fn path(text: &str) -> ForwardPath {
        ForwardPath::Mailbox(Mailbox::parse(text).unwrap())
    }

    fn message(recipients: &[&str]) -> AcceptedMessage {
        AcceptedMessage {
            helo: Host::parse("client.test").unwrap(),
            esmtp: true,
            tls: true,
            authenticated: None,
            reverse_path: ReversePath::Mailbox(Mailbox::parse("a@b.test").unwrap()),
            mail_params: MailParameters::default(),
            recipients: recipients
                .iter()
                .map(|text| EnvelopeRecipient {
                    path: path(text),
                    params: RcptParameters::default(),
                })
                .collect(),
            data: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
        }
    }

    fn deliver(local: &[&str], external: &[&str]) -> Route {
        Route::Deliver {
            local_mailboxes: local.iter().map(|text| (*text).to_owned()).collect(),
            external: external.iter().map(|text| (*text).to_owned()).collect(),
        }
    }

    #[test]
    fn routes_become_recipients_and_one_mailbox_gets_one_copy() {
        let mut routes = HashMap::new();
        routes.insert(
            path("info@x.test"),
            deliver(&["bob@x.test"], &["ext@y.test"]),
        );
        routes.insert(path("bob@x.test"), deliver(&["bob@x.test"], &[]));
        let client = ClientInfo {
            address: "192.0.2.7:4000".parse().unwrap(),
        };
        let hostname = Domain::parse("mx.x.test").unwrap();
        let built = build(
            &message(&["info@x.test", "bob@x.test"]),
            &routes,
            "QID1".to_owned(),
            &client,
            &hostname,
            1_795_964_586_000,
        )
        .unwrap();
        assert_eq!(
            built.recipients,
            vec![
                RoutedRecipient::Local {
                    user: "bob@x.test".to_owned(),
                    original: "info@x.test".to_owned()
                },
                RoutedRecipient::External {
                    address: "ext@y.test".to_owned(),
                    original: "info@x.test".to_owned()
                },
            ]
        );
        let text = String::from_utf8(built.data).unwrap();
        assert!(text.starts_with("Received: from client.test"), "{text}");
        assert!(text.contains("[192.0.2.7]"), "{text}");
        assert!(text.contains("QID1"), "{text}");
        assert!(text.ends_with("\r\nSubject: hi\r\n\r\nbody\r\n"), "{text}");
        assert_eq!(built.reverse_path, "<a@b.test>");
    }

    #[test]
    fn a_recipient_without_a_route_is_refused() {
        let client = ClientInfo {
            address: "192.0.2.7:4000".parse().unwrap(),
        };
        let hostname = Domain::parse("mx.x.test").unwrap();
        let built = build(
            &message(&["nobody@x.test"]),
            &HashMap::new(),
            "QID2".to_owned(),
            &client,
            &hostname,
            0,
        );
        assert!(built.is_none());
    }
}
