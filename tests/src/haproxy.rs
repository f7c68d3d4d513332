//! A real HAProxy in front of `sluice serve`: a TCP-mode configuration written into
//! the test's folder, `haproxy -f CFG -db` as a foreground child killed on drop, and
//! the switch that makes a harness-configured listener expect a PROXY header.

use crate::server::Server;
use anyhow::{Context, bail};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long HAProxy may take to bind its frontends on a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Debian installs HAProxy into `/usr/sbin`, which an unprivileged user's `PATH` often
/// lacks; look there too, so "installed" means installed.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

/// The `haproxy` binary: on `PATH`, else in an sbin folder.
pub fn haproxy_binary() -> Option<PathBuf> {
    crate::tools::find_tool("haproxy").or_else(|| {
        SBIN_DIRS
            .iter()
            .map(|dir| Path::new(dir).join("haproxy"))
            .find(|path| path.is_file())
    })
}

/// The skipping rule of [`crate::tools::require_tool`] for HAProxy: `None` (after
/// printing `skipped: haproxy not installed`) when missing, a panic when `CI=true`.
pub fn require_haproxy() -> Option<PathBuf> {
    let found = haproxy_binary();
    if found.is_none() {
        if crate::tools::in_ci() {
            panic!("haproxy is not installed, but CI=true: tests/install-peers.sh must install it");
        }
        println!("skipped: haproxy not installed");
    }
    found
}

/// `haproxy -v`'s first line, for the test's output.
pub fn version(binary: &Path) -> String {
    crate::tools::run(binary, ["-v"], None, Duration::from_secs(10))
        .map(|finished| finished.stdout.lines().next().unwrap_or("").to_owned())
        .unwrap_or_else(|error| format!("unknown ({error})"))
}

/// Makes the named listeners (`mx`, `submission`, `submissions`) of a configured but
/// not yet launched server expect a PROXY header.
///
/// The harness writes every `[listeners.NAME]` table itself and appends `extra_toml`
/// after `[log]`, where a listener key cannot go (TOML forbids reopening a table), so
/// the key is inserted right under each table's header line instead.
pub fn enable_proxy_protocol(server: &Server, listeners: &[&str]) -> anyhow::Result<()> {
    let path = server.config_path();
    let config = std::fs::read_to_string(path)?;
    let mut out = String::with_capacity(config.len() + 64);
    let mut found = 0;
    for line in config.lines() {
        out.push_str(line);
        out.push('\n');
        let header = line.trim();
        if listeners
            .iter()
            .any(|name| header == format!("[listeners.{name}]"))
        {
            out.push_str("proxy_protocol = true\n");
            found += 1;
        }
    }
    if found != listeners.len() {
        bail!(
            "found {found} of the listener tables {listeners:?} in {}",
            path.display()
        );
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// A free TCP port on `ip`, for a frontend.
///
/// HAProxy cannot report a port the kernel picked, so the test picks one: bound and
/// released here, then bound again by HAProxy. Another process could take it in
/// between; on a test machine that is rare enough, and the failure is loud.
pub fn free_port(ip: &str) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
    Ok(listener.local_addr()?.port())
}

/// Which PROXY header HAProxy prepends towards the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    /// `send-proxy`: the text header, `PROXY TCP4 ...\r\n`.
    V1,
    /// `send-proxy-v2`: the binary header.
    V2,
}

impl ProxyVersion {
    fn server_keyword(self) -> &'static str {
        match self {
            ProxyVersion::V1 => "send-proxy",
            ProxyVersion::V2 => "send-proxy-v2",
        }
    }
}

/// One frontend/backend pair: HAProxy accepts on `frontend` and forwards each
/// connection, PROXY header first, to `backend`.
#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub frontend: SocketAddr,
    pub backend: SocketAddr,
    pub proxy: ProxyVersion,
}

