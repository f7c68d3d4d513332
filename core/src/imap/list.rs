//! LIST and LSUB: the command's options (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258,
//! SPECIAL-USE RFC 6154, LIST-STATUS RFC 5819), pattern matching, and the responses.
//!
//! imap-codec 2.0.0-alpha.10 parses only the basic `LIST reference pattern`; the
//! extended form (selection options, several patterns, RETURN options) is parsed
//! here with a small tokenizer over the command's bytes. The store gives every
//! mailbox and subscription; which of them the client sees, and with which
//! attributes, is decided here.

use crate::imap::request::ListedMailbox;
use crate::imap::responses::{StatusItem, mailbox as mailbox_name, status_data};
use crate::imap::syntax::{Parser, Value, text};

/// The hierarchy delimiter.
pub(super) const DELIMITER: char = '/';

/// One LIST or LSUB command, as understood.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ListSpec {
    pub(super) reference: String,
    pub(super) patterns: Vec<String>,
    /// LSUB (RFC 3501 §6.3.9; deprecated by RFC 9051 but still used).
    pub(super) lsub: bool,
    /// Selection SUBSCRIBED.
    pub(super) select_subscribed: bool,
    /// Selection SPECIAL-USE.
    pub(super) select_special_use: bool,
    /// Selection RECURSIVEMATCH (RFC 5258 §3.1): a name matching the pattern but
    /// not the selection is listed, with CHILDINFO, when a descendant matches it.
    pub(super) recursive_match: bool,
    /// RETURN (SUBSCRIBED), implied by selection SUBSCRIBED.
    pub(super) return_subscribed: bool,
    /// RETURN (STATUS (...)).
    pub(super) return_status: Option<Vec<StatusItem>>,
}

/// The extended LIST form: `tag LIST [(opts)] ref (patterns)|pattern [RETURN (opts)]`.
/// `None` when it is not a well-formed LIST.
pub(super) fn parse_extended(command: &[u8]) -> Option<(String, ListSpec)> {
    let mut parser = Parser::new(command);
    let Value::Atom(tag) = parser.value()? else {
        return None;
    };
    parser.space()?;
    let Value::Atom(verb) = parser.value()? else {
        return None;
    };
    if !verb.eq_ignore_ascii_case("LIST") {
        return None;
    }
    let mut spec = ListSpec::default();
    parser.space()?;
    let mut next = parser.value()?;
    if let Value::List(options) = &next {
        for option in options {
            match option {
                Value::Atom(word) if word.eq_ignore_ascii_case("SUBSCRIBED") => {
                    spec.select_subscribed = true;
                    spec.return_subscribed = true;
                }
                Value::Atom(word) if word.eq_ignore_ascii_case("SPECIAL-USE") => {
                    spec.select_special_use = true;
                }
                Value::Atom(word) if word.eq_ignore_ascii_case("RECURSIVEMATCH") => {
                    spec.recursive_match = true;
                }
                Value::Atom(word) if word.eq_ignore_ascii_case("REMOTE") => {}
                _ => return None,
            }
        }
        // RFC 5258 §3.1: RECURSIVEMATCH alone (or with REMOTE only) is BAD.
        if spec.recursive_match && !spec.select_subscribed && !spec.select_special_use {
            return None;
        }
        parser.space()?;
        next = parser.value()?;
    }
    spec.reference = text(next)?;
    parser.space()?;
    match parser.value()? {
        Value::List(patterns) if !patterns.is_empty() => {
            for pattern in patterns {
                spec.patterns.push(text(pattern)?);
            }
        }
        Value::List(_) => return None,
        pattern => spec.patterns.push(text(pattern)?),
    }
    if parser.peek() == Some(b' ') {
        parser.space()?;
        let Value::Atom(word) = parser.value()? else {
            return None;
        };
        if !word.eq_ignore_ascii_case("RETURN") {
            return None;
        }
        parser.space()?;
        let Value::List(options) = parser.value()? else {
            return None;
        };
        let mut options = options.into_iter();
        while let Some(option) = options.next() {
            let Value::Atom(word) = option else {
                return None;
            };
            if word.eq_ignore_ascii_case("SUBSCRIBED") {
                spec.return_subscribed = true;
            } else if word.eq_ignore_ascii_case("STATUS") {
                let Some(Value::List(items)) = options.next() else {
                    return None;
                };
                let mut wanted = Vec::new();
                for item in items {
                    let Value::Atom(item) = item else {
                        return None;
                    };
                    wanted.push(status_item(&item)?);
                }
                spec.return_status = Some(wanted);
            } else if !(word.eq_ignore_ascii_case("CHILDREN")
                || word.eq_ignore_ascii_case("SPECIAL-USE"))
            {
                // CHILDREN and SPECIAL-USE attributes are always returned.
                return None;
            }
        }
    }
    parser.line_end()?;
    Some((tag, spec))
}

