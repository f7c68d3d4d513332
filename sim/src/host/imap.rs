//! Drives core's `ImapSession` for one IMAP connection of the host that holds the
//! mailboxes, as net's IMAP driver does: carries its bytes, checks credentials
//! against the directory, and answers its mailbox requests from the durable store
//! through core's `imap::backend::answer` (`mailbox_backend.rs`). A request that
//! changes the mailboxes is a write on the simulated disk, answered only once its
//! fsync completes, so an OK the client hears is durable; one that only reads is
//! answered at once from what is durable. Every decision is the session's.
//!
//! The deliberate bugs of retrieval live here and in `durability.rs`, never in core.

use super::io::HostIo;
use super::store::Write;
use super::{SluiceHost, Waiter};
use sluice_core::imap::request::{MailboxAnswer, MailboxRefusal, MailboxRequest};
use sluice_core::imap::{ImapSession, Input, Limits, Output, SessionConfig, TlsMode};
use sluice_core::machine::{Machine, Token};

/// A mailbox answer made when its write became durable, for the world to carry to
/// the session of connection `conn`.
#[derive(Debug)]
pub struct ImapAnswer {
    pub conn: u64,
    pub input: Input,
}

/// Whether answering `request` changes the mailboxes (a write on the disk), or
/// only reads them. I/O: which requests need a transaction, as net's store has.
pub fn changes_mailboxes(request: &MailboxRequest) -> bool {
    match request {
        MailboxRequest::Select { .. }
        | MailboxRequest::ListMailboxes { .. }
        | MailboxRequest::Status { .. }
        | MailboxRequest::FetchMetadata { .. }
        | MailboxRequest::FetchContent { .. }
        | MailboxRequest::Changes { .. } => false,
        MailboxRequest::Create { .. }
        | MailboxRequest::Delete { .. }
        | MailboxRequest::Rename { .. }
        | MailboxRequest::Subscribe { .. }
        | MailboxRequest::Unsubscribe { .. }
        | MailboxRequest::Append { .. }
        | MailboxRequest::Store { .. }
        | MailboxRequest::Copy { .. }
        | MailboxRequest::Move { .. }
        | MailboxRequest::Expunge { .. } => true,
    }
}

impl SluiceHost {
    /// A new IMAP session at `now` on the host's clock. The simulation has no TLS,
    /// so LOGIN is allowed in plain text (as a loopback deployment may configure).
    pub fn new_imap_session(&self, now: sluice_core::time::Instant) -> ImapSession {
        let config = SessionConfig {
            hostname: self.hostname.to_string(),
            tls: TlsMode::Unavailable,
            plaintext_auth: true,
            limits: Limits::default(),
        };
        ImapSession::new(now, config)
    }

    /// Feeds the session of connection `conn` and carries out what it asks;
    /// whether it closed.
    pub fn step_imap(
        &mut self,
        io: &mut dyn HostIo,
        conn: u64,
        session: &mut ImapSession,
        input: Option<Input>,
    ) -> bool {
        if let Some(input) = input {
            session.handle(io.local_now(), input);
        }
        let mut closed = false;
        while let Some(output) = session.poll() {
            let answer = match output {
                Output::Send(bytes) => {
                    io.send_imap(conn, bytes);
                    None
                }
                Output::Close => {
                    closed = true;
                    None
                }
                Output::StartTls => Some(Input::TlsFailed),
                Output::CheckCredentials { token, credentials } => {
                    let outcome = self.check_credentials(&credentials);
                    Some(Input::CredentialsChecked { token, outcome })
                }
                Output::Mailbox {
                    token,
                    user,
                    request,
                } => self
                    .mailbox_request(io, conn, token, &user, request)
                    .map(|answer| Input::MailboxAnswered { token, answer }),
                Output::Event(_) => None,
            };
            if let Some(answer) = answer {
                session.handle(io.local_now(), answer);
            }
        }
        closed
    }

    /// A read is answered now from the durable store; a change is submitted as a
    /// write and answered when its fsync completes (`synced`), unless the disk
    /// refuses it now or a deliberate bug answers early.
    fn mailbox_request(
        &mut self,
        io: &mut dyn HostIo,
        conn: u64,
        token: Token,
        user: &str,
        request: MailboxRequest,
    ) -> Option<MailboxAnswer> {
        let now_ms = i64::try_from(io.local_now().as_millis()).unwrap_or(i64::MAX);
        let bugs = io.bugs();
        // The deliberate bug: MOVE carried out as COPY, the originals left behind.
        let request = match request {
            MailboxRequest::Move { from, to, uids } if bugs.move_keeps_original => {
                MailboxRequest::Copy { from, to, uids }
            }
            other => other,
        };
        if !changes_mailboxes(&request) {
            return Some(self.disk.durable.answer_imap(user, request, now_ms));
        }
        // The deliberate bug: a flag change answered from a scratch copy before
        // its write is durable, so a crash in between loses what was answered OK.
        let early = (bugs.ack_flags_before_durability
            && matches!(request, MailboxRequest::Store { .. }))
        .then(|| {
            self.disk
                .durable
                .scratch_copy()
                .answer_imap(user, request.clone(), now_ms)
        });
        let text = format!("{} imap {} {}", io.name(), user, request_name(&request));
        let Ok(write) = self.disk.submit(Write::Imap {
            user: user.to_owned(),
            request,
            now_ms,
        }) else {
            io.count_fault("disk_full_refusal");
            return Some(MailboxAnswer::Refused(MailboxRefusal::Unavailable));
        };
        self.waiters.insert(
            write,
            Waiter::Imap {
                conn,
                token,
                answered: early.is_some(),
            },
        );
        io.record(&format!("{text} write {write}"));
        io.fsync(write);
        early
    }
}

/// The request's name for the trace.
fn request_name(request: &MailboxRequest) -> &'static str {
    match request {
        MailboxRequest::Select { .. } => "SELECT",
        MailboxRequest::ListMailboxes { .. } => "LIST",
        MailboxRequest::Status { .. } => "STATUS",
        MailboxRequest::Create { .. } => "CREATE",
        MailboxRequest::Delete { .. } => "DELETE",
        MailboxRequest::Rename { .. } => "RENAME",
        MailboxRequest::Subscribe { .. } => "SUBSCRIBE",
        MailboxRequest::Unsubscribe { .. } => "UNSUBSCRIBE",
        MailboxRequest::Append { .. } => "APPEND",
        MailboxRequest::FetchMetadata { .. } => "FETCH",
        MailboxRequest::FetchContent { .. } => "FETCH-CONTENT",
        MailboxRequest::Store { .. } => "STORE",
        MailboxRequest::Copy { .. } => "COPY",
        MailboxRequest::Move { .. } => "MOVE",
        MailboxRequest::Expunge { .. } => "EXPUNGE",
        MailboxRequest::Changes { .. } => "CHANGES",
    }
}
