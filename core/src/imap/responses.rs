//! Every response the session sends, in one place: status responses with their
//! codes (RFC 9051 §7.1, RFC 5530), the capability list, and data responses.
//!
//! imap-codec parses the commands; the responses are written here because most of
//! what IMAP4rev2 adds is not in imap-types 2.0.0-alpha.8 as a value (LIST-STATUS,
//! the RFC 5530 codes, APPENDLIMIT, \HasChildren and the special-use attributes as
//! list attributes, VANISHED with our UID sets), and the rest is one line of text.
//! Strings the client gave (mailbox names) go through [`string`], which quotes or
//! makes a literal as RFC 9051 §4.3 requires.

use crate::imap::config::Limits;
use crate::imap::request::{MailboxRefusal, MailboxStatus};

/// Tagged or untagged result of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Ok,
    No,
    Bad,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Ok => "OK",
            Kind::No => "NO",
            Kind::Bad => "BAD",
        }
    }
}

/// `tag KIND [code] text` (or `*` without a tag).
pub(super) fn status(tag: Option<&str>, kind: Kind, code: Option<&str>, text: &str) -> Vec<u8> {
    let mut line = String::with_capacity(32 + text.len());
    line.push_str(tag.unwrap_or("*"));
    line.push(' ');
    line.push_str(kind.word());
    line.push(' ');
    if let Some(code) = code {
        line.push('[');
        line.push_str(code);
        line.push_str("] ");
    }
    line.push_str(text);
    line.push_str("\r\n");
    line.into_bytes()
}

pub(super) fn tagged(tag: &str, kind: Kind, code: Option<&str>, text: &str) -> Vec<u8> {
    status(Some(tag), kind, code, text)
}

pub(super) fn untagged_ok(code: &str, text: &str) -> Vec<u8> {
    status(None, Kind::Ok, Some(code), text)
}

pub(super) fn bye(text: &str) -> Vec<u8> {
    format!("* BYE {text}\r\n").into_bytes()
}

/// A continuation request.
pub(super) fn continuation(text: &str) -> Vec<u8> {
    if text.is_empty() {
        b"+ \r\n".to_vec()
    } else {
        format!("+ {text}\r\n").into_bytes()
    }
}

/// What the session offers, which depends on its state.
#[derive(Clone, Copy, Debug)]
pub(super) struct Offer {
    pub(super) authenticated: bool,
    pub(super) starttls: bool,
    /// LOGINDISABLED: no plaintext login is possible now.
    pub(super) login_disabled: bool,
}

/// The capability list, without `* CAPABILITY` or brackets.
pub(super) fn capabilities(offer: Offer, limits: &Limits) -> String {
    let mut caps = vec!["IMAP4rev1", "IMAP4rev2"];
    if !offer.authenticated {
        if offer.starttls {
            caps.push("STARTTLS");
        }
        if offer.login_disabled {
            caps.push("LOGINDISABLED");
        } else {
            caps.extend(["AUTH=PLAIN", "SASL-IR"]);
        }
    }
    caps.extend(["LITERAL+", "ENABLE", "IDLE", "NAMESPACE", "ID"]);
    let mut text = caps.join(" ");
    if offer.authenticated {
        text.push_str(
            " UNSELECT UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED LIST-STATUS CHILDREN ESEARCH CONDSTORE QRESYNC",
        );
        text.push_str(&format!(" APPENDLIMIT={}", limits.append_limit));
    }
    text
}

/// The response code and text of a store refusal.
pub(super) fn refusal(refusal: &MailboxRefusal) -> (&'static str, String) {
    match refusal {
        MailboxRefusal::NoSuchMailbox => ("NONEXISTENT", "No such mailbox".to_owned()),
        MailboxRefusal::AlreadyExists => ("ALREADYEXISTS", "Mailbox exists already".to_owned()),
        MailboxRefusal::Cannot(why) => ("CANNOT", sanitise(why)),
        MailboxRefusal::OverQuota => ("OVERQUOTA", "Over quota".to_owned()),
        MailboxRefusal::TooBig => ("TOOBIG", "Message too big".to_owned()),
        MailboxRefusal::Limit(why) => ("LIMIT", sanitise(why)),
        MailboxRefusal::Unavailable => ("UNAVAILABLE", "Try again later".to_owned()),
    }
}