/// A STATUS item name.
pub(super) fn status_item(name: &str) -> Option<StatusItem> {
    Some(match name.to_ascii_uppercase().as_str() {
        "MESSAGES" => StatusItem::Messages,
        "RECENT" => StatusItem::Recent,
        "UIDNEXT" => StatusItem::UidNext,
        "UIDVALIDITY" => StatusItem::UidValidity,
        "UNSEEN" => StatusItem::Unseen,
        "DELETED" => StatusItem::Deleted,
        "SIZE" => StatusItem::Size,
        "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
        "APPENDLIMIT" => StatusItem::AppendLimit,
        _ => return None,
    })
}

/// Whether `name` matches the IMAP pattern: `*` anything, `%` anything but the
/// delimiter. INBOX matches case-insensitively.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    // The matcher recurses once per pattern character: a pattern longer than any
    // name could need matches nothing rather than deepening the stack.
    if pattern.len() > 4 * crate::mailbox::MAX_FOLDER_NAME_LENGTH {
        return false;
    }
    let name = if name.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        name
    };
    let pattern_chars: Vec<char> = pattern.chars().collect();
    let name_chars: Vec<char> = name.chars().collect();
    // Iterative wildcard matching with backtracking over the last star (bounded:
    // names and patterns are a few hundred characters at most).
    fn go(pattern: &[char], name: &[char], steps: &mut u32) -> bool {
        *steps += 1;
        if *steps > 100_000 {
            return false;
        }
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| go(rest, &name[skip..], steps)),
            Some(('%', rest)) => {
                let limit = name
                    .iter()
                    .position(|&c| c == DELIMITER)
                    .unwrap_or(name.len());
                (0..=limit).any(|skip| go(rest, &name[skip..], steps))
            }
            Some((c, rest)) => name.first() == Some(c) && go(rest, &name[1..], steps),
        }
    }
    let upper_inbox: Vec<char>;
    let pattern_chars = if let (Some(head), Some(tail)) = (pattern.get(..5), pattern.get(5..))
        && head.eq_ignore_ascii_case("INBOX")
    {
        upper_inbox = "INBOX".chars().chain(tail.chars()).collect();
        &upper_inbox
    } else {
        &pattern_chars
    };
    let mut steps = 0;
    go(pattern_chars, &name_chars, &mut steps)
}

/// The full pattern from a reference and a pattern (RFC 9051 §6.3.9: concatenated).
fn full_pattern(reference: &str, pattern: &str) -> String {
    format!("{reference}{pattern}")
}

