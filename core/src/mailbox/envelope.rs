//! The envelope sender a mailbox entry keeps, and the Return-Path field a reader
//! of the entry gets from it (RFC 5321 §4.4: the final delivery records the
//! reverse-path there).

/// The envelope sender as a mailbox entry keeps it: the reverse-path without its
/// angle brackets, empty for the null reverse-path (`<>`).
pub fn envelope_sender(reverse_path: &str) -> &str {
    let trimmed = reverse_path.trim();
    let inner = trimmed.strip_prefix('<').unwrap_or(trimmed);
    inner.strip_suffix('>').unwrap_or(inner)
}

/// The Return-Path header field, with its CRLF, for a kept envelope sender:
/// `Return-Path: <>` for the null path (and for an entry without one, such as
/// an APPENDed message, which had no SMTP envelope).
pub fn return_path_field(envelope_sender: &str) -> String {
    format!("Return-Path: <{envelope_sender}>\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brackets_go_and_come_back() {
        assert_eq!(envelope_sender("<bob@example.net>"), "bob@example.net");
        assert_eq!(envelope_sender("<>"), "");
        assert_eq!(envelope_sender("bob@example.net"), "bob@example.net");
        assert_eq!(
            return_path_field(envelope_sender("<bob@example.net>")),
            "Return-Path: <bob@example.net>\r\n"
        );
        assert_eq!(return_path_field(""), "Return-Path: <>\r\n");
    }
}
