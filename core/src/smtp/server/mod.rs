//! The SMTP server session machine: the whole RFC 5321 dialogue for one connection
//! on an MX or submission listener, with PIPELINING, STARTTLS, AUTH, CHUNKING, DSN,
//! SMTPUTF8, 8BITMIME, SIZE and ENHANCEDSTATUSCODES.
//!
//! The session decides every reply. What it cannot know — are these credentials
//! valid, is this recipient acceptable, is the message durable — it asks its driver
//! for with a token, and it holds back every later reply until the answer arrives,
//! so pipelined replies stay in order. It never answers 250 to DATA or BDAT LAST
//! before the driver reports the message durable.

pub mod config;
pub mod event;
pub mod io;

pub use config::{Limits, ListenerKind, SessionConfig, TlsMode};
pub use event::{DisconnectReason, RejectReason, SessionEvent};
pub use io::{
    AcceptedMessage, CredentialOutcome, Credentials, EnvelopeRecipient, Input, Output, RecipientCheck,
    RecipientVerdict, StoreOutcome,
};

use crate::machine::Machine;
use crate::time::Instant;

/// One SMTP server session. Create it when a connection is accepted; it queues the greeting.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
}

impl ServerSession {
    /// A new session at `now`; the 220 greeting is the first output.
    pub fn new(now: Instant, config: SessionConfig) -> ServerSession {
        todo!("session")
    }

    /// Whether the driver should read more input now. False while the session waits
    /// for an answer and already holds `limits.pipeline_buffer` unprocessed bytes, and
    /// after it has asked to close or to start TLS. Backpressure, not correctness: input
    /// given anyway is still handled within the bounds.
    pub fn wants_input(&self) -> bool {
        todo!("session")
    }

    /// Whether the session has finished (after `Output::Close`).
    pub fn is_closed(&self) -> bool {
        todo!("session")
    }
}

impl Machine for ServerSession {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        todo!("session")
    }

    fn poll(&mut self) -> Option<Output> {
        todo!("session")
    }

    fn next_deadline(&self) -> Option<Instant> {
        todo!("session")
    }
}
