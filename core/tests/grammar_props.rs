//! Property tests of the SMTP grammar: the parsers never panic on any bytes, values
//! survive `parse(serialize(v))`, and normalisation (`serialize(parse(x))`) is idempotent.

use core::net::{Ipv4Addr, Ipv6Addr};
use proptest::prelude::*;
use proptest::sample::select;
use sluice_core::smtp::address::{
    AddressLiteral, Domain, ForwardPath, Host, LocalPart, Mailbox, ReversePath,
};
use sluice_core::smtp::command::{Command, InitialResponse};
use sluice_core::smtp::params::{
    AuthSubmitter, BodyType, MailParameters, Notify, OriginalRecipient, RcptParameters, Ret,
};
use sluice_core::smtp::reply::{EnhancedStatus, Reply, ReplyCode};
use sluice_core::smtp::xtext;

const CASES: u32 = 256;
const MAX_LINE: usize = 1000;
const MAX_LINES: usize = 50;

// ---- strategies for valid values ----

fn dot_string() -> impl Strategy<Value = String> {
    let atom = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}|[a-zé用户ß]{1,4}";
    prop::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join("."))
}

fn local_part() -> impl Strategy<Value = LocalPart> {
    let quoted = "[ -~]{0,20}|[ a-z\"\\\\é用户]{0,12}";
    prop_oneof![dot_string(), quoted].prop_filter_map("too long", |text| LocalPart::new(&text).ok())
}

fn domain() -> impl Strategy<Value = Domain> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?|[a-z0-9éüßñ例子广告]{1,6}";
    prop::collection::vec(label, 1..5).prop_filter_map("invalid domain", |labels| {
        Domain::parse(&labels.join(".")).ok()
    })
}

fn address_literal() -> impl Strategy<Value = AddressLiteral> {
    let general = ("[a-zA-Z0-9][a-zA-Z0-9-]{0,6}[a-zA-Z0-9]", "[!-Z^-~]{1,20}")
        .prop_filter("IPv6 tag is not general", |(tag, _)| {
            !tag.eq_ignore_ascii_case("IPv6")
        })
        .prop_map(|(tag, content)| AddressLiteral::General { tag, content });
    prop_oneof![
        any::<[u8; 4]>().prop_map(|octets| AddressLiteral::V4(Ipv4Addr::from(octets))),
        any::<[u16; 8]>().prop_map(|groups| AddressLiteral::V6(Ipv6Addr::from(groups))),
        // Mostly-zero addresses exercise `::` compression and the IPv4-mapped form.
        (any::<u16>(), any::<u32>(), 0..8usize).prop_map(|(group, tail, at)| {
            let mut groups = [0u16; 8];
            groups[at] = group;
            groups[5] = if at % 2 == 0 { 0xffff } else { groups[5] };
            let address = u128::from(Ipv6Addr::from(groups)) | u128::from(tail % 3);
            AddressLiteral::V6(Ipv6Addr::from(address))
        }),
        general,
    ]
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![3 => domain().prop_map(Host::Domain), 1 => address_literal().prop_map(Host::Literal)]
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    (local_part(), host())
        .prop_map(|(local_part, host)| Mailbox { local_part, host })
        .prop_filter("path too long", |mailbox| {
            mailbox.to_string().len() + 2 <= 256
        })
}

fn reverse_path() -> impl Strategy<Value = ReversePath> {
    prop_oneof![1 => Just(ReversePath::Null), 4 => mailbox().prop_map(ReversePath::Mailbox)]
}

fn forward_path() -> impl Strategy<Value = ForwardPath> {
    prop_oneof![1 => Just(ForwardPath::Postmaster), 4 => mailbox().prop_map(ForwardPath::Mailbox)]
}

