//! The opening of the session: the greeting (RFC 5321 §3.1), EHLO or LHLO with the
//! HELO fallback (RFC 5321 §3.2, RFC 2033 §4.1), and STARTTLS (RFC 3207) as the
//! TLS policy demands, with EHLO again over TLS; then AUTH where the path has
//! credentials.

use super::capabilities::Capabilities;
use super::replies::{local_failure, session_failure};
use super::{
    ClientEvent, ClientSession, Output, Phase, Protocol, SessionFailureKind, starttls_wanted,
};
use crate::delivery::TlsPolicy;
use crate::smtp::reply::{EnhancedStatus, Reply, ReplyClass};
use crate::time::Instant;

impl ClientSession {
    pub(super) fn on_greeting(&mut self, now: Instant, reply: Reply) {
        if reply.code.0 != 220 {
            let failure = session_failure(&reply, self.remote());
            // RFC 5321 §3.1: after a 554 greeting the client should say QUIT.
            return self.fail(SessionFailureKind::GreetingRefused, failure, true);
        }
        self.event(ClientEvent::Greeted);
        self.send_hello(now, false);
    }

    /// EHLO or LHLO, or (`fallback`) HELO.
    fn send_hello(&mut self, now: Instant, fallback: bool) {
        let verb = match (self.config.protocol, fallback) {
            (Protocol::Lmtp, _) => "LHLO",
            (Protocol::Smtp, false) => "EHLO",
            (Protocol::Smtp, true) => "HELO",
        };
        let line = format!("{verb} {}", self.config.hostname);
        self.send_line(&line);
        self.phase = Phase::Hello { fallback };
        self.deadline = Some(now + self.config.limits.command_timeout);
    }

    pub(super) fn on_hello_reply(&mut self, now: Instant, reply: Reply, fallback: bool) {
        if reply.code.class() == ReplyClass::PositiveCompletion {
            self.capabilities = if fallback {
                Capabilities::default()
            } else {
                Capabilities::from_ehlo(&reply)
            };
            self.event(ClientEvent::Hello {
                extended: !fallback,
            });
            return self.after_hello(now);
        }
        // RFC 5321 §3.2: a server that does not know EHLO answers 5xx; try HELO. LMTP
        // has no fallback (RFC 2033 §4.1).
        let can_fall_back = !fallback
            && self.config.protocol == Protocol::Smtp
            && reply.code.class() == ReplyClass::PermanentNegative;
        if can_fall_back {
            return self.send_hello(now, true);
        }
        let failure = session_failure(&reply, self.remote());
        self.fail(SessionFailureKind::HelloRefused, failure, true);
    }

    fn after_hello(&mut self, now: Instant) {
        let Some(verify) = starttls_wanted(self.config.tls).filter(|_| !self.tls_active) else {
            return self.authenticate_or_start(now);
        };
        if self.capabilities.starttls {
            self.send_line("STARTTLS");
            self.phase = Phase::StartTls;
            self.deadline = Some(now + self.config.limits.command_timeout);
        } else if verify {
            let failure = local_failure(
                EnhancedStatus::new(4, 7, 5),
                Some(self.remote()),
                "TLS required, but the server does not offer STARTTLS",
            );
            self.fail(SessionFailureKind::TlsRequired, failure, true);
        } else {
            self.event(ClientEvent::TlsSkipped { refused_with: None });
            self.authenticate_or_start(now);
        }
    }

    pub(super) fn on_starttls_reply(&mut self, now: Instant, reply: Reply) {
        if reply.code.0 == 220 {
            if self.replies.has_pending() {
                // RFC 3207 §4.2: nothing may follow the 220 in plain text; anything that
                // does is an injection attempt.
                return self.protocol_violation("bytes after the STARTTLS reply");
            }
            let verify = self.config.tls == TlsPolicy::Required;
            self.outputs.push_back(Output::StartTls {
                server_name: self.config.remote_host.clone(),
                verify,
            });
            self.phase = Phase::TlsHandshake;
            self.deadline = Some(now + self.config.limits.tls_handshake_timeout);
            return;
        }
        if self.config.tls == TlsPolicy::Required {
            let failure = session_failure(&reply, self.remote());
            let failure = crate::delivery::Failure {
                status: EnhancedStatus::new(4, 7, 5),
                ..failure
            };
            return self.fail(SessionFailureKind::TlsRequired, failure, true);
        }
        self.event(ClientEvent::TlsSkipped {
            refused_with: Some(reply.code),
        });
        self.authenticate_or_start(now);
    }

    pub(super) fn on_tls_established(&mut self, now: Instant) {
        self.tls_active = true;
        // RFC 3207 §4.2: forget everything learned before TLS and ask again.
        self.replies.clear();
        self.capabilities = Capabilities::default();
        self.event(ClientEvent::TlsStarted {
            verified: self.config.tls == TlsPolicy::Required,
        });
        self.send_hello(now, false);
    }

    pub(super) fn on_tls_failed(&mut self) {
        let failure = local_failure(
            EnhancedStatus::new(4, 7, 5),
            Some(self.remote()),
            "the TLS handshake failed",
        );
        let retry_without_tls = self.config.tls == TlsPolicy::Opportunistic;
        self.fail_with(
            SessionFailureKind::TlsFailed,
            failure,
            false,
            retry_without_tls,
        );
    }
}
