//! The guarantee checkers. During a run the world appends what it observes —
//! promises given, mailbox deliveries, remote acceptances, durable failures and
//! notices, deferrals, attempts — to an observation log; after the run each
//! checker reads the log (and the hosts' durable state for what is still queued)
//! and reports every violation of its guarantee from ARCHITECTURE.md.

mod dkim;
mod duplicates;
mod paths;
pub mod retrieval;
mod retry;

pub use dkim::{DkimCounts, VerifiedCopy};
pub use duplicates::{DuplicateCause, RemoteCopy, explains_duplicate, remote_duplicates};
pub use paths::{Arrival, CredentialsSeen, Expected, PathFigures, PathOracle};
pub use retry::ScheduleOracle;

use sluice_core::notice::NoticeKind;
use sluice_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

/// One guarantee, by the name scenarios and reports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guarantee {
    NoLoss,
    NoDuplicates,
    Notices,
    RetrySchedule,
    Availability,
    NoRelay,
    /// Liveness: after the drain every promised copy is delivered or notified.
    Drained,
    /// Every copy from a signing domain reaches remotes with a signature that
    /// verifies, and none is signed by a domain it does not come from.
    Dkim,
    /// Mail takes the path its `[[delivery.path]]` rule names, credentials only to
    /// their relay.
    DeliveryPaths,
    /// Every local copy is seen through IMAP exactly once until expunged.
    ImapExactlyOnce,
    /// No UID names two messages in a folder under one UIDVALIDITY.
    ImapUids,
    /// A flag a STORE got OK for survives crashes.
    ImapFlagsDurable,
    /// An idling client hears of each new message.
    ImapIdle,
}

impl Guarantee {
    pub const ALL: [Guarantee; 13] = [
        Guarantee::NoLoss,
        Guarantee::NoDuplicates,
        Guarantee::Notices,
        Guarantee::RetrySchedule,
        Guarantee::Availability,
        Guarantee::NoRelay,
        Guarantee::Drained,
        Guarantee::Dkim,
        Guarantee::DeliveryPaths,
        Guarantee::ImapExactlyOnce,
        Guarantee::ImapUids,
        Guarantee::ImapFlagsDurable,
        Guarantee::ImapIdle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Guarantee::NoLoss => "no-loss",
            Guarantee::NoDuplicates => "no-duplicates",
            Guarantee::Notices => "one-notice-per-failure",
            Guarantee::RetrySchedule => "retry-schedule",
            Guarantee::Availability => "availability",
            Guarantee::NoRelay => "no-relay",
            Guarantee::Drained => "queues-drain",
            Guarantee::Dkim => "dkim-signatures",
            Guarantee::DeliveryPaths => "delivery-paths",
            Guarantee::ImapExactlyOnce => "imap-exactly-once",
            Guarantee::ImapUids => "imap-uids",
            Guarantee::ImapFlagsDurable => "imap-flags-durable",
            Guarantee::ImapIdle => "imap-idle",
        }
    }
}

/// A guarantee that did not hold, with what shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub guarantee: Guarantee,
    /// The message tag (or queue id) the violation is about, for the trace excerpt.
    pub subject: String,
    pub detail: String,
}

