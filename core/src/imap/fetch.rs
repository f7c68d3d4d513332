//! FETCH's content side (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ): which
//! items a command asks, whether they need the message's bytes or set \Seen, and
//! one message's FETCH response written from its metadata and, when needed, its
//! parsed bytes (`core::message`). The command's flow is in `fetch_flow`.

use super::request::MessageMetadata;
use crate::message::{MessageView, SectionError};
use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_types::IntoStatic;
use imap_types::core::{AString, Vec1};
use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName};
use imap_types::fetch::{Part, Section};
use imap_types::response::{Data, Response};
use std::num::NonZeroU32;

/// What one FETCH command asks of every message.
#[derive(Clone, Debug)]
pub(super) struct FetchPlan {
    /// The items in the client's order, macros expanded, UID added for UID FETCH
    /// (RFC 9051 §6.4.9) and MODSEQ for CHANGEDSINCE (RFC 7162 §3.1.4.1).
    items: Vec<MessageDataItemName<'static>>,
}

impl FetchPlan {
    pub(super) fn new(
        asked: &MacroOrMessageDataItemNames<'_>,
        by_uid: bool,
        with_modseq: bool,
    ) -> FetchPlan {
        let mut items: Vec<MessageDataItemName<'static>> = match asked {
            MacroOrMessageDataItemNames::Macro(m) => {
                m.expand().into_iter().map(|i| i.into_static()).collect()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => {
                names.iter().map(|i| i.clone().into_static()).collect()
            }
        };
        if by_uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        if with_modseq && !items.contains(&MessageDataItemName::ModSeq) {
            items.push(MessageDataItemName::ModSeq);
        }
        FetchPlan { items }
    }

    /// Whether any item needs the message's bytes (the rest come from metadata).
    pub(super) fn needs_content(&self) -> bool {
        self.items.iter().any(|item| {
            !matches!(
                item,
                MessageDataItemName::Flags
                    | MessageDataItemName::InternalDate
                    | MessageDataItemName::Rfc822Size
                    | MessageDataItemName::Uid
                    | MessageDataItemName::ModSeq
            )
        })
    }

    /// Whether an item reads the body without PEEK, which sets \Seen (RFC 9051 §6.4.5:
    /// BODY[...], BINARY[...], RFC822 and RFC822.TEXT).
    pub(super) fn sets_seen(&self) -> bool {
        self.items.iter().any(|item| match item {
            MessageDataItemName::BodyExt { peek, .. }
            | MessageDataItemName::Binary { peek, .. } => !peek,
            MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => true,
            _ => false,
        })
    }

    /// Whether FLAGS is among the items.
    pub(super) fn has_flags(&self) -> bool {
        self.items.contains(&MessageDataItemName::Flags)
    }
}

/// A message's FETCH response could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct UnknownCte(pub(super) String);

/// The message as the reader sees it: its bytes (with Return-Path) parsed.
pub(super) struct Content<'m> {
    pub(super) view: MessageView<'m>,
}

/// `* seq FETCH (...)` for one message. `extra_flags`: FLAGS changed by this FETCH
/// (\Seen set) and not asked, reported as well (RFC 9051 §6.4.5).
pub(super) fn render(
    plan: &FetchPlan,
    seq: u32,
    meta: &MessageMetadata,
    content: Option<&Content<'_>>,
    extra_flags: bool,
) -> Result<Vec<u8>, UnknownCte> {
    let mut out = format!("* {seq} FETCH (").into_bytes();
    let mut first = true;
    let mut item = |out: &mut Vec<u8>, bytes: &[u8]| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(bytes);
    };
    for name in &plan.items {
        let bytes = render_item(name, meta, content)?;
        item(&mut out, &bytes);
    }
    if extra_flags && !plan.has_flags() {
        item(&mut out, &flags_item(meta));
    }
    out.extend_from_slice(b")\r\n");
    Ok(out)
}

fn flags_item(meta: &MessageMetadata) -> Vec<u8> {
    format!("FLAGS ({})", meta.flags.join(" ")).into_bytes()
}

