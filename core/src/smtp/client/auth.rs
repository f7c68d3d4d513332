//! Authenticating to a relay (RFC 4954) after EHLO and before the first transaction:
//! AUTH PLAIN with an initial response (RFC 4616), or AUTH LOGIN where the server
//! offers only that. Credentials go out only over TLS unless the path allows
//! plaintext. A 5xx (535: bad credentials) fails the attempt's recipients for good —
//! retrying cannot fix credentials — while a 4xx (454) is a temporary session failure.

use super::replies::{local_failure, refusal, session_failure};
use super::{
    ClientEvent, ClientSession, MessageReport, Phase, RecipientOutcome, SessionFailureKind,
};
use crate::delivery::RecipientResult;
use crate::smtp::reply::{EnhancedStatus, Reply, ReplyClass};
use crate::time::Instant;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Where an AUTH dialogue stands: which reply the session waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuthStep {
    /// `AUTH PLAIN <initial response>` sent: 235 or a refusal.
    Plain,
    /// `AUTH LOGIN` sent: the 334 asking for the username.
    LoginUsername,
    /// The username sent: the 334 asking for the password.
    LoginPassword,
    /// The password sent: 235 or a refusal.
    LoginDone,
}

/// RFC 4954 §6's status for a mechanism we cannot use safely or at all here.
const AUTH_UNAVAILABLE: EnhancedStatus = EnhancedStatus::new(4, 7, 0);

impl ClientSession {
    /// After EHLO (over TLS, where TLS was to be had): authenticate if the path has
    /// credentials, else go on to the transactions.
    pub(super) fn authenticate_or_start(&mut self, now: Instant) {
        let Some(auth) = self.config.auth.as_ref() else {
            return self.start_next(now);
        };
        if !self.tls_active && !auth.plaintext_allowed {
            let failure = local_failure(
                AUTH_UNAVAILABLE,
                Some(self.remote()),
                "the relay needs AUTH, but the connection is not encrypted and the path \
                 does not allow plaintext authentication",
            );
            return self.fail(SessionFailureKind::AuthFailed, failure, true);
        }
        let line = if self.capabilities.auth_plain {
            // RFC 4616: authorization identity (empty: the same), NUL, username, NUL,
            // password.
            let mut response = Vec::new();
            response.push(0);
            response.extend_from_slice(auth.username.as_bytes());
            response.push(0);
            response.extend_from_slice(auth.password.expose().as_bytes());
            self.phase = Phase::Auth(AuthStep::Plain);
            format!("AUTH PLAIN {}", BASE64.encode(response))
        } else if self.capabilities.auth_login {
            self.phase = Phase::Auth(AuthStep::LoginUsername);
            "AUTH LOGIN".to_owned()
        } else {
            let failure = local_failure(
                AUTH_UNAVAILABLE,
                Some(self.remote()),
                "the relay needs AUTH, but offers neither PLAIN nor LOGIN",
            );
            return self.fail(SessionFailureKind::AuthFailed, failure, true);
        };
        self.send_line(&line);
        self.deadline = Some(now + self.config.limits.command_timeout);
    }

    pub(super) fn on_auth_reply(&mut self, now: Instant, reply: Reply, step: AuthStep) {
        match (reply.code.class(), step) {
            (ReplyClass::PositiveCompletion, AuthStep::Plain | AuthStep::LoginDone) => {
                self.event(ClientEvent::Authenticated);
                self.start_next(now);
            }
            (ReplyClass::PositiveIntermediate, AuthStep::LoginUsername) => {
                let Some(auth) = self.config.auth.as_ref() else {
                    return;
                };
                let line = BASE64.encode(auth.username.as_bytes());
                self.send_line(&line);
                self.phase = Phase::Auth(AuthStep::LoginPassword);
                self.deadline = Some(now + self.config.limits.command_timeout);
            }
            (ReplyClass::PositiveIntermediate, AuthStep::LoginPassword) => {
                let Some(auth) = self.config.auth.as_ref() else {
                    return;
                };
                let line = BASE64.encode(auth.password.expose().as_bytes());
                self.send_line(&line);
                self.phase = Phase::Auth(AuthStep::LoginDone);
                self.deadline = Some(now + self.config.limits.command_timeout);
            }
            (ReplyClass::TransientNegative, _) => {
                let failure = session_failure(&reply, self.remote());
                self.fail(SessionFailureKind::AuthFailed, failure, true);
            }
            (ReplyClass::PermanentNegative, _) => self.auth_rejected(&reply),
            // A success or a challenge out of turn: the server is not in step with us.
            _ => self.protocol_violation("an AUTH reply out of turn"),
        }
    }

    /// The relay refused our credentials for good: the waiting message's recipients
    /// fail permanently with its reply, and the session ends.
    fn auth_rejected(&mut self, reply: &Reply) {
        if let Some(RecipientResult::Permanent(failure)) = refusal(reply, self.remote())
            && let Some(message) = self.queued.take()
        {
            let recipients = message
                .recipients
                .iter()
                .map(|_| RecipientOutcome::Final(RecipientResult::Permanent(failure.clone())))
                .collect();
            self.report(MessageReport {
                queue_id: message.queue_id,
                recipients,
                progress: super::TransactionProgress::NotStarted,
            });
        }
        let failure = session_failure(reply, self.remote());
        self.fail(SessionFailureKind::AuthRejected, failure, true);
    }
}
