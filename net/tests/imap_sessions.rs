//! Sessions that share a mailbox, against the real store on every SQL engine
//! (RFC 9051 §7.5.1), with core's mailbox model as the oracle: two and three
//! `ImapSession`s take turns at random commands (and mail arrives between them),
//! once answered by the SQL store through net's `StoreBackend` and once by core's
//! reference model; every session must see exactly the same dialogue both times.
//! What a session may report when (EXISTS, EXPUNGE, VANISHED, FETCH FLAGS), its
//! sequence numbers and the UIDs it is given are thereby the model's, on SQLite,
//! PostgreSQL and MariaDB alike.
//!
//! Also here: the store's change announcements, which wake IDLE, reach listeners
//! of the same process and, through the database, of other processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, TestDatabase};
use proptest::prelude::*;
use sluice_core::fuzzing::imap_store::TestStore;
use sluice_core::imap::{
    CredentialOutcome, ImapSession, Input, MailboxAnswer, Output, SessionConfig, TlsMode, backend,
};
use sluice_core::machine::Machine;
use sluice_core::mailbox::Operation;
use sluice_core::node::{IncomingMessage, RoutedRecipient};
use sluice_core::time::Instant;
use sluice_net::imap_backend::StoreBackend;
use sluice_net::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DOMAIN: &str = "sluice.test";
const SENDER: &str = "sender@remote.test";
/// Every answer's "now", and every delivery's internal date, on both sides.
const NOW_MS: i64 = 1_700_000_000_000;

static USERS: AtomicU64 = AtomicU64::new(0);

/// One turn of the dialogue.
#[derive(Clone, Debug)]
enum Step {
    /// Session `0` sends this command line (or lines).
    Command(usize, String),
    /// Mail arrives in INBOX from outside (SMTP/LMTP acceptance).
    Deliver(u8),
}

/// Commands that change and read a shared mailbox; sequence numbers and UIDs
/// small enough to hit real messages often and missing ones sometimes.
fn command() -> impl Strategy<Value = String> {
    let flag = prop_oneof![
        Just("\\Seen"),
        Just("\\Deleted"),
        Just("\\Flagged"),
        Just("$Work")
    ];
    let mode = prop_oneof![Just("+FLAGS"), Just("-FLAGS"), Just("FLAGS.SILENT")];
    let folder = prop_oneof![Just("INBOX"), Just("Archive"), Just("Work")];
    prop_oneof![
        4 => Just("NOOP".to_owned()),
        3 => Just("SELECT INBOX".to_owned()),
        1 => Just("EXAMINE INBOX".to_owned()),
        1 => Just("SELECT Archive".to_owned()),
        1 => Just("ENABLE CONDSTORE".to_owned()),
        1 => Just("ENABLE QRESYNC".to_owned()),
        3 => Just("FETCH 1:* (UID FLAGS)".to_owned()),
        2 => Just("UID FETCH 1:* (FLAGS MODSEQ RFC822.SIZE)".to_owned()),
        1 => (1..4u32).prop_map(|seq| format!("FETCH {seq} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")),
        4 => (1..5u32, mode.clone(), flag.clone())
            .prop_map(|(seq, mode, flag)| format!("STORE {seq} {mode} ({flag})")),
        2 => (1..6u32, mode, flag).prop_map(|(uid, mode, flag)| format!("UID STORE {uid} {mode} ({flag})")),
        2 => Just("EXPUNGE".to_owned()),
        1 => (1..6u32).prop_map(|uid| format!("UID EXPUNGE {uid}")),
        2 => (1..4u32, folder.clone()).prop_map(|(seq, to)| format!("COPY {seq} {to}")),
        2 => (1..4u32, folder.clone()).prop_map(|(seq, to)| format!("MOVE {seq} {to}")),
        1 => (1..6u32, folder.clone()).prop_map(|(uid, to)| format!("UID MOVE {uid} {to}")),
        2 => Just("SEARCH UNSEEN".to_owned()),
        1 => Just("UID SEARCH SUBJECT message".to_owned()),
        1 => folder.clone().prop_map(|name| format!("STATUS {name} (MESSAGES UIDNEXT UNSEEN DELETED HIGHESTMODSEQ)")),
        1 => Just("CREATE Work".to_owned()),
        1 => Just("APPEND INBOX (\\Seen) {21+}\r\nSubject: appended\r\n\r\n".to_owned()),
        1 => Just("IDLE\r\nDONE".to_owned()),
        1 => Just("CLOSE".to_owned()),
        1 => Just("UNSELECT".to_owned()),
    ]
}

