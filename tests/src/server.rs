//! The real `sluice` binary as a child process: built once per test process, given a
//! configuration in a temporary folder, started, killed and restarted on the same
//! data folder; its stderr logs are printed when a test fails, and its store is read
//! back through the store's own API.

use anyhow::{Context, bail};
use sluice_net::store::Store;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a start may take before the test gives up: certificate generation and
/// migrations on a loaded 2-core CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take before SIGKILL follows.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the control socket may take to answer: the delivery service answers
/// between two turns of its loop, each short.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(20);

/// The `sluice` binary, built if needed.
///
/// `cargo test --workspace` on a clean clone does not necessarily build other
/// packages' binaries before running this crate's tests, so the first caller runs
/// `cargo build -p sluice-net --bin sluice` with the same cargo, target folder and
/// profile.
/// `SLUICE_BIN` overrides all of it with a path.
pub fn sluice_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_sluice().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_sluice() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let target = crate::workspace_binary("sluice");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(crate::workspace_root()).args([
        "build",
        "--quiet",
        "-p",
        "sluice-net",
        "--bin",
        "sluice",
    ]);
    // Build into the test executable's target folder (even when the outer cargo was
    // given --target-dir) and with its profile: `test` shares target/debug and its
    // opt-level with the test build, so the dependencies compiled for the tests are
    // reused instead of being compiled a second time under `dev`.
    if let Some(profile_dir) = target.parent() {
        if profile_dir.ends_with("release") {
            command.arg("--release");
        } else {
            command.args(["--profile", "test"]);
        }
        if let Some(target_dir) = profile_dir.parent() {
            command.arg("--target-dir").arg(target_dir);
        }
    }
    let output = command
        .output()
        .context("running cargo build for the sluice binary")?;
    if !output.status.success() {
        bail!(
            "cargo build -p sluice-net --bin sluice failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if !target.exists() {
        bail!("built sluice, but {} does not exist", target.display());
    }
    Ok(target)
}

/// What to put into the configuration and the directory before the first start.
#[derive(Clone, Debug)]
pub struct ServerSetup {
    /// `server.role`: all, gateway or backend.
    pub role: String,
    pub hostname: String,
    pub domains: Vec<String>,
    /// (address, password)
    pub users: Vec<(String, String)>,
    pub auth_requires_tls: bool,
    pub max_connections_per_ip: usize,
    /// `log.level`: a level or tracing directives, e.g. `info,sluice_net::delivery=debug`
    /// for a test that reads the queue's debug events in the log.
    pub log_level: String,
    /// Appended verbatim to the configuration file.
    pub extra_toml: String,
}

impl Default for ServerSetup {
    fn default() -> Self {
        ServerSetup {
            role: "all".to_owned(),
            hostname: "mx.sluice.test".to_owned(),
            domains: vec!["sluice.test".to_owned()],
            users: vec![("user@sluice.test".to_owned(), "correct horse".to_owned())],
            auth_requires_tls: true,
            max_connections_per_ip: 100,
            log_level: "info".to_owned(),
            extra_toml: String::new(),
        }
    }
}

/// `extra` plus, unless it configures DNS itself, a resolver that can only ask the
/// discard port on loopback: servers under test must never send a query (reverse
/// lookups of clients, MX lookups) beyond 127.0.0.0/8. Lookups then fail as
/// temporary failures, quickly.
fn with_loopback_dns(extra: &str) -> String {
    if extra.lines().any(|line| line.trim() == "[dns]") {
        return extra.to_owned();
    }
    format!("{extra}\n[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout_seconds = 1\nattempts = 1\n")
}

/// A running (or stopped) `sluice serve` with its own temporary folder.
#[derive(Debug)]
pub struct Server {
    binary: PathBuf,
    folder: tempfile::TempDir,
    config_path: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    listeners: HashMap<String, SocketAddr>,
    starts: u32,
}

impl Server {
    /// Writes the configuration, creates domains and users through the CLI, starts
    /// the server and waits for `ready`.
    pub fn start(setup: &ServerSetup) -> anyhow::Result<Server> {
        let mut server = Server::configure(setup)?;
        server.launch()?;
        Ok(server)
    }

