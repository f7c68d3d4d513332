//! Runs core's routing of one recipient check (`router::RecipientRouting`): its
//! directory lookups are answered from the reception store concurrently, its deadline is
//! slept on, and its route comes back. One small router per check, so a session's
//! checks share no state.

use crate::clock;
use crate::reception_store::ReceptionStore;
use sluice_core::directory::DirectoryAnswer;
use sluice_core::router::{RecipientRouting, Route, RouterConfig, RoutingStep};
use sluice_core::smtp::server::RecipientCheck;
use tokio::task::JoinSet;

/// The route for `check`, as core's router decides it.
pub async fn route<R: ReceptionStore>(
    store: R,
    config: RouterConfig,
    check: RecipientCheck,
) -> Route {
    let mut routing = RecipientRouting::start(config, clock::now(), &check);
    let mut lookups = JoinSet::new();
    loop {
        match routing.step() {
            RoutingStep::Lookup { token, query } => {
                let store = store.clone();
                lookups.spawn(async move {
                    let answer = match store.query(query).await {
                        Ok(answer) => answer,
                        Err(error) => {
                            tracing::warn!(%error, "directory lookup failed");
                            DirectoryAnswer::Unavailable
                        }
                    };
                    (token, answer)
                });
            }
            RoutingStep::Routed { route, stats } => {
                tracing::debug!(?route, ?stats, "recipient routed");
                return route;
            }
            RoutingStep::Wait { until } => {
                tokio::select! {
                    Some(joined) = lookups.join_next() => {
                        // A panicked lookup loses its token; the deadline covers it.
                        if let Ok((token, answer)) = joined {
                            routing.answered(clock::now(), token, answer);
                        }
                    }
                    () = tokio::time::sleep_until(clock::to_tokio(until)) => {
                        routing.tick(clock::now());
                    }
                }
            }
        }
    }
}
