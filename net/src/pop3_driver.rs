//! Runs one POP3 connection: socket bytes through core's `Pop3Session`, its
//! requests answered from the store (credentials through the process's login
//! guard, the INBOX listing under a per-user maildrop lock, message bodies read in
//! chunks, deletions removed durably at QUIT) and its deadlines slept on. The
//! session decides every response; this file only carries bytes and does I/O.

use crate::clock;
use crate::login::Logins;
use crate::maybe_tls::{Handshake, MaybeTls};
use crate::store::{Store, StoreError, StoredMessage};
use sluice_core::login::LoginProtocol;
use sluice_core::machine::{Machine, Token};
use sluice_core::mailbox::INBOX;
use sluice_core::message::with_return_path;
use sluice_core::pop3::{
    CommitOutcome, Credentials, Input, MaildropEntry, MaildropOutcome, MessageData, MessageRef,
    Output, Pop3Config, Pop3Session, SessionEvent,
};
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Client input read at once; POP3 commands are short, so this is only ever
/// pipelined commands (the session bounds what it holds).
const READ_BUFFER: usize = 16 * 1024;

/// How much of a message body one chunk carries: the session holds one chunk, so
/// this is the memory a message read costs, whatever the message's size.
const CHUNK: usize = 64 * 1024;

/// The maildrops locked by live sessions of this process (RFC 1939 §8: one
/// session per maildrop). A lock is released when its guard is dropped, so a
/// session that ends any way at all (QUIT, a broken connection, a panic) frees it.
#[derive(Clone, Debug, Default)]
pub struct MaildropLocks(Arc<Mutex<HashSet<String>>>);

/// A held maildrop lock.
#[derive(Debug)]
pub struct MaildropLock {
    locks: MaildropLocks,
    user: String,
}

impl MaildropLocks {
    /// The lock of `user`'s maildrop, or None while another session holds it.
    pub fn try_lock(&self, user: &str) -> Option<MaildropLock> {
        let key = user.to_ascii_lowercase();
        if !self.held().insert(key.clone()) {
            return None;
        }
        Some(MaildropLock {
            locks: self.clone(),
            user: key,
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set is consistent between calls: a poisoned lock still holds it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.locks.held().remove(&self.user);
    }
}

/// What every POP3 session of a node shares.
pub struct Pop3Context {
    pub store: Store,
    pub tls: tokio_rustls::TlsAcceptor,
    pub logins: Logins,
    pub locks: MaildropLocks,
}

impl std::fmt::Debug for Pop3Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Context").finish_non_exhaustive()
    }
}

/// An open maildrop: the lock, and the listing the session numbers messages by.
struct OpenMaildrop {
    user: String,
    messages: Vec<StoredMessage>,
    _lock: MaildropLock,
}

/// The answer to the one request the session waits on, with the maildrop when
/// the request opened one.
struct Answer {
    input: Input,
    opened: Option<OpenMaildrop>,
}

type PendingAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A message being read: its token and the chunks a reading task sends.
struct Reading {
    token: Token,
    chunks: mpsc::Receiver<MessageData>,
}

struct Driver<S> {
    stream: MaybeTls<S>,
    session: Pop3Session,
    pending: Option<PendingAnswer>,
    reading: Option<Reading>,
    maildrop: Option<OpenMaildrop>,
    out: Vec<u8>,
    client: SocketAddr,
    context: Arc<Pop3Context>,
    shutdown: watch::Receiver<bool>,
    shutdown_told: bool,
}

