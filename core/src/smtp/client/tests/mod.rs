//! Unit tests of the client session: a scripted server (one canned reply per command,
//! DATA body or BDAT chunk, in order) records C:/S: transcripts; `with_server` runs
//! the client against the real server session machine.

use super::*;
use crate::delivery::Diagnostic;
use crate::smtp::address::Domain;
use crate::time::Duration;
use std::sync::Arc;

mod auth;
mod dialogues;
mod failures;
mod with_server;

const REMOTE: &str = "mx.remote.example";

fn config(protocol: Protocol, tls: TlsPolicy) -> ClientConfig {
    ClientConfig {
        hostname: Domain::parse("client.example").unwrap(),
        protocol,
        tls,
        remote_host: REMOTE.to_owned(),
        auth: None,
        limits: Limits::default(),
    }
}

fn smtp() -> ClientConfig {
    config(Protocol::Smtp, TlsPolicy::Disabled)
}

fn recipient(address: &str) -> OutgoingRecipient {
    OutgoingRecipient {
        address: address.to_owned(),
        notify: None,
        orcpt: None,
    }
}

fn message(queue_id: &str, recipients: &[&str], body: &[u8]) -> OutgoingMessage {
    OutgoingMessage {
        queue_id: queue_id.to_owned(),
        reverse_path: Some("alice@example.org".to_owned()),
        recipients: recipients
            .iter()
            .map(|address| recipient(address))
            .collect(),
        ret: None,
        envid: None,
        body: Arc::from(body),
        eight_bit: false,
        smtputf8: false,
    }
}

/// An EHLO reply offering `keywords`.
fn ehlo(keywords: &[&str]) -> String {
    let mut lines = vec![format!("{REMOTE} greets client.example")];
    lines.extend(keywords.iter().map(|keyword| (*keyword).to_owned()));
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| format!("250{}{line}\r\n", if index == last { ' ' } else { '-' }))
        .collect()
}

/// What the scripted server is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Command,
    /// A DATA body, through the line holding ".".
    Data,
    /// A BDAT chunk of this many more octets.
    Chunk(usize),
}

/// A scripted server and driver around one client session.
struct Scripted {
    client: ClientSession,
    now: Instant,
    /// The server's replies, one per client unit, in order; the first is the greeting.
    replies: VecDeque<String>,
    /// How the driver answers `StartTls`.
    tls_succeeds: bool,
    /// Messages given on `Ready`; `Finish` once none is left.
    messages: VecDeque<OutgoingMessage>,
    /// Give `Written` after every drain that sent bytes.
    acknowledge_writes: bool,
    reading: Reading,
    unread: Vec<u8>,
    transcript: Vec<String>,
    reports: Vec<MessageReport>,
    events: Vec<ClientEvent>,
    starttls: Vec<(String, bool)>,
    sends: Vec<Vec<u8>>,
    outcome: Option<SessionOutcome>,
}

impl Scripted {
    fn new(config: ClientConfig, replies: &[&str]) -> Scripted {
        let now = Instant::from_millis(1_000);
        Scripted {
            client: ClientSession::new(now, config),
            now,
            replies: replies.iter().map(|reply| (*reply).to_owned()).collect(),
            tls_succeeds: true,
            messages: VecDeque::new(),
            acknowledge_writes: true,
            reading: Reading::Command,
            unread: Vec::new(),
            transcript: Vec::new(),
            reports: Vec::new(),
            events: Vec::new(),
            starttls: Vec::new(),
            sends: Vec::new(),
            outcome: None,
        }
    }

    /// Gives the first message up front, the others on `Ready`, greets and runs the
    /// dialogue until nothing more happens.
    fn run(mut self, messages: Vec<OutgoingMessage>) -> Scripted {
        self.messages = messages.into();
        if let Some(first) = self.messages.pop_front() {
            self.client.handle(self.now, Input::Message(first));
        }
        self.server_reply();
        self
    }

    /// Sends the next scripted reply, if any, and runs the client until it is quiet.
    fn server_reply(&mut self) {
        let Some(reply) = self.replies.pop_front() else {
            return;
        };
        for line in reply.split_terminator("\r\n") {
            self.transcript.push(format!("S: {line}"));
        }
        if self.reading == Reading::Command && reply.starts_with("354") {
            self.reading = Reading::Data;
        }
        self.input(Input::Bytes(reply.into_bytes()));
    }

    fn input(&mut self, input: Input) {
        self.client.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        let mut follow_ups = Vec::new();
        let mut wrote = false;
        let mut units = 0;
        while let Some(output) = self.client.poll() {
            match output {
                Output::Send(bytes) => {
                    wrote = true;
                    self.sends.push(bytes.clone());
                    self.unread.extend_from_slice(&bytes);
                    units += self.read_units();
                }
                Output::StartTls {
                    server_name,
                    verify,
                } => {
                    self.transcript
                        .push(format!("-- TLS handshake (verify: {verify}) --"));
                    self.starttls.push((server_name, verify));
                    follow_ups.push(if self.tls_succeeds {
                        Input::TlsEstablished
                    } else {
                        Input::TlsFailed
                    });
                }
                Output::Ready => follow_ups.push(match self.messages.pop_front() {
                    Some(message) => Input::Message(message),
                    None => Input::Finish,
                }),
                Output::Report(report) => self.reports.push(report),
                Output::Close(outcome) => {
                    assert!(self.outcome.is_none(), "closed twice");
                    self.transcript
                        .push(format!("-- close: {} --", describe_outcome(&outcome)));
                    self.outcome = Some(outcome);
                }
                Output::Event(event) => self.events.push(event),
            }
        }
        if wrote && self.acknowledge_writes {
            follow_ups.insert(0, Input::Written);
        }
        for input in follow_ups {
            self.input(input);
        }
        for _ in 0..units {
            self.server_reply();
        }
    }

