//! The session against a test store wrapped around core's mailbox model: each
//! command and state, framing under any split, and whole dialogues as snapshots.

mod dialogues;
mod fetch;
mod search;
mod session;

use crate::fuzzing::imap_store::TestStore;
use crate::imap::{
    CredentialOutcome, ImapSession, Input, MailboxAnswer, Output, SessionConfig, TlsMode,
};
use crate::machine::Machine;
use crate::time::{Duration, Instant};

pub(super) const USER: &str = "alice@example.test";

/// A session, its store, and a driver that answers every request at once.
pub(super) struct Harness {
    pub(super) session: ImapSession,
    pub(super) store: TestStore,
    pub(super) now: Instant,
    /// Everything sent to the client, as text.
    pub(super) sent: String,
    pub(super) closed: bool,
    pub(super) starttls: bool,
    /// Answer mailbox requests (false: leave them unanswered).
    pub(super) answering: bool,
    pub(super) pending: Vec<Output>,
}

impl Harness {
    pub(super) fn new(tls: TlsMode, plaintext_auth: bool) -> Harness {
        let mut config = SessionConfig::new("imap.example.test", tls);
        config.plaintext_auth = plaintext_auth;
        Harness::with_config(config)
    }

    pub(super) fn with_config(config: SessionConfig) -> Harness {
        let now = Instant::from_millis(1_000);
        let mut harness = Harness {
            session: ImapSession::new(now, config),
            store: TestStore::with_user(USER),
            now,
            sent: String::new(),
            closed: false,
            starttls: false,
            answering: true,
            pending: Vec::new(),
        };
        harness.drain();
        harness
    }

    /// A plaintext-allowed session, logged in.
    pub(super) fn logged_in() -> Harness {
        let mut harness = Harness::new(TlsMode::Unavailable, true);
        harness.client("l LOGIN alice secret\r\n");
        assert!(harness.sent.contains("l OK"), "{}", harness.sent);
        harness.sent.clear();
        harness
    }

    pub(super) fn input(&mut self, input: Input) {
        self.session.handle(self.now, input);
        self.drain();
    }

    /// Sends client bytes; returns what the server sent in answer.
    pub(super) fn client(&mut self, text: &str) -> String {
        self.bytes(text.as_bytes())
    }

    pub(super) fn bytes(&mut self, bytes: &[u8]) -> String {
        let before = self.sent.len();
        self.input(Input::Bytes(bytes.to_vec()));
        self.sent[before..].to_owned()
    }

    /// Advances the clock and ticks.
    pub(super) fn wait(&mut self, duration: Duration) -> String {
        let before = self.sent.len();
        self.now = self.now + duration;
        self.input(Input::Tick);
        self.sent[before..].to_owned()
    }

    pub(super) fn drain(&mut self) {
        while let Some(output) = self.session.poll() {
            match output {
                Output::Send(bytes) => self.sent.push_str(&String::from_utf8_lossy(&bytes)),
                Output::Close => self.closed = true,
                Output::StartTls => self.starttls = true,
                Output::Event(_) => {}
                Output::CheckCredentials { token, credentials } => {
                    let outcome = if credentials.password == "secret" {
                        CredentialOutcome::Valid {
                            identity: USER.to_owned(),
                        }
                    } else {
                        CredentialOutcome::Invalid
                    };
                    self.session
                        .handle(self.now, Input::CredentialsChecked { token, outcome });
                }
                Output::Mailbox {
                    token,
                    user,
                    request,
                } if self.answering => {
                    let answer = self.store.answer(&user, request);
                    self.session
                        .handle(self.now, Input::MailboxAnswered { token, answer });
                }
                output @ Output::Mailbox { .. } => self.pending.push(output),
            }
        }
    }

    /// Answers a request left pending with this answer.
    pub(super) fn answer_pending(&mut self, answer: MailboxAnswer) {
        if let Some(Output::Mailbox { token, .. }) = self.pending.pop() {
            self.input(Input::MailboxAnswered { token, answer });
        }
    }
}
