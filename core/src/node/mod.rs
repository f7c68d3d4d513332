//! A Sluice node's wiring, in core so that `net` and `sim` run the same one.
//!
//! - [`reception`]: one machine per connection — the SMTP/LMTP server session, the
//!   routes its recipients got, and the record of each accepted message, with the
//!   order of the requests that makes a 250 a promise (named, durable, queued,
//!   answered).
//! - [`accepted`]: what an accepted message becomes: local copies and queued copies
//!   placed by the router and the delivery policy, the Received field, the delivery
//!   key, and the queue's record (queued copies, and local copies still owing a
//!   success notice); also delivery notices placed as messages.
//! - [`notices`]: a delivery notice built, its recipient checked and placed.
//! - [`client_name`]: the client's forward-confirmed name for the Received field.
//! - [`outgoing`]: what a delivery attempt sends, from the queue's record.
//!
//! The delivery side of a node is core's queue machine ([`crate::queue`]) with the
//! SMTP/LMTP client machine ([`crate::smtp::client`]) for each attempt.

pub mod accepted;
pub mod client_name;
pub mod notices;
pub mod outgoing;
pub mod reception;

pub use accepted::{
    Acceptance, ClientTrace, IncomingMessage, PlacementPolicy, QueuedCopy, Receiver,
    RoutedRecipient, Stamp, accept, delivered_at_acceptance, local_destination, notice_message,
    queued_part,
};
pub use notices::{NoticePlaced, NoticeSettings, NoticeStart, PendingNotice, start_notice};
pub use outgoing::Envelope;
pub use reception::{Reception, ReceptionConfig};
