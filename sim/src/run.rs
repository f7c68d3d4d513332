//! One simulated run: the world built from a scenario and a seed (topology,
//! workload, faults — every draw from the seed, in a fixed order), run to the end
//! of its drain, then checked. Also the summary table and the violation report.

use crate::check::{
    self, Context, DkimCounts, DuplicateCause, Expected, Guarantee, Observations, PathFigures,
    PathOracle, QueuedAtEnd, ScheduleOracle, Violation,
};
use crate::engine::{Engine, Pcg32};
use crate::host::{Bugs, Directory, Role, SluiceHost, domain};
use crate::scenario::{Scenario, per_million};
use crate::world::client::{Agent, LoadBalancer, MessageSpec};
use crate::world::imap_client::{ClientParams, ImapClient};
use crate::world::network::{Network, OUTSIDE};
use crate::world::remote::{Behaviour, RelayService, RemoteServer};
use crate::world::{Event, Node, NodeKind, World};
use sluice_core::node::PlacementPolicy;
use sluice_core::queue::{QueueConfig, RetrySchedule};
use sluice_core::router::MailboxAccess;
use sluice_core::smtp::params::Notify;
use sluice_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// The LMTP port of backends (RFC 2033 names none; 24 is the customary one).
const LMTP_PORT: u16 = 24;

/// What a run found.
#[derive(Debug)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub trace_hash: u64,
    pub events: u64,
    pub simulated_ms: u64,
    pub offered: usize,
    pub promised: usize,
    pub delivered: usize,
    pub notified: usize,
    pub pending: usize,
    pub lost: usize,
    /// Copies remote servers stored more than once, by cause (a lost final reply, a
    /// crash of the sender, or nothing: a violation).
    pub remote_duplicates: BTreeMap<DuplicateCause, usize>,
    /// Recipients of attempts whose final reply was lost after the end of data
    /// (each may explain a second copy at a remote).
    pub ambiguous: usize,
    /// Mailbox copies made for group addresses and through the catch-all.
    pub expanded: ExpandedCopies,
    /// Signatures on the copies remotes stored, as their verifier found them.
    pub dkim: DkimCounts,
    /// What relay hosts and MX servers took, and the AUTH commands relays received.
    pub paths: PathFigures,
    /// What the IMAP clients did.
    pub retrieval: RetrievalFigures,
    pub faults: BTreeMap<&'static str, u64>,
    pub checked: BTreeSet<Guarantee>,
    pub violations: Vec<Violation>,
    /// The kept trace lines (all of them when the full trace was asked for).
    pub trace: Vec<String>,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs `scenario` with `seed`; `full_trace` keeps every trace line.
pub fn run(scenario: &Scenario, seed: u64, bugs: Bugs, full_trace: bool) -> RunResult {
    let mut engine: Engine<Event> = Engine::new(seed, full_trace);
    let scenario = if scenario.swarm {
        swarm(scenario, &mut engine.rng.fork(1))
    } else {
        scenario.clone()
    };
    let mut network = Network::new(
        scenario.network.latency_ms_min,
        scenario
            .network
            .latency_ms_max
            .max(scenario.network.latency_ms_min),
        per_million(scenario.network.loss),
        per_million(scenario.network.reset),
    );
    network.tail_ppm = per_million(scenario.network.latency_tail);
    network.tail_max_ms = scenario.network.latency_tail_ms_max;
    let mut world = World::new(engine, network, bugs);
    let setup = build(&mut world, &scenario);
    sign_outgoing_mail(&mut world, &scenario, seed);
    let end = Instant::from_millis((scenario.duration_secs + scenario.drain_secs) * 1000);
    world.run_until(end);
    finish(world, &scenario, seed, &setup)
}

/// What the checkers need to know of the setup.
#[derive(Debug, Default)]
struct Setup {
    targets: BTreeMap<String, Vec<String>>,
    /// The directory's group addresses.
    groups: BTreeSet<String>,
    /// The local domain's catch-all target, if it has one.
    catch_all: Option<String>,
    /// Workload recipients whose local part the directory does not know.
    unknown_locals: BTreeSet<String>,
    /// Where each domain's mail must arrive.
    paths: PathOracle,
    /// Whose mailboxes the IMAP clients read.
    retrieval: check::retrieval::RetrievalContext,
}

/// The checker's model of the retry schedule, read from the scenario itself (not
/// from the `RetrySchedule` handed to core, which a planted bug may have changed).
fn schedule_oracle(scenario: &Scenario) -> ScheduleOracle {
    let queue = &scenario.queue;
    ScheduleOracle {
        first_retry: Duration::from_secs(queue.first_retry_secs),
        backoff_factor: queue.backoff_factor,
        max_retry: Duration::from_secs(queue.max_retry_secs),
        expire_after: Duration::from_secs(queue.expire_after_secs),
    }
}

/// How late expiry may come: an attempt running at expiry ends within the SMTP
/// client's longest timeout (10 minutes for the reply to the end of data, RFC 5321
/// §4.5.3.2.6) plus a connection timeout, write retries back off to a minute, and
/// the host may be down or its disk full for the scenario's longest window, or its
/// clock set back by the largest jump.
fn expiry_grace(scenario: &Scenario) -> Duration {
    Duration::from_mins(20)
        + Duration::from_secs(scenario.crashes.restart_secs_max)
        + Duration::from_secs(scenario.disk.full_secs_max)
        + Duration::from_secs(scenario.crashes.clock_jump_secs_max)
}

