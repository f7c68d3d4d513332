//! The Received header field a server adds to every message it accepts (RFC 5321
//! §4.4, RFC 5322 §3.6.7), with the RFC 3848 / RFC 6531 protocol names and an
//! RFC 5322 date computed from a Unix timestamp, since core has no clock; and the
//! count of Received fields a message already carries, for loop detection.

use crate::smtp::address::{Domain, ForwardPath, Host};
use core::net::IpAddr;

/// Everything the trace field records about one accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedFields {
    /// The client's EHLO/HELO argument.
    pub helo: Host,
    /// Whether the client said EHLO rather than HELO.
    pub esmtp: bool,
    /// Whether the message came over LMTP (RFC 2033), which has names of its own.
    pub lmtp: bool,
    /// The address the connection came from (after any PROXY header).
    pub client_ip: IpAddr,
    /// The client's name from reverse DNS, if the driver found one that resolves back.
    pub client_name: Option<Domain>,
    /// This server's name.
    pub hostname: Domain,
    pub tls: bool,
    pub authenticated: bool,
    /// Whether MAIL carried SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    pub queue_id: String,
    /// The recipient, given only when the message has exactly one: every copy carries
    /// this field, and naming one of several recipients would show it to all the others
    /// (RFC 5321 §7.2 on disclosing recipients).
    pub recipient: Option<ForwardPath>,
    /// When the message was accepted, seconds since 1970-01-01T00:00:00Z.
    pub timestamp: i64,
    /// The zone to write the date in, minutes east of UTC (clamped to ±23:59).
    pub utc_offset_minutes: i16,
}

/// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters before the CRLF.
const FOLD_AT: usize = 78;

/// The `with` protocol name: RFC 3848 (SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA), and
/// RFC 6531 §3.7.3 when SMTPUTF8 was used (UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA).
/// SMTPUTF8 exists only after EHLO, and HELO has no TLS or AUTH variants, so a HELO
/// session is plain `SMTP` whatever the other flags say.
pub fn protocol(esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> &'static str {
    if !esmtp {
        return "SMTP";
    }
    match (smtputf8, tls, authenticated) {
        (false, false, false) => "ESMTP",
        (false, true, false) => "ESMTPS",
        (false, false, true) => "ESMTPA",
        (false, true, true) => "ESMTPSA",
        (true, false, false) => "UTF8SMTP",
        (true, true, false) => "UTF8SMTPS",
        (true, false, true) => "UTF8SMTPA",
        (true, true, true) => "UTF8SMTPSA",
    }
}

/// The `with` protocol name of an LMTP session: RFC 3848 (LMTP, LMTPS, LMTPA,
/// LMTPSA), and RFC 6531 §3.7.3 with SMTPUTF8 (UTF8LMTP, UTF8LMTPS, UTF8LMTPA,
/// UTF8LMTPSA). LMTP has no HELO, so there is no plain variant to fall back to.
pub fn lmtp_protocol(tls: bool, authenticated: bool, smtputf8: bool) -> &'static str {
    match (smtputf8, tls, authenticated) {
        (false, false, false) => "LMTP",
        (false, true, false) => "LMTPS",
        (false, false, true) => "LMTPA",
        (false, true, true) => "LMTPSA",
        (true, false, false) => "UTF8LMTP",
        (true, true, false) => "UTF8LMTPS",
        (true, false, true) => "UTF8LMTPA",
        (true, true, true) => "UTF8LMTPSA",
    }
}

