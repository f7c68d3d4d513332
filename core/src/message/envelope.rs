//! ENVELOPE (RFC 9051 §7.5.2): the message's header fields as IMAP reports them,
//! unfolded but not decoded (encoded-words stay as written).

use super::address::parse_address_list;
use super::header::HeaderBlock;
use super::strings::nstring;
use imap_types::envelope::{Address, Envelope};

/// The envelope of the message whose header is `header` within `bytes`.
pub(super) fn envelope_of(bytes: &[u8], header: &HeaderBlock) -> Envelope<'static> {
    let text = |name: &[u8]| nstring(header.first(bytes, name).map(|f| f.unfolded_value(bytes)));
    let addresses = |name: &[u8]| -> Vec<Address<'static>> {
        header
            .first(bytes, name)
            .map(|f| parse_address_list(f.raw_value(bytes)))
            .unwrap_or_default()
    };
    let from = addresses(b"from");
    // RFC 9051 §7.5.2: Sender and Reply-To absent or empty take the From value.
    let or_from = |list: Vec<Address<'static>>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: text(b"date"),
        // Dovecot writes the subject "for humans": folding and runs of blanks
        // become one space.
        subject: nstring(
            header
                .first(bytes, b"subject")
                .map(|f| collapse_blanks(&f.unfolded_value(bytes))),
        ),
        sender: or_from(addresses(b"sender")),
        reply_to: or_from(addresses(b"reply-to")),
        from: from.clone(),
        to: addresses(b"to"),
        cc: addresses(b"cc"),
        bcc: addresses(b"bcc"),
        in_reply_to: text(b"in-reply-to"),
        message_id: text(b"message-id"),
    }
}

/// Runs of spaces and tabs as one space, none at either end.
fn collapse_blanks(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for word in value
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header::parse_header;
    use imap_types::core::NString;

    #[test]
    fn sender_and_reply_to_default_to_from_and_absent_fields_are_nil() {
        let message = b"From: a@x.test\r\nSubject: =?utf-8?q?hi?=\r\n  there\r\nReply-To:\r\n\r\n";
        let header = parse_header(message, 0..message.len(), 100);
        let envelope = envelope_of(message, &header);
        assert_eq!(envelope.sender, envelope.from);
        assert_eq!(envelope.reply_to, envelope.from);
        assert_eq!(envelope.from.len(), 1);
        assert_eq!(envelope.date, NString::NIL);
        assert!(envelope.to.is_empty());
        assert_eq!(
            envelope.subject.into_option().as_deref(),
            Some(&b"=?utf-8?q?hi?= there"[..])
        );
    }
}