/// A scenario with a random mix of its faults: each intensity scaled by a draw.
fn swarm(scenario: &Scenario, rng: &mut Pcg32) -> Scenario {
    let mut mixed = scenario.clone();
    let mut scale = |value: f64| value * (rng.below(101) as f64) / 100.0;
    mixed.network.loss = scale(mixed.network.loss);
    mixed.network.latency_tail = scale(mixed.network.latency_tail);
    mixed.network.reset = scale(mixed.network.reset);
    mixed.disk.error = scale(mixed.disk.error);
    mixed.dns.failure = scale(mixed.dns.failure);
    mixed.dns.timeout = scale(mixed.dns.timeout);
    mixed.remote.temporary = scale(mixed.remote.temporary);
    mixed.remote.permanent = scale(mixed.remote.permanent);
    mixed.remote.hang = scale(mixed.remote.hang);
    mixed.remote.close_mid_data = scale(mixed.remote.close_mid_data);
    mixed.remote.lie_about_extensions = scale(mixed.remote.lie_about_extensions);
    mixed.crashes.on_store = scale(mixed.crashes.on_store);
    mixed.crashes.after_promise = scale(mixed.crashes.after_promise);
    mixed.crashes.silent = scale(mixed.crashes.silent);
    let mut count = |value: u32| u32::try_from(rng.between(0, u64::from(value))).unwrap_or(0);
    mixed.network.partitions = count(mixed.network.partitions);
    mixed.disk.full_windows = count(mixed.disk.full_windows);
    mixed.dns.outages = count(mixed.dns.outages);
    mixed.crashes.gateway = count(mixed.crashes.gateway);
    mixed.crashes.backend = count(mixed.crashes.backend);
    mixed.crashes.clock_jumps = count(mixed.crashes.clock_jumps);
    mixed
}

fn address(index: usize) -> IpAddr {
    let index = u8::try_from(index % 250).unwrap_or(0);
    IpAddr::from([10, 0, 0, index + 1])
}

fn add_node(world: &mut World, name: String, kind: NodeKind) -> usize {
    let index = world.nodes.len();
    world
        .dns
        .addresses
        .insert(name.clone(), vec![address(index)]);
    world
        .dns
        .ptr
        .insert(address(index), vec![format!("{name}.")]);
    world.nodes.push(Node {
        name,
        ip: address(index),
        up: true,
        epoch: 0,
        clock_offset_ms: 0,
        kind,
    });
    index
}

/// Builds hosts, DNS, workload and faults; every draw in a fixed order.
fn build(world: &mut World, scenario: &Scenario) -> Setup {
    let topology = &scenario.topology;
    let local = topology.local_domain.to_ascii_lowercase();
    let remotes = topology.remote_domains.max(1);
    let users: Vec<String> = (1..=topology.users)
        .map(|k| format!("user{k}@{local}"))
        .collect();
    let mut aliases = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for k in 1..=topology.users {
        let target = format!("ext{k}@remote{}.example", k % remotes + 1);
        aliases.insert(format!("fwd{k}@{local}"), vec![target.clone()]);
        targets.insert(format!("fwd{k}@{local}"), vec![target]);
    }
    // Groups and the catch-all are laid out without random draws, so turning them
    // on leaves every other draw of the run where it was.
    let groups = groups(&users, &local, topology.groups, topology.group_size);
    for (group, members) in &groups {
        targets.insert(group.clone(), members.clone());
    }
    let catch_all = topology.catch_all.then(|| users.first().cloned()).flatten();
    let mut setup = Setup {
        targets,
        groups: groups.keys().cloned().collect(),
        catch_all: catch_all.clone(),
        unknown_locals: BTreeSet::new(),
        paths: PathOracle::default(),
        retrieval: check::retrieval::RetrievalContext::default(),
    };
    let directory = Directory {
        domain: local.clone(),
        users: users.clone(),
        aliases,
        groups,
        catch_all,
    };
    let schedule = RetrySchedule {
        first_retry: Duration::from_secs(scenario.queue.first_retry_secs),
        backoff_factor: scenario.queue.backoff_factor,
        max_retry_interval: Duration::from_secs(scenario.queue.max_retry_secs),
        expire_after: Duration::from_secs(scenario.queue.expire_after_secs),
        delay_warning_after: scenario.queue.delay_warning_secs.map(Duration::from_secs),
        #[cfg(feature = "planted-bugs")]
        planted_bug: world
            .bugs
            .core_backoff_off_by_one
            .then_some(sluice_core::queue::PlantedScheduleBug::BackoffOffByOne),
        ..RetrySchedule::default()
    };
    let queue_config = QueueConfig {
        schedule: schedule.clone(),
        ..QueueConfig::default()
    };
    let pool_idle = Duration::from_secs(scenario.queue.pool_idle_secs);
    // The scenario was validated, so both read; a planted bug drops the rules.
    let mut delivery_policy = scenario.delivery.policy().unwrap_or_default();
    if world.bugs.ignore_path_rules {
        delivery_policy = sluice_core::delivery::DeliveryPolicy::default();
    }
    let relay_credentials = scenario.delivery.credentials().unwrap_or_default();
    let leaked_credentials = world
        .bugs
        .leak_relay_credentials
        .then(|| leaked_credentials(scenario))
        .flatten();
    let host = |role, name: &str, mailboxes| {
        let mut sluice = SluiceHost::new(
            role,
            domain(name),
            PlacementPolicy {
                mailboxes,
                delivery: delivery_policy.clone(),
            },
            queue_config.clone(),
            directory.clone(),
        );
        sluice.pool.idle_timeout = pool_idle;
        sluice.relay_credentials = relay_credentials.clone();
        sluice.leaked_credentials = leaked_credentials.clone();
        NodeKind::Sluice(Box::new(sluice))
    };
    let mut gateways = Vec::new();
    let mut backends = Vec::new();
    if topology.gateways == 0 {
        let name = format!("all1.{local}");
        let index = add_node(
            world,
            name.clone(),
            host(Role::All, &name, MailboxAccess::InProcess),
        );
        gateways.push(index);
        backends.push(index);
    } else {
        let backend = format!("be1.{local}");
        for k in 1..=topology.gateways {
            let name = format!("gw{k}.{local}");
            let access = MailboxAccess::Lmtp {
                host: backend.clone(),
                port: LMTP_PORT,
            };
            gateways.push(add_node(
                world,
                name.clone(),
                host(Role::Gateway, &name, access),
            ));
        }
        let index = add_node(
            world,
            backend.clone(),
            host(Role::Backend, &backend, MailboxAccess::InProcess),
        );
        backends.push(index);
    }
    let remote = &scenario.remote;
    let behaviour = Behaviour {
        temporary_ppm: per_million(remote.temporary),
        permanent_ppm: per_million(remote.permanent),
        recover_at: remote
            .recover_after_secs
            .map(|secs| Instant::from_millis(secs * 1000)),
        greylisting: remote.greylisting,
        slow_ms_max: remote.slow_ms_max,
        hang_ppm: per_million(remote.hang),
        close_ppm: per_million(remote.close_mid_data),
        lie_ppm: per_million(remote.lie_about_extensions),
        idle_close: remote.idle_close_secs.map(Duration::from_secs),
    };
    let mut remote_nodes = Vec::new();
    for k in 1..=remotes {
        let remote_domain = format!("remote{k}.example");
        let name = format!("mx.{remote_domain}");
        world
            .dns
            .mx
            .insert(remote_domain.clone(), vec![(10, name.clone())]);
        setup.paths.mx.insert(remote_domain.clone(), name.clone());
        let server = RemoteServer::new(remote_domain, behaviour.clone());
        remote_nodes.push(add_node(world, name, NodeKind::Remote(server)));
    }
    let relay_nodes = relays(world, scenario, &behaviour, &mut setup.paths);
    world.dns.failure_ppm = per_million(scenario.dns.failure);
    world.dns.timeout_ppm = per_million(scenario.dns.timeout);
    world.fsync_ms = (
        scenario.disk.fsync_ms_min,
        scenario.disk.fsync_ms_max.max(scenario.disk.fsync_ms_min),
    );
    world.disk_error_ppm = per_million(scenario.disk.error);
    world.crash_on_store_ppm = per_million(scenario.crashes.on_store);
    world.crash_after_promise_ppm = per_million(scenario.crashes.after_promise);
    world.silent_crash_ppm = per_million(scenario.crashes.silent);
    world.restart_secs = (
        scenario.crashes.restart_secs_min,
        scenario
            .crashes
            .restart_secs_max
            .max(scenario.crashes.restart_secs_min),
    );
    world.lb = LoadBalancer::new(gateways.clone());
    world.health_check_every = Duration::from_secs(topology.health_check_secs.max(1));

    workload(world, scenario, &users, remotes, &mut setup);
    faults(
        world,
        scenario,
        &gateways,
        &backends,
        &remote_nodes,
        &relay_nodes,
    );
    // Drawn after everything else, so a scenario without clients draws as before.
    if let Some(&mailbox_host) = backends.first() {
        setup.retrieval = retrieval_clients(world, scenario, &users, mailbox_host);
    }
    world.engine.at(Instant::EPOCH, Event::HealthCheck);
    world.engine.at(
        Instant::from_millis(scenario.duration_secs * 1000),
        Event::FaultsEnd,
    );
    setup
}

