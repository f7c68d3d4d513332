//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `esmtp-param`), decoded into
//! the extensions Sluice implements: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030),
//! SMTPUTF8 (RFC 6531), RET and ENVID (RFC 3461), AUTH= (RFC 4954) on MAIL, and
//! NOTIFY and ORCPT (RFC 3461) on RCPT. Keywords are case-insensitive; each may
//! appear at most once.

use super::address::Mailbox;
use super::xtext;
use core::fmt;

/// Why the parameter list of a MAIL or RCPT command was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A keyword this server does not know (answered 555 5.5.4).
    #[error("unrecognised parameter {0}")]
    Unknown(String),
    /// The same keyword twice.
    #[error("duplicate parameter {0}")]
    Duplicate(String),
    /// A known keyword with a missing or malformed value (answered 501 5.5.4).
    #[error("invalid value for parameter {keyword}: {reason}")]
    BadValue {
        keyword: String,
        reason: &'static str,
    },
    /// Not `keyword[=value]` at all.
    #[error("malformed parameter syntax")]
    Syntax,
}

/// BODY= (RFC 6152 8BITMIME, RFC 3030 BINARYMIME).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// RET= (RFC 3461 §4.3): return the whole message or only its headers in a failure notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    Full,
    Headers,
}

/// NOTIFY= (RFC 3461 §4.1): `NEVER`, or any non-empty combination of the three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notify {
    Never,
    On {
        success: bool,
        failure: bool,
        delay: bool,
    },
}

/// ORCPT= (RFC 3461 §4.2): `addr-type ";" xtext`, held decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OriginalRecipient {
    /// The address type, e.g. `rfc822` or `utf-8` (RFC 6533); compared case-insensitively.
    pub address_type: String,
    /// The decoded address.
    pub address: String,
}

/// AUTH= on MAIL (RFC 4954 §5): the authenticated submitter, or `<>` for unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthSubmitter {
    Unknown,
    Mailbox(Mailbox),
}

/// The parameters of a MAIL command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MailParameters {
    /// SIZE=n: the client's estimate of the message size in octets.
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    /// SMTPUTF8 (no value).
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID=, decoded from xtext.
    pub envid: Option<String>,
    pub auth: Option<AuthSubmitter>,
}

/// The parameters of a RCPT command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RcptParameters {
    pub notify: Option<Notify>,
    pub orcpt: Option<OriginalRecipient>,
}

/// RFC 3461 §4.4: the longest ENVID value, counted on its xtext form.
const MAX_ENVID: usize = 100;

/// RFC 5321 `esmtp-keyword`: (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
fn is_keyword(text: &str) -> bool {
    text.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// RFC 5321 `esmtp-value`, widened to UTF-8 by RFC 6531 §3.3.
fn is_value(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| matches!(c, '!'..='<' | '>'..='~') || !c.is_ascii())
}

/// Splits `keyword[=value]` items separated by one or more spaces; keywords come back
/// upper case. Leading and trailing spaces are tolerated (clients do send them).
fn split(text: &str) -> Result<Vec<(String, Option<&str>)>, ParamError> {
    text.split(' ')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (keyword, value) = match item.split_once('=') {
                Some((keyword, value)) => (keyword, Some(value)),
                None => (item, None),
            };
            if !is_keyword(keyword) || !value.is_none_or(is_value) {
                return Err(ParamError::Syntax);
            }
            Ok((keyword.to_ascii_uppercase(), value))
        })
        .collect()
}

fn bad_value(keyword: &str, reason: &'static str) -> ParamError {
    ParamError::BadValue {
        keyword: keyword.to_owned(),
        reason,
    }
}

fn required<'a>(keyword: &str, value: Option<&'a str>) -> Result<&'a str, ParamError> {
    value.ok_or_else(|| bad_value(keyword, "a value is required"))
}

/// Fills a parameter slot, refusing a second occurrence of its keyword.
fn set_once<T>(
    slot: &mut Option<T>,
    keyword: &str,
    value: impl FnOnce() -> Result<T, ParamError>,
) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(ParamError::Duplicate(keyword.to_owned()));
    }
    *slot = Some(value()?);
    Ok(())
}

