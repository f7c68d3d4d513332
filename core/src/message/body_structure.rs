//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2): the MIME tree as imap-types values.
//! Sizes are the octets of each part's body as stored; lines are counted for text/*
//! and message/rfc822 parts. BODYSTRUCTURE adds the extension data: MD5,
//! disposition, language and location for single parts, parameters, disposition,
//! language and location for multiparts.

use super::envelope::envelope_of;
use super::header::HeaderBlock;
use super::params::{parse_language_list, parse_value_with_params};
use super::strings::{istring, nstring};
use super::structure::{Part, PartKind};
use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_types::core::{IString, Vec1};

/// The body structure of `part`; with `extensible`, BODYSTRUCTURE's extension data,
/// without, the non-extensible BODY form. Linear in the size of the parts' headers
/// plus one pass over text and message bodies to count lines.
pub(super) fn body_structure_of(
    bytes: &[u8],
    part: &Part,
    extensible: bool,
) -> BodyStructure<'static> {
    match &part.kind {
        PartKind::Multipart(children) => {
            let bodies: Vec<BodyStructure<'static>> = children
                .iter()
                .map(|child| body_structure_of(bytes, child, extensible))
                .collect();
            let bodies = match Vec1::try_from(bodies) {
                Ok(bodies) => bodies,
                // The tree always gives a multipart one part; a lone empty text part
                // keeps the value well-formed should that ever change.
                Err(_) => Vec1::from(empty_text_part()),
            };
            BodyStructure::Multi {
                bodies,
                subtype: istring(part.content_type.sub.clone()),
                extension_data: extensible.then(|| MultiPartExtensionData {
                    parameter_list: params(&part.content_type.params),
                    tail: Some(disposition_tail(bytes, &part.header)),
                }),
            }
        }
        PartKind::Leaf | PartKind::Message(_) => {
            let header = &part.header;
            let field = |name: &[u8]| header.first(bytes, name).map(|f| f.unfolded_value(bytes));
            let size = u32::try_from(part.body.len()).unwrap_or(u32::MAX);
            let basic = BasicFields {
                parameter_list: leaf_params(part),
                id: nstring(field(b"content-id")),
                description: nstring(field(b"content-description")),
                content_transfer_encoding: istring(encoding(bytes, part)),
                size,
            };
            let lines = || count_lines(bytes.get(part.body.clone()).unwrap_or_default());
            let specific = match &part.kind {
                PartKind::Message(inner) => SpecificFields::Message {
                    envelope: Box::new(envelope_of(bytes, &inner.header)),
                    body_structure: Box::new(body_structure_of(bytes, inner, extensible)),
                    number_of_lines: lines(),
                },
                _ if part.content_type.is(b"text") => SpecificFields::Text {
                    subtype: istring(part.content_type.sub.clone()),
                    number_of_lines: lines(),
                },
                _ => SpecificFields::Basic {
                    r#type: istring(part.content_type.main.clone()),
                    subtype: istring(part.content_type.sub.clone()),
                },
            };
            BodyStructure::Single {
                body: Body { basic, specific },
                extension_data: extensible.then(|| SinglePartExtensionData {
                    md5: nstring(field(b"content-md5")),
                    tail: Some(disposition_tail(bytes, header)),
                }),
            }
        }
    }
}

/// The encoding BODYSTRUCTURE reports: as written, `7bit` when absent. Like
/// Dovecot, a part without a Content-Type field reports `7bit` whatever its
/// Content-Transfer-Encoding says: the defaults of RFC 2045 §5.2 are taken together.
fn encoding(bytes: &[u8], part: &Part) -> Vec<u8> {
    let header = &part.header;
    if header.first(bytes, b"content-type").is_none() {
        return b"7bit".to_vec();
    }
    header
        .first(bytes, b"content-transfer-encoding")
        .map(|f| f.unfolded_value(bytes))
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| b"7bit".to_vec())
}

fn empty_text_part() -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: Vec::new(),
                id: nstring(None),
                description: nstring(None),
                content_transfer_encoding: istring(b"7bit".to_vec()),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: istring(b"plain".to_vec()),
                number_of_lines: 0,
            },
        },
        extension_data: None,
    }
}

/// A leaf's Content-Type parameters; a text part without a charset gets
/// `charset=us-ascii` after the others (RFC 2045 §5.2's default, written out as
/// Dovecot does).
fn leaf_params(part: &Part) -> Vec<(IString<'static>, IString<'static>)> {
    let mut list = params(&part.content_type.params);
    if part.content_type.is(b"text") && part.content_type.param(b"charset").is_none() {
        list.push((istring(b"charset".to_vec()), istring(b"us-ascii".to_vec())));
    }
    list
}

fn params(list: &[(Vec<u8>, Vec<u8>)]) -> Vec<(IString<'static>, IString<'static>)> {
    list.iter()
        .map(|(name, value)| (istring(name.clone()), istring(value.clone())))
        .collect()
}

/// Disposition, language and location: the extension data common to both forms.
fn disposition_tail(bytes: &[u8], header: &HeaderBlock) -> Disposition<'static> {
    let disposition = header
        .first(bytes, b"content-disposition")
        .and_then(|field| {
            let parsed = parse_value_with_params(field.raw_value(bytes));
            (!parsed.value.is_empty())
                .then(|| (istring(parsed.value.clone()), params(&parsed.params)))
        });
    let language = header
        .first(bytes, b"content-language")
        .map(|field| parse_language_list(field.raw_value(bytes)))
        .unwrap_or_default()
        .into_iter()
        .map(istring)
        .collect();
    let location = nstring(
        header
            .first(bytes, b"content-location")
            .map(|field| field.unfolded_value(bytes)),
    );
    Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location,
                extensions: Vec::new(),
            }),
        }),
    }
}

/// Lines of a body: its line feeds (a last line without one is not counted, as
/// Dovecot counts).
fn count_lines(body: &[u8]) -> u32 {
    let feeds = body.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(feeds).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_line_feeds() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a\r\nb\r\n"), 2);
        assert_eq!(count_lines(b"a\r\nb"), 1);
    }
}
