//! Real IMAP clients driven from Rust: Python's imaplib (`tests/scripts/imap_client.py`,
//! a list of steps in, every raw response and imaplib's verdict out), imapclient from
//! PyPI (`tests/scripts/imapclient_session.py`), curl's imap:// and imaps://, mbsync,
//! fetchmail and neomutt. Each returns what the client saw or wrote, so the test, not
//! the client, judges the server. The servers' certificates are self-signed: the
//! Python clients skip the check, the others are given the certificate to trust.

use crate::tools::{Finished, run};
use anyhow::{Context, bail};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one client run may take before it is killed and the test fails.
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);

/// How an IMAP client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapSecurity {
    /// No TLS at all (to see what a server offers before STARTTLS).
    Plain,
    /// STARTTLS on the imap listener, first thing after the greeting.
    StartTls,
    /// Implicit TLS on the imaps listener.
    ImplicitTls,
}

/// A JSON value of a step's argument (the script's input is JSON, written here by
/// hand: the workspace carries no JSON crate for one flat object).
#[derive(Clone, Debug)]
enum Json {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

/// One imaplib step: an op and its arguments (see `tests/scripts/imap_client.py`).
#[derive(Clone, Debug)]
pub struct Step {
    op: String,
    args: Vec<(String, Json)>,
}

impl Step {
    pub fn new(op: &str) -> Step {
        Step {
            op: op.to_owned(),
            args: Vec::new(),
        }
    }

    /// A string argument.
    pub fn arg(mut self, name: &str, value: impl Into<String>) -> Step {
        self.args.push((name.to_owned(), Json::Str(value.into())));
        self
    }

    /// The UID form of the command (FETCH, STORE, COPY, MOVE, SEARCH).
    pub fn uid(mut self) -> Step {
        self.args.push(("uid".to_owned(), Json::Bool(true)));
        self
    }

    /// SEARCH's criteria, one IMAP argument each.
    pub fn criteria(mut self, criteria: &[&str]) -> Step {
        let list = criteria.iter().map(|c| (*c).to_owned()).collect();
        self.args.push(("criteria".to_owned(), Json::List(list)));
        self
    }

    fn to_json(&self) -> String {
        let mut out = format!("{{\"op\":{}", json_string(&self.op));
        for (name, value) in &self.args {
            out.push(',');
            out.push_str(&json_string(name));
            out.push(':');
            match value {
                Json::Str(text) => out.push_str(&json_string(text)),
                Json::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
                Json::List(items) => {
                    let items: Vec<String> = items.iter().map(|i| json_string(i)).collect();
                    out.push_str(&format!("[{}]", items.join(",")));
                }
            }
        }
        out.push('}');
        out
    }
}

/// Shorthands for the common steps.
pub fn login(user: &str, password: &str) -> Step {
    Step::new("login")
        .arg("user", user)
        .arg("password", password)
}

pub fn select(mailbox: &str) -> Step {
    Step::new("select").arg("mailbox", mailbox)
}

pub fn fetch(set: &str, items: &str) -> Step {
    Step::new("fetch").arg("set", set).arg("items", items)
}

pub fn store(set: &str, command: &str, flags: &str) -> Step {
    Step::new("store")
        .arg("set", set)
        .arg("command", command)
        .arg("flags", flags)
}

pub fn search(criteria: &[&str]) -> Step {
    Step::new("search").criteria(criteria)
}

/// A JSON string literal; everything outside printable ASCII escaped.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// What imaplib saw in one step.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    pub op: String,
    /// imaplib's verdict: OK, NO, BYE, ERROR (it raised, e.g. on BAD) or ABORT.
    pub typ: String,
    /// The verdict's text (the data imaplib returned, or its error).
    pub text: String,
    /// Every response the server sent during the step, raw, in order (the tagged
    /// one last); literals included.
    pub responses: Vec<Vec<u8>>,
    /// The data imaplib returned, element by element.
    pub data: Vec<Vec<u8>>,
}

impl StepOutcome {
    pub fn ok(&self) -> bool {
        self.typ == "OK"
    }

