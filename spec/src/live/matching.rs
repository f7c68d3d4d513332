//! How a live server's lines are held against a vector's `S:` lines.
//!
//! In process, every byte is Sluice's and a vector pins it. A live server chooses
//! much of what it says: the human text of a reply, its greeting's host name, the
//! capabilities it offers, and (IMAP) which unsolicited untagged responses it adds.
//! The live matcher compares what the protocols fix and a vector means to prove:
//!
//! - SMTP and LMTP: one reply at a time, its lines together; the code of every
//!   line, and the enhanced status code of the last line when the vector pins one
//!   and the server sends one (RFC 5321 §4.2: the text is the server's own; the
//!   number of lines of an EHLO reply is its list of extensions).
//! - POP3: the status (`+OK`, `-ERR`, `+` for a SASL challenge) and a response code
//!   the vector pins (`[IN-USE]`, RFC 2449 §8); the lines of a multi-line response
//!   exactly, except CAPA's, which list the server's own capabilities.
//! - IMAP: each tagged completion in order by tag, status and response code; each
//!   untagged line the vector expects somewhere among those the server sent for
//!   the same commands (status responses by status and code, others exactly or as
//!   a glob), extra untagged responses allowed (RFC 9051 §7: a client accepts any
//!   untagged response at any time).

use crate::runner::line_matches;
use crate::vector::{Expect, ReplyPattern};

/// The protocol family of a live run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Smtp,
    Pop3,
    Imap,
}

/// How many lines a group of expectations waits for, given the lines so far.
/// `Done` when the server has said all the group expects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    More,
    Done,
}

/// One run of consecutive `S:` lines, with what the client sent before it.
pub(crate) struct Group<'a> {
    pub(crate) family: Family,
    /// The expected lines, with their vector line numbers.
    pub(crate) expected: Vec<(usize, &'a Expect)>,
    /// The verb of the client's last command (POP3 CAPA is matched loosely).
    pub(crate) last_verb: String,
    /// IMAP tags the client has sent, to tell completions from other lines.
    pub(crate) tags: &'a [String],
}

