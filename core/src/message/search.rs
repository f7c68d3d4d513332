//! SEARCH matching (RFC 9051 §6.4.4): whether one message matches a key tree, from
//! its bytes and its metadata.
//!
//! Choices where the RFC leaves room, as Dovecot makes them:
//! - String keys match a substring, case-insensitively by Unicode simple case
//!   folding, of the decoded text: header fields with encoded-words decoded
//!   (RFC 2047), bodies with their transfer encoding removed and their charset
//!   converted. BODY reads the text/* parts (also inside message/rfc822 parts);
//!   TEXT reads every header too: the message's, each part's MIME header and each
//!   encapsulated message's.
//! - BEFORE/ON/SINCE compare the internal date's calendar date in its own zone;
//!   SENT* the Date field's calendar date in the zone it was written in. A message
//!   without a readable Date field sorts before every date (SENTBEFORE matches it).
//! - KEYWORD matches case-insensitively (flag names are, RFC 9051 §2.3.2).
//! - MODSEQ compares the message's modseq; the per-flag entry name is not kept
//!   apart, so every entry compares that one value (RFC 7162 §3.1.5 allows it).
//!
//! Cost: flags, numbers and dates are O(1); the decoded header and body texts are
//! built at most once per call (O(size)), only when a string key asks for them.

use super::MessageView;
use super::decode;
use super::structure::{Part, PartKind};
use chrono::Datelike;
use imap_types::core::Charset;
use imap_types::datetime::{DateTime, NaiveDate};
use imap_types::flag::Flag;
use imap_types::search::SearchKey;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mail_parser::MessageParser;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::num::NonZeroU32;

/// The charsets SEARCH accepts, for the `[BADCHARSET (...)]` response code.
pub const SUPPORTED_CHARSETS: &[&str] = &["UTF-8", "US-ASCII"];

/// Why a SEARCH cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A charset other than UTF-8 and US-ASCII: answer NO [BADCHARSET (UTF-8 US-ASCII)].
    #[error("unsupported search charset {0:?}")]
    BadCharset(String),
}

/// Accepts the SEARCH command's CHARSET (absent means US-ASCII).
pub fn check_charset(charset: Option<&Charset<'_>>) -> Result<(), SearchError> {
    let Some(charset) = charset else {
        return Ok(());
    };
    let name: &str = match charset {
        Charset::Atom(atom) => atom.as_ref(),
        Charset::Quoted(quoted) => quoted.as_ref(),
    };
    if SUPPORTED_CHARSETS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        Ok(())
    } else {
        Err(SearchError::BadCharset(name.to_owned()))
    }
}

/// What a session knows of one message besides its bytes.
#[derive(Debug, Clone)]
pub struct MessageMeta<'a> {
    /// Its message sequence number.
    pub seq: NonZeroU32,
    /// Its UID.
    pub uid: NonZeroU32,
    /// Its stored flags (system flags and keywords).
    pub flags: &'a [Flag<'a>],
    /// Whether the session holds it \Recent.
    pub recent: bool,
    /// Its internal date.
    pub internal_date: &'a DateTime,
    /// Its modification sequence (CONDSTORE).
    pub modseq: u64,
    /// The session's largest sequence number, what `*` means in a sequence set.
    pub largest_seq: NonZeroU32,
    /// The mailbox's largest UID, what `*` means in a UID set.
    pub largest_uid: NonZeroU32,
}

/// Whether the message matches `key`.
pub fn matches(view: &MessageView<'_>, meta: &MessageMeta<'_>, key: &SearchKey<'_>) -> bool {
    matches_all(view, meta, std::slice::from_ref(key))
}