fn mail_parameters() -> impl Strategy<Value = MailParameters> {
    let body = prop::option::of(select(vec![
        BodyType::SevenBit,
        BodyType::EightBitMime,
        BodyType::BinaryMime,
    ]));
    let ret = prop::option::of(select(vec![Ret::Full, Ret::Headers]));
    let envid = prop::option::of("\\PC{1,30}".prop_filter("ENVID too long", |envid| {
        xtext::encode(envid.as_bytes()).len() <= 100
    }));
    let auth = prop::option::of(prop_oneof![
        1 => Just(AuthSubmitter::Unknown),
        3 => mailbox().prop_map(AuthSubmitter::Mailbox),
    ]);
    (
        prop::option::of(any::<u64>()),
        body,
        any::<bool>(),
        ret,
        envid,
        auth,
    )
        .prop_map(|(size, body, smtputf8, ret, envid, auth)| MailParameters {
            size,
            body,
            smtputf8,
            ret,
            envid,
            auth,
        })
}

fn rcpt_parameters() -> impl Strategy<Value = RcptParameters> {
    let notify = prop::option::of(prop_oneof![
        Just(Notify::Never),
        (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_filter("empty NOTIFY", |(s, f, d)| *s || *f || *d)
            .prop_map(|(success, failure, delay)| Notify::On {
                success,
                failure,
                delay
            }),
    ]);
    let orcpt = prop::option::of(
        (
            select(vec!["rfc822", "RFC822", "utf-8", "UTF-8", "x-local"]),
            any::<String>(),
        )
            .prop_map(|(address_type, address)| OriginalRecipient {
                address_type: address_type.into(),
                address,
            }),
    );
    (notify, orcpt).prop_map(|(notify, orcpt)| RcptParameters { notify, orcpt })
}

/// Free text for NOOP, HELP, VRFY, EXPN: no CR, LF or NUL, no spaces at either end.
fn argument_text() -> impl Strategy<Value = String> {
    "[!-~é]([ -~\t用]{0,20}[!-~])?"
}

fn command() -> impl Strategy<Value = Command> {
    let initial_response = prop::option::of(prop_oneof![
        Just(InitialResponse::Empty),
        "[A-Za-z0-9+/]{1,40}={0,2}".prop_map(InitialResponse::Base64),
    ]);
    prop_oneof![
        host().prop_map(Command::Ehlo),
        host().prop_map(Command::Helo),
        (reverse_path(), mail_parameters())
            .prop_map(|(from, params)| Command::Mail { from, params }),
        (forward_path(), rcpt_parameters()).prop_map(|(to, params)| Command::Rcpt { to, params }),
        Just(Command::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
        Just(Command::Rset),
        prop::option::of(argument_text()).prop_map(Command::Noop),
        Just(Command::Quit),
        argument_text().prop_map(Command::Vrfy),
        argument_text().prop_map(Command::Expn),
        prop::option::of(argument_text()).prop_map(Command::Help),
        Just(Command::StartTls),
        ("[A-Z0-9_-]{1,20}", initial_response).prop_map(|(mechanism, initial_response)| {
            Command::Auth {
                mechanism,
                initial_response,
            }
        }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    (
        2u8..6,
        0u16..100,
        any::<bool>(),
        0u16..1000,
        0u16..1000,
        prop::collection::vec("[ -~é]{0,40}", 1..6),
    )
        .prop_map(|(class, rest, with_status, subject, detail, lines)| {
            let code = u16::from(class) * 100 + rest;
            let status =
                (with_status && class != 3).then(|| EnhancedStatus::new(class, subject, detail));
            Reply {
                code: ReplyCode(code),
                status,
                lines,
            }
        })
        // Without a status, a first line that looks like one would be read as one.
        .prop_filter("first line looks like a status", |reply| {
            reply.status.is_some() || EnhancedStatus::parse_prefix(&reply.lines[0]).is_none()
        })
}

// ---- strategies for SMTP-shaped text, to reach deep into the parsers ----

fn host_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9]{1,6}(\\.[a-zA-Z0-9]{1,3}(-[a-z0-9]{1,3})?){0,2}",
        1 => "[a-z例é_.-]{1,5}\\.[a-z]{1,3}\\.?",
        2 => "\\[[0-9]{1,3}(\\.[0-9]{1,3}){3}\\]",
        1 => "\\[[0-9]{1,4}(\\.[0-9]{1,4}){2,4}\\]",
        2 => "\\[(IPv6|ipv6|IPV6):([0-9a-fA-F]{1,4}:){1,4}:([0-9a-fA-F]{1,4}:){0,2}[0-9a-fA-F]{1,4}\\]",
        1 => "\\[(IPv6|ipv6|IPV6):([0-9a-fA-F]{0,4}:){1,8}[0-9a-fA-F]{0,4}\\]",
        1 => "\\[(IPv6|ipv6):(::|([0-9a-fA-F]{1,4}:){6}|::ffff:|1::2:)[0-9]{1,3}(\\.[0-9]{1,3}){3}\\]",
        1 => "\\[[a-zA-Z0-9-]{1,5}:[!-Z^-~]{0,8}\\]",
    ]
}

fn address_ish() -> impl Strategy<Value = String> {
    let local = prop_oneof![
        6 => "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,6}(\\.[a-zA-Z0-9+-]{1,5}){0,2}",
        3 => "\"([ -!#-\\[\\]-~é]|\\\\[ -~]){0,10}\"",
        1 => "[a-z.\"\\\\ ]{0,8}",
        2 => "[a-zé用]{1,4}",
    ];
    let route = prop_oneof![4 => Just(String::new()), 1 => "@[a-z]{1,4}(\\.[a-z]{1,4})?(,@[a-z.]{1,6}){0,2}:"];
    let at = prop_oneof![15 => Just("@"), 1 => Just("")];
    prop_oneof![
        12 => (route, local, at, host_ish()).prop_map(|(route, local, at, host)| format!("<{route}{local}{at}{host}>")),
        1 => "<(postmaster|Postmaster|POSTMASTER)>",
        1 => Just("<>".to_owned()),
        1 => "[a-z@.<>\\[\\]\":,\\\\ ]{0,20}",
    ]
}

fn join_params(params: Vec<(String, &'static str)>) -> String {
    params
        .into_iter()
        .map(|(param, space)| format!("{space}{param}"))
        .collect()
}

fn space() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(" "), 1 => Just("  ")]
}