impl Group<'_> {
    /// Whether the server's lines so far complete what the group expects.
    pub(crate) fn progress(&self, received: &[Vec<u8>]) -> Progress {
        let done = match self.family {
            Family::Smtp => {
                let wanted = self
                    .expected
                    .iter()
                    .filter(|(_, e)| is_final_reply(e))
                    .count();
                received.iter().filter(|line| is_final_line(line)).count() >= wanted
            }
            Family::Pop3 => pop3_done(&self.expected, received),
            Family::Imap => {
                let wanted = self
                    .expected
                    .iter()
                    .filter(|(_, e)| imap_is_completion(pattern_bytes(e).as_deref(), self.tags))
                    .count();
                if wanted == 0 {
                    received.len() >= self.expected.len()
                } else {
                    received
                        .iter()
                        .filter(|line| imap_is_completion(Some(line.as_slice()), self.tags))
                        .count()
                        >= wanted
                }
            }
        };
        if done { Progress::Done } else { Progress::More }
    }

    /// Checks the received lines; the first mismatch as (vector line, message).
    pub(crate) fn check(&self, received: &[Vec<u8>]) -> Result<(), (usize, String)> {
        match self.family {
            Family::Smtp => self.check_smtp(received),
            Family::Pop3 => self.check_pop3(received),
            Family::Imap => self.check_imap(received),
        }
    }

    fn check_smtp(&self, received: &[Vec<u8>]) -> Result<(), (usize, String)> {
        let mut lines = received.iter();
        let mut reply: Vec<(usize, &ReplyPattern)> = Vec::new();
        for (line, expect) in &self.expected {
            let Expect::Reply(pattern) = expect else {
                return Err((*line, format!("`{expect}` is not an SMTP reply")));
            };
            reply.push((*line, pattern));
            if pattern.continued {
                continue;
            }
            // One whole reply from the server.
            let mut got = Vec::new();
            for sent in lines.by_ref() {
                got.push(sent);
                if is_final_line(sent) {
                    break;
                }
            }
            let (at, last) = (*line, pattern);
            let Some(final_line) = got.last() else {
                return Err((
                    at,
                    format!("expected `{expect}`, but the server sent nothing more"),
                ));
            };
            let shown = String::from_utf8_lossy(final_line).into_owned();
            if got.iter().any(|sent| code_of(sent) != Some(last.code)) {
                return Err((
                    at,
                    format!(
                        "expected a {} reply, but the server sent `{shown}`",
                        last.code
                    ),
                ));
            }
            // The enhanced status code, where the vector pins it and the server uses them.
            if let Some(status) = &last.status {
                let sent_status = status_of(final_line);
                if sent_status.is_some() && sent_status.as_deref() != Some(status.as_str()) {
                    return Err((
                        at,
                        format!("expected `{expect}`, but the server sent `{shown}`"),
                    ));
                }
            }
            reply.clear();
        }
        Ok(())
    }

    fn check_pop3(&self, received: &[Vec<u8>]) -> Result<(), (usize, String)> {
        let mut sent = received.iter().peekable();
        let mut in_data = false;
        // CAPA's lines are the server's own capabilities: not compared, read to the end.
        let capa = self.last_verb == "CAPA";
        for (line, expect) in &self.expected {
            let Expect::Line(pattern) = expect else {
                return Err((*line, format!("`{expect}` is not a POP3 line")));
            };
            let wanted = crate::escape::unescape(pattern).unwrap_or_default();
            if in_data && capa && wanted != b"." {
                continue;
            }
            if in_data && capa {
                in_data = false;
                if sent.by_ref().any(|got| got.as_slice() == b".") {
                    continue;
                }
                return Err((*line, "the CAPA list never ended with `.`".to_string()));
            }
            let Some(got) = sent.next() else {
                return Err((
                    *line,
                    format!("expected `{pattern}`, but the server sent nothing more"),
                ));
            };
            let shown = String::from_utf8_lossy(got).into_owned();
            let matched = if in_data {
                line_matches(pattern, got)
            } else {
                pop3_status_matches(&wanted, got)
            };
            if !matched {
                return Err((
                    *line,
                    format!("expected `{pattern}`, but the server sent `{shown}`"),
                ));
            }
            if in_data {
                in_data = wanted != b".";
            } else {
                in_data = wanted.starts_with(b"+OK") && self.multi_line_follows(*line);
            }
        }
        Ok(())
    }

    /// Whether the expected line after `line` is data (a multi-line response).
    fn multi_line_follows(&self, line: usize) -> bool {
        let mut after = self
            .expected
            .iter()
            .skip_while(|(at, _)| *at != line)
            .skip(1);
        matches!(after.next(), Some((_, Expect::Line(next)))
            if !next.starts_with("+OK") && !next.starts_with("-ERR") && !next.starts_with("+ "))
    }

    fn check_imap(&self, received: &[Vec<u8>]) -> Result<(), (usize, String)> {
        let mut untagged: Vec<&Vec<u8>> = Vec::new();
        let mut completions = Vec::new();
        for line in received {
            if imap_is_completion(Some(line.as_slice()), self.tags) {
                completions.push(line);
            } else {
                untagged.push(line);
            }
        }
        let mut completions = completions.into_iter();
        for (line, expect) in &self.expected {
            let Expect::Line(pattern) = expect else {
                return Err((*line, format!("`{expect}` is not an IMAP line")));
            };
            let wanted = crate::escape::unescape(pattern).unwrap_or_default();
            if imap_is_completion(Some(&wanted), self.tags) {
                let Some(got) = completions.next() else {
                    return Err((
                        *line,
                        format!("expected `{pattern}`, but the server sent nothing more"),
                    ));
                };
                if !imap_status_matches(&wanted, got) {
                    return Err((
                        *line,
                        format!(
                            "expected `{pattern}`, but the server sent `{}`",
                            String::from_utf8_lossy(got)
                        ),
                    ));
                }
                continue;
            }
            let found = untagged
                .iter()
                .position(|got| imap_untagged_matches(pattern, &wanted, got));
            match found {
                Some(index) => {
                    untagged.remove(index);
                }
                None => {
                    let sent: Vec<String> = received
                        .iter()
                        .map(|line| String::from_utf8_lossy(line).into_owned())
                        .collect();
                    return Err((
                        *line,
                        format!(
                            "expected `{pattern}` among the server's responses, which were: {sent:?}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The expectation's bytes (POP3 and IMAP `S:` lines).
fn pattern_bytes(expect: &Expect) -> Option<Vec<u8>> {
    match expect {
        Expect::Line(pattern) => crate::escape::unescape(pattern).ok(),
        _ => None,
    }
}

fn is_final_reply(expect: &Expect) -> bool {
    matches!(expect, Expect::Reply(pattern) if !pattern.continued)
}

/// An SMTP line that ends its reply: `CODE` then a space or nothing.
fn is_final_line(line: &[u8]) -> bool {
    line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit) && line.get(3) != Some(&b'-')
}

fn code_of(line: &[u8]) -> Option<u16> {
    std::str::from_utf8(line.get(..3)?).ok()?.parse().ok()
}

/// The enhanced status code (RFC 3463) after the reply code, if the line has one.
fn status_of(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line.get(4..)?).into_owned();
    let word = text.split(' ').next()?;
    let parts: Vec<&str> = word.split('.').collect();
    (parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    .then(|| word.to_string())
}

/// POP3: the group is complete once every expected status line has its answer and
/// every multi-line response its end.
fn pop3_done(expected: &[(usize, &Expect)], received: &[Vec<u8>]) -> bool {
    // The number of lines to read is only known for exact data; count responses:
    // each expected status line is one response, multi-line when data follows.
    let mut responses = Vec::new();
    for (index, (_, expect)) in expected.iter().enumerate() {
        let Some(bytes) = pattern_bytes(expect) else {
            continue;
        };
        if is_pop3_status(&bytes) {
            let multi = bytes.starts_with(b"+OK")
                && expected
                    .get(index + 1)
                    .and_then(|(_, next)| pattern_bytes(next))
                    .is_some_and(|next| !is_pop3_status(&next));
            responses.push(multi);
        }
    }
    let mut lines = received.iter();
    for multi in responses {
        let Some(status) = lines.next() else {
            return false;
        };
        // A multi-line response the server refused (`-ERR`) has no data.
        if multi
            && status.starts_with(b"+OK")
            && !lines.by_ref().any(|line| line.as_slice() == b".")
        {
            return false;
        }
    }
    true
}

fn is_pop3_status(line: &[u8]) -> bool {
    line.starts_with(b"+OK") || line.starts_with(b"-ERR") || line.starts_with(b"+ ") || line == b"+"
}

/// `+OK`/`-ERR`/`+`, and a bracketed response code when the vector pins one.
fn pop3_status_matches(wanted: &[u8], got: &[u8]) -> bool {
    let word = |line: &[u8]| -> Vec<u8> {
        line.split(|&b| b == b' ')
            .next()
            .unwrap_or_default()
            .to_vec()
    };
    if word(wanted) != word(got) {
        return false;
    }
    match response_code(wanted) {
        Some(code) => response_code(got) == Some(code),
        None => true,
    }
}

/// The atom of a `[CODE ...]` right after the status word.
fn response_code(line: &[u8]) -> Option<Vec<u8>> {
    let text = line.splitn(2, |&b| b == b' ').nth(1)?;
    let text = text.strip_prefix(b"[")?;
    let end = text.iter().position(|&b| b == b' ' || b == b']')?;
    Some(text[..end].to_ascii_uppercase())
}

/// A tagged completion: one of the client's tags, then OK, NO or BAD.
fn imap_is_completion(line: Option<&[u8]>, tags: &[String]) -> bool {
    let Some(line) = line else {
        return false;
    };
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(tag), Some(status)) = (words.next(), words.next()) else {
        return false;
    };
    tags.iter().any(|known| known.as_bytes() == tag)
        && matches!(
            status.to_ascii_uppercase().as_slice(),
            b"OK" | b"NO" | b"BAD"
        )
}

/// Tag, status and response code.
fn imap_status_matches(wanted: &[u8], got: &[u8]) -> bool {
    let words = |line: &[u8]| -> Vec<Vec<u8>> {
        line.splitn(3, |&b| b == b' ')
            .take(2)
            .map(|w| w.to_ascii_uppercase())
            .collect()
    };
    if words(wanted) != words(got) {
        return false;
    }
    // The code follows the status, so look past the tag.
    let after_tag = |line: &[u8]| -> Vec<u8> {
        line.iter()
            .position(|&b| b == b' ')
            .map_or_else(Vec::new, |space| line[space + 1..].to_vec())
    };
    match response_code(&after_tag(wanted)) {
        Some(code) => response_code(&after_tag(got)) == Some(code),
        None => true,
    }
}

/// An untagged line: status responses by status and code, CAPABILITY by its
/// name, continuation requests by their `+`, anything else exactly or as a glob.
fn imap_untagged_matches(pattern: &str, wanted: &[u8], got: &[u8]) -> bool {
    if wanted.starts_with(b"+") {
        return got.starts_with(b"+");
    }
    let status = |line: &[u8]| -> Option<Vec<u8>> {
        let word = line
            .strip_prefix(b"* ")?
            .split(|&b| b == b' ')
            .next()?
            .to_ascii_uppercase();
        matches!(
            word.as_slice(),
            b"OK" | b"NO" | b"BAD" | b"BYE" | b"PREAUTH" | b"CAPABILITY"
        )
        .then_some(word)
    };
    match status(wanted) {
        Some(word) => {
            status(got) == Some(word.clone())
                && (word == b"CAPABILITY"
                    || match response_code(&wanted[2..]) {
                        Some(code) => response_code(&got[2..]) == Some(code),
                        None => true,
                    })
        }
        None => line_matches(pattern, got),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<Vec<u8>> {
        text.iter().map(|line| line.as_bytes().to_vec()).collect()
    }

    fn reply(code: u16, continued: bool, status: Option<&str>, text: Option<&str>) -> Expect {
        Expect::Reply(ReplyPattern {
            code,
            continued,
            status: status.map(String::from),
            text: text.map(String::from),
        })
    }

    #[test]
    fn smtp_replies_match_by_code_and_status_not_text_or_line_count() {
        let expected = [
            reply(250, true, None, Some("mx.sluice.test")),
            reply(250, true, None, Some("PIPELINING")),
            reply(250, false, None, Some("SMTPUTF8")),
            reply(250, false, Some("2.1.0"), Some("sender ok")),
        ];
        let group = Group {
            family: Family::Smtp,
            expected: expected
                .iter()
                .enumerate()
                .map(|(i, e)| (i + 1, e))
                .collect(),
            last_verb: String::new(),
            tags: &[],
        };
        let postfix = lines(&[
            "250-postfix.test",
            "250-SIZE 10240000",
            "250-8BITMIME",
            "250 CHUNKING",
        ]);
        assert_eq!(group.progress(&postfix), Progress::More);
        let mut all = postfix.clone();
        all.push(b"250 2.1.0 Ok".to_vec());
        assert_eq!(group.progress(&all), Progress::Done);
        assert_eq!(group.check(&all), Ok(()));
        let mut wrong = postfix;
        wrong.push(b"250 2.1.5 Ok".to_vec());
        assert_eq!(group.check(&wrong).unwrap_err().0, 4);
        let refused = lines(&["250-a", "250 b", "554 5.7.1 no"]);
        assert!(group.check(&refused).is_err());
    }

    #[test]
    fn pop3_matches_status_code_and_data_but_not_capa() {
        let expected = [
            Expect::Line("+OK Capability list follows".into()),
            Expect::Line("USER".into()),
            Expect::Line(".".into()),
            Expect::Line("-ERR [IN-USE] maildrop locked".into()),
        ];
        let group = Group {
            family: Family::Pop3,
            expected: expected
                .iter()
                .enumerate()
                .map(|(i, e)| (i + 1, e))
                .collect(),
            last_verb: "CAPA".into(),
            tags: &[],
        };
        let dovecot = lines(&[
            "+OK",
            "CAPA",
            "TOP",
            "UIDL",
            ".",
            "-ERR [IN-USE] Unable to lock",
        ]);
        assert_eq!(group.progress(&dovecot[..4]), Progress::More);
        assert_eq!(group.progress(&dovecot), Progress::Done);
        assert_eq!(group.check(&dovecot), Ok(()));
        let other = lines(&["+OK", ".", "-ERR [SYS/TEMP] x"]);
        assert_eq!(group.check(&other).unwrap_err().0, 4);
        let unended = lines(&["+OK", "USER", "-ERR [IN-USE] x"]);
        assert_eq!(group.check(&unended).unwrap_err().0, 3);
        let not_capa = Group {
            last_verb: "LIST".into(),
            ..group
        };
        assert_eq!(not_capa.check(&dovecot).unwrap_err().0, 2);
    }

    #[test]
    fn imap_matches_completions_in_order_and_untagged_anywhere() {
        let tags = ["b".to_string()];
        let expected = [
            Expect::Line("* 2 EXISTS".into()),
            Expect::Line("* OK [UIDVALIDITY 1000] UIDs valid".into()),
            Expect::Line("b OK [READ-WRITE] SELECT completed".into()),
        ];
        let group = Group {
            family: Family::Imap,
            expected: expected
                .iter()
                .enumerate()
                .map(|(i, e)| (i + 1, e))
                .collect(),
            last_verb: "SELECT".into(),
            tags: &tags,
        };
        let dovecot = lines(&[
            "* FLAGS (\\Answered \\Recent)",
            "* OK [UIDVALIDITY 1733580000] UIDs valid",
            "* 2 EXISTS",
            "* OK [HIGHESTMODSEQ 3] Highest",
            "b OK [READ-WRITE] Select completed (0.001 + 0.000 secs).",
        ]);
        assert_eq!(group.progress(&dovecot[..4]), Progress::More);
        assert_eq!(group.progress(&dovecot), Progress::Done);
        assert_eq!(group.check(&dovecot), Ok(()));
        let mut missing = dovecot.clone();
        missing.remove(2);
        assert_eq!(group.check(&missing).unwrap_err().0, 1);
        let mut read_only = dovecot;
        read_only[4] = b"b OK [READ-ONLY] done".to_vec();
        assert_eq!(group.check(&read_only).unwrap_err().0, 3);
    }
}
