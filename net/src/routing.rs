//! Runs core's routing of one recipient check (`router::RecipientRouting`): its
//! directory lookups are answered from the reception store concurrently, its deadline is
//! slept on, and its route comes back. One small router per check, so a session's
//! checks share no state.
//!
//! The lookups run inside the session's own task rather than as tasks of their own:
//! they wait on I/O, not on CPU, so nothing is gained by another worker, and on an
//! SQLite file (where a lookup answers on its first poll) spawning a task per
//! lookup cost a wake-up of another worker thread for every recipient.

use crate::clock;
use crate::reception_store::ReceptionStore;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use sluice_core::directory::DirectoryAnswer;
use sluice_core::router::{RecipientRouting, Route, RouterConfig, RoutingStep};
use sluice_core::smtp::server::RecipientCheck;

/// The route for `check`, as core's router decides it.
pub async fn route<R: ReceptionStore>(
    store: R,
    config: RouterConfig,
    check: RecipientCheck,
) -> Route {
    let mut routing = RecipientRouting::start(config, clock::now(), &check);
    let mut lookups = FuturesUnordered::new();
    loop {
        match routing.step() {
            RoutingStep::Lookup { token, query } => {
                let answer = store.query(query);
                lookups.push(async move {
                    let answer = match answer.await {
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
                    Some((token, answer)) = lookups.next() => {
                        routing.answered(clock::now(), token, answer);
                    }
                    () = tokio::time::sleep_until(clock::to_tokio(until)) => {
                        routing.tick(clock::now());
                    }
                }
            }
        }
    }
}
