//! TCP mode: replays vectors' client lines to a live server (Sluice, Postfix,
//! Dovecot, any other) and holds its lines against the vectors' expectations.
//!
//! In process the replay is the session's driver and checks every byte; here the
//! server drives itself, so:
//! - a vector that scripts the driver (the clock, a store or credential answer, a
//!   fixture, a failed handshake) is skipped with its reason (`needs`);
//! - `S:` lines are matched as the protocols fix them, not byte for byte
//!   (`matching` says exactly what is compared);
//! - `S: <starttls>` is a real TLS handshake (`conn`), `D: tls established` then
//!   holds by itself, `D: peer closed` closes the client's side;
//! - `E:` checks observe the session's internals, which a live server does not
//!   show: noted in the transcript, not checked;
//! - `S: <nothing>` can only say that nothing is already waiting unread.
//!
//! Vectors log in as `alice` with the password `secret`; with `--user` and
//! `--password` those words (and their base64 in SASL PLAIN and LOGIN) are replaced
//! by a real account's in what is sent.

mod conn;
mod matching;
mod needs;

use needs::{Abilities, listeners_of, skip_reason};

use crate::escape::escape;
use crate::runner::{Failure, render_client_chunk, split_lines_keeping_ends};
use crate::vector::{Action, DriverInput, Expect, Listener, Vector};
use base64::Engine;
use conn::{Conn, Read1};
use matching::{Family, Group, Progress};
use std::net::SocketAddr;
use std::time::Duration;

/// The user name and password every vector logs in with.
const VECTOR_USER: &str = "alice";
const VECTOR_PASSWORD: &str = "secret";

/// A live run's settings, from `sluice-conform --connect ...`.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub address: SocketAddr,
    /// `smtp`, `lmtp`, `pop3` or `imap`.
    pub protocol: String,
    /// Only the vectors of this listener (e.g. `submission`), else all of the
    /// protocol's that suit the TLS mode.
    pub listener: Option<String>,
    pub implicit_tls: bool,
    /// A real account, replacing the vectors' `alice`/`secret`. `{n}` in the user
    /// name is replaced by the vector's number (`948` for `948-imap-append`), so
    /// that each vector can have a fresh account: vectors assume an empty mailbox,
    /// and what one leaves behind (an APPEND, a CREATE) would meet the next.
    pub account: Option<(String, String)>,
    /// How long each connection and each read may take.
    pub timeout: Duration,
}

/// What became of one vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveResult {
    Passed,
    Failed(Failure),
    Skipped(String),
}

#[derive(Clone, Debug)]
pub struct LiveOutcome {
    pub name: String,
    pub result: LiveResult,
    /// What was sent and received, up to the first failure.
    pub transcript: String,
}

/// Why the options cannot be used.
pub fn validate(options: &LiveOptions) -> Result<(), String> {
    let Some(listeners) = listeners_of(&options.protocol) else {
        return Err(format!(
            "unknown protocol `{}` (expected smtp, lmtp, pop3 or imap)",
            options.protocol
        ));
    };
    if let Some(name) = &options.listener
        && !listeners
            .iter()
            .any(|listener| listener.to_string() == *name)
    {
        let names: Vec<String> = listeners.iter().map(ToString::to_string).collect();
        return Err(format!(
            "listener `{name}` is not one of {}'s: {}",
            options.protocol,
            names.join(", ")
        ));
    }
    Ok(())
}

/// Whether `vector` belongs to this run (its protocol and, if given, listener).
pub fn selects(options: &LiveOptions, vector: &Vector) -> bool {
    listeners_of(&options.protocol).is_some_and(|listeners| listeners.contains(&vector.listener))
        && options
            .listener
            .as_ref()
            .is_none_or(|name| vector.listener.to_string() == *name)
}