/// Decodes xtext whose octets must form UTF-8 text.
fn xtext_string(keyword: &str, value: &str) -> Result<String, ParamError> {
    let octets = xtext::decode(value).map_err(|_| bad_value(keyword, "malformed xtext"))?;
    String::from_utf8(octets).map_err(|_| bad_value(keyword, "not UTF-8 once decoded"))
}

fn parse_size(keyword: &str, value: Option<&str>) -> Result<u64, ParamError> {
    let value = required(keyword, value)?;
    // RFC 1870: size-value = 1*20DIGIT; u64 holds every 19-digit and most 20-digit values.
    if value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_value(
            keyword,
            "not a decimal number of at most 20 digits",
        ));
    }
    value.parse().map_err(|_| bad_value(keyword, "too large"))
}

fn parse_body(keyword: &str, value: Option<&str>) -> Result<BodyType, ParamError> {
    let value = required(keyword, value)?;
    [
        ("7BIT", BodyType::SevenBit),
        ("8BITMIME", BodyType::EightBitMime),
        ("BINARYMIME", BodyType::BinaryMime),
    ]
    .into_iter()
    .find(|(name, _)| value.eq_ignore_ascii_case(name))
    .map(|(_, body)| body)
    .ok_or_else(|| bad_value(keyword, "expected 7BIT, 8BITMIME or BINARYMIME"))
}

fn parse_ret(keyword: &str, value: Option<&str>) -> Result<Ret, ParamError> {
    match required(keyword, value)? {
        value if value.eq_ignore_ascii_case("FULL") => Ok(Ret::Full),
        value if value.eq_ignore_ascii_case("HDRS") => Ok(Ret::Headers),
        _ => Err(bad_value(keyword, "expected FULL or HDRS")),
    }
}

fn parse_envid(keyword: &str, value: Option<&str>) -> Result<String, ParamError> {
    let value = required(keyword, value)?;
    if value.len() > MAX_ENVID {
        return Err(bad_value(keyword, "longer than 100 characters"));
    }
    xtext_string(keyword, value)
}

fn parse_auth(keyword: &str, value: Option<&str>) -> Result<AuthSubmitter, ParamError> {
    let decoded = xtext_string(keyword, required(keyword, value)?)?;
    if decoded == "<>" {
        return Ok(AuthSubmitter::Unknown);
    }
    Mailbox::parse(&decoded)
        .map(AuthSubmitter::Mailbox)
        .map_err(|_| bad_value(keyword, "not a mailbox or <>"))
}

fn parse_notify(keyword: &str, value: Option<&str>) -> Result<Notify, ParamError> {
    let value = required(keyword, value)?;
    if value.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::Never);
    }
    let (mut success, mut failure, mut delay) = (false, false, false);
    for item in value.split(',') {
        let flag = if item.eq_ignore_ascii_case("SUCCESS") {
            &mut success
        } else if item.eq_ignore_ascii_case("FAILURE") {
            &mut failure
        } else if item.eq_ignore_ascii_case("DELAY") {
            &mut delay
        } else if item.eq_ignore_ascii_case("NEVER") {
            return Err(bad_value(keyword, "NEVER cannot be combined"));
        } else {
            return Err(bad_value(
                keyword,
                "expected NEVER or SUCCESS, FAILURE, DELAY",
            ));
        };
        if *flag {
            return Err(bad_value(keyword, "repeated notification type"));
        }
        *flag = true;
    }
    Ok(Notify::On {
        success,
        failure,
        delay,
    })
}

/// RFC 3461 `addr-type` is an RFC 822 atom: printable ASCII except specials.
fn is_address_type(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\".[]".contains(c))
}

fn is_utf8_address_type(address_type: &str) -> bool {
    address_type.eq_ignore_ascii_case("utf-8")
}