    /// Like [`Server::start`] without starting: configuration and CLI setup only.
    pub fn configure(setup: &ServerSetup) -> anyhow::Result<Server> {
        let binary = sluice_binary()?;
        let folder = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .context("creating the test folder")?;
        let data_dir = folder.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        let config_path = folder.path().join("sluice.toml");
        let database = data_dir.join("sluice.db");
        let config = format!(
            "[server]\n\
             role = \"{role}\"\n\
             hostname = \"{hostname}\"\n\
             data_dir = \"{data}\"\n\
             shutdown_grace_seconds = 2\n\
             \n\
             [database]\n\
             url = \"sqlite:{database}?mode=rwc\"\n\
             \n\
             [smtp]\n\
             auth_requires_tls = {auth_requires_tls}\n\
             \n\
             [listeners.mx]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [listeners.submission]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [listeners.submissions]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [listeners.lmtp]\n\
             address = \"127.0.0.1:0\"\n\
             \n\
             [listeners.pop3]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [listeners.pop3s]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [listeners.imap]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [listeners.imaps]\n\
             address = \"127.0.0.1:0\"\n\
             max_connections_per_ip = {per_ip}\n\
             \n\
             [log]\n\
             format = \"json\"\n\
             level = \"{log_level}\"\n\
             {extra}\n",
            role = setup.role,
            hostname = setup.hostname,
            data = data_dir.display(),
            database = database.display(),
            auth_requires_tls = setup.auth_requires_tls,
            per_ip = setup.max_connections_per_ip,
            log_level = setup.log_level,
            extra = with_loopback_dns(&setup.extra_toml),
        );
        std::fs::write(&config_path, config)?;
        let server = Server {
            binary,
            folder,
            config_path,
            data_dir,
            child: None,
            listeners: HashMap::new(),
            starts: 0,
        };
        for domain in &setup.domains {
            server.cli(&["domain", "add", domain])?;
        }
        for (address, password) in &setup.users {
            server.cli(&["user", "add", address, "--password", password])?;
        }
        Ok(server)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Runs `sluice ARGS... --config FILE` and returns its stdout; fails on a non-zero exit.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let finished = self.cli_unchecked(args)?;
        Ok(finished.ok(&format!("sluice {}", args.join(" ")))?.stdout)
    }

    /// Runs `sluice ARGS... --config FILE` whatever its exit status.
    pub fn cli_unchecked(&self, args: &[&str]) -> anyhow::Result<crate::tools::Finished> {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        all.push("--config".as_ref());
        all.push(self.config_path.as_os_str());
        crate::tools::run(&self.binary, all, None, Duration::from_secs(60))
    }