impl ReceivedFields {
    /// The whole header field, folded, ending with CRLF:
    /// `Received: from HELO (NAME [IP]) by HOST with PROTO id ID for <RCPT>; DATE`.
    pub fn to_header(&self) -> String {
        let utf8 = self.smtputf8;
        let mut clauses: Vec<Vec<String>> = Vec::new();
        clauses.push(vec![
            "from".to_owned(),
            sanitize(&self.helo.to_string(), utf8),
        ]);
        let literal = ip_literal(self.client_ip);
        clauses.push(match &self.client_name {
            Some(name) => vec![
                format!("({}", sanitize(name.as_str(), utf8)),
                format!("{literal})"),
            ],
            None => vec![format!("({literal})")],
        });
        clauses.push(vec![
            "by".to_owned(),
            sanitize(self.hostname.as_str(), utf8),
        ]);
        clauses.push(vec![
            "with".to_owned(),
            if self.lmtp {
                lmtp_protocol(self.tls, self.authenticated, self.smtputf8)
            } else {
                protocol(self.esmtp, self.tls, self.authenticated, self.smtputf8)
            }
            .to_owned(),
        ]);
        let queue_id: String = self
            .queue_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .collect();
        if !queue_id.is_empty() {
            clauses.push(vec!["id".to_owned(), queue_id]);
        }
        if let Some(recipient) = &self.recipient {
            clauses.push(vec![
                "for".to_owned(),
                sanitize(&recipient.to_string(), utf8),
            ]);
        }
        // The date follows a semicolon that ends the last clause.
        if let Some(last) = clauses.last_mut().and_then(|clause| clause.last_mut()) {
            last.push(';');
        }
        clauses.push(
            rfc5322_date(self.timestamp, self.utc_offset_minutes)
                .split(' ')
                .map(str::to_owned)
                .collect(),
        );
        fold("Received:", &clauses)
    }
}

/// An address literal as RFC 5321 §4.1.3 writes it; an IPv4-mapped IPv6 address is
/// the IPv4 client it really is.
fn ip_literal(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// Keeps client-influenced text from breaking the header: parsed values cannot hold
/// CR or LF today, but a header injection must not depend on that. Without SMTPUTF8
/// the header must stay ASCII (RFC 6532 applies only to SMTPUTF8 messages).
fn sanitize(text: &str, utf8: bool) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() && c != ' ' || (!utf8 && !c.is_ascii()) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Joins clauses of unbreakable words with spaces, folding (CRLF and a tab) before
/// a clause that does not fit, or within a clause too long for a line of its own.
fn fold(name: &str, clauses: &[Vec<String>]) -> String {
    let mut header = String::from(name);
    let mut line_length = name.len();
    // A folded line never starts empty: the first word after a break or after the
    // field name stays on its line however long it is.
    let mut line_has_words = false;
    for clause in clauses {
        let clause_length =
            clause.iter().map(String::len).sum::<usize>() + clause.len().saturating_sub(1);
        let fits_here = line_length + 1 + clause_length <= FOLD_AT;
        // After a fold the line holds a tab and then the clause.
        let fits_alone = clause_length < FOLD_AT;
        for (position, word) in clause.iter().enumerate() {
            let word_overflows = line_length + 1 + word.len() > FOLD_AT;
            let break_here = word_overflows || position == 0 && !fits_here && fits_alone;
            if break_here && line_has_words {
                header.push_str("\r\n\t");
                line_length = 1;
            } else {
                header.push(' ');
                line_length += 1;
            }
            header.push_str(word);
            line_length += word.len();
            line_has_words = true;
        }
    }
    header.push_str("\r\n");
    header
}

/// How many `Received:` fields the header section of `message` holds: the hop count
/// that loop detection compares with its limit (RFC 5321 §6.3).
///
/// The header section ends at the first empty line (RFC 5322 §2.1), so a body line
/// that starts with `Received:` is not counted. Field names compare case-insensitively
/// and may be followed by white space before the colon (RFC 5322 §4.5.2 obsolete
/// syntax, still seen in the wild); a line starting with white space continues the
/// field before it (§2.2.3) and is never a field of its own. Lines may end in CRLF or a
/// bare LF. The work is one pass over the header section, without allocation.
pub fn count_received(message: &[u8]) -> usize {
    message
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| is_received_field(line))
        .count()
}

/// Whether a header line starts a `Received` field: the name, optional white space, a colon.
fn is_received_field(line: &[u8]) -> bool {
    const NAME: &[u8] = b"received";
    let Some((name, rest)) = line.split_at_checked(NAME.len()) else {
        return false;
    };
    name.eq_ignore_ascii_case(NAME)
        && rest
            .iter()
            .find(|&&byte| byte != b' ' && byte != b'\t')
            .is_some_and(|&byte| byte == b':')
}

