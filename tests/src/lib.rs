//! End-to-end tests: the real Sluice binaries, started as processes, against real
//! clients and peers (Python's smtplib, swaks, curl, Postfix, clamd, HAProxy...).
//! Helpers shared by the test files live here; the tests are in `tests/tests/`.
//!
//! Modules:
//! - [`server`]: build, configure, start, kill and restart `sluice serve`; read its store.
//! - [`smtp`]: a small raw SMTP client on tokio, for tests and `sluice-bench`.
//! - [`tools`]: external programs (python3, swaks, curl): presence checks and runners.
//! - [`clients`]: one transaction with smtplib, swaks or curl, as the test configures it.
//! - [`dovecot`]: a private Dovecot (IMAP and POP3, optionally with TLS), the anchor Sluice is compared with.
//! - [`postfix`]: private Postfix instances (a remote with 4xx/5xx recipients, an LMTP relay) and smtp-sink.
//! - [`rng`]: a seeded generator, so that random kill schedules replay.

pub mod clients;
pub mod dovecot;
pub mod haproxy;
pub mod postfix;
pub mod rng;
pub mod server;
pub mod smtp;
pub mod tools;

use std::path::{Path, PathBuf};

/// The path of a binary built from this workspace, e.g. `sluice-conform`.
///
/// Cargo only exposes `CARGO_BIN_EXE_*` to tests of the crate that owns the binary,
/// so end-to-end tests find binaries next to their own executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// The workspace's root folder (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `tests/scripts/`, where the Python clients and shell scripts live.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// A message of about `size` bytes with CRLF line endings and a unique Message-ID.
///
/// It carries lines that begin with a dot, so that every sender has to dot-stuff and
/// the server has to undo it, and it stays 7-bit so no client re-encodes it.
pub fn test_message(message_id: &str, to: &str, size: usize) -> Vec<u8> {
    let mut message = format!(
        "From: Sender <sender@client.test>\r\n\
         To: <{to}>\r\n\
         Subject: end-to-end {message_id}\r\n\
         Message-ID: <{message_id}>\r\n\
         Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         .a line that starts with a dot\r\n\
         ..and one with two\r\n\
         \r\n"
    )
    .into_bytes();
    let filler = b"The quick brown fox jumps over the lazy dog, again and again. 0123456789";
    let mut line_number = 0usize;
    while message.len() + filler.len() + 8 < size {
        line_number += 1;
        message.extend_from_slice(format!("{line_number:05} ").as_bytes());
        message.extend_from_slice(filler);
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(b".\r\n-- \r\nend\r\n");
    message
}

/// The value of the first `Message-ID` header of a message, without angle brackets.
pub fn message_id_of(message: &[u8]) -> Option<String> {
    let header_end = find(message, b"\r\n\r\n").unwrap_or(message.len());
    let headers = String::from_utf8_lossy(&message[..header_end]);
    headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("message-id")
            .then(|| value.trim().trim_matches(['<', '>']).to_owned())
    })
}

/// Splits a stored message into what the server prepended (trace header fields) and
/// the rest, when the rest is exactly `sent`.
///
/// Returns the prepended header block if `stored` is `sent` preceded only by complete
/// `Received:` fields (folded continuation lines included); `None` otherwise.
pub fn prepended_trace<'a>(stored: &'a [u8], sent: &[u8]) -> Option<&'a str> {
    let prefix = stored.strip_suffix(sent)?;
    let prefix = std::str::from_utf8(prefix).ok()?;
    if prefix.is_empty() || !prefix.ends_with("\r\n") {
        return None;
    }
    let mut saw_received = false;
    for line in prefix.trim_end_matches("\r\n").split("\r\n") {
        if line.starts_with([' ', '\t']) && saw_received {
            continue;
        }
        let (name, _) = line.split_once(':')?;
        if !name.eq_ignore_ascii_case("received") {
            return None;
        }
        saw_received = true;
    }
    saw_received.then_some(prefix)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_messages_have_crlf_lines_and_their_id() {
        let message = test_message("abc@x.test", "u@d.test", 5000);
        assert!(
            message.len() <= 5000 && message.len() > 4800,
            "{}",
            message.len()
        );
        assert_eq!(message_id_of(&message).as_deref(), Some("abc@x.test"));
        let text = String::from_utf8(message).unwrap();
        assert!(!text.replace("\r\n", "").contains(['\r', '\n']));
    }

    #[test]
    fn only_received_fields_may_precede_the_sent_message() {
        let sent = b"Subject: x\r\n\r\nbody\r\n";
        let mut stored = b"Received: from a\r\n\tby b; date\r\n".to_vec();
        stored.extend_from_slice(sent);
        assert!(prepended_trace(&stored, sent).is_some());
        let mut other = b"X-Added: y\r\n".to_vec();
        other.extend_from_slice(sent);
        assert!(prepended_trace(&other, sent).is_none());
        assert!(prepended_trace(sent, sent).is_none());
        assert!(prepended_trace(b"Received: x\r\nSubject: y\r\n\r\nbody\r\n", sent).is_none());
    }
}