/// RFC 6533 §3 `utf-8-addr-xtext` / `utf-8-addr-unitext`: printable ASCII except `+`,
/// `=` and `\`, UTF-8 itself, and `\x{HEX}` for any other code point (hex upper case,
/// as RFC 6533 spells HEXPOINT).
fn decode_utf8_address(text: &str) -> Option<String> {
    let mut decoded = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if chars.next()? != 'x' || chars.next()? != '{' {
                    return None;
                }
                let mut code_point: u32 = 0;
                let mut digits = 0;
                loop {
                    let digit = chars.next()?;
                    if digit == '}' && digits > 0 {
                        break;
                    }
                    let value = u8::try_from(digit).ok().and_then(xtext::upper_hex_value)?;
                    digits += 1;
                    if digits > 6 {
                        return None;
                    }
                    code_point = code_point << 4 | u32::from(value);
                }
                decoded.push(char::from_u32(code_point)?);
            }
            '+' | '=' => return None,
            c if c.is_ascii_graphic() || !c.is_ascii() => decoded.push(c),
            _ => return None,
        }
    }
    Some(decoded)
}

/// The inverse of [`decode_utf8_address`]. Non-ASCII is escaped too, so that the value
/// is valid whether or not the session negotiated SMTPUTF8.
fn encode_utf8_address(address: &str) -> String {
    let mut encoded = String::with_capacity(address.len());
    for c in address.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    encoded
}

fn parse_orcpt(keyword: &str, value: Option<&str>) -> Result<OriginalRecipient, ParamError> {
    let value = required(keyword, value)?;
    let (address_type, encoded) = value
        .split_once(';')
        .ok_or_else(|| bad_value(keyword, "expected addr-type;address"))?;
    if !is_address_type(address_type) {
        return Err(bad_value(keyword, "malformed address type"));
    }
    let address = if is_utf8_address_type(address_type) {
        decode_utf8_address(encoded)
            .ok_or_else(|| bad_value(keyword, "malformed utf-8-addr-xtext"))?
    } else {
        xtext_string(keyword, encoded)?
    };
    Ok(OriginalRecipient {
        address_type: address_type.to_owned(),
        address,
    })
}

impl MailParameters {
    /// Parses the space-separated parameters after the reverse-path (may be empty).
    pub fn parse(text: &str) -> Result<MailParameters, ParamError> {
        let mut params = MailParameters::default();
        for (keyword, value) in split(text)? {
            let keyword = keyword.as_str();
            match keyword {
                "SIZE" => set_once(&mut params.size, keyword, || parse_size(keyword, value))?,
                "BODY" => set_once(&mut params.body, keyword, || parse_body(keyword, value))?,
                "SMTPUTF8" => {
                    if params.smtputf8 {
                        return Err(ParamError::Duplicate(keyword.to_owned()));
                    }
                    if value.is_some() {
                        return Err(bad_value(keyword, "takes no value"));
                    }
                    params.smtputf8 = true;
                }
                "RET" => set_once(&mut params.ret, keyword, || parse_ret(keyword, value))?,
                "ENVID" => set_once(&mut params.envid, keyword, || parse_envid(keyword, value))?,
                "AUTH" => set_once(&mut params.auth, keyword, || parse_auth(keyword, value))?,
                _ => return Err(ParamError::Unknown(keyword.to_owned())),
            }
        }
        Ok(params)
    }
    pub fn is_empty(&self) -> bool {
        *self == MailParameters::default()
    }
}

impl RcptParameters {
    /// Parses the space-separated parameters after the forward-path (may be empty).
    pub fn parse(text: &str) -> Result<RcptParameters, ParamError> {
        let mut params = RcptParameters::default();
        for (keyword, value) in split(text)? {
            let keyword = keyword.as_str();
            match keyword {
                "NOTIFY" => set_once(&mut params.notify, keyword, || parse_notify(keyword, value))?,
                "ORCPT" => set_once(&mut params.orcpt, keyword, || parse_orcpt(keyword, value))?,
                _ => return Err(ParamError::Unknown(keyword.to_owned())),
            }
        }
        Ok(params)
    }
    pub fn is_empty(&self) -> bool {
        *self == RcptParameters::default()
    }
}

