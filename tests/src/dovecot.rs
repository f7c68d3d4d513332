//! A private Dovecot (Debian's dovecot-imapd, -pop3d and -lmtpd) started from its own
//! configuration in a temporary folder, never the system service: the IMAP/POP3
//! anchor that Sluice's answers and the client scripts are checked against.
//!
//! Small on purpose: users and passwords go in, mail arrives over LMTP (or straight
//! into a Maildir when a test needs chosen internal dates), and the listeners'
//! addresses come out. Every listener offers TLS with a fresh self-signed certificate
//! (STARTTLS on imap and pop3, implicit on imaps and pop3s), and a password is
//! accepted without TLS as well, so plain-text probes keep working.
//!
//! Dovecot's mail processes refuse to run as root: the mail belongs to the `vmail`
//! system user that `tests/install-peers.sh` creates.

use crate::tools::in_ci;
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How long Dovecot may take to listen on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one LMTP reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private Dovecot; stopped (SIGTERM to its master) when dropped.
#[derive(Debug)]
pub struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
    imap: SocketAddr,
    imaps: SocketAddr,
    pop3: SocketAddr,
    pop3s: SocketAddr,
    lmtp: SocketAddr,
    uid: u32,
    gid: u32,
    /// Names the Maildir files written by [`Dovecot::put_message`] in order.
    placed: AtomicUsize,
}

impl Dovecot {
    /// Starts Dovecot with `users` (address or bare name, and password). Returns
    /// `Ok(None)` outside CI when `dovecot` or the `vmail` user is missing (after
    /// printing why), and fails in CI, where `tests/install-peers.sh` provides both.
    ///
    /// A login name's domain is ignored (`auth_username_format = %Ln`), so
    /// `user@sluice.test` logs in, and receives LMTP mail, as `user`.
    pub fn start(users: &[(&str, &str)]) -> anyhow::Result<Option<Dovecot>> {
        let Some(program) = find_program("dovecot") else {
            assert!(
                !in_ci(),
                "dovecot is not installed, but CI=true: tests/install-peers.sh must install it"
            );
            println!("skipped: dovecot not installed");
            return Ok(None);
        };
        let Some((uid, gid)) = vmail_ids() else {
            assert!(
                !in_ci(),
                "no vmail user, but CI=true: tests/install-peers.sh must create it"
            );
            println!("skipped: no vmail user (tests/install-peers.sh creates it)");
            return Ok(None);
        };
        Dovecot::start_with(&program, uid, gid, users).map(Some)
    }

    fn start_with(
        program: &Path,
        uid: u32,
        gid: u32,
        users: &[(&str, &str)],
    ) -> anyhow::Result<Dovecot> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-dovecot-")
            .tempdir()
            .context("creating Dovecot's folder")?;
        let root = dir.path();
        // The mail processes run as vmail and must reach the mail folder.
        set_mode(root, 0o755)?;
        let mail = root.join("mail");
        std::fs::create_dir_all(&mail)?;
        std::os::unix::fs::chown(&mail, Some(uid), Some(gid))?;

        let mut passwd = String::new();
        for (user, password) in users {
            if password.contains([':', '\n']) {
                bail!("a passwd-file password cannot hold ':' or a newline");
            }
            passwd.push_str(&format!("{}:{{PLAIN}}{password}::::::\n", local_name(user)));
        }
        std::fs::write(root.join("passwd"), passwd)?;

        crate::imap::write_loopback_certificate(root)?;

