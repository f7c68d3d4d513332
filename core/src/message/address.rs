//! RFC 5322 address lists as ENVELOPE reports them (RFC 9051 §7.5.2): each address
//! as (name adl mailbox host), groups as a start marker (NIL NIL name NIL) and an
//! end marker (NIL NIL NIL NIL).
//!
//! mail-parser decodes display names (encoded-words, charsets), but ENVELOPE carries
//! them as the message does, so the list is parsed here from the raw field. Like
//! Dovecot, a comment stands in for a missing display name, and a missing local part
//! or domain is reported as `MISSING_MAILBOX` / `MISSING_DOMAIN`: a NIL host would
//! read as a group marker.

use super::strings::nstring;
use imap_types::envelope::Address;

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// The envelope addresses of one address-list field value (raw, possibly folded).
/// Linear in the value's length.
pub(super) fn parse_address_list(raw: &[u8]) -> Vec<Address<'static>> {
    let tokens = tokenize(raw);
    let mut out = Vec::new();
    let mut item = Item::default();
    let mut in_group = false;
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        i += 1;
        match token {
            Token::Special(b'<') => {
                let (angle, next) = parse_angle(&tokens, i);
                item.angle = Some(angle);
                i = next;
            }
            Token::Special(b':') if item.angle.is_none() && !in_group => {
                let name = item.phrase();
                out.push(Address {
                    name: nstring(None),
                    adl: nstring(None),
                    mailbox: nstring(Some(name)),
                    host: nstring(None),
                });
                in_group = true;
                item = Item::default();
            }
            Token::Special(b',') => item.flush_into(&mut out),
            Token::Special(b';') => {
                item.flush_into(&mut out);
                if in_group {
                    out.push(group_end());
                    in_group = false;
                }
            }
            Token::Comment(text) => item.comment = Some(text.clone()),
            Token::Word(word) => {
                item.words.push(word.clone());
                item.spec.extend_from_slice(word);
            }
            Token::Special(c) => {
                // `@` and stray specials belong to an addr-spec written without <>.
                item.spec.push(*c);
                if *c == b'@' {
                    item.words.push(vec![b'@']);
                }
            }
        }
    }
    item.flush_into(&mut out);
    if in_group {
        out.push(group_end());
    }
    out
}

fn group_end() -> Address<'static> {
    Address {
        name: nstring(None),
        adl: nstring(None),
        mailbox: nstring(None),
        host: nstring(None),
    }
}

#[derive(Default)]
struct Item {
    words: Vec<Vec<u8>>,
    spec: Vec<u8>,
    comment: Option<Vec<u8>>,
    angle: Option<Angle>,
}

struct Angle {
    adl: Option<Vec<u8>>,
    spec: Vec<u8>,
}

impl Item {
    fn phrase(&self) -> Vec<u8> {
        self.words
            .iter()
            .filter(|w| w.as_slice() != b"@")
            .cloned()
            .collect::<Vec<_>>()
            .join(&b' ')
    }

    fn flush_into(&mut self, out: &mut Vec<Address<'static>>) {
        let item = std::mem::take(self);
        let (name, adl, spec) = match item.angle {
            Some(ref angle) => {
                let phrase = item.phrase();
                let name = if phrase.is_empty() {
                    item.comment.clone()
                } else {
                    Some(phrase)
                };
                (name, angle.adl.clone(), angle.spec.clone())
            }
            None if item.spec.is_empty() => return,
            None => (item.comment.clone(), None, item.spec.clone()),
        };
        let (mailbox, host) = match spec.iter().rposition(|&b| b == b'@') {
            Some(at) => (
                spec.get(..at).unwrap_or_default().to_vec(),
                spec.get(at + 1..).unwrap_or_default().to_vec(),
            ),
            None => (spec, Vec::new()),
        };
        let or_missing = |value: Vec<u8>, missing: &[u8]| {
            if value.is_empty() {
                missing.to_vec()
            } else {
                value
            }
        };
        out.push(Address {
            name: nstring(name.filter(|n| !n.is_empty())),
            adl: nstring(adl),
            mailbox: nstring(Some(or_missing(mailbox, MISSING_MAILBOX))),
            host: nstring(Some(or_missing(host, MISSING_DOMAIN))),
        });
    }
}