/// The earliest and latest instants RFC 5322 can write with a four-digit year:
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const FIRST_TIMESTAMP: i64 = -62_135_596_800;
const LAST_TIMESTAMP: i64 = 253_402_300_799;
const SECONDS_PER_DAY: i64 = 86_400;
/// The Gregorian calendar repeats every 400 years, which are this many days.
const DAYS_PER_400_YEARS: i64 = 146_097;
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn month_lengths(year: i64) -> [i64; 12] {
    let february = if is_leap_year(year) { 29 } else { 28 };
    [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
}

/// A calendar date: (year, month 1–12, day 1–31), from days since 1970-01-01.
fn civil_date(days_since_epoch: i64) -> (i64, usize, i64) {
    // Whole 400-year cycles first, so that the year walk below is at most 400 steps.
    let mut year = 1970 + days_since_epoch.div_euclid(DAYS_PER_400_YEARS) * 400;
    let mut days = days_since_epoch.rem_euclid(DAYS_PER_400_YEARS);
    loop {
        let length = if is_leap_year(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let mut month = 0;
    for length in month_lengths(year) {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    (year, month + 1, days + 1)
}

/// An RFC 5322 §3.3 date-time, `Tue, 14 Nov 2023 22:13:20 +0000`, for `timestamp`
/// seen in the zone `utc_offset_minutes` east of UTC. Out-of-range inputs are clamped
/// to what the format can express rather than rejected: a trace field must be written.
pub fn rfc5322_date(timestamp: i64, utc_offset_minutes: i16) -> String {
    let offset = i64::from(utc_offset_minutes.clamp(-1439, 1439));
    let local = timestamp
        .saturating_add(offset * 60)
        .clamp(FIRST_TIMESTAMP, LAST_TIMESTAMP);
    let days = local.div_euclid(SECONDS_PER_DAY);
    let seconds = local.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_date(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS
        .get(usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Sun");
    let month_name = MONTHS.get(month - 1).copied().unwrap_or("Jan");
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{weekday}, {day} {month_name} {year:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60,
        offset.abs() / 60,
        offset.abs() % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::Mailbox;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    fn fields() -> ReceivedFields {
        ReceivedFields {
            helo: Host::parse("client.example.org").unwrap(),
            esmtp: true,
            lmtp: false,
            client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            client_name: Some(Domain::parse("mail.example.org").unwrap()),
            hostname: Domain::parse("mx.sluice.test").unwrap(),
            tls: true,
            authenticated: false,
            smtputf8: false,
            queue_id: "Q1A2B3".to_owned(),
            recipient: Some(ForwardPath::Mailbox(
                Mailbox::parse("bob@sluice.test").unwrap(),
            )),
            timestamp: 1_700_000_000,
            utc_offset_minutes: 0,
        }
    }

    fn unfold(header: &str) -> String {
        header.replace("\r\n\t", " ")
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc5322_date(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000, 0),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(rfc5322_date(-1, 0), "Wed, 31 Dec 1969 23:59:59 +0000");
        assert_eq!(
            rfc5322_date(2_147_483_648, 0),
            "Tue, 19 Jan 2038 03:14:08 +0000"
        );
    }

    #[test]
    fn leap_years() {
        // 2000 is a leap year (divisible by 400), 1900 and 2100 are not.
        assert_eq!(
            rfc5322_date(951_782_400, 0),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(951_868_800, 0),
            "Wed, 1 Mar 2000 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(1_709_164_800, 0),
            "Thu, 29 Feb 2024 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(-2_203_891_200, 0),
            "Thu, 1 Mar 1900 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(4_107_542_400, 0),
            "Mon, 1 Mar 2100 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(1_735_603_200, 0),
            "Tue, 31 Dec 2024 00:00:00 +0000"
        );
    }

    #[test]
    fn zones_shift_the_local_time() {
        assert_eq!(rfc5322_date(0, 90), "Thu, 1 Jan 1970 01:30:00 +0130");
        assert_eq!(rfc5322_date(0, -480), "Wed, 31 Dec 1969 16:00:00 -0800");
        assert_eq!(rfc5322_date(0, i16::MAX), "Thu, 1 Jan 1970 23:59:00 +2359");
    }

    #[test]
    fn extreme_timestamps_are_clamped() {
        assert_eq!(rfc5322_date(i64::MAX, 0), "Fri, 31 Dec 9999 23:59:59 +0000");
        assert_eq!(rfc5322_date(i64::MIN, 0), "Mon, 1 Jan 0001 00:00:00 +0000");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(protocol(false, true, true, true), "SMTP");
        assert_eq!(protocol(true, false, false, false), "ESMTP");
        assert_eq!(protocol(true, true, false, false), "ESMTPS");
        assert_eq!(protocol(true, false, true, false), "ESMTPA");
        assert_eq!(protocol(true, true, true, false), "ESMTPSA");
        assert_eq!(protocol(true, false, false, true), "UTF8SMTP");
        assert_eq!(protocol(true, true, false, true), "UTF8SMTPS");
        assert_eq!(protocol(true, false, true, true), "UTF8SMTPA");
        assert_eq!(protocol(true, true, true, true), "UTF8SMTPSA");
    }

    #[test]
    fn lmtp_sessions_are_named_lmtp() {
        assert_eq!(lmtp_protocol(false, false, false), "LMTP");
        assert_eq!(lmtp_protocol(true, false, false), "LMTPS");
        assert_eq!(lmtp_protocol(false, true, false), "LMTPA");
        assert_eq!(lmtp_protocol(true, true, false), "LMTPSA");
        assert_eq!(lmtp_protocol(false, false, true), "UTF8LMTP");
        assert_eq!(lmtp_protocol(true, true, true), "UTF8LMTPSA");
        let mut lmtp = fields();
        lmtp.lmtp = true;
        lmtp.tls = false;
        assert!(lmtp.to_header().contains(" with LMTP id Q1A2B3 "));
    }

    #[test]
    fn whole_header() {
        let header = fields().to_header();
        assert_eq!(
            header,
            "Received: from client.example.org (mail.example.org [192.0.2.1])\r\n\
             \tby mx.sluice.test with ESMTPS id Q1A2B3 for <bob@sluice.test>;\r\n\
             \tTue, 14 Nov 2023 22:13:20 +0000\r\n"
        );
    }

    #[test]
    fn header_without_name_recipient_or_tls() {
        let mut plain = fields();
        plain.client_name = None;
        plain.recipient = None;
        plain.tls = false;
        plain.esmtp = false;
        plain.client_ip = IpAddr::V6("2001:db8::25".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            unfold(&plain.to_header()),
            "Received: from client.example.org ([IPv6:2001:db8::25]) by mx.sluice.test with SMTP id Q1A2B3; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        );
        plain.client_ip = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped());
        assert!(plain.to_header().contains("([198.51.100.7])"));
    }

    #[test]
    fn client_text_cannot_inject_lines() {
        let mut hostile = fields();
        hostile.queue_id = "Q1\r\nBcc: x@y\r\n".to_owned();
        hostile.helo = Host::parse("xn--caf-dma.example").unwrap();
        let header = hostile.to_header();
        assert!(header.contains("id Q1Bccxy"));
        assert_eq!(
            header.matches("\r\n").count(),
            header.matches("\r\n\t").count() + 1
        );
        assert_eq!(sanitize("a\r\nb\tc\u{85}d", true), "a??b?c?d");
        assert_eq!(sanitize("caf\u{e9}", false), "caf?");
        assert_eq!(sanitize("caf\u{e9}", true), "caf\u{e9}");
    }

    #[test]
    fn an_empty_queue_id_leaves_out_the_id_clause() {
        let mut anonymous = fields();
        anonymous.queue_id = "\r\n".to_owned();
        assert!(!unfold(&anonymous.to_header()).contains(" id "));
    }

    #[test]
    fn long_names_fold_within_bounds() {
        let long_label = "a".repeat(63);
        let long_domain = format!("{long_label}.{long_label}.{long_label}.example");
        let mut long = fields();
        long.helo = Host::parse(&long_domain).unwrap();
        long.client_name = Some(Domain::parse(&long_domain).unwrap());
        let header = long.to_header();
        assert!(header.ends_with("\r\n"));
        for line in header.trim_end_matches("\r\n").split("\r\n") {
            // A single word longer than a line cannot be folded; everything else fits.
            assert!(
                line.len() <= FOLD_AT || !line.trim_start().contains(' '),
                "{line:?}"
            );
            assert!(!line.trim().is_empty());
        }
    }

    #[test]
    fn counts_received_fields_of_the_header_section() {
        let message = b"Received: from a by b; Tue, 14 Nov 2023 22:13:20 +0000\r\n\
            Subject: hello\r\n\
            RECEIVED: from c\r\n\
            \tby d; Tue, 14 Nov 2023 22:13:20 +0000\r\n\
            received : from e by f\r\n\
            X-Received: not a trace field\r\n\
            Received-SPF: pass\r\n\
            \r\n\
            Received: from a body line\r\n";
        assert_eq!(count_received(message), 3);
    }

    #[test]
    fn folded_continuations_are_not_fields() {
        let message = b"Received: from a\r\n Received: by b\r\n\tReceived: x\r\n\r\n";
        assert_eq!(count_received(message), 1);
    }

    #[test]
    fn bare_line_feeds_and_missing_bodies() {
        assert_eq!(
            count_received(b"Received: a\nReceived: b\n\nReceived: c\n"),
            2
        );
        assert_eq!(count_received(b"Received: a\r\nReceived: b"), 2);
        assert_eq!(count_received(b""), 0);
        assert_eq!(count_received(b"\r\nReceived: a\r\n"), 0);
        assert_eq!(count_received(b"Received"), 0);
        assert_eq!(count_received(b"Received x: a\r\n"), 0);
        assert_eq!(count_received(b"Receivedx: a\r\n"), 0);
    }

    /// Days since 1970-01-01 of a calendar date, by counting: the slow, obvious inverse.
    fn days_from_civil(year: i64, month: usize, day: i64) -> i64 {
        let mut days = 0;
        if year >= 1970 {
            for y in 1970..year {
                days += if is_leap_year(y) { 366 } else { 365 };
            }
        } else {
            for y in year..1970 {
                days -= if is_leap_year(y) { 366 } else { 365 };
            }
        }
        days + month_lengths(year)[..month - 1].iter().sum::<i64>() + day - 1
    }

    proptest! {
        #[test]
        fn dates_invert(days in -800_000i64..2_900_000) {
            let (year, month, day) = civil_date(days);
            prop_assert!((1..=12).contains(&month));
            prop_assert!(day >= 1 && day <= month_lengths(year)[month - 1]);
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }

        #[test]
        fn received_counts_only_header_lines(
            header in proptest::collection::vec(
                prop_oneof![
                    Just("Received: from x".to_owned()),
                    Just("received:y".to_owned()),
                    Just(" Received: folded".to_owned()),
                    "[A-Za-z-]{1,12}: [ -~]{0,20}",
                ],
                0..20,
            ),
            body in proptest::collection::vec("(Received: )?[ -~]{0,20}", 0..10),
            crlf in any::<bool>(),
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            let expected = header
                .iter()
                .filter(|line| line.to_ascii_lowercase().starts_with("received:"))
                .count();
            let mut message = String::new();
            for line in header.iter().chain([&String::new()]).chain(&body) {
                message.push_str(line);
                message.push_str(newline);
            }
            prop_assert_eq!(count_received(message.as_bytes()), expected);
        }

        #[test]
        fn headers_are_well_formed(
            timestamp in any::<i64>(),
            offset in any::<i16>(),
            queue_id in ".{0,40}",
            flags in any::<[bool; 4]>(),
        ) {
            let mut any = fields();
            any.timestamp = timestamp;
            any.utc_offset_minutes = offset;
            any.queue_id = queue_id;
            [any.esmtp, any.tls, any.authenticated, any.smtputf8] = flags;
            let header = any.to_header();
            prop_assert!(header.starts_with("Received: from "));
            prop_assert!(header.ends_with("\r\n"));
            prop_assert!(header.is_ascii());
            let body = header.trim_end_matches("\r\n");
            for line in body.split("\r\n") {
                prop_assert!(line.len() <= FOLD_AT, "{:?}", line);
                prop_assert!(!line.contains('\r') && !line.contains('\n'));
            }
        }
    }
}