        let [imap, imaps, pop3, pop3s, lmtp] = spare_ports()?;
        let r = root.display();
        // One setting per line: Dovecot reads `{ address = ...` as "garbage after '{'".
        let listener = |name: &str, port: u16, ssl: bool| {
            format!(
                "  inet_listener {name} {{\n    address = 127.0.0.1\n    port = {port}\n{}  }}\n",
                if ssl { "    ssl = yes\n" } else { "" }
            )
        };
        let config = format!(
            "base_dir = {r}/base\n\
             state_dir = {r}/state\n\
             log_path = {r}/dovecot.log\n\
             protocols = imap pop3 lmtp\n\
             listen = 127.0.0.1\n\
             ssl = yes\n\
             ssl_cert = <{r}/cert.pem\n\
             ssl_key = <{r}/key.pem\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             auth_username_format = %Ln\n\
             mail_location = maildir:{r}/mail/%n/Maildir\n\
             mail_uid = {uid}\n\
             mail_gid = {gid}\n\
             first_valid_uid = 100\n\
             postmaster_address = postmaster@dovecot.test\n\
             passdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             service imap-login {{\n{}{}}}\n\
             service pop3-login {{\n{}{}}}\n\
             service lmtp {{\n{}}}\n",
            listener("imap", imap, false),
            listener("imaps", imaps, true),
            listener("pop3", pop3, false),
            listener("pop3s", pop3s, true),
            listener("lmtp", lmtp, false),
        );
        std::fs::write(root.join("dovecot.conf"), config)?;
        let child = Command::new(program)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let address = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut dovecot = Dovecot {
            child,
            dir,
            imap: address(imap),
            imaps: address(imaps),
            pop3: address(pop3),
            pop3s: address(pop3s),
            lmtp: address(lmtp),
            uid,
            gid,
            placed: AtomicUsize::new(0),
        };
        dovecot.wait_listening()?;
        Ok(dovecot)
    }

    /// IMAP with STARTTLS.
    pub fn imap(&self) -> SocketAddr {
        self.imap
    }

    /// IMAP over implicit TLS.
    pub fn imaps(&self) -> SocketAddr {
        self.imaps
    }

    /// POP3 with STLS.
    pub fn pop3(&self) -> SocketAddr {
        self.pop3
    }

    /// POP3 over implicit TLS.
    pub fn pop3s(&self) -> SocketAddr {
        self.pop3s
    }

    /// LMTP, plain.
    pub fn lmtp(&self) -> SocketAddr {
        self.lmtp
    }

    /// The self-signed certificate every TLS listener presents (for `localhost` and
    /// 127.0.0.1), for clients that must be told to trust it.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Delivers `message` (CRLF lines) to `to`'s INBOX over LMTP; returns once Dovecot
    /// answered 250 for the recipient, so the message is in the Maildir. Dovecot
    /// prepends Return-Path, Delivered-To and Received fields.
    pub fn deliver(&self, from: &str, to: &str, message: &[u8]) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.lmtp).context("connecting to Dovecot's LMTP")?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        expect_reply(&mut reader, "greeting", 220)?;
        let mut step = |what: &str, bytes: &[u8], code: u16| -> anyhow::Result<()> {
            writer.write_all(bytes)?;
            expect_reply(&mut reader, what, code)
        };
        step("LHLO", b"LHLO client.test\r\n", 250)?;
        step("MAIL", format!("MAIL FROM:<{from}>\r\n").as_bytes(), 250)?;
        step("RCPT", format!("RCPT TO:<{to}>\r\n").as_bytes(), 250)?;
        step("DATA", b"DATA\r\n", 354)?;
        step("the message", &dot_stuffed(message), 250)?;
        step("QUIT", b"QUIT\r\n", 221)
    }

    /// Writes `message` as it is into `user`'s Maildir (`cur`, no flags), with
    /// `internal_date` as the file's time (Dovecot's INTERNALDATE for a Maildir).
    /// For tests that need chosen dates or bytes no LMTP delivery would keep.
    pub fn put_message(
        &self,
        user: &str,
        message: &[u8],
        internal_date: SystemTime,
    ) -> anyhow::Result<()> {
        let maildir = self
            .dir
            .path()
            .join("mail")
            .join(local_name(user))
            .join("Maildir");
        for folder in [maildir.parent().unwrap_or(&maildir), &maildir] {
            std::fs::create_dir_all(folder)?;
            std::os::unix::fs::chown(folder, Some(self.uid), Some(self.gid))?;
        }
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub))?;
            std::os::unix::fs::chown(maildir.join(sub), Some(self.uid), Some(self.gid))?;
        }
        // Dovecot orders new files by name: a counter keeps the order of the calls.
        let index = self.placed.fetch_add(1, Ordering::SeqCst);
        let path = maildir
            .join("cur")
            .join(format!("{}.m{index}.sluice:2,", 1_000_000 + index));
        std::fs::write(&path, message)?;
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(internal_date)?;
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid))?;
        Ok(())
    }

    /// Dovecot's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Waits until every listener accepts a connection, or the master exited.
    fn wait_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for address in [self.imap, self.imaps, self.pop3, self.pop3s, self.lmtp] {
            while TcpStream::connect(address).is_err() {
                if let Some(status) = self.child.try_wait()? {
                    bail!("dovecot exited ({status}):\n{}", self.log());
                }
                if Instant::now() >= deadline {
                    bail!("dovecot did not listen on {address}:\n{}", self.log());
                }
                std::thread::yield_now();
            }
        }
        Ok(())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; then reap it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The name Dovecot knows a user by: the local part, lower-cased.
fn local_name(user: &str) -> String {
    user.split('@').next().unwrap_or(user).to_lowercase()
}

/// Reads one (possibly multi-line) SMTP/LMTP reply and checks its code.
fn expect_reply(reader: &mut impl BufRead, after: &str, code: u16) -> anyhow::Result<()> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("Dovecot's LMTP closed the connection after {after}");
        }
        if line.len() < 4 || line.as_bytes()[3] == b'-' {
            continue;
        }
        if !line.starts_with(&code.to_string()) {
            bail!("Dovecot's LMTP answered {after} with {}", line.trim_end());
        }
        return Ok(());
    }
}

/// The DATA payload: lines starting with a dot doubled, then the end marker. Bytes,
/// not text: a message need not be UTF-8.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Five free loopback ports, held together while chosen so they differ.
fn spare_ports() -> anyhow::Result<[u16; 5]> {
    let listeners = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0u16; 5];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `name` on PATH or in the sbin folders (Debian puts dovecot in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The uid and gid of the `vmail` user, if it exists.
fn vmail_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg("vmail").output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .flatten()
    };
    Some((id("-u")?, id("-g")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_dot_stuffed_and_terminated() {
        assert_eq!(
            dot_stuffed(b".a\r\n.b\r\n..c\r\nd.\r\n"),
            b"..a\r\n..b\r\n...c\r\nd.\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"no end\xff"), b"no end\xff\r\n.\r\n");
    }

    #[test]
    fn a_login_name_loses_its_domain() {
        assert_eq!(local_name("User@Sluice.test"), "user");
        assert_eq!(local_name("u"), "u");
    }
}
