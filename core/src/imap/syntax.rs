//! A small reader of IMAP command syntax (atoms, quoted strings, literals,
//! parenthesised lists) for the commands imap-codec 2.0.0-alpha.10 does not parse:
//! LIST-EXTENDED (RFC 5258) and STATUS with APPENDLIMIT (RFC 7889) or SIZE (RFC 8438).

/// A value of the command's syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Value>),
}

pub(super) fn text(value: Value) -> Option<String> {
    match value {
        Value::Atom(atom) => Some(atom),
        Value::Str(bytes) => String::from_utf8(bytes).ok(),
        Value::List(_) => None,
    }
}

pub(super) struct Parser<'a> {
    input: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(input: &'a [u8]) -> Parser<'a> {
        Parser {
            input,
            at: 0,
            depth: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    pub(super) fn space(&mut self) -> Option<()> {
        (self.peek()? == b' ').then(|| self.at += 1)
    }

    pub(super) fn line_end(&mut self) -> Option<()> {
        let rest = &self.input[self.at..];
        (rest == b"\r\n" || rest == b"\n").then_some(())
    }

    pub(super) fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'(' => {
                // Nesting is bounded: these commands need two levels.
                if self.depth >= 3 {
                    return None;
                }
                self.depth += 1;
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b')' {
                    if !items.is_empty() {
                        self.space()?;
                    }
                    items.push(self.value()?);
                }
                self.at += 1;
                self.depth -= 1;
                Some(Value::List(items))
            }
            b'"' => {
                self.at += 1;
                let mut bytes = Vec::new();
                loop {
                    match self.peek()? {
                        b'"' => break,
                        b'\\' => {
                            self.at += 1;
                            bytes.push(self.peek()?);
                        }
                        b'\r' | b'\n' => return None,
                        byte => bytes.push(byte),
                    }
                    self.at += 1;
                }
                self.at += 1;
                Some(Value::Str(bytes))
            }
            b'{' => {
                let close = self.input[self.at..].iter().position(|&b| b == b'}')? + self.at;
                let inner = &self.input[self.at + 1..close];
                let digits = inner.strip_suffix(b"+").unwrap_or(inner);
                let length: usize = core::str::from_utf8(digits).ok()?.parse().ok()?;
                let mut start = close + 1;
                if self.input.get(start) == Some(&b'\r') {
                    start += 1;
                }
                if self.input.get(start) != Some(&b'\n') {
                    return None;
                }
                start += 1;
                let end = start.checked_add(length)?;
                let bytes = self.input.get(start..end)?.to_vec();
                self.at = end;
                Some(Value::Str(bytes))
            }
            _ => {
                let start = self.at;
                while let Some(byte) = self.peek() {
                    if byte <= b' ' || byte >= 0x7f || b"(){\"".contains(&byte) {
                        break;
                    }
                    if byte == b')' {
                        break;
                    }
                    self.at += 1;
                }
                if self.at == start {
                    return None;
                }
                let atom = core::str::from_utf8(&self.input[start..self.at]).ok()?;
                Some(Value::Atom(atom.to_owned()))
            }
        }
    }
}

/// `tag VERB` at the start of a command, and the parser after them.
pub(super) fn tag_and_verb(command: &[u8]) -> Option<(String, String, Parser<'_>)> {
    let mut parser = Parser::new(command);
    let Value::Atom(tag) = parser.value()? else {
        return None;
    };
    parser.space()?;
    let Value::Atom(verb) = parser.value()? else {
        return None;
    };
    Some((tag, verb, parser))
}
