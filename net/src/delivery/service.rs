//! The delivery service: one task that owns core's queue machine, restores it from
//! the store at start, feeds it new messages and administrator requests, and carries
//! out what it asks for — delivery attempts, durable state changes with their
//! notices, removals — each on its own task, reporting back through a channel.
//! The queue's clock is the wall clock (milliseconds since the Unix epoch), so the
//! retry schedule it persists means the same after a restart.

use super::attempt::Deliverer;
use super::notices::NoticeWriter;
use crate::clock;
use crate::store::Store;
use sluice_core::delivery::{Failure, RecipientResult};
use sluice_core::machine::{Machine, Token};
use sluice_core::node::Envelope;
use sluice_core::queue::{Event, Input, Output, Queue, QueuedMessage};
use sluice_core::time::Instant;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Requests waiting for the service beyond which senders wait (back-pressure).
const COMMAND_DEPTH: usize = 4096;

/// What the rest of the node asks of the delivery service.
#[derive(Debug)]
pub enum Command {
    /// A message just made durable with recipients for the queue.
    Enqueue(QueuedMessage),
    /// Deferred recipients of one message (or of all) are due now.
    RetryNow(Option<String>),
    /// Remove a message without any notice.
    Delete(String),
    /// How many messages the queue holds (for the control socket and tests).
    Count(oneshot::Sender<usize>),
}

/// The handle through which sessions and administrators reach the service.
#[derive(Clone, Debug)]
pub struct DeliveryHandle {
    commands: mpsc::Sender<Command>,
}

impl DeliveryHandle {
    /// Hands a durable message to the queue. A message that cannot be handed over
    /// (the service is gone) is not lost: it is in the store and is restored at the
    /// next start.
    pub async fn enqueue(&self, message: QueuedMessage) {
        if self.commands.send(Command::Enqueue(message)).await.is_err() {
            tracing::warn!("the delivery service is not running; the message waits for a restart");
        }
    }

    pub async fn send(&self, command: Command) -> bool {
        self.commands.send(command).await.is_ok()
    }
}

/// What finished on a task the service started.
#[derive(Debug)]
enum Done {
    Attempt {
        token: Token,
        results: Vec<(String, RecipientResult)>,
    },
    Persist {
        token: Token,
        stored: bool,
        /// A notice stored with the write, with recipients for the queue.
        notice: Option<QueuedMessage>,
    },
}

/// Starts the service: restores the queue from `store`, then runs until `shutdown`.
pub async fn start(
    queue: Queue,
    store: Store,
    deliverer: Arc<Deliverer>,
    notices: Arc<NoticeWriter>,
    shutdown: watch::Receiver<bool>,
) -> Result<(DeliveryHandle, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let restored = store.queued_messages().await?;
    let (sender, commands) = mpsc::channel(COMMAND_DEPTH);
    let (done, finished) = mpsc::unbounded_channel();
    let service = Service {
        queue,
        store,
        deliverer,
        notices,
        seed: seed_from_clock(),
        done,
    };
    let task = tokio::spawn(service.run(restored, commands, finished, shutdown));
    Ok((DeliveryHandle { commands: sender }, task))
}

struct Service {
    queue: Queue,
    store: Store,
    deliverer: Arc<Deliverer>,
    notices: Arc<NoticeWriter>,
    /// Orders MX hosts of equal preference; a new value per attempt.
    seed: u64,
    /// Where tasks the service starts report back.
    done: mpsc::UnboundedSender<Done>,
}

fn now() -> Instant {
    Instant::from_millis(u64::try_from(clock::unix_millis()).unwrap_or(0))
}

/// The MX shuffle needs variety between attempts, not secrecy: the start time will do.
fn seed_from_clock() -> u64 {
    u64::try_from(clock::unix_millis()).unwrap_or(0) ^ u64::from(std::process::id())
}

