//! SMTP command lines (RFC 5321 §4.1.1, plus STARTTLS, AUTH and BDAT), parsed from
//! raw bytes without the trailing CRLF, and serialised in normalised form.
//!
//! Verbs are case-insensitive and serialise upper case. The parser checks syntax
//! only; whether a command is allowed *now* is the session's decision.

use super::address::{AddressError, Domain, ForwardPath, Host, ReversePath};
use super::params::{MailParameters, ParamError, RcptParameters};
use core::fmt;

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// EHLO with a domain or an address literal.
    Ehlo(Host),
    /// HELO with a domain (an address literal is accepted too, as real clients send one).
    Helo(Host),
    /// LHLO, LMTP's only hello (RFC 2033 §4.1): EHLO's syntax under another verb.
    Lhlo(Host),
    Mail {
        from: ReversePath,
        params: MailParameters,
    },
    Rcpt {
        to: ForwardPath,
        params: RcptParameters,
    },
    Data,
    /// BDAT chunk-size [LAST] (RFC 3030).
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    /// NOOP with its optional, ignored argument.
    Noop(Option<String>),
    Quit,
    /// VRFY with its string argument.
    Vrfy(String),
    /// EXPN with its string argument.
    Expn(String),
    /// HELP with its optional topic.
    Help(Option<String>),
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954 §4). The mechanism is upper-cased.
    Auth {
        mechanism: String,
        initial_response: Option<InitialResponse>,
    },
}

/// The initial response of AUTH: base64 text, or `=` for an empty response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitialResponse {
    Empty,
    /// Still base64-encoded; the session decodes it.
    Base64(String),
}

/// Why a command line was rejected, in enough detail for the right reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The verb is not a command this server knows (500 5.5.2).
    #[error("command not recognised")]
    UnknownCommand,
    /// A verb used by other protocols (HTTP's GET, POST, CONNECT...): a cross-protocol attack.
    #[error("command of another protocol")]
    ForeignProtocol,
    /// The line is not valid UTF-8.
    #[error("command line is not valid UTF-8")]
    InvalidUtf8,
    /// The line holds a NUL, a bare CR or a bare LF.
    #[error("command line holds a control character")]
    ControlCharacter,
    /// Wrong arguments for a known verb (501 5.5.4).
    #[error("syntax error in arguments: {0}")]
    Syntax(&'static str),
    /// AUTH with a well-formed mechanism but an initial response that is not base64
    /// (501 5.5.2: the mechanism's exchange cannot be decoded).
    #[error("AUTH {mechanism} initial response is not base64")]
    InitialResponseNotBase64 { mechanism: String },
    /// A malformed reverse-path (501 5.1.7).
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    /// A malformed forward-path (501 5.1.3).
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    /// A malformed EHLO/HELO argument (501 5.5.4).
    #[error("bad HELO/EHLO domain: {0}")]
    BadHelo(AddressError),
    /// A malformed or unknown MAIL/RCPT parameter.
    #[error("parameter error: {0}")]
    Parameter(ParamError),
}

/// Verbs of other line protocols; a client sending one is not speaking SMTP
/// (typically a browser tricked into posting to port 25).
const FOREIGN_VERBS: [&str; 6] = ["GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS"];

/// RFC 4422 §3.1: SASL mechanism names are at most 20 characters.
const MAX_MECHANISM: usize = 20;

/// Strips an ASCII keyword such as `FROM:` from the start of `text`, in any case.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let prefix = text.as_bytes().get(..keyword.len())?;
    if prefix.eq_ignore_ascii_case(keyword.as_bytes()) {
        text.get(keyword.len()..)
    } else {
        None
    }
}

/// The argument of a verb that takes an optional free-form string.
fn optional(argument: &str) -> Option<String> {
    (!argument.is_empty()).then(|| argument.to_owned())
}

fn no_argument(argument: &str, command: Command) -> Result<Command, CommandError> {
    if argument.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax("this command takes no argument"))
    }
}

fn required(argument: &str) -> Result<String, CommandError> {
    optional(argument).ok_or(CommandError::Syntax("this command needs an argument"))
}

fn parse_helo(argument: &str) -> Result<Host, CommandError> {
    if argument.contains(' ') {
        return Err(CommandError::Syntax(
            "EHLO and HELO take exactly one argument",
        ));
    }
    Host::parse(argument).map_err(CommandError::BadHelo)
}

