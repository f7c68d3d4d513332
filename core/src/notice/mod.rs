//! Delivery status notifications: RFC 3464 `multipart/report` messages that tell a
//! sender what happened to their message, with RFC 3461's NOTIFY, RET, ENVID and
//! ORCPT semantics. The queue decides *that* a notice is due and for which
//! recipients ([`NoticeRequest`]); [`build`] writes the message.
//!
//! - `request`: the contract with the queue;
//! - `context`: who reports and when ([`NoticeContext`]), the result ([`Notice`]);
//! - `build`: the `multipart/report` and its boundary;
//! - `human`, `status`, `original`: its three parts (explanation, RFC 3464 fields,
//!   returned content);
//! - `field`: outside text made safe for header-style fields.

mod build;
mod context;
mod field;
mod human;
mod original;
mod request;
mod status;

pub use build::build;
pub use context::{DEFAULT_RETURN_LIMIT, Notice, NoticeContext, NoticeError, notice_message_id};
pub use request::{NoticeAction, NoticeKind, NoticeRecipient, NoticeRequest};