/// Writes items separated by single spaces.
struct Separated<'a, 'b> {
    formatter: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl<'a, 'b> Separated<'a, 'b> {
    fn new(formatter: &'a mut fmt::Formatter<'b>) -> Self {
        Separated {
            formatter,
            first: true,
        }
    }
    fn item(&mut self, item: fmt::Arguments<'_>) -> fmt::Result {
        if !self.first {
            self.formatter.write_str(" ")?;
        }
        self.first = false;
        self.formatter.write_fmt(item)
    }
}

impl fmt::Display for BodyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        })
    }
}

impl fmt::Display for MailParameters {
    /// The normalised wire form: known keywords upper case in a fixed order
    /// (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH), separated by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Separated::new(f);
        if let Some(size) = self.size {
            out.item(format_args!("SIZE={size}"))?;
        }
        if let Some(body) = self.body {
            out.item(format_args!("BODY={body}"))?;
        }
        if self.smtputf8 {
            out.item(format_args!("SMTPUTF8"))?;
        }
        if let Some(ret) = self.ret {
            out.item(format_args!(
                "RET={}",
                if ret == Ret::Full { "FULL" } else { "HDRS" }
            ))?;
        }
        if let Some(envid) = &self.envid {
            out.item(format_args!("ENVID={}", xtext::encode(envid.as_bytes())))?;
        }
        match &self.auth {
            Some(AuthSubmitter::Unknown) => out.item(format_args!("AUTH=<>"))?,
            Some(AuthSubmitter::Mailbox(mailbox)) => out.item(format_args!(
                "AUTH={}",
                xtext::encode(mailbox.to_string().as_bytes())
            ))?,
            None => {}
        }
        Ok(())
    }
}

