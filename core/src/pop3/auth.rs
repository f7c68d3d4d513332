//! Logging in (RFC 1939 §7 USER/PASS, RFC 5034 AUTH PLAIN): when it is allowed, the
//! credential request and its outcome, then locking and opening the maildrop.

use super::maildrop::{ListingError, Maildrop};
use super::{
    CredentialOutcome, Credentials, DisconnectReason, MaildropOutcome, MaildropRefusal, Mode,
    Output, Pop3Session, SessionEvent, State, Wait, replies,
};
use crate::sasl;
use crate::time::Instant;

/// The mechanism name USER/PASS logins carry in credentials and events.
const USER_MECHANISM: &str = "USER";

impl Pop3Session {
    /// Why a login command cannot be used now, if it cannot.
    fn login_refusal(&mut self, verb: &str) -> Option<()> {
        if !self.in_authorization() {
            self.refuse_bad(verb, replies::wrong_state());
            return Some(());
        }
        if !self.login_allowed() {
            self.refuse(verb, replies::plaintext_refused());
            return Some(());
        }
        None
    }

    pub(super) fn on_user(&mut self, name: String) {
        if self.login_refusal("USER").is_some() {
            return;
        }
        self.state = State::Authorization { user: Some(name) };
        self.send(&replies::send_pass());
    }

    pub(super) fn on_pass(&mut self, now: Instant, password: String) {
        if self.login_refusal("PASS").is_some() {
            return;
        }
        let State::Authorization { user } = &mut self.state else {
            return;
        };
        let Some(username) = user.take() else {
            return self.refuse_bad("PASS", replies::pass_without_user());
        };
        self.check_credentials(
            now,
            Credentials {
                mechanism: USER_MECHANISM,
                authorization_id: None,
                username,
                password,
            },
        );
    }

    pub(super) fn on_auth(
        &mut self,
        now: Instant,
        mechanism: &str,
        initial_response: Option<Vec<u8>>,
    ) {
        if self.login_refusal("AUTH").is_some() {
            return;
        }
        if !mechanism.eq_ignore_ascii_case(sasl::PLAIN) {
            return self.refuse_bad("AUTH", replies::unsupported_mechanism());
        }
        match initial_response {
            Some(response) => self.on_auth_response(now, &response),
            None => {
                self.send_bytes(replies::auth_continue());
                self.mode = Mode::AuthResponse;
            }
        }
    }

    /// The PLAIN response, from the AUTH line or the line after `+ `.
    pub(super) fn on_auth_response(&mut self, now: Instant, response: &[u8]) {
        if sasl::is_cancel(response) {
            return self.refuse("AUTH", replies::auth_cancelled());
        }
        match sasl::decode_plain(response) {
            Ok(message) => self.check_credentials(now, message.into_credentials()),
            Err(sasl::Undecodable) => {
                self.event(SessionEvent::LoginFailed {
                    mechanism: sasl::PLAIN.to_owned(),
                    user: None,
                });
                self.refuse_bad("AUTH", replies::auth_undecodable());
            }
        }
    }

    fn check_credentials(&mut self, now: Instant, credentials: Credentials) {
        let token = self.tokens.next();
        let wait = Wait::Credentials {
            token,
            mechanism: credentials.mechanism,
            username: credentials.username.clone(),
            authorization_id: credentials.authorization_id.clone(),
            deadline: now + self.config.limits.driver_timeout,
        };
        self.outputs
            .push_back(Output::CheckCredentials { token, credentials });
        self.mode = Mode::Waiting(wait);
    }

    /// The driver's verdict on credentials; `None` when it did not answer in time.
    pub(super) fn on_credential_outcome(
        &mut self,
        now: Instant,
        wait: Wait,
        outcome: Option<CredentialOutcome>,
    ) {
        let Wait::Credentials {
            mechanism,
            username,
            authorization_id,
            ..
        } = wait
        else {
            return;
        };
        let verb = if mechanism == USER_MECHANISM {
            "PASS"
        } else {
            "AUTH"
        };
        match outcome {
            Some(CredentialOutcome::Valid { identity })
                if sasl::may_act_as(authorization_id.as_deref(), &identity) =>
            {
                self.event(SessionEvent::LoginSucceeded {
                    mechanism,
                    user: identity.clone(),
                });
                let token = self.tokens.next();
                self.outputs.push_back(Output::OpenMaildrop {
                    token,
                    user: identity.clone(),
                });
                self.mode = Mode::Waiting(Wait::Maildrop {
                    token,
                    user: identity,
                    deadline: now + self.config.limits.driver_timeout,
                });
            }
            Some(CredentialOutcome::Valid { .. } | CredentialOutcome::Invalid) => {
                self.login_failed(verb, mechanism, username);
            }
            Some(CredentialOutcome::TemporaryFailure) | None => {
                self.refuse(verb, replies::auth_temporary_failure());
            }
        }
    }

    /// `-ERR [AUTH]`, counted toward `Limits::auth_failures`; the last allowed closes.
    fn login_failed(&mut self, verb: &str, mechanism: &'static str, username: String) {
        self.refuse(verb, replies::login_failed());
        self.event(SessionEvent::LoginFailed {
            mechanism: mechanism.to_owned(),
            user: Some(username),
        });
        self.auth_failures = self.auth_failures.saturating_add(1);
        if self.auth_failures >= self.config.limits.auth_failures {
            self.close(
                Some(replies::too_many_auth_failures()),
                DisconnectReason::TooManyAuthFailures,
            );
        }
    }

    /// The driver's answer to opening the maildrop; `None` when it did not answer in
    /// time. Any refusal leaves the session in AUTHORIZATION (RFC 1939 §7).
    pub(super) fn on_maildrop_outcome(&mut self, user: String, outcome: Option<MaildropOutcome>) {
        let (response, reason) = match outcome {
            Some(MaildropOutcome::Opened(entries)) => {
                match Maildrop::open(entries, self.config.limits.maildrop_messages) {
                    Ok(maildrop) => {
                        let (messages, octets) = maildrop.stat();
                        self.state = State::Transaction(maildrop);
                        self.send(&replies::maildrop_ready(messages, octets));
                        self.event(SessionEvent::MaildropOpened {
                            user,
                            messages,
                            octets,
                        });
                        return;
                    }
                    Err(ListingError::TooLarge) => {
                        (replies::maildrop_too_large(), MaildropRefusal::TooLarge)
                    }
                    Err(ListingError::Malformed) => (
                        replies::maildrop_unavailable(),
                        MaildropRefusal::MalformedListing,
                    ),
                }
            }
            Some(MaildropOutcome::Locked) => (replies::maildrop_locked(), MaildropRefusal::Locked),
            Some(MaildropOutcome::TemporaryFailure) | None => (
                replies::maildrop_unavailable(),
                MaildropRefusal::TemporaryFailure,
            ),
        };
        self.send(&response);
        self.event(SessionEvent::MaildropRefused { user, reason });
    }
}