    /// The responses as text (lossy), for messages and substring checks.
    pub fn transcript(&self) -> String {
        self.responses
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    /// The tagged response's line.
    pub fn tagged(&self) -> String {
        self.responses
            .last()
            .map(|r| String::from_utf8_lossy(r).trim_end().to_owned())
            .unwrap_or_default()
    }

    /// The untagged responses that start `* NAME` or `* N NAME` (`NAME` upper case).
    pub fn untagged(&self, name: &str) -> Vec<&[u8]> {
        self.responses
            .iter()
            .filter(|r| {
                let text = String::from_utf8_lossy(&r[..r.len().min(64)]).to_ascii_uppercase();
                let mut words = text.split_whitespace();
                if words.next() != Some("*") {
                    return false;
                }
                match words.next() {
                    Some(word) if word.parse::<u32>().is_ok() => words.next() == Some(name),
                    Some(word) => word == name,
                    None => false,
                }
            })
            .map(Vec::as_slice)
            .collect()
    }
}

/// One imaplib session's outcome.
#[derive(Clone, Debug, Default)]
pub struct ImaplibRun {
    /// The greeting and the CAPABILITY exchange imaplib starts with.
    pub greeting: Vec<Vec<u8>>,
    pub steps: Vec<StepOutcome>,
    /// The whole output, for failure messages.
    pub raw: String,
}

impl ImaplibRun {
    /// The outcome of the `n`th step whose op is `op` (0 for the first).
    pub fn nth(&self, op: &str, n: usize) -> &StepOutcome {
        self.steps
            .iter()
            .filter(|step| step.op == op)
            .nth(n)
            .unwrap_or_else(|| panic!("no step {op} #{n} in:\n{}", self.raw))
    }

    /// The outcome of the first step `op`.
    pub fn step(&self, op: &str) -> &StepOutcome {
        self.nth(op, 0)
    }

    /// Every step answered OK (or BYE for LOGOUT)?
    pub fn all_ok(&self) -> bool {
        self.steps
            .iter()
            .all(|step| step.ok() || (step.op == "logout" && step.typ == "BYE"))
    }
}

/// Runs one imaplib session through `steps` against `server`. `on_idle` runs when the
/// server accepted an `idle` step (the test delivers a message then); the step ends
/// when the client read the EXISTS that follows.
pub fn imaplib(
    server: SocketAddr,
    security: ImapSecurity,
    steps: &[Step],
    mut on_idle: impl FnMut(),
) -> anyhow::Result<ImaplibRun> {
    let mode = match security {
        ImapSecurity::Plain => "plain",
        ImapSecurity::StartTls => "starttls",
        ImapSecurity::ImplicitTls => "tls",
    };
    let steps_json: Vec<String> = steps.iter().map(Step::to_json).collect();
    let spec = format!(
        "{{\"host\":{},\"port\":{},\"mode\":\"{mode}\",\"steps\":[{}]}}",
        json_string(&server.ip().to_string()),
        server.port(),
        steps_json.join(",")
    );
    let script = crate::scripts_dir().join("imap_client.py");
    let finished = run_streaming("python3", [script.into_os_string(), spec.into()], |line| {
        if line.starts_with("idling\t") {
            on_idle();
        }
    })?;
    if finished.code != Some(0) {
        bail!(
            "imap_client.py crashed ({:?}):\n{}\n{}",
            finished.code,
            finished.stdout,
            finished.stderr
        );
    }
    let mut run = ImaplibRun::default();
    // Responses and data come before their step's verdict line. `raw` keeps a
    // readable transcript for failure messages: responses as text, verdicts.
    let mut pending = StepOutcome::default();
    for line in finished.stdout.lines() {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        if let ["resp", _, hex] = fields.as_slice() {
            run.raw
                .push_str(&format!("S: {}", String::from_utf8_lossy(&unhex(hex)?)));
        } else if !line.starts_with("data\t") {
            run.raw.push_str(&format!("{line}\n"));
        }
        match fields.as_slice() {
            ["resp", "-1", hex] => run.greeting.push(unhex(hex)?),
            ["resp", _, hex] => pending.responses.push(unhex(hex)?),
            ["data", _, hex] => pending.data.push(unhex(hex)?),
            ["step", _, op, typ, rest @ ..] => {
                pending.op = (*op).to_owned();
                pending.typ = (*typ).to_owned();
                pending.text = rest.first().copied().unwrap_or("").to_owned();
                run.steps.push(std::mem::take(&mut pending));
            }
            ["idling", _] => {}
            _ => bail!("imap_client.py printed {line:?}"),
        }
    }
    run.raw.push_str(&finished.stderr);
    Ok(run)
}

fn unhex(hex: &str) -> anyhow::Result<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        bail!("odd hex {hex:?}");
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).context("bad hex"))
        .collect()
}