/// Splits `KEYWORD:<path> params` after MAIL or RCPT into the path text and the rest.
///
/// RFC 5321 has no space after the colon, but many clients send `MAIL FROM: <a@b>`
/// and Postfix and Exim accept it; Sluice tolerates exactly one such space.
fn path_argument<'a>(
    argument: &'a str,
    keyword: &str,
    missing: &'static str,
) -> Result<&'a str, CommandError> {
    let rest = strip_keyword(argument, keyword).ok_or(CommandError::Syntax(missing))?;
    Ok(rest.strip_prefix(' ').unwrap_or(rest))
}

/// The text after a path: empty, or parameters after at least one space.
fn after_path(rest: &str, consumed: usize) -> Result<&str, AddressError> {
    let params = rest.get(consumed..).unwrap_or("");
    if params.is_empty() || params.starts_with(' ') {
        Ok(params)
    } else {
        Err(AddressError::TrailingGarbage)
    }
}

fn parse_mail(argument: &str) -> Result<Command, CommandError> {
    let rest = path_argument(argument, "FROM:", "expected FROM:<reverse-path>")?;
    let (from, consumed) = ReversePath::parse_prefix(rest).map_err(CommandError::BadSender)?;
    let params = after_path(rest, consumed).map_err(CommandError::BadSender)?;
    let params = MailParameters::parse(params).map_err(CommandError::Parameter)?;
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(argument: &str) -> Result<Command, CommandError> {
    let rest = path_argument(argument, "TO:", "expected TO:<forward-path>")?;
    let (to, consumed) = ForwardPath::parse_prefix(rest).map_err(CommandError::BadRecipient)?;
    let params = after_path(rest, consumed).map_err(CommandError::BadRecipient)?;
    let params = RcptParameters::parse(params).map_err(CommandError::Parameter)?;
    Ok(Command::Rcpt { to, params })
}

fn parse_bdat(argument: &str) -> Result<Command, CommandError> {
    let mut words = argument.split(' ').filter(|word| !word.is_empty());
    let size = words
        .next()
        .filter(|size| size.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|size| size.parse::<u64>().ok())
        .ok_or(CommandError::Syntax("BDAT needs a chunk size"))?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax("expected LAST after the chunk size")),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax("too many arguments to BDAT"));
    }
    Ok(Command::Bdat { size, last })
}