fn mail_params_ish() -> impl Strategy<Value = String> {
    let param = prop_oneof![
        3 => "(SIZE|size)=[0-9]{1,21}",
        3 => "(BODY|body)=(7bit|8BITMIME|BINARYMIME|8bit)",
        2 => "SMTPUTF8(=x)?",
        2 => "RET=(FULL|hdrs|x)",
        3 => "ENVID=([!-*,-<>-~]|\\+[0-9A-Fa-f]{2}){1,10}",
        3 => "AUTH=(<>|[a-z0-9]{1,6}(\\+2B|\\+40)?[a-z0-9]{0,3}@[a-z.]{1,6}|\\+22[a-z+0-9A-F]{1,6}@[a-z.]{1,6})",
        1 => "[A-Za-z0-9-]{1,6}(=[!-~]{0,5})?",
    ];
    prop::collection::vec((param, space()), 0..4).prop_map(join_params)
}

fn rcpt_params_ish() -> impl Strategy<Value = String> {
    let param = prop_oneof![
        3 => "(NOTIFY|notify)=(NEVER|SUCCESS|FAILURE|DELAY|delay)(,(SUCCESS|FAILURE|DELAY)){0,2}",
        3 => "ORCPT=(rfc822|utf-8|UTF-8|x-a);([a-zA-Z0-9@.é]|\\+[0-9A-F]{2}|\\\\x\\{[0-9A-F]{1,6}\\}){0,12}",
        1 => "[A-Za-z0-9-]{1,6}(=[!-~]{0,5})?",
    ];
    prop::collection::vec((param, space()), 0..3).prop_map(join_params)
}

fn params_ish() -> impl Strategy<Value = String> {
    prop_oneof![mail_params_ish(), rcpt_params_ish()]
}

