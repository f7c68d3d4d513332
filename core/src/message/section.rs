//! BODY[section]<partial> and BINARY[section] (RFC 9051 §6.4.5, RFC 3516): which
//! bytes of the message a section names.
//!
//! Part numbers follow RFC 9051: a non-multipart message's body is its part 1; the
//! parts of a message/rfc822 part are numbered within the encapsulated message, and
//! HEADER, TEXT and HEADER.FIELDS after a part number name that encapsulated
//! message's header and body; MIME names a part's own header. A section is a range
//! of the stored bytes (no copy) except HEADER.FIELDS[.NOT], which selects fields
//! (a copy of at most the header), and BINARY of an encoded part (a decoded copy of
//! that part, linear in its size).

use super::header::{HeaderBlock, trim_blanks};
use super::structure::{Part, PartKind};
use imap_types::core::AString;
use imap_types::fetch::{Part as PartNumbers, Section};
use std::borrow::Cow;
use std::num::NonZeroU32;

/// Why a section cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    /// The part numbers name no part of this message (Dovecot answers NIL).
    #[error("no such part")]
    NoSuchPart,
    /// BINARY of a part whose Content-Transfer-Encoding is unknown
    /// (RFC 9051 §6.4.5: the UNKNOWN-CTE response code).
    #[error("unknown content-transfer-encoding {0:?}")]
    UnknownCte(String),
}

/// The part `path` names within the message `root`, or `None`.
pub(super) fn resolve<'p>(root: &'p Part, path: &[NonZeroU32]) -> Option<&'p Part> {
    match path.split_first() {
        None => Some(root),
        Some((first, rest)) => {
            match &root.kind {
                PartKind::Multipart(children) => {
                    resolve_within_part(children.get(index(*first))?, rest)
                }
                // A non-multipart message is its own part 1; below it, only an
                // encapsulated message has parts.
                _ if first.get() != 1 => None,
                _ if rest.is_empty() => Some(root),
                PartKind::Message(inner) => resolve(inner, rest),
                _ => None,
            }
        }
    }
}

fn resolve_within_part<'p>(part: &'p Part, rest: &[NonZeroU32]) -> Option<&'p Part> {
    let Some((first, tail)) = rest.split_first() else {
        return Some(part);
    };
    match &part.kind {
        PartKind::Multipart(children) => resolve_within_part(children.get(index(*first))?, tail),
        PartKind::Message(inner) => resolve(inner, rest),
        // As Dovecot reads it, a leaf is its own part 1, as a single-part message is.
        PartKind::Leaf if first.get() == 1 => resolve_within_part(part, tail),
        PartKind::Leaf => None,
    }
}

fn index(number: NonZeroU32) -> usize {
    usize::try_from(number.get() - 1).unwrap_or(usize::MAX)
}

/// The bytes `section` names (`None`: the whole message, BODY[]).
pub(super) fn section_bytes<'m>(
    bytes: &'m [u8],
    root: &Part,
    section: Option<&Section<'_>>,
) -> Result<Cow<'m, [u8]>, SectionError> {
    let slice = |range: std::ops::Range<usize>| Cow::Borrowed(bytes.get(range).unwrap_or_default());
    let numbers = |part: &Option<PartNumbers>| {
        part.as_ref()
            .map(|p| p.0.as_ref().to_vec())
            .unwrap_or_default()
    };
    // HEADER, TEXT and HEADER.FIELDS after part numbers name an encapsulated message.
    let message_at = |path: &[NonZeroU32]| -> Result<&Part, SectionError> {
        let part = resolve(root, path).ok_or(SectionError::NoSuchPart)?;
        if path.is_empty() {
            return Ok(part);
        }
        match &part.kind {
            PartKind::Message(inner) => Ok(inner),
            _ => Err(SectionError::NoSuchPart),
        }
    };
    match section {
        None => Ok(slice(0..bytes.len())),
        Some(Section::Part(part)) => {
            let found = resolve(root, part.0.as_ref()).ok_or(SectionError::NoSuchPart)?;
            Ok(slice(found.body.clone()))
        }
        Some(Section::Mime(part)) => {
            let found = resolve(root, part.0.as_ref()).ok_or(SectionError::NoSuchPart)?;
            Ok(slice(found.header.range.clone()))
        }
        Some(Section::Header(part)) => Ok(slice(message_at(&numbers(part))?.header.range.clone())),
        Some(Section::Text(part)) => Ok(slice(message_at(&numbers(part))?.body.clone())),
        Some(Section::HeaderFields(part, names)) => {
            let message = message_at(&numbers(part))?;
            Ok(Cow::Owned(header_fields(
                bytes,
                &message.header,
                names.as_ref(),
                true,
            )))
        }
        Some(Section::HeaderFieldsNot(part, names)) => {
            let message = message_at(&numbers(part))?;
            Ok(Cow::Owned(header_fields(
                bytes,
                &message.header,
                names.as_ref(),
                false,
            )))
        }
    }
}