/// The scenario's IMAP clients, one per user from the first, on the host that
/// holds the mailboxes, each starting within the first minute.
fn retrieval_clients(
    world: &mut World,
    scenario: &Scenario,
    users: &[String],
    mailbox_host: usize,
) -> check::retrieval::RetrievalContext {
    let retrieval = &scenario.retrieval;
    let params = ClientParams {
        think_max: Duration::from_secs(retrieval.think_secs_max),
        idle_min: Duration::from_secs(retrieval.idle_secs_min),
        idle_max: Duration::from_secs(retrieval.idle_secs_max),
    };
    let clients: Vec<(ImapClient, Instant)> = users
        .iter()
        .take(retrieval.clients as usize)
        .map(|user| {
            let start = Instant::from_millis(world.engine.rng.below(60_000));
            (ImapClient::new(user.clone(), params), start)
        })
        .collect();
    let context = check::retrieval::RetrievalContext {
        host: world.place_name(mailbox_host),
        users: clients
            .iter()
            .map(|(client, _)| client.user.clone())
            .collect(),
        idle_bound: Duration::from_secs(retrieval.idle_bound_secs),
    };
    if !clients.is_empty() {
        world.add_imap_clients(mailbox_host, clients);
    }
    context
}

/// DKIM: a key for each signing domain of the scenario, an Ed25519 key derived from
/// the seed and the domain's name (no draw from the run's generator, so a scenario
/// that signs keeps every other draw where it was); its record in the simulated DNS,
/// the keys on every Sluice host, and the remotes' verifier over the DNS's records.
fn sign_outgoing_mail(world: &mut World, scenario: &Scenario, seed: u64) {
    let dkim = &scenario.dkim;
    if dkim.domains.is_empty() {
        return;
    }
    let mut keys = sluice_dkim::DkimKeyStore::new();
    for domain in &dkim.domains {
        let mut rng = Pcg32::new(seed, crate::engine::trace::fnv1a(domain.as_bytes()));
        let mut key_seed = [0u8; 32];
        for chunk in key_seed.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        // Names were checked with the scenario; a domain given twice keeps its first key.
        if let Ok(signer) =
            sluice_dkim::DkimSigner::ed25519_from_seed(domain, &dkim.selector, key_seed)
        {
            let record = signer.record();
            if keys.insert(signer).is_ok() {
                world.dns.txt.insert(record.name, record.value);
            }
        }
    }
    let keys = Arc::new(keys);
    for node in &mut world.nodes {
        if let NodeKind::Sluice(sluice) = &mut node.kind {
            sluice.dkim = Arc::clone(&keys);
        }
    }
    let records = world
        .dns
        .txt
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    match sluice_dkim::verify::Verifier::new(records) {
        Ok(verifier) => world.dkim_verifier = Some(verifier),
        Err(error) => {
            world.engine.record(&format!("no DKIM verifier: {error}"));
            world.count_fault("dkim_verifier_unavailable");
        }
    }
}

