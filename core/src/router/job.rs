//! One routing job: the breadth-first expansion of one recipient through the
//! directory, level by level, with loop detection and bounds.
//!
//! A level is expanded only when every lookup it needs has been answered, and its
//! nodes are expanded in the order they were added. So the route depends only on
//! what the directory says, never on the order in which answers arrive, and each
//! address is reached first by a shortest path, which makes the depth bound exact.

use super::config::RouterConfig;
use super::route::{Refusal, Route, RouteStats, TemporaryReason};
use super::target::{Target, TargetHost, canonical_mailbox};
use crate::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use crate::machine::Token;
use crate::smtp::address::{Domain, ForwardPath};
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the router knows about the sender of the recipient being routed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RouteContext {
    /// Whether the client authenticated: only then may it name external recipients.
    pub authenticated: bool,
}

/// A lookup answer, or the fact that it was asked for and is awaited.
#[derive(Clone, Debug)]
enum Known<T> {
    Awaited,
    Answered(T),
}

/// One address reached by the expansion.
#[derive(Debug)]
struct Node {
    target: Target,
    depth: u32,
    /// The node whose alias, group or catch-all led here; `None` for the recipient.
    parent: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the domains of the current level.
    Domains,
    /// Waiting for the addresses of the current level that are in local domains.
    Addresses,
}

/// A job in flight.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) context: RouteContext,
    /// When the whole job gives up.
    pub(crate) deadline: Instant,
    nodes: Vec<Node>,
    /// Every address visited, by key, to the node that holds it.
    seen: BTreeMap<String, usize>,
    /// The nodes of the level being resolved, in order.
    level: Vec<usize>,
    phase: Phase,
    domains: BTreeMap<String, Known<Option<DomainEntry>>>,
    addresses: BTreeMap<String, Known<Option<AddressEntry>>>,
    /// Lookups the job needs but the router has not issued yet (parallelism bound).
    pub(crate) queued: VecDeque<DirectoryQuery>,
    /// Lookups issued and not answered, by token, with their deadlines.
    pub(crate) in_flight: BTreeMap<Token, Instant>,
    local: BTreeSet<String>,
    external: BTreeSet<String>,
    pub(crate) stats: RouteStats,
}

impl Job {
    pub(crate) fn new(
        recipient: &ForwardPath,
        context: RouteContext,
        config: &RouterConfig,
        now: Instant,
    ) -> Job {
        let target = match recipient {
            ForwardPath::Postmaster => postmaster_target(&config.primary_domain),
            ForwardPath::Mailbox(mailbox) => Target::from_mailbox(mailbox),
        };
        let mut job = Job {
            context,
            deadline: now + config.limits.job_timeout,
            nodes: Vec::new(),
            seen: BTreeMap::new(),
            level: Vec::new(),
            phase: Phase::Domains,
            domains: BTreeMap::new(),
            addresses: BTreeMap::new(),
            queued: VecDeque::new(),
            in_flight: BTreeMap::new(),
            local: BTreeSet::new(),
            external: BTreeSet::new(),
            stats: RouteStats::default(),
        };
        job.seen.insert(target.key.clone(), 0);
        job.nodes.push(Node {
            target,
            depth: 0,
            parent: None,
        });
        job.level.push(0);
        job.stats.addresses = 1;
        job.queue_domains();
        job
    }

    /// Records the answer to one of this job's lookups.
    pub(crate) fn answer(
        &mut self,
        query: DirectoryQuery,
        answer: DirectoryAnswer,
    ) -> Result<(), TemporaryReason> {
        match (query, answer) {
            (_, DirectoryAnswer::Unavailable) => Err(TemporaryReason::DirectoryUnavailable),
            (DirectoryQuery::Domain { domain }, DirectoryAnswer::Domain(entry)) => {
                self.domains.insert(domain, Known::Answered(entry));
                Ok(())
            }
            (DirectoryQuery::Address { address }, DirectoryAnswer::Address(entry)) => {
                self.addresses.insert(address, Known::Answered(entry));
                Ok(())
            }
            _ => Err(TemporaryReason::MismatchedAnswer),
        }
    }

    /// Moves the expansion as far as the answers so far allow: `None` while lookups
    /// are queued or outstanding, the route once the job is decided.
    pub(crate) fn advance(&mut self, config: &RouterConfig) -> Option<Route> {
        loop {
            if !self.in_flight.is_empty() || !self.queued.is_empty() {
                return None;
            }
            match self.phase {
                Phase::Domains => {
                    self.phase = Phase::Addresses;
                    self.queue_addresses();
                }
                Phase::Addresses => {
                    if let Err(route) = self.expand_level(config) {
                        return Some(route);
                    }
                    if self.level.is_empty() {
                        return Some(self.finish());
                    }
                    self.phase = Phase::Domains;
                    self.queue_domains();
                }
            }
        }
    }

    /// Asks for every domain of the current level not asked for before in this job.
    fn queue_domains(&mut self) {
        for &index in &self.level {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            if let TargetHost::Domain(domain) = &node.target.host
                && !self.domains.contains_key(domain)
            {
                self.domains.insert(domain.clone(), Known::Awaited);
                self.queued.push_back(DirectoryQuery::Domain {
                    domain: domain.clone(),
                });
            }
        }
    }

    /// Asks for every address of the current level that lies in a local domain.
    fn queue_addresses(&mut self) {
        for &index in &self.level {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            let TargetHost::Domain(domain) = &node.target.host else {
                continue;
            };
            let is_local = matches!(self.domains.get(domain), Some(Known::Answered(Some(_))));
            if is_local && !self.addresses.contains_key(&node.target.address) {
                self.addresses
                    .insert(node.target.address.clone(), Known::Awaited);
                self.queued.push_back(DirectoryQuery::Address {
                    address: node.target.address.clone(),
                });
            }
        }
    }

