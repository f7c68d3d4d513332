//! External programs the end-to-end tests drive: whether they are installed (a
//! developer's machine may lack them, CI must not) and running them with a deadline.

use anyhow::{Context, bail};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether this run is CI's (`CI=true`), where a missing tool is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The full path of `name` found on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// True when `name` is installed. Outside CI a missing tool prints
/// `skipped: NAME not installed` and the caller returns early; in CI it panics,
/// because `tests/install-peers.sh` should have installed it.
pub fn require_tool(name: &str) -> bool {
    if find_tool(name).is_some() {
        return true;
    }
    if in_ci() {
        panic!("{name} is not installed, but CI=true: tests/install-peers.sh must install it");
    }
    println!("skipped: {name} not installed");
    false
}

/// What a finished program did.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Fails with the program's output when it did not exit 0.
    pub fn ok(self, what: &str) -> anyhow::Result<Finished> {
        if !self.success {
            bail!(
                "{what} failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Runs `program` with `args`, feeding it `stdin`, killing it after `deadline`.
pub fn run<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    stdin: Option<&[u8]>,
    deadline: Duration,
) -> anyhow::Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref().to_owned();
    let mut child = Command::new(&program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input).context("writing stdin")?;
    }
    // Readers on their own threads, so a chatty child never blocks on a full pipe.
    let stdout = child.stdout.take().map(spawn_reader);
    let stderr = child.stderr.take().map(spawn_reader);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not finish within {deadline:?}",
                program.to_string_lossy()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let join = |reader: Option<std::thread::JoinHandle<String>>| {
        reader
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default()
    };
    Ok(Finished {
        success: status.success(),
        code: status.code(),
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `tests/scripts/SCRIPT` with python3.
pub fn python_script<S: AsRef<OsStr>>(script: &str, args: &[S]) -> anyhow::Result<Finished> {
    let mut all = vec![crate::scripts_dir().join(script).into_os_string()];
    all.extend(args.iter().map(|arg| arg.as_ref().to_owned()));
    run("python3", all, None, Duration::from_secs(60))
}

/// Runs `python3 -c CODE ARGS...`.
pub fn python_code<S: AsRef<OsStr>>(code: &str, args: &[S]) -> anyhow::Result<Finished> {
    let mut all = vec![OsStr::new("-c").to_owned(), OsStr::new(code).to_owned()];
    all.extend(args.iter().map(|arg| arg.as_ref().to_owned()));
    run("python3", all, None, Duration::from_secs(60))
}
