//! core::message against Dovecot: every message of `tests/corpus/mime` is put into
//! a private Dovecot's Maildir, and ENVELOPE, BODY, BODYSTRUCTURE, body sections,
//! BINARY, sizes and SEARCH results read over plain IMAP are compared with what
//! `sluice_core::message` computes for the same bytes, serialised by imap-codec.
//!
//! Where Dovecot and core differ and the RFCs leave the choice, the difference is
//! listed in `KNOWN_DIFFERENCES` with the reason; any other difference fails. A
//! listed difference that no longer occurs is reported, so the table stays true.
//! Skipped (printed, not failed) outside CI when `dovecot` or the `vmail` user is
//! missing; `tests/install-peers.sh` installs both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imap_codec::{CommandCodec, ResponseCodec, decode::Decoder, encode::Encoder};
use imap_types::command::CommandBody;
use imap_types::core::Vec1;
use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName};
use imap_types::flag::{Flag, FlagFetch};
use imap_types::response::{Data, Response};
use sluice_core::message::{MessageMeta, MessageView, SectionError, check_charset, search};
use sluice_tests::dovecot::{DovecotSetup, PrivateDovecot, dovecot_binary, vmail_ids};
use sluice_tests::tools::in_ci;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Differences from Dovecot that are choices, not bugs: (corpus file, fetch item or
/// search key, reason).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "11-bare-lf.eml",
        "*",
        "Dovecot serves bare LF as CRLF and counts sizes on that; core serves the stored \
         bytes as they are (Sluice stores CRLF only: its SMTP server refuses bare LF)",
    ),
    (
        "05-message-rfc822.eml",
        "BINARY.PEEK[2]",
        "BINARY of a message/rfc822 part: Dovecot rewrites every part inside to binary \
         (headers changed); core returns the part as stored, since RFC 9051 §6.4.5 defines \
         BINARY as removing the part's own transfer encoding, which a message part has not",
    ),
    (
        "05-message-rfc822.eml",
        "BINARY.SIZE[2]",
        "follows from the BINARY[2] difference above",
    ),
    (
        "20-qp-binary.eml",
        "BINARY.PEEK[1]",
        "malformed quoted-printable (`=ZZ`): Dovecot answers NO [PARSE]; core keeps the \
         malformed escape as written, as RFC 2045 §6.7 asks of a robust decoder",
    ),
    (
        "20-qp-binary.eml",
        "BINARY.PEEK[1]<2.5>",
        "as BINARY.PEEK[1]",
    ),
    ("20-qp-binary.eml", "BINARY.SIZE[1]", "as BINARY.PEEK[1]"),
    (
        "23-upper-case.eml",
        "BODY",
        "Dovecot's BODY ignores the upper-case CONTENT-TYPE and CONTENT-TRANSFER-ENCODING \
         fields that its own BODYSTRUCTURE honours; core's BODY is BODYSTRUCTURE without \
         the extension data, as RFC 9051 §7.5.2 defines it",
    ),
];

fn is_known(file: &str, item: &str) -> bool {
    KNOWN_DIFFERENCES
        .iter()
        .any(|(f, i, _)| *f == file && (*i == "*" || *i == item))
}

/// The FETCH items compared for every message.
const FETCH_ITEMS: &[&str] = &[
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",
    "RFC822.SIZE",
    "BODY.PEEK[]",
    "BODY.PEEK[HEADER]",
    "BODY.PEEK[TEXT]",
    "BODY.PEEK[1]",
    "BODY.PEEK[1.MIME]",
    "BODY.PEEK[2]",
    "BODY.PEEK[2.MIME]",
    "BODY.PEEK[1.1]",
    "BODY.PEEK[1.2]",
    "BODY.PEEK[2.1]",
    "BODY.PEEK[1.HEADER]",
    "BODY.PEEK[1.TEXT]",
    "BODY.PEEK[2.HEADER]",
    "BODY.PEEK[2.TEXT]",
    "BODY.PEEK[1.1.MIME]",
    "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT X-CUSTOM MESSAGE-ID)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (FROM SUBJECT)]",
    "BODY.PEEK[1.HEADER.FIELDS (SUBJECT)]",
    "BODY.PEEK[2.HEADER.FIELDS (SUBJECT FROM)]",
    "BODY.PEEK[]<5.20>",
    "BODY.PEEK[TEXT]<3.1000>",
    "BODY.PEEK[HEADER]<100000.5>",
    "BINARY.PEEK[1]",
    "BINARY.PEEK[2]",
    "BINARY.PEEK[1.1]",
    "BINARY.PEEK[1]<2.5>",
    "BINARY.SIZE[1]",
    "BINARY.SIZE[2]",
];

