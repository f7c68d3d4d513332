//! Real SMTP clients driven from Rust: Python's smtplib (through
//! `tests/scripts/smtp_client.py`), swaks and curl. Each returns what the client saw
//! so the test, not the client, judges the server.

use crate::tools::{Finished, python_script, run};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How a client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    ImplicitTls,
}

/// The SASL mechanism, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Plain,
    Login,
}

/// One transaction to run with a real client.
#[derive(Clone, Debug)]
pub struct Submission<'a> {
    pub server: SocketAddr,
    pub security: Security,
    pub auth: Auth,
    pub user: &'a str,
    pub password: &'a str,
    pub from: &'a str,
    pub to: Vec<&'a str>,
    /// A file holding the message (CRLF line endings).
    pub message: Option<&'a Path>,
}

impl<'a> Submission<'a> {
    pub fn new(server: SocketAddr, from: &'a str, to: &'a str) -> Self {
        Submission {
            server,
            security: Security::Plain,
            auth: Auth::None,
            user: "",
            password: "",
            from,
            to: vec![to],
            message: None,
        }
    }
}

/// What smtplib saw, step by step: `(step, code, text)`.
#[derive(Clone, Debug)]
pub struct SmtplibReport {
    pub steps: Vec<(String, Option<u16>, String)>,
    pub raw: String,
}

impl SmtplibReport {
    /// The code of the first reply to `step` (`ehlo`, `starttls`, `auth`, `mail`, `data`...).
    pub fn code(&self, step: &str) -> Option<u16> {
        self.steps
            .iter()
            .find(|(name, _, _)| name == step)
            .and_then(|(_, code, _)| *code)
    }

    /// The codes of every reply to `step` (one per recipient for `rcpt`).
    pub fn codes(&self, step: &str) -> Vec<u16> {
        self.steps
            .iter()
            .filter(|(name, _, _)| name == step)
            .filter_map(|(_, code, _)| *code)
            .collect()
    }

    /// The last EHLO's keywords, upper-cased.
    pub fn extensions(&self) -> Vec<String> {
        self.steps
            .iter()
            .rev()
            .find(|(name, _, _)| name == "extensions")
            .map(|(_, _, text)| text.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A client-side error (connection refused, TLS failure...), if one happened.
    pub fn error(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|(name, _, _)| name == "error")
            .map(|(_, _, text)| text.as_str())
    }
}

/// Runs one transaction with Python's smtplib.
pub fn smtplib(submission: &Submission<'_>) -> anyhow::Result<SmtplibReport> {
    let mode = match submission.security {
        Security::Plain => "plain",
        Security::StartTls => "starttls",
        Security::ImplicitTls => "tls",
    };
    let mut args = vec![
        "--host".to_owned(),
        submission.server.ip().to_string(),
        "--port".to_owned(),
        submission.server.port().to_string(),
        "--mode".to_owned(),
        mode.to_owned(),
        "--from".to_owned(),
        submission.from.to_owned(),
    ];
    match submission.auth {
        Auth::None => {}
        Auth::Plain | Auth::Login => {
            let mechanism = if submission.auth == Auth::Plain {
                "PLAIN"
            } else {
                "LOGIN"
            };
            args.extend(
                [
                    "--auth",
                    mechanism,
                    "--user",
                    submission.user,
                    "--password",
                    submission.password,
                ]
                .map(str::to_owned),
            );
        }
    }
    for to in &submission.to {
        args.push("--to".to_owned());
        args.push((*to).to_owned());
    }
    if let Some(message) = submission.message {
        args.push("--message".to_owned());
        args.push(message.display().to_string());
    }
    let finished = python_script("smtp_client.py", &args)?;
    if finished.code != Some(0) && finished.code != Some(2) {
        anyhow::bail!(
            "smtp_client.py crashed ({:?}):\n{}\n{}",
            finished.code,
            finished.stdout,
            finished.stderr
        );
    }
    let steps = finished
        .stdout
        .lines()
        .filter_map(|line| {
            let (step, rest) = line.split_once(' ').unwrap_or((line, ""));
            let (code, text) = match rest.split_once(' ') {
                Some((code, text)) => match code.parse::<u16>() {
                    Ok(code) => (Some(code), text.to_owned()),
                    Err(_) => (None, rest.to_owned()),
                },
                None => (rest.parse::<u16>().ok(), String::new()),
            };
            (!step.is_empty()).then(|| (step.to_owned(), code, text))
        })
        .collect();
    Ok(SmtplibReport {
        steps,
        raw: format!("{}{}", finished.stdout, finished.stderr),
    })
}

/// Runs one transaction with swaks; its exit code is 0 only when the message was accepted.
pub fn swaks(submission: &Submission<'_>) -> anyhow::Result<Finished> {
    let mut args = vec![
        "--server".to_owned(),
        submission.server.to_string(),
        "--from".to_owned(),
        submission.from.to_owned(),
        "--to".to_owned(),
        submission.to.join(","),
        "--helo".to_owned(),
        "client.test".to_owned(),
        "--timeout".to_owned(),
        "30".to_owned(),
    ];
    match submission.security {
        Security::Plain => {}
        Security::StartTls => args.push("--tls".to_owned()),
        Security::ImplicitTls => args.push("--tls-on-connect".to_owned()),
    }
    match submission.auth {
        Auth::None => {}
        Auth::Plain | Auth::Login => {
            let mechanism = if submission.auth == Auth::Plain {
                "PLAIN"
            } else {
                "LOGIN"
            };
            args.extend(
                [
                    "--auth",
                    mechanism,
                    "--auth-user",
                    submission.user,
                    "--auth-password",
                    submission.password,
                ]
                .map(str::to_owned),
            );
        }
    }
    if let Some(message) = submission.message {
        args.push("--data".to_owned());
        args.push(message.display().to_string());
    }
    run("swaks", args, None, Duration::from_secs(60))
}

/// Runs one transaction with curl's SMTP; exit code 0 only when the message was accepted.
pub fn curl(submission: &Submission<'_>) -> anyhow::Result<Finished> {
    let scheme = match submission.security {
        Security::ImplicitTls => "smtps",
        Security::Plain | Security::StartTls => "smtp",
    };
    let mut args = vec![
        "--silent".to_owned(),
        "--show-error".to_owned(),
        "--max-time".to_owned(),
        "30".to_owned(),
        // The server's certificate is self-signed.
        "--insecure".to_owned(),
        "--verbose".to_owned(),
        "--url".to_owned(),
        format!("{scheme}://{}/client.test", submission.server),
        "--mail-from".to_owned(),
        submission.from.to_owned(),
    ];
    for to in &submission.to {
        args.push("--mail-rcpt".to_owned());
        args.push((*to).to_owned());
    }
    if submission.security == Security::StartTls {
        args.push("--ssl-reqd".to_owned());
    }
    match submission.auth {
        Auth::None => {}
        Auth::Plain | Auth::Login => {
            let mechanism = if submission.auth == Auth::Plain {
                "PLAIN"
            } else {
                "LOGIN"
            };
            args.push("--user".to_owned());
            args.push(format!("{}:{}", submission.user, submission.password));
            args.push("--login-options".to_owned());
            args.push(format!("AUTH={mechanism}"));
        }
    }
    if let Some(message) = submission.message {
        args.push("--upload-file".to_owned());
        args.push(message.display().to_string());
    }
    run("curl", args, None, Duration::from_secs(60))
}

/// How a POP3 client reaches the server: STLS on the pop3 listener, or implicit TLS
/// on pop3s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop3Security {
    Stls,
    ImplicitTls,
}