fn steps(sessions: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => (0..sessions, command()).prop_map(|(session, line)| Step::Command(session, line)),
        1 => any::<u8>().prop_map(Step::Deliver),
    ];
    proptest::collection::vec(step, 10..40)
}

/// Who answers the sessions' mailbox requests.
enum Side {
    Model(TestStore),
    Sql(Store),
}

impl Side {
    async fn answer(
        &mut self,
        user: &str,
        request: sluice_core::imap::MailboxRequest,
    ) -> MailboxAnswer {
        match self {
            Side::Model(store) => store.answer(user, request),
            Side::Sql(store) => {
                let mut backend = StoreBackend {
                    store: store.clone(),
                };
                backend::answer(&mut backend, user, request, NOW_MS).await
            }
        }
    }

    async fn deliver(&mut self, user: &str, number: u8, queue_id: &str) {
        let body = format!("From: {SENDER}\r\nSubject: message {number}\r\n\r\nbody {number}\r\n");
        match self {
            Side::Model(store) => {
                store.deliver_from(user, SENDER, body.as_bytes());
            }
            Side::Sql(store) => {
                let message = IncomingMessage::new(
                    queue_id,
                    &format!("<{SENDER}>"),
                    NOW_MS,
                    vec![RoutedRecipient::local(user, user)],
                    body.into_bytes(),
                );
                store.accept(&message).await.expect("accepted");
            }
        }
    }
}

/// Sessions of one user, each logged in, and what each was sent.
struct Dialogue {
    side: Side,
    user: String,
    sessions: Vec<ImapSession>,
    transcripts: Vec<String>,
    deliveries: u32,
}

impl Dialogue {
    async fn new(side: Side, user: &str, count: usize) -> Dialogue {
        let mut dialogue = Dialogue {
            side,
            user: user.to_owned(),
            sessions: Vec::new(),
            transcripts: vec![String::new(); count],
            deliveries: 0,
        };
        for index in 0..count {
            let mut config = SessionConfig::new("imap.sluice.test", TlsMode::Unavailable);
            config.plaintext_auth = true;
            dialogue
                .sessions
                .push(ImapSession::new(Instant::from_millis(1_000), config));
            dialogue.run(index, "l LOGIN user secret\r\n").await;
        }
        dialogue
    }

    /// Feeds one session's input and answers everything it asks, in order.
    async fn run(&mut self, index: usize, text: &str) {
        let now = Instant::from_millis(2_000);
        let mut inputs = vec![Input::Bytes(text.as_bytes().to_vec())];
        while let Some(input) = inputs.pop() {
            self.sessions[index].handle(now, input);
            while let Some(output) = self.sessions[index].poll() {
                match output {
                    Output::Send(bytes) => {
                        self.transcripts[index].push_str(&String::from_utf8_lossy(&bytes));
                    }
                    Output::CheckCredentials { token, .. } => {
                        inputs.push(Input::CredentialsChecked {
                            token,
                            outcome: CredentialOutcome::Valid {
                                identity: self.user.clone(),
                            },
                        })
                    }
                    Output::Mailbox {
                        token,
                        user,
                        request,
                    } => {
                        let answer = self.side.answer(&user, request).await;
                        inputs.push(Input::MailboxAnswered { token, answer });
                    }
                    Output::StartTls | Output::Close | Output::Event(_) => {}
                }
            }
        }
    }

