//! Runs one SMTP or LMTP client session on one connection: the core session's bytes
//! out, the server's bytes in, STARTTLS carried out with rustls, its deadlines slept
//! on. The session lives on its own task and takes messages as jobs: after each one
//! it reports, and while it is idle and healthy it waits in the [`Pool`] so that the
//! next attempt to the same host reuses the connection (RFC 5321 §4.1.1.5 allows
//! many transactions per session) until the session's idle deadline says QUIT.
//! Generic over the stream, so the same driver runs on TCP and simulated connections.

use super::tls::ClientTls;
use crate::clock;
use crate::maybe_tls::MaybeTls;
use rustls::pki_types::ServerName;
use sluice_core::delivery::TlsPolicy;
use sluice_core::machine::Machine;
use sluice_core::smtp::client::{
    ClientAuth, ClientConfig, ClientEvent, ClientSession, Input, MessageReport, OutgoingMessage,
    Output, Protocol, SessionOutcome,
};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::client::TlsStream;

const READ_BUFFER: usize = 16 * 1024;
/// Idle connections kept per host; more are closed.
const IDLE_PER_HOST: usize = 8;

/// What became of one message handed to a connection.
#[derive(Debug)]
pub(super) struct Delivered {
    pub(super) report: MessageReport,
    /// How the session ended, when it ended with this message (`None`: it is
    /// alive and was offered to the pool).
    pub(super) ended: Option<SessionOutcome>,
}

/// One message for a connection, and where its outcome goes.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) message: OutgoingMessage,
    pub(super) reply: oneshot::Sender<Delivered>,
}

/// Which connections may carry a message: same address, protocol, TLS policy, host
/// name (the TLS name and Remote-MTA) and credentials (an unauthenticated connection
/// must never carry a relay's mail, nor one relay account another's).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PoolKey {
    pub(super) address: SocketAddr,
    pub(super) protocol: Protocol,
    pub(super) tls: TlsPolicy,
    pub(super) host: String,
    pub(super) auth: Option<ClientAuth>,
}

/// Idle connections by host, each reachable through its job channel.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<mpsc::Sender<Job>>>>,
}

impl Pool {
    /// Hands `job` to an idle connection for `key`; gives it back when none takes it.
    pub(super) fn offer(&self, key: &PoolKey, mut job: Box<Job>) -> Result<(), Box<Job>> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                idle.get_mut(key).and_then(Vec::pop)
            };
            let Some(connection) = candidate else {
                return Err(job);
            };
            match connection.try_send(*job) {
                Ok(()) => return Ok(()),
                // Closed meanwhile (idle deadline, server gone): try the next one.
                Err(mpsc::error::TrySendError::Closed(back))
                | Err(mpsc::error::TrySendError::Full(back)) => job = Box::new(back),
            }
        }
    }

    fn park(&self, key: &PoolKey, jobs: mpsc::Sender<Job>) -> bool {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let parked = idle.entry(key.clone()).or_default();
        parked.retain(|sender| !sender.is_closed());
        if parked.len() >= IDLE_PER_HOST {
            return false;
        }
        parked.push(jobs);
        true
    }
}

/// Starts a session on `stream` (already connected) on its own task, beginning with
/// `first`. Every job gets exactly one reply: the session reports each message it is
/// given once.
pub(super) fn spawn<S>(
    stream: S,
    config: ClientConfig,
    first: Job,
    tls: ClientTls,
    pool: Arc<Pool>,
    key: PoolKey,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (jobs_sender, jobs) = mpsc::channel(1);
    let mut driver = Driver {
        stream: MaybeTls::Plain(stream),
        session: ClientSession::new(clock::now(), config),
        waiting: VecDeque::new(),
        report: None,
        jobs,
        jobs_sender: Some(jobs_sender),
        tls,
        pool,
        key,
    };
    tokio::spawn(async move {
        driver.give(first);
        driver.run().await;
    });
}

struct Driver<S> {
    stream: MaybeTls<S, TlsStream<S>>,
    session: ClientSession,
    /// Replies owed, in the order their messages were given.
    waiting: VecDeque<oneshot::Sender<Delivered>>,
    /// A report whose reply waits to learn whether the session lives on.
    report: Option<MessageReport>,
    jobs: mpsc::Receiver<Job>,
    /// Cloned into the pool while idle; dropped when the session ends.
    jobs_sender: Option<mpsc::Sender<Job>>,
    tls: ClientTls,
    pool: Arc<Pool>,
    key: PoolKey,
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn give(&mut self, job: Job) {
        self.waiting.push_back(job.reply);
        self.session
            .handle(clock::now(), Input::Message(job.message));
    }