/// SEARCH keys compared over the whole mailbox.
const SEARCH_KEYS: &[&str] = &[
    "ALL",
    "SEEN",
    "UNSEEN",
    "FLAGGED",
    "UNFLAGGED",
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "KEYWORD $Work",
    "UNKEYWORD $Work",
    "RECENT",
    "NEW",
    "OLD",
    "FROM example.test",
    "FROM alice",
    "FROM \"smith, john\"",
    "FROM JöRG",
    "TO bob",
    "TO René",
    "CC group",
    "BCC nobody",
    "SUBJECT nested",
    "SUBJECT grüße",
    "SUBJECT échantillon",
    "SUBJECT \"FOLDED OVER\"",
    "HEADER X-Custom two",
    "HEADER Message-ID \"\"",
    "HEADER X-Only \"\"",
    "HEADER Reply-To replies",
    "BODY needle",
    "BODY \"café au lait\"",
    "BODY \"inner plain\"",
    "BODY \"original body\"",
    "BODY \"level 3\"",
    "BODY français",
    "BODY \"PLAIN MESSAGE\"",
    "TEXT nested",
    "TEXT \"bob@example.test\"",
    "TEXT inline",
    "LARGER 500",
    "SMALLER 200",
    "BEFORE 25-Nov-2026",
    "ON 27-Nov-2026",
    "SINCE 10-Dec-2026",
    "SENTBEFORE 2-Dec-2026",
    "SENTON 3-Dec-2026",
    "SENTSINCE 4-Dec-2026",
    "UID 1:3,7",
    "UID 20:*",
    "5:*",
    "1,3,5",
    "NOT SEEN",
    "OR FLAGGED SEEN",
    "OR SUBJECT plain BODY needle",
    "NOT OR FROM alice TO bob",
    "SEEN FROM example.test",
    "BCC hidden",
    "CC c@example",
    "FROM second",
    "FROM \"reply person\"",
    "TEXT longname",
    "TEXT folded-id",
    "HEADER In-Reply-To two@example",
    "SENTON 7-Dec-2026",
    "SENTON 6-Dec-2026",
    "BODY \"soft line\"",
    "BODY \"alt one\"",
    "BODY epilogue",
    "SUBJECT \"tab after colon and\"",
];