/// One POP3 session for Python's poplib (`tests/scripts/pop3_client.py`).
#[derive(Clone, Debug)]
pub struct Pop3Session<'a> {
    pub server: SocketAddr,
    pub security: Pop3Security,
    pub user: &'a str,
    pub password: &'a str,
    /// AUTH PLAIN (sent by hand: poplib has no AUTH) instead of USER/PASS.
    pub auth_plain: bool,
    /// Close the connection without QUIT at the end.
    pub drop_at_end: bool,
    /// stat, list, uidl, capa, rset, top:N:LINES, retr:N, dele:N, second.
    pub steps: Vec<String>,
}

/// One step's result: `ok` and its value (response text, "count octets", list lines
/// joined by `|`, or a message's bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pop3Step {
    pub step: String,
    pub ok: bool,
    pub value: Vec<u8>,
}

impl Pop3Step {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// Runs one POP3 session with poplib; every step's result in order, login first.
pub fn poplib(session: &Pop3Session<'_>) -> anyhow::Result<Vec<Pop3Step>> {
    let mut args = vec![
        "--host".to_owned(),
        session.server.ip().to_string(),
        "--port".to_owned(),
        session.server.port().to_string(),
        "--mode".to_owned(),
        match session.security {
            Pop3Security::Stls => "stls",
            Pop3Security::ImplicitTls => "tls",
        }
        .to_owned(),
        "--user".to_owned(),
        session.user.to_owned(),
        "--password".to_owned(),
        session.password.to_owned(),
        "--auth".to_owned(),
        if session.auth_plain { "plain" } else { "user" }.to_owned(),
        "--end".to_owned(),
        if session.drop_at_end { "drop" } else { "quit" }.to_owned(),
    ];
    args.extend(session.steps.iter().cloned());
    let finished = python_script("pop3_client.py", &args)?;
    if finished.code != Some(0) && finished.code != Some(2) {
        anyhow::bail!(
            "pop3_client.py crashed ({:?}):\n{}\n{}",
            finished.code,
            finished.stdout,
            finished.stderr
        );
    }
    finished
        .stdout
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let step = fields.next().unwrap_or_default().to_owned();
            let ok = fields.next() == Some("ok");
            let value = fields.next().unwrap_or_default();
            let is_message = step.starts_with("retr") || step.starts_with("top");
            let value = if ok && is_message {
                decode_hex(value)?
            } else {
                value.as_bytes().to_vec()
            };
            Ok(Pop3Step { step, ok, value })
        })
        .collect()
}

fn decode_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        anyhow::bail!("odd hex length");
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair)?;
            Ok(u8::from_str_radix(pair, 16)?)
        })
        .collect()
}

/// curl's POP3: `pop3://` with STLS required, or `pop3s://`; `path` is empty for a
/// listing or a message number to retrieve. Its exit code is 0 on success.
pub fn curl_pop3(
    server: SocketAddr,
    security: Pop3Security,
    user: &str,
    password: &str,
    path: &str,
) -> anyhow::Result<Finished> {
    let scheme = match security {
        Pop3Security::Stls => "pop3",
        Pop3Security::ImplicitTls => "pop3s",
    };
    let mut args = vec![
        "--silent".to_owned(),
        "--show-error".to_owned(),
        "--max-time".to_owned(),
        "30".to_owned(),
        "--insecure".to_owned(),
        "--user".to_owned(),
        format!("{user}:{password}"),
        "--url".to_owned(),
        format!("{scheme}://{server}/{path}"),
    ];
    if security == Pop3Security::Stls {
        args.push("--ssl-reqd".to_owned());
    }
    run("curl", args, None, Duration::from_secs(60))
}
