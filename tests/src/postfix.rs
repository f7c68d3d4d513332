//! Real Postfix instances for the delivery tests: a private, loopback-only Postfix in
//! the test's folder (its own main.cf, master.cf, queue and log), configured either as
//! a remote server that keeps what it accepts in a Maildir and answers chosen
//! recipients 4xx or 5xx, or as an MTA that hands a domain to Sluice over LMTP; and
//! Postfix's `smtp-sink`, a fast remote that dumps every transaction to a file.
//! Each is stopped on drop.

use crate::haproxy::free_port;
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a Postfix instance may take to start listening on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the instance does with mail.
#[derive(Clone, Debug)]
pub enum PostfixRole {
    /// Accept mail for `domain` into one Maildir; answer `tempfail` recipients
    /// `450 4.2.0` and `reject` recipients `550 5.1.1` at RCPT.
    Remote {
        domain: String,
        tempfail: Vec<String>,
        reject: Vec<String>,
    },
    /// Accept mail for `domain` and deliver it over LMTP to `lmtp`.
    LmtpRelay { domain: String, lmtp: SocketAddr },
}

/// Whether Postfix is installed, with the skipping rule of `tools::require_tool`.
pub fn require_postfix() -> bool {
    ["postfix", "postconf", "smtp-sink"]
        .iter()
        .all(|tool| crate::tools::require_tool(tool))
}

/// A running private Postfix.
#[derive(Debug)]
pub struct Postfix {
    folder: PathBuf,
    address: SocketAddr,
}

impl Postfix {
    /// Writes the configuration into `folder/postfix` and starts the instance.
    pub fn start(folder: &Path, role: &PostfixRole) -> anyhow::Result<Postfix> {
        let folder = folder.join("postfix");
        for sub in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir_all(folder.join(sub))?;
        }
        // The daemons run as the postfix user: they write their data and the Maildir.
        let status = Command::new("chown")
            .args(["-R", "postfix:postfix"])
            .arg(folder.join("data"))
            .arg(folder.join("mail"))
            .status()?;
        if !status.success() {
            bail!("chown postfix: {status}");
        }
        let port = free_port("127.0.0.1")?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        std::fs::write(folder.join("etc/main.cf"), main_cf(&folder, role)?)?;
        std::fs::write(folder.join("etc/master.cf"), master_cf(port))?;
        let config = folder.join("etc");
        let started = crate::tools::run(
            "postfix",
            [
                "-c".as_ref(),
                config.as_os_str(),
                "start".as_ref() as &std::ffi::OsStr,
            ],
            None,
            Duration::from_secs(30),
        )?;
        let postfix = Postfix { folder, address };
        if !started.success {
            bail!(
                "postfix did not start: {}{}\n--- log\n{}",
                started.stdout,
                started.stderr,
                postfix.log()
            );
        }
        wait_for_port(address).with_context(|| format!("postfix log:\n{}", postfix.log()))?;
        Ok(postfix)
    }

    /// Like [`Postfix::start`], choosing a new port when the one picked was taken
    /// between [`free_port`] and Postfix's bind (other tests bind and connect on
    /// loopback meanwhile); other failures are returned at once.
    pub fn start_retrying(folder: &Path, role: &PostfixRole) -> anyhow::Result<Postfix> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Postfix::start(folder, role) {
                Err(error)
                    if attempt < ATTEMPTS
                        && format!("{error:#}").contains("Address already in use") =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Where its smtpd listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its maillog.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.folder.join("maillog")).unwrap_or_default()
    }

    /// The messages delivered into the Maildir so far, oldest first.
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        read_folder(&self.folder.join("mail/inbox/new"))
    }

    /// Waits until at least `count` messages are in the Maildir.
    pub fn wait_for_delivered(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Vec<u8>>> {
        let started = Instant::now();
        loop {
            let messages = self.delivered();
            if messages.len() >= count {
                return Ok(messages);
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} of {count} messages delivered after {timeout:?}\n--- postfix log\n{}",
                    messages.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&self) {
        let config = self.folder.join("etc");
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

fn main_cf(folder: &Path, role: &PostfixRole) -> anyhow::Result<String> {
    let folder = folder.display();
    let mut text = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {folder}/queue\n\
         data_directory = {folder}/data\n\
         command_directory = /usr/sbin\n\
         daemon_directory = /usr/lib/postfix/sbin\n\
         meta_directory = /etc/postfix\n\
         shlib_directory = /usr/lib/postfix\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = postfix.remote.test\n\
         mydomain = remote.test\n\
         myorigin = remote.test\n\
         mydestination =\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         alias_maps =\n\
         alias_database =\n\
         biff = no\n\
         smtp_dns_support_level = disabled\n\
         smtpd_client_connection_count_limit = 0\n\
         smtpd_client_connection_rate_limit = 0\n\
         maillog_file_prefixes = /var, /dev/stdout, {folder}\n\
         maillog_file = {folder}/maillog\n\
         # Retry quickly: tests wait for the second attempt.\n\
         queue_run_delay = 1s\n\
         minimal_backoff_time = 1s\n\
         maximal_backoff_time = 2s\n"
    );
    match role {
        PostfixRole::Remote {
            domain,
            tempfail,
            reject,
        } => {
            let mut access = Vec::new();
            for address in tempfail {
                access.push(format!("{{{address} = 450 4.2.0 try again later}}"));
            }
            for address in reject {
                access.push(format!("{{{address} = 550 5.1.1 no such user here}}"));
            }
            let access = if access.is_empty() {
                String::new()
            } else {
                format!(
                    "check_recipient_access inline:{{ {} }}, ",
                    access.join(", ")
                )
            };
            let uid = id_of("-u")?;
            let gid = id_of("-g")?;
            write!(
                text,
                "virtual_mailbox_domains = {domain}\n\
                 virtual_mailbox_base = {folder}/mail\n\
                 virtual_mailbox_maps = static:inbox/\n\
                 virtual_minimum_uid = 1\n\
                 virtual_uid_maps = static:{uid}\n\
                 virtual_gid_maps = static:{gid}\n\
                 smtpd_recipient_restrictions = {access}permit_mynetworks, reject_unauth_destination\n"
            )?;
        }
        PostfixRole::LmtpRelay { domain, lmtp } => {
            write!(
                text,
                "relay_domains = {domain}\n\
                 transport_maps = inline:{{ {{{domain} = lmtp:inet:{lmtp}}} }}\n\
                 smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n"
            )?;
        }
    }
    Ok(text)
}

fn master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         pickup    unix  n - n 60 1 pickup\n\
         cleanup   unix  n - n -  0 cleanup\n\
         qmgr      unix  n - n 300 1 qmgr\n\
         rewrite   unix  - - n -  - trivial-rewrite\n\
         bounce    unix  - - n -  0 bounce\n\
         defer     unix  - - n -  0 bounce\n\
         trace     unix  - - n -  0 bounce\n\
         verify    unix  - - n -  1 verify\n\
         flush     unix  n - n 1000? 0 flush\n\
         proxymap  unix  - - n -  - proxymap\n\
         showq     unix  n - n -  - showq\n\
         error     unix  - - n -  - error\n\
         retry     unix  - - n -  - error\n\
         discard   unix  - - n -  - discard\n\
         smtp      unix  - - n -  - smtp\n\
         relay     unix  - - n -  - smtp\n\
         lmtp      unix  - - n -  - lmtp\n\
         virtual   unix  - n n -  - virtual\n\
         anvil     unix  - - n -  1 anvil\n\
         scache    unix  - - n -  1 scache\n\
         postlog   unix-dgram n - n - 1 postlogd\n"
    )
}

