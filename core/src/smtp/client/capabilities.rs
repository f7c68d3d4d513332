//! The server's EHLO/LHLO capability list (RFC 5321 §4.1.1.1): the extensions this
//! client uses, read from the reply's lines after the first.

use crate::smtp::reply::Reply;

/// What the server offers. All false (and no size limit) after HELO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Capabilities {
    pub(super) pipelining: bool,
    pub(super) starttls: bool,
    /// RFC 1870: the largest message the server takes; `None` when it gave no limit
    /// (SIZE without a number, `SIZE 0`, or a number we cannot read).
    pub(super) size_limit: Option<u64>,
    pub(super) size: bool,
    pub(super) eight_bit_mime: bool,
    pub(super) smtputf8: bool,
    pub(super) dsn: bool,
    pub(super) chunking: bool,
    /// RFC 4954 AUTH with the PLAIN (RFC 4616) or LOGIN mechanism.
    pub(super) auth_plain: bool,
    pub(super) auth_login: bool,
}

impl Capabilities {
    /// Reads the keywords of an EHLO reply; unknown keywords are ignored, keywords are
    /// case-insensitive (RFC 5321 §2.4).
    pub(super) fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut capabilities = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let mut keyword = keyword.to_ascii_uppercase();
            if let Some(mechanisms) = keyword.strip_prefix("AUTH=") {
                // `AUTH=LOGIN PLAIN`: the first mechanism is glued to the keyword.
                let first = mechanisms.to_owned();
                keyword = "AUTH=".to_owned();
                capabilities.note_mechanism(&first);
            }
            match keyword.as_str() {
                "PIPELINING" => capabilities.pipelining = true,
                "STARTTLS" => capabilities.starttls = true,
                "8BITMIME" => capabilities.eight_bit_mime = true,
                "SMTPUTF8" => capabilities.smtputf8 = true,
                "DSN" => capabilities.dsn = true,
                "CHUNKING" => capabilities.chunking = true,
                // "AUTH=" is the pre-RFC 4954 spelling some servers still list.
                "AUTH" | "AUTH=" => {
                    for mechanism in words.by_ref() {
                        capabilities.note_mechanism(mechanism);
                    }
                }
                "SIZE" => {
                    capabilities.size = true;
                    capabilities.size_limit = words
                        .next()
                        .and_then(|number| number.parse::<u64>().ok())
                        .filter(|&limit| limit > 0);
                }
                _ => {}
            }
        }
        capabilities
    }

    fn note_mechanism(&mut self, mechanism: &str) {
        match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => self.auth_plain = true,
            "LOGIN" => self.auth_login = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::ReplyCode;

    fn ehlo(lines: &[&str]) -> Capabilities {
        Capabilities::from_ehlo(&Reply {
            code: ReplyCode(250),
            status: None,
            lines: lines.iter().map(|line| (*line).to_owned()).collect(),
        })
    }

    #[test]
    fn reads_every_used_extension_in_any_case() {
        let capabilities = ehlo(&[
            "mx.example hello",
            "pipelining",
            "SIZE 1000",
            "8BITMIME",
            "SmtpUtf8",
            "DSN",
            "CHUNKING",
            "STARTTLS",
            "AUTH PLAIN",
        ]);
        assert_eq!(
            capabilities,
            Capabilities {
                pipelining: true,
                starttls: true,
                size_limit: Some(1000),
                size: true,
                eight_bit_mime: true,
                smtputf8: true,
                dsn: true,
                chunking: true,
                auth_plain: true,
                auth_login: false,
            }
        );
        let old_style = ehlo(&["x", "AUTH=LOGIN PLAIN"]);
        assert!(old_style.auth_login && old_style.auth_plain);
        let modern = ehlo(&["x", "auth cram-md5 login"]);
        assert!(modern.auth_login && !modern.auth_plain);
    }

    #[test]
    fn the_greeting_line_is_not_a_keyword_and_size_without_limit_is_none() {
        let capabilities = ehlo(&["PIPELINING", "SIZE", ""]);
        assert!(!capabilities.pipelining);
        assert!(capabilities.size);
        assert_eq!(capabilities.size_limit, None);
        assert_eq!(ehlo(&["x", "SIZE 0"]).size_limit, None);
        assert_eq!(ehlo(&["x", "SIZE many"]).size_limit, None);
        assert_eq!(ehlo(&["x"]), Capabilities::default());
    }
}