fn command_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (select(vec!["MAIL FROM:", "mail from: "]), address_ish(), mail_params_ish())
            .prop_map(|(verb, path, params)| format!("{verb}{path}{params}")),
        3 => (select(vec!["RCPT TO:", "rcpt To: "]), address_ish(), rcpt_params_ish())
            .prop_map(|(verb, path, params)| format!("{verb}{path}{params}")),
        2 => (select(vec!["EHLO ", "HELO ", "ehlo  "]), host_ish()).prop_map(|(verb, host)| format!("{verb}{host}")),
        1 => "(BDAT|bdat) [0-9]{0,21}( (LAST|last|x))? ?",
        1 => "(AUTH|auth) [A-Za-z0-9_-]{0,22}( [A-Za-z0-9+/=*]{0,12})?",
        1 => "(NOOP|HELP|VRFY|EXPN|DATA|RSET|QUIT|STARTTLS|GET|FOO)( {1,2}[ -~é]{0,12})?",
        1 => "\\PC{0,30}",
    ]
}

fn reply_ish() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![9 => Just("25"), 1 => Just("35"), 3 => Just("45"), 3 => Just("55"), 1 => Just("65")];
    let text = prop_oneof![
        "[ -~é]{0,12}",
        "[245]\\.[0-9]{1,4}\\.[0-9]{1,4}( [ -~]{0,8})?"
    ];
    let end = prop_oneof![30 => Just("\r\n"), 1 => Just("\n"), 1 => Just("")];
    let lines = prop::collection::vec(
        (prop_oneof![12 => Just(""), 1 => Just("9")], text, end),
        1..5,
    );
    (code, "[0-9]", lines).prop_map(|(code, digit, lines)| {
        let count = lines.len();
        lines
            .into_iter()
            .enumerate()
            .flat_map(|(index, (other_digit, text, end))| {
                let separator = if index + 1 < count { "-" } else { " " };
                let digit = if other_digit.is_empty() {
                    digit.as_str()
                } else {
                    other_digit
                };
                format!("{code}{digit}{separator}{text}{end}").into_bytes()
            })
            .collect()
    })
}