/// The fields of `header` whose name is (`keep`) or is not (`!keep`) in `names`,
/// as stored, followed by the blank line if the header has one (RFC 9051 §6.4.5).
pub(super) fn header_fields(
    bytes: &[u8],
    header: &HeaderBlock,
    names: &[AString<'_>],
    keep: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for field in &header.fields {
        // A line without a colon has no name: it is never listed, so NOT keeps it
        // (as Dovecot does).
        let name = trim_blanks(field.name(bytes));
        let listed = !name.is_empty()
            && names
                .iter()
                .any(|wanted| wanted.as_ref().eq_ignore_ascii_case(name));
        if listed == keep {
            out.extend_from_slice(bytes.get(field.range()).unwrap_or_default());
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    // RFC 9051 §6.4.5: no blank line for a message that has none (no body); as
    // Dovecot, only when nothing was selected either.
    if header.ends_with_blank_line || !out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `<origin.count>` of a section (RFC 9051 §6.4.5): an origin past the end gives
/// nothing, a count past the end gives what there is. No copy of a borrowed section.
pub(super) fn partial<'m>(data: Cow<'m, [u8]>, origin: u32, count: NonZeroU32) -> Cow<'m, [u8]> {
    let len = data.len();
    let start = usize::try_from(origin).unwrap_or(usize::MAX).min(len);
    let end = start
        .saturating_add(usize::try_from(count.get()).unwrap_or(usize::MAX))
        .min(len);
    match data {
        Cow::Borrowed(slice) => Cow::Borrowed(slice.get(start..end).unwrap_or_default()),
        Cow::Owned(vec) => Cow::Owned(vec.get(start..end).unwrap_or_default().to_vec()),
    }
}

/// BINARY[path]: the part's content with its Content-Transfer-Encoding removed
/// (RFC 3516 in RFC 9051 §6.4.5). An empty path is the whole message, as stored.
pub(super) fn binary_bytes<'m>(
    bytes: &'m [u8],
    root: &Part,
    path: &[NonZeroU32],
) -> Result<Cow<'m, [u8]>, SectionError> {
    let part = resolve(root, path).ok_or(SectionError::NoSuchPart)?;
    let body = bytes.get(part.body.clone()).unwrap_or_default();
    if path.is_empty() {
        return Ok(Cow::Borrowed(bytes));
    }
    if !matches!(part.kind, PartKind::Leaf) {
        // Multiparts and messages carry no encoding of their own (RFC 2045 §6.4).
        return Ok(Cow::Borrowed(body));
    }
    let encoding = part
        .header
        .first(bytes, b"content-transfer-encoding")
        .map(|field| field.token_value(bytes))
        .unwrap_or_else(|| b"7bit".to_vec());
    match encoding.as_slice() {
        b"7bit" | b"8bit" | b"binary" | b"" => Ok(Cow::Borrowed(body)),
        b"base64" => Ok(Cow::Owned(super::decode::base64(body))),
        b"quoted-printable" => Ok(Cow::Owned(super::decode::quoted_printable(body))),
        _ => Err(SectionError::UnknownCte(
            String::from_utf8_lossy(&encoding).into_owned(),
        )),
    }
}