/// The relays the scenario's rules name: `relay.hosts` remote servers each,
/// `r<k>.<relay>`, every one at its own address and all of them at the relay's
/// name, in order (so the walk fails over from one to the next). Their names go
/// into the checker's model of the rules, beside each rule's pattern.
fn relays(
    world: &mut World,
    scenario: &Scenario,
    behaviour: &Behaviour,
    oracle: &mut PathOracle,
) -> Vec<usize> {
    let relays = scenario.delivery.relays().unwrap_or_default();
    let mut nodes = Vec::new();
    let mut expected = BTreeMap::new();
    for relay in relays {
        let mut hosts = BTreeSet::new();
        let mut addresses = Vec::new();
        for k in 1..=scenario.relay.hosts {
            let name = format!("r{k}.{}", relay.name);
            let service = RelayService {
                account: relay.account.clone(),
            };
            let server = RemoteServer::relay(relay.name.clone(), behaviour.clone(), service);
            let index = add_node(world, name.clone(), NodeKind::Remote(server));
            addresses.push(address(index));
            hosts.insert(name);
            nodes.push(index);
        }
        world.dns.addresses.insert(relay.name.clone(), addresses);
        expected.insert(
            relay.name.clone(),
            Expected::Relay {
                name: relay.name.clone(),
                hosts,
                username: relay.account.map(|(username, _)| username),
            },
        );
    }
    for rule in &scenario.delivery.path {
        let target = if rule.path.eq_ignore_ascii_case("relay") {
            let name = rule
                .relay
                .as_deref()
                .and_then(|address| {
                    sluice_core::delivery::path::parse_host_port(address, Some(25)).ok()
                })
                .map(|(name, _)| name);
            match name.and_then(|name| expected.get(&name)) {
                Some(relay) => relay.clone(),
                None => continue,
            }
        } else {
            Expected::Mx
        };
        for pattern in &rule.domains {
            oracle
                .rules
                .push((pattern.to_ascii_lowercase(), target.clone()));
        }
    }
    nodes
}

/// The first relay account of the scenario, for the `leak-relay-credentials` bug.
fn leaked_credentials(scenario: &Scenario) -> Option<sluice_core::smtp::client::ClientAuth> {
    let relays = scenario.delivery.relays().unwrap_or_default();
    let (username, password) = relays.into_iter().find_map(|relay| relay.account)?;
    Some(sluice_core::smtp::client::ClientAuth {
        username,
        password: sluice_core::smtp::client::Password::new(password),
        plaintext_allowed: true,
    })
}

/// The groups `team<k>@local`, each of `size` distinct local users taken in turn
/// (group k starts where group k-1 ended, wrapping around the users).
fn groups(users: &[String], local: &str, count: u32, size: u32) -> BTreeMap<String, Vec<String>> {
    let mut groups = BTreeMap::new();
    if users.is_empty() {
        return groups;
    }
    let size = (size as usize).min(users.len());
    for k in 0..count as usize {
        let members = (0..size)
            .map(|j| users[(k * size + j) % users.len()].clone())
            .collect();
        groups.insert(format!("team{}@{local}", k + 1), members);
    }
    groups
}

fn workload(
    world: &mut World,
    scenario: &Scenario,
    users: &[String],
    remotes: u32,
    setup: &mut Setup,
) {
    let load = &scenario.workload;
    let local = scenario.topology.local_domain.to_ascii_lowercase();
    let duration_ms = scenario.duration_secs * 1000;
    for index in 0..load.messages {
        let rng = &mut world.engine.rng;
        let at = Instant::from_millis(rng.below(duration_ms));
        let tag = format!("m{index}");
        let remote_k = rng.between(1, u64::from(remotes));
        let submitter = rng.chance(per_million(load.submitter_fraction));
        let auth = if submitter {
            rng.pick(users).cloned()
        } else {
            None
        };
        let reverse_path = if let Some(user) = &auth {
            Some(user.clone())
        } else if rng.chance(per_million(load.null_sender_fraction)) {
            None
        } else if rng.chance(per_million(load.external_sender_fraction)) {
            Some(format!("sender{index}@remote{remote_k}.example"))
        } else {
            rng.pick(users).cloned()
        };
        let mut recipients: Vec<String> = Vec::new();
        let count = rng.between(1, u64::from(load.max_recipients));
        for _ in 0..count {
            let user = rng.between(1, users.len() as u64);
            let recipient = if rng.chance(per_million(load.external_fraction)) {
                if submitter {
                    format!("ext{user}@remote{}.example", user % u64::from(remotes) + 1)
                } else {
                    format!("fwd{user}@{local}")
                }
            } else {
                format!("user{user}@{local}")
            };
            if !recipients.contains(&recipient) {
                recipients.push(recipient);
            }
        }
        if rng.chance(per_million(load.relay_attempt_fraction)) {
            let relay = format!("victim{index}@remote{remote_k}.example");
            setup.targets.insert(relay.clone(), Vec::new());
            recipients.push(relay);
        }
        // Drawn only when enabled, so scenarios without them keep their sequences.
        let groups = u64::from(scenario.topology.groups);
        if load.group_fraction > 0.0 && groups > 0 && rng.chance(per_million(load.group_fraction)) {
            let group = format!("team{}@{local}", rng.between(1, groups));
            if !recipients.contains(&group) {
                recipients.push(group);
            }
        }
        if load.unknown_local_fraction > 0.0 && rng.chance(per_million(load.unknown_local_fraction))
        {
            // Unknown to the directory: the catch-all's copy, or a refusal at RCPT.
            let unknown = format!("nobody{index}@{local}");
            setup
                .targets
                .insert(unknown.clone(), setup.catch_all.iter().cloned().collect());
            setup.unknown_locals.insert(unknown.clone());
            recipients.push(unknown);
        }
        let notify = recipients
            .iter()
            .map(|_| {
                if !rng.chance(per_million(load.dsn_fraction)) {
                    None
                } else if rng.chance(250_000) {
                    Some(Notify::Never)
                } else {
                    Some(Notify::On {
                        success: rng.chance(500_000),
                        failure: true,
                        delay: rng.chance(500_000),
                    })
                }
            })
            .collect();
        for recipient in &recipients {
            setup
                .targets
                .entry(recipient.clone())
                .or_insert_with(|| vec![recipient.clone()]);
        }
        let size = rng.between(u64::from(load.min_size), u64::from(load.max_size));
        let body = body(&tag, reverse_path.as_deref(), &recipients, size);
        let spec = MessageSpec {
            tag,
            reverse_path,
            recipients,
            notify,
            body,
            auth,
            at,
        };
        let agent = Agent::new(spec, load.client_attempts.max(1));
        let agent_index = world.agents.len();
        world.agents.push(agent);
        world.engine.at(at, Event::Offer(agent_index));
    }
}

