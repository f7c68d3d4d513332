//! One recipient check routed by a router of its own, the way a session's driver
//! runs it (net's `routing::route`, the simulator's hosts): the job starts, its
//! lookups come out for the driver to answer (concurrently or at once), the driver
//! waits for an answer or the deadline, and the route comes back. The fail-safe for
//! a router that neither answers nor waits is decided here, once.

use super::{Input, Output, Route, RouteStats, Router, RouterConfig, TemporaryReason};
use crate::directory::{DirectoryAnswer, DirectoryQuery};
use crate::machine::{Machine, Token};
use crate::smtp::server::RecipientCheck;
use crate::time::Instant;

/// The job token of the one check: the router is this check's alone.
const JOB: Token = Token(1);

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutingStep {
    /// Ask the directory; answer with [`RecipientRouting::answered`] and the same
    /// token (a failed lookup is `DirectoryAnswer::Unavailable`). More lookups may
    /// follow at once: call [`RecipientRouting::step`] again without waiting.
    Lookup { token: Token, query: DirectoryQuery },
    /// Every lookup asked for is out: wait for an answer, or until `until` and then
    /// call [`RecipientRouting::tick`].
    Wait { until: Instant },
    /// The decision (again on every later call).
    Routed { route: Route, stats: RouteStats },
}

/// One recipient check on its own router.
#[derive(Debug)]
pub struct RecipientRouting {
    router: Router,
    routed: Option<(Route, RouteStats)>,
}

impl RecipientRouting {
    /// Starts routing `check` at `now`.
    pub fn start(config: RouterConfig, now: Instant, check: &RecipientCheck) -> RecipientRouting {
        let mut router = Router::new(config);
        router.handle(now, Input::for_check(JOB, check));
        RecipientRouting {
            router,
            routed: None,
        }
    }

    /// What to do now.
    pub fn step(&mut self) -> RoutingStep {
        if let Some((route, stats)) = &self.routed {
            return RoutingStep::Routed {
                route: route.clone(),
                stats: *stats,
            };
        }
        while let Some(output) = self.router.poll() {
            match output {
                Output::Lookup { token, query } => return RoutingStep::Lookup { token, query },
                Output::Routed { job, route, stats } if job == JOB => {
                    return self.decided(route, stats);
                }
                // The router holds no other job.
                Output::Routed { .. } => {}
            }
        }
        match self.router.next_deadline() {
            Some(until) => RoutingStep::Wait { until },
            // A router with neither an answer nor a deadline would be a router bug:
            // the recipient fails temporarily rather than waiting forever.
            None => self.decided(
                Route::TemporaryFailure(TemporaryReason::Timeout),
                RouteStats::default(),
            ),
        }
    }

    /// The answer to the lookup with `token`. Unknown or late answers are ignored.
    pub fn answered(&mut self, now: Instant, token: Token, answer: DirectoryAnswer) {
        if self.routed.is_none() {
            self.router
                .handle(now, Input::LookupAnswered { token, answer });
        }
    }

    /// The time has come (at or after the `until` of [`RoutingStep::Wait`]): lookups
    /// still out have timed out, and the recipient fails temporarily.
    pub fn tick(&mut self, now: Instant) {
        if self.routed.is_none() {
            self.router.handle(now, Input::Tick);
        }
    }

    fn decided(&mut self, route: Route, stats: RouteStats) -> RoutingStep {
        self.routed = Some((route.clone(), stats));
        RoutingStep::Routed { route, stats }
    }
}