impl fmt::Display for RcptParameters {
    /// The normalised wire form: NOTIFY then ORCPT.
    ///
    /// `Notify::On` with no type set has no wire form and is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Separated::new(f);
        match self.notify {
            Some(Notify::Never) => out.item(format_args!("NOTIFY=NEVER"))?,
            Some(Notify::On {
                success,
                failure,
                delay,
            }) if success || failure || delay => {
                let names = [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")];
                let list: Vec<&str> = names
                    .iter()
                    .filter(|(set, _)| *set)
                    .map(|(_, name)| *name)
                    .collect();
                out.item(format_args!("NOTIFY={}", list.join(",")))?;
            }
            _ => {}
        }
        if let Some(orcpt) = &self.orcpt {
            let encoded = if is_utf8_address_type(&orcpt.address_type) {
                encode_utf8_address(&orcpt.address)
            } else {
                xtext::encode(orcpt.address.as_bytes())
            };
            out.item(format_args!("ORCPT={};{encoded}", orcpt.address_type))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(text: &str) -> MailParameters {
        MailParameters::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    fn rcpt(text: &str) -> RcptParameters {
        RcptParameters::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    fn bad(keyword: &str) -> impl Fn(Result<MailParameters, ParamError>) -> bool + '_ {
        move |result| matches!(result, Err(ParamError::BadValue { keyword: k, .. }) if k == keyword)
    }

    #[test]
    fn empty_lists() {
        assert!(mail("").is_empty());
        assert!(mail("   ").is_empty());
        assert!(rcpt("").is_empty());
        assert_eq!(mail("").to_string(), "");
    }

    #[test]
    fn size() {
        assert_eq!(mail("SIZE=1000").size, Some(1000));
        assert_eq!(mail("size=0007").to_string(), "SIZE=7");
        assert_eq!(mail("SIZE=18446744073709551615").size, Some(u64::MAX));
        assert!(bad("SIZE")(MailParameters::parse(
            "SIZE=18446744073709551616"
        )));
        assert!(bad("SIZE")(MailParameters::parse(
            "SIZE=000000000000000000001"
        )));
        assert!(bad("SIZE")(MailParameters::parse("SIZE=-1")));
        assert!(bad("SIZE")(MailParameters::parse("SIZE=1k")));
        assert!(bad("SIZE")(MailParameters::parse("SIZE")));
        assert_eq!(MailParameters::parse("SIZE="), Err(ParamError::Syntax));
    }

    #[test]
    fn body_and_smtputf8() {
        assert_eq!(mail("BODY=8BITMIME").body, Some(BodyType::EightBitMime));
        assert_eq!(mail("body=7bit").body, Some(BodyType::SevenBit));
        assert_eq!(mail("BODY=binarymime").body, Some(BodyType::BinaryMime));
        assert!(bad("BODY")(MailParameters::parse("BODY=8BIT")));
        assert!(mail("SMTPUTF8").smtputf8);
        assert!(mail("smtputf8").smtputf8);
        assert!(bad("SMTPUTF8")(MailParameters::parse("SMTPUTF8=yes")));
    }

    #[test]
    fn ret_and_envid() {
        assert_eq!(mail("RET=FULL").ret, Some(Ret::Full));
        assert_eq!(mail("ret=hdrs").ret, Some(Ret::Headers));
        assert!(bad("RET")(MailParameters::parse("RET=BODY")));
        assert_eq!(
            mail("ENVID=QQ314159+2B1").envid.as_deref(),
            Some("QQ314159+1")
        );
        assert_eq!(mail("ENVID=a+2Bb").to_string(), "ENVID=a+2Bb");
        assert!(mail(&format!("ENVID={}", "x".repeat(100))).envid.is_some());
        assert!(bad("ENVID")(MailParameters::parse(&format!(
            "ENVID={}",
            "x".repeat(101)
        ))));
        assert!(bad("ENVID")(MailParameters::parse("ENVID=a+2b")));
        assert!(bad("ENVID")(MailParameters::parse("ENVID=+FF")));
    }

    #[test]
    fn auth() {
        assert_eq!(mail("AUTH=<>").auth, Some(AuthSubmitter::Unknown));
        let submitter = mail("AUTH=e+3Dmc2@example.com").auth;
        let expected = Mailbox::parse("e=mc2@example.com").unwrap();
        assert_eq!(submitter, Some(AuthSubmitter::Mailbox(expected)));
        assert_eq!(
            mail("AUTH=e+3Dmc2@example.com").to_string(),
            "AUTH=e+3Dmc2@example.com"
        );
        assert_eq!(mail("AUTH=\"a+20b\"@x").to_string(), "AUTH=\"a+20b\"@x");
        assert!(bad("AUTH")(MailParameters::parse("AUTH=nobody")));
        assert!(bad("AUTH")(MailParameters::parse("AUTH=+3C+3E+3E")));
    }

    #[test]
    fn keywords_and_syntax() {
        assert_eq!(
            MailParameters::parse("FOO=bar"),
            Err(ParamError::Unknown("FOO".into()))
        );
        assert_eq!(
            MailParameters::parse("x-foo"),
            Err(ParamError::Unknown("X-FOO".into()))
        );
        assert_eq!(
            MailParameters::parse("NOTIFY=NEVER"),
            Err(ParamError::Unknown("NOTIFY".into()))
        );
        assert_eq!(
            MailParameters::parse("ORCPT=rfc822;a@b"),
            Err(ParamError::Unknown("ORCPT".into()))
        );
        assert_eq!(
            RcptParameters::parse("SIZE=1"),
            Err(ParamError::Unknown("SIZE".into()))
        );
        assert_eq!(
            MailParameters::parse("SIZE=1 size=2"),
            Err(ParamError::Duplicate("SIZE".into()))
        );
        assert_eq!(
            MailParameters::parse("SMTPUTF8 SMTPUTF8"),
            Err(ParamError::Duplicate("SMTPUTF8".into()))
        );
        assert_eq!(
            RcptParameters::parse("NOTIFY=NEVER NOTIFY=NEVER"),
            Err(ParamError::Duplicate("NOTIFY".into()))
        );
        for syntax in [
            "-SIZE=1",
            "SIZE=1=2",
            "SIZE=a b=",
            "BODY=8BITMIME\tSIZE=1",
            "=1",
            "SI_ZE=1",
            "SIZE=\u{1}",
        ] {
            assert_eq!(
                MailParameters::parse(syntax),
                Err(ParamError::Syntax),
                "{syntax:?}"
            );
        }
    }

    #[test]
    fn mail_normalised_order() {
        let params = mail("  auth=<>   envid=X smtputf8 ret=hdrs body=8bitmime size=10 ");
        assert_eq!(
            params.to_string(),
            "SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=X AUTH=<>"
        );
        assert_eq!(mail(&params.to_string()), params);
    }

    #[test]
    fn notify() {
        assert_eq!(rcpt("NOTIFY=NEVER").notify, Some(Notify::Never));
        assert_eq!(
            rcpt("notify=delay,Success").notify,
            Some(Notify::On {
                success: true,
                failure: false,
                delay: true
            })
        );
        assert_eq!(
            rcpt("NOTIFY=DELAY,FAILURE,SUCCESS").to_string(),
            "NOTIFY=SUCCESS,FAILURE,DELAY"
        );
        for value in [
            "NEVER,SUCCESS",
            "SUCCESS,NEVER",
            "SUCCESS,SUCCESS",
            "SUCCESS,",
            "ALWAYS",
        ] {
            let result = RcptParameters::parse(&format!("NOTIFY={value}"));
            assert!(
                matches!(result, Err(ParamError::BadValue { .. })),
                "{value}"
            );
        }
        let silent = RcptParameters {
            notify: Some(Notify::On {
                success: false,
                failure: false,
                delay: false,
            }),
            orcpt: None,
        };
        assert_eq!(silent.to_string(), "");
    }

    #[test]
    fn orcpt_rfc822() {
        let orcpt = rcpt("ORCPT=rfc822;bob+2Bsmith@example.com").orcpt.unwrap();
        assert_eq!(orcpt.address_type, "rfc822");
        assert_eq!(orcpt.address, "bob+smith@example.com");
        assert_eq!(
            rcpt("ORCPT=rfc822;bob+2Bsmith@example.com").to_string(),
            "ORCPT=rfc822;bob+2Bsmith@example.com"
        );
        assert_eq!(rcpt("ORCPT=RFC822;a+40b").orcpt.unwrap().address, "a@b");
        for value in ["rfc822", "rf[c;a", "rf(c;a", ";a@b", "rfc822;a+4"] {
            let result = RcptParameters::parse(&format!("ORCPT={value}"));
            assert!(
                matches!(result, Err(ParamError::BadValue { .. })),
                "{value}"
            );
        }
    }

    #[test]
    fn orcpt_utf8() {
        let orcpt = rcpt("ORCPT=utf-8;j\\x{E9}r\\x{F4}me@example.com")
            .orcpt
            .unwrap();
        assert_eq!(orcpt.address, "jérôme@example.com");
        assert_eq!(
            rcpt("ORCPT=UTF-8;jérôme@x").orcpt.unwrap().address,
            "jérôme@x"
        );
        assert_eq!(
            rcpt("ORCPT=utf-8;a\\x{2B}b\\x{1F600}")
                .orcpt
                .unwrap()
                .address,
            "a+b\u{1F600}"
        );
        assert_eq!(
            rcpt("ORCPT=utf-8;jérôme\\x{2B}\\x{002B}").to_string(),
            "ORCPT=utf-8;j\\x{E9}r\\x{F4}me\\x{2B}\\x{2B}"
        );
        for value in [
            "a+2Bb",
            "a\\x{e9}",
            "a\\x{}",
            "a\\x{D800}",
            "a\\x{110000}",
            "a\\y{41}",
            "a\\x{41",
            "a\\x{0000041}",
        ] {
            let result = RcptParameters::parse(&format!("ORCPT=utf-8;{value}"));
            assert!(
                matches!(result, Err(ParamError::BadValue { .. })),
                "{value}"
            );
        }
        let tricky = OriginalRecipient {
            address_type: "utf-8".into(),
            address: "a b\\c=d\u{7f}é".into(),
        };
        let params = RcptParameters {
            notify: Some(Notify::Never),
            orcpt: Some(tricky),
        };
        assert_eq!(rcpt(&params.to_string()), params);
    }
}
