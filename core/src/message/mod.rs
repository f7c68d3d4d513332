//! A stored message as IMAP reads it: pure functions over its bytes, for the IMAP
//! session machine. [`MessageView`] parses the MIME tree once (offsets, no copy of
//! the bytes) and answers ENVELOPE, BODY and BODYSTRUCTURE as imap-types values,
//! BODY[section]<partial>, BINARY[section] and BINARY.SIZE, and whether the message
//! matches a SEARCH key ([`search`]). [`with_return_path`] gives the bytes a reader
//! sees (RFC 5321 §4.4), on which every size is computed.
//!
//! mail-parser (a core dependency) decodes what search compares: encoded-words in
//! header fields, Date fields, charsets. Where its model loses what IMAP needs (the
//! exact bytes of each field, part bounds, parameters and encoded-words as written)
//! the modules here keep offsets into the stored bytes instead; each says why.
//! Choices made where the RFCs leave room follow Dovecot, the reference the test
//! `tests/tests/message_view_vs_dovecot.rs` compares against.
//!
//! Inside: `header` (fields by offset), `params` (MIME values as written),
//! `structure` (the MIME tree), `address` and `envelope`, `body_structure`,
//! `section` (sections, partial, BINARY), `decode` (transfer encodings, charsets),
//! `search` (SEARCH keys), `strings` (bytes as IMAP strings).

mod address;
mod body_structure;
mod decode;
mod envelope;
pub mod header;
mod params;
pub mod search;
mod section;
mod strings;
mod structure;

pub use search::{MessageMeta, SearchError, check_charset};
pub use section::SectionError;
pub use structure::{ContentType, Part, PartKind};

use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;
use imap_types::fetch::Section;
use std::borrow::Cow;
use std::num::NonZeroU32;

/// Bounds on the work one message can cause. Past a bound the rest is kept as it
/// is (an opaque part, an unindexed field), never refused: a stored message is
/// always readable in full with BODY[].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// MIME nesting (multiparts and message/rfc822 inside each other) analysed; a
    /// deeper part is a leaf. Default 32; Dovecot stops at 100, real mail rarely
    /// passes 5. The tree walk is O(size × depth).
    pub max_depth: usize,
    /// Parts analysed in one message; later parts are not listed. Default 10,000.
    pub max_parts: usize,
    /// Header fields indexed per header block; later fields are in HEADER but are
    /// not looked up. Default 5,000.
    pub max_header_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 32,
            max_parts: 10_000,
            max_header_fields: 5_000,
        }
    }
}

/// A stored message parsed for IMAP: its bytes and its MIME tree.
#[derive(Debug, Clone)]
pub struct MessageView<'m> {
    bytes: &'m [u8],
    root: Part,
}

impl<'m> MessageView<'m> {
    /// Parses `bytes` (as the reader sees them: see [`with_return_path`]). Never
    /// fails: any bytes are a message, at worst a header-only one.
    pub fn parse(bytes: &'m [u8], limits: &Limits) -> Self {
        MessageView {
            bytes,
            root: structure::parse_message(bytes, limits),
        }
    }

    /// The message's bytes.
    pub fn bytes(&self) -> &'m [u8] {
        self.bytes
    }

    /// The MIME tree.
    pub fn root(&self) -> &Part {
        &self.root
    }

    /// RFC822.SIZE: the octets of the message.
    pub fn size(&self) -> u32 {
        u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }

    /// ENVELOPE.
    pub fn envelope(&self) -> Envelope<'static> {
        envelope::envelope_of(self.bytes, &self.root.header)
    }

    /// BODYSTRUCTURE (`extensible`) or BODY.
    pub fn body_structure(&self, extensible: bool) -> BodyStructure<'static> {
        body_structure::body_structure_of(self.bytes, &self.root, extensible)
    }

    /// BODY[section] (`None`: BODY[]), with `<origin.count>` applied when given.
    /// Borrowed from the stored bytes except HEADER.FIELDS[.NOT].
    pub fn section(
        &self,
        section: Option<&Section<'_>>,
        partial: Option<(u32, NonZeroU32)>,
    ) -> Result<Cow<'m, [u8]>, SectionError> {
        let data = section::section_bytes(self.bytes, &self.root, section)?;
        Ok(match partial {
            Some((origin, count)) => section::partial(data, origin, count),
            None => data,
        })
    }

    /// BINARY[part]<partial>: the part decoded from its transfer encoding.
    pub fn binary(
        &self,
        part: &[NonZeroU32],
        partial: Option<(u32, NonZeroU32)>,
    ) -> Result<Cow<'m, [u8]>, SectionError> {
        let data = section::binary_bytes(self.bytes, &self.root, part)?;
        Ok(match partial {
            Some((origin, count)) => section::partial(data, origin, count),
            None => data,
        })
    }

    /// BINARY.SIZE[part]: the size BINARY[part] would have.
    pub fn binary_size(&self, part: &[NonZeroU32]) -> Result<u32, SectionError> {
        let data = section::binary_bytes(self.bytes, &self.root, part)?;
        Ok(u32::try_from(data.len()).unwrap_or(u32::MAX))
    }
}

/// The message as a reader sees it: `stored` with a Return-Path field naming the
/// envelope sender prepended (RFC 5321 §4.4; `<>` for the null reverse-path, an
/// empty `envelope_sender`), unless it already starts with one. Without a field to
/// add nothing is copied; with one the message is copied once (O(size)).
pub fn with_return_path<'m>(envelope_sender: &str, stored: &'m [u8]) -> Cow<'m, [u8]> {
    const NAME: &[u8] = b"return-path:";
    let starts_with_one = stored
        .get(..NAME.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(NAME));
    if starts_with_one {
        return Cow::Borrowed(stored);
    }
    // CR and LF in the sender would forge fields; they cannot come from SMTP, but
    // the field is built from a value this function does not check otherwise.
    let sender: String = envelope_sender
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let mut out = Vec::with_capacity(stored.len() + sender.len() + 18);
    out.extend_from_slice(b"Return-Path: <");
    out.extend_from_slice(sender.as_bytes());
    out.extend_from_slice(b">\r\n");
    out.extend_from_slice(stored);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