    /// Decides every node of the current level and gathers the next level.
    /// `Err` carries a route that ends the job at once.
    fn expand_level(&mut self, config: &RouterConfig) -> Result<(), Route> {
        let current = std::mem::take(&mut self.level);
        let mut next = Vec::new();
        for index in current {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            let target = node.target.clone();
            let depth = node.depth;
            let is_recipient = node.parent.is_none();
            let domain_entry = match &target.host {
                TargetHost::Literal => None,
                TargetHost::Domain(domain) => match self.domains.get(domain) {
                    Some(Known::Answered(entry)) => entry.clone(),
                    // Every domain of a level is answered before the level expands.
                    _ => {
                        return Err(Route::TemporaryFailure(
                            TemporaryReason::DirectoryUnavailable,
                        ));
                    }
                },
            };
            let Some(domain_entry) = domain_entry else {
                // Only the client's own choice of an external recipient is relaying;
                // an alias pointing outside is forwarding decided by the domain's owner.
                if is_recipient && !self.context.authenticated {
                    return Err(Route::Refused(Refusal::RelayDenied));
                }
                self.external.insert(target.address.clone());
                continue;
            };
            let entry = match self.addresses.get(&target.address) {
                Some(Known::Answered(entry)) => entry.clone(),
                _ => {
                    return Err(Route::TemporaryFailure(
                        TemporaryReason::DirectoryUnavailable,
                    ));
                }
            };
            match entry {
                Some(AddressEntry::User { address }) => {
                    self.local.insert(canonical_mailbox(&address));
                }
                Some(AddressEntry::Alias { targets: members })
                | Some(AddressEntry::Group { members }) => {
                    for member in &members {
                        self.add_child(index, depth, member, &mut next, config)?;
                    }
                }
                None => {
                    let primary = config.primary_domain.as_str().to_ascii_lowercase();
                    let in_primary = matches!(&target.host, TargetHost::Domain(d) if *d == primary);
                    // RFC 5321 §4.5.1: postmaster@ every domain we accept mail for must
                    // work; without its own entry it reaches the primary postmaster.
                    if target.local_part.eq_ignore_ascii_case("postmaster") && !in_primary {
                        let fallback = postmaster_target(&config.primary_domain);
                        self.add_target(index, depth, fallback, &mut next, config)?;
                    } else if let Some(catch_all) = &domain_entry.catch_all {
                        self.add_child(index, depth, catch_all, &mut next, config)?;
                    } else if is_recipient {
                        return Err(Route::Refused(Refusal::UnknownUser));
                    } else {
                        self.stats.unknown_members += 1;
                    }
                }
            }
        }
        self.level = next;
        Ok(())
    }

    fn add_child(
        &mut self,
        parent: usize,
        parent_depth: u32,
        text: &str,
        next: &mut Vec<usize>,
        config: &RouterConfig,
    ) -> Result<(), Route> {
        match Target::parse(text) {
            Some(target) => self.add_target(parent, parent_depth, target, next, config),
            None => {
                self.stats.invalid_targets += 1;
                Ok(())
            }
        }
    }

    fn add_target(
        &mut self,
        parent: usize,
        parent_depth: u32,
        target: Target,
        next: &mut Vec<usize>,
        config: &RouterConfig,
    ) -> Result<(), Route> {
        if let Some(&seen) = self.seen.get(&target.key) {
            // Seen on this branch's own path: a loop, dropped. Seen elsewhere: a shared
            // member of two lists, already being delivered once.
            if self.is_on_path(seen, parent) {
                self.stats.loops_dropped += 1;
            }
            return Ok(());
        }
        let depth = parent_depth.saturating_add(1);
        if depth > config.limits.depth {
            self.stats.too_deep_dropped += 1;
            return Ok(());
        }
        if self.nodes.len() >= config.limits.expanded_addresses {
            return Err(Route::Refused(Refusal::ExpansionTooLarge));
        }
        let index = self.nodes.len();
        self.seen.insert(target.key.clone(), index);
        self.nodes.push(Node {
            target,
            depth,
            parent: Some(parent),
        });
        self.stats.addresses = self.stats.addresses.saturating_add(1);
        next.push(index);
        Ok(())
    }

    /// Whether `candidate` is `node` or one of its ancestors. Paths are at most
    /// `RouterLimits::depth` long, so this walk is short.
    fn is_on_path(&self, candidate: usize, node: usize) -> bool {
        let mut current = Some(node);
        while let Some(index) = current {
            if index == candidate {
                return true;
            }
            current = self.nodes.get(index).and_then(|node| node.parent);
        }
        false
    }

    fn finish(&mut self) -> Route {
        if self.local.is_empty() && self.external.is_empty() {
            let refusal = if self.stats.loops_dropped > 0 {
                Refusal::Loop
            } else if self.stats.too_deep_dropped > 0 {
                Refusal::TooDeep
            } else {
                Refusal::EmptyExpansion
            };
            return Route::Refused(refusal);
        }
        Route::Deliver {
            local_mailboxes: std::mem::take(&mut self.local).into_iter().collect(),
            external: std::mem::take(&mut self.external).into_iter().collect(),
        }
    }
}

/// `postmaster@<primary domain>`, built directly: "postmaster" needs no parsing.
fn postmaster_target(primary_domain: &Domain) -> Target {
    let domain = primary_domain.as_str().to_ascii_lowercase();
    let address = format!("postmaster@{domain}");
    Target {
        key: address.to_ascii_lowercase(),
        address,
        host: TargetHost::Domain(domain),
        local_part: "postmaster".to_owned(),
    }
}