/// Runs `program` with `args`, calling `on_line` with each stdout line as it arrives
/// (so a test can act at a point of the client's session), killed after
/// `CLIENT_DEADLINE`.
pub fn run_streaming<I, S>(
    program: &str,
    args: I,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("no pipes to {program}");
    };
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let mut stdout_text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                on_line(&line);
                stdout_text.push_str(&line);
                stdout_text.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{program} did not finish within {CLIENT_DEADLINE:?}:\n{stdout_text}");
            }
        }
    }
    let status = child.wait()?;
    Ok(Finished {
        success: status.success(),
        code: status.code(),
        stdout: stdout_text,
        stderr: stderr_reader.join().unwrap_or_default(),
    })
}

/// What `tests/scripts/imapclient_session.py` reported: `(key, value)` in order.
#[derive(Clone, Debug)]
pub struct ImapclientReport {
    pub lines: Vec<(String, String)>,
    pub raw: String,
}

impl ImapclientReport {
    /// Every value reported under `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value reported under `key`.
    pub fn get(&self, key: &str) -> &str {
        self.all(key)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("imapclient reported no {key}:\n{}", self.raw))
    }
}

/// Runs the imapclient scenario over implicit TLS: select INBOX, fetch ENVELOPE and
/// BODYSTRUCTURE, flag the first message and fetch CHANGEDSINCE the mailbox's
/// HIGHESTMODSEQ before it, move the last message to `folder`, then IDLE until an
/// EXISTS (`on_idle` delivers one).
pub fn imapclient(
    server: SocketAddr,
    user: &str,
    password: &str,
    folder: &str,
    on_idle: impl FnMut(),
) -> anyhow::Result<ImapclientReport> {
    let script = crate::scripts_dir().join("imapclient_session.py");
    let args: Vec<OsString> = vec![
        script.into_os_string(),
        server.ip().to_string().into(),
        server.port().to_string().into(),
        user.into(),
        password.into(),
        folder.into(),
    ];
    let mut on_idle = on_idle;
    let finished = run_streaming("python3", args, |line| {
        if line == "idling\t" || line == "idling" {
            on_idle();
        }
    })?;
    let raw = format!("{}{}", finished.stdout, finished.stderr);
    if finished.code != Some(0) {
        bail!("imapclient_session.py failed ({:?}):\n{raw}", finished.code);
    }
    let lines = finished
        .stdout
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('\t').unwrap_or((line, ""));
            (key.to_owned(), value.to_owned())
        })
        .collect();
    Ok(ImapclientReport { lines, raw })
}

/// curl against `imap://` (STARTTLS required) or `imaps://`, with `path` after the
/// address (`""` lists, `INBOX/;UID=3` fetches, `INBOX?SUBJECT%20x` searches);
/// exit code 0 only on success.
pub fn curl_imap(
    server: SocketAddr,
    security: ImapSecurity,
    user: &str,
    password: &str,
    path: &str,
) -> anyhow::Result<Finished> {
    let scheme = if security == ImapSecurity::ImplicitTls {
        "imaps"
    } else {
        "imap"
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
    if security == ImapSecurity::StartTls {
        args.push("--ssl-reqd".to_owned());
    }
    run("curl", args, None, CLIENT_DEADLINE)
}

/// Writes `cert.pem` and `key.pem` into `dir`: a fresh self-signed certificate for
/// `localhost` and 127.0.0.1, for a server under test. Clients that check the
/// certificate (mbsync, neomutt) trust this very file, and mbsync also matches the
/// host name it dials (`localhost`) against it.
pub fn write_loopback_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.signing_key.serialize_pem().as_bytes())?;
    Ok((cert, key))
}

