//! What the driver hands the session to deliver: one message, its envelope and its
//! body, shared so that a message of tens of MiB is never copied whole.

use crate::smtp::params::{Notify, OriginalRecipient, Ret};
use std::sync::Arc;

/// One message to deliver over this connection, to some of its recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The queue's name for the message; echoed in its [`MessageReport`](super::MessageReport).
    pub queue_id: String,
    /// The sender, `local@domain` without angle brackets; `None` is the null
    /// reverse-path of a notice.
    pub reverse_path: Option<String>,
    /// Recipients in the order their results are reported.
    pub recipients: Vec<OutgoingRecipient>,
    /// RET= for the server, passed on only when it offers DSN (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// ENVID= (decoded), passed on only when the server offers DSN (RFC 3461 §4.4).
    pub envid: Option<String>,
    /// The message as stored: header and body. Bare CR and LF are sent as CRLF.
    pub body: Arc<[u8]>,
    /// The body holds 8-bit text (BODY=8BITMIME, RFC 6152). A body with any octet
    /// above 127 is treated as 8-bit even when this is false.
    pub eight_bit: bool,
    /// The message needs SMTPUTF8 (RFC 6531) even if its envelope is ASCII.
    pub smtputf8: bool,
}

/// One recipient of an outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingRecipient {
    /// `local@domain` without angle brackets.
    pub address: String,
    /// NOTIFY= from the original RCPT, passed on only when the server offers DSN.
    pub notify: Option<Notify>,
    /// ORCPT= from the original RCPT, passed on only when the server offers DSN.
    pub orcpt: Option<OriginalRecipient>,
}