#[test]
fn message_view_matches_dovecot() {
    // As every peer test: skipped outside CI when the peer is missing, a failure in CI.
    let Some(dovecot) = dovecot_binary() else {
        assert!(
            !in_ci(),
            "dovecot is not installed, but CI=true: tests/install-peers.sh must install it"
        );
        println!("skipped: dovecot not installed");
        return;
    };
    let Some(ids) = vmail_ids() else {
        assert!(
            !in_ci(),
            "no vmail user, but CI=true: tests/install-peers.sh must create it"
        );
        println!("skipped: no vmail user (tests/install-peers.sh creates it)");
        return;
    };
    let corpus = corpus();
    assert!(
        corpus.len() >= 25,
        "the corpus has {} messages",
        corpus.len()
    );
    let server = start_dovecot(&dovecot, ids, &corpus);
    let mut imap = Imap::connect(server.imap().port());
    imap.ok("LOGIN u secret");
    let (untagged, _) = imap.run("SELECT INBOX");
    let exists = format!("* {} EXISTS", corpus.len());
    assert!(
        untagged.iter().any(|r| r.starts_with(exists.as_bytes())),
        "SELECT: {:?}\nlog: {}",
        untagged.iter().map(|r| show(r)).collect::<Vec<_>>(),
        server.log()
    );
    // Dovecot numbers the messages in its own order: match them by their bytes.
    let count = corpus.len();
    let mut by_seq: Vec<(String, Vec<u8>)> = Vec::new();
    for seq in 1..=count {
        let Fetched::Data(raw) = imap.fetch_item(seq, "BODY.PEEK[]") else {
            panic!(
                "BODY[] of {seq} refused: {:?}",
                imap.fetch_item(seq, "BODY.PEEK[]")
            );
        };
        let data = section_data(&raw).flatten().expect("BODY[] data");
        let (name, bytes) = corpus
            .iter()
            .find(|(_, bytes)| *bytes == data || with_crlf(bytes) == data)
            .unwrap_or_else(|| panic!("message {seq} is not a corpus file"));
        by_seq.push((name.clone(), bytes.clone()));
    }
    // Flags for the flag keys, set through Dovecot and read back into core's metadata.
    imap.ok("STORE 1 +FLAGS (\\Seen)");
    imap.ok("STORE 3 +FLAGS (\\Flagged $Work)");
    imap.ok("STORE 4 +FLAGS (\\Answered \\Seen)");
    imap.ok("STORE 5 +FLAGS ($work)");

    let mut failures = Vec::new();
    let mut differences_seen = BTreeSet::new();
    for (index, (name, bytes)) in by_seq.iter().enumerate() {
        let seq = index + 1;
        let view = MessageView::parse(bytes, &Default::default());
        for item in FETCH_ITEMS {
            let theirs = imap.fetch_item(seq, item);
            let ours = our_fetch(&view, seq, item);
            if let Some(difference) = compare(item, &theirs, &ours) {
                if is_known(name, item) {
                    differences_seen.insert((name.clone(), item.to_string()));
                } else {
                    failures.push(format!("{name} {item}:\n{difference}"));
                }
            }
        }
    }

    // SEARCH: Dovecot's answer against core's matcher over every message.
    let metas = read_metadata(&mut imap, count);
    let largest_seq = NonZeroU32::new(u32::try_from(count).unwrap()).unwrap();
    let largest_uid = metas.iter().map(|m| m.uid).max().unwrap();
    for key in SEARCH_KEYS {
        let theirs = imap.search(key);
        let command = format!("t {}\r\n", search_command(key));
        let (_, parsed) = CommandCodec::default()
            .decode(command.as_bytes())
            .unwrap_or_else(|e| panic!("imap-codec cannot parse {command:?}: {e:?}"));
        let CommandBody::Search {
            charset, criteria, ..
        } = parsed.body
        else {
            panic!("not a search: {command}");
        };
        check_charset(charset.as_ref()).expect("UTF-8 is accepted");
        let mut ours = BTreeSet::new();
        for (index, (name, bytes)) in by_seq.iter().enumerate() {
            if is_known(name, key) || is_known(name, "*") {
                continue;
            }
            let view = MessageView::parse(bytes, &Default::default());
            let meta = &metas[index];
            let message_meta = MessageMeta {
                seq: NonZeroU32::new(u32::try_from(index + 1).unwrap()).unwrap(),
                uid: meta.uid,
                flags: &meta.flags,
                recent: meta.recent,
                internal_date: &meta.internal_date,
                modseq: 1,
                largest_seq,
                largest_uid,
            };
            if search::matches_all(&view, &message_meta, criteria.as_ref()) {
                ours.insert(meta.uid.get());
            }
        }
        let theirs: BTreeSet<u32> = theirs
            .into_iter()
            .filter(|uid| {
                let index = metas.iter().position(|m| m.uid.get() == *uid).unwrap();
                !is_known(&by_seq[index].0, key) && !is_known(&by_seq[index].0, "*")
            })
            .collect();
        if ours != theirs {
            let names = |set: &BTreeSet<u32>| {
                set.iter()
                    .map(|uid| {
                        let index = metas.iter().position(|m| m.uid.get() == *uid).unwrap();
                        by_seq[index].0.clone()
                    })
                    .collect::<Vec<_>>()
            };
            failures.push(format!(
                "SEARCH {key}: dovecot {:?}, core {:?}",
                names(&theirs),
                names(&ours)
            ));
        }
    }
    imap.ok("LOGOUT");
    for (file, item, reason) in KNOWN_DIFFERENCES {
        if differences_seen
            .iter()
            .any(|(f, i)| f == file && (*item == "*" || i == item))
        {
            println!("known difference, {file} {item}: {reason}");
        } else {
            failures.push(format!("listed difference no longer seen: {file} {item}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences from Dovecot:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What one FETCH item gave: the untagged FETCH response's bytes, or the tagged
/// NO/BAD line.
#[derive(Debug)]
enum Fetched {
    Data(Vec<u8>),
    Refused(String),
}

/// Core's answer to one FETCH item, serialised as a FETCH response.
fn our_fetch(view: &MessageView<'_>, seq: usize, item: &str) -> Fetched {
    let command = format!("t FETCH {seq} ({item})\r\n");
    let (_, parsed) = CommandCodec::default()
        .decode(command.as_bytes())
        .unwrap_or_else(|e| panic!("imap-codec cannot parse {command:?}: {e:?}"));
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = parsed.body
    else {
        panic!("not a fetch: {command}");
    };
    let name = names.into_iter().next().expect("one item");
    let nstring = |data: Result<std::borrow::Cow<'_, [u8]>, SectionError>| match data {
        Ok(bytes) => imap_types::core::NString::try_from(bytes.into_owned()).expect("nstring"),
        Err(_) => imap_types::core::NString::NIL,
    };
    let item: MessageDataItem<'static> = match name {
        MessageDataItemName::Envelope => MessageDataItem::Envelope(view.envelope()),
        MessageDataItemName::BodyStructure => {
            MessageDataItem::BodyStructure(view.body_structure(true))
        }
        MessageDataItemName::Body => MessageDataItem::Body(view.body_structure(false)),
        MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(view.size()),
        MessageDataItemName::BodyExt {
            section, partial, ..
        } => MessageDataItem::BodyExt {
            origin: partial.map(|(origin, _)| origin),
            data: nstring(view.section(section.as_ref(), partial)),
            section: section.map(imap_types::IntoStatic::into_static),
        },
        MessageDataItemName::Binary {
            section, partial, ..
        } => match view.binary(&section, partial) {
            Ok(bytes) => MessageDataItem::Binary {
                section,
                value: match imap_types::core::NString::try_from(bytes.to_vec()) {
                    Ok(nstring) => imap_types::core::NString8::NString(nstring),
                    // NUL needs literal8 (RFC 9051 §4.3).
                    Err(_) => imap_types::core::NString8::Literal8(
                        imap_types::extensions::binary::Literal8 {
                            data: bytes.into_owned().into(),
                            mode: imap_types::core::LiteralMode::Sync,
                        },
                    ),
                },
            },
            Err(SectionError::UnknownCte(_)) => return Fetched::Refused("UNKNOWN-CTE".into()),
            Err(SectionError::NoSuchPart) => return Fetched::Refused("NO SUCH PART".into()),
        },
        MessageDataItemName::BinarySize { section } => match view.binary_size(&section) {
            Ok(size) => MessageDataItem::BinarySize { section, size },
            Err(SectionError::UnknownCte(_)) => return Fetched::Refused("UNKNOWN-CTE".into()),
            Err(SectionError::NoSuchPart) => return Fetched::Refused("NO SUCH PART".into()),
        },
        other => panic!("item not compared: {other:?}"),
    };
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::new(u32::try_from(seq).unwrap()).unwrap(),
        items: Vec1::from(item),
    });
    Fetched::Data(ResponseCodec::default().encode(&response).dump())
}

/// The difference between Dovecot's and core's answers, if any. Structures are
/// compared as serialised text with literals turned into quoted strings where they
/// can be (the two choose differently and both are right); section data, sizes and
/// BINARY values are compared as values.
fn compare(item: &str, theirs: &Fetched, ours: &Fetched) -> Option<String> {
    match (theirs, ours) {
        (Fetched::Data(theirs), Fetched::Data(ours)) => {
            if item.contains('[') {
                let (t, o) = (section_data(theirs), section_data(ours));
                // Dovecot answers NIL or an empty string for a part that is not
                // there; core says "no such part", which the session sends as NIL.
                let empty = |v: &Option<Option<Vec<u8>>>| {
                    matches!(v, Some(None)) || matches!(v, Some(Some(d)) if d.is_empty())
                };
                if t == o || (empty(&t) && empty(&o)) {
                    return None;
                }
                return Some(format!(
                    "dovecot: {}\ncore:    {}",
                    show(&t.flatten().unwrap_or_default()),
                    show(&o.flatten().unwrap_or_default())
                ));
            }
            // imap-codec writes the type of text and message parts as "TEXT" and
            // "MESSAGE" "RFC822" whatever the message says; IMAP strings there are
            // case-insensitive, so those three compare without case.
            let (t, o) = (
                fold_media_types(&canonical(theirs)),
                fold_media_types(&canonical(ours)),
            );
            (t != o).then(|| format!("dovecot: {}\ncore:    {}", show(&t), show(&o)))
        }
        (Fetched::Refused(t), Fetched::Refused(o)) => (t.contains("UNKNOWN-CTE")
            != o.contains("UNKNOWN-CTE"))
        .then(|| format!("dovecot refused: {t}\ncore refused:    {o}")),
        (Fetched::Refused(t), Fetched::Data(o)) => {
            Some(format!("dovecot refused: {t}\ncore:    {}", show(o)))
        }
        (Fetched::Data(t), Fetched::Refused(o)) => {
            // A part that does not exist: Dovecot's NIL or "" is core's refusal.
            let data = section_data(t);
            if o == "NO SUCH PART" && matches!(&data, Some(None)) {
                return None;
            }
            if o == "NO SUCH PART" && matches!(&data, Some(Some(d)) if d.is_empty()) {
                return None;
            }
            // BINARY.SIZE of a part that is not there: Dovecot says 0.
            if o == "NO SUCH PART"
                && item.starts_with("BINARY.SIZE")
                && data == Some(Some(b"0".to_vec()))
            {
                return None;
            }
            Some(format!("dovecot: {}\ncore refused: {o}", show(t)))
        }
    }
}

/// The data of the first body section, BINARY or size item of a FETCH response:
/// `Some(None)` for NIL.
fn section_data(response: &[u8]) -> Option<Option<Vec<u8>>> {
    let response = without_origin(response);
    let (_, parsed) = ResponseCodec::default().decode(&response).ok()?;
    let Response::Data(Data::Fetch { items, .. }) = parsed else {
        return None;
    };
    items.into_iter().find_map(|item| match item {
        MessageDataItem::BodyExt { data, .. } => Some(data.into_option().map(|d| d.into_owned())),
        MessageDataItem::Binary { value, .. } => Some(match value {
            imap_types::core::NString8::NString(n) => n.into_option().map(|d| d.into_owned()),
            imap_types::core::NString8::Literal8(l) => Some(l.data.into_owned()),
        }),
        MessageDataItem::BinarySize { size, .. } => Some(Some(size.to_string().into_bytes())),
        MessageDataItem::Rfc822Size(size) => Some(Some(size.to_string().into_bytes())),
        _ => None,
    })
}

/// The response without the `<origin>` after the first section name: imap-codec
/// reads none after BINARY[...], and the data alone is compared.
fn without_origin(response: &[u8]) -> Vec<u8> {
    let Some(close) = response.windows(2).position(|w| w == b"]<") else {
        return response.to_vec();
    };
    let Some(end) = response[close..].iter().position(|&b| b == b'>') else {
        return response.to_vec();
    };
    let mut out = response[..=close].to_vec();
    out.extend_from_slice(&response[close + end + 1..]);
    out
}

/// A response with every literal that could be a quoted string written as one.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            out.push(b);
            if b == b'\\' {
                out.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if b == b'"' {
                quoted = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            quoted = true;
            out.push(b);
            i += 1;
            continue;
        }
        if b == b'{'
            && let Some(close) = bytes[i..].iter().position(|&c| c == b'}')
        {
            let digits = std::str::from_utf8(&bytes[i + 1..i + close]).unwrap_or("");
            let digits = digits.trim_end_matches('+');
            if let Ok(n) = digits.parse::<usize>()
                && bytes.get(i + close + 1..i + close + 3) == Some(b"\r\n")
            {
                let start = i + close + 3;
                let data = &bytes[start..start + n];
                if data.iter().all(|&c| (0x20..0x7f).contains(&c)) {
                    out.push(b'"');
                    for &c in data {
                        if c == b'"' || c == b'\\' {
                            out.push(b'\\');
                        }
                        out.push(c);
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(&bytes[i..start + n]);
                }
                i = start + n;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Bare LF as CRLF, as Dovecot serves a message stored with bare LF.
fn with_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn fold_media_types(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for word in [&b"\"text\""[..], b"\"message\"", b"\"rfc822\""] {
        let mut i = 0;
        while i + word.len() <= out.len() {
            if out[i..i + word.len()].eq_ignore_ascii_case(word) {
                out[i..i + word.len()].copy_from_slice(word);
                i += word.len();
            } else {
                i += 1;
            }
        }
    }
    out
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

struct Meta {
    uid: NonZeroU32,
    flags: Vec<Flag<'static>>,
    recent: bool,
    internal_date: imap_types::datetime::DateTime,
}

fn read_metadata(imap: &mut Imap, count: usize) -> Vec<Meta> {
    (1..=count)
        .map(|seq| {
            let Some(Fetched::Data(raw)) = Some(imap.fetch_item(seq, "UID FLAGS INTERNALDATE"))
            else {
                panic!("no metadata for {seq}");
            };
            let (_, parsed) = ResponseCodec::default()
                .decode(&raw)
                .expect("FETCH response");
            let Response::Data(Data::Fetch { items, .. }) = parsed else {
                panic!("not a FETCH response");
            };
            let mut meta = Meta {
                uid: NonZeroU32::MIN,
                flags: Vec::new(),
                recent: false,
                internal_date: imap_types::datetime::DateTime::unvalidated(chrono_epoch()),
            };
            for item in items {
                match item {
                    MessageDataItem::Uid(uid) => meta.uid = uid,
                    MessageDataItem::InternalDate(date) => meta.internal_date = date,
                    MessageDataItem::Flags(flags) => {
                        for flag in flags {
                            match flag {
                                FlagFetch::Flag(flag) => {
                                    meta.flags.push(imap_types::IntoStatic::into_static(flag))
                                }
                                FlagFetch::Recent => meta.recent = true,
                            }
                        }
                    }
                    _ => {}
                }
            }
            meta
        })
        .collect()
}

fn chrono_epoch() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::from_timestamp(0, 0)
        .expect("epoch")
        .fixed_offset()
}

/// A plain IMAP connection with a line reader that follows literals.
struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

impl Imap {
    fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to dovecot");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut imap = Imap {
            reader: BufReader::new(stream),
            writer,
            next_tag: 1,
        };
        let greeting = imap.read_response();
        assert!(
            greeting.starts_with(b"* OK"),
            "greeting: {}",
            show(&greeting)
        );
        imap
    }

    /// One response: a line, with any literals it announces and the rest of the line.
    fn read_response(&mut self) -> Vec<u8> {
        let mut response = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader
                .read_until(b'\n', &mut line)
                .expect("read from dovecot");
            assert!(!line.is_empty(), "dovecot closed the connection");
            response.extend_from_slice(&line);
            let Some(open) = line.iter().rposition(|&b| b == b'{') else {
                return response;
            };
            let Some(n) = line
                .strip_suffix(b"}\r\n")
                .and_then(|head| std::str::from_utf8(&head[open + 1..]).ok())
                .and_then(|d| d.parse::<usize>().ok())
            else {
                return response;
            };
            let mut literal = vec![0; n];
            self.reader.read_exact(&mut literal).expect("literal");
            response.extend_from_slice(&literal);
        }
    }

    /// Sends `command`; returns the untagged responses and the tagged one.
    fn run(&mut self, command: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        let mut untagged = Vec::new();
        loop {
            let response = self.read_response();
            if response.starts_with(format!("{tag} ").as_bytes()) {
                return (untagged, response);
            }
            untagged.push(response);
        }
    }

    fn ok(&mut self, command: &str) {
        let (_, tagged) = self.run(command);
        assert!(
            tagged.split(|&b| b == b' ').nth(1) == Some(b"OK"),
            "{command}: {}",
            show(&tagged)
        );
    }

    fn fetch_item(&mut self, seq: usize, item: &str) -> Fetched {
        let (untagged, tagged) = self.run(&format!("FETCH {seq} ({item})"));
        let text = String::from_utf8_lossy(&tagged).into_owned();
        if text.split(' ').nth(1) != Some("OK") {
            return Fetched::Refused(text);
        }
        let prefix = format!("* {seq} FETCH");
        let fetch = untagged
            .into_iter()
            .find(|r| r.starts_with(prefix.as_bytes()))
            .unwrap_or_default();
        Fetched::Data(fetch)
    }

    /// UID SEARCH with UTF-8 strings sent as non-synchronising literals.
    fn search(&mut self, key: &str) -> BTreeSet<u32> {
        let command = search_command(key);
        let (untagged, tagged) = self.run(&command);
        assert!(
            String::from_utf8_lossy(&tagged).contains("OK"),
            "SEARCH {key}: {}",
            show(&tagged)
        );
        untagged
            .iter()
            .filter_map(|r| r.strip_prefix(b"* SEARCH"))
            .flat_map(|r| {
                String::from_utf8_lossy(r)
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }
}

/// UID SEARCH of `key`, its non-ASCII words sent as non-synchronising literals.
fn search_command(key: &str) -> String {
    let mut command = String::from("UID SEARCH CHARSET UTF-8");
    for word in split_key(key) {
        command.push(' ');
        if word.is_ascii() {
            command.push_str(&word);
        } else {
            command.push_str(&format!("{{{}+}}\r\n{word}", word.len()));
        }
    }
    command
}

/// The words of a search key, a quoted string kept as one.
fn split_key(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' if !quoted => words.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    words.push(current);
    words
}

/// The private Dovecot (`sluice_tests::dovecot`) with the corpus in user `u`'s
/// INBOX, internal dates a day apart from 20 Nov 2026, noon UTC (for
/// BEFORE/ON/SINCE).
fn start_dovecot(program: &Path, ids: (u32, u32), corpus: &[(String, Vec<u8>)]) -> PrivateDovecot {
    let setup = DovecotSetup {
        users: vec![("u".to_owned(), "secret".to_owned())],
        tls: false,
    };
    PrivateDovecot::start(program, ids, &setup, |_, maildir| {
        let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_176_000);
        for (index, (_, bytes)) in corpus.iter().enumerate() {
            let path = maildir
                .join("cur")
                .join(format!("{}.m{index}.sluice:2,", 1_000_000 + index));
            std::fs::write(&path, bytes).unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(first + Duration::from_secs(86_400 * index as u64))
                .unwrap();
        }
    })
    .expect("start dovecot")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/mime");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}