fn normalises_stably(line: &str) {
    if let Ok(command) = Command::parse(line.as_bytes()) {
        let normal = command.to_string();
        let again = Command::parse(normal.as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&command),
            "{line:?} normalised to {normal:?}"
        );
        assert_eq!(again.map(|command| command.to_string()), Ok(normal));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    // ---- (1) no panics, whatever the input ----

    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Command::parse(&bytes);
        let _ = Reply::parse(&bytes, 64, 4);
        let _ = Reply::parse(&bytes, MAX_LINE, MAX_LINES);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Domain::parse(&text);
        let _ = Mailbox::parse(&text);
        let _ = Host::parse(&text);
        let _ = AddressLiteral::parse(&text);
        let _ = ReversePath::parse_prefix(&text);
        let _ = ForwardPath::parse_prefix(&text);
        let _ = MailParameters::parse(&text);
        let _ = RcptParameters::parse(&text);
        let _ = EnhancedStatus::parse_prefix(&text);
        let _ = xtext::decode(&text);
    }

    #[test]
    fn parsers_never_panic_on_smtp_shaped_text(line in command_ish(), address in address_ish(), params in params_ish()) {
        let _ = Command::parse(line.as_bytes());
        let _ = ReversePath::parse_prefix(&address);
        let _ = ForwardPath::parse_prefix(&address);
        let _ = MailParameters::parse(&params);
        let _ = RcptParameters::parse(&params);
    }

    // ---- (2) parse(serialize(v)) == v ----

    #[test]
    fn mailboxes_round_trip(mailbox in mailbox()) {
        prop_assert_eq!(Mailbox::parse(&mailbox.to_string()), Ok(mailbox.clone()));
        let path = ReversePath::Mailbox(mailbox);
        let wire = path.to_string();
        prop_assert_eq!(ReversePath::parse_prefix(&wire), Ok((path, wire.len())));
    }

    #[test]
    fn forward_paths_round_trip(path in forward_path()) {
        let wire = path.to_string();
        prop_assert_eq!(ForwardPath::parse_prefix(&wire), Ok((path, wire.len())));
    }

    #[test]
    fn hosts_round_trip(host in host()) {
        prop_assert_eq!(Host::parse(&host.to_string()), Ok(host));
    }

    #[test]
    fn xtext_round_trips(octets in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(xtext::decode(&xtext::encode(&octets)), Ok(octets));
    }

    #[test]
    fn parameters_round_trip(mail in mail_parameters(), rcpt in rcpt_parameters()) {
        prop_assert_eq!(MailParameters::parse(&mail.to_string()), Ok(mail));
        prop_assert_eq!(RcptParameters::parse(&rcpt.to_string()), Ok(rcpt));
    }

    #[test]
    fn commands_round_trip(command in command()) {
        let line = command.to_string();
        prop_assert_eq!(Command::parse(line.as_bytes()), Ok(command));
    }

    #[test]
    fn replies_round_trip(reply in reply(), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut wire = reply.to_bytes();
        let length = wire.len();
        prop_assert_eq!(Reply::parse(&wire, MAX_LINE, MAX_LINES), Ok(Some((reply.clone(), length))));
        // Bytes of the next reply do not disturb this one.
        wire.extend_from_slice(&trailing);
        prop_assert_eq!(Reply::parse(&wire, MAX_LINE, MAX_LINES), Ok(Some((reply.clone(), length))));
        // Any strict prefix is incomplete, never an error.
        for end in 0..length {
            prop_assert_eq!(Reply::parse(&wire[..end], MAX_LINE, MAX_LINES), Ok(None));
        }
    }

    // ---- (3) normalisation is idempotent ----

    #[test]
    fn command_normalisation_is_idempotent(line in command_ish()) {
        normalises_stably(&line);
    }

    #[test]
    fn path_normalisation_is_idempotent(text in address_ish()) {
        if let Ok((path, _)) = ReversePath::parse_prefix(&text) {
            let normal = path.to_string();
            prop_assert_eq!(ReversePath::parse_prefix(&normal), Ok((path, normal.len())));
        }
        if let Ok((path, _)) = ForwardPath::parse_prefix(&text) {
            let normal = path.to_string();
            prop_assert_eq!(ForwardPath::parse_prefix(&normal), Ok((path, normal.len())));
        }
    }

    #[test]
    fn parameter_normalisation_is_idempotent(text in params_ish()) {
        if let Ok(params) = MailParameters::parse(&text) {
            let normal = params.to_string();
            prop_assert_eq!(MailParameters::parse(&normal), Ok(params.clone()));
            prop_assert_eq!(params.to_string(), normal);
        }
        if let Ok(params) = RcptParameters::parse(&text) {
            let normal = params.to_string();
            prop_assert_eq!(RcptParameters::parse(&normal), Ok(params.clone()));
            prop_assert_eq!(params.to_string(), normal);
        }
    }

    #[test]
    fn reply_normalisation_is_idempotent(bytes in reply_ish()) {
        // Tight limits too: writing may lengthen a line, and must never break the limit.
        for (max_line, max_lines) in [(MAX_LINE, MAX_LINES), (16, 3)] {
            if let Ok(Some((reply, _))) = Reply::parse(&bytes, max_line, max_lines) {
                let normal = reply.to_bytes();
                let again = Reply::parse(&normal, max_line, max_lines);
                prop_assert_eq!(again, Ok(Some((reply.clone(), normal.len()))));
                prop_assert_eq!(reply.to_bytes(), normal);
            }
        }
    }
}

/// Inputs that once broke a property, kept so they stay fixed.
#[test]
fn normalisation_regressions() {
    for line in [
        "MAIL FROM:<\"a\"@b> AUTH=\"a\"@b",
        "MAIL FROM:<a@[IPv6:::ffff:0:0]>",
        "RCPT TO:<a@b> ORCPT=utf-8;é",
        "EHLO [010.0.0.1]",
        "NOOP   ",
    ] {
        normalises_stably(line);
    }
}