/// Everything the world observed that the checkers need, in the order it happened.
#[derive(Debug, Default)]
pub struct Observations {
    pub offered: BTreeMap<String, Instant>,
    /// (tag, recipient) → when the client got its 250 and from which gateway.
    pub promised: BTreeMap<(String, String), (Instant, String)>,
    pub refused: BTreeSet<(String, String)>,
    pub gave_up: BTreeSet<String>,
    /// (host, user, tag, origin queue id) → new deliveries.
    pub mailbox: BTreeMap<(String, String, String, String), u32>,
    pub remote: BTreeMap<(String, String), u32>,
    /// (tag, recipient, origin queue id) → every copy a remote server stored, in order.
    pub remote_copies: BTreeMap<(String, String, String), Vec<RemoteCopy>>,
    /// (host, queue id, recipient) → when (simulation clock) each attempt started.
    pub attempt_starts: BTreeMap<(String, String, String), Vec<Instant>>,
    /// Host name → when (simulation clock) it crashed.
    pub crashes: BTreeMap<String, Vec<Instant>>,
    /// (host, queue id) → (tag, null sender, arrival on the host's clock).
    pub stored: BTreeMap<(String, String), StoredFacts>,
    /// (host, queue id, recipient) that failed for good, durably.
    pub failed: BTreeSet<(String, String, String)>,
    /// (host, queue id about, recipient) → failure notices naming it.
    pub notices: BTreeMap<(String, String, String), u32>,
    /// (host, queue id about, recipient) → when (on the host's clock) its first
    /// failure notice became durable.
    pub notice_times: BTreeMap<(String, String, String), Instant>,
    /// (kind, host, queue id about, recipient) → delay and success notices naming it.
    pub other_notices: BTreeMap<(NoticeKind, String, String, String), u32>,
    /// (host, queue id, recipient) → its attempts and deferrals, in order.
    pub retries: BTreeMap<(String, String, String), Vec<RetryStep>>,
    /// (host, queue id, recipient, when on the host clock) of each expiry.
    pub expiries: Vec<(String, String, String, Instant)>,
    /// tag → the last time a gateway crashed while storing that very message.
    pub store_crashes: BTreeMap<String, Instant>,
    /// Attempts whose connection ended after the end of data, before the final
    /// reply (core's `RecipientResult::Ambiguous`): the remote may hold a copy and
    /// the next attempt may deliver a second one.
    pub ambiguous: Vec<AmbiguousAttempt>,
    /// (host, queue id) of every attempt the queue gave up waiting for: its driver
    /// never answered it.
    pub unanswered_attempts: Vec<(String, String)>,
    /// Every copy a remote stored while DKIM signing was on, as the remote's
    /// verifier saw it.
    pub verified_copies: Vec<VerifiedCopy>,
    /// Every copy a remote server (MX or relay host) stored, with the session's
    /// authenticated identity.
    pub arrivals: Vec<Arrival>,
    /// Credentials given to delivery sessions and received by remote servers.
    pub credentials: Vec<CredentialsSeen>,
    /// Every new message that reached a mailbox, when its write became durable.
    pub mailbox_arrivals: Vec<retrieval::MailboxArrival>,
    /// What the simulated IMAP clients were answered.
    pub retrieval: retrieval::RetrievalLog,
}

/// One recipient of an ambiguous attempt (see [`Observations::ambiguous`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmbiguousAttempt {
    pub at: Instant,
    pub host: String,
    pub queue_id: String,
    /// The message's tag, when the host stored it.
    pub tag: Option<String>,
    pub recipient: String,
    /// The server that may hold the message.
    pub remote: Option<String>,
}

/// One step in a recipient's retry history, with the host's epoch (a crash may
/// undo a deferral that was not yet durable, so steps compare within an epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryStep {
    Attempt {
        at: Instant,
        epoch: u32,
    },
    /// A temporary failure the queue learned at `learned` (host clock), and the next
    /// attempt it announced.
    Deferred {
        learned: Instant,
        next_attempt: Instant,
        epoch: u32,
    },
}

/// What is known of a stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFacts {
    pub tag: Option<String>,
    pub null_sender: bool,
    pub arrival: Instant,
    /// Recipients whose NOTIFY asks for no failure notice (NEVER, or without FAILURE).
    pub no_failure_notice: BTreeSet<String>,
}

impl Observations {
    /// A host crashed while it stored the message `tag` (the crash-on-store fault).
    pub fn store_crashed(&mut self, at: Instant, tag: &str) {
        self.store_crashes.insert(tag.to_owned(), at);
    }

    /// A recipient's attempt ended ambiguous (see [`Observations::ambiguous`]).
    pub fn ambiguous(
        &mut self,
        at: Instant,
        host: &str,
        queue_id: &str,
        tag: Option<String>,
        recipient: &str,
        remote: Option<String>,
    ) {
        self.ambiguous.push(AmbiguousAttempt {
            at,
            host: host.to_owned(),
            queue_id: queue_id.to_owned(),
            tag,
            recipient: recipient.to_owned(),
            remote,
        });
    }