/// `<[route:]addr-spec>` from after the `<`; returns the index after the `>`.
fn parse_angle(tokens: &[Token], mut i: usize) -> (Angle, usize) {
    let mut spec = Vec::new();
    let mut adl = None;
    while let Some(token) = tokens.get(i) {
        i += 1;
        match token {
            Token::Special(b'>') => break,
            Token::Special(b':') if adl.is_none() && spec.first() == Some(&b'@') => {
                // An obsolete source route (RFC 5322 §4.4): `@a,@b:` is the adl.
                adl = Some(std::mem::take(&mut spec));
            }
            Token::Word(word) => spec.extend_from_slice(word),
            Token::Special(c) => spec.push(*c),
            Token::Comment(_) => {}
        }
    }
    (Angle { adl, spec }, i)
}

enum Token {
    /// An atom, dot-atom or domain literal, or a quoted string's content.
    Word(Vec<u8>),
    Comment(Vec<u8>),
    Special(u8),
}

fn tokenize(raw: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(&b) = raw.get(pos) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'"' => {
                let mut word = Vec::new();
                pos += 1;
                while let Some(&c) = raw.get(pos) {
                    pos += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            if let Some(&escaped) = raw.get(pos) {
                                word.push(escaped);
                                pos += 1;
                            }
                        }
                        b'\r' | b'\n' => {}
                        _ => word.push(c),
                    }
                }
                tokens.push(Token::Word(word));
            }
            b'(' => {
                let mut depth = 0usize;
                let mut text = Vec::new();
                while let Some(&c) = raw.get(pos) {
                    pos += 1;
                    match c {
                        b'(' => {
                            if depth > 0 {
                                text.push(c);
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                            text.push(c);
                        }
                        b'\\' => {
                            if let Some(&escaped) = raw.get(pos) {
                                text.push(escaped);
                                pos += 1;
                            }
                        }
                        b'\r' | b'\n' => {}
                        _ => text.push(c),
                    }
                }
                tokens.push(Token::Comment(text));
            }
            b'[' => {
                let start = pos;
                while let Some(&c) = raw.get(pos) {
                    pos += 1;
                    if c == b']' {
                        break;
                    }
                }
                tokens.push(Token::Word(
                    raw.get(start..pos).unwrap_or_default().to_vec(),
                ));
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b')' | b']' | b'\\' => {
                pos += 1;
                tokens.push(Token::Special(b));
            }
            _ => {
                let start = pos;
                while let Some(&c) = raw.get(pos) {
                    if matches!(
                        c,
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'"'
                            | b'('
                            | b')'
                            | b'<'
                            | b'>'
                            | b'@'
                            | b','
                            | b';'
                            | b':'
                            | b'['
                            | b']'
                            | b'\\'
                    ) {
                        break;
                    }
                    pos += 1;
                }
                tokens.push(Token::Word(
                    raw.get(start..pos).unwrap_or_default().to_vec(),
                ));
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(addresses: &[Address<'_>]) -> Vec<[Option<String>; 4]> {
        let text = |n: &imap_types::core::NString<'_>| {
            n.clone()
                .into_option()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        addresses
            .iter()
            .map(|a| [text(&a.name), text(&a.adl), text(&a.mailbox), text(&a.host)])
            .collect()
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn names_quoted_names_and_bare_addresses() {
        let list = parse_address_list(
            b"\"Smith, John\" <j@x.test>, bare@y.test, =?utf-8?q?J=C3=B6rg?= <jo@z.test>",
        );
        assert_eq!(
            show(&list),
            vec![
                [s("Smith, John"), None, s("j"), s("x.test")],
                [None, None, s("bare"), s("y.test")],
                [s("=?utf-8?q?J=C3=B6rg?="), None, s("jo"), s("z.test")],
            ]
        );
    }

    #[test]
    fn groups_have_start_and_end_markers() {
        let list = parse_address_list(b"Team: a@x.test, b@x.test;, undisclosed-recipients:;");
        assert_eq!(
            show(&list),
            vec![
                [None, None, s("Team"), None],
                [None, None, s("a"), s("x.test")],
                [None, None, s("b"), s("x.test")],
                [None, None, None, None],
                [None, None, s("undisclosed-recipients"), None],
                [None, None, None, None],
            ]
        );
    }

    #[test]
    fn a_comment_names_an_address_and_routes_are_the_adl() {
        let list = parse_address_list(b"a@x.test (Alice), <@r1.test,@r2.test:b@y.test>");
        assert_eq!(
            show(&list),
            vec![
                [s("Alice"), None, s("a"), s("x.test")],
                [None, s("@r1.test,@r2.test"), s("b"), s("y.test")],
            ]
        );
    }

    #[test]
    fn missing_parts_are_named_not_nil() {
        let list = parse_address_list(b"nobody");
        assert_eq!(
            show(&list),
            vec![[None, None, s("nobody"), s("MISSING_DOMAIN")]]
        );
        assert!(parse_address_list(b"  ").is_empty());
    }
}
