//! A private Dovecot (Debian's dovecot-imapd and dovecot-pop3d) run from a
//! temporary folder on spare loopback ports, without the system service: the
//! IMAP and POP3 anchor that Sluice is compared with.
//!
//! Its users are a passwd-file; mail is Maildir under the folder, owned by the
//! `vmail` user (Dovecot's mail processes refuse to run as root). With TLS, a
//! self-signed certificate made by `openssl` serves STARTTLS/STLS and the
//! implicit-TLS listeners, and plaintext logins are refused before TLS, as
//! Sluice's defaults do.

use anyhow::{Context, bail};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Dovecot may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `dovecot` program, if installed (it lives in /usr/sbin, often not in PATH).
pub fn dovecot_binary() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("dovecot"))
        .find(|p| p.is_file())
}

/// The uid and gid of the `vmail` user that Dovecot's mail processes run as.
pub fn vmail_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg("vmail").output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .flatten()
    };
    Some((id("-u")?, id("-g")?))
}

/// What the instance serves.
#[derive(Clone, Debug)]
pub struct DovecotSetup {
    /// (user, password), in a passwd-file with `{PLAIN}` passwords.
    pub users: Vec<(String, String)>,
    /// STARTTLS/STLS and the imaps and pop3s listeners, with a self-signed
    /// certificate; plaintext logins refused before TLS. Without it, `ssl = no`
    /// and plaintext logins allowed.
    pub tls: bool,
}

/// A running private Dovecot; stopped when dropped.
#[derive(Debug)]
pub struct PrivateDovecot {
    child: Child,
    imap: u16,
    pop3: u16,
    imaps: Option<u16>,
    pop3s: Option<u16>,
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
}

impl PrivateDovecot {
    /// Writes the configuration and starts it; `seed` may fill each user's Maildir
    /// (`cur`, `new`, `tmp` exist) before the start, and is then chowned to vmail.
    pub fn start(
        program: &Path,
        (uid, gid): (u32, u32),
        setup: &DovecotSetup,
        seed: impl Fn(&str, &Path),
    ) -> anyhow::Result<PrivateDovecot> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-dovecot-")
            .tempdir()
            .context("creating Dovecot's folder")?;
        let root = dir.path().to_path_buf();
        // Dovecot's mail processes run as vmail and must reach the mail folder.
        set_mode(&root, 0o755)?;
        let mut passwd = String::new();
        for (user, password) in &setup.users {
            let maildir = root.join("mail").join(user).join("Maildir");
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(maildir.join(sub))?;
            }
            seed(user, &maildir);
            passwd.push_str(&format!("{user}:{{PLAIN}}{password}::::::\n"));
        }
        chown_tree(&root.join("mail"), uid, gid)?;
        std::fs::write(root.join("passwd"), passwd)?;
        let (imap, pop3) = (spare_port()?, spare_port()?);
        let (imaps, pop3s) = if setup.tls {
            (Some(spare_port()?), Some(spare_port()?))
        } else {
            (None, None)
        };
        let r = root.display();
        let ssl = if setup.tls {
            self_signed(&root)?;
            format!(
                "ssl = yes\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem\n\
                 disable_plaintext_auth = yes\n"
            )
        } else {
            "ssl = no\ndisable_plaintext_auth = no\n".to_string()
        };
        let listener = |name: &str, port: Option<u16>| match port {
            Some(port) => format!(
                "  inet_listener {name} {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n"
            ),
            None => format!("  inet_listener {name} {{\n    port = 0\n  }}\n"),
        };
        let config = format!(
            "base_dir = {r}/base\n\
             state_dir = {r}/state\n\
             log_path = {r}/dovecot.log\n\
             protocols = imap pop3\n\
             listen = 127.0.0.1\n\
             {ssl}\
             auth_username_format = %Ln\n\
             mail_location = maildir:{r}/mail/%n/Maildir\n\
             mail_uid = {uid}\n\
             mail_gid = {gid}\n\
             first_valid_uid = 100\n\
             pop3_uidl_format = %08Xu%08Xv\n\
             passdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             service imap-login {{\n{}{}}}\n\
             service pop3-login {{\n{}{}}}\n",
            listener("imap", Some(imap)),
            listener("imaps", imaps),
            listener("pop3", Some(pop3)),
            listener("pop3s", pop3s),
        );
        std::fs::write(root.join("dovecot.conf"), config)?;
        let child = Command::new(program)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dovecot")?;
        let server = PrivateDovecot {
            child,
            imap,
            pop3,
            imaps,
            pop3s,
            dir,
            uid,
            gid,
        };
        server.wait_listening()?;
        Ok(server)
    }

    pub fn imap(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.imap))
    }

    pub fn pop3(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.pop3))
    }

    /// The implicit-TLS IMAP listener (with `tls`).
    pub fn imaps(&self) -> Option<SocketAddr> {
        self.imaps
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The implicit-TLS POP3 listener (with `tls`).
    pub fn pop3s(&self) -> Option<SocketAddr> {
        self.pop3s
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn folder(&self) -> &Path {
        self.dir.path()
    }

    /// The ids mail files must be owned by.
    pub fn mail_owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Waits until every listener accepts a connection (bounded by a deadline).
    fn wait_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let ports = [Some(self.imap), Some(self.pop3), self.imaps, self.pop3s];
        for port in ports.into_iter().flatten() {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    bail!("dovecot did not listen on {port}: {}", self.log());
                }
                std::thread::yield_now();
            }
        }
        Ok(())
    }
}

impl Drop for PrivateDovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; then reap it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate and key for 127.0.0.1, by the openssl command.
fn self_signed(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(root.join("key.pem"))
        .arg("-out")
        .arg(root.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running openssl for Dovecot's certificate")?;
    if !status.success() {
        bail!("openssl could not make Dovecot's certificate");
    }
    Ok(())
}

fn spare_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Gives `path` and everything under it to the mail user.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
