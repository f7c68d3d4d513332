//! Target `imap_session`: a whole IMAP session driven by arbitrary client bytes (or
//! canned commands), cut anywhere, with credential checks and mailbox requests
//! answered from the IMAP test store, refused, or answered with the wrong kind, and
//! timer ticks.

use crate::fuzzing::imap_store::TestStore;
use crate::imap::request::MailboxRefusal;
use crate::imap::{
    CredentialOutcome, ImapSession, Input, Limits, MailboxAnswer, Output, SessionConfig, TlsMode,
};
use crate::machine::{Machine, Token};
use crate::time::{Duration, Instant};
use arbitrary::{Arbitrary, Unstructured};

const USER: &str = "alice@sluice.test";

/// Most bytes one input may make the session send: a LIST of the whole test store
/// with STATUS is a few KiB; anything near this bound is a runaway.
const OUTPUT_PER_INPUT: usize = 256 * 1024;

/// One step of a fuzzed IMAP session.
#[derive(Debug, Arbitrary)]
enum Step {
    Bytes(Vec<u8>),
    /// A canned command, cut in two at an arbitrary point (two inputs).
    Line(CannedLine, u8),
    /// The driver answers the oldest pending request.
    Answer(Answer),
    TlsDone {
        ok: bool,
    },
    Wait(u16),
    /// A message arrives in INBOX, and the driver may say so.
    Deliver {
        announce: bool,
    },
    Hangup,
    Shutdown,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum CannedLine {
    Capability,
    StartTls,
    Login,
    AuthPlain,
    AuthContinue,
    PlainResponse,
    Enable,
    Select(bool),
    Examine,
    List,
    ListStatus,
    Status,
    Create(u8),
    Delete(u8),
    Rename(u8, u8),
    Subscribe(u8),
    Append,
    AppendPlus,
    Store(u8, bool),
    Copy(u8),
    Move(u8, bool),
    Expunge,
    UidExpunge(u8),
    Close,
    Unselect,
    Idle,
    Done,
    Noop,
    Logout,
}

impl CannedLine {
    fn text(self) -> String {
        let folder = |n: u8| ["INBOX", "Archive", "Work", "Work/Sub", "Trash"][usize::from(n % 5)];
        match self {
            CannedLine::Capability => "c CAPABILITY".into(),
            CannedLine::StartTls => "t STARTTLS".into(),
            CannedLine::Login => "l LOGIN alice secret".into(),
            CannedLine::AuthPlain => "p AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==".into(),
            CannedLine::AuthContinue => "p AUTHENTICATE PLAIN".into(),
            CannedLine::PlainResponse => "AGFsaWNlAHNlY3JldA==".into(),
            CannedLine::Enable => "e ENABLE CONDSTORE QRESYNC".into(),
            CannedLine::Select(qresync) if qresync => {
                "s SELECT INBOX (QRESYNC (1000 1 1:5))".into()
            }
            CannedLine::Select(_) => "s SELECT INBOX (CONDSTORE)".into(),
            CannedLine::Examine => "x EXAMINE Archive".into(),
            CannedLine::List => "L LIST \"\" *".into(),
            CannedLine::ListStatus => {
                "L LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (STATUS (MESSAGES HIGHESTMODSEQ) CHILDREN SPECIAL-USE)".into()
            }
            CannedLine::Status => "S STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)".into(),
            CannedLine::Create(n) => format!("C CREATE {}", folder(n)),
            CannedLine::Delete(n) => format!("D DELETE {}", folder(n)),
            CannedLine::Rename(a, b) => format!("R RENAME {} {}", folder(a), folder(b)),
            CannedLine::Subscribe(n) => format!("U SUBSCRIBE {}", folder(n)),
            CannedLine::Append => "A APPEND INBOX (\\Seen) {5}\r\nhello".into(),
            CannedLine::AppendPlus => "A APPEND Work {5+}\r\nhello".into(),
            CannedLine::Store(n, silent) => format!(
                "T STORE 1:{} (UNCHANGEDSINCE 3) +FLAGS{} (\\Deleted $X)",
                n % 6,
                if silent { ".SILENT" } else { "" }
            ),
            CannedLine::Copy(n) => format!("Y COPY 1:* {}", folder(n)),
            CannedLine::Move(n, uid) => {
                format!("M {}MOVE 1:2 {}", if uid { "UID " } else { "" }, folder(n))
            }
            CannedLine::Expunge => "X EXPUNGE".into(),
            CannedLine::UidExpunge(n) => format!("X UID EXPUNGE 1:{}", n % 6),
            CannedLine::Close => "z CLOSE".into(),
            CannedLine::Unselect => "u UNSELECT".into(),
            CannedLine::Idle => "i IDLE".into(),
            CannedLine::Done => "DONE".into(),
            CannedLine::Noop => "n NOOP".into(),
            CannedLine::Logout => "o LOGOUT".into(),
        }
    }
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Answer {
    /// Credentials valid; a mailbox request answered by the store.
    Positive,
    /// Credentials invalid; a mailbox request refused as unavailable.
    Negative,
    /// Credentials: a temporary failure; a mailbox request answered with the wrong kind.
    Odd,
}

#[derive(Debug)]
enum Pending {
    Credentials(Token),
    Mailbox(Token, String, crate::imap::MailboxRequest),
}

/// What the checks remember of the dialogue.
#[derive(Debug, Default)]
struct Harness {
    pending: Vec<Pending>,
    /// Everything the client sent, to check that tagged responses carry a sent tag.
    client: Vec<u8>,
    /// Server bytes not yet split into lines.
    partial: Vec<u8>,
    /// Octets of a literal the server announced and has not finished sending.
    literal_left: usize,
    closed: bool,
    /// A BYE was sent; from then on at most LOGOUT's tagged OK may follow, then Close.
    bye: bool,
    after_bye: usize,
    tls_asked: bool,
}

impl Harness {
    fn drain(&mut self, session: &mut ImapSession) {
        let mut sent = 0usize;
        while let Some(output) = session.poll() {
            assert!(!self.closed, "output after Close: {output:?}");
            match output {
                Output::Send(bytes) => {
                    sent += bytes.len();
                    assert!(
                        sent <= OUTPUT_PER_INPUT,
                        "over {OUTPUT_PER_INPUT} octets sent for one input"
                    );
                    self.partial.extend_from_slice(&bytes);
                    self.lines();
                }
                Output::Close => {
                    assert!(
                        self.partial.is_empty() && self.literal_left == 0,
                        "Close after an unterminated line: {:?}",
                        String::from_utf8_lossy(&self.partial)
                    );
                    self.closed = true;
                }
                Output::StartTls => self.tls_asked = true,
                Output::Event(_) => {}
                Output::CheckCredentials { token, .. } => {
                    self.pending.push(Pending::Credentials(token));
                }
                Output::Mailbox {
                    token,
                    user,
                    request,
                } => self.pending.push(Pending::Mailbox(token, user, request)),
            }
        }
    }