/// An mbsync (isync) setup: one IMAP account, one local Maildir store, one channel
/// over the named mailboxes, in `dir`.
#[derive(Debug)]
pub struct Mbsync {
    config: PathBuf,
    pub maildir: PathBuf,
}

impl Mbsync {
    /// Writes the configuration: implicit TLS to `server`'s port on `localhost`
    /// (mbsync matches the name against the certificate; `localhost` is 127.0.0.1
    /// here) trusting `certificate` (from [`write_loopback_certificate`]), a Maildir under `dir/mail`, and a channel
    /// syncing `mailboxes` both ways (new mail, flags, deletions) with expunge.
    pub fn new(
        dir: &Path,
        server: SocketAddr,
        certificate: &Path,
        user: &str,
        password: &str,
        mailboxes: &[&str],
    ) -> anyhow::Result<Mbsync> {
        let maildir = dir.join("mail");
        std::fs::create_dir_all(&maildir)?;
        let config = dir.join("mbsyncrc");
        let patterns: Vec<String> = mailboxes.iter().map(|m| format!("\"{m}\"")).collect();
        let text = format!(
            "IMAPAccount remote\n\
             Host localhost\n\
             Port {port}\n\
             User \"{user}\"\n\
             Pass \"{password}\"\n\
             SSLType IMAPS\n\
             CertificateFile {certificate}\n\
             AuthMechs PLAIN\n\
             \n\
             IMAPStore remote\n\
             Account remote\n\
             \n\
             MaildirStore local\n\
             Path {maildir}/\n\
             Inbox {maildir}/INBOX\n\
             SubFolders Verbatim\n\
             \n\
             Channel sync\n\
             Far :remote:\n\
             Near :local:\n\
             Patterns {patterns}\n\
             Create Both\n\
             Remove None\n\
             Expunge Both\n\
             Sync All\n\
             SyncState *\n",
            port = server.port(),
            certificate = certificate.display(),
            maildir = maildir.display(),
            patterns = patterns.join(" "),
        );
        std::fs::write(&config, text)?;
        Ok(Mbsync { config, maildir })
    }

    /// One full sync of every channel (`mbsync -a`); fails when mbsync does.
    pub fn sync(&self) -> anyhow::Result<Finished> {
        run(
            "mbsync",
            [
                "-c".as_ref(),
                self.config.as_os_str(),
                "--verbose".as_ref(),
                "-a".as_ref(),
            ],
            None,
            CLIENT_DEADLINE,
        )?
        .ok("mbsync -a")
    }
}

/// fetchmail over IMAP with implicit TLS into an MDA that writes each message to its
/// own file in `out`. `keep`: leave the messages on the server (else they are
/// flushed: deleted and expunged). Returns fetchmail's exit (0 mail fetched, 1 none).
pub fn fetchmail(
    dir: &Path,
    server: SocketAddr,
    user: &str,
    password: &str,
    out: &Path,
    keep: bool,
) -> anyhow::Result<Finished> {
    std::fs::create_dir_all(out)?;
    let mda = dir.join("mda.sh");
    // Each message gets a fresh file named by mktemp: no clock, no collisions.
    std::fs::write(
        &mda,
        format!(
            "#!/bin/sh\nset -e\nfile=$(mktemp {}/msg.XXXXXXXX)\ncat > \"$file\"\n",
            out.display()
        ),
    )?;
    set_mode(&mda, 0o755)?;
    let rc = dir.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\n\
             poll {host} service {port} protocol IMAP auth password\n\
             \x20 user \"{user}\" password \"{password}\"\n\
             \x20 ssl sslproto TLS1.2+ no sslcertck\n\
             \x20 {keep} fetchall\n\
             \x20 mda \"{mda}\"\n",
            host = server.ip(),
            port = server.port(),
            keep = if keep { "keep" } else { "no keep" },
            mda = mda.display(),
        ),
    )?;
    // fetchmail refuses a run control file others can read (exit 6).
    set_mode(&rc, 0o600)?;
    let mut command = vec![
        OsString::from("-f"),
        rc.into_os_string(),
        "--nodetach".into(),
        "-v".into(),
    ];
    command.push("--pidfile".into());
    command.push(dir.join("fetchmail.pid").into_os_string());
    let home = dir.to_path_buf();
    let finished = run_with_env(
        "fetchmail",
        command,
        &[
            ("FETCHMAILHOME", home.as_os_str()),
            ("HOME", home.as_os_str()),
        ],
    )?;
    Ok(finished)
}