    /// Splits what the client sent into units the server answers; returns how many
    /// complete units arrived.
    fn read_units(&mut self) -> usize {
        let mut units = 0;
        loop {
            match self.reading {
                Reading::Command | Reading::Data => {
                    let Some(end) = self.unread.windows(2).position(|pair| pair == b"\r\n") else {
                        return units;
                    };
                    let line = String::from_utf8_lossy(&self.unread[..end]).into_owned();
                    self.unread.drain(..end + 2);
                    self.transcript.push(format!("C: {line}"));
                    if self.reading == Reading::Data {
                        if line == "." {
                            self.reading = Reading::Command;
                            units += 1;
                        }
                        continue;
                    }
                    let words: Vec<&str> = line.split(' ').collect();
                    match words.as_slice() {
                        ["BDAT", size, ..] => {
                            self.reading = Reading::Chunk(size.parse().unwrap());
                        }
                        // Reading switches to Data when the scripted 354 is sent.
                        _ => units += 1,
                    }
                }
                Reading::Chunk(remaining) => {
                    if self.unread.len() < remaining {
                        return units;
                    }
                    let chunk: Vec<u8> = self.unread.drain(..remaining).collect();
                    for line in String::from_utf8_lossy(&chunk).split_inclusive("\r\n") {
                        self.transcript
                            .push(format!("C| {}", line.trim_end_matches("\r\n")));
                    }
                    self.reading = Reading::Command;
                    units += 1;
                }
            }
        }
    }

    fn tick_at_deadline(&mut self) {
        let deadline = self.client.next_deadline().expect("a deadline");
        assert!(deadline >= self.now);
        self.now = deadline;
        self.input(Input::Tick);
    }

    /// The transcript, the reports and the outcome, for a snapshot.
    fn render(&self) -> String {
        let mut text = self.transcript.join("\n");
        for report in &self.reports {
            text.push_str(&format!("\n== report {}", report.queue_id));
            for outcome in &report.recipients {
                text.push_str(&format!("\n   {}", describe(outcome)));
            }
        }
        text.push('\n');
        text
    }

    /// Everything the client sent, as text.
    fn sent(&self) -> String {
        String::from_utf8(self.sends.concat()).unwrap()
    }

    fn only_report(&self) -> &MessageReport {
        assert_eq!(self.reports.len(), 1, "{:?}", self.reports);
        &self.reports[0]
    }
}

fn describe_failure(failure: &Failure) -> String {
    let diagnostic = match &failure.diagnostic {
        Diagnostic::Reply(reply) => format!("reply {} {}", reply.code, reply.lines.join(" / ")),
        Diagnostic::Local(text) => format!("local: {text}"),
    };
    let remote = failure.remote_mta.as_deref().unwrap_or("-");
    format!("{} via {remote} ({diagnostic})", failure.status)
}

fn describe(outcome: &RecipientOutcome) -> String {
    match outcome {
        RecipientOutcome::Final(RecipientResult::Delivered {
            remote_mta,
            reply,
            notify_passed_on,
        }) => format!(
            "delivered via {} ({} {}), dsn passed on: {notify_passed_on}",
            remote_mta.as_deref().unwrap_or("-"),
            reply.code,
            reply.lines.join(" / ")
        ),
        RecipientOutcome::Final(RecipientResult::Ambiguous(failure)) => {
            format!("ambiguous {}", describe_failure(failure))
        }
        RecipientOutcome::Final(RecipientResult::Temporary(failure)) => {
            format!("temporary {}", describe_failure(failure))
        }
        RecipientOutcome::Final(RecipientResult::Permanent(failure)) => {
            format!("permanent {}", describe_failure(failure))
        }
        RecipientOutcome::Unresolved(failure) => {
            format!("unresolved {}", describe_failure(failure))
        }
    }
}

fn describe_outcome(outcome: &SessionOutcome) -> String {
    match outcome {
        SessionOutcome::Completed => "completed".to_owned(),
        SessionOutcome::Failed(failure) => format!(
            "failed {:?} {}",
            failure.kind,
            describe_failure(&failure.failure)
        ),
        SessionOutcome::RetryWithoutTls(failure) => format!(
            "retry without TLS {:?} {}",
            failure.kind,
            describe_failure(&failure.failure)
        ),
    }
}

/// Whether the outcome is a final result of this class: 'd'elivered, 't'emporary, 'p'ermanent, or 'u'nresolved.
fn kind_of(outcome: &RecipientOutcome) -> char {
    match outcome {
        RecipientOutcome::Final(RecipientResult::Delivered { .. }) => 'd',
        RecipientOutcome::Final(RecipientResult::Temporary(_) | RecipientResult::Ambiguous(_)) => {
            't'
        }
        RecipientOutcome::Final(RecipientResult::Permanent(_)) => 'p',
        RecipientOutcome::Unresolved(_) => 'u',
    }
}

fn kinds(report: &MessageReport) -> String {
    report.recipients.iter().map(kind_of).collect()
}

fn status(outcome: &RecipientOutcome) -> EnhancedStatus {
    match outcome.result() {
        RecipientResult::Delivered { .. } => EnhancedStatus::new(2, 0, 0),
        RecipientResult::Temporary(failure)
        | RecipientResult::Ambiguous(failure)
        | RecipientResult::Permanent(failure) => failure.status,
    }
}

fn failed_kind(scripted: &Scripted) -> Option<SessionFailureKind> {
    match &scripted.outcome {
        Some(SessionOutcome::Failed(failure)) => Some(failure.kind),
        _ => None,
    }
}

fn minutes(count: u64) -> Duration {
    Duration::from_mins(count)
}