/// Text safe for a response line: printable ASCII only, bounded.
pub(super) fn sanitise(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(200)
        .collect();
    if cleaned.is_empty() {
        "Refused".to_owned()
    } else {
        cleaned
    }
}

/// A string as IMAP wants it: quoted when it can be (UTF-8 in quotes only when
/// the client enabled it), else a literal.
pub(super) fn string(text: &str, utf8: bool) -> String {
    let quotable = text
        .bytes()
        .all(|byte| byte != b'\r' && byte != b'\n' && byte != 0 && (utf8 || byte < 0x80));
    if quotable {
        let mut quoted = String::with_capacity(text.len() + 2);
        quoted.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    } else {
        format!("{{{}}}\r\n{}", text.len(), text)
    }
}

/// A mailbox name for the client: UTF-8, or modified UTF-7 for IMAP4rev1 clients.
pub(super) fn mailbox(name: &str, utf8: bool) -> String {
    if utf8 {
        string(name, true)
    } else {
        string(&super::utf7::encode(name), false)
    }
}

/// Which STATUS items a client asked for, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
    /// RFC 7889: the largest message APPEND takes here.
    AppendLimit,
}

/// `* STATUS name (items)`.
pub(super) fn status_data(
    name: &str,
    items: &[StatusItem],
    status: &MailboxStatus,
    utf8: bool,
    append_limit: u32,
) -> Vec<u8> {
    let values: Vec<String> = items
        .iter()
        .map(|item| match item {
            StatusItem::Messages => format!("MESSAGES {}", status.messages),
            StatusItem::Recent => "RECENT 0".to_owned(),
            StatusItem::UidNext => format!("UIDNEXT {}", status.uidnext),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", status.uidvalidity),
            StatusItem::Unseen => format!("UNSEEN {}", status.unseen),
            StatusItem::Deleted => format!("DELETED {}", status.deleted),
            StatusItem::Size => format!("SIZE {}", status.size),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", status.highest_modseq),
            StatusItem::AppendLimit => format!("APPENDLIMIT {append_limit}"),
        })
        .collect();
    format!(
        "* STATUS {} ({})\r\n",
        mailbox(name, utf8),
        values.join(" ")
    )
    .into_bytes()
}

/// The system flags every mailbox allows.
pub(super) const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// `* FLAGS (...)`.
pub(super) fn flags(keywords: &[String]) -> Vec<u8> {
    let mut text = format!("* FLAGS ({SYSTEM_FLAGS}");
    for keyword in keywords {
        text.push(' ');
        text.push_str(keyword);
    }
    text.push_str(")\r\n");
    text.into_bytes()
}

/// `* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`.
pub(super) fn fetch_flags(seq: u32, uid: u32, flags: &[String], modseq: Option<u64>) -> Vec<u8> {
    let mut text = format!("* {seq} FETCH (UID {uid} FLAGS ({})", flags.join(" "));
    if let Some(modseq) = modseq {
        text.push_str(&format!(" MODSEQ ({modseq})"));
    }
    text.push_str(")\r\n");
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(string("INBOX", false), "\"INBOX\"");
        assert_eq!(string("a\"b\\c", false), "\"a\\\"b\\\\c\"");
        assert_eq!(string("Käse", false), "{5}\r\nKäse");
        assert_eq!(string("Käse", true), "\"Käse\"");
        assert_eq!(string("a\r\nb", true), "{4}\r\na\r\nb");
    }

    #[test]
    fn capabilities_before_and_after_login() {
        let limits = Limits::default();
        let before = capabilities(
            Offer {
                authenticated: false,
                starttls: true,
                login_disabled: true,
            },
            &limits,
        );
        assert!(before.contains("STARTTLS") && before.contains("LOGINDISABLED"));
        assert!(!before.contains("AUTH=PLAIN") && !before.contains("QRESYNC"));
        let after = capabilities(
            Offer {
                authenticated: true,
                starttls: false,
                login_disabled: false,
            },
            &limits,
        );
        assert!(after.contains("APPENDLIMIT=26214400") && after.contains("LIST-STATUS"));
        assert!(!after.contains("STARTTLS") && !after.contains("AUTH=PLAIN"));
    }

    #[test]
    fn refusal_text_is_sanitised() {
        assert_eq!(sanitise("bad\r\nname"), "bad??name");
        assert_eq!(sanitise(""), "Refused");
    }
}