/// Replays one vector against the live server.
pub fn run_one(vector: &Vector, options: &LiveOptions) -> LiveOutcome {
    let can = Abilities {
        account: options.account.is_some(),
        implicit_tls: options.implicit_tls,
    };
    let mut replay = LiveReplay {
        vector,
        options,
        family: family(vector.listener),
        transcript: Vec::new(),
        tags: Vec::new(),
        last_verb: String::new(),
        current_line: 0,
    };
    let result = match skip_reason(vector, can) {
        Some(reason) => LiveResult::Skipped(reason),
        None => match replay.execute() {
            Ok(()) => LiveResult::Passed,
            Err(failure) => {
                replay.note(format!(
                    "!! FAILED at line {}: {}",
                    failure.line, failure.message
                ));
                LiveResult::Failed(failure)
            }
        },
    };
    let mut transcript = replay.transcript.join("\n");
    transcript.push('\n');
    LiveOutcome {
        name: vector.name(),
        result,
        transcript,
    }
}

/// `{5}` or `{5+}` (the vector's user name's length) becomes the real user's
/// length, `{6}` (the password's) the real password's; anything else stays.
fn relength_literal(word: &[u8], user: &str, password: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(word);
    let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return word.to_vec();
    };
    let (count, plus) = match inner.strip_suffix('+') {
        Some(count) => (count, "+"),
        None => (inner, ""),
    };
    let length = match count.parse::<usize>() {
        Ok(n) if n == VECTOR_USER.len() => user.len(),
        Ok(n) if n == VECTOR_PASSWORD.len() => password.len(),
        _ => return word.to_vec(),
    };
    format!("{{{length}{plus}}}").into_bytes()
}

/// The user name for `vector`: `{n}` replaced by the vector's number.
pub fn account_user(template: &str, vector: &Vector) -> String {
    let name = vector.name();
    let number = name.split('-').next().unwrap_or_default();
    template.replace("{n}", number)
}

fn family(listener: Listener) -> Family {
    if listener.is_pop3() {
        Family::Pop3
    } else if listener.is_imap() {
        Family::Imap
    } else {
        Family::Smtp
    }
}

struct LiveReplay<'a> {
    vector: &'a Vector,
    options: &'a LiveOptions,
    family: Family,
    transcript: Vec<String>,
    /// IMAP: the tags sent so far, which mark completions.
    tags: Vec<String>,
    /// The verb of the last command sent.
    last_verb: String,
    current_line: usize,
}

type Checked<T = ()> = Result<T, Failure>;