/// A plain RFC 5322 message of about `size` octets whose Message-ID names its tag.
fn body(tag: &str, sender: Option<&str>, recipients: &[String], size: u64) -> Arc<[u8]> {
    let mut text = String::new();
    let _ = write!(
        text,
        "From: <{}>\r\nTo: {}\r\nSubject: simulated {tag}\r\nMessage-ID: <{tag}@workload.sim>\r\n\
Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
        sender.unwrap_or("mailer-daemon@remote1.example"),
        recipients.join(", ")
    );
    let mut line = 0u64;
    while (text.len() as u64) < size {
        let _ = write!(text, "line {line} of the simulated message {tag}\r\n");
        line += 1;
    }
    text.into_bytes().into()
}

fn faults(
    world: &mut World,
    scenario: &Scenario,
    gateways: &[usize],
    backends: &[usize],
    remotes: &[usize],
    relays: &[usize],
) {
    let duration_ms = scenario.duration_secs * 1000;
    let crashes = &scenario.crashes;
    let restart = |rng: &mut Pcg32| {
        Duration::from_secs(rng.between(crashes.restart_secs_min, crashes.restart_secs_max))
    };
    for _ in 0..crashes.gateway {
        let rng = &mut world.engine.rng;
        let Some(host) = rng.pick(gateways).copied() else {
            break;
        };
        let at = Instant::from_millis(rng.below(duration_ms));
        let back = at + restart(rng);
        world.engine.at(at, Event::Crash(host));
        world.engine.at(back, Event::Restart(host));
    }
    for _ in 0..crashes.backend {
        let rng = &mut world.engine.rng;
        let Some(host) = rng.pick(backends).copied() else {
            break;
        };
        let at = Instant::from_millis(rng.below(duration_ms));
        let back = at + restart(rng);
        world.engine.at(at, Event::Crash(host));
        world.engine.at(back, Event::Restart(host));
    }
    // Drawn only when relays exist, so scenarios without them keep their sequences.
    for _ in 0..scenario.relay.crashes {
        let rng = &mut world.engine.rng;
        let Some(host) = rng.pick(relays).copied() else {
            break;
        };
        let at = Instant::from_millis(rng.below(duration_ms));
        let back = at + restart(rng);
        world.engine.at(at, Event::Crash(host));
        world.engine.at(back, Event::Restart(host));
    }
    for host in gateways.iter().take(crashes.gateways_down as usize) {
        world.engine.at(Instant::EPOCH, Event::Crash(*host));
    }
    for host in remotes.iter().take(scenario.remote.down as usize) {
        world.engine.at(Instant::EPOCH, Event::Crash(*host));
    }
    let mut places: Vec<(usize, usize)> = Vec::new();
    for gateway in gateways {
        places.push((*gateway, OUTSIDE));
        for backend in backends {
            if backend != gateway {
                places.push((*gateway, *backend));
            }
        }
        for remote in remotes.iter().chain(relays) {
            places.push((*gateway, *remote));
        }
    }
    for _ in 0..scenario.network.partitions {
        let rng = &mut world.engine.rng;
        let Some((a, b)) = rng.pick(&places).copied() else {
            break;
        };
        let at = Instant::from_millis(rng.below(duration_ms));
        let lasts = Duration::from_secs(rng.between(1, scenario.network.partition_secs_max.max(1)));
        world.engine.at(at, Event::Partition(a, b));
        world.engine.at(at + lasts, Event::Heal(a, b));
    }
    for _ in 0..scenario.dns.outages {
        let rng = &mut world.engine.rng;
        let at = Instant::from_millis(rng.below(duration_ms));
        let lasts = Duration::from_secs(rng.between(1, scenario.dns.outage_secs_max.max(1)));
        world.engine.at(at, Event::DnsOutage(true));
        world.engine.at(at + lasts, Event::DnsOutage(false));
    }
    let sluice_hosts: Vec<usize> = gateways.iter().chain(backends).copied().collect();
    for _ in 0..scenario.disk.full_windows {
        let rng = &mut world.engine.rng;
        let Some(host) = rng.pick(&sluice_hosts).copied() else {
            break;
        };
        let at = Instant::from_millis(rng.below(duration_ms));
        let lasts = Duration::from_secs(rng.between(1, scenario.disk.full_secs_max.max(1)));
        world.engine.at(at, Event::DiskFull(host, true));
        world.engine.at(at + lasts, Event::DiskFull(host, false));
    }
    for _ in 0..crashes.clock_jumps {
        let rng = &mut world.engine.rng;
        let Some(host) = rng.pick(&sluice_hosts).copied() else {
            break;
        };
        let at = Instant::from_millis(rng.below(duration_ms));
        let secs = i64::try_from(rng.between(1, crashes.clock_jump_secs_max.max(1))).unwrap_or(1);
        let by = if rng.chance(500_000) { secs } else { -secs };
        world.engine.at(at, Event::ClockJump(host, by * 1000));
    }
}

