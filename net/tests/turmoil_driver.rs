//! net's real SMTP driver (`smtp_driver::drive`, which runs core's reception
//! machine) on turmoil's simulated network, under faults drawn from a seed:
//! partitions between clients and the server that come and heal, held links that
//! stall a dialogue mid-DATA, slow links and server crashes with restarts. The
//! clients retry like MTAs (on a lost connection, a timeout or a 4xx, the whole
//! message again). Checked after every run: every message a client got 250 for
//! was stored (no promise without durability), nothing was stored that no client
//! sent, and once the faults stop every message gets its 250. The same seed gives
//! the same run (turmoil's seed and epoch are fixed; the fault plan comes from the
//! seed), which a test checks by running one seed twice.
//!
//! `MemoryStore` here stands in for the SQL store (a write is "durable" when `accept`
//! returns); the SQL store itself is tested by store_suite and store_model, and
//! the real binary under SIGKILL by the end-to-end tests.

#![allow(clippy::unwrap_used)]

mod runtime_support;

use sluice_core::delivery::DeliveryPolicy;
use sluice_core::directory::{DirectoryAnswer, DirectoryQuery};
use sluice_core::node::PlacementPolicy;
use sluice_core::router::{MailboxAccess, RouterConfig};
use sluice_core::smtp::address::Domain;
use sluice_core::smtp::server::{Limits, ListenerKind, SessionConfig, TlsMode};
use sluice_net::incoming::ClientInfo;
use sluice_net::maybe_tls::MaybeTls;
use sluice_net::reception_store::ReceptionStore;
use sluice_net::smtp_driver::{self, DriverContext};
use sluice_net::store::{IncomingMessage, StoreError};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use turmoil::net::{TcpListener, TcpStream};

const SERVER: &str = "mx";
const PORT: u16 = 25;
const CLIENTS: usize = 3;
const MESSAGES_PER_CLIENT: usize = 6;
/// A client's pause between two messages, so that its traffic spans the faults.
const PAUSE: Duration = Duration::from_secs(2);

/// What the store holds: the marker (Subject) of every stored message, in order.
#[derive(Clone, Default)]
struct Stored(Arc<Mutex<Vec<String>>>);

/// One domain, `x.test`, with one user, `u@x.test`; every write is durable at once.
#[derive(Clone, Default)]
struct MemoryStore {
    stored: Stored,
}

// The trait asks for 'static futures, which `async fn` (borrowing self) cannot give.
#[allow(clippy::manual_async_fn)]
impl ReceptionStore for MemoryStore {
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
        async move { Ok(runtime_support::one_user_directory(query)) }
    }

    fn accept(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let stored = self.stored.clone();
        async move {
            let text = String::from_utf8_lossy(&message.data).into_owned();
            let marker = text
                .lines()
                .find_map(|line| line.strip_prefix("Subject: "))
                .unwrap_or("?")
                .to_owned();
            stored.0.lock().unwrap().push(marker);
            Ok(())
        }
    }
}

fn context(store: MemoryStore) -> Arc<DriverContext<MemoryStore>> {
    let dir = tempfile::tempdir().unwrap();
    let tls = sluice_net::tls::load(None, dir.path(), "mx.x.test").unwrap();
    Arc::new(DriverContext {
        store,
        tls: tokio_rustls::TlsAcceptor::from(tls.config),
        router: RouterConfig::new(Domain::parse("x.test").unwrap()),
        hostname: Domain::parse("mx.x.test").unwrap(),
        placement: PlacementPolicy {
            mailboxes: MailboxAccess::InProcess,
            delivery: DeliveryPolicy::default(),
        },
        delivery: None,
        logins: sluice_net::login::Logins::default(),
    })
}

fn session_config() -> SessionConfig {
    SessionConfig {
        kind: ListenerKind::Mx,
        hostname: Domain::parse("mx.x.test").unwrap(),
        tls: TlsMode::Unavailable,
        auth_requires_tls: true,
        limits: Limits::default(),
    }
}

/// The server host: accepts connections and drives each with net's driver.
async fn serve(context: Arc<DriverContext<MemoryStore>>) -> turmoil::Result {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    let (_never, shutdown) = tokio::sync::watch::channel(false);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(smtp_driver::drive(
            MaybeTls::Plain(stream),
            session_config(),
            ClientInfo::new(peer),
            Arc::clone(&context),
            shutdown.clone(),
        ));
    }
}

/// One SMTP reply's code, or an error when the connection ended first.
async fn reply(stream: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let code = line.get(..3).and_then(|code| code.parse().ok());
        if line.as_bytes().get(3) != Some(&b'-') {
            return code.ok_or_else(|| std::io::ErrorKind::InvalidData.into());
        }
    }
}

async fn expect(
    stream: &mut BufReader<TcpStream>,
    command: &str,
    wanted: u16,
) -> std::io::Result<u16> {
    if !command.is_empty() {
        stream.get_mut().write_all(command.as_bytes()).await?;
    }
    let code = reply(stream).await?;
    if code == wanted {
        Ok(code)
    } else {
        Err(std::io::Error::other(format!(
            "{command:?} answered {code}"
        )))
    }
}