impl Service {
    async fn run(
        mut self,
        restored: Vec<QueuedMessage>,
        mut commands: mpsc::Receiver<Command>,
        mut done: mpsc::UnboundedReceiver<Done>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let count = restored.len();
        for message in restored {
            self.queue.handle(now(), Input::Enqueue(message));
        }
        tracing::info!(messages = count, "queue restored");
        loop {
            let done_sender = self.done.clone();
            self.carry_out(&done_sender);
            let deadline = self.queue.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                Some(finished) = done.recv() => self.finished(finished),
                () = sleep_until_unix(deadline) => self.queue.handle(now(), Input::Tick),
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        // Attempts in flight are abandoned: their recipients are still pending or
        // deferred in the store and are tried again after the restart.
        tracing::info!("delivery service stopped");
    }

    fn command(&mut self, command: Command) {
        let input = match command {
            Command::Enqueue(message) => Input::Enqueue(message),
            Command::RetryNow(queue_id) => Input::RetryNow { queue_id },
            Command::Delete(queue_id) => Input::Delete { queue_id },
            Command::Count(reply) => {
                let _ = reply.send(self.queue.len());
                return;
            }
        };
        self.queue.handle(now(), input);
    }

    fn finished(&mut self, finished: Done) {
        match finished {
            Done::Attempt { token, results } => {
                self.queue
                    .handle(now(), Input::AttemptFinished { token, results });
            }
            Done::Persist {
                token,
                stored,
                notice,
            } => {
                let input = if stored {
                    Input::Persisted { token }
                } else {
                    Input::PersistFailed { token }
                };
                self.queue.handle(now(), input);
                if let Some(notice) = notice {
                    self.queue.handle(now(), Input::Enqueue(notice));
                }
            }
        }
    }

    fn carry_out(&mut self, done: &mpsc::UnboundedSender<Done>) {
        while let Some(output) = self.queue.poll() {
            match output {
                Output::StartAttempt {
                    token,
                    queue_id,
                    destination,
                    recipients,
                } => {
                    let Some(message) = self.queue.message(&queue_id) else {
                        // Never expected (the queue names only messages it holds), but
                        // an attempt must always be answered: a temporary failure.
                        let failure = Failure::local_error("the queue no longer holds the message");
                        let results = all_temporary(&recipients, &failure);
                        let _ = done.send(Done::Attempt { token, results });
                        continue;
                    };
                    let envelope = Envelope::of(message, &recipients);
                    self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let seed = self.seed;
                    let store = self.store.clone();
                    let deliverer = Arc::clone(&self.deliverer);
                    let done = done.clone();
                    let addresses = recipients.clone();
                    let attempt = async move {
                        match store.queued_message(&queue_id).await {
                            Ok(body) => {
                                let outgoing =
                                    envelope.into_outgoing(queue_id, body.data, body.smtputf8);
                                deliverer.attempt(&destination, outgoing, seed).await
                            }
                            Err(error) => {
                                tracing::warn!(%error, %queue_id, "cannot read a queued message");
                                let failure = Failure::local_error(&format!(
                                    "the queued message cannot be read: {error}"
                                ));
                                all_temporary(&recipients, &failure)
                            }
                        }
                    };
                    tokio::spawn(async move {
                        // The attempt runs on its own task so that a panic in it ends
                        // as a temporary failure reported to the queue, not as an
                        // attempt nobody answers.
                        let results = match tokio::spawn(attempt).await {
                            Ok(results) => results,
                            Err(error) => {
                                tracing::error!(%error, "a delivery attempt failed unexpectedly");
                                let failure =
                                    Failure::local_error("the delivery attempt ended unexpectedly");
                                all_temporary(&addresses, &failure)
                            }
                        };
                        let _ = done.send(Done::Attempt { token, results });
                    });
                }
                Output::Persist {
                    token,
                    queue_id,
                    changes,
                    notice,
                    remove,
                } => {
                    let store = self.store.clone();
                    let notices = Arc::clone(&self.notices);
                    let done = done.clone();
                    tokio::spawn(async move {
                        let outcome = notices
                            .persist(&store, &queue_id, &changes, notice, remove)
                            .await;
                        let (stored, notice) = match outcome {
                            Ok(notice) => (true, notice),
                            Err(error) => {
                                tracing::warn!(%error, %queue_id, "queue state not written; will retry");
                                (false, None)
                            }
                        };
                        let _ = done.send(Done::Persist {
                            token,
                            stored,
                            notice,
                        });
                    });
                }
                Output::Remove { queue_id } => {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        if let Err(error) = store.remove_queued(&queue_id).await {
                            // Harmless: the records stay final and are skipped at restore.
                            tracing::warn!(%error, %queue_id, "cannot remove a finished message");
                        }
                    });
                }
                Output::Refused { queue_id, reason } => {
                    tracing::warn!(%queue_id, ?reason, "the queue refused a message; it waits in the store for a restart");
                }
                Output::Event(event) => log_event(&event),
            }
        }
    }
}

/// Every recipient of an attempt with the same temporary failure.
fn all_temporary(recipients: &[String], failure: &Failure) -> Vec<(String, RecipientResult)> {
    recipients
        .iter()
        .map(|recipient| {
            (
                recipient.clone(),
                RecipientResult::Temporary(failure.clone()),
            )
        })
        .collect()
}

/// Sleeps until a queue deadline (Unix milliseconds); forever without one.
async fn sleep_until_unix(deadline: Option<Instant>) {
    let Some(deadline) = deadline else {
        return std::future::pending().await;
    };
    let wait = deadline.as_millis().saturating_sub(now().as_millis());
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

fn log_event(event: &Event) {
    match event {
        Event::Delivered {
            queue_id,
            recipient,
            remote_mta,
        } => {
            tracing::info!(%queue_id, %recipient, remote_mta = remote_mta.as_deref().unwrap_or("-"), "delivered")
        }
        Event::Deferred {
            queue_id,
            recipient,
            attempts,
            status,
            ..
        } => tracing::info!(%queue_id, %recipient, attempts, %status, "deferred"),
        Event::Failed {
            queue_id,
            recipient,
            status,
        } => tracing::info!(%queue_id, %recipient, %status, "failed"),
        Event::Ambiguous {
            queue_id,
            recipient,
            remote_mta,
        } => tracing::warn!(
            %queue_id,
            %recipient,
            remote_mta = remote_mta.as_deref().unwrap_or("-"),
            "connection lost after the end of data: the remote may hold the message; deferred"
        ),
        Event::AttemptTimedOut { queue_id, .. } => {
            tracing::warn!(%queue_id, "no result from a delivery attempt by its deadline; deferred")
        }
        Event::LateResult {
            queue_id,
            recipient,
            applied,
            ..
        } => tracing::info!(%queue_id, %recipient, applied, "late result of a superseded attempt"),
        Event::Expired {
            queue_id,
            recipient,
            status,
        } => tracing::info!(%queue_id, %recipient, %status, "expired"),
        Event::LoopDetected {
            queue_id,
            received_headers,
        } => tracing::warn!(%queue_id, received_headers, "mail loop: too many Received headers"),
        Event::NoticeQueued {
            queue_id,
            kind,
            recipients,
        } => tracing::info!(%queue_id, ?kind, recipients, "notice queued"),
        other => tracing::debug!(event = ?other, "queue"),
    }
}
