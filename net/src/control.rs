//! The control socket: how `sluice queue retry|flush|delete` reaches a running
//! server, whose queue in memory is the authority while it runs (as `postqueue -f`
//! reaches Postfix's master). A Unix socket in the data folder, readable by its
//! owner only; one request line, one answer line.
//!
//! Requests: `flush`, `retry QUEUE-ID`, `delete QUEUE-ID`, `count`. Answers: `ok`,
//! `ok N` (count), or `error TEXT`.

use crate::delivery::{Command, DeliveryHandle};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};

/// The socket's file name inside the data folder.
pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line accepted.
const MAX_REQUEST: usize = 512;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// A request, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Flush,
    Retry(String),
    Delete(String),
    Count,
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_ascii_whitespace();
        let request = match (words.next(), words.next()) {
            (Some("flush"), None) => Request::Flush,
            (Some("count"), None) => Request::Count,
            (Some("retry"), Some(id)) => Request::Retry(id.to_owned()),
            (Some("delete"), Some(id)) => Request::Delete(id.to_owned()),
            _ => return Err(format!("unknown request {line:?}")),
        };
        if words.next().is_some() {
            return Err(format!("unexpected words in {line:?}"));
        }
        Ok(request)
    }

    pub fn to_line(&self) -> String {
        match self {
            Request::Flush => "flush\n".to_owned(),
            Request::Count => "count\n".to_owned(),
            Request::Retry(id) => format!("retry {id}\n"),
            Request::Delete(id) => format!("delete {id}\n"),
        }
    }
}

/// Listens on `path` until `shutdown`; a stale socket file from a killed server is replaced.
pub async fn serve(
    path: PathBuf,
    delivery: DeliveryHandle,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let delivery = delivery.clone();
                    tokio::spawn(async move { answer(stream, delivery).await });
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn answer(stream: UnixStream, delivery: DeliveryHandle) {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(reader.take(MAX_REQUEST as u64));
    let reply = match reader.read_line(&mut line).await {
        Ok(_) => match Request::parse(line.trim_end()) {
            Ok(request) => carry_out(request, &delivery).await,
            Err(error) => format!("error {error}"),
        },
        Err(error) => format!("error {error}"),
    };
    let _ = writer.write_all(format!("{reply}\n").as_bytes()).await;
}

async fn carry_out(request: Request, delivery: &DeliveryHandle) -> String {
    let command = match request {
        Request::Flush => Command::RetryNow(None),
        Request::Retry(id) => Command::RetryNow(Some(id)),
        Request::Delete(id) => Command::Delete(id),
        Request::Count => {
            let (sender, receiver) = oneshot::channel();
            if !delivery.send(Command::Count(sender)).await {
                return "error the delivery service is not running".to_owned();
            }
            return match receiver.await {
                Ok(count) => format!("ok {count}"),
                Err(_) => "error no answer".to_owned(),
            };
        }
    };
    if delivery.send(command).await {
        "ok".to_owned()
    } else {
        "error the delivery service is not running".to_owned()
    }
}

/// Sends one request to a running server. `Ok(None)` when no server listens (no
/// socket, or a stale one): the caller then works on the store directly.
pub async fn request(data_dir: &Path, request: &Request) -> Result<Option<String>, String> {
    let path = socket_path(data_dir);
    let Ok(mut stream) = UnixStream::connect(&path).await else {
        return Ok(None);
    };
    stream
        .write_all(request.to_line().as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut answer = String::new();
    BufReader::new(stream.take(MAX_REQUEST as u64))
        .read_line(&mut answer)
        .await
        .map_err(|error| error.to_string())?;
    let answer = answer.trim_end().to_owned();
    match answer.strip_prefix("error ") {
        Some(error) => Err(error.to_owned()),
        None => Ok(Some(answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_junk_is_refused() {
        for request in [
            Request::Flush,
            Request::Count,
            Request::Retry("Q1".to_owned()),
            Request::Delete("Q2".to_owned()),
        ] {
            assert_eq!(Request::parse(request.to_line().trim_end()), Ok(request));
        }
        assert!(Request::parse("retry").is_err());
        assert!(Request::parse("delete a b").is_err());
        assert!(Request::parse("reboot").is_err());
    }
}