    /// Starts `sluice serve` on this folder and waits for its `ready` line.
    pub fn launch(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the server is already running");
        }
        self.starts += 1;
        let stderr_path = self.stderr_path(self.starts);
        let stderr = File::create(&stderr_path)?;
        let mut child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("no stdout pipe");
        };
        let (lines_tx, lines_rx) = mpsc::channel();
        // The reader keeps draining after `ready`, so the server never blocks on stdout.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        self.child = Some(child);
        self.listeners.clear();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["ready"] => return Ok(()),
                        ["listening", name, address] => {
                            let address: SocketAddr = address
                                .parse()
                                .with_context(|| format!("bad listening line {line:?}"))?;
                            self.listeners.insert((*name).to_owned(), address);
                        }
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.reap();
                    bail!(
                        "sluice serve exited before `ready` ({status})\n{}",
                        self.stderr_tail(self.starts)
                    );
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "sluice serve exited before `ready` ({status})\n{}",
                    self.stderr_tail(self.starts)
                );
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "sluice serve printed no `ready` within {START_TIMEOUT:?}\n{}",
                    self.stderr_tail(self.starts)
                );
            }
        }
    }

    /// The address a listener announced (`mx`, `submission`, `submissions`).
    pub fn address(&self, listener: &str) -> anyhow::Result<SocketAddr> {
        self.listeners
            .get(listener)
            .copied()
            .with_context(|| format!("no `listening {listener}` line; got {:?}", self.listeners))
    }

    /// Writes `address` into the `[listeners.NAME]` table of the configuration, so
    /// that the next launch binds it (e.g. a backend's LMTP port that a gateway's
    /// configuration names, kept across a restart).
    pub fn set_listener_address(&self, listener: &str, address: SocketAddr) -> anyhow::Result<()> {
        let config = std::fs::read_to_string(&self.config_path)?;
        let header = format!("[listeners.{listener}]");
        let mut out = String::with_capacity(config.len() + 32);
        let mut in_table = false;
        let mut replaced = false;
        for line in config.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                in_table = trimmed == header;
            }
            if in_table && !replaced && trimmed.starts_with("address") {
                out.push_str(&format!("address = \"{address}\"\n"));
                replaced = true;
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if !replaced {
            bail!(
                "no address under {header} in {}",
                self.config_path.display()
            );
        }
        std::fs::write(&self.config_path, out)?;
        Ok(())
    }

    /// Pins a listener to the address it announced at the last start, so a restart
    /// binds the same port.
    pub fn pin_listener(&self, listener: &str) -> anyhow::Result<SocketAddr> {
        let address = self.address(listener)?;
        self.set_listener_address(listener, address)?;
        Ok(address)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, wait for a clean exit (SIGKILL after a timeout); the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the server is not running");
        };
        let pid = child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !signalled.success() {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("sluice did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills (SIGKILL) if running, then starts again on the same data folder.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch()
    }

    fn reap(&mut self) -> String {
        match self.child.take() {
            Some(mut child) => match child.wait() {
                Ok(status) => status.to_string(),
                Err(error) => error.to_string(),
            },
            None => "not running".to_owned(),
        }
    }

    fn stderr_path(&self, start: u32) -> PathBuf {
        self.folder.path().join(format!("stderr-{start}.log"))
    }

    /// The last lines of one run's stderr.
    pub fn stderr_tail(&self, start: u32) -> String {
        let text = std::fs::read_to_string(self.stderr_path(start)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!(
            "--- sluice stderr (start {start}, last {} lines)\n{}",
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// Every run's stderr, concatenated.
    pub fn stderr_all(&self) -> String {
        (1..=self.starts)
            .map(|start| std::fs::read_to_string(self.stderr_path(start)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many messages the running server's queue holds, asked over the control
    /// socket (`count`): the queue in memory, the authority while the server runs.
    ///
    /// The answer also marks a point in the delivery service's life: it answers
    /// between two turns of its loop, so whatever the queue asked for before (an
    /// attempt started, a write issued) has been carried out and logged by then.
    pub fn queued_in_memory(&self) -> anyhow::Result<usize> {
        use sluice_net::control::{Request, socket_path};
        use std::io::{Read, Write};
        let path = socket_path(&self.data_dir);
        let mut stream = std::os::unix::net::UnixStream::connect(&path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
        stream.write_all(Request::Count.to_line().as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let answer = answer.trim_end();
        answer
            .strip_prefix("ok ")
            .and_then(|count| count.parse().ok())
            .with_context(|| format!("control socket answered {answer:?} to `count`"))
    }

    /// Whether the running server's queue is finished with everything it was given:
    /// nothing held in memory and nothing queued in the store. Nothing more leaves
    /// the server after that (no copy, no notice) unless new mail arrives.
    pub fn queue_is_idle(&self) -> anyhow::Result<bool> {
        let listed = self.cli(&["queue", "list"])?;
        Ok(listed.trim().is_empty() && self.queued_in_memory()? == 0)
    }

    /// Opens the server's store (SQLite in the data folder) through its own API.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        let url = format!(
            "sqlite:{}?mode=rwc",
            self.data_dir.join("sluice.db").display()
        );
        Store::open(&url, &self.data_dir.join("blobs"))
            .await
            .with_context(|| format!("opening the store at {url}"))
    }

    /// Every message in a user's folder, oldest first, as stored (bytes).
    pub async fn folder_contents(&self, user: &str, folder: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let store = self.open_store().await?;
        let mut contents = Vec::new();
        for message in store.folder_messages(user, folder).await? {
            contents.push(store.read_blob(&message.blob).await?);
        }
        Ok(contents)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            for start in 1..=self.starts {
                eprintln!("{}", self.stderr_tail(start));
            }
            eprintln!("--- test folder was {}", self.folder.path().display());
        }
    }
}