    pub fn offered(&mut self, at: Instant, tag: &str) {
        self.offered.entry(tag.to_owned()).or_insert(at);
    }

    pub fn promised(
        &mut self,
        at: Instant,
        tag: &str,
        recipient: &str,
        gateway: &str,
        _first: Instant,
    ) {
        self.promised
            .entry((tag.to_owned(), recipient.to_ascii_lowercase()))
            .or_insert((at, gateway.to_owned()));
    }

    pub fn refused(&mut self, _at: Instant, tag: &str, recipient: &str) {
        self.refused
            .insert((tag.to_owned(), recipient.to_ascii_lowercase()));
    }

    pub fn gave_up(&mut self, _at: Instant, tag: &str) {
        self.gave_up.insert(tag.to_owned());
    }

    pub fn mailbox_delivered(
        &mut self,
        at: Instant,
        host: &str,
        user: &str,
        data: &[u8],
        new: bool,
    ) {
        if !new {
            return;
        }
        let tag = message_tag(data).unwrap_or_default();
        let origin = origin_queue_id(data).unwrap_or_default();
        self.mailbox_arrivals.push(retrieval::MailboxArrival {
            at,
            host: host.to_owned(),
            user: user.to_ascii_lowercase(),
            tag: retrieval::copy_name(data),
        });
        *self
            .mailbox
            .entry((host.to_owned(), user.to_ascii_lowercase(), tag, origin))
            .or_insert(0) += 1;
    }

    /// A remote server stored `data` for `recipient`, received over `conn` from the
    /// host named `sender`.
    pub fn remote_accepted(
        &mut self,
        at: Instant,
        conn: u64,
        sender: &str,
        recipient: &str,
        data: &[u8],
    ) {
        let tag = message_tag(data).unwrap_or_default();
        let origin = origin_queue_id(data).unwrap_or_default();
        let recipient = recipient.to_ascii_lowercase();
        *self
            .remote
            .entry((tag.clone(), recipient.clone()))
            .or_insert(0) += 1;
        self.remote_copies
            .entry((tag, recipient, origin))
            .or_default()
            .push(RemoteCopy {
                at,
                conn,
                sender: sender.to_owned(),
            });
    }

    /// Remote server `server` stored `tag` for `recipient` in a session
    /// authenticated as `authenticated`.
    pub fn arrived(
        &mut self,
        at: Instant,
        server: &str,
        tag: &str,
        recipient: &str,
        authenticated: Option<String>,
    ) {
        self.arrivals.push(Arrival {
            at,
            server: server.to_owned(),
            tag: tag.to_owned(),
            recipient: recipient.to_ascii_lowercase(),
            authenticated,
        });
    }

    /// Host `client` gave a delivery session to `server` the credentials of `username`.
    pub fn credentials_given(&mut self, at: Instant, client: &str, server: &str, username: &str) {
        self.credentials.push(CredentialsSeen {
            at,
            client: client.to_owned(),
            server: server.to_owned(),
            username: username.to_owned(),
            received: None,
        });
    }

    /// Remote server `server` received AUTH as `username` from `client`.
    pub fn credentials_received(
        &mut self,
        at: Instant,
        client: &str,
        server: &str,
        username: &str,
        valid: bool,
    ) {
        self.credentials.push(CredentialsSeen {
            at,
            client: client.to_owned(),
            server: server.to_owned(),
            username: username.to_owned(),
            received: Some(valid),
        });
    }

    pub fn crashed(&mut self, at: Instant, host: &str) {
        self.crashes.entry(host.to_owned()).or_default().push(at);
    }

    pub fn stored(&mut self, host: &str, queue_id: &str, facts: StoredFacts) {
        self.stored
            .insert((host.to_owned(), queue_id.to_owned()), facts);
    }

