//! Tests of the message view as a whole: sections, BINARY, SEARCH, the reader's
//! Return-Path, and properties over arbitrary bytes.

use super::*;
use imap_types::body::{BodyStructure, SpecificFields};
use imap_types::core::{AString, Atom, Vec1};
use imap_types::datetime::{DateTime, NaiveDate};
use imap_types::fetch::{Part as PartNumbers, Section};
use imap_types::flag::Flag;
use imap_types::search::SearchKey;
use imap_types::sequence::SequenceSet;
use proptest::prelude::*;

const NESTED: &[u8] = b"From: a@x.test\r\n\
Subject: outer\r\n\
Date: Thu, 3 Dec 2026 23:30:00 -0800\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\
\r\n\
preamble\r\n\
--o\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 needle\r\n\
--o\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
From: b@y.test\r\n\
Content-Type: multipart/alternative; boundary=i\r\n\
\r\n\
--i\r\n\
Content-Type: text/plain\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aW5uZXIgdGV4dA==\r\n\
--i\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>html</p>\r\n\
--i--\r\n\
--o\r\n\
Content-Type: application/x-odd\r\n\
Content-Transfer-Encoding: x-uue\r\n\
\r\n\
zzz\r\n\
--o--\r\n";

fn n(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).expect("non-zero")
}

fn part(numbers: &[u32]) -> PartNumbers {
    PartNumbers(Vec1::try_from(numbers.iter().map(|&v| n(v)).collect::<Vec<_>>()).expect("numbers"))
}

