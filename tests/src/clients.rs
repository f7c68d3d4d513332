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