    pub fn failed_durable(&mut self, _at: Instant, host: &str, queue_id: &str, recipient: &str) {
        self.failed.insert((
            host.to_owned(),
            queue_id.to_owned(),
            recipient.to_ascii_lowercase(),
        ));
    }

    pub fn notice_durable(
        &mut self,
        _at: Instant,
        host: &str,
        queue_id: &str,
        kind: NoticeKind,
        recipients: &[String],
        local: Instant,
    ) {
        if kind != NoticeKind::Failure {
            for recipient in recipients {
                *self
                    .other_notices
                    .entry((
                        kind,
                        host.to_owned(),
                        queue_id.to_owned(),
                        recipient.to_ascii_lowercase(),
                    ))
                    .or_insert(0) += 1;
            }
            return;
        }
        for recipient in recipients {
            let key = (
                host.to_owned(),
                queue_id.to_owned(),
                recipient.to_ascii_lowercase(),
            );
            self.notice_times.entry(key.clone()).or_insert(local);
            *self.notices.entry(key).or_insert(0) += 1;
        }
    }

    /// The queue deferred `recipient`: it learned of the temporary failure at
    /// `learned` on the host's clock and announced `next_attempt`.
    #[allow(clippy::too_many_arguments)]
    pub fn deferred(
        &mut self,
        _at: Instant,
        host: &str,
        queue_id: &str,
        recipient: &str,
        learned: Instant,
        next_attempt: Instant,
        epoch: u32,
    ) {
        self.retries
            .entry((
                host.to_owned(),
                queue_id.to_owned(),
                recipient.to_ascii_lowercase(),
            ))
            .or_default()
            .push(RetryStep::Deferred {
                learned,
                next_attempt,
                epoch,
            });
    }

    pub fn expired(
        &mut self,
        _at: Instant,
        host: &str,
        queue_id: &str,
        recipient: &str,
        local: Instant,
    ) {
        self.expiries.push((
            host.to_owned(),
            queue_id.to_owned(),
            recipient.to_ascii_lowercase(),
            local,
        ));
    }

    pub fn attempt_started(
        &mut self,
        at: Instant,
        host: &str,
        queue_id: &str,
        recipients: &[String],
        local: Instant,
        epoch: u32,
    ) {
        for recipient in recipients {
            let key = (
                host.to_owned(),
                queue_id.to_owned(),
                recipient.to_ascii_lowercase(),
            );
            self.attempt_starts.entry(key.clone()).or_default().push(at);
            self.retries
                .entry(key)
                .or_default()
                .push(RetryStep::Attempt { at: local, epoch });
        }
    }
}

/// The workload's name of a message: the local part of its Message-ID
/// (`<m17@workload.sim>` is `m17`), read from the top-level header section.
pub fn message_tag(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header_section(data));
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("message-id") {
            return None;
        }
        let value = value.trim().trim_start_matches('<');
        let (local, _) = value.split_once('@')?;
        Some(local.to_owned())
    })
}

/// The queue id the first Sluice host gave the message: the `id` of the lowest
/// (earliest) Received field that carries one of our queue ids.
pub fn origin_queue_id(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header_section(data));
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "id" && pair[1].starts_with("Q-"))
        .map(|pair| pair[1].trim_end_matches(';').to_owned())
        .next_back()
}

fn header_section(data: &[u8]) -> &[u8] {
    let end = data
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(data.len());
    &data[..end]
}

