//! What a router is configured with: the node's primary domain (for `<Postmaster>`)
//! and the bounds on every routing job, with documented defaults.

use crate::smtp::address::Domain;
use crate::time::Duration;

/// Everything a router needs to know before its first job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// The domain whose postmaster receives `RCPT TO:<Postmaster>` (RFC 5321 §4.5.1), and
    /// the mail for `postmaster@` any local domain that has no such address of its own.
    pub primary_domain: Domain,
    pub limits: RouterLimits,
}

/// Every bound a router keeps. Going over one is an explicit route (a refusal or a
/// temporary failure), never a panic and never unbounded memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterLimits {
    /// Routing jobs in flight at once; one more is answered with a temporary failure
    /// (`Overloaded`) at once. Default 1024.
    pub jobs: usize,
    /// How many alias or group hops an expansion may follow from the recipient. A
    /// branch that would go deeper is dropped (and counted), like a loop: deep nesting
    /// is nearly always a cycle through generated addresses. Default 8.
    pub depth: u32,
    /// Distinct addresses one job may visit, the recipient and every intermediate alias
    /// and group included. Over it, the recipient is refused (`ExpansionTooLarge`)
    /// rather than silently truncated. Default 1000.
    pub expanded_addresses: usize,
    /// Lookups one job keeps outstanding at once; the rest wait their turn (0 counts
    /// as 1, or no job could ever finish). Default 16.
    pub parallel_lookups: usize,
    /// How long one lookup may take before the job fails temporarily. Default 30 s.
    pub lookup_timeout: Duration,
    /// How long a whole job may take. Shorter than the session's own wait for a
    /// recipient verdict (2 minutes), so the client hears our 451, not a timeout.
    /// Default 60 s.
    pub job_timeout: Duration,
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            jobs: 1024,
            depth: 8,
            expanded_addresses: 1000,
            parallel_lookups: 16,
            lookup_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(60),
        }
    }
}

impl RouterConfig {
    /// A configuration with default limits.
    pub fn new(primary_domain: Domain) -> RouterConfig {
        RouterConfig {
            primary_domain,
            limits: RouterLimits::default(),
        }
    }
}