/// One try at sending `marker`: the final reply's code after the data.
async fn one_try(marker: &str) -> std::io::Result<u16> {
    let stream = TcpStream::connect((SERVER, PORT)).await?;
    let mut stream = BufReader::new(stream);
    expect(&mut stream, "", 220).await?;
    expect(&mut stream, "EHLO client.test\r\n", 250).await?;
    expect(&mut stream, "MAIL FROM:<sender@client.test>\r\n", 250).await?;
    expect(&mut stream, "RCPT TO:<u@x.test>\r\n", 250).await?;
    expect(&mut stream, "DATA\r\n", 354).await?;
    let body = format!(
        "Subject: {marker}\r\n\r\n{}\r\n.\r\n",
        "line of text\r\n".repeat(50)
    );
    stream.get_mut().write_all(body.as_bytes()).await?;
    let code = reply(&mut stream).await?;
    let _ = stream.get_mut().write_all(b"QUIT\r\n").await;
    Ok(code)
}

/// What the clients saw: per marker, how many tries it took to get a 250.
type Promised = Rc<RefCell<BTreeMap<String, u32>>>;

/// A client: sends its messages one after the other, each until it gets a 250,
/// retrying after a lost connection, a timeout or a 4xx as an MTA would.
async fn client(name: String, promised: Promised) -> turmoil::Result {
    for n in 0..MESSAGES_PER_CLIENT {
        let marker = format!("{name}-{n}");
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = tokio::time::timeout(Duration::from_secs(120), one_try(&marker)).await;
            if matches!(outcome, Ok(Ok(250))) {
                promised.borrow_mut().insert(marker.clone(), tries);
                tokio::time::sleep(PAUSE).await;
                break;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
    Ok(())
}

/// A tiny seeded generator (SplitMix64) for the fault plan.
struct Faults(u64);

impl Faults {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// What one run produced, for the checks and for comparing two runs.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    promised: BTreeMap<String, u32>,
    stored: Vec<String>,
    faults: Vec<String>,
}

/// Runs the clients against the server with faults from `seed` during the first
/// `chaos` of simulated time, then with a healed network until every client is done.
fn run(seed: u64, chaos: Duration) -> Outcome {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .simulation_duration(Duration::from_secs(3_600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let store = MemoryStore::default();
    let stored = store.stored.clone();
    let server_context = context(store);
    sim.host(SERVER, move || serve(Arc::clone(&server_context)));
    let promised: Promised = Rc::default();
    let names: Vec<String> = (0..CLIENTS).map(|n| format!("c{n}")).collect();
    for name in &names {
        sim.client(name.as_str(), client(name.clone(), Rc::clone(&promised)));
    }
    let mut plan = Faults(seed);
    let mut faults = Vec::new();
    // Faults in force: (what, step at which it ends).
    let mut active: Vec<(String, u64)> = Vec::new();
    let mut step = 0_u64;
    loop {
        let in_chaos = sim.elapsed() < chaos;
        if in_chaos && plan.below(400) == 0 {
            let victim = names[usize::try_from(plan.below(CLIENTS as u64)).unwrap()].clone();
            let lasting = 50 + plan.below(3_000);
            match plan.below(4) {
                0 => {
                    sim.partition(victim.as_str(), SERVER);
                    faults.push(format!("{step}: partition {victim}"));
                    active.push((format!("partition {victim}"), step + lasting));
                }
                1 => {
                    // Stalls the link without losing anything: mid-DATA, mid-reply.
                    sim.hold(victim.as_str(), SERVER);
                    faults.push(format!("{step}: hold {victim}"));
                    active.push((format!("hold {victim}"), step + lasting));
                }
                2 => {
                    sim.set_link_latency(
                        victim.as_str(),
                        SERVER,
                        Duration::from_millis(plan.below(500)),
                    );
                    faults.push(format!("{step}: slow {victim}"));
                }
                _ => {
                    if !active.iter().any(|(what, _)| what == "crash") {
                        sim.crash(SERVER);
                        faults.push(format!("{step}: crash {SERVER}"));
                        active.push(("crash".to_owned(), step + lasting));
                    }
                }
            }
        }
        let (ending, lasting): (Vec<_>, Vec<_>) = active
            .drain(..)
            .partition(|(_, until)| *until <= step || !in_chaos);
        active = lasting;
        for (what, _) in ending {
            faults.push(format!("{step}: end {what}"));
            match what.split_once(' ') {
                Some(("partition", victim)) => sim.repair(victim, SERVER),
                Some(("hold", victim)) => sim.release(victim, SERVER),
                _ => sim.bounce(SERVER),
            }
        }
        step += 1;
        if sim.step().unwrap() {
            break;
        }
    }
    let promised = promised.borrow().clone();
    let stored = stored.0.lock().unwrap().clone();
    Outcome {
        promised,
        stored,
        faults,
    }
}

fn check(seed: u64, outcome: &Outcome) {
    let context = format!("seed {seed}, faults {:?}", outcome.faults);
    assert_eq!(
        outcome.promised.len(),
        CLIENTS * MESSAGES_PER_CLIENT,
        "every message gets its 250 once the faults stop; {context}"
    );
    for marker in outcome.promised.keys() {
        assert!(
            outcome.stored.contains(marker),
            "{marker} got a 250 but was not stored; {context}"
        );
    }
    for marker in &outcome.stored {
        assert!(
            outcome.promised.contains_key(marker),
            "{marker} was stored but never sent; {context}"
        );
    }
}

#[test]
fn promised_messages_are_stored_through_partitions_stalls_and_crashes() {
    let mut faulted = 0;
    for seed in 0..12 {
        let outcome = run(seed, Duration::from_secs(60));
        check(seed, &outcome);
        faulted += usize::from(!outcome.faults.is_empty());
    }
    assert!(
        faulted >= 8,
        "the fault plan injected too little: {faulted} of 12 runs"
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let first = run(7, Duration::from_secs(60));
    let second = run(7, Duration::from_secs(60));
    assert_eq!(first, second);
    let other = run(8, Duration::from_secs(60));
    assert_ne!(first.faults, other.faults);
}
