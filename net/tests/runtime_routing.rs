//! `routing::route` answers core's lookups inside the calling task: several lookups
//! of one recipient are in flight at once and answered in whatever order they
//! finish, and a lookup that never answers ends in the router's timeout.

#![allow(clippy::unwrap_used)]

use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use sluice_core::router::{Route, RouterConfig, TemporaryReason};
use sluice_core::smtp::address::{Domain, ForwardPath, Mailbox, ReversePath};
use sluice_core::smtp::server::RecipientCheck;
use sluice_net::reception_store::ReceptionStore;
use sluice_net::routing;
use sluice_net::store::{IncomingMessage, StoreError};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `x.test` holds `team@x.test`, an alias of `a@x.test` and `b@x.test`. An address
/// lookup of `a` takes longer than one of `b`, so their answers arrive in the
/// reverse of the order asked; `hang@x.test` never answers.
#[derive(Clone, Default)]
struct SlowDirectory {
    /// The addresses looked up, when each answer was given.
    answered: Arc<Mutex<Vec<String>>>,
}

fn delay_of(address: &str) -> Option<Duration> {
    match address {
        "a@x.test" => Some(Duration::from_millis(30)),
        "b@x.test" => Some(Duration::from_millis(10)),
        "hang@x.test" => None,
        _ => Some(Duration::ZERO),
    }
}

// The trait asks for 'static futures, which `async fn` (borrowing self) cannot give.
#[allow(clippy::manual_async_fn)]
impl ReceptionStore for SlowDirectory {
    fn verify_credentials(
        &self,
        _username: String,
        _password: String,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send + 'static {
        async { Ok(None) }
    }

    fn query(
        &self,
        query: DirectoryQuery,
    ) -> impl Future<Output = Result<DirectoryAnswer, StoreError>> + Send + 'static {
        let answered = Arc::clone(&self.answered);
        async move {
            let answer = match query {
                DirectoryQuery::Domain { domain } => DirectoryAnswer::Domain(Some(DomainEntry {
                    name: domain,
                    catch_all: None,
                })),
                DirectoryQuery::Address { address } => {
                    match delay_of(&address) {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => std::future::pending().await,
                    }
                    answered.lock().unwrap().push(address.clone());
                    let entry = if address == "team@x.test" {
                        AddressEntry::Alias {
                            targets: vec!["a@x.test".to_owned(), "b@x.test".to_owned()],
                        }
                    } else {
                        AddressEntry::User { address }
                    };
                    DirectoryAnswer::Address(Some(entry))
                }
            };
            Ok(answer)
        }
    }

    fn accept(
        &self,
        _message: IncomingMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        async { Ok(()) }
    }
}

fn check(recipient: &str) -> RecipientCheck {
    RecipientCheck {
        reverse_path: ReversePath::Null,
        recipient: ForwardPath::Mailbox(recipient.parse::<Mailbox>().unwrap()),
        authenticated: None,
    }
}

fn config() -> RouterConfig {
    RouterConfig::new(Domain::parse("x.test").unwrap())
}

#[tokio::test(start_paused = true)]
async fn lookups_in_flight_together_are_answered_as_they_finish() {
    let directory = SlowDirectory::default();
    let route = routing::route(directory.clone(), config(), check("team@x.test")).await;
    assert_eq!(
        route,
        Route::Deliver {
            local_mailboxes: vec!["a@x.test".to_owned(), "b@x.test".to_owned()],
            external: Vec::new(),
        }
    );
    // Both targets were asked before either answered: b's shorter lookup came back first.
    assert_eq!(
        *directory.answered.lock().unwrap(),
        ["team@x.test", "b@x.test", "a@x.test"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lookup_that_never_answers_ends_in_the_routers_timeout() {
    let started = tokio::time::Instant::now();
    let route = routing::route(SlowDirectory::default(), config(), check("hang@x.test")).await;
    assert_eq!(route, Route::TemporaryFailure(TemporaryReason::Timeout));
    // Paused time jumps straight to the deadline; it is the lookup's, not the job's.
    // Tokio's timer wheel fires on whole milliseconds, so a clock that started between
    // two ticks reaches the deadline up to one millisecond late.
    let lookup_timeout = Duration::from_millis(config().limits.lookup_timeout.as_millis());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= lookup_timeout && elapsed <= lookup_timeout + Duration::from_millis(1),
        "the route ended after {elapsed:?}, not at the lookup timeout {lookup_timeout:?}"
    );
}