    /// Splits complete lines off the server's bytes and checks each.
    fn lines(&mut self) {
        loop {
            if self.literal_left > 0 {
                let taken = self.literal_left.min(self.partial.len());
                self.partial.drain(..taken);
                self.literal_left -= taken;
                if self.literal_left > 0 {
                    return;
                }
            }
            let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") else {
                assert!(
                    !self.partial.contains(&b'\n') && !self.partial[..].ends_with(b"\n"),
                    "a bare LF in a response: {:?}",
                    String::from_utf8_lossy(&self.partial)
                );
                return;
            };
            let line: Vec<u8> = self.partial.drain(..end + 2).take(end).collect();
            assert!(
                !line.contains(&b'\n') && !line.contains(&b'\r'),
                "a bare CR or LF inside a response line: {:?}",
                String::from_utf8_lossy(&line)
            );
            self.check_line(&line);
            self.literal_left = literal_announced(&line).unwrap_or(0);
        }
    }

    fn check_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if self.bye {
            self.after_bye += 1;
            assert!(
                self.after_bye == 1 && text.contains(" OK LOGOUT"),
                "a response after BYE: {text:?}"
            );
        }
        if text.starts_with("* BYE ") {
            self.bye = true;
            return;
        }
        if text.starts_with("* ") || text.starts_with('+') {
            return;
        }
        // A tagged response: its tag must be a word the client sent (a command's first
        // word, followed by a space, or alone on its line when it was all the client said).
        let Some((tag, _)) = text.split_once(' ') else {
            panic!("a response that is neither untagged, a continuation nor tagged: {text:?}");
        };
        let tag = tag.as_bytes();
        assert!(
            self.client
                .windows(tag.len() + 1)
                .any(|w| w.starts_with(tag) && matches!(w[tag.len()], b' ' | b'\r' | b'\n')),
            "a tagged response under a tag the client never sent: {text:?}"
        );
    }
}

