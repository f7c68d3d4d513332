//! The POP3 command grammar (RFC 1939 §3, RFC 2449, RFC 2595, RFC 5034): a keyword,
//! case-insensitive, then arguments separated by single spaces.

/// A command as the client wrote it.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Command {
    User(String),
    /// The rest of the line: RFC 1939 §7 lets a password hold spaces.
    Pass(String),
    Auth {
        mechanism: String,
        /// The initial response (RFC 5034 §4), `=` standing for an empty one.
        initial_response: Option<Vec<u8>>,
    },
    Capa,
    Stls,
    Quit,
    Noop,
    Stat,
    List(Option<u64>),
    Uidl(Option<u64>),
    Retr(u64),
    Dele(u64),
    Top {
        message: u64,
        lines: u64,
    },
    Rset,
}

impl std::fmt::Debug for Command {
    /// Never prints a password or an AUTH response.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.verb())
    }
}

/// Why a line is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CommandError {
    /// A keyword this server does not know (APOP among them).
    Unknown,
    /// A known keyword with missing, extra or malformed arguments.
    Syntax,
    /// A message number that is not a decimal number.
    BadNumber,
}

/// The keywords this server knows, as events name them.
const VERBS: [&str; 14] = [
    "USER", "PASS", "AUTH", "CAPA", "STLS", "QUIT", "NOOP", "STAT", "LIST", "UIDL", "RETR", "DELE",
    "TOP", "RSET",
];

/// The keyword of a line, upper case, if known; `UNKNOWN` otherwise, so that a
/// stray AUTH response or password read as a command never reaches the logs.
pub(super) fn verb_of(line: &[u8]) -> &'static str {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    VERBS
        .iter()
        .find(|verb| verb.as_bytes().eq_ignore_ascii_case(&line[..end]))
        .copied()
        .unwrap_or("UNKNOWN")
}

impl Command {
    pub(super) fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Quit => "QUIT",
            Command::Noop => "NOOP",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Top { .. } => "TOP",
            Command::Rset => "RSET",
        }
    }

    /// Parses one command line, without its CRLF.
    pub(super) fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let verb = verb_of(line);
        let rest = line.get(verb.len()..).unwrap_or_default();
        if verb == "PASS" {
            // Everything after the single space is the password, spaces included.
            return match rest.strip_prefix(b" ") {
                Some(password) if !password.is_empty() => std::str::from_utf8(password)
                    .map(|p| Command::Pass(p.to_owned()))
                    .map_err(|_| CommandError::Syntax),
                _ => Err(CommandError::Syntax),
            };
        }
        let args: Vec<&[u8]> = match rest {
            [] => Vec::new(),
            [b' ', args @ ..] => args.split(|&b| b == b' ').collect(),
            _ => return Err(CommandError::Unknown),
        };
        // RFC 2449 §4: each argument is 1 to 40 printable characters.
        if args
            .iter()
            .any(|arg| arg.is_empty() || !arg.iter().all(|b| b.is_ascii_graphic()))
        {
            return Err(CommandError::Syntax);
        }
        let text = |arg: &[u8]| String::from_utf8_lossy(arg).into_owned();
        let command = match (verb, args.as_slice()) {
            ("USER", [name]) => Command::User(text(name)),
            ("AUTH", [mechanism]) => Command::Auth {
                mechanism: text(mechanism),
                initial_response: None,
            },
            ("AUTH", [mechanism, response]) => Command::Auth {
                mechanism: text(mechanism),
                initial_response: Some(if *response == b"=" {
                    Vec::new()
                } else {
                    response.to_vec()
                }),
            },
            ("CAPA", []) => Command::Capa,
            ("STLS", []) => Command::Stls,
            ("QUIT", []) => Command::Quit,
            ("NOOP", []) => Command::Noop,
            ("STAT", []) => Command::Stat,
            ("RSET", []) => Command::Rset,
            ("LIST", []) => Command::List(None),
            ("LIST", [n]) => Command::List(Some(number(n)?)),
            ("UIDL", []) => Command::Uidl(None),
            ("UIDL", [n]) => Command::Uidl(Some(number(n)?)),
            ("RETR", [n]) => Command::Retr(number(n)?),
            ("DELE", [n]) => Command::Dele(number(n)?),
            ("TOP", [n, lines]) => Command::Top {
                message: number(n)?,
                lines: number(lines)?,
            },
            ("UNKNOWN", _) => return Err(CommandError::Unknown),
            _ => return Err(CommandError::Syntax),
        };
        Ok(command)
    }
}

/// A decimal number, as message numbers and TOP's line count are written.
fn number(arg: &[u8]) -> Result<u64, CommandError> {
    if arg.len() > 20 || !arg.iter().all(u8::is_ascii_digit) {
        return Err(CommandError::BadNumber);
    }
    std::str::from_utf8(arg)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(CommandError::BadNumber)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, CommandError> {
        Command::parse(line.as_bytes())
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse("stat"), Ok(Command::Stat));
        assert_eq!(parse("Retr 3"), Ok(Command::Retr(3)));
        assert_eq!(
            parse("top 1 10"),
            Ok(Command::Top {
                message: 1,
                lines: 10
            })
        );
        assert_eq!(parse("LIST"), Ok(Command::List(None)));
        assert_eq!(parse("UIDL 2"), Ok(Command::Uidl(Some(2))));
    }

    #[test]
    fn passwords_keep_their_spaces() {
        assert_eq!(
            parse("PASS correct horse  battery"),
            Ok(Command::Pass("correct horse  battery".into()))
        );
        assert_eq!(parse("PASS"), Err(CommandError::Syntax));
        assert_eq!(parse("PASS "), Err(CommandError::Syntax));
    }

    #[test]
    fn auth_with_and_without_initial_response() {
        assert_eq!(
            parse("AUTH PLAIN"),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial_response: None
            })
        );
        assert_eq!(
            parse("AUTH PLAIN ="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial_response: Some(Vec::new())
            })
        );
        assert_eq!(parse("AUTH"), Err(CommandError::Syntax));
    }

    #[test]
    fn malformed_commands() {
        assert_eq!(
            parse("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Err(CommandError::Unknown)
        );
        assert_eq!(parse("STATS"), Err(CommandError::Unknown));
        assert_eq!(parse(""), Err(CommandError::Unknown));
        assert_eq!(parse("RETR"), Err(CommandError::Syntax));
        assert_eq!(parse("RETR 1 2"), Err(CommandError::Syntax));
        assert_eq!(parse("RETR  1"), Err(CommandError::Syntax));
        assert_eq!(parse("RETR one"), Err(CommandError::BadNumber));
        assert_eq!(parse("RETR -1"), Err(CommandError::BadNumber));
        assert_eq!(
            parse("RETR 99999999999999999999999"),
            Err(CommandError::BadNumber)
        );
        assert_eq!(parse("STAT 1"), Err(CommandError::Syntax));
    }

    #[test]
    fn unknown_verbs_stay_out_of_logs() {
        assert_eq!(verb_of(b"dXNlcgBwYXNz"), "UNKNOWN");
        assert_eq!(verb_of(b"retr 1"), "RETR");
        assert!(!format!("{:?}", parse("PASS hunter2").unwrap()).contains("hunter2"));
    }
}
