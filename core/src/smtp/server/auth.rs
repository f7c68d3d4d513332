//! The AUTH dialogue (RFC 4954): when AUTH may start, the PLAIN and LOGIN
//! exchanges, the credential request and its outcome.

use super::sasl;
use super::{
    AuthStep, CredentialOutcome, Credentials, DisconnectReason, ListenerKind, Mode, Output,
    ServerSession, SessionEvent, Wait, capabilities, replies,
};
use crate::smtp::command::InitialResponse;
use crate::smtp::reply::Reply;
use crate::time::Instant;

impl ServerSession {
    /// Why AUTH with this mechanism cannot start now, as the reply and whether it
    /// counts as a client error; `Ok` with the mechanism if it can.
    fn auth_precondition(&self, mechanism: &str) -> Result<&'static str, (Reply, bool)> {
        if self.config.kind != ListenerKind::Submission {
            return Err((replies::auth_unavailable(), true));
        }
        if !capabilities::auth_offered(&self.config, self.tls_active) {
            return Err((replies::auth_requires_encryption(), false));
        }
        if !self.helo.as_ref().is_some_and(|(_, esmtp)| *esmtp) {
            return Err((replies::auth_needs_ehlo(), true));
        }
        if self.authenticated.is_some() {
            return Err((replies::already_authenticated(), true));
        }
        if self.transaction.is_some() {
            return Err((replies::auth_in_transaction(), true));
        }
        sasl::mechanism(mechanism).ok_or((replies::unknown_mechanism(), true))
    }

    fn refuse_auth(&mut self, (reply, bad): (Reply, bool)) {
        if bad {
            self.refuse_bad("AUTH", reply);
        } else {
            self.refuse("AUTH", reply);
        }
    }

    /// AUTH whose initial response the grammar found not to be base64: refused like
    /// any other AUTH if AUTH cannot start, else as an undecodable response.
    pub(super) fn on_auth_not_base64(&mut self, mechanism: &str) {
        match self.auth_precondition(mechanism) {
            Ok(mechanism) => self.auth_undecodable(mechanism),
            Err(refusal) => self.refuse_auth(refusal),
        }
    }

    pub(super) fn on_auth(
        &mut self,
        now: Instant,
        mechanism: &str,
        initial_response: Option<InitialResponse>,
    ) {
        let mechanism = match self.auth_precondition(mechanism) {
            Ok(mechanism) => mechanism,
            Err(refusal) => return self.refuse_auth(refusal),
        };
        let response = match &initial_response {
            None => None,
            Some(InitialResponse::Empty) => Some(&b""[..]),
            Some(InitialResponse::Base64(text)) => Some(text.as_bytes()),
        };
        match (mechanism, response) {
            (sasl::PLAIN, None) => {
                self.send(&replies::auth_challenge(""));
                self.mode = Mode::AuthResponse(AuthStep::Plain);
            }
            (sasl::PLAIN, Some(response)) => self.on_auth_response(now, AuthStep::Plain, response),
            (_, None) => {
                self.send(&replies::auth_challenge(sasl::LOGIN_USERNAME_PROMPT));
                self.mode = Mode::AuthResponse(AuthStep::LoginUsername);
            }
            (_, Some(response)) => self.on_auth_response(now, AuthStep::LoginUsername, response),
        }
    }

    pub(super) fn on_auth_response(&mut self, now: Instant, step: AuthStep, response: &[u8]) {
        if sasl::is_cancel(response) {
            return self.refuse("AUTH", replies::auth_cancelled());
        }
        match step {
            AuthStep::Plain => match sasl::decode_plain(response) {
                Ok(message) => self.check_credentials(
                    now,
                    Credentials {
                        mechanism: sasl::PLAIN,
                        authorization_id: message.authorization_id,
                        username: message.username,
                        password: message.password,
                    },
                ),
                Err(sasl::Undecodable) => self.auth_undecodable(sasl::PLAIN),
            },
            AuthStep::LoginUsername => match sasl::decode_text(response) {
                Ok(username) => {
                    self.send(&replies::auth_challenge(sasl::LOGIN_PASSWORD_PROMPT));
                    self.mode = Mode::AuthResponse(AuthStep::LoginPassword { username });
                }
                Err(sasl::Undecodable) => self.auth_undecodable(sasl::LOGIN),
            },
            AuthStep::LoginPassword { username } => match sasl::decode_text(response) {
                Ok(password) => self.check_credentials(
                    now,
                    Credentials {
                        mechanism: sasl::LOGIN,
                        authorization_id: None,
                        username,
                        password,
                    },
                ),
                Err(sasl::Undecodable) => self.auth_undecodable(sasl::LOGIN),
            },
        }
    }

    fn auth_undecodable(&mut self, mechanism: &'static str) {
        self.event(SessionEvent::AuthFailed {
            mechanism: mechanism.to_owned(),
            username: None,
        });
        self.refuse_bad("AUTH", replies::auth_undecodable());
    }

    fn check_credentials(&mut self, now: Instant, credentials: Credentials) {
        let token = self.tokens.next();
        let (mechanism, username) = (credentials.mechanism, credentials.username.clone());
        let authorization_id = credentials.authorization_id.clone();
        self.outputs
            .push_back(Output::CheckCredentials { token, credentials });
        self.mode = Mode::Waiting(Wait::Credentials {
            token,
            mechanism,
            username,
            authorization_id,
            deadline: now + self.config.limits.lookup_timeout,
        });
    }

    /// Answers AUTH with the driver's outcome; `None` when the check timed out.
    pub(super) fn on_credential_outcome(&mut self, wait: Wait, outcome: Option<CredentialOutcome>) {
        let Wait::Credentials {
            mechanism,
            username,
            authorization_id,
            ..
        } = wait
        else {
            return;
        };
        match outcome {
            // Valid credentials asking for another identity fail like a wrong password.
            Some(CredentialOutcome::Valid { identity })
                if !crate::sasl::may_act_as(authorization_id.as_deref(), &identity) =>
            {
                self.auth_rejected(mechanism, username);
            }
            Some(CredentialOutcome::Valid { identity }) => {
                self.authenticated = Some(identity.clone());
                self.send(&replies::auth_succeeded());
                self.event(SessionEvent::AuthSucceeded {
                    mechanism,
                    identity,
                });
            }
            Some(CredentialOutcome::Invalid) => self.auth_rejected(mechanism, username),
            Some(CredentialOutcome::TemporaryFailure) | None => {
                self.refuse("AUTH", replies::auth_temporary_failure());
            }
        }
    }

    /// 535, counted toward `Limits::auth_failures`; the last allowed failure closes.
    fn auth_rejected(&mut self, mechanism: &'static str, username: String) {
        self.refuse("AUTH", replies::auth_invalid());
        self.event(SessionEvent::AuthFailed {
            mechanism: mechanism.to_owned(),
            username: Some(username),
        });
        self.auth_failures = self.auth_failures.saturating_add(1);
        if self.auth_failures >= self.config.limits.auth_failures {
            let reply = replies::too_many_auth_failures(&self.config.hostname);
            self.close(Some(reply), DisconnectReason::TooManyAuthFailures);
        }
    }
}