/// The postfix user's uid (`-u`) or gid (`-g`).
fn id_of(flag: &str) -> anyhow::Result<String> {
    let finished = crate::tools::run("id", [flag, "postfix"], None, Duration::from_secs(10))?
        .ok("id postfix")?;
    Ok(finished.stdout.trim().to_owned())
}

fn wait_for_port(address: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listens on {address} after {START_TIMEOUT:?}")
}

/// Waits until nothing accepts connections on `address` any more (a stopped Postfix
/// closes its listening socket shortly after `postfix stop` returns).
pub fn wait_until_closed(address: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{address} still accepts connections after {timeout:?}")
}

/// The regular files of `folder`, read in name order (Maildir names start with the
/// delivery time, so this is arrival order).
fn read_folder(folder: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

/// Postfix's `smtp-sink`: accepts everything, and with a dump folder writes each
/// transaction (envelope and message) to its own file.
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    address: SocketAddr,
    dump: Option<PathBuf>,
}

impl SmtpSink {
    /// Starts `smtp-sink` on a free loopback port; `dump`: keep each transaction there.
    pub fn start(dump: Option<&Path>) -> anyhow::Result<SmtpSink> {
        SmtpSink::start_on(free_port("127.0.0.1")?, dump)
    }

    /// Like [`SmtpSink::start`] on a chosen loopback port, e.g. the one a remote
    /// that was just stopped listened on (see [`wait_until_closed`]).
    pub fn start_on(port: u16, dump: Option<&Path>) -> anyhow::Result<SmtpSink> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new("smtp-sink");
        command.args(["-c", "-u", "postfix"]);
        if let Some(dump) = dump {
            std::fs::create_dir_all(dump)?;
            let status = Command::new("chown").arg("postfix").arg(dump).status()?;
            if !status.success() {
                bail!("chown postfix {}: {status}", dump.display());
            }
            // A template with a per-transaction unique part (smtp-sink appends one).
            command.arg("-d").arg(dump.join("%Y%m%d%H/%M."));
        }
        let child = command
            .arg(address.to_string())
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start smtp-sink")?;
        let sink = SmtpSink {
            child,
            address,
            dump: dump.map(Path::to_path_buf),
        };
        wait_for_port(address)?;
        Ok(sink)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every dumped transaction so far (empty without a dump folder).
    pub fn transactions(&self) -> Vec<Vec<u8>> {
        let Some(dump) = &self.dump else {
            return Vec::new();
        };
        let mut all = Vec::new();
        let Ok(hours) = std::fs::read_dir(dump) else {
            return all;
        };
        let mut hours: Vec<PathBuf> = hours.filter_map(Result::ok).map(|e| e.path()).collect();
        hours.sort();
        for hour in hours {
            all.extend(read_folder(&hour));
        }
        all
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