/// Base64 (RFC 4648 §4) as far as its alphabet goes: the session decodes and judges length.
fn is_base64(text: &str) -> bool {
    let data = text.trim_end_matches('=');
    !data.is_empty()
        && text.len() - data.len() <= 2
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn parse_auth(argument: &str) -> Result<Command, CommandError> {
    let mut words = argument.split(' ').filter(|word| !word.is_empty());
    let mechanism = words
        .next()
        .filter(|mechanism| {
            mechanism.len() <= MAX_MECHANISM
                && mechanism
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(CommandError::Syntax("AUTH needs a SASL mechanism name"))?
        .to_ascii_uppercase();
    let initial_response = match words.next() {
        None => None,
        Some("=") => Some(InitialResponse::Empty),
        Some(response) if is_base64(response) => Some(InitialResponse::Base64(response.to_owned())),
        Some(_) => return Err(CommandError::InitialResponseNotBase64 { mechanism }),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax("too many arguments to AUTH"));
    }
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

impl Command {
    /// Parses one command line, without its CRLF. Never panics, whatever the bytes.
    ///
    /// Spaces after the verb and at the end of the line are tolerated: they carry no
    /// meaning and real clients send them.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        if line.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(CommandError::ControlCharacter);
        }
        let line = core::str::from_utf8(line).map_err(|_| CommandError::InvalidUtf8)?;
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim_matches(' ');
        // No verb is longer than STARTTLS; this also bounds the upper-case copy.
        if verb.len() > 8 {
            return Err(CommandError::UnknownCommand);
        }
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => parse_helo(argument).map(Command::Ehlo),
            "HELO" => parse_helo(argument).map(Command::Helo),
            "LHLO" => parse_helo(argument).map(Command::Lhlo),
            "MAIL" => parse_mail(argument),
            "RCPT" => parse_rcpt(argument),
            "DATA" => no_argument(argument, Command::Data),
            "BDAT" => parse_bdat(argument),
            "RSET" => no_argument(argument, Command::Rset),
            "NOOP" => Ok(Command::Noop(optional(argument))),
            "QUIT" => no_argument(argument, Command::Quit),
            "VRFY" => required(argument).map(Command::Vrfy),
            "EXPN" => required(argument).map(Command::Expn),
            "HELP" => Ok(Command::Help(optional(argument))),
            "STARTTLS" => no_argument(argument, Command::StartTls),
            "AUTH" => parse_auth(argument),
            upper if FOREIGN_VERBS.contains(&upper) => Err(CommandError::ForeignProtocol),
            _ => Err(CommandError::UnknownCommand),
        }
    }

    /// The upper-case verb, e.g. `"MAIL"`.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Lhlo(_) => "LHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop(_) => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}

impl fmt::Display for Command {
    /// The normalised command line without CRLF, e.g. `MAIL FROM:<a@b.example> SIZE=10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())?;
        match self {
            Command::Ehlo(host) | Command::Helo(host) | Command::Lhlo(host) => {
                write!(f, " {host}")
            }
            Command::Mail { from, params } => {
                write!(f, " FROM:{from}")?;
                if params.is_empty() {
                    Ok(())
                } else {
                    write!(f, " {params}")
                }
            }
            Command::Rcpt { to, params } => {
                write!(f, " TO:{to}")?;
                if params.is_empty() {
                    Ok(())
                } else {
                    write!(f, " {params}")
                }
            }
            Command::Bdat { size, last } => {
                write!(f, " {size}")?;
                if *last { f.write_str(" LAST") } else { Ok(()) }
            }
            Command::Noop(Some(text))
            | Command::Help(Some(text))
            | Command::Vrfy(text)
            | Command::Expn(text) => {
                write!(f, " {text}")
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                write!(f, " {mechanism}")?;
                match initial_response {
                    None => Ok(()),
                    Some(InitialResponse::Empty) => f.write_str(" ="),
                    Some(InitialResponse::Base64(response)) => write!(f, " {response}"),
                }
            }
            Command::Data
            | Command::Rset
            | Command::Noop(None)
            | Command::Quit
            | Command::Help(None)
            | Command::StartTls => Ok(()),
        }
    }
}