    async fn play(&mut self, steps: &[Step]) {
        for (number, step) in steps.iter().enumerate() {
            match step {
                Step::Command(index, line) => {
                    let index = index % self.sessions.len();
                    self.run(index, &format!("t{number} {line}\r\n")).await;
                }
                Step::Deliver(number) => {
                    self.deliveries += 1;
                    let queue_id = format!("{}-{}", self.user, self.deliveries);
                    let user = self.user.clone();
                    self.side.deliver(&user, *number, &queue_id).await;
                    // The driver's hint that the mailbox changed, to every session.
                    for index in 0..self.sessions.len() {
                        self.sessions[index]
                            .handle(Instant::from_millis(2_000), Input::MailboxChanged);
                    }
                }
            }
        }
        // Every session catches up at the end: what it then knows must agree too.
        for index in 0..self.sessions.len() {
            self.run(index, "z NOOP\r\n").await;
        }
    }
}

/// Runs `steps` for `sessions` sessions against the model and against `store`,
/// and requires the same dialogue of every session.
async fn same_as_model(
    store: &Store,
    sessions: usize,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let user = format!("user{}@{DOMAIN}", USERS.fetch_add(1, Ordering::Relaxed));
    let add = Operation::AddUser {
        user: user.clone(),
        uidvalidity_base: 1000,
    };
    store.apply(&add).await.expect("user added");
    let mut model = TestStore::default();
    model.apply(&add).expect("user added to the model");

    let mut expected = Dialogue::new(Side::Model(model), &user, sessions).await;
    expected.play(steps).await;
    let mut actual = Dialogue::new(Side::Sql(store.clone()), &user, sessions).await;
    actual.play(steps).await;
    for (index, (want, got)) in expected
        .transcripts
        .iter()
        .zip(&actual.transcripts)
        .enumerate()
    {
        prop_assert!(
            !got.contains("SERVERBUG") && !got.contains("UNAVAILABLE"),
            "session {index} met a store failure:\n{got}"
        );
        prop_assert_eq!(want, got, "session {} differs from the model", index);
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Cases per engine: SQLite is quick; a server engine pays round trips.
fn cases(engine: Engine) -> u32 {
    match engine {
        Engine::Sqlite => 48,
        Engine::Postgres | Engine::Mysql => 16,
    }
}

fn sessions_agree_with_the_model(engine: Engine, sessions: usize) {
    let runtime = runtime();
    let Some(database) = runtime.block_on(TestDatabase::create(engine)) else {
        return;
    };
    let store = runtime.block_on(async {
        let store = database.open().await;
        store.add_domain(DOMAIN).await.expect("domain");
        store
    });
    let config = ProptestConfig {
        cases: cases(engine),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in steps(sessions))| {
        runtime.block_on(same_as_model(&store, sessions, &steps))?;
    });
}

#[test]
fn two_sessions_on_sqlite_see_what_the_model_says() {
    sessions_agree_with_the_model(Engine::Sqlite, 2);
}

#[test]
fn three_sessions_on_sqlite_see_what_the_model_says() {
    sessions_agree_with_the_model(Engine::Sqlite, 3);
}

#[test]
fn two_sessions_on_postgres_see_what_the_model_says() {
    sessions_agree_with_the_model(Engine::Postgres, 2);
}

#[test]
fn three_sessions_on_postgres_see_what_the_model_says() {
    sessions_agree_with_the_model(Engine::Postgres, 3);
}

#[test]
fn two_sessions_on_mariadb_see_what_the_model_says() {
    sessions_agree_with_the_model(Engine::Mysql, 2);
}

#[test]
fn three_sessions_on_mariadb_see_what_the_model_says() {
    sessions_agree_with_the_model(Engine::Mysql, 3);
}

/// How long a test waits for an announcement before failing: a bound on a
/// failure, not a wait for success (that returns as soon as it is heard).
const HEARING_BOUND: Duration = Duration::from_secs(20);

/// A change committed through one store wakes a listener of another store on the
/// same database: PostgreSQL's notifications, or the poll of SQLite and MariaDB.
fn another_process_is_heard(engine: Engine) {
    runtime().block_on(async {
        let Some(database) = TestDatabase::create(engine).await else {
            return;
        };
        let here = database.open().await;
        let there = database.open().await;
        here.add_domain(DOMAIN).await.unwrap();
        let user = format!("idle@{DOMAIN}");
        here.apply(&Operation::AddUser {
            user: user.clone(),
            uidvalidity_base: 1000,
        })
        .await
        .unwrap();
        here.hear_other_processes(&database.url);
        let mut listener = here.watch().listen(&user);
        let message = IncomingMessage::new(
            "other-process-1",
            "<a@remote.test>",
            NOW_MS,
            vec![RoutedRecipient::local(&user, &user)],
            b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
        );
        there.accept(&message).await.unwrap();
        // Woken, and then the message is there: a wake-up before the delivery
        // (the poll's first look at a user announces it) does not end the wait.
        let heard = async {
            loop {
                listener.changed().await;
                if here.folder_status(&user, "INBOX").await.unwrap().messages == 1 {
                    break;
                }
            }
        };
        tokio::time::timeout(HEARING_BOUND, heard)
            .await
            .expect("the other store's delivery was heard");
    });
}

#[test]
fn a_delivery_by_another_process_is_heard_on_sqlite() {
    another_process_is_heard(Engine::Sqlite);
}

#[test]
fn a_delivery_by_another_process_is_heard_on_postgres() {
    another_process_is_heard(Engine::Postgres);
}

#[test]
fn a_delivery_by_another_process_is_heard_on_mariadb() {
    another_process_is_heard(Engine::Mysql);
}

#[test]
fn every_kind_of_mailbox_write_is_announced_in_process() {
    runtime().block_on(async {
        let database = TestDatabase::create(Engine::Sqlite).await.unwrap();
        let store = database.open().await;
        store.add_domain(DOMAIN).await.unwrap();
        let user = format!("writes@{DOMAIN}");
        store
            .apply(&Operation::AddUser {
                user: user.clone(),
                uidvalidity_base: 1000,
            })
            .await
            .unwrap();
        let mut listener = store.watch().listen(&user);
        let heard = |listener: &mut sluice_net::store::MailboxListener| {
            let mut waiting = std::pin::pin!(listener.changed());
            std::future::Future::poll(
                waiting.as_mut(),
                &mut std::task::Context::from_waker(std::task::Waker::noop()),
            )
            .is_ready()
        };
        assert!(!heard(&mut listener), "nothing happened yet");
        let message = IncomingMessage::new(
            "in-process-1",
            "<a@remote.test>",
            NOW_MS,
            vec![RoutedRecipient::local(&user, &user)],
            b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
        );
        store.accept(&message).await.unwrap();
        assert!(heard(&mut listener), "an accepted message");
        store
            .apply(&Operation::StoreFlags {
                user: user.clone(),
                folder: "INBOX".to_owned(),
                uids: vec![1],
                mode: sluice_core::mailbox::FlagMode::Add,
                flags: vec!["\\Seen".to_owned()],
                unchanged_since: None,
            })
            .await
            .unwrap();
        assert!(heard(&mut listener), "a flag change");
        store
            .append(&sluice_net::store::Append {
                user: &user,
                folder: "INBOX",
                flags: &[],
                internal_date_ms: NOW_MS,
                body: b"Subject: appended\r\n\r\nx\r\n",
            })
            .await
            .unwrap();
        assert!(heard(&mut listener), "an APPEND");
        store.remove_messages(&user, "INBOX", &[1]).await.unwrap();
        assert!(heard(&mut listener), "a POP3 deletion");
        assert!(!heard(&mut listener), "one announcement per write");
    });
}
