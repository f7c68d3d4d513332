//! The MIME header values IMAP reports as stored: Content-Type and
//! Content-Disposition (a value and `;`-separated parameters, RFC 2045 §5.1,
//! RFC 2183), Content-Language (a list, RFC 3282).
//!
//! mail-parser decodes parameters (RFC 2231 continuations joined and charsets
//! converted, encoded-words decoded), while BODYSTRUCTURE reports them as the
//! message carries them, so this small tokenizer keeps names and values as written
//! (quotes and comments removed).

/// A value such as `text/plain` or `attachment` with its parameters, as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ValueWithParams {
    /// The leading value (for Content-Type, `type/subtype` unsplit).
    pub value: Vec<u8>,
    /// The parameters in order, names and values as written.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Parses `value *(";" name "=" value)`; a malformed parameter is skipped, never
/// fatal. Linear in the input.
pub(super) fn parse_value_with_params(raw: &[u8]) -> ValueWithParams {
    let mut tokens = Tokens { bytes: raw, pos: 0 };
    let mut value = Vec::new();
    // The leading value runs to the first `;` (comments and blanks dropped).
    while let Some(token) = tokens.next() {
        match token {
            Token::Special(b';') => break,
            Token::Special(c) => value.push(c),
            Token::Word(w) | Token::Quoted(w) => value.extend_from_slice(&w),
        }
    }
    let mut params = Vec::new();
    loop {
        let mut name = Vec::new();
        let mut val: Option<Vec<u8>> = None;
        let mut saw_any = false;
        let mut ended = true;
        while let Some(token) = tokens.next() {
            saw_any = true;
            ended = false;
            match (token, &mut val) {
                (Token::Special(b';'), _) => {
                    ended = true;
                    break;
                }
                (Token::Special(b'='), None) => val = Some(Vec::new()),
                (Token::Word(w) | Token::Quoted(w), None) => name.extend_from_slice(&w),
                (Token::Special(c), None) => name.push(c),
                (Token::Word(w) | Token::Quoted(w), Some(v)) => v.extend_from_slice(&w),
                (Token::Special(c), Some(v)) => v.push(c),
            }
        }
        if let Some(v) = val
            && !name.is_empty()
        {
            params.push((name, v));
        }
        if !saw_any || !ended {
            break;
        }
    }
    ValueWithParams {
        value,
        params: join_continuations(params),
    }
}

/// RFC 2231 §3 continuations (`name*0`, `name*1`, ...) joined into one parameter,
/// listed after the plain parameters, as Dovecot reports them: `name` when no segment is
/// encoded, `name*` (the value still percent-encoded, charset first) when one is.
/// Segments are joined in number order; a parameter without segments is left alone.
fn join_continuations(params: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    // (base name, is any segment encoded, segments as (number, value)) per output slot.
    enum Slot {
        Plain(Vec<u8>, Vec<u8>),
        Joined(Vec<u8>, bool, Vec<(u32, Vec<u8>)>),
    }
    let mut slots: Vec<Slot> = Vec::new();
    for (name, value) in params {
        let Some((base, number, encoded)) = continuation(&name) else {
            slots.push(Slot::Plain(name, value));
            continue;
        };
        let existing = slots.iter_mut().find_map(|slot| match slot {
            Slot::Joined(b, any_encoded, segments) if b.eq_ignore_ascii_case(base) => {
                Some((any_encoded, segments))
            }
            _ => None,
        });
        match existing {
            Some((any_encoded, segments)) => {
                *any_encoded |= encoded;
                segments.push((number, value));
            }
            None => slots.push(Slot::Joined(base.to_vec(), encoded, vec![(number, value)])),
        }
    }
    // Dovecot lists the joined parameters after the plain ones.
    slots.sort_by_key(|slot| matches!(slot, Slot::Joined(..)));
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Plain(name, value) => (name, value),
            Slot::Joined(mut base, encoded, mut segments) => {
                segments.sort_by_key(|(number, _)| *number);
                if encoded {
                    base.push(b'*');
                }
                (base, segments.into_iter().flat_map(|(_, v)| v).collect())
            }
        })
        .collect()
}