    async fn run(&mut self) {
        let mut buffer = vec![0u8; READ_BUFFER];
        let mut idle = false;
        loop {
            match self.carry_out().await {
                Step::Closed => return,
                Step::Idle => idle = true,
                Step::Busy => {}
            }
            let deadline = self.session.next_deadline();
            tokio::select! {
                read = self.stream.read(&mut buffer) => {
                    let input = match read {
                        Ok(0) | Err(_) => Input::PeerClosed,
                        Ok(count) => Input::Bytes(buffer[..count].to_vec()),
                    };
                    self.session.handle(clock::now(), input);
                }
                job = self.jobs.recv(), if idle => {
                    idle = false;
                    match job {
                        Some(job) => self.give(job),
                        None => self.session.handle(clock::now(), Input::Finish),
                    }
                }
                () = clock::sleep_until(deadline) => self.session.handle(clock::now(), Input::Tick),
            }
        }
    }

    /// Performs every pending output. After the outputs of one round are written and
    /// flushed the session hears `Written`, which may release the next body block.
    async fn carry_out(&mut self) -> Step {
        let mut step = Step::Busy;
        loop {
            let mut wrote = false;
            while let Some(output) = self.session.poll() {
                match output {
                    Output::Send(bytes) => {
                        if self.stream.write_all(&bytes).await.is_err() {
                            self.session.handle(clock::now(), Input::PeerClosed);
                        } else {
                            wrote = true;
                        }
                    }
                    Output::StartTls {
                        server_name,
                        verify,
                    } => {
                        let flushed = self.stream.flush().await.is_ok();
                        let input = if flushed && self.start_tls(&server_name, verify).await {
                            Input::TlsEstablished
                        } else {
                            Input::TlsFailed
                        };
                        self.session.handle(clock::now(), input);
                    }
                    Output::Ready => {
                        self.answer(None);
                        step = self.go_idle();
                    }
                    Output::Report(report) => {
                        // Owed to the oldest waiting job; sent once we know whether
                        // the session goes on (Ready) or ends (Close).
                        self.answer(None);
                        self.report = Some(report);
                    }
                    Output::Close(outcome) => {
                        self.jobs_sender = None;
                        self.answer(Some(outcome.clone()));
                        let _ = self.stream.flush().await;
                        let _ = self.stream.shutdown().await;
                        // A job that slipped in after the last report is told so: its
                        // message was never given to the session.
                        self.jobs.close();
                        while let Ok(job) = self.jobs.try_recv() {
                            drop(job);
                        }
                        return Step::Closed;
                    }
                    Output::Event(event) => log_event(&event),
                }
            }
            if !wrote {
                return step;
            }
            let input = match self.stream.flush().await {
                Ok(()) => Input::Written,
                Err(_) => Input::PeerClosed,
            };
            self.session.handle(clock::now(), input);
        }
    }

    /// Sends the held report to its job, with the session's end if it ended.
    fn answer(&mut self, ended: Option<SessionOutcome>) {
        if let Some(report) = self.report.take()
            && let Some(reply) = self.waiting.pop_front()
        {
            let _ = reply.send(Delivered { report, ended });
        }
    }

    /// Offers the idle session to the pool; with no room it says QUIT.
    fn go_idle(&mut self) -> Step {
        let parked = self
            .jobs_sender
            .as_ref()
            .is_some_and(|sender| self.pool.park(&self.key, sender.clone()));
        if parked {
            Step::Idle
        } else {
            self.session.handle(clock::now(), Input::Finish);
            Step::Busy
        }
    }

    async fn start_tls(&mut self, server_name: &str, verify: bool) -> bool {
        let Ok(name) = ServerName::try_from(server_name.to_owned()) else {
            return false;
        };
        let Some(plain) = self.stream.take_plain() else {
            return false;
        };
        match self.tls.connector(verify).connect(name, plain).await {
            Ok(tls) => {
                self.stream = MaybeTls::Tls(Box::new(tls));
                true
            }
            Err(error) => {
                tracing::info!(%error, verify, "TLS handshake failed");
                false
            }
        }
    }
}

/// Where a round of outputs left the session.
enum Step {
    Busy,
    /// Waiting for a job in the pool.
    Idle,
    Closed,
}

fn log_event(event: &ClientEvent) {
    match event {
        ClientEvent::SessionFailed { kind } => tracing::info!(?kind, "delivery session failed"),
        other => tracing::debug!(event = ?other, "delivery session"),
    }
}