/// What the checkers need besides the log: the oracle of where each recipient's
/// copies must end up, and what is still queued when the run ends.
#[derive(Debug, Default)]
pub struct Context {
    /// Workload recipient → the addresses its copies go to (aliases expanded).
    pub targets: BTreeMap<String, Vec<String>>,
    pub local_domain: String,
    /// (tag, address) still held, not final, in some host's durable queue.
    pub pending: BTreeSet<(String, String)>,
    pub availability_secs: Option<u64>,
    /// Tags of offered messages whose recipients all got a final answer.
    pub answered: BTreeSet<String>,
    /// The retry schedule the scenario configured, as the checker's own model.
    pub schedule: ScheduleOracle,
    /// How late after its expiry a recipient may still fail, and its notice become
    /// durable (an attempt running at expiry, the host down then, write retries).
    pub expiry_grace: Duration,
    /// Every recipient still waiting in a host's durable queue when the run ended.
    pub queued_at_end: Vec<QueuedAtEnd>,
    /// Tags of messages sent by authenticated submitters, who may relay.
    pub authenticated: BTreeSet<String>,
    /// (tag, workload recipient) that asked NOTIFY=SUCCESS, from a non-null sender.
    pub success_wanted: BTreeSet<(String, String)>,
    /// (tag, address) whose success notice a host's durable queue still owes.
    pub owed_success: BTreeSet<(String, String)>,
    /// Tag → its workload recipients in the order the client named them.
    pub recipient_order: BTreeMap<String, Vec<String>>,
    /// The sending domains with a DKIM key.
    pub dkim_domains: Vec<String>,
    /// Where each domain's mail must arrive, from the scenario's rules.
    pub paths: PathOracle,
    /// Whose mailboxes the IMAP clients read, and the IDLE bound.
    pub retrieval: retrieval::RetrievalContext,
}

/// A recipient still waiting in a host's durable queue at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedAtEnd {
    pub host: String,
    pub queue_id: String,
    pub address: String,
    pub arrival: Instant,
    /// The host's clock when the run ended.
    pub host_now: Instant,
}

impl Context {
    /// The addresses a workload recipient's copies go to: itself unless an alias
    /// or group expands it.
    fn targets_of(&self, recipient: &str) -> Vec<String> {
        self.targets
            .get(recipient)
            .cloned()
            .unwrap_or_else(|| vec![recipient.to_owned()])
    }

    /// Whether `recipient` is the first promised recipient of `tag` whose copies go
    /// to `target`. Two RCPTs that reach one mailbox (a user named directly and
    /// through a group, or the catch-all's own user) make one copy, and core keeps
    /// the first one's DSN parameters for it: only that recipient's NOTIFY decides
    /// whether a success notice is owed.
    fn first_to_reach(&self, obs: &Observations, tag: &str, recipient: &str, target: &str) -> bool {
        let order = self.recipient_order.get(tag).map_or(&[][..], Vec::as_slice);
        order
            .iter()
            .find(|named| {
                obs.promised
                    .contains_key(&(tag.to_owned(), (*named).clone()))
                    && self
                        .targets_of(named)
                        .iter()
                        .any(|reached| reached.eq_ignore_ascii_case(target))
            })
            .is_none_or(|first| first == recipient)
    }
}