/// Whether the message matches every key of a SEARCH command's criteria (they are
/// ANDed, RFC 9051 §6.4.4). The decoded texts are built once for all of them.
pub fn matches_all(view: &MessageView<'_>, meta: &MessageMeta<'_>, keys: &[SearchKey<'_>]) -> bool {
    let matcher = Matcher {
        view,
        meta,
        parser: MessageParser::default(),
        header_text: OnceCell::new(),
        body_text: OnceCell::new(),
    };
    keys.iter().all(|key| matcher.check(key))
}

struct Matcher<'v, 'm> {
    view: &'v MessageView<'m>,
    meta: &'v MessageMeta<'v>,
    parser: MessageParser,
    header_text: OnceCell<String>,
    body_text: OnceCell<String>,
}

impl Matcher<'_, '_> {
    fn check(&self, key: &SearchKey<'_>) -> bool {
        let meta = self.meta;
        let has = |flag: Flag<'static>| meta.flags.contains(&flag);
        match key {
            SearchKey::And(keys) => keys.as_ref().iter().all(|k| self.check(k)),
            SearchKey::Or(a, b) => self.check(a) || self.check(b),
            SearchKey::Not(k) => !self.check(k),
            SearchKey::All => true,
            SearchKey::SequenceSet(set) => in_set(set, meta.seq, meta.largest_seq),
            SearchKey::Uid(set) => in_set(set, meta.uid, meta.largest_uid),
            SearchKey::Answered => has(Flag::Answered),
            SearchKey::Unanswered => !has(Flag::Answered),
            SearchKey::Deleted => has(Flag::Deleted),
            SearchKey::Undeleted => !has(Flag::Deleted),
            SearchKey::Draft => has(Flag::Draft),
            SearchKey::Undraft => !has(Flag::Draft),
            SearchKey::Flagged => has(Flag::Flagged),
            SearchKey::Unflagged => !has(Flag::Flagged),
            SearchKey::Seen => has(Flag::Seen),
            SearchKey::Unseen => !has(Flag::Seen),
            SearchKey::Recent => meta.recent,
            SearchKey::New => meta.recent && !has(Flag::Seen),
            SearchKey::Old => !meta.recent,
            SearchKey::Keyword(atom) => self.has_keyword(atom.as_ref()),
            SearchKey::Unkeyword(atom) => !self.has_keyword(atom.as_ref()),
            SearchKey::Larger(n) => self.view.size() > *n,
            SearchKey::Smaller(n) => self.view.size() < *n,
            SearchKey::Before(date) => self.internal_date_cmp(date) == Ordering::Less,
            SearchKey::On(date) => self.internal_date_cmp(date) == Ordering::Equal,
            SearchKey::Since(date) => self.internal_date_cmp(date) != Ordering::Less,
            SearchKey::SentBefore(date) => self.sent_date_cmp(date) == Ordering::Less,
            SearchKey::SentOn(date) => self.sent_date_cmp(date) == Ordering::Equal,
            SearchKey::SentSince(date) => self.sent_date_cmp(date) != Ordering::Less,
            SearchKey::From(s) => self.field_contains(b"from", s.as_ref()),
            SearchKey::To(s) => self.field_contains(b"to", s.as_ref()),
            SearchKey::Cc(s) => self.field_contains(b"cc", s.as_ref()),
            SearchKey::Bcc(s) => self.field_contains(b"bcc", s.as_ref()),
            SearchKey::Subject(s) => self.field_contains(b"subject", s.as_ref()),
            SearchKey::Header(name, s) => self.field_contains(name.as_ref(), s.as_ref()),
            SearchKey::Body(s) => contains_folded(self.body_text(), s.as_ref()),
            SearchKey::Text(s) => {
                contains_folded(self.header_text(), s.as_ref())
                    || contains_folded(self.body_text(), s.as_ref())
            }
            SearchKey::ModSequence { modseq, .. } => meta.modseq >= *modseq,
        }
    }

    fn has_keyword(&self, keyword: &str) -> bool {
        self.meta.flags.iter().any(|flag| match flag {
            Flag::Keyword(atom) => atom.as_ref().eq_ignore_ascii_case(keyword),
            _ => false,
        })
    }

    fn internal_date_cmp(&self, key: &NaiveDate) -> Ordering {
        let date = self.meta.internal_date.as_ref().date_naive();
        (date.year(), date.month(), date.day()).cmp(&ymd(key))
    }

    fn sent_date_cmp(&self, key: &NaiveDate) -> Ordering {
        let bytes = self.view.bytes();
        let header = &self.view.root().header;
        let sent = header.first(bytes, b"date").and_then(|field| {
            let mut field_bytes = b"Date:".to_vec();
            field_bytes.extend_from_slice(field.raw_value(bytes));
            field_bytes.extend_from_slice(b"\r\n\r\n");
            let parsed = self.parser.parse_headers(&field_bytes)?;
            let date = parsed.date()?;
            date.is_valid().then_some((
                i32::from(date.year),
                u32::from(date.month),
                u32::from(date.day),
            ))
        });
        match sent {
            Some(date) => date.cmp(&ymd(key)),
            // As Dovecot: a message without a readable Date is older than any date.
            None => Ordering::Less,
        }
    }

    /// Whether a field named `name` contains `needle` once decoded; an empty needle
    /// matches any message with the field (RFC 9051 §6.4.4 HEADER).
    fn field_contains(&self, name: &[u8], needle: &[u8]) -> bool {
        let bytes = self.view.bytes();
        self.view
            .root()
            .header
            .fields
            .iter()
            .filter(|field| field.is_named(bytes, name))
            .any(|field| {
                needle.is_empty()
                    || contains_folded(&fold(&self.decode_field(field.raw_value(bytes))), needle)
            })
    }

    /// A field value with encoded-words decoded (mail-parser reading it as
    /// unstructured text) and, as Dovecot searches it, folding and every run of
    /// blanks as one space.
    fn decode_field(&self, raw: &[u8]) -> String {
        let mut field_bytes = b"Subject:".to_vec();
        field_bytes.extend_from_slice(raw);
        field_bytes.extend_from_slice(b"\r\n\r\n");
        let decoded = self
            .parser
            .parse_headers(&field_bytes)
            .and_then(|parsed| parsed.subject().map(str::to_owned))
            .unwrap_or_default();
        decoded.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn header_text(&self) -> &str {
        self.header_text.get_or_init(|| {
            let bytes = self.view.bytes();
            let mut text = String::new();
            let mut pending = vec![self.view.root()];
            while let Some(part) = pending.pop() {
                for field in &part.header.fields {
                    text.push_str(&String::from_utf8_lossy(field.name(bytes)));
                    text.push_str(": ");
                    text.push_str(&self.decode_field(field.raw_value(bytes)));
                    text.push('\n');
                }
                match &part.kind {
                    PartKind::Multipart(children) => pending.extend(children.iter().rev()),
                    PartKind::Message(inner) => pending.push(inner),
                    PartKind::Leaf => {}
                }
            }
            fold(&text)
        })
    }

    fn body_text(&self) -> &str {
        self.body_text.get_or_init(|| {
            let mut text = String::new();
            collect_text(self.view.bytes(), self.view.root(), &mut text);
            fold(&text)
        })
    }
}

/// The decoded text of every text/* leaf under `part`, in order.
fn collect_text(bytes: &[u8], part: &Part, out: &mut String) {
    match &part.kind {
        PartKind::Multipart(children) => {
            for child in children {
                collect_text(bytes, child, out);
            }
        }
        PartKind::Message(inner) => collect_text(bytes, inner, out),
        PartKind::Leaf if part.content_type.is(b"text") => {
            let body = bytes.get(part.body.clone()).unwrap_or_default();
            let encoding = part
                .header
                .first(bytes, b"content-transfer-encoding")
                .map(|f| f.token_value(bytes));
            let decoded = match encoding.as_deref() {
                Some(b"base64") => decode::base64(body),
                Some(b"quoted-printable") => decode::quoted_printable(body),
                _ => body.to_vec(),
            };
            out.push_str(&decode::to_text(
                &decoded,
                part.content_type.param(b"charset"),
            ));
            out.push('\n');
        }
        PartKind::Leaf => {}
    }
}

fn ymd(date: &NaiveDate) -> (i32, u32, u32) {
    let date = date.as_ref();
    (date.year(), date.month(), date.day())
}

/// Whether `n` is in `set`, `*` standing for `largest` (RFC 9051 §9: a range is
/// the same in either order). O(length of the set), no expansion.
fn in_set(set: &SequenceSet, n: NonZeroU32, largest: NonZeroU32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => *v,
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|sequence| match sequence {
        Sequence::Single(v) => value(v) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            a.min(b) <= n && n <= a.max(b)
        }
    })
}