/// neomutt, headless, over IMAP with implicit TLS: opens INBOX and runs `commands`
/// (a `push` string of keys and functions, which should end by quitting), trusting
/// `certificate`. It needs a terminal, so it runs under `script`.
pub fn neomutt(
    dir: &Path,
    server: SocketAddr,
    certificate: &Path,
    user: &str,
    password: &str,
    commands: &str,
) -> anyhow::Result<Finished> {
    let rc = dir.join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set imap_user = \"{user}\"\n\
             set imap_pass = \"{password}\"\n\
             set certificate_file = \"{certificate}\"\n\
             set ssl_verify_host = no\n\
             set ssl_starttls = no\n\
             set ssl_force_tls = yes\n\
             set folder = \"imaps://{server}/\"\n\
             set spoolfile = \"+INBOX\"\n\
             set header_cache = \"\"\n\
             set message_cachedir = \"\"\n\
             set confirmcreate = no\n\
             set confirmappend = no\n\
             set wait_key = no\n\
             set quit = yes\n\
             set move = no\n\
             set delete = yes\n\
             set mark_old = no\n\
             set mbox_type = mbox\n\
             set imap_check_subscribed = no\n\
             push \"{commands}\"\n",
            certificate = certificate.display(),
        ),
    )?;
    let command = format!(
        "TERM=xterm HOME={home} neomutt -n -F {rc} -f imaps://{server}/INBOX",
        home = dir.display(),
        rc = rc.display()
    );
    run(
        "script",
        ["-qec", command.as_str(), "/dev/null"],
        None,
        CLIENT_DEADLINE,
    )
}

fn run_with_env(
    program: &str,
    args: Vec<OsString>,
    env: &[(&str, &std::ffi::OsStr)],
) -> anyhow::Result<Finished> {
    // tools::run has no environment; `env` sets it for the one program.
    let mut all: Vec<OsString> = env
        .iter()
        .map(|(name, value)| {
            let mut pair = OsString::from(format!("{name}="));
            pair.push(value);
            pair
        })
        .collect();
    all.push(program.into());
    all.extend(args);
    run("env", all, None, CLIENT_DEADLINE)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_become_json() {
        let step = Step::new("search")
            .arg("charset", "UTF-8")
            .arg("literal", "grüße \"q\"\\")
            .criteria(&["SUBJECT"])
            .uid();
        assert_eq!(
            step.to_json(),
            "{\"op\":\"search\",\"charset\":\"UTF-8\",\
             \"literal\":\"gr\\u00fc\\u00dfe \\\"q\\\"\\\\\",\
             \"criteria\":[\"SUBJECT\"],\"uid\":true}"
        );
        assert_eq!(json_string("\u{1F600}\n"), "\"\\ud83d\\ude00\\u000a\"");
    }

    #[test]
    fn untagged_responses_are_found_by_name() {
        let outcome = StepOutcome {
            responses: vec![
                b"* 3 EXISTS\r\n".to_vec(),
                b"* SEARCH 1 2\r\n".to_vec(),
                b"* 2 FETCH (UID 5)\r\n".to_vec(),
                b"a1 OK done\r\n".to_vec(),
            ],
            ..StepOutcome::default()
        };
        assert_eq!(outcome.untagged("EXISTS").len(), 1);
        assert_eq!(outcome.untagged("SEARCH"), vec![&b"* SEARCH 1 2\r\n"[..]]);
        assert_eq!(outcome.untagged("FETCH").len(), 1);
        assert!(outcome.untagged("OK").is_empty());
        assert_eq!(outcome.tagged(), "a1 OK done");
    }
}