/// The untagged responses of a LIST or LSUB over every mailbox the store gave.
pub(super) fn respond(
    spec: &ListSpec,
    mailboxes: &[ListedMailbox],
    utf8: bool,
    append_limit: u32,
) -> Vec<u8> {
    let patterns: Vec<String> = spec
        .patterns
        .iter()
        .map(|pattern| full_pattern(&spec.reference, pattern))
        .collect();
    let existing: Vec<&str> = mailboxes
        .iter()
        .filter(|mailbox| mailbox.exists)
        .map(|mailbox| mailbox.name.as_str())
        .collect();
    // Under RECURSIVEMATCH with SUBSCRIBED, a parent of a subscription is a
    // candidate even when the store knows no such name (RFC 5258 §3.5's example
    // lists a parent that neither exists nor is subscribed).
    let recursive_subscribed = spec.recursive_match && spec.select_subscribed;
    let subscribed: Vec<&str> = mailboxes
        .iter()
        .filter(|mailbox| mailbox.subscribed)
        .map(|mailbox| mailbox.name.as_str())
        .collect();
    let mut parents: Vec<ListedMailbox> = Vec::new();
    if recursive_subscribed {
        for name in &subscribed {
            for (at, _) in name.match_indices(DELIMITER) {
                let parent = &name[..at];
                if !mailboxes.iter().any(|mailbox| mailbox.name == parent)
                    && !parents.iter().any(|mailbox| mailbox.name == parent)
                {
                    parents.push(ListedMailbox {
                        name: parent.to_owned(),
                        exists: false,
                        subscribed: false,
                        special_use: None,
                        status: None,
                    });
                }
            }
        }
    }
    // The store's order is its own; the client sees names in byte order, the same
    // from every store.
    let mut sorted: Vec<&ListedMailbox> = mailboxes.iter().chain(parents.iter()).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for mailbox in sorted {
        if !patterns
            .iter()
            .any(|pattern| matches(pattern, &mailbox.name))
        {
            continue;
        }
        // RFC 5258 §3.5: a name that fails the selection but has a subscribed
        // descendant is still listed, with CHILDINFO saying why. Those that pass
        // the selection are listed as before, without CHILDINFO (a MUST only for
        // the former).
        let prefix = format!("{}{DELIMITER}", mailbox.name);
        let childinfo = recursive_subscribed
            && !mailbox.subscribed
            && subscribed.iter().any(|name| name.starts_with(&prefix));
        let subscribed_only = spec.lsub || spec.select_subscribed;
        if subscribed_only && !mailbox.subscribed && !childinfo {
            continue;
        }
        if !subscribed_only && !mailbox.exists {
            continue;
        }
        if spec.select_special_use && mailbox.special_use.is_none() {
            continue;
        }
        let mut attributes: Vec<&str> = Vec::new();
        if !mailbox.exists {
            attributes.push(if spec.lsub {
                "\\Noselect"
            } else {
                "\\NonExistent"
            });
        }
        if !spec.lsub {
            let prefix = format!("{}{DELIMITER}", mailbox.name);
            let children = existing.iter().any(|name| name.starts_with(&prefix));
            attributes.push(if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if spec.return_subscribed && mailbox.subscribed {
                attributes.push("\\Subscribed");
            }
        }
        if let Some(special) = mailbox.special_use {
            attributes.push(special.attribute());
        }
        let verb = if spec.lsub { "LSUB" } else { "LIST" };
        let extended = if childinfo {
            " (\"CHILDINFO\" (\"SUBSCRIBED\"))"
        } else {
            ""
        };
        out.extend_from_slice(
            format!(
                "* {verb} ({}) \"{DELIMITER}\" {}{extended}\r\n",
                attributes.join(" "),
                mailbox_name(&mailbox.name, utf8)
            )
            .as_bytes(),
        );
        if let (Some(items), Some(status)) = (&spec.return_status, &mailbox.status) {
            out.extend(status_data(
                &mailbox.name,
                items,
                status,
                utf8,
                append_limit,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::SpecialUse;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "Sent"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("INBOX", "inbox"));
        assert!(!matches("Sent", "sent"));
        assert!(matches("S*t", "Sent"));
        assert!(!matches("S*x", "Sent"));
        assert!(
            matches("Entwü*", "Entwürfe"),
            "a pattern cut inside a character"
        );
        assert!(matches("inbox/ä", "INBOX/ä"));
        assert!(
            !matches(&"*".repeat(60_000), "a"),
            "bounded, not a stack overflow"
        );
        assert!(
            !matches(&"*a".repeat(30), &"a".repeat(29)),
            "bounded backtracking"
        );
    }

    #[test]
    fn extended_list_is_parsed() {
        let (tag, spec) = parse_extended(
            b"a1 LIST (SUBSCRIBED SPECIAL-USE) \"\" (\"INBOX\" {4}\r\nS%nt) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))\r\n",
        )
        .unwrap();
        assert_eq!(tag, "a1");
        assert!(spec.select_subscribed && spec.select_special_use && spec.return_subscribed);
        assert_eq!(spec.patterns, vec!["INBOX".to_owned(), "S%nt".to_owned()]);
        assert_eq!(
            spec.return_status,
            Some(vec![StatusItem::Messages, StatusItem::UidNext])
        );
        assert_eq!(
            parse_extended(b"a LIST \"\" *\r\n").map(|(_, s)| s.patterns),
            Some(vec!["*".to_owned()])
        );
        assert_eq!(parse_extended(b"a LIST (BOGUS) \"\" *\r\n"), None);
        assert_eq!(parse_extended(b"a LIST \"\" * RETURN (FOO)\r\n"), None);
        assert_eq!(parse_extended(b"a LIST \"\" ((((*))))\r\n"), None);
    }

    fn listed(
        name: &str,
        exists: bool,
        subscribed: bool,
        special: Option<SpecialUse>,
    ) -> ListedMailbox {
        ListedMailbox {
            name: name.to_owned(),
            exists,
            subscribed,
            special_use: special,
            status: None,
        }
    }

    #[test]
    fn responses_carry_children_special_use_and_subscriptions() {
        let mailboxes = vec![
            listed("INBOX", true, true, None),
            listed("Sent", true, false, Some(SpecialUse::Sent)),
            listed("a", true, true, None),
            listed("a/b", true, false, None),
            listed("gone", false, true, None),
        ];
        let spec = ListSpec {
            patterns: vec!["*".into()],
            ..ListSpec::default()
        };
        let text = String::from_utf8(respond(&spec, &mailboxes, false, 0)).unwrap();
        assert_eq!(
            text,
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n\
             * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n\
             * LIST (\\HasChildren) \"/\" \"a\"\r\n\
             * LIST (\\HasNoChildren) \"/\" \"a/b\"\r\n"
        );
        let spec = ListSpec {
            patterns: vec!["*".into()],
            select_subscribed: true,
            return_subscribed: true,
            ..ListSpec::default()
        };
        let text = String::from_utf8(respond(&spec, &mailboxes, false, 0)).unwrap();
        assert!(
            text.contains("* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" \"gone\""),
            "{text}"
        );
        assert!(!text.contains("Sent"));
        let spec = ListSpec {
            patterns: vec!["%".into()],
            select_special_use: true,
            ..ListSpec::default()
        };
        let text = String::from_utf8(respond(&spec, &mailboxes, false, 0)).unwrap();
        assert_eq!(text, "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n");
    }

    #[test]
    fn recursivematch_lists_a_parent_of_a_subscription_with_childinfo() {
        let mailboxes = vec![
            listed("INBOX", true, true, None),
            listed("a", true, false, None),
            listed("a/b", true, true, None),
            listed("x/y/z", false, true, None),
            listed("lonely", true, false, None),
        ];
        let spec = ListSpec {
            patterns: vec!["%".into()],
            select_subscribed: true,
            return_subscribed: true,
            recursive_match: true,
            ..ListSpec::default()
        };
        let text = String::from_utf8(respond(&spec, &mailboxes, false, 0)).unwrap();
        assert_eq!(
            text,
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"\r\n\
             * LIST (\\HasChildren) \"/\" \"a\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n\
             * LIST (\\NonExistent \\HasNoChildren) \"/\" \"x\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );
        // Without RECURSIVEMATCH the parents are not listed.
        let spec = ListSpec {
            recursive_match: false,
            ..spec
        };
        let text = String::from_utf8(respond(&spec, &mailboxes, false, 0)).unwrap();
        assert_eq!(
            text,
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"\r\n"
        );
        // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option.
        assert_eq!(parse_extended(b"a LIST (RECURSIVEMATCH) \"\" %\r\n"), None);
        assert!(parse_extended(b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n").is_some());
    }
}