/// Drives one POP3 session until it closes. Call it inside the session's span.
pub async fn drive<S>(
    stream: MaybeTls<S>,
    config: Pop3Config,
    client: SocketAddr,
    context: Arc<Pop3Context>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut driver = Driver {
        stream,
        session: Pop3Session::new(clock::now(), config),
        pending: None,
        reading: None,
        maildrop: None,
        out: Vec::new(),
        client,
        context,
        shutdown,
        shutdown_told: false,
    };
    driver.run().await;
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self) {
        let mut buffer = vec![0u8; READ_BUFFER];
        while self.carry_out().await {
            let deadline = self.session.next_deadline();
            let wants_input = self.session.wants_input();
            tokio::select! {
                answer = wait_for(&mut self.pending) => {
                    self.pending = None;
                    if let Some(opened) = answer.opened {
                        self.maildrop = Some(opened);
                    }
                    self.tell(answer.input);
                }
                data = next_chunk(&mut self.reading) => {
                    let Some(token) = self.reading.as_ref().map(|reading| reading.token) else {
                        continue;
                    };
                    if matches!(data, MessageData::End | MessageData::Failed) {
                        self.reading = None;
                    }
                    self.tell(Input::MessageData { token, data });
                }
                read = self.stream.read(&mut buffer), if wants_input => {
                    let input = match read {
                        Ok(0) => Input::PeerClosed,
                        Ok(count) => Input::Bytes(buffer[..count].to_vec()),
                        Err(error) => {
                            tracing::debug!(%error, "read failed");
                            Input::PeerClosed
                        }
                    };
                    self.tell(input);
                }
                () = clock::sleep_until(deadline) => self.tell(Input::Tick),
                () = shutdown_requested(&mut self.shutdown), if !self.shutdown_told => {
                    self.shutdown_told = true;
                    self.tell(Input::Shutdown);
                }
            }
        }
        // The lock goes with the session: released before the socket's goodbye.
        self.maildrop = None;
        if let Err(error) = self.stream.shutdown().await {
            tracing::debug!(%error, "shutdown failed");
        }
    }

    fn tell(&mut self, input: Input) {
        self.session.handle(clock::now(), input);
    }

    /// Carries out everything the session asked for; false once it has closed.
    async fn carry_out(&mut self) -> bool {
        while let Some(output) = self.session.poll() {
            match output {
                Output::Send(bytes) => {
                    self.out.extend_from_slice(&bytes);
                    // A long message is written as it streams, not gathered.
                    if self.out.len() >= CHUNK {
                        self.flush().await;
                    }
                }
                Output::StartTls => {
                    // The +OK must be on the wire before the handshake starts.
                    if self.flush().await {
                        self.start_tls().await;
                    }
                }
                Output::CheckCredentials { token, credentials } => {
                    self.pending = Some(self.check_credentials(token, credentials));
                }
                Output::OpenMaildrop { token, user } => {
                    self.pending = Some(self.open_maildrop(token, user));
                }
                Output::ReadMessage { token, index, .. } => self.read_message(token, index),
                Output::StopReading { token } => {
                    if self.reading.as_ref().is_some_and(|r| r.token == token) {
                        // Dropping the receiver ends the reading task at its next send.
                        self.reading = None;
                    }
                }
                Output::CommitDeletions { token, messages } => {
                    self.pending = Some(self.commit_deletions(token, &messages));
                }
                Output::Close => {
                    self.flush().await;
                    self.maildrop = None;
                    return false;
                }
                Output::Event(event) => log_event(&event),
            }
        }
        self.flush().await;
        !self.session.is_closed()
    }

    /// Writes what the session sent; a broken connection is reported to the session.
    async fn flush(&mut self) -> bool {
        let written = self.stream.write_out(&mut self.out).await;
        if !written {
            self.tell(Input::PeerClosed);
        }
        written
    }

    async fn start_tls(&mut self) {
        let deadline = self.session.next_deadline();
        let input = match self.stream.start_tls(&self.context.tls, deadline).await {
            Handshake::Established => Input::TlsEstablished,
            Handshake::Failed => Input::TlsFailed,
            Handshake::TimedOut => Input::Tick,
        };
        self.tell(input);
    }

    fn check_credentials(&self, token: Token, credentials: Credentials) -> PendingAnswer {
        let store = self.context.store.clone();
        let logins = self.context.logins.clone();
        let address = self.client.ip();
        Box::pin(async move {
            let outcome = logins
                .check_password(&store, LoginProtocol::Pop3, credentials, address)
                .await;
            Answer {
                input: Input::CredentialsChecked { token, outcome },
                opened: None,
            }
        })
    }

    /// Locks the maildrop first, so that two sessions never list it at once; the
    /// lock is dropped again if the listing fails.
    fn open_maildrop(&self, token: Token, user: String) -> PendingAnswer {
        let store = self.context.store.clone();
        let locks = self.context.locks.clone();
        Box::pin(async move {
            let Some(lock) = locks.try_lock(&user) else {
                return Answer {
                    input: Input::MaildropOpened {
                        token,
                        outcome: MaildropOutcome::Locked,
                    },
                    opened: None,
                };
            };
            match list_inbox(&store, &user).await {
                Ok((messages, entries)) => Answer {
                    input: Input::MaildropOpened {
                        token,
                        outcome: MaildropOutcome::Opened(entries),
                    },
                    opened: Some(OpenMaildrop {
                        user,
                        messages,
                        _lock: lock,
                    }),
                },
                Err(error) => {
                    tracing::warn!(%error, "cannot list the maildrop");
                    Answer {
                        input: Input::MaildropOpened {
                            token,
                            outcome: MaildropOutcome::TemporaryFailure,
                        },
                        opened: None,
                    }
                }
            }
        })
    }

    /// Starts a task that sends the message's chunks; the channel holds one chunk
    /// ahead, so memory stays bounded while the client reads slowly.
    fn read_message(&mut self, token: Token, index: usize) {
        let (sender, chunks) = mpsc::channel(1);
        self.reading = Some(Reading { token, chunks });
        let message = self
            .maildrop
            .as_ref()
            .and_then(|maildrop| maildrop.messages.get(index))
            .cloned();
        let store = self.context.store.clone();
        tokio::spawn(async move {
            let Some(message) = message else {
                let _ = sender.send(MessageData::Failed).await;
                return;
            };
            if let Err(error) = send_message(&store, &message, &sender).await {
                tracing::warn!(%error, uid = message.uid, "cannot read a message");
                let _ = sender.send(MessageData::Failed).await;
            }
        });
    }

    fn commit_deletions(&self, token: Token, messages: &[MessageRef]) -> PendingAnswer {
        let store = self.context.store.clone();
        let listed = self.maildrop.as_ref().map(|maildrop| {
            let uids: Vec<u32> = messages
                .iter()
                .filter_map(|message| maildrop.messages.get(message.index))
                .map(|message| message.uid)
                .collect();
            (maildrop.user.clone(), uids)
        });
        let wanted = messages.len();
        Box::pin(async move {
            let outcome = match listed {
                Some((user, uids)) if uids.len() == wanted => {
                    match store.remove_messages(&user, INBOX, &uids).await {
                        Ok(_) => CommitOutcome::Done,
                        Err(error) => {
                            tracing::error!(%error, "deletions not committed");
                            CommitOutcome::Failed
                        }
                    }
                }
                _ => CommitOutcome::Failed,
            };
            Answer {
                input: Input::DeletionsCommitted { token, outcome },
                opened: None,
            }
        })
    }
}

