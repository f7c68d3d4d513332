//! The reply catalogue of the server session: the code, enhanced status code and
//! text of every reply it sends, in one place so that spec/REPLIES.md can be
//! checked against a single file.

use crate::smtp::address::{Domain, ForwardPath};
use crate::smtp::reply::{EnhancedStatus, Reply, ReplyCode};

/// Client- or driver-supplied text placed in a reply: control characters would
/// break the reply's framing, so they become `?`.
pub(super) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

const fn status(class: u8, subject: u16, detail: u16) -> EnhancedStatus {
    EnhancedStatus::new(class, subject, detail)
}

/// A reply without an enhanced status code: RFC 2034 §4 exempts the greeting and
/// the EHLO/HELO replies, and 3xx replies are intermediate.
fn plain(code: u16, lines: Vec<String>) -> Reply {
    Reply {
        code: ReplyCode(code),
        status: None,
        lines,
    }
}

// Connection.

pub(super) fn greeting(host: &Domain) -> Reply {
    plain(220, vec![format!("{host} ESMTP Sluice")])
}

/// RFC 2033 §4 keeps SMTP's greeting; naming the protocol tells a client that reached
/// the wrong port at once.
pub(super) fn lmtp_greeting(host: &Domain) -> Reply {
    plain(220, vec![format!("{host} LMTP Sluice")])
}

pub(super) fn closing(host: &Domain) -> Reply {
    Reply::new(221, status(2, 0, 0), format!("{host} closing connection"))
}

pub(super) fn timeout(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 4, 2),
        format!("{host} timeout; closing connection"),
    )
}

pub(super) fn shutting_down(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 3, 2),
        format!("{host} service shutting down; closing connection"),
    )
}

pub(super) fn too_many_connections(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} too many connections from your address; try again later"),
    )
}

pub(super) fn too_many_errors(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} too many errors; closing connection"),
    )
}

pub(super) fn too_many_transactions(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} too many messages in this session; closing connection"),
    )
}

pub(super) fn foreign_protocol(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} this is an SMTP server; closing connection"),
    )
}

pub(super) fn input_overflow(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} too much pipelined input; closing connection"),
    )
}

pub(super) fn too_many_auth_failures(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} too many authentication failures; closing connection"),
    )
}

// Greeting and extensions.

/// The EHLO reply: the greeting line, then one capability per line.
pub(super) fn ehlo(host: &Domain, client: &str, capabilities: Vec<String>) -> Reply {
    let mut lines = Vec::with_capacity(capabilities.len() + 1);
    lines.push(format!("{host} greets {}", sanitize(client)));
    lines.extend(capabilities);
    plain(250, lines)
}

pub(super) fn helo(host: &Domain) -> Reply {
    plain(250, vec![host.to_string()])
}

// Command syntax.

pub(super) fn unknown_command() -> Reply {
    Reply::new(500, status(5, 5, 2), "command not recognised")
}

pub(super) fn invalid_utf8() -> Reply {
    Reply::new(500, status(5, 5, 2), "command line is not valid UTF-8")
}

pub(super) fn line_too_long() -> Reply {
    Reply::new(500, status(5, 5, 2), "line too long")
}

pub(super) fn bare_line_ending_in_command() -> Reply {
    Reply::new(500, status(5, 5, 2), "command lines must end with CRLF")
}

pub(super) fn syntax_error() -> Reply {
    Reply::new(501, status(5, 5, 4), "syntax error")
}

pub(super) fn syntax_error_no_parameters() -> Reply {
    Reply::new(501, status(5, 5, 4), "syntax error (no parameters allowed)")
}

pub(super) fn bad_helo() -> Reply {
    Reply::new(501, status(5, 5, 4), "syntax error in HELO/EHLO domain")
}

pub(super) fn bad_sender() -> Reply {
    Reply::new(501, status(5, 1, 7), "bad sender address syntax")
}

pub(super) fn bad_recipient() -> Reply {
    Reply::new(501, status(5, 1, 3), "bad recipient address syntax")
}

pub(super) fn unsupported_parameter(keyword: &str) -> Reply {
    Reply::new(
        555,
        status(5, 5, 4),
        format!("unsupported parameter {}", sanitize(keyword)),
    )
}

pub(super) fn invalid_parameter(detail: &str) -> Reply {
    Reply::new(
        501,
        status(5, 5, 4),
        format!("invalid parameter: {}", sanitize(detail)),
    )
}