/// `name*N` or `name*N*`: the base name, N, and whether the segment is encoded.
fn continuation(name: &[u8]) -> Option<(&[u8], u32, bool)> {
    let (name, encoded) = match name.strip_suffix(b"*") {
        Some(stripped) => (stripped, true),
        None => (name, false),
    };
    let star = name.iter().rposition(|&b| b == b'*')?;
    let digits = name.get(star + 1..)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 4 {
        return None;
    }
    let number = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((name.get(..star)?, number, encoded))
}

/// Content-Language: a comma-separated list of tags (comments and blanks dropped).
pub(super) fn parse_language_list(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut tokens = Tokens { bytes: raw, pos: 0 };
    let mut list = Vec::new();
    let mut current = Vec::new();
    while let Some(token) = tokens.next() {
        match token {
            Token::Special(b',') => {
                if !current.is_empty() {
                    list.push(std::mem::take(&mut current));
                }
            }
            Token::Special(c) => current.push(c),
            Token::Word(w) | Token::Quoted(w) => current.extend_from_slice(&w),
        }
    }
    if !current.is_empty() {
        list.push(current);
    }
    list
}

enum Token {
    Word(Vec<u8>),
    Quoted(Vec<u8>),
    Special(u8),
}

/// RFC 2045 tokens: words (runs of non-special, non-blank bytes), quoted strings
/// (backslash escapes resolved), and the specials `; = / , :`; comments are skipped
/// (nested, RFC 5322 §3.2.2).
struct Tokens<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl Tokens<'_> {
    fn next(&mut self) -> Option<Token> {
        loop {
            let &b = self.bytes.get(self.pos)?;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => self.skip_comment(),
                b'"' => return Some(Token::Quoted(self.quoted())),
                b';' | b'=' | b'/' | b',' => {
                    self.pos += 1;
                    return Some(Token::Special(b));
                }
                _ => {
                    let start = self.pos;
                    while let Some(&c) = self.bytes.get(self.pos) {
                        if matches!(
                            c,
                            b' ' | b'\t' | b'\r' | b'\n' | b'(' | b'"' | b';' | b'=' | b'/' | b','
                        ) {
                            break;
                        }
                        self.pos += 1;
                    }
                    return Some(Token::Word(
                        self.bytes.get(start..self.pos).unwrap_or_default().to_vec(),
                    ));
                }
            }
        }
    }

    fn skip_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(&c) = self.bytes.get(self.pos) {
            self.pos += 1;
            match c {
                b'\\' => self.pos += 1,
                b'(' => depth += 1,
                b')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn quoted(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.pos += 1;
        while let Some(&c) = self.bytes.get(self.pos) {
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(&escaped) = self.bytes.get(self.pos) {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_with_quoted_and_commented_parameters() {
        let parsed = parse_value_with_params(
            b" Multipart/Mixed; (a comment) boundary=\"a b\\\"c\";\r\n\tCharset=UTF-8 ;",
        );
        assert_eq!(parsed.value, b"Multipart/Mixed");
        assert_eq!(parsed.params[0], (b"boundary".to_vec(), b"a b\"c".to_vec()));
        assert_eq!(parsed.params[1].0, b"Charset");
        assert_eq!(parsed.params.len(), 2);
    }

    #[test]
    fn a_parameter_without_value_is_skipped() {
        let parsed = parse_value_with_params(b"attachment; junk; filename=a.txt");
        assert_eq!(parsed.value, b"attachment");
        assert_eq!(
            parsed.params,
            vec![(b"filename".to_vec(), b"a.txt".to_vec())]
        );
    }

    #[test]
    fn continuations_are_joined_in_order_and_extended_ones_keep_the_star() {
        let parsed = parse_value_with_params(
            b"attachment; filename*1=\"name.txt\"; size=4; filename*0=long; title*0*=us-ascii'en'a%20; title*1=b; name*=utf-8''x",
        );
        assert_eq!(
            parsed.params,
            vec![
                (b"size".to_vec(), b"4".to_vec()),
                (b"name*".to_vec(), b"utf-8''x".to_vec()),
                (b"filename".to_vec(), b"longname.txt".to_vec()),
                (b"title*".to_vec(), b"us-ascii'en'a%20b".to_vec()),
            ]
        );
    }

    #[test]
    fn languages_are_a_list() {
        assert_eq!(
            parse_language_list(b"en, de (German)"),
            vec![b"en".to_vec(), b"de".to_vec()]
        );
    }
}