/// Runs the checkers of `wanted` and returns every violation.
pub fn check(
    obs: &Observations,
    context: &Context,
    wanted: &BTreeSet<Guarantee>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    if wanted.contains(&Guarantee::NoLoss) {
        no_loss(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::NoDuplicates) {
        duplicates::no_duplicates(obs, &mut violations);
    }
    if wanted.contains(&Guarantee::Notices) {
        notices(obs, &mut violations);
        success_notices(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::RetrySchedule) {
        retry::retry_schedule(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::Availability) {
        availability(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::NoRelay) {
        no_relay(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::Drained) {
        drained(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::Dkim) {
        dkim::dkim_signatures(obs, context, &mut violations);
    }
    if wanted.contains(&Guarantee::DeliveryPaths) {
        paths::delivery_paths(obs, &context.paths, &mut violations);
    }
    retrieval::check(obs, &context.retrieval, wanted, &mut violations);
    violations
}

/// What the run's DKIM signatures came to, for the summary.
pub fn dkim_counts(obs: &Observations, context: &Context) -> DkimCounts {
    dkim::counts(obs, context)
}

/// (tag, address) pairs that a failure notice covers, or that failed durably for a
/// null reverse-path (which gets no notice by rule).
fn resolved_by_failure(obs: &Observations) -> BTreeSet<(String, String)> {
    let mut resolved = BTreeSet::new();
    for (host, queue_id, recipient) in obs.notices.keys() {
        if let Some(tag) = obs
            .stored
            .get(&(host.clone(), queue_id.clone()))
            .and_then(|facts| facts.tag.clone())
        {
            resolved.insert((tag, recipient.clone()));
        }
    }
    for (host, queue_id, recipient) in &obs.failed {
        if let Some(facts) = obs.stored.get(&(host.clone(), queue_id.clone()))
            && (facts.null_sender || facts.no_failure_notice.contains(recipient))
            && let Some(tag) = &facts.tag
        {
            resolved.insert((tag.clone(), recipient.clone()));
        }
    }
    resolved
}

/// (tag, user) of every copy that reached a local mailbox.
fn mailbox_copies(obs: &Observations) -> BTreeSet<(String, String)> {
    obs.mailbox
        .keys()
        .map(|(_, user, tag, _)| (tag.clone(), user.clone()))
        .collect()
}

fn no_loss(obs: &Observations, context: &Context, violations: &mut Vec<Violation>) {
    let mut delivered = mailbox_copies(obs);
    delivered.extend(obs.remote.keys().cloned());
    let failed = resolved_by_failure(obs);
    for ((tag, recipient), (at, gateway)) in &obs.promised {
        let targets = context.targets_of(recipient);
        for target in targets {
            let key = (tag.clone(), target.clone());
            if delivered.contains(&key) || failed.contains(&key) || context.pending.contains(&key) {
                continue;
            }
            violations.push(Violation {
                guarantee: Guarantee::NoLoss,
                subject: tag.clone(),
                detail: format!(
                    "{tag} for {recipient} was promised by {gateway} at t+{}ms, but {target} \
                     has neither the message nor a failure notice, and no host still queues it",
                    at.as_millis()
                ),
            });
        }
    }
}

fn drained(obs: &Observations, context: &Context, violations: &mut Vec<Violation>) {
    // An attempt is part of the drain: the queue waits for every one it starts.
    for (host, queue_id) in &obs.unanswered_attempts {
        violations.push(Violation {
            guarantee: Guarantee::Drained,
            subject: queue_id.clone(),
            detail: format!(
                "an attempt for {queue_id} on {host} was never answered: the queue gave up \
                 waiting at its deadline"
            ),
        });
    }
    for (tag, address) in &context.pending {
        let promised = obs.promised.keys().any(|(promised_tag, recipient)| {
            promised_tag == tag
                && context
                    .targets
                    .get(recipient)
                    .map_or(recipient == address, |targets| targets.contains(address))
        });
        if promised {
            violations.push(Violation {
                guarantee: Guarantee::Drained,
                subject: tag.clone(),
                detail: format!("{tag} for {address} is still queued after the drain"),
            });
        }
    }
}

fn notices(obs: &Observations, violations: &mut Vec<Violation>) {
    for ((host, queue_id, recipient), count) in &obs.notices {
        let facts = obs.stored.get(&(host.clone(), queue_id.clone()));
        if facts.is_some_and(|facts| facts.null_sender) {
            violations.push(Violation {
                guarantee: Guarantee::Notices,
                subject: queue_id.clone(),
                detail: format!(
                    "{host} wrote a notice about {queue_id} whose reverse-path is null"
                ),
            });
        }
        if *count > 1 {
            violations.push(Violation {
                guarantee: Guarantee::Notices,
                subject: queue_id.clone(),
                detail: format!(
                    "{host} wrote {count} failure notices for {recipient} of {queue_id}"
                ),
            });
        }
    }
    for (host, queue_id, recipient) in &obs.failed {
        let facts = obs.stored.get(&(host.clone(), queue_id.clone()));
        if facts
            .is_none_or(|facts| facts.null_sender || facts.no_failure_notice.contains(recipient))
        {
            continue;
        }
        if !obs
            .notices
            .contains_key(&(host.clone(), queue_id.clone(), recipient.clone()))
        {
            violations.push(Violation {
                guarantee: Guarantee::Notices,
                subject: queue_id.clone(),
                detail: format!(
                    "{recipient} of {queue_id} failed for good on {host}, and no failure notice was written"
                ),
            });
        }
    }
}

/// Every copy that reached a local mailbox for a recipient who asked for
/// NOTIFY=SUCCESS (from a non-null sender) has a success notice, written by some host
/// about its stored copy of the message, or still owed by a host's durable queue: a
/// crash may delay the notice, never lose it. The exception is a delivery its
/// sender never learned of: an LMTP reply lost on the way back leaves the gateway
/// still trying (the copy is pending there) or, at expiry, reporting a failure —
/// the sender hears something either way. Duplicates are not judged here (a
/// redelivery after a lost reply may repeat a success notice).
fn success_notices(obs: &Observations, context: &Context, violations: &mut Vec<Violation>) {
    let noticed: BTreeSet<(String, String)> = obs
        .other_notices
        .keys()
        .filter(|(kind, ..)| *kind == NoticeKind::Success)
        .filter_map(|(_, host, queue_id, recipient)| {
            let facts = obs.stored.get(&(host.clone(), queue_id.clone()))?;
            Some((facts.tag.clone()?, recipient.clone()))
        })
        .collect();
    let delivered = mailbox_copies(obs);
    let failed = resolved_by_failure(obs);
    for (tag, recipient) in &context.success_wanted {
        if !obs.promised.contains_key(&(tag.clone(), recipient.clone())) {
            continue;
        }
        let targets = context.targets_of(recipient);
        for target in targets {
            let key = (tag.clone(), target.to_ascii_lowercase());
            if !context.first_to_reach(obs, tag, recipient, &target) {
                continue;
            }
            if !delivered.contains(&key)
                || noticed.contains(&key)
                || context.owed_success.contains(&key)
                || failed.contains(&key)
                || context.pending.contains(&key)
            {
                continue;
            }
            violations.push(Violation {
                guarantee: Guarantee::Notices,
                subject: tag.clone(),
                detail: format!(
                    "{tag} reached the mailbox of {target} for {recipient}, who asked for \
                     NOTIFY=SUCCESS, and no host wrote or still owes a success notice"
                ),
            });
        }
    }
}

fn availability(obs: &Observations, context: &Context, violations: &mut Vec<Violation>) {
    let Some(bound) = context.availability_secs else {
        return;
    };
    for (tag, offered) in &obs.offered {
        // A crash injected into this very message's store cuts its client off; the
        // client then waits by its own backoff, which no server can shorten. The
        // bound measures the servers, so it counts from the last such crash.
        let from = obs
            .store_crashes
            .get(tag)
            .map_or(*offered, |crashed| (*crashed).max(*offered));
        let first_promise = obs
            .promised
            .iter()
            .filter(|((promised_tag, _), _)| promised_tag == tag)
            .map(|(_, (at, _))| *at)
            .min();
        let late = match first_promise {
            Some(at) => at.saturating_since(from).as_millis() > bound * 1000,
            None => !context.answered.contains(tag),
        };
        if late {
            violations.push(Violation {
                guarantee: Guarantee::Availability,
                subject: tag.clone(),
                detail: format!(
                    "{tag} offered at t+{}ms was not accepted within {bound}s",
                    offered.as_millis()
                ),
            });
        }
    }
}

fn no_relay(obs: &Observations, context: &Context, violations: &mut Vec<Violation>) {
    // A promise to an unauthenticated client for an address outside the local domain
    // is a relay.
    for (tag, recipient) in obs.promised.keys() {
        if context.authenticated.contains(tag) {
            continue;
        }
        let local = recipient
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(&context.local_domain));
        if !local {
            violations.push(Violation {
                guarantee: Guarantee::NoRelay,
                subject: tag.clone(),
                detail: format!("an unauthenticated client got {recipient} accepted for {tag}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_origins_are_read_from_the_top_header_section() {
        let data = b"Received: from b by be1 with LMTP id Q-be1-0-4;\r\n date\r\n\
Received: from c by gw1 with ESMTP id Q-gw1-1-7;\r\n date\r\n\
Message-ID: <m17@workload.sim>\r\n\r\nMessage-ID: <other@x>\r\n";
        assert_eq!(message_tag(data).as_deref(), Some("m17"));
        assert_eq!(origin_queue_id(data).as_deref(), Some("Q-gw1-1-7"));
    }

    #[test]
    fn a_promise_without_delivery_notice_or_queue_is_a_loss() {
        let mut obs = Observations::default();
        let t = Instant::from_millis(5);
        obs.promised(t, "m1", "user1@sluice.test", "gw1", t);
        let context = Context::default();
        let wanted = BTreeSet::from([Guarantee::NoLoss]);
        assert_eq!(check(&obs, &context, &wanted).len(), 1);
        obs.mailbox_delivered(
            t,
            "be1",
            "user1@sluice.test",
            b"Message-ID: <m1@w>\r\n\r\n",
            true,
        );
        assert!(check(&obs, &context, &wanted).is_empty());
    }

    #[test]
    fn a_group_member_without_its_copy_is_a_loss() {
        let mut obs = Observations::default();
        let t = Instant::from_millis(5);
        obs.promised(t, "m1", "team1@sluice.test", "gw1", t);
        let context = Context {
            targets: BTreeMap::from([(
                "team1@sluice.test".to_owned(),
                vec![
                    "user1@sluice.test".to_owned(),
                    "user2@sluice.test".to_owned(),
                ],
            )]),
            ..Context::default()
        };
        let wanted = BTreeSet::from([Guarantee::NoLoss]);
        let data = b"Message-ID: <m1@w>\r\n\r\n";
        obs.mailbox_delivered(t, "be1", "user1@sluice.test", data, true);
        let violations = check(&obs, &context, &wanted);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].detail.contains("user2@sluice.test"));
        obs.mailbox_delivered(t, "be1", "user2@sluice.test", data, true);
        assert!(check(&obs, &context, &wanted).is_empty());
    }

    /// A user named directly and through a group gets one copy, under the first
    /// RCPT's NOTIFY: a group asking NOTIFY=SUCCESS is owed notices for the members
    /// it alone reached, and for the shared one only if it was named first.
    #[test]
    fn a_mailbox_reached_twice_owes_a_success_notice_under_the_first_recipient() {
        let t = Instant::from_millis(5);
        let data = b"Message-ID: <m1@w>\r\n\r\n";
        let observe = || {
            let mut obs = Observations::default();
            obs.promised(t, "m1", "user7@sluice.test", "gw1", t);
            obs.promised(t, "m1", "team2@sluice.test", "gw1", t);
            obs.mailbox_delivered(t, "be1", "user7@sluice.test", data, true);
            obs.mailbox_delivered(t, "be1", "user8@sluice.test", data, true);
            obs.stored(
                "gw1",
                "Q1",
                StoredFacts {
                    tag: Some("m1".into()),
                    null_sender: false,
                    arrival: t,
                    no_failure_notice: BTreeSet::new(),
                },
            );
            obs.notice_durable(
                t,
                "gw1",
                "Q1",
                NoticeKind::Success,
                &["user8@sluice.test".to_owned()],
                t,
            );
            obs
        };
        let context = |first: &str, second: &str| Context {
            targets: BTreeMap::from([(
                "team2@sluice.test".to_owned(),
                vec![
                    "user7@sluice.test".to_owned(),
                    "user8@sluice.test".to_owned(),
                ],
            )]),
            success_wanted: BTreeSet::from([("m1".to_owned(), "team2@sluice.test".to_owned())]),
            recipient_order: BTreeMap::from([(
                "m1".to_owned(),
                vec![first.to_owned(), second.to_owned()],
            )]),
            ..Context::default()
        };
        let wanted = BTreeSet::from([Guarantee::Notices]);
        let user_first = context("user7@sluice.test", "team2@sluice.test");
        assert!(check(&observe(), &user_first, &wanted).is_empty());
        let group_first = context("team2@sluice.test", "user7@sluice.test");
        let violations = check(&observe(), &group_first, &wanted);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].detail.contains("user7@sluice.test"));
    }
}
