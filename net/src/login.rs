//! Credential checks under the process's one login guard (core's `LoginGuard`),
//! shared by every protocol's driver: the answer waits the delay core decides, the
//! check is made, how it ended is recorded, and the attempt goes to the audit log.

use crate::clock;
use crate::store::{Store, StoreError};
use sluice_core::login::{LoginAttempt, LoginEvent, LoginGuard, LoginProtocol, LoginResult};
use sluice_core::sasl::{CredentialOutcome, Credentials};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The guard every listener of a process shares.
#[derive(Clone, Debug, Default)]
pub struct Logins(Arc<Mutex<LoginGuard>>);

impl Logins {
    pub fn new(guard: LoginGuard) -> Logins {
        Logins(Arc::new(Mutex::new(guard)))
    }

    /// Makes `check` (the store's verdict on a name and password: the identity, or
    /// None when they do not match) after the guard's delay for this attempt.
    pub async fn check<F>(
        &self,
        attempt: LoginAttempt<'_>,
        check: F,
    ) -> Result<Option<String>, StoreError>
    where
        F: Future<Output = Result<Option<String>, StoreError>>,
    {
        let delay = self.guard().delay(clock::now(), &attempt);
        if delay.as_millis() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay.as_millis())).await;
        }
        let verdict = check.await;
        let result = match &verdict {
            Ok(Some(_)) => LoginResult::Succeeded,
            Ok(None) => LoginResult::Failed,
            Err(_) => LoginResult::Unavailable,
        };
        let event = self.guard().record(clock::now(), &attempt, result, delay);
        audit(&event);
        verdict
    }

    /// [`Logins::check`], as the answer a session takes: a store failure is a
    /// temporary failure (logged), never a refusal of the password.
    pub async fn outcome<F>(&self, attempt: LoginAttempt<'_>, check: F) -> CredentialOutcome
    where
        F: Future<Output = Result<Option<String>, StoreError>>,
    {
        match self.check(attempt, check).await {
            Ok(Some(identity)) => CredentialOutcome::Valid { identity },
            Ok(None) => CredentialOutcome::Invalid,
            Err(error) => {
                tracing::warn!(%error, "credential check failed");
                CredentialOutcome::TemporaryFailure
            }
        }
    }

    /// A password check against the store's users (IMAP, POP3), as the answer a
    /// session takes.
    pub async fn check_password(
        &self,
        store: &Store,
        protocol: LoginProtocol,
        credentials: Credentials,
        address: IpAddr,
    ) -> CredentialOutcome {
        let attempt = LoginAttempt {
            protocol,
            mechanism: credentials.mechanism,
            user: &credentials.username,
            address,
        };
        let check = store.verify_credentials(&credentials.username, &credentials.password);
        self.outcome(attempt, check).await
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, LoginGuard> {
        // The guard's tables stay consistent between calls: a panic elsewhere
        // while it was held leaves nothing half-written worth refusing logins over.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One login, on the `sluice::audit` target that the audit log reads.
fn audit(event: &LoginEvent) {
    let result = match event.result {
        LoginResult::Succeeded => "succeeded",
        LoginResult::Failed => "failed",
        LoginResult::Unavailable => "unavailable",
    };
    tracing::info!(
        target: "sluice::audit",
        event = "login",
        protocol = event.protocol.name(),
        user = %event.user,
        address = %event.address,
        mechanism = event.mechanism,
        result,
        delayed_ms = event.delayed.as_millis(),
    );
}