/// RFC822.SIZE as the reader sees it, from the metadata alone: the stored size
/// and the Return-Path field `with_return_path` adds.
pub(super) fn reader_size(meta: &MessageMetadata) -> u64 {
    let field = crate::mailbox::return_path_field(&meta.envelope_sender);
    meta.size.saturating_add(field.len() as u64)
}

fn render_item(
    name: &MessageDataItemName<'_>,
    meta: &MessageMetadata,
    content: Option<&Content<'_>>,
) -> Result<Vec<u8>, UnknownCte> {
    let text = |s: String| Ok(s.into_bytes());
    // Items that need bytes are only asked with bytes at hand (`needs_content`);
    // without them (a driver bug) they answer NIL rather than fail.
    let Some(view) = content.map(|c| &c.view) else {
        return match name {
            MessageDataItemName::Flags => Ok(flags_item(meta)),
            MessageDataItemName::InternalDate => text(internal_date(meta.internal_date_ms)),
            MessageDataItemName::Rfc822Size => text(format!("RFC822.SIZE {}", reader_size(meta))),
            MessageDataItemName::Uid => text(format!("UID {}", meta.uid)),
            MessageDataItemName::ModSeq => text(format!("MODSEQ ({})", meta.modseq)),
            other => text(format!("{} NIL", item_label(other))),
        };
    };
    match name {
        MessageDataItemName::Flags => Ok(flags_item(meta)),
        MessageDataItemName::InternalDate => text(internal_date(meta.internal_date_ms)),
        MessageDataItemName::Rfc822Size => text(format!("RFC822.SIZE {}", view.size())),
        MessageDataItemName::Uid => text(format!("UID {}", meta.uid)),
        MessageDataItemName::ModSeq => text(format!("MODSEQ ({})", meta.modseq)),
        MessageDataItemName::Envelope => Ok(encoded(MessageDataItem::Envelope(view.envelope()))),
        MessageDataItemName::Body => Ok(encoded(MessageDataItem::Body(view.body_structure(false)))),
        MessageDataItemName::BodyStructure => Ok(encoded(MessageDataItem::BodyStructure(
            view.body_structure(true),
        ))),
        MessageDataItemName::BodyExt {
            section, partial, ..
        } => {
            let data = view.section(section.as_ref(), *partial);
            Ok(labelled(&item_label(name), data.ok().as_deref(), false))
        }
        MessageDataItemName::Rfc822 => Ok(labelled("RFC822", Some(view.bytes()), false)),
        MessageDataItemName::Rfc822Header => {
            let data = view.section(Some(&Section::Header(None)), None);
            Ok(labelled("RFC822.HEADER", data.ok().as_deref(), false))
        }
        MessageDataItemName::Rfc822Text => {
            let data = view.section(Some(&Section::Text(None)), None);
            Ok(labelled("RFC822.TEXT", data.ok().as_deref(), false))
        }
        MessageDataItemName::Binary {
            section, partial, ..
        } => match view.binary(section, *partial) {
            Ok(data) => Ok(labelled(&item_label(name), Some(&data), true)),
            Err(SectionError::NoSuchPart) => Ok(labelled(&item_label(name), None, true)),
            Err(SectionError::UnknownCte(cte)) => Err(UnknownCte(cte)),
        },
        MessageDataItemName::BinarySize { section } => match view.binary_size(section) {
            Ok(size) => text(format!("{} {size}", item_label(name))),
            // As Dovecot: a part that does not exist has size 0.
            Err(SectionError::NoSuchPart) => text(format!("{} 0", item_label(name))),
            Err(SectionError::UnknownCte(cte)) => Err(UnknownCte(cte)),
        },
    }
}