fn finish(world: World, scenario: &Scenario, seed: u64, setup: &Setup) -> RunResult {
    let mut pending = BTreeSet::new();
    let mut owed_success = BTreeSet::new();
    let mut queued_at_end = Vec::new();
    for (index, node) in world.nodes.iter().enumerate() {
        if let NodeKind::Sluice(sluice) = &node.kind {
            let host_now = world.local_now(index);
            for message in sluice.disk.durable.messages.values() {
                let Some(queued) = &message.queued else {
                    continue;
                };
                let tag = check::message_tag(&message.data).unwrap_or_default();
                for recipient in &queued.recipients {
                    let key = (tag.clone(), recipient.address.to_ascii_lowercase());
                    if recipient.success_owed {
                        owed_success.insert(key.clone());
                    }
                    if !recipient.state.is_final() {
                        pending.insert(key);
                        queued_at_end.push(QueuedAtEnd {
                            host: node.name.clone(),
                            queue_id: queued.queue_id.clone(),
                            address: recipient.address.to_ascii_lowercase(),
                            arrival: queued.arrival,
                            host_now,
                        });
                    }
                }
            }
        }
    }
    let answered = world
        .agents
        .iter()
        .filter(|agent| agent.remaining.is_empty())
        .map(|agent| agent.spec.tag.clone())
        .collect();
    let guarantees = &scenario.guarantees;
    let mut checked = BTreeSet::new();
    for (on, guarantee) in [
        (guarantees.no_loss, Guarantee::NoLoss),
        (guarantees.no_duplicates, Guarantee::NoDuplicates),
        (guarantees.notices, Guarantee::Notices),
        (guarantees.retry_schedule, Guarantee::RetrySchedule),
        (
            guarantees.availability_secs.is_some(),
            Guarantee::Availability,
        ),
        (guarantees.no_relay, Guarantee::NoRelay),
        (guarantees.drained, Guarantee::Drained),
        (guarantees.dkim, Guarantee::Dkim),
        (guarantees.delivery_paths, Guarantee::DeliveryPaths),
    ] {
        if on {
            checked.insert(guarantee);
        }
    }
    let retrieval = guarantees.retrieval && scenario.retrieval.clients > 0;
    for guarantee in [
        Guarantee::ImapExactlyOnce,
        Guarantee::ImapUids,
        Guarantee::ImapFlagsDurable,
        Guarantee::ImapIdle,
    ] {
        let on = retrieval;
        if on {
            checked.insert(guarantee);
        }
    }
    let context = Context {
        targets: setup.targets.clone(),
        local_domain: scenario.topology.local_domain.to_ascii_lowercase(),
        pending,
        availability_secs: guarantees.availability_secs,
        answered,
        schedule: schedule_oracle(scenario),
        expiry_grace: expiry_grace(scenario),
        queued_at_end,
        authenticated: world
            .agents
            .iter()
            .filter(|agent| agent.spec.auth.is_some())
            .map(|agent| agent.spec.tag.clone())
            .collect(),
        success_wanted: world
            .agents
            .iter()
            .filter(|agent| agent.spec.reverse_path.is_some())
            .flat_map(|agent| {
                let spec = &agent.spec;
                spec.recipients
                    .iter()
                    .zip(&spec.notify)
                    .filter(|(_, notify)| matches!(notify, Some(Notify::On { success: true, .. })))
                    .map(|(recipient, _)| (spec.tag.clone(), recipient.clone()))
            })
            .collect(),
        owed_success,
        recipient_order: world
            .agents
            .iter()
            .map(|agent| (agent.spec.tag.clone(), agent.spec.recipients.clone()))
            .collect(),
        dkim_domains: scenario
            .dkim
            .domains
            .iter()
            .map(|domain| domain.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        paths: setup.paths.clone(),
        retrieval: setup.retrieval.clone(),
    };
    let obs: &Observations = &world.obs;
    let violations = check::check(obs, &context, &checked);
    let delivered: BTreeSet<(String, String)> = obs
        .mailbox
        .keys()
        .map(|(_, user, tag, _)| (tag.clone(), user.clone()))
        .chain(obs.remote.keys().cloned())
        .collect();
    let mut faults = world.faults.clone();
    if world.dns.failures > 0 {
        faults.insert("dns_lookup_failure", world.dns.failures);
    }
    RunResult {
        scenario: scenario.name.clone(),
        seed,
        trace_hash: world.engine.trace.hash(),
        events: world.engine.processed(),
        simulated_ms: world.engine.now().as_millis(),
        offered: obs.offered.len(),
        promised: obs.promised.len(),
        delivered: delivered.len(),
        notified: obs.notices.len(),
        pending: context.pending.len(),
        lost: violations
            .iter()
            .filter(|violation| violation.guarantee == Guarantee::NoLoss)
            .count(),
        remote_duplicates: check::remote_duplicates(obs),
        ambiguous: obs.ambiguous.len(),
        expanded: expanded_copies(obs, setup),
        dkim: check::dkim_counts(obs, &context),
        paths: PathFigures::of(obs, &setup.paths),
        retrieval: RetrievalFigures::of(obs),
        faults,
        checked,
        violations,
        trace: world.engine.trace.lines().map(str::to_owned).collect(),
    }
}

/// What the IMAP clients did in one run, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetrievalFigures {
    pub logins: u64,
    pub listings: usize,
    pub flags: usize,
    pub moves: usize,
    pub expunges: usize,
    pub idles: usize,
    /// EXISTS heard while idling.
    pub idle_exists: usize,
}

impl RetrievalFigures {
    fn of(obs: &Observations) -> RetrievalFigures {
        let log = &obs.retrieval;
        RetrievalFigures {
            logins: log.logins,
            listings: log.listings.len(),
            flags: log.flags.len(),
            moves: log.moves.len(),
            expunges: log.expunges.len(),
            idles: log.idles.len(),
            idle_exists: log.idles.iter().map(|idle| idle.exists.len()).sum(),
        }
    }
}

/// What the directory's groups and catch-all did in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpandedCopies {
    /// Mailbox copies of promised messages to group members, for a group address.
    pub group: usize,
    /// Mailbox copies in the catch-all's mailbox, for a promised unknown local part.
    pub catch_all: usize,
    /// Unknown local parts refused at RCPT (the domain has no catch-all).
    pub unknown_refused: usize,
}

fn expanded_copies(obs: &Observations, setup: &Setup) -> ExpandedCopies {
    let delivered: BTreeSet<(&str, &str)> = obs
        .mailbox
        .keys()
        .map(|(_, user, tag, _)| (tag.as_str(), user.as_str()))
        .collect();
    let mut copies = ExpandedCopies::default();
    for (tag, recipient) in obs.promised.keys() {
        let copied_to = |target: &String| delivered.contains(&(tag.as_str(), target.as_str()));
        let targets = setup.targets.get(recipient).into_iter().flatten();
        if setup.groups.contains(recipient) {
            copies.group += targets.filter(|target| copied_to(target)).count();
        } else if setup.unknown_locals.contains(recipient) {
            copies.catch_all += targets.filter(|target| copied_to(target)).count();
        }
    }
    copies.unknown_refused = obs
        .refused
        .iter()
        .filter(|(_, recipient)| setup.unknown_locals.contains(recipient))
        .count();
    copies
}

