//! Delivery status notifications: RFC 3464 `multipart/report` messages that tell a
//! sender what happened to their message, with RFC 3461's NOTIFY, RET, ENVID and
//! ORCPT semantics. The queue decides *that* a notice is due and for which
//! recipients ([`NoticeRequest`]); this module writes the message.

mod request;

pub use request::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest};
