//! The router machine: for each envelope recipient, where its mail goes — local
//! mailboxes, alias and group expansion (with loop detection), catch-all addresses,
//! external addresses for the delivery tier — or why it is refused.
//!
//! The router knows nothing of the directory itself: it asks its driver with
//! [`Output::Lookup`] and is told with [`Input::LookupAnswered`]. A driver uses it so:
//!
//! 1. On the session's `CheckRecipient { token, check }`, hand the router
//!    [`Input::for_check`]`(token, &check)` (or build [`Input::Route`] yourself; the
//!    job token is the driver's and only has to be unique among jobs in flight).
//! 2. Drain [`Router::poll`]: answer every `Lookup { token, query }` from the store
//!    with `LookupAnswered { token, answer }` (an error is `DirectoryAnswer::Unavailable`).
//! 3. On `Routed { job, route, .. }`, answer the session with `route.verdict()` and
//!    keep the route; when the message is stored, [`delivery_set`] merges the routes
//!    of its recipients into the copies to make.
//! 4. Wake the router with [`Input::Tick`] at [`Router::next_deadline`]; send
//!    [`Input::Cancel`] for jobs nobody waits for any more (the session closed).
//!
//! A driver that routes one check at a time runs [`RecipientRouting`], which does
//! steps 1 to 4 for a router of the check's own and leaves only the lookups and the
//! waiting to the driver.
//!
//! Rules (decided in `job`): domains compare case-insensitively; `<Postmaster>` is
//! `postmaster@` the primary domain; an address literal is external; an external
//! recipient named by an unauthenticated client is `RelayDenied`, but external
//! targets reached through an alias, group or catch-all are forwarded for anyone; an
//! unknown local part goes to the domain's catch-all if it has one, else it is
//! `UnknownUser`; an unknown member of a list is dropped, as is a branch that loops
//! back onto its own path or passes the depth limit; a lookup failure or timeout
//! anywhere is a temporary failure for the whole recipient, so that no member is
//! silently lost.

mod config;
mod delivery;
mod job;
mod placement;
mod route;
mod single;
mod target;

#[cfg(test)]
mod tests;

pub use config::{RouterConfig, RouterLimits};
pub use delivery::{Delivery, DeliverySet, delivery_set};
pub use job::RouteContext;
pub use placement::{MailboxAccess, Placement, place};
pub use route::{Refusal, Route, RouteStats, TemporaryReason};
pub use single::{RecipientRouting, RoutingStep};

use crate::directory::{DirectoryAnswer, DirectoryQuery};
use crate::machine::{Machine, Token, TokenSource};
use crate::smtp::address::ForwardPath;
use crate::smtp::server::RecipientCheck;
use crate::time::Instant;
use job::Job;
use std::collections::{BTreeMap, VecDeque};

/// Something that happened to the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Decide where mail for `recipient` goes. `job` names the answer, [`Output::Routed`].
    Route {
        job: Token,
        recipient: ForwardPath,
        context: RouteContext,
    },
    /// The answer to [`Output::Lookup`]. Unknown or stale tokens are ignored.
    LookupAnswered {
        token: Token,
        answer: DirectoryAnswer,
    },
    /// Nobody waits for this job any more: drop it without an answer.
    Cancel { job: Token },
    /// The deadline from `next_deadline` was reached.
    Tick,
}

/// Something the router wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Ask the directory; answer with [`Input::LookupAnswered`] and the same token.
    Lookup { token: Token, query: DirectoryQuery },
    /// The decision for a job. Exactly one per accepted [`Input::Route`] that is not
    /// cancelled (a duplicate job token gets its own immediate `DuplicateJob` answer).
    Routed {
        job: Token,
        route: Route,
        stats: RouteStats,
    },
}

impl Input {
    /// The routing request for a session's recipient check.
    pub fn for_check(job: Token, check: &RecipientCheck) -> Input {
        Input::Route {
            job,
            recipient: check.recipient.clone(),
            context: RouteContext {
                authenticated: check.authenticated.is_some(),
            },
        }
    }
}

/// A lookup the router waits for.
#[derive(Debug)]
struct PendingLookup {
    job: Token,
    query: DirectoryQuery,
}