/// The whole configuration: TCP mode, foreground, logs to stdout.
pub fn config_text(routes: &[Route]) -> String {
    // No `daemon`, `chroot`, `user` or pidfile: a foreground child of the test that
    // writes nothing outside the test's folder. `log stdout` lands in haproxy.log, which
    // is printed if the test fails.
    let mut text = String::from(
        "global\n\
         \x20   log stdout format raw local0 info\n\
         \x20   maxconn 256\n\
         \n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   log global\n\
         \x20   option tcplog\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n",
    );
    for route in routes {
        let _ = write!(
            text,
            "\n\
             frontend fe_{name}\n\
             \x20   bind {frontend}\n\
             \x20   default_backend be_{name}\n\
             \n\
             backend be_{name}\n\
             \x20   server sluice {backend} {keyword}\n",
            name = route.name,
            frontend = route.frontend,
            backend = route.backend,
            keyword = route.proxy.server_keyword(),
        );
    }
    text
}

/// A running `haproxy -db`; killed (SIGKILL) and reaped on drop, also when a test
/// panics, so no HAProxy outlives its test.
#[derive(Debug)]
pub struct HaProxy {
    child: Option<Child>,
    log_path: PathBuf,
}

impl HaProxy {
    /// Writes `haproxy.cfg` into `folder`, checks it with `-c`, starts HAProxy in the
    /// foreground and waits until every frontend accepts connections.
    pub fn start(binary: &Path, folder: &Path, routes: &[Route]) -> anyhow::Result<HaProxy> {
        let config_path = folder.join("haproxy.cfg");
        std::fs::write(&config_path, config_text(routes))?;
        // `-c` first: a configuration error then fails with HAProxy's own message
        // instead of a frontend that never comes up.
        crate::tools::run(
            binary,
            [
                OsStr::new("-c"),
                OsStr::new("-q"),
                OsStr::new("-f"),
                config_path.as_os_str(),
            ],
            None,
            Duration::from_secs(15),
        )?
        .ok("haproxy -c")?;
        let log_path = folder.join("haproxy.log");
        let log = File::create(&log_path)?;
        let child = Command::new(binary)
            .arg("-f")
            .arg(&config_path)
            // -db: stay in the foreground, no daemon, so the test owns the process.
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut haproxy = HaProxy {
            child: Some(child),
            log_path,
        };
        haproxy.wait_for(routes)?;
        Ok(haproxy)
    }

    /// Polls each frontend until a TCP connection succeeds. The probe connection is
    /// forwarded to Sluice with a header naming 127.0.0.1 and closed at once; it sends
    /// no mail, so it cannot disturb what the test checks.
    fn wait_for(&mut self, routes: &[Route]) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for route in routes {
            loop {
                if let Some(child) = self.child.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    self.child = None;
                    bail!("haproxy exited at start ({status})\n{}", self.log());
                }
                if TcpStream::connect_timeout(&route.frontend, Duration::from_millis(500)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "haproxy's frontend {} did not accept within {START_TIMEOUT:?}\n{}",
                        route.frontend,
                        self.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// What HAProxy wrote so far (its stdout log and stderr alerts).
    pub fn log(&self) -> String {
        format!(
            "--- haproxy log\n{}",
            std::fs::read_to_string(&self.log_path).unwrap_or_default()
        )
    }

    /// SIGKILL and reap; idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_gets_a_frontend_and_a_backend_with_its_header_version() {
        let routes = [
            Route {
                name: "v1".to_owned(),
                frontend: SocketAddr::from(([127, 0, 0, 1], 4001)),
                backend: SocketAddr::from(([127, 0, 0, 1], 2525)),
                proxy: ProxyVersion::V1,
            },
            Route {
                name: "v2".to_owned(),
                frontend: SocketAddr::from(([127, 0, 0, 1], 4002)),
                backend: SocketAddr::from(([127, 0, 0, 1], 2465)),
                proxy: ProxyVersion::V2,
            },
        ];
        let text = config_text(&routes);
        assert!(text.contains("    mode tcp\n"), "{text}");
        assert!(!text.contains("daemon"), "{text}");
        assert!(text.contains("    bind 127.0.0.1:4001\n"), "{text}");
        assert!(
            text.contains("    server sluice 127.0.0.1:2525 send-proxy\n"),
            "{text}"
        );
        assert!(
            text.contains("    server sluice 127.0.0.1:2465 send-proxy-v2\n"),
            "{text}"
        );
    }
}
