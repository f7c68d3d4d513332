//! STARTTLS (RFC 3207): when the switch is allowed, the refusal of pipelined
//! plaintext, and forgetting the plaintext session once TLS is up.

use super::{DisconnectReason, Mode, Output, ServerSession, SessionEvent, capabilities, replies};
use crate::time::Instant;

impl ServerSession {
    pub(super) fn on_starttls(&mut self, now: Instant) {
        const VERB: &str = "STARTTLS";
        if self.tls_active {
            return self.refuse_bad(VERB, replies::tls_already_active());
        }
        if !capabilities::starttls_offered(&self.config, self.tls_active) {
            return self.refuse_bad(VERB, replies::starttls_unavailable());
        }
        if self.transaction.is_some() {
            return self.refuse_bad(VERB, replies::starttls_in_transaction());
        }
        if self.input.len() > 0 {
            // Anything the client sent after STARTTLS was sent in plaintext, before the
            // handshake; carrying it into the TLS session is CVE-2011-0411.
            let reply = replies::starttls_injection(&self.config.hostname);
            return self.close_refusing(VERB, reply, DisconnectReason::StartTlsInjection);
        }
        self.send(&replies::ready_for_tls());
        self.outputs.push_back(Output::StartTls);
        self.mode = Mode::TlsHandshake;
        self.idle_deadline = now + self.config.limits.command_timeout;
    }

    pub(super) fn on_tls_established(&mut self, now: Instant) {
        // RFC 3207 §4.2: forget everything learnt from the client before TLS.
        self.tls_active = true;
        self.helo = None;
        self.authenticated = None;
        self.transaction = None;
        self.mode = Mode::Command;
        self.idle_deadline = now + self.config.limits.command_timeout;
        self.event(SessionEvent::TlsStarted);
    }
}