/// `label {n}\r\nbytes`, `label ~{n}\r\nbytes` (literal8 for BINARY), or `label NIL`.
/// Literals always: the bytes are the message's, and their octet count is exact.
fn labelled(label: &str, data: Option<&[u8]>, literal8: bool) -> Vec<u8> {
    let Some(data) = data else {
        return format!("{label} NIL").into_bytes();
    };
    let tilde = if literal8 { "~" } else { "" };
    let mut out = format!("{label} {tilde}{{{}}}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out
}

/// The name of an item as the response echoes it: `BODY[1.HEADER]<0>`, `BINARY[2]`.
fn item_label(name: &MessageDataItemName<'_>) -> String {
    match name {
        MessageDataItemName::BodyExt {
            section, partial, ..
        } => {
            let origin = partial.map_or(String::new(), |(origin, _)| format!("<{origin}>"));
            format!("BODY[{}]{origin}", section_text(section.as_ref()))
        }
        MessageDataItemName::Binary {
            section, partial, ..
        } => {
            let origin = partial.map_or(String::new(), |(origin, _)| format!("<{origin}>"));
            format!("BINARY[{}]{origin}", numbers(section))
        }
        MessageDataItemName::BinarySize { section } => {
            format!("BINARY.SIZE[{}]", numbers(section))
        }
        MessageDataItemName::Envelope => "ENVELOPE".into(),
        MessageDataItemName::Body => "BODY".into(),
        MessageDataItemName::BodyStructure => "BODYSTRUCTURE".into(),
        MessageDataItemName::Rfc822 => "RFC822".into(),
        MessageDataItemName::Rfc822Header => "RFC822.HEADER".into(),
        MessageDataItemName::Rfc822Text => "RFC822.TEXT".into(),
        MessageDataItemName::Flags => "FLAGS".into(),
        MessageDataItemName::InternalDate => "INTERNALDATE".into(),
        MessageDataItemName::Rfc822Size => "RFC822.SIZE".into(),
        MessageDataItemName::Uid => "UID".into(),
        MessageDataItemName::ModSeq => "MODSEQ".into(),
    }
}

fn numbers(part: &[NonZeroU32]) -> String {
    part.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// A section specifier as the response echoes it (RFC 9051 §7.5.2).
fn section_text(section: Option<&Section<'_>>) -> String {
    let prefixed = |part: &Option<Part>, what: &str| match part {
        Some(part) => format!("{}.{what}", numbers(part.0.as_ref())),
        None => what.to_owned(),
    };
    let names = |names: &Vec1<AString<'_>>| {
        names
            .as_ref()
            .iter()
            .map(|name| astring_text(name.as_ref()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match section {
        None => String::new(),
        Some(Section::Part(part)) => numbers(part.0.as_ref()),
        Some(Section::Header(part)) => prefixed(part, "HEADER"),
        Some(Section::Text(part)) => prefixed(part, "TEXT"),
        Some(Section::Mime(part)) => format!("{}.MIME", numbers(part.0.as_ref())),
        Some(Section::HeaderFields(part, list)) => {
            format!("{} ({})", prefixed(part, "HEADER.FIELDS"), names(list))
        }
        Some(Section::HeaderFieldsNot(part, list)) => {
            format!("{} ({})", prefixed(part, "HEADER.FIELDS.NOT"), names(list))
        }
    }
}

/// A field name as an atom when it is one, else a quoted string.
fn astring_text(bytes: &[u8]) -> String {
    let atom = !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b > b' ' && b < 0x7f && !b"(){%*\"\\]".contains(&b));
    let text = String::from_utf8_lossy(bytes);
    if atom {
        text.into_owned()
    } else {
        let escaped: String = text
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    }
}

/// `INTERNALDATE "dd-Mon-yyyy hh:mm:ss +0000"`.
fn internal_date(ms: i64) -> String {
    let date = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    format!(
        "INTERNALDATE \"{}\"",
        date.format("%d-%b-%Y %H:%M:%S +0000")
    )
}

/// One item as imap-codec writes it (ENVELOPE and BODY[STRUCTURE], whose grammar
/// is long): the text between `* 1 FETCH (` and `)\r\n`.
fn encoded(item: MessageDataItem<'static>) -> Vec<u8> {
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item),
    });
    let bytes = ResponseCodec::default().encode(&response).dump();
    let head = b"* 1 FETCH (".len();
    let tail = b")\r\n".len();
    bytes
        .get(head..bytes.len().saturating_sub(tail))
        .unwrap_or_default()
        .to_vec()
}