fn text(view: &MessageView<'_>, section: Option<&Section<'_>>) -> String {
    let bytes = view.section(section, None).expect("section");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn names(list: &[&'static str]) -> Vec1<AString<'static>> {
    Vec1::try_from(
        list.iter()
            .map(|name| AString::try_from(*name).expect("astring"))
            .collect::<Vec<_>>(),
    )
    .expect("names")
}

#[test]
fn sections_of_a_nested_message() {
    let view = MessageView::parse(NESTED, &Limits::default());
    assert_eq!(text(&view, None).len(), NESTED.len());
    assert!(text(&view, Some(&Section::Header(None))).ends_with("boundary=\"o\"\r\n\r\n"));
    assert!(text(&view, Some(&Section::Text(None))).starts_with("preamble"));
    assert_eq!(
        text(&view, Some(&Section::Part(part(&[1])))),
        "caf=C3=A9 needle"
    );
    assert!(text(&view, Some(&Section::Mime(part(&[1])))).starts_with("Content-Type: text/plain"));
    // 2 is the message/rfc822 part: its body is the whole encapsulated message.
    assert!(text(&view, Some(&Section::Part(part(&[2])))).starts_with("Subject: inner"));
    assert_eq!(
        text(&view, Some(&Section::Header(Some(part(&[2]))))),
        "Subject: inner\r\nFrom: b@y.test\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
    );
    assert!(text(&view, Some(&Section::Text(Some(part(&[2]))))).starts_with("--i"));
    // 2.1 is the first part of the encapsulated multipart.
    assert_eq!(
        text(&view, Some(&Section::Part(part(&[2, 1])))),
        "aW5uZXIgdGV4dA=="
    );
    assert_eq!(
        text(&view, Some(&Section::Part(part(&[2, 2])))),
        "<p>html</p>"
    );
    assert_eq!(
        text(
            &view,
            Some(&Section::HeaderFields(Some(part(&[2])), names(&["FROM"])))
        ),
        "From: b@y.test\r\n\r\n"
    );
    assert_eq!(
        view.section(Some(&Section::Part(part(&[4]))), None),
        Err(SectionError::NoSuchPart)
    );
    // As Dovecot reads it, a leaf inside a multipart is its own part 1 ...
    assert_eq!(
        text(&view, Some(&Section::Part(part(&[1, 1])))),
        "caf=C3=A9 needle"
    );
    assert_eq!(
        view.section(Some(&Section::Part(part(&[1, 2]))), None),
        Err(SectionError::NoSuchPart)
    );
    // HEADER after a part that is not a message names nothing.
    assert_eq!(
        view.section(Some(&Section::Header(Some(part(&[1])))), None),
        Err(SectionError::NoSuchPart)
    );
}

#[test]
fn header_fields_keep_folding_and_order_and_not_inverts() {
    let message = b"Subject: one\r\n two\r\nX-A: 1\r\nFrom: f@x.test\r\nx-a: 2\r\n\r\nbody";
    let view = MessageView::parse(message, &Limits::default());
    assert_eq!(
        text(
            &view,
            Some(&Section::HeaderFields(None, names(&["x-A", "subject"])))
        ),
        "Subject: one\r\n two\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
    );
    assert_eq!(
        text(
            &view,
            Some(&Section::HeaderFieldsNot(None, names(&["X-A", "subject"])))
        ),
        "From: f@x.test\r\n\r\n"
    );
    // Nothing matches: just the blank line.
    assert_eq!(
        text(&view, Some(&Section::HeaderFields(None, names(&["bcc"])))),
        "\r\n"
    );
}

#[test]
fn a_single_part_message_is_its_own_part_one() {
    let message = b"Subject: s\r\nContent-Type: text/plain\r\n\r\nbody\r\n";
    let view = MessageView::parse(message, &Limits::default());
    assert_eq!(text(&view, Some(&Section::Part(part(&[1])))), "body\r\n");
    assert_eq!(
        text(&view, Some(&Section::Mime(part(&[1])))),
        "Subject: s\r\nContent-Type: text/plain\r\n\r\n"
    );
    assert_eq!(
        view.section(Some(&Section::Part(part(&[2]))), None),
        Err(SectionError::NoSuchPart)
    );
    // ... but the body of a single-part message has no part 1.1.
    assert_eq!(
        view.section(Some(&Section::Part(part(&[1, 1]))), None),
        Err(SectionError::NoSuchPart)
    );
}

#[test]
fn partial_slices_without_copying_and_clamps() {
    let view = MessageView::parse(NESTED, &Limits::default());
    let slice = view.section(None, Some((5, n(7)))).expect("partial");
    assert!(matches!(slice, Cow::Borrowed(_)));
    assert_eq!(&*slice, &NESTED[5..12]);
    assert!(
        view.section(None, Some((u32::MAX, n(3))))
            .expect("past the end")
            .is_empty()
    );
    let tail = view
        .section(None, Some((10, n(u32::MAX))))
        .expect("to the end");
    assert_eq!(tail.len(), NESTED.len() - 10);
}

#[test]
fn binary_decodes_and_refuses_unknown_encodings() {
    let view = MessageView::parse(NESTED, &Limits::default());
    assert_eq!(
        &*view.binary(&[n(1)], None).expect("qp"),
        "café needle".as_bytes()
    );
    assert_eq!(
        &*view.binary(&[n(2), n(1)], None).expect("base64"),
        b"inner text"
    );
    assert_eq!(view.binary_size(&[n(2), n(1)]), Ok(10));
    assert_eq!(
        &*view
            .binary(&[n(2), n(1)], Some((6, n(100))))
            .expect("partial"),
        b"text"
    );
    assert_eq!(
        view.binary(&[n(3)], None),
        Err(SectionError::UnknownCte("x-uue".into()))
    );
    assert_eq!(view.binary(&[n(9)], None), Err(SectionError::NoSuchPart));
}

#[test]
fn body_structure_reports_types_sizes_lines_and_the_encapsulated_message() {
    let view = MessageView::parse(NESTED, &Limits::default());
    let BodyStructure::Multi {
        bodies,
        subtype,
        extension_data,
    } = view.body_structure(true)
    else {
        panic!("not multipart");
    };
    assert_eq!(subtype.into_inner().as_ref(), b"mixed");
    assert!(extension_data.is_some());
    let bodies = bodies.into_inner();
    assert_eq!(bodies.len(), 3);
    let BodyStructure::Single { body, .. } = &bodies[1] else {
        panic!("part 2 not single");
    };
    let SpecificFields::Message {
        envelope,
        body_structure,
        number_of_lines,
    } = &body.specific
    else {
        panic!("part 2 not a message");
    };
    assert_eq!(
        envelope.subject.clone().into_option().as_deref(),
        Some(&b"inner"[..])
    );
    assert!(matches!(**body_structure, BodyStructure::Multi { .. }));
    // The part keeps the line end after the inner close delimiter (as Dovecot).
    assert_eq!(*number_of_lines, 14);
    let BodyStructure::Single {
        body,
        extension_data,
    } = &bodies[0]
    else {
        panic!("part 1 not single");
    };
    assert_eq!(body.basic.size, 16);
    assert!(matches!(
        body.specific,
        SpecificFields::Text {
            number_of_lines: 0,
            ..
        }
    ));
    assert!(extension_data.is_some());
    // BODY has no extension data.
    let BodyStructure::Multi { extension_data, .. } = view.body_structure(false) else {
        panic!("not multipart");
    };
    assert!(extension_data.is_none());
}

struct Fixture {
    flags: Vec<Flag<'static>>,
    date: DateTime,
}

impl Fixture {
    fn new() -> Self {
        let date = chrono::DateTime::parse_from_rfc3339("2026-12-04T01:30:00+09:00").expect("date");
        Fixture {
            flags: vec![
                Flag::Seen,
                Flag::Keyword(Atom::try_from("$Work").expect("atom")),
            ],
            date: DateTime::try_from(date).expect("imap date"),
        }
    }

    fn meta(&self) -> MessageMeta<'_> {
        MessageMeta {
            seq: n(3),
            uid: n(40),
            flags: &self.flags,
            recent: true,
            internal_date: &self.date,
            modseq: 17,
            largest_seq: n(5),
            largest_uid: n(50),
        }
    }
}

fn key(text: &str) -> SearchKey<'static> {
    use imap_codec::CommandCodec;
    use imap_codec::decode::Decoder;
    use imap_types::command::CommandBody;
    let command = format!("t SEARCH {text}\r\n");
    let (_, parsed) = CommandCodec::default()
        .decode_static(command.as_bytes())
        .unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let CommandBody::Search { criteria, .. } = parsed.body else {
        panic!("not a search");
    };
    let mut keys = criteria.into_inner();
    if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(Vec1::try_from(keys).expect("keys"))
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::try_from(chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date")).expect("imap date")
}

#[test]
fn search_keys_on_flags_numbers_sizes_and_modseq() {
    let view = MessageView::parse(NESTED, &Limits::default());
    let fixture = Fixture::new();
    let meta = fixture.meta();
    let matches = |text: &str| search::matches(&view, &meta, &key(text));
    for yes in [
        "ALL",
        "SEEN",
        "RECENT",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "KEYWORD $work",
        "UNKEYWORD $Other",
        "3",
        "2:4",
        "*:3",
        "UID 40",
        "UID 35:*",
        "LARGER 100",
        "SMALLER 100000",
        "NOT NEW",
        "OR DELETED SEEN",
        "SEEN RECENT",
    ] {
        assert!(matches(yes), "{yes} should match");
    }
    for no in [
        "UNSEEN",
        "NEW",
        "OLD",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "KEYWORD $Other",
        "UNKEYWORD $Work",
        "4",
        "UID 41:49",
        "UID *",
        "LARGER 100000",
        "SMALLER 10",
        "NOT ALL",
        "SEEN OLD",
    ] {
        assert!(!matches(no), "{no} should not match");
    }
    let modseq = |value: u64| SearchKey::ModSequence {
        entry: None,
        modseq: value,
    };
    assert!(search::matches(&view, &meta, &modseq(17)));
    assert!(!search::matches(&view, &meta, &modseq(18)));
}

#[test]
fn search_dates_compare_calendar_dates_in_their_own_zones() {
    let view = MessageView::parse(NESTED, &Limits::default());
    let fixture = Fixture::new();
    let meta = fixture.meta();
    let matches = |k: SearchKey<'static>| search::matches(&view, &meta, &k);
    // Internal date 2026-12-04 01:30 +09:00: the 4th there (the 3rd in UTC).
    assert!(matches(SearchKey::On(date(2026, 12, 4))));
    assert!(!matches(SearchKey::On(date(2026, 12, 3))));
    assert!(matches(SearchKey::Since(date(2026, 12, 4))));
    assert!(matches(SearchKey::Before(date(2026, 12, 5))));
    assert!(!matches(SearchKey::Before(date(2026, 12, 4))));
    // Date field: Thu, 3 Dec 2026 23:30 -0800, the 3rd where written (4th in UTC).
    assert!(matches(SearchKey::SentOn(date(2026, 12, 3))));
    assert!(!matches(SearchKey::SentOn(date(2026, 12, 4))));
    assert!(matches(SearchKey::SentBefore(date(2026, 12, 4))));
    assert!(matches(SearchKey::SentSince(date(2026, 12, 3))));
    assert!(!matches(SearchKey::SentSince(date(2026, 12, 4))));
    // Without a readable Date field a message is older than any date (Dovecot).
    for undated in [&b"Subject: x\r\n\r\nbody\r\n"[..], b"Date: someday\r\n\r\n"] {
        let view = MessageView::parse(undated, &Limits::default());
        assert!(search::matches(
            &view,
            &meta,
            &SearchKey::SentBefore(date(1970, 1, 2))
        ));
        assert!(!search::matches(
            &view,
            &meta,
            &SearchKey::SentOn(date(2026, 12, 4))
        ));
        assert!(!search::matches(
            &view,
            &meta,
            &SearchKey::SentSince(date(1970, 1, 1))
        ));
    }
}

#[test]
fn search_strings_are_decoded_and_case_folded() {
    let message = "From: =?utf-8?q?J=C3=B6rg?= <joerg@x.test>\r\n\
To: team@x.test\r\n\
Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus\r\n  K\u{f6}ln\r\n\
X-Tag: one\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Fran=E7ais =\r\nsoft\r\n";
    let view = MessageView::parse(message.as_bytes(), &Limits::default());
    let fixture = Fixture::new();
    let meta = fixture.meta();
    // Every search string is sent as a literal, as clients send non-ASCII ones.
    let matches = |name: &str, arg: &str| {
        let text = format!("{name} {{{}+}}\r\n{arg}", arg.len());
        search::matches(&view, &meta, &key(&text))
    };
    for (name, arg) in [
        ("FROM", "jörg"),
        ("FROM", "JOERG@X"),
        ("TO", "TEAM"),
        ("SUBJECT", "grüße aus"),
        ("SUBJECT", "KÖLN"),
        ("HEADER x-tag", "ONE"),
        ("HEADER X-Tag", ""),
        ("BODY", "français"),
        ("BODY", "FRANÇAIS SOFT"),
        ("TEXT", "grüße"),
        ("TEXT", "français"),
        ("TEXT", "charset=iso"),
    ] {
        assert!(matches(name, arg), "{name} {arg} should match");
    }
    for (name, arg) in [
        ("CC", "x"),
        ("BCC", "x"),
        ("HEADER X-Other", ""),
        ("BODY", "aus"),
        ("SUBJECT", "soft"),
        ("FROM", "zed"),
    ] {
        assert!(!matches(name, arg), "{name} {arg} should not match");
    }
}

#[test]
fn only_utf8_and_us_ascii_are_search_charsets() {
    let charset =
        |name: &str| imap_types::core::Charset::try_from(name.to_owned()).expect("charset");
    assert_eq!(check_charset(None), Ok(()));
    assert_eq!(check_charset(Some(&charset("utf-8"))), Ok(()));
    assert_eq!(check_charset(Some(&charset("US-ASCII"))), Ok(()));
    assert_eq!(
        check_charset(Some(&charset("ISO-8859-1"))),
        Err(SearchError::BadCharset("ISO-8859-1".into()))
    );
}

#[test]
fn the_reader_sees_a_return_path_once() {
    let stored = b"From: a@x.test\r\n\r\nbody\r\n";
    let seen = with_return_path("bounce@x.test", stored);
    assert_eq!(
        &*seen,
        b"Return-Path: <bounce@x.test>\r\nFrom: a@x.test\r\n\r\nbody\r\n"
    );
    assert_eq!(
        &*with_return_path("", stored),
        b"Return-Path: <>\r\nFrom: a@x.test\r\n\r\nbody\r\n".as_slice()
    );
    let already = b"return-path: <x@y>\r\n\r\n";
    assert!(matches!(
        with_return_path("other@z", already),
        Cow::Borrowed(_)
    ));
    let forged = with_return_path("a\r\nBcc: evil", stored);
    assert!(forged.starts_with(b"Return-Path: <aBcc: evil>\r\nFrom:"));
    // Sizes are those of what the reader sees.
    let view = MessageView::parse(&seen, &Limits::default());
    assert_eq!(view.size() as usize, stored.len() + 30);
}

#[test]
fn sequence_and_uid_sets_parse_as_sets() {
    // `key` goes through imap-codec; a set key names the set variant.
    assert!(matches!(key("1:*"), SearchKey::SequenceSet(_)));
    assert!(matches!(key("UID 1"), SearchKey::Uid(SequenceSet(_))));
}

/// Random MIME-ish input: fragments that exercise headers, boundaries and nesting.
fn mime_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: quoted-printable\r\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"From: \"a\" <b@c>, g: d@e;\r\n".to_vec()),
        Just(b" folded\r\n".to_vec()),
        Just(b"=\r\n=4".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    proptest::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

fn every_section(view: &MessageView<'_>) {
    let _ = view.envelope();
    let _ = view.body_structure(true);
    let _ = view.body_structure(false);
    for numbers in [&[1][..], &[2], &[1, 1], &[2, 1], &[1, 2, 1], &[3, 1, 1, 1]] {
        let p = part(numbers);
        for section in [
            Section::Part(p.clone()),
            Section::Mime(p.clone()),
            Section::Header(Some(p.clone())),
            Section::Text(Some(p.clone())),
            Section::HeaderFields(Some(p.clone()), names(&["from"])),
        ] {
            if let Ok(bytes) = view.section(Some(&section), None) {
                assert!(bytes.len() <= view.bytes().len() + 2);
            }
        }
        let path: Vec<NonZeroU32> = numbers.iter().map(|&v| n(v)).collect();
        let _ = view.binary(&path, Some((1, n(3))));
        let _ = view.binary_size(&path);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_input_panics_and_sections_stay_inside_the_message(bytes in mime_bytes()) {
        let view = MessageView::parse(&bytes, &Limits::default());
        every_section(&view);
        let fixture = Fixture::new();
        for text in ["BODY a", "TEXT b", "FROM c", "SENTON 1-Jan-2026", "HEADER X \"\""] {
            let _ = search::matches(&view, &fixture.meta(), &key(text));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let view = MessageView::parse(&bytes, &Limits::default());
        every_section(&view);
    }

    #[test]
    fn parts_stay_within_their_parents(bytes in mime_bytes()) {
        fn check(part: &Part, outer: &std::ops::Range<usize>, count: &mut usize) {
            *count += 1;
            assert!(outer.start <= part.header.range.start && part.body.end <= outer.end);
            assert!(part.header.range.end <= part.body.start.max(part.header.range.end));
            match &part.kind {
                PartKind::Multipart(children) => {
                    for child in children {
                        check(child, &part.body, count);
                    }
                }
                PartKind::Message(inner) => check(inner, &part.body, count),
                PartKind::Leaf => {}
            }
        }
        let limits = Limits { max_parts: 50, ..Limits::default() };
        let view = MessageView::parse(&bytes, &limits);
        let mut count = 0;
        check(view.root(), &(0..bytes.len()), &mut count);
        // The part budget bounds the work: at most max_parts parts plus the root and
        // one synthetic empty part per multipart.
        prop_assert!(count <= 2 * (limits.max_parts + 1));
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let mut message = Vec::new();
    for level in 0..200 {
        message.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n")
                .as_bytes(),
        );
    }
    message.extend_from_slice(b"\r\ndeep\r\n");
    let view = MessageView::parse(&message, &Limits::default());
    let mut depth = 0;
    let mut part = view.root();
    while let PartKind::Multipart(children) = &part.kind {
        depth += 1;
        part = &children[0];
    }
    assert_eq!(depth, Limits::default().max_depth);
    every_section(&view);
}

#[test]
fn many_parts_stop_at_the_part_bound() {
    let mut message = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n".to_vec();
    for _ in 0..30_000 {
        message.extend_from_slice(b"--m\r\n\r\nx\r\n");
    }
    message.extend_from_slice(b"--m--\r\n");
    let limits = Limits {
        max_parts: 1_000,
        ..Limits::default()
    };
    let view = MessageView::parse(&message, &limits);
    let PartKind::Multipart(children) = &view.root().kind else {
        panic!("not multipart");
    };
    assert_eq!(children.len(), 1_000);
    // The whole message is still there for BODY[].
    assert_eq!(
        view.section(None, None).expect("whole").len(),
        message.len()
    );
}

#[test]
fn lines_that_look_like_close_delimiters_at_every_level_cost_one_parse() {
    // Every level ends with a line that looks like a close delimiter of an inner
    // multipart but is not one; each level is still parsed once (a re-parse per
    // level would be exponential in the depth).
    let depth = 30;
    let mut message = Vec::new();
    for level in 0..depth {
        message.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=l{level}\r\n\r\n--l{level}\r\n")
                .as_bytes(),
        );
    }
    message.extend_from_slice(b"\r\ncore\r\n");
    for level in (0..depth).rev() {
        message.extend_from_slice(format!("--fake{level}--\r\n--l{level}--\r\n").as_bytes());
    }
    let view = MessageView::parse(&message, &Limits::default());
    let mut part = view.root();
    let mut levels = 0;
    while let PartKind::Multipart(children) = &part.kind {
        levels += 1;
        part = &children[0];
    }
    assert_eq!(levels, depth);
    assert_eq!(&message[part.body.clone()], b"core\r\n--fake29--");
}
