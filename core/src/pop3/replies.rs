//! The response catalogue of the POP3 session: the status, response code (RFC 2449
//! §8, RFC 3206) and text of every response it sends, in one place so that
//! spec/POP3-REPLIES.md can be checked against a single file. No response echoes
//! client text, so none can exceed RFC 2449's 512 octets.

use crate::smtp::address::Domain;

/// One status line: `+OK text` or `-ERR [CODE] text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Response {
    ok: bool,
    code: Option<&'static str>,
    text: String,
}

impl Response {
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let status = if self.ok { "+OK" } else { "-ERR" };
        let line = match (self.code, self.text.is_empty()) {
            (Some(code), _) => format!("{status} [{code}] {}\r\n", self.text),
            (None, true) => format!("{status}\r\n"),
            (None, false) => format!("{status} {}\r\n", self.text),
        };
        line.into_bytes()
    }
}

fn ok(text: impl Into<String>) -> Response {
    Response {
        ok: true,
        code: None,
        text: text.into(),
    }
}

fn err(text: impl Into<String>) -> Response {
    Response {
        ok: false,
        code: None,
        text: text.into(),
    }
}

fn err_code(code: &'static str, text: impl Into<String>) -> Response {
    Response {
        ok: false,
        code: Some(code),
        text: text.into(),
    }
}

// Connection.

pub(super) fn greeting(host: &Domain) -> Response {
    ok(format!("{host} POP3 Sluice ready"))
}

pub(super) fn signing_off(host: &Domain) -> Response {
    ok(format!("{host} POP3 Sluice signing off"))
}

pub(super) fn signing_off_after_deletions(host: &Domain, count: usize) -> Response {
    ok(format!(
        "{host} POP3 Sluice signing off ({count} messages deleted)"
    ))
}

/// RFC 1939 §6: the deletions could not all be applied.
pub(super) fn deletions_failed() -> Response {
    err_code(
        "SYS/TEMP",
        "some deleted messages not removed; try again later",
    )
}

pub(super) fn shutting_down() -> Response {
    err_code("SYS/TEMP", "server shutting down; try again later")
}

pub(super) fn too_many_bad_commands() -> Response {
    err("too many bad commands; closing connection")
}

pub(super) fn input_overflow() -> Response {
    err("too much pipelined input; closing connection")
}

// Lines and commands.

pub(super) fn line_too_long() -> Response {
    err("command line too long")
}

pub(super) fn bare_line_ending() -> Response {
    err("command lines end with CRLF")
}

pub(super) fn unknown_command() -> Response {
    err("unknown command")
}

pub(super) fn syntax_error() -> Response {
    err("syntax error in arguments")
}

pub(super) fn bad_message_number() -> Response {
    err("invalid message number")
}

pub(super) fn wrong_state() -> Response {
    err("command not valid in this state")
}

// CAPA.

pub(super) fn capability_list() -> Response {
    ok("capability list follows")
}

// STLS.

pub(super) fn begin_tls() -> Response {
    ok("begin TLS negotiation")
}

pub(super) fn tls_already_active() -> Response {
    err("TLS already active")
}

pub(super) fn stls_unavailable() -> Response {
    err("STLS not available")
}

/// Bytes arrived after STLS, before the handshake: RFC 2595 §4's injection risk.
pub(super) fn stls_injection() -> Response {
    err("pipelined input after STLS; closing connection")
}

// Authorization.

pub(super) fn send_pass() -> Response {
    ok("send PASS")
}

pub(super) fn pass_without_user() -> Response {
    err("send USER first")
}

/// RFC 8314 §3.3 / RFC 2595 §2: passwords do not cross the network in clear.
pub(super) fn plaintext_refused() -> Response {
    err_code(
        "AUTH",
        "plaintext authentication refused before TLS; use STLS or the POP3S port",
    )
}

pub(super) fn auth_continue() -> Vec<u8> {
    b"+ \r\n".to_vec()
}

pub(super) fn unsupported_mechanism() -> Response {
    err("unsupported authentication mechanism")
}

pub(super) fn auth_cancelled() -> Response {
    err("authentication cancelled")
}

pub(super) fn auth_undecodable() -> Response {
    err("malformed authentication response")
}

pub(super) fn login_failed() -> Response {
    err_code("AUTH", "invalid user name or password")
}

pub(super) fn auth_temporary_failure() -> Response {
    err_code(
        "SYS/TEMP",
        "authentication service unavailable; try again later",
    )
}

pub(super) fn too_many_auth_failures() -> Response {
    err_code(
        "AUTH",
        "too many authentication failures; closing connection",
    )
}

pub(super) fn maildrop_locked() -> Response {
    err_code("IN-USE", "maildrop already locked by another session")
}

pub(super) fn maildrop_unavailable() -> Response {
    err_code("SYS/TEMP", "maildrop unavailable; try again later")
}

pub(super) fn maildrop_too_large() -> Response {
    err_code("SYS/PERM", "maildrop has too many messages to serve")
}

pub(super) fn maildrop_ready(messages: usize, octets: u64) -> Response {
    ok(format!(
        "maildrop has {messages} messages ({octets} octets)"
    ))
}

// Transaction.

pub(super) fn stat(messages: usize, octets: u64) -> Response {
    ok(format!("{messages} {octets}"))
}

pub(super) fn listing(messages: usize, octets: u64) -> Response {
    ok(format!("{messages} messages ({octets} octets)"))
}

pub(super) fn scan_line(number: u64, size: u64) -> Response {
    ok(format!("{number} {size}"))
}

pub(super) fn uid_listing() -> Response {
    ok("unique-id listing follows")
}

pub(super) fn uid_line(number: u64, uid: &str) -> Response {
    ok(format!("{number} {uid}"))
}

pub(super) fn no_such_message() -> Response {
    err("no such message")
}

pub(super) fn message_follows(size: u64) -> Response {
    ok(format!("{size} octets"))
}

pub(super) fn top_follows() -> Response {
    ok("top of message follows")
}

pub(super) fn read_failed() -> Response {
    err_code("SYS/TEMP", "message cannot be read now; try again later")
}

pub(super) fn deleted(number: u64) -> Response {
    ok(format!("message {number} deleted"))
}

pub(super) fn noop() -> Response {
    ok("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(noop().to_bytes(), b"+OK\r\n");
        assert_eq!(stat(2, 320).to_bytes(), b"+OK 2 320\r\n");
        assert_eq!(
            maildrop_locked().to_bytes(),
            b"-ERR [IN-USE] maildrop already locked by another session\r\n"
        );
    }
}