/// The summary table of one run.
pub fn summary(result: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario   {}", result.scenario);
    let _ = writeln!(out, "seed       {}", result.seed);
    let _ = writeln!(
        out,
        "simulated  {} s, {} events",
        result.simulated_ms / 1000,
        result.events
    );
    let _ = writeln!(out, "messages   offered {:>5}", result.offered);
    let _ = writeln!(
        out,
        "copies     promised {:>4}  delivered {:>4}  notified {:>4}  pending {:>4}  lost {:>4}",
        result.promised, result.delivered, result.notified, result.pending, result.lost
    );
    let twice: usize = result.remote_duplicates.values().sum();
    let cause = |cause| result.remote_duplicates.get(&cause).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "remote     copies stored twice {:>4}  (reply lost {}, sender crashed {}, unexplained {})",
        twice,
        cause(DuplicateCause::LostReply),
        cause(DuplicateCause::Crash),
        cause(DuplicateCause::Unexplained)
    );
    let _ = writeln!(
        out,
        "ambiguous  {:>4} (connection lost after the end of data; deferred)",
        result.ambiguous
    );
    let expanded = result.expanded;
    if expanded != ExpandedCopies::default() {
        let _ = writeln!(
            out,
            "directory  group copies {:>4}  catch-all copies {:>4}  unknown refused {:>4}",
            expanded.group, expanded.catch_all, expanded.unknown_refused
        );
    }
    let dkim = result.dkim;
    if dkim != DkimCounts::default() {
        let _ = writeln!(
            out,
            "dkim       signed copies {:>4}  signatures verified {:>4}  failed {:>4}  \
             unsigned from a signing domain {:>4}",
            dkim.signed, dkim.verified, dkim.failed, dkim.unsigned
        );
    }
    let paths = result.paths;
    if paths != PathFigures::default() {
        let _ = writeln!(
            out,
            "paths      relay copies {:>4} (after AUTH {})  mx copies {:>4}  AUTH received {} (refused {})",
            paths.relay_copies,
            paths.relay_after_auth,
            paths.mx_copies,
            paths.auth_received,
            paths.auth_refused
        );
    }
    let imap = result.retrieval;
    if imap != RetrievalFigures::default() {
        let _ = writeln!(
            out,
            "imap       logins {:>4}  listings {:>4}  flags {:>4}  moves {:>4}  expunged {:>4}  \
             idles {:>4} (EXISTS heard {})",
            imap.logins,
            imap.listings,
            imap.flags,
            imap.moves,
            imap.expunges,
            imap.idles,
            imap.idle_exists
        );
    }
    let _ = writeln!(out, "faults");
    if result.faults.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (kind, count) in &result.faults {
        let _ = writeln!(out, "  {kind:<24} {count:>6}");
    }
    let _ = writeln!(out, "guarantees");
    for guarantee in Guarantee::ALL {
        let state = if !result.checked.contains(&guarantee) {
            "not checked".to_owned()
        } else {
            let count = result
                .violations
                .iter()
                .filter(|violation| violation.guarantee == guarantee)
                .count();
            if count == 0 {
                "held".to_owned()
            } else {
                format!("VIOLATED ({count})")
            }
        };
        let _ = writeln!(out, "  {:<24} {state}", guarantee.name());
    }
    let _ = writeln!(out, "trace hash {:016x}", result.trace_hash);
    out
}

/// The replay command for a seed.
pub fn replay_command(scenario_file: &str, seed: u64, bugs: Bugs) -> String {
    let mut command = format!("sluice-sim replay --scenario {scenario_file} --seed {seed} --trace");
    for (on, name) in bug_names(bugs) {
        if on {
            let _ = write!(command, " --bug {name}");
        }
    }
    command
}

/// Each deliberate bug by its `--bug` name, with whether `bugs` switches it on.
pub fn bug_names(bugs: Bugs) -> Vec<(bool, &'static str)> {
    let mut names = vec![
        (bugs.ack_before_durability, "ack-before-durability"),
        (bugs.skip_notice, "skip-notice"),
        (bugs.deliver_twice_after_crash, "deliver-twice-after-crash"),
        (bugs.drop_deferred_recipient, "drop-deferred-recipient"),
        (bugs.open_relay, "open-relay"),
        (bugs.retry_early, "retry-early"),
        (bugs.forget_owed_success, "forget-owed-success"),
        (
            bugs.forget_deferred_on_restart,
            "forget-deferred-on-restart",
        ),
        (bugs.forget_remote_acceptance, "forget-remote-acceptance"),
        (bugs.drop_attempt_report, "drop-attempt-report"),
        (bugs.dkim_alter_after_signing, "dkim-alter-after-signing"),
        (bugs.ignore_path_rules, "ignore-path-rules"),
        (bugs.leak_relay_credentials, "leak-relay-credentials"),
        (bugs.move_keeps_original, "move-keeps-original"),
        (
            bugs.renumber_uids_after_restart,
            "renumber-uids-after-restart",
        ),
        (
            bugs.ack_flags_before_durability,
            "ack-flags-before-durability",
        ),
        (bugs.no_idle_push, "no-idle-push"),
    ];
    names.extend(core_bug_names(bugs));
    names
}

/// The bugs planted inside core, known only with the `planted-bugs` feature.
#[cfg(feature = "planted-bugs")]
fn core_bug_names(bugs: Bugs) -> Vec<(bool, &'static str)> {
    vec![(bugs.core_backoff_off_by_one, "core-backoff-off-by-one")]
}

#[cfg(not(feature = "planted-bugs"))]
fn core_bug_names(_: Bugs) -> Vec<(bool, &'static str)> {
    Vec::new()
}