/// `{N}` at the end of a line announces N octets of literal data after its CRLF.
fn literal_announced(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// Target `imap_session`. Checks that the session never panics; that every response
/// line ends in CRLF with no bare CR or LF inside, literals it announces are sent in
/// full; that a tagged response carries a tag the client sent; that nothing but
/// LOGOUT's OK follows a BYE and nothing at all follows Close; and that one input
/// never makes it send more than `OUTPUT_PER_INPUT` octets.
pub fn imap_session(data: &[u8]) {
    let mut unstructured = Unstructured::new(data);
    let tls = match unstructured.int_in_range(0..=2u8).unwrap_or(0) {
        0 => TlsMode::StartTlsOffered,
        1 => TlsMode::Implicit,
        _ => TlsMode::Unavailable,
    };
    let mut config = SessionConfig::new("imap.sluice.test", tls);
    config.plaintext_auth = unstructured.arbitrary::<bool>().unwrap_or(true);
    config.limits = Limits {
        line: 1024,
        command: 4096,
        append_limit: 2048,
        pipeline_buffer: 2048,
        mailboxes: 8,
        messages: 16,
        ..Limits::default()
    };
    let mut store = TestStore::with_user(USER);
    for _ in 0..unstructured.int_in_range(0..=3u8).unwrap_or(0) {
        store.deliver(USER, b"Subject: hi\r\n\r\nhello\r\n");
    }
    let mut now = Instant::EPOCH;
    let mut session = ImapSession::new(now, config);
    let mut harness = Harness::default();
    harness.drain(&mut session);

    let mut steps = 0;
    while let Ok(step) = unstructured.arbitrary::<Step>() {
        steps += 1;
        if steps > 400 || harness.closed {
            break;
        }
        let inputs = match step {
            Step::Bytes(bytes) => vec![Input::Bytes(bytes)],
            Step::Line(line, cut) => {
                let mut bytes = line.text().into_bytes();
                bytes.extend_from_slice(b"\r\n");
                let cut = usize::from(cut) % (bytes.len() + 1);
                let rest = bytes.split_off(cut);
                vec![Input::Bytes(bytes), Input::Bytes(rest)]
            }
            Step::Answer(answer) => {
                if harness.pending.is_empty() {
                    continue;
                }
                vec![answer_input(&mut store, harness.pending.remove(0), answer)]
            }
            Step::TlsDone { ok } => {
                if !harness.tls_asked {
                    continue;
                }
                harness.tls_asked = false;
                vec![if ok {
                    Input::TlsEstablished
                } else {
                    Input::TlsFailed
                }]
            }
            Step::Wait(seconds) => {
                now = now + Duration::from_secs(u64::from(seconds));
                vec![Input::Tick]
            }
            Step::Deliver { announce } => {
                store.deliver(USER, b"Subject: new\r\n\r\nx\r\n");
                if !announce {
                    continue;
                }
                vec![Input::MailboxChanged]
            }
            Step::Hangup => vec![Input::PeerClosed],
            Step::Shutdown => vec![Input::Shutdown],
        };
        for input in inputs {
            if harness.closed {
                break;
            }
            if let Input::Bytes(bytes) = &input {
                harness.client.extend_from_slice(bytes);
            }
            session.handle(now, input);
            harness.drain(&mut session);
        }
    }
}

fn answer_input(store: &mut TestStore, pending: Pending, answer: Answer) -> Input {
    match pending {
        Pending::Credentials(token) => Input::CredentialsChecked {
            token,
            outcome: match answer {
                Answer::Positive => CredentialOutcome::Valid {
                    identity: USER.to_owned(),
                },
                Answer::Negative => CredentialOutcome::Invalid,
                Answer::Odd => CredentialOutcome::TemporaryFailure,
            },
        },
        Pending::Mailbox(token, user, request) => Input::MailboxAnswered {
            token,
            answer: match answer {
                Answer::Positive => store.answer(&user, request),
                Answer::Negative => MailboxAnswer::Refused(MailboxRefusal::Unavailable),
                Answer::Odd => MailboxAnswer::Done,
            },
        },
    }
}