/// Convenience for tests and the client side: the domain argument of EHLO, if a domain.
pub fn helo_domain(host: &Host) -> Option<&Domain> {
    match host {
        Host::Domain(domain) => Some(domain),
        Host::Literal(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::Mailbox;
    use crate::smtp::params::{BodyType, Notify};

    fn parse(line: &str) -> Result<Command, CommandError> {
        Command::parse(line.as_bytes())
    }

    fn ok(line: &str) -> Command {
        parse(line).unwrap_or_else(|error| panic!("{line:?}: {error}"))
    }

    /// Parses, checks the normalised form, and checks that it parses to the same value.
    fn normalises(line: &str, normal: &str) {
        let command = ok(line);
        assert_eq!(command.to_string(), normal, "{line:?}");
        assert_eq!(ok(normal), command, "{normal:?}");
    }

    #[test]
    fn ehlo_and_helo() {
        normalises("EHLO mail.example.com", "EHLO mail.example.com");
        normalises("ehlo [192.0.2.1]", "EHLO [192.0.2.1]");
        normalises("helo [IPv6:2001:DB8::0:1]", "HELO [IPv6:2001:db8::1]");
        normalises("HELO 例子.广告", "HELO 例子.广告");
        let Command::Ehlo(host) = ok("EHLO client.example") else {
            panic!()
        };
        assert_eq!(
            helo_domain(&host).map(Domain::as_str),
            Some("client.example")
        );
        assert_eq!(
            parse("EHLO"),
            Err(CommandError::BadHelo(AddressError::Empty))
        );
        assert_eq!(
            parse("EHLO bad_domain"),
            Err(CommandError::BadHelo(AddressError::BadDomain))
        );
        assert!(matches!(
            parse("EHLO a.example b.example"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn lhlo_has_the_syntax_of_ehlo() {
        normalises("lhlo mail.example.com", "LHLO mail.example.com");
        normalises("LHLO [192.0.2.1]", "LHLO [192.0.2.1]");
        assert_eq!(ok("LHLO a.example").verb(), "LHLO");
        assert_eq!(
            parse("LHLO"),
            Err(CommandError::BadHelo(AddressError::Empty))
        );
    }

    #[test]
    fn mail() {
        let command = ok("MAIL FROM:<> SIZE=1000 BODY=8BITMIME");
        let Command::Mail { from, params } = &command else {
            panic!()
        };
        assert_eq!(*from, ReversePath::Null);
        assert_eq!(params.size, Some(1000));
        assert_eq!(params.body, Some(BodyType::EightBitMime));
        normalises(
            "MAIL FROM:<> SIZE=1000 BODY=8BITMIME",
            "MAIL FROM:<> SIZE=1000 BODY=8BITMIME",
        );
        normalises("mail from:<a@b.example>", "MAIL FROM:<a@b.example>");
        normalises(
            "MAIL FROM: <a@b.example>  body=7bit size=5 ",
            "MAIL FROM:<a@b.example> SIZE=5 BODY=7BIT",
        );
        normalises(
            "MAIL FROM:<@hosta.int,@jkl.org:userc@d.bar.org>",
            "MAIL FROM:<userc@d.bar.org>",
        );
        normalises(
            "MAIL FROM:<\"John..Doe\"@example.com>",
            "MAIL FROM:<\"John..Doe\"@example.com>",
        );
        assert_eq!(
            parse("MAIL FROM:a@b"),
            Err(CommandError::BadSender(AddressError::MissingAngleBrackets))
        );
        assert_eq!(
            parse("MAIL FROM:"),
            Err(CommandError::BadSender(AddressError::Empty))
        );
        assert_eq!(
            parse("MAIL FROM:  <a@b>"),
            Err(CommandError::BadSender(AddressError::MissingAngleBrackets))
        );
        assert_eq!(
            parse("MAIL FROM:<a@b>SIZE=1"),
            Err(CommandError::BadSender(AddressError::TrailingGarbage))
        );
        assert!(matches!(parse("MAIL <a@b>"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("MAIL"), Err(CommandError::Syntax(_))));
        assert!(matches!(
            parse("MAIL TO:<a@b>"),
            Err(CommandError::Syntax(_))
        ));
        assert_eq!(
            parse("MAIL FROM:<a@b> FOO=1"),
            Err(CommandError::Parameter(ParamError::Unknown("FOO".into())))
        );
        assert_eq!(
            parse("MAIL FROM:<a@b> NOTIFY=NEVER"),
            Err(CommandError::Parameter(ParamError::Unknown(
                "NOTIFY".into()
            )))
        );
    }

    #[test]
    fn rcpt() {
        normalises("RCPT TO:<Postmaster>", "RCPT TO:<Postmaster>");
        normalises("rcpt to:<postmaster>", "RCPT TO:<Postmaster>");
        normalises(
            "RCPT TO:<bob@example.com> ORCPT=rfc822;bob+2Bsmith@example.com notify=failure,delay",
            "RCPT TO:<bob@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob+2Bsmith@example.com",
        );
        let Command::Rcpt { to, params } = ok("RCPT TO:<@a.example:u@b.example> NOTIFY=NEVER")
        else {
            panic!()
        };
        assert_eq!(
            to,
            ForwardPath::Mailbox(Mailbox::parse("u@b.example").unwrap())
        );
        assert_eq!(params.notify, Some(Notify::Never));
        assert_eq!(
            parse("RCPT TO:<>"),
            Err(CommandError::BadRecipient(AddressError::Empty))
        );
        assert_eq!(
            parse("RCPT TO:bob@x"),
            Err(CommandError::BadRecipient(
                AddressError::MissingAngleBrackets
            ))
        );
        assert_eq!(
            parse("RCPT TO:<a@b> SIZE=1"),
            Err(CommandError::Parameter(ParamError::Unknown("SIZE".into())))
        );
        assert!(matches!(
            parse("RCPT FROM:<a@b>"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn argumentless_commands() {
        for (line, command) in [
            ("DATA", Command::Data),
            ("rset", Command::Rset),
            ("Quit", Command::Quit),
            ("STARTTLS", Command::StartTls),
            ("DATA ", Command::Data),
        ] {
            assert_eq!(ok(line), command);
        }
        for line in ["DATA x", "RSET now", "QUIT please", "STARTTLS x"] {
            assert!(
                matches!(parse(line), Err(CommandError::Syntax(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn string_arguments() {
        assert_eq!(ok("NOOP"), Command::Noop(None));
        normalises("noop  hello there ", "NOOP hello there");
        assert_eq!(ok("HELP"), Command::Help(None));
        normalises("help MAIL", "HELP MAIL");
        normalises("VRFY Smith", "VRFY Smith");
        normalises("expn Example-People", "EXPN Example-People");
        assert!(matches!(parse("VRFY"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("EXPN  "), Err(CommandError::Syntax(_))));
    }

    #[test]
    fn bdat() {
        assert_eq!(
            ok("BDAT 1000"),
            Command::Bdat {
                size: 1000,
                last: false
            }
        );
        assert_eq!(
            ok("bdat 0 last"),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
        normalises("BDAT 007 Last", "BDAT 7 LAST");
        assert_eq!(
            ok("BDAT 18446744073709551615").to_string(),
            "BDAT 18446744073709551615"
        );
        for line in [
            "BDAT",
            "BDAT x",
            "BDAT -1",
            "BDAT +1",
            "BDAT 18446744073709551616",
            "BDAT 1 FIRST",
            "BDAT 1 LAST x",
        ] {
            assert!(
                matches!(parse(line), Err(CommandError::Syntax(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn auth() {
        assert_eq!(
            ok("AUTH PLAIN"),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial_response: None
            }
        );
        normalises("auth plain =", "AUTH PLAIN =");
        normalises(
            "AUTH scram-sha-256 biwsbj11c2VyLHI9",
            "AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9",
        );
        normalises(
            "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
            "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        );
        assert_eq!(ok("AUTH LOGIN dXNlcg=").to_string(), "AUTH LOGIN dXNlcg=");
        for line in [
            "AUTH PLAIN not*base64",
            "AUTH PLAIN ===",
            "AUTH PLAIN a===",
            "AUTH PLAIN a=b",
        ] {
            assert_eq!(
                parse(line),
                Err(CommandError::InitialResponseNotBase64 {
                    mechanism: "PLAIN".into()
                }),
                "{line}"
            );
        }
        for line in [
            "AUTH",
            "AUTH PL@IN",
            "AUTH ABCDEFGHIJKLMNOPQRSTU",
            "AUTH PLAIN abc def",
        ] {
            assert!(
                matches!(parse(line), Err(CommandError::Syntax(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn unknown_and_foreign() {
        assert_eq!(parse("FOO"), Err(CommandError::UnknownCommand));
        assert_eq!(parse(""), Err(CommandError::UnknownCommand));
        assert_eq!(parse(" MAIL FROM:<>"), Err(CommandError::UnknownCommand));
        assert_eq!(parse("MAIL\tFROM:<>"), Err(CommandError::UnknownCommand));
        assert_eq!(parse("XVERYLONGVERB x"), Err(CommandError::UnknownCommand));
        assert_eq!(parse("GET / HTTP/1.1"), Err(CommandError::ForeignProtocol));
        for verb in [
            "post",
            "Head",
            "PUT",
            "CONNECT example:443 HTTP/1.1",
            "OPTIONS *",
        ] {
            assert_eq!(parse(verb), Err(CommandError::ForeignProtocol), "{verb}");
        }
    }

    #[test]
    fn bad_bytes() {
        assert_eq!(
            Command::parse(b"NOOP \0"),
            Err(CommandError::ControlCharacter)
        );
        assert_eq!(
            Command::parse(b"NOOP a\rb"),
            Err(CommandError::ControlCharacter)
        );
        assert_eq!(
            Command::parse(b"NOOP a\nb"),
            Err(CommandError::ControlCharacter)
        );
        assert_eq!(Command::parse(b"NOOP \xff"), Err(CommandError::InvalidUtf8));
        assert_eq!(Command::parse(b"\xc3"), Err(CommandError::InvalidUtf8));
        assert_eq!(
            Command::parse(b"\xff\0"),
            Err(CommandError::ControlCharacter)
        );
    }

    #[test]
    fn utf8_mail() {
        normalises(
            "MAIL FROM:<用户@例子.广告> SMTPUTF8",
            "MAIL FROM:<用户@例子.广告> SMTPUTF8",
        );
    }
}