impl LiveReplay<'_> {
    fn note(&mut self, line: impl Into<String>) {
        self.transcript.push(line.into());
    }

    fn fail<T>(&self, message: impl Into<String>) -> Checked<T> {
        Err(Failure {
            line: self.current_line,
            message: message.into(),
        })
    }

    fn execute(&mut self) -> Checked {
        let vector = self.vector;
        let mut conn = match Conn::open(
            self.options.address,
            self.options.timeout,
            self.options.implicit_tls,
        ) {
            Ok(conn) => conn,
            Err(error) => {
                return self.fail(format!(
                    "cannot connect to {}: {error}",
                    self.options.address
                ));
            }
        };
        let mut group: Vec<(usize, &Expect)> = Vec::new();
        let mut chunk = Vec::new();
        for step in &vector.steps {
            if let Action::Expect(expect @ (Expect::Reply(_) | Expect::Line(_))) = &step.action {
                group.push((step.line, expect));
                continue;
            }
            self.settle(&mut conn, std::mem::take(&mut group))?;
            self.current_line = step.line;
            match &step.action {
                Action::Send { bytes, flush } => {
                    chunk.extend_from_slice(bytes);
                    if *flush {
                        let bytes = self.substitute(&std::mem::take(&mut chunk));
                        self.send(&mut conn, &bytes)?;
                    }
                }
                Action::Expect(Expect::Nothing) => {
                    if conn.has_buffered() {
                        return self.fail("expected nothing yet, but the server has sent more");
                    }
                }
                Action::Expect(Expect::Close) => self.expect_close(&mut conn)?,
                Action::Expect(Expect::StartTls) => {
                    if let Err(error) = conn.start_tls(self.options.address) {
                        return self.fail(format!("the TLS handshake failed: {error}"));
                    }
                    self.note("S: <starttls> (handshake done)");
                }
                Action::Expect(_) => {}
                Action::Driver(input) => self.driver(&mut conn, input)?,
                Action::Check(check) => {
                    self.note(format!("E: {check:?} (not observable on a live server)"));
                }
                Action::Advance(_) => {
                    return self.fail("internal: a vector that moves the clock was not skipped");
                }
            }
        }
        self.current_line = vector.steps.last().map_or(0, |step| step.line);
        self.settle(&mut conn, group)
    }

    fn driver(&mut self, conn: &mut Conn, input: &DriverInput) -> Checked {
        match input {
            DriverInput::TlsEstablished => {
                if !conn.is_tls() {
                    return self.fail("`D: tls established` without a `S: <starttls>` before it");
                }
                Ok(())
            }
            // The server checks the credentials and opens the maildrop itself.
            DriverInput::Credentials(_) | DriverInput::Maildrop(_) => Ok(()),
            DriverInput::PeerClosed => {
                self.note("D: peer closed (the client shuts down its side)");
                conn.close_write()
                    .or_else(|error| self.fail(format!("closing the client side: {error}")))
            }
            other => self.fail(format!("internal: `{other:?}` was not skipped")),
        }
    }

    /// Replaces the vectors' account with the real one in what the client sends.
    fn substitute(&self, bytes: &[u8]) -> Vec<u8> {
        let Some((user, password)) = &self.options.account else {
            return bytes.to_vec();
        };
        let user = &account_user(user, self.vector);
        let b64 = |text: &[u8]| base64::engine::general_purpose::STANDARD.encode(text);
        let plain = |user: &str, password: &str| b64(format!("\0{user}\0{password}").as_bytes());
        let swaps = [
            (VECTOR_USER.to_string(), user.clone()),
            (VECTOR_PASSWORD.to_string(), password.clone()),
            (plain(VECTOR_USER, VECTOR_PASSWORD), plain(user, password)),
            (b64(VECTOR_USER.as_bytes()), b64(user.as_bytes())),
            (b64(VECTOR_PASSWORD.as_bytes()), b64(password.as_bytes())),
        ];
        let mut out = Vec::with_capacity(bytes.len());
        for (line, terminated) in split_lines_keeping_ends(bytes) {
            let body = &line[..line.len() - if terminated { 2 } else { 0 }];
            let mut swapped = false;
            let mut words: Vec<Vec<u8>> = body
                .split(|&b| b == b' ')
                .map(
                    |word| match swaps.iter().find(|(from, _)| from.as_bytes() == word) {
                        Some((_, to)) => {
                            swapped = true;
                            to.as_bytes().to_vec()
                        }
                        None => word.to_vec(),
                    },
                )
                .collect();
            // IMAP LOGIN may send the account as literals (`a LOGIN {5}`, then
            // `alice {6}`, then `secret`): a literal announced on a LOGIN line or
            // beside a replaced word, of the vector's user or password length, is
            // taken to carry it, and announces the real one's length instead.
            let login = words.iter().any(|w| w.eq_ignore_ascii_case(b"LOGIN"));
            if (login || swapped)
                && let Some(last) = words.last_mut()
            {
                *last = relength_literal(last, user, password);
            }
            out.extend(words.join(&b' '));
            if terminated {
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    fn send(&mut self, conn: &mut Conn, bytes: &[u8]) -> Checked {
        for line in render_client_chunk(bytes) {
            self.note(line);
        }
        for (line, _) in split_lines_keeping_ends(bytes) {
            let mut words = line
                .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
                .filter(|word| !word.is_empty());
            let first = words
                .next()
                .map(|w| String::from_utf8_lossy(w).into_owned());
            let second = words
                .next()
                .map(|w| String::from_utf8_lossy(w).into_owned());
            match self.family {
                Family::Imap => {
                    if let Some(tag) = first {
                        self.tags.push(tag);
                    }
                    self.last_verb = second.unwrap_or_default().to_ascii_uppercase();
                }
                Family::Smtp | Family::Pop3 => {
                    self.last_verb = first.unwrap_or_default().to_ascii_uppercase();
                }
            }
        }
        conn.send(bytes)
            .or_else(|error| self.fail(format!("sending to the server: {error}")))
    }

    /// Reads what a run of `S:` lines expects and checks it.
    fn settle(&mut self, conn: &mut Conn, expected: Vec<(usize, &Expect)>) -> Checked {
        let Some(&(first_line, _)) = expected.first() else {
            return Ok(());
        };
        self.current_line = first_line;
        let group = Group {
            family: self.family,
            expected,
            last_verb: self.last_verb.clone(),
            tags: &self.tags,
        };
        let mut received: Vec<Vec<u8>> = Vec::new();
        let mut shown = Vec::new();
        let mut ended = None;
        while group.progress(&received) == Progress::More {
            match conn.read_line() {
                Ok(Read1::Line(line)) => {
                    shown.push(format!("S: {}", escape(&line)));
                    received.push(line);
                }
                Ok(Read1::Closed) => {
                    shown.push("S: <close>".to_string());
                    break;
                }
                Err(error) => {
                    ended = Some(format!(
                        "waited {:?} for the server: {error}",
                        self.options.timeout
                    ));
                    break;
                }
            }
        }
        let verdict = group.check(&received);
        self.transcript.extend(shown);
        match (verdict, ended) {
            (Ok(()), _) => Ok(()),
            (Err((line, message)), None) => Err(Failure { line, message }),
            (Err((line, message)), Some(ended)) => Err(Failure {
                line,
                message: format!("{message} ({ended})"),
            }),
        }
    }

    /// `S: <close>`: the server closes; IMAP may say untagged things first (BYE).
    fn expect_close(&mut self, conn: &mut Conn) -> Checked {
        loop {
            match conn.read_line() {
                Ok(Read1::Closed) => {
                    self.note("S: <close>");
                    return Ok(());
                }
                Ok(Read1::Line(line)) => {
                    self.note(format!("S: {}", escape(&line)));
                    if self.family != Family::Imap || !line.starts_with(b"* ") {
                        return self.fail(format!(
                            "expected the server to close, but it sent `{}`",
                            escape(&line)
                        ));
                    }
                }
                Err(error) => {
                    return self.fail(format!("expected the server to close: {error}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_vectors_account_is_replaced_by_the_real_one() {
        let vector = Vector::parse(
            Path::new("948-imap-append.vector"),
            "# t\nproves: RFC 1 §1\nlistener: imaps\nS: * OK\n",
        )
        .unwrap();
        let options = LiveOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 9)),
            protocol: "imap".into(),
            listener: None,
            implicit_tls: true,
            account: Some(("u{n}@x.test".into(), "pw".into())),
            timeout: Duration::from_secs(1),
        };
        let replay = LiveReplay {
            vector: &vector,
            options: &options,
            family: Family::Imap,
            transcript: Vec::new(),
            tags: Vec::new(),
            last_verb: String::new(),
            current_line: 0,
        };
        let sent = replay.substitute(
            b"a LOGIN alice secret\r\nb AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nc LOGIN alicex secrets",
        );
        let literal =
            replay.substitute(b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\nb APPEND x {5}\r\n");
        let plain = base64::engine::general_purpose::STANDARD.encode(b"\0u948@x.test\0pw");
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            format!(
                "a LOGIN u948@x.test pw\r\nb AUTHENTICATE PLAIN {plain}\r\nc LOGIN alicex secrets"
            )
        );
        assert_eq!(
            String::from_utf8(literal).unwrap(),
            "a LOGIN {11+}\r\nu948@x.test {2+}\r\npw\r\nb APPEND x {5}\r\n"
        );
    }
}