/// Unicode simple case folding, close enough: each character's lowercase when it
/// is a single character (multi-character lowercases, rare, are kept as written).
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

/// Whether the folded `haystack` contains `needle` (bytes of a UTF-8 or US-ASCII
/// search string), folded the same way. Linear (the standard library's two-way search).
fn contains_folded(haystack: &str, needle: &[u8]) -> bool {
    haystack.contains(&fold(&String::from_utf8_lossy(needle)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_unicode_aware() {
        assert!(contains_folded(&fold("Grüße aus KÖLN"), "köln".as_bytes()));
        assert!(contains_folded(&fold("ΣΟΦΙΑ"), "σοφια".as_bytes()));
        assert!(!contains_folded(&fold("abc"), b"abd"));
    }

    #[test]
    fn sets_with_stars_and_reversed_ranges() {
        let n = |v: u32| NonZeroU32::new(v).expect("non-zero");
        let set = |text: &str| SequenceSet::try_from(text).expect("set");
        assert!(in_set(&set("1,5:3"), n(4), n(10)));
        assert!(!in_set(&set("1,5:3"), n(2), n(10)));
        assert!(in_set(&set("*"), n(10), n(10)));
        assert!(in_set(&set("20:*"), n(10), n(10)));
        assert!(!in_set(&set("20:*"), n(9), n(10)));
    }
}