pub(super) fn malformed_bdat() -> Reply {
    Reply::new(501, status(5, 5, 4), "malformed BDAT command")
}

// Transactions.

pub(super) fn helo_first() -> Reply {
    Reply::new(503, status(5, 5, 1), "send HELO or EHLO first")
}

pub(super) fn nested_mail() -> Reply {
    Reply::new(503, status(5, 5, 1), "nested MAIL command")
}

pub(super) fn authentication_required() -> Reply {
    Reply::new(530, status(5, 7, 0), "authentication required")
}

pub(super) fn message_too_big() -> Reply {
    Reply::new(
        552,
        status(5, 3, 4),
        "message size exceeds fixed maximum message size",
    )
}

pub(super) fn needs_smtputf8() -> Reply {
    Reply::new(553, status(5, 6, 7), "non-ASCII address requires SMTPUTF8")
}

pub(super) fn sender_ok() -> Reply {
    Reply::new(250, status(2, 1, 0), "sender ok")
}

pub(super) fn mail_first_for_rcpt() -> Reply {
    Reply::new(503, status(5, 5, 1), "need MAIL before RCPT")
}

pub(super) fn too_many_recipients() -> Reply {
    Reply::new(452, status(4, 5, 3), "too many recipients")
}

pub(super) fn recipient_ok() -> Reply {
    Reply::new(250, status(2, 1, 5), "recipient ok")
}

pub(super) fn user_unknown(recipient: &ForwardPath) -> Reply {
    Reply::new(
        550,
        status(5, 1, 1),
        format!("{}: user unknown", sanitize(&recipient.to_string())),
    )
}

pub(super) fn relay_denied(recipient: &ForwardPath) -> Reply {
    Reply::new(
        554,
        status(5, 7, 1),
        format!("{}: relay access denied", sanitize(&recipient.to_string())),
    )
}

pub(super) fn recipient_lookup_failed(recipient: &ForwardPath) -> Reply {
    Reply::new(
        451,
        status(4, 3, 0),
        format!(
            "{}: temporary lookup failure",
            sanitize(&recipient.to_string())
        ),
    )
}

pub(super) fn mail_first_for_data() -> Reply {
    Reply::new(503, status(5, 5, 1), "need MAIL command")
}

pub(super) fn no_valid_recipients() -> Reply {
    Reply::new(554, status(5, 5, 1), "no valid recipients")
}

pub(super) fn start_data() -> Reply {
    plain(354, vec!["end data with <CR><LF>.<CR><LF>".to_owned()])
}

pub(super) fn data_after_bdat() -> Reply {
    Reply::new(503, status(5, 5, 1), "DATA after BDAT")
}

pub(super) fn bdat_requires_ehlo() -> Reply {
    Reply::new(503, status(5, 5, 1), "BDAT requires EHLO")
}

pub(super) fn ok() -> Reply {
    Reply::new(250, status(2, 0, 0), "ok")
}

pub(super) fn cannot_vrfy() -> Reply {
    Reply::new(
        252,
        status(2, 5, 0),
        "cannot VRFY user, but will accept message and attempt delivery",
    )
}

pub(super) fn expn_unavailable() -> Reply {
    Reply::new(502, status(5, 5, 1), "EXPN not available")
}

pub(super) fn lmtp_help() -> Reply {
    Reply::new(
        214,
        status(2, 0, 0),
        "commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
    )
}

pub(super) fn help() -> Reply {
    Reply::new(
        214,
        status(2, 0, 0),
        "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
    )
}

// End of data.

pub(super) fn queued(queue_id: &str) -> Reply {
    Reply::new(
        250,
        status(2, 0, 0),
        format!("ok: queued as {}", sanitize(queue_id)),
    )
}

pub(super) fn not_stored() -> Reply {
    Reply::new(451, status(4, 3, 0), "message not stored; try again later")
}

pub(super) fn text_line_too_long(limit: usize) -> Reply {
    Reply::new(
        554,
        status(5, 6, 0),
        format!("message has a line longer than {limit} octets"),
    )
}

pub(super) fn bare_line_ending_in_data() -> Reply {
    Reply::new(
        554,
        status(5, 6, 0),
        "message contains a bare CR or LF; lines must end with CRLF",
    )
}

