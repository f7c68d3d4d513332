//! Runs core's router for one recipient check: its directory lookups are answered
//! from the backend concurrently, its deadlines are slept on, and its route comes
//! back. One small router per check, so a session's checks share no state.

use crate::backend::Backend;
use crate::clock;
use sluice_core::directory::DirectoryAnswer;
use sluice_core::machine::{Machine, Token};
use sluice_core::router::{self, Route, RouterConfig, TemporaryReason};
use sluice_core::smtp::server::RecipientCheck;
use tokio::task::JoinSet;

/// The route for `check`, as core's router decides it.
pub async fn route<B: Backend>(backend: B, config: RouterConfig, check: RecipientCheck) -> Route {
    let mut router = router::Router::new(config);
    router.handle(clock::now(), router::Input::for_check(Token(1), &check));
    let mut lookups = JoinSet::new();
    loop {
        while let Some(output) = router.poll() {
            match output {
                router::Output::Lookup { token, query } => {
                    let backend = backend.clone();
                    lookups.spawn(async move {
                        let answer = match backend.query(query).await {
                            Ok(answer) => answer,
                            Err(error) => {
                                tracing::warn!(%error, "directory lookup failed");
                                DirectoryAnswer::Unavailable
                            }
                        };
                        (token, answer)
                    });
                }
                router::Output::Routed { route, stats, .. } => {
                    tracing::debug!(?route, ?stats, "recipient routed");
                    return route;
                }
            }
        }
        let Some(deadline) = router.next_deadline() else {
            // A router with no job and no answer would be a core bug; fail safe.
            return Route::TemporaryFailure(TemporaryReason::Timeout);
        };
        tokio::select! {
            Some(joined) = lookups.join_next() => {
                // A panicked lookup loses its token; the router's own deadline covers it.
                if let Ok((token, answer)) = joined {
                    router.handle(clock::now(), router::Input::LookupAnswered { token, answer });
                }
            }
            () = tokio::time::sleep_until(clock::to_tokio(deadline)) => {
                router.handle(clock::now(), router::Input::Tick);
            }
        }
    }
}
