//! The delivery tier's runtime: the queue machine driven on tokio, delivery
//! attempts over real connections, and the durable writes (with their notices) the
//! queue asks for. Nothing here decides where mail goes or when it is retried: core's
//! queue, router, MX ordering and client session do.
//!
//! - `service`: the task that owns the queue machine ([`start`], [`DeliveryHandle`]);
//! - `attempt`: one attempt over one destination, host after host ([`Deliverer`]);
//! - `connection`: one client session on one connection, with STARTTLS, kept idle in a
//!   [`Pool`] for the next message to the same host;
//! - `notices`: state changes and their notice, in one transaction ([`NoticeWriter`]);
//! - `tls`: the client's rustls configurations ([`ClientTls`]).

mod attempt;
mod connection;
mod notices;
mod service;
mod tls;

pub use attempt::Deliverer;
pub use connection::Pool;
pub use notices::NoticeWriter;
pub use service::{Command, DeliveryHandle, start};
pub use tls::{ClientTls, ClientTlsError};