pub(super) fn chunk_received(octets: u64) -> Reply {
    Reply::new(250, status(2, 0, 0), format!("{octets} octets received"))
}

// STARTTLS.

pub(super) fn ready_for_tls() -> Reply {
    Reply::new(220, status(2, 0, 0), "ready to start TLS")
}

pub(super) fn starttls_injection(host: &Domain) -> Reply {
    Reply::new(
        421,
        status(4, 7, 0),
        format!("{host} data pipelined after STARTTLS; closing connection"),
    )
}

pub(super) fn starttls_unavailable() -> Reply {
    Reply::new(502, status(5, 5, 1), "STARTTLS not available")
}

pub(super) fn tls_already_active() -> Reply {
    Reply::new(503, status(5, 5, 1), "TLS already active")
}

pub(super) fn starttls_in_transaction() -> Reply {
    Reply::new(
        503,
        status(5, 5, 1),
        "STARTTLS not allowed during a mail transaction",
    )
}

// AUTH.

pub(super) fn auth_unavailable() -> Reply {
    Reply::new(502, status(5, 5, 1), "AUTH not available")
}

pub(super) fn auth_requires_encryption() -> Reply {
    Reply::new(
        538,
        status(5, 7, 11),
        "encryption required for requested authentication mechanism",
    )
}

pub(super) fn unknown_mechanism() -> Reply {
    Reply::new(504, status(5, 5, 4), "unrecognised authentication type")
}

pub(super) fn auth_needs_ehlo() -> Reply {
    Reply::new(503, status(5, 5, 1), "send EHLO first")
}

pub(super) fn already_authenticated() -> Reply {
    Reply::new(503, status(5, 5, 1), "already authenticated")
}

pub(super) fn auth_in_transaction() -> Reply {
    Reply::new(
        503,
        status(5, 5, 1),
        "AUTH not allowed during a mail transaction",
    )
}

/// A 334 challenge; `text` is already base64 (empty for PLAIN's empty challenge).
pub(super) fn auth_challenge(text: &str) -> Reply {
    plain(334, vec![text.to_owned()])
}

pub(super) fn auth_cancelled() -> Reply {
    Reply::new(501, status(5, 0, 0), "authentication cancelled")
}

pub(super) fn auth_undecodable() -> Reply {
    Reply::new(501, status(5, 5, 2), "cannot decode response")
}

pub(super) fn auth_succeeded() -> Reply {
    Reply::new(235, status(2, 7, 0), "authentication successful")
}

pub(super) fn auth_invalid() -> Reply {
    Reply::new(535, status(5, 7, 8), "authentication credentials invalid")
}

pub(super) fn auth_temporary_failure() -> Reply {
    Reply::new(454, status(4, 7, 0), "temporary authentication failure")
}

// LMTP (RFC 2033).

/// EHLO or HELO on the LMTP listener: RFC 2033 §4.1 forbids a positive reply and
/// recommends 500; X.5.1 is "invalid command" (RFC 3463).
pub(super) fn lhlo_required() -> Reply {
    Reply::new(500, status(5, 5, 1), "this is an LMTP server; use LHLO")
}

pub(super) fn lhlo_first() -> Reply {
    Reply::new(503, status(5, 5, 1), "send LHLO first")
}

/// DATA (or a BDAT chunk that is not LAST) with no accepted recipient: RFC 2033 §4.2
/// requires 503 where SMTP says 554.
pub(super) fn lmtp_no_valid_recipients() -> Reply {
    Reply::new(503, status(5, 5, 1), "no valid recipients")
}

pub(super) fn recipient_stored(recipient: &ForwardPath, queue_id: &str) -> Reply {
    Reply::new(
        250,
        status(2, 0, 0),
        format!(
            "{}: ok, stored as {}",
            sanitize(&recipient.to_string()),
            sanitize(queue_id)
        ),
    )
}

pub(super) fn recipient_not_stored(recipient: &ForwardPath) -> Reply {
    Reply::new(
        451,
        status(4, 3, 0),
        format!(
            "{}: not stored; try again later",
            sanitize(&recipient.to_string())
        ),
    )
}

pub(super) fn mailbox_full(recipient: &ForwardPath) -> Reply {
    Reply::new(
        552,
        status(5, 2, 2),
        format!("{}: mailbox full", sanitize(&recipient.to_string())),
    )
}