/// The INBOX oldest first (by UID), with the listing the session takes: a unique
/// id `<uidvalidity>.<uid>` and the size a client receives, Return-Path included.
async fn list_inbox(
    store: &Store,
    user: &str,
) -> Result<(Vec<StoredMessage>, Vec<MaildropEntry>), StoreError> {
    let status = store.folder_status(user, INBOX).await?;
    let mut messages = store.folder_messages(user, INBOX).await?;
    messages.sort_by_key(|message| message.uid);
    let entries = messages
        .iter()
        .map(|message| MaildropEntry {
            uid: format!("{}.{}", status.uidvalidity, message.uid),
            size: client_size(message),
        })
        .collect();
    Ok((messages, entries))
}

/// The size LIST reports: the stored bytes (CRLF already: SMTP refuses bare LF
/// and accepted messages are stored as received) and the Return-Path field a
/// reader gets before them.
fn client_size(message: &StoredMessage) -> u64 {
    let field = with_return_path(&message.reverse_path, b"");
    message.size + field.len() as u64
}

/// Sends a message's bytes in chunks of at most [`CHUNK`] (the Return-Path field
/// before the first), then `End`. Inline bodies are small (the store's inline
/// limit); a body in a file is read a chunk at a time, never whole. Stops early,
/// without error, when the session no longer wants the chunks (TOP, a close).
async fn send_message(
    store: &Store,
    message: &StoredMessage,
    sender: &mpsc::Sender<MessageData>,
) -> Result<(), StoreError> {
    let mut chunks = ChunkSender {
        sender,
        reverse_path: &message.reverse_path,
        first: true,
    };
    if store.blob_is_inline(&message.blob).await? == Some(false) {
        let path = store.blob_path(&message.blob).ok_or(StoreError::Invalid {
            what: "blob name",
            reason: message.blob.clone(),
        })?;
        let io_error = |source| StoreError::Blob {
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            // Fill the chunk, so that the first one holds any Return-Path field name whole.
            while filled < CHUNK {
                let count = file.read(&mut chunk[filled..]).await.map_err(io_error)?;
                if count == 0 {
                    break;
                }
                filled += count;
            }
            chunk.truncate(filled);
            let last = filled < CHUNK;
            if !chunks.send(chunk).await {
                return Ok(());
            }
            if last {
                break;
            }
        }
    } else {
        let body = store.read_blob(&message.blob).await?;
        if body.is_empty() && !chunks.send(Vec::new()).await {
            return Ok(());
        }
        for part in body.chunks(CHUNK) {
            if !chunks.send(part.to_vec()).await {
                return Ok(());
            }
        }
    }
    let _ = sender.send(MessageData::End).await;
    Ok(())
}