/// The router: any number of routing jobs (up to `RouterLimits::jobs`) in flight.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    tokens: TokenSource,
    outputs: VecDeque<Output>,
    jobs: BTreeMap<Token, Job>,
    lookups: BTreeMap<Token, PendingLookup>,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            config,
            tokens: TokenSource::default(),
            outputs: VecDeque::new(),
            jobs: BTreeMap::new(),
            lookups: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Jobs in flight.
    pub fn jobs_in_flight(&self) -> usize {
        self.jobs.len()
    }

    /// Lookups issued and not yet answered, over all jobs.
    pub fn lookups_in_flight(&self) -> usize {
        self.lookups.len()
    }

    fn start(&mut self, now: Instant, job: Token, recipient: &ForwardPath, context: RouteContext) {
        if self.jobs.contains_key(&job) {
            self.answer_now(job, Route::TemporaryFailure(TemporaryReason::DuplicateJob));
            return;
        }
        if self.jobs.len() >= self.config.limits.jobs {
            self.answer_now(job, Route::TemporaryFailure(TemporaryReason::Overloaded));
            return;
        }
        let state = Job::new(recipient, context, &self.config, now);
        self.jobs.insert(job, state);
        self.progress(now, job);
    }

    fn answer_now(&mut self, job: Token, route: Route) {
        self.outputs.push_back(Output::Routed {
            job,
            route,
            stats: RouteStats::default(),
        });
    }

    fn answered(&mut self, now: Instant, token: Token, answer: DirectoryAnswer) {
        let Some(pending) = self.lookups.remove(&token) else {
            return;
        };
        let Some(state) = self.jobs.get_mut(&pending.job) else {
            return;
        };
        state.in_flight.remove(&token);
        match state.answer(pending.query, answer) {
            Ok(()) => self.progress(now, pending.job),
            Err(reason) => self.finish(pending.job, Route::TemporaryFailure(reason)),
        }
    }

    /// Lets a job move on, then issues the lookups it queued within its parallelism bound.
    fn progress(&mut self, now: Instant, job: Token) {
        let Some(state) = self.jobs.get_mut(&job) else {
            return;
        };
        if let Some(route) = state.advance(&self.config) {
            self.finish(job, route);
            return;
        }
        let deadline = now + self.config.limits.lookup_timeout;
        while state.in_flight.len() < self.config.limits.parallel_lookups.max(1) {
            let Some(query) = state.queued.pop_front() else {
                break;
            };
            let token = self.tokens.next();
            state.in_flight.insert(token, deadline);
            state.stats.lookups = state.stats.lookups.saturating_add(1);
            self.lookups.insert(
                token,
                PendingLookup {
                    job,
                    query: query.clone(),
                },
            );
            self.outputs.push_back(Output::Lookup { token, query });
        }
    }

    fn finish(&mut self, job: Token, route: Route) {
        let Some(state) = self.jobs.remove(&job) else {
            return;
        };
        for token in state.in_flight.keys() {
            self.lookups.remove(token);
        }
        self.outputs.push_back(Output::Routed {
            job,
            route,
            stats: state.stats,
        });
    }

    fn cancel(&mut self, job: Token) {
        if let Some(state) = self.jobs.remove(&job) {
            for token in state.in_flight.keys() {
                self.lookups.remove(token);
            }
        }
    }

    fn job_deadline(state: &Job) -> Instant {
        state
            .in_flight
            .values()
            .copied()
            .fold(state.deadline, Instant::min)
    }

    fn expire(&mut self, now: Instant) {
        let expired: Vec<Token> = self
            .jobs
            .iter()
            .filter(|(_, state)| Self::job_deadline(state) <= now)
            .map(|(job, _)| *job)
            .collect();
        for job in expired {
            self.finish(job, Route::TemporaryFailure(TemporaryReason::Timeout));
        }
    }
}

impl Machine for Router {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Route {
                job,
                recipient,
                context,
            } => self.start(now, job, &recipient, context),
            Input::LookupAnswered { token, answer } => self.answered(now, token, answer),
            Input::Cancel { job } => self.cancel(job),
            Input::Tick => self.expire(now),
        }
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.jobs.values().map(Self::job_deadline).min()
    }
}