/// The bugs named by `--bug` arguments.
pub fn parse_bugs(names: &[String]) -> Result<Bugs, String> {
    let mut bugs = Bugs::default();
    for name in names {
        match name.as_str() {
            "ack-before-durability" => bugs.ack_before_durability = true,
            "skip-notice" => bugs.skip_notice = true,
            "deliver-twice-after-crash" => bugs.deliver_twice_after_crash = true,
            "drop-deferred-recipient" => bugs.drop_deferred_recipient = true,
            "open-relay" => bugs.open_relay = true,
            "retry-early" => bugs.retry_early = true,
            "forget-owed-success" => bugs.forget_owed_success = true,
            "forget-deferred-on-restart" => bugs.forget_deferred_on_restart = true,
            "forget-remote-acceptance" => bugs.forget_remote_acceptance = true,
            "drop-attempt-report" => bugs.drop_attempt_report = true,
            "dkim-alter-after-signing" => bugs.dkim_alter_after_signing = true,
            "ignore-path-rules" => bugs.ignore_path_rules = true,
            "leak-relay-credentials" => bugs.leak_relay_credentials = true,
            "move-keeps-original" => bugs.move_keeps_original = true,
            "renumber-uids-after-restart" => bugs.renumber_uids_after_restart = true,
            "ack-flags-before-durability" => bugs.ack_flags_before_durability = true,
            "no-idle-push" => bugs.no_idle_push = true,
            #[cfg(feature = "planted-bugs")]
            "core-backoff-off-by-one" => bugs.core_backoff_off_by_one = true,
            #[cfg(not(feature = "planted-bugs"))]
            "core-backoff-off-by-one" => {
                return Err(format!(
                    "bug {name:?} lives in core: build with --features planted-bugs"
                ));
            }
            other => return Err(format!("unknown bug {other:?}")),
        }
    }
    Ok(bugs)
}

/// The violation report: seed, scenario, guarantee, the trace around it (the run
/// is replayed with the full trace to find it) and the replay command.
/// Whether `line` mentions `name` whole: queue id `Q-gw1-0-1` is not mentioned
/// by a line about `Q-gw1-0-12`.
fn mentions(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        let next = line[at + name.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

pub fn violation_report(
    scenario: &Scenario,
    scenario_file: &str,
    result: &RunResult,
    bugs: Bugs,
) -> String {
    let mut out = String::new();
    let full = run(scenario, result.seed, bugs, true);
    for violation in &result.violations {
        let _ = writeln!(
            out,
            "VIOLATION seed={} scenario={} guarantee={}\n  {}",
            result.seed,
            result.scenario,
            violation.guarantee.name(),
            violation.detail
        );
        // The subject, and every queue id a line naming it mentions: the message's
        // path through the hosts.
        let mut names: BTreeSet<String> = BTreeSet::from([violation.subject.clone()]);
        for line in full
            .trace
            .iter()
            .filter(|line| line.contains(&violation.subject))
        {
            for word in line.split([' ', ',', '(', ')']) {
                if word.starts_with("Q-") {
                    names.insert(word.to_owned());
                }
            }
        }
        let time_of = |line: &str| -> u64 {
            line.split_whitespace()
                .next()
                .and_then(|word| word.parse().ok())
                .unwrap_or(0)
        };
        let named = |line: &str| names.iter().any(|name| mentions(line, name));
        let first = full
            .trace
            .iter()
            .find(|line| named(line))
            .map_or(0, |l| time_of(l));
        let last = full
            .trace
            .iter()
            .rev()
            .find(|line| named(line))
            .map_or(0, |l| time_of(l));
        // Host-wide faults in that span belong to the story too.
        let fault = |line: &str| {
            [
                " crashes",
                " restarts",
                "partition ",
                "heal ",
                "disk full",
                "dns outage",
            ]
            .iter()
            .any(|word| line.contains(word))
                && (first..=last.saturating_add(60_000)).contains(&time_of(line))
        };
        let mentions: Vec<&String> = full
            .trace
            .iter()
            .filter(|line| named(line) || fault(line))
            .filter(|line| !line.contains(" queue AttemptStarted"))
            .collect();
        let start = mentions.len().saturating_sub(40);
        let _ = writeln!(
            out,
            "  trace (lines naming {}):",
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
        for line in &mentions[start..] {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(
            out,
            "  replay: {}",
            replay_command(scenario_file, result.seed, bugs)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_id_is_mentioned_only_whole() {
        assert!(mentions("10 gw1 accepted Q-gw1-0-1 from x", "Q-gw1-0-1"));
        assert!(mentions("10 gw1 (Q-gw1-0-1)", "Q-gw1-0-1"));
        assert!(mentions("10 gw1 Q-gw1-0-1", "Q-gw1-0-1"));
        assert!(!mentions("10 gw1 accepted Q-gw1-0-12", "Q-gw1-0-1"));
        assert!(!mentions("10 gw1 accepted Q-gw1-0-1-7", "Q-gw1-0-1"));
        assert!(mentions("Q-gw1-0-12 then Q-gw1-0-1,", "Q-gw1-0-1"));
    }

    /// The backend names the gateway that hands it mail over LMTP by its
    /// forward-confirmed PTR name (core's `ClientNamer` against the simulated DNS),
    /// as net does; clients from outside, without PTR records, stay address literals.
    #[test]
    fn received_fields_carry_the_clients_confirmed_name() {
        let scenario = Scenario::parse(
            "named.toml",
            "name = \"named\"\nduration_secs = 60\ndrain_secs = 600\n\
             [workload]\nmessages = 5\nexternal_fraction = 0.0\n",
        )
        .expect("a valid scenario");
        let mut world = World::new(
            Engine::new(1, false),
            Network::new(1, 5, 0, 0),
            Bugs::default(),
        );
        build(&mut world, &scenario);
        world.run_until(Instant::from_millis(660_000));
        let stored = |host: &str| -> Vec<String> {
            world
                .nodes
                .iter()
                .filter(|node| node.name == host)
                .filter_map(|node| match &node.kind {
                    NodeKind::Sluice(sluice) => Some(sluice),
                    _ => None,
                })
                .flat_map(|sluice| sluice.disk.durable.messages.values())
                .map(|message| String::from_utf8_lossy(&message.data).into_owned())
                .collect()
        };
        let backend = stored("be1.sluice.test");
        assert!(!backend.is_empty(), "nothing reached the backend");
        for message in &backend {
            let first = message.lines().next().unwrap_or_default();
            assert!(
                first.contains("(gw1.sluice.test [10.0.0.1])")
                    || first.contains("(gw2.sluice.test [10.0.0.2])"),
                "the backend's Received does not name its gateway: {first}"
            );
        }
        for message in stored("gw1.sluice.test") {
            let first = message.lines().next().unwrap_or_default();
            assert!(!first.contains(".sluice.test ["), "{first}");
        }
    }
}