/// Sends chunks to the session, the entry's Return-Path field before the first.
struct ChunkSender<'a> {
    sender: &'a mpsc::Sender<MessageData>,
    reverse_path: &'a str,
    first: bool,
}

impl ChunkSender<'_> {
    /// False once the session dropped its end (it stopped reading or closed).
    async fn send(&mut self, bytes: Vec<u8>) -> bool {
        let bytes = if std::mem::take(&mut self.first) {
            with_return_path(self.reverse_path, &bytes).into_owned()
        } else {
            bytes
        };
        if bytes.is_empty() {
            return true;
        }
        self.sender.send(MessageData::Chunk(bytes)).await.is_ok()
    }
}

async fn wait_for(pending: &mut Option<PendingAnswer>) -> Answer {
    match pending {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn next_chunk(reading: &mut Option<Reading>) -> MessageData {
    match reading {
        Some(reading) => reading
            .chunks
            .recv()
            .await
            // The task ended without End: it failed or panicked.
            .unwrap_or(MessageData::Failed),
        None => std::future::pending().await,
    }
}

fn log_event(event: &SessionEvent) {
    match event {
        SessionEvent::Connected => tracing::info!("connected"),
        SessionEvent::TlsStarted => tracing::info!("tls started"),
        SessionEvent::LoginSucceeded { mechanism, user } => {
            tracing::info!(mechanism, user, "authenticated");
        }
        SessionEvent::LoginFailed { mechanism, user } => {
            tracing::warn!(mechanism, ?user, "authentication failed");
        }
        SessionEvent::MaildropOpened {
            user,
            messages,
            octets,
        } => tracing::info!(user, messages, octets, "maildrop opened"),
        SessionEvent::MaildropRefused { user, reason } => {
            tracing::info!(user, ?reason, "maildrop refused");
        }
        SessionEvent::DeletionsCommitted { count } => {
            tracing::info!(count, "deletions committed");
        }
        SessionEvent::DeletionsFailed { count } => tracing::warn!(count, "deletions failed"),
        SessionEvent::CommandRejected { verb } => tracing::debug!(verb, "command rejected"),
        SessionEvent::Disconnected { reason } => tracing::info!(?reason, "disconnected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maildrop_lock_is_exclusive_until_dropped() {
        let locks = MaildropLocks::default();
        let first = locks.try_lock("alice@example.test");
        assert!(first.is_some());
        assert!(locks.try_lock("Alice@Example.test").is_none());
        assert!(locks.try_lock("bob@example.test").is_some());
        drop(first);
        assert!(locks.try_lock("alice@example.test").is_some());
    }
}
