//! The vector file format: a header (title, `proves:`, listener, settings) and a
//! dialogue of steps, parsed with errors that name the file and line.
//! spec/README.md is the reference for the format; this module is its grammar.

use crate::escape::{EscapeError, unescape};
use sluice_core::smtp::server::{ConnectionRefusal, Limits, TlsMode};
use sluice_core::time::Duration;
use std::fmt;
use std::path::{Path, PathBuf};

/// One conformance vector: a dialogue with the server session and what it proves.
#[derive(Clone, Debug)]
pub struct Vector {
    pub path: PathBuf,
    /// The first comment line: what the dialogue shows, in one sentence.
    pub title: String,
    /// Further comment lines before the first step.
    pub notes: Vec<String>,
    /// The requirements proved, e.g. `RFC 5321 §4.5.2`.
    pub proves: Vec<String>,
    pub listener: Listener,
    pub tls: TlsMode,
    pub auth_requires_tls: bool,
    pub limits: Limits,
    /// The POP3 session's limits (`set: limits.FIELD` sets a field of both structs
    /// where both have it).
    pub pop3_limits: sluice_core::pop3::Limits,
    /// POP3's `Pop3Config::allow_plaintext_auth` (default false).
    pub allow_plaintext_auth: bool,
    /// POP3's maildrop fixture, in order (`message: UID "ESCAPED"`): what the driver
    /// lists when it opens the maildrop and what it reads for RETR and TOP.
    pub messages: Vec<FixtureMessage>,
    /// IMAP's limits (`set: imap.FIELD = VALUE`).
    pub imap_limits: sluice_core::imap::Limits,
    /// IMAP's store fixture, in order (`folder:` and `deliver:` lines).
    pub imap_fixture: Vec<ImapFixture>,
    /// IMAP: the vector answers each mailbox request itself with `D: mailbox ...`
    /// (`set: store = manual`); by default the runner answers from the fixture at once.
    pub imap_manual_store: bool,
    /// `set: admission = …`: the connection is refused before its greeting.
    pub admission: Option<ConnectionRefusal>,
    /// The `set:` lines as written, for the transcript header.
    pub settings: Vec<String>,
    pub split: Split,
    /// Set when the session is known to disagree with this vector (and the vector is
    /// right): the reason, naming the rule the session breaks. The test suite then
    /// expects the replay to fail, and fails once it passes, so the mark is removed.
    pub known_discrepancy: Option<String>,
    /// `live: skip REASON`: the vector cannot be replayed against a live server
    /// (`sluice-conform --connect`) for a reason its steps do not show.
    pub live_skip: Option<String>,
    pub steps: Vec<Step>,
}

/// One message of a POP3 vector's maildrop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureMessage {
    pub uid: String,
    /// The stored bytes (bare LF allowed: the session normalises them).
    pub bytes: Vec<u8>,
}

impl FixtureMessage {
    /// Its size as a POP3 client receives it: CRLF line ends, a last line end added.
    pub fn size(&self) -> u64 {
        let mut size = 0u64;
        let mut previous = None;
        for &byte in &self.bytes {
            size += if byte == b'\n' && previous != Some(b'\r') {
                2
            } else {
                1
            };
            previous = Some(byte);
        }
        match previous {
            None | Some(b'\n') => size,
            Some(b'\r') => size + 1,
            Some(_) => size + 2,
        }
    }
}

/// One line of an IMAP vector's store fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImapFixture {
    /// `folder: NAME`: a folder created before the dialogue (INBOX and the
    /// special-use folders Sent, Drafts, Junk, Trash and Archive always exist).
    Folder { name: String },
    /// `deliver: FOLDER [FLAG ...] "ESCAPED"`: a message delivered to INBOX, moved
    /// to FOLDER, with these flags.
    Deliver {
        folder: String,
        flags: Vec<String>,
        bytes: Vec<u8>,
    },
}

/// Which listener the session runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Port 25.
    Mx,
    /// Port 587: plaintext first, STARTTLS offered.
    Submission,
    /// Port 465: TLS from the first byte (RFC 8314).
    Submissions,
    /// LMTP (RFC 2033): final delivery, no TLS.
    Lmtp,
    /// POP3 on port 110: the POP3 session, plaintext first, STLS offered.
    Pop3,
    /// POP3S on port 995: the POP3 session, TLS from the first byte (RFC 8314).
    Pop3s,
    /// IMAP on port 143: the IMAP session, plaintext first, STARTTLS offered.
    Imap,
    /// IMAPS on port 993: the IMAP session, TLS from the first byte (RFC 8314).
    Imaps,
}

impl Listener {
    /// Whether the vector is a dialogue with the POP3 session rather than SMTP's.
    pub fn is_pop3(self) -> bool {
        matches!(self, Listener::Pop3 | Listener::Pop3s)
    }

    /// Whether the vector is a dialogue with the IMAP session.
    pub fn is_imap(self) -> bool {
        matches!(self, Listener::Imap | Listener::Imaps)
    }
}

/// How client bytes are cut into `Input::Bytes` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// As written; the test suite also replays the vector byte at a time, since a
    /// session must not care how TCP cut the stream.
    Any,
    /// As written only: the chunk boundaries are the point (STARTTLS injection,
    /// pipelining bounds).
    AsWritten,
    /// Always one byte per input.
    Bytes,
}

/// How a replay feeds the client's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// One input per chunk, as the vector wrote it.
    AsWritten,
    /// One input per byte.
    ByteAtATime,
}

/// One line of the dialogue, with its line number for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Client bytes (`C:`, `C+:`, `R:`, `R+:`). `flush` is false for the `+` forms:
    /// the bytes wait to go out with the next line, as one input.
    Send { bytes: Vec<u8>, flush: bool },
    /// `S:`: what the session must have sent by now.
    Expect(Expect),
    /// `D:`: the driver reports something.
    Driver(DriverInput),
    /// `T:`: virtual time passes; the session is ticked at each deadline on the way.
    Advance(Duration),
    /// `E:`: an assertion on what the session asked or reported.
    Check(Check),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The next reply line.
    Reply(ReplyPattern),
    /// The session asked for the TLS handshake.
    StartTls,
    /// The session closed the connection.
    Close,
    /// The session has sent nothing it was not already expected to send.
    Nothing,
    /// POP3: the next line sent, exactly as escaped (or a glob when it holds `*`).
    Line(String),
}

/// `CODE[-] [ENHANCED] [TEXT]`: the code and its separator exactly, the enhanced
/// status code exactly when given, and the text contained (or matched as a glob
/// when it holds `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyPattern {
    pub code: u16,
    /// `250-` (more lines follow) rather than `250 ` (the last line).
    pub continued: bool,
    pub status: Option<String>,
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverInput {
    /// Answers the oldest open recipient check.
    Recipient(Answer<RecipientAnswer>),
    /// Answers the oldest open credential check.
    Credentials(Answer<CredentialAnswer>),
    /// Answers the oldest open store request.
    Store(Answer<StoreAnswer>),
    /// POP3: answers the oldest open maildrop request.
    Maildrop(Answer<MaildropAnswer>),
    /// POP3: answers the oldest open message read, from the fixture.
    Read(Answer<ReadAnswer>),
    /// POP3: answers the oldest open commit of deletions.
    Commit(Answer<CommitAnswer>),
    TlsEstablished,
    TlsFailed,
    PeerClosed,
    /// The server begins shutting down (`Input::Shutdown`).
    Shutdown,
    /// IMAP: answers the oldest open mailbox request.
    Mailbox(Answer<MailboxAnswerKind>),
    /// IMAP: the driver tells the session its selected mailbox changed.
    MailboxChanged,
    /// IMAP: a message arrives in the store (another session's doing), unannounced.
    Deliver {
        folder: String,
        bytes: Vec<u8>,
    },
}

/// `D: mailbox answer|unavailable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailboxAnswerKind {
    /// From the store fixture, as a real store would.
    Answer,
    /// Refused as unavailable (the store could not answer now).
    Unavailable,
}

/// An answer, or a deliberate silence (to let a deadline pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    Give(T),
    Ignore,
}

/// `D: maildrop open|locked|tempfail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaildropAnswer {
    Open,
    Locked,
    TempFail,
}

/// `D: read [chunks N]` or `D: read failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAnswer {
    /// The fixture message in chunks of this many bytes (the whole of it at once
    /// when `None`), then the end.
    Chunks(Option<usize>),
    Failed,
}

/// `D: commit done|failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitAnswer {
    Done,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientAnswer {
    Accept,
    Unknown,
    RelayDenied,
    TempFail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialAnswer {
    Valid { identity: String },
    Invalid,
    TempFail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAnswer {
    Stored {
        queue_id: String,
    },
    Failed,
    /// LMTP's answer recipient by recipient (`StoreOutcome::PerRecipient`).
    PerRecipient {
        queue_id: String,
        outcomes: Vec<RecipientStoreAnswer>,
    },
}

/// What became of one recipient's copy, as `D: per-recipient` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientStoreAnswer {
    Stored,
    TempFail,
    MailboxFull,
    UnknownUser,
}

impl RecipientStoreAnswer {
    fn parse(word: &str) -> Option<RecipientStoreAnswer> {
        match word {
            "stored" => Some(RecipientStoreAnswer::Stored),
            "tempfail" => Some(RecipientStoreAnswer::TempFail),
            "mailbox-full" => Some(RecipientStoreAnswer::MailboxFull),
            "unknown-user" => Some(RecipientStoreAnswer::UnknownUser),
            _ => None,
        }
    }
}

impl fmt::Display for RecipientStoreAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecipientStoreAnswer::Stored => "stored",
            RecipientStoreAnswer::TempFail => "tempfail",
            RecipientStoreAnswer::MailboxFull => "mailbox-full",
            RecipientStoreAnswer::UnknownUser => "unknown-user",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// An event reported after the previously matched one (contains, or glob with `*`).
    Event(String),
    /// A field of the latest message handed to the store, compared exactly.
    Message {
        field: MessageField,
        expected: String,
    },
    /// The latest credential check: `MECH user=U password=P [authzid=A]`, exactly.
    Credentials(String),
    /// The latest recipient check: `<rcpt> from=<sender> auth=ID|none`, exactly.
    Recipient(String),
    /// POP3: the user of the latest maildrop request, exactly.
    Maildrop(String),
    /// POP3: the unique ids of the latest commit of deletions, space-separated.
    Commit(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageField {
    /// The exact bytes (the expected value is an escaped, quoted string).
    Data,
    /// `<sender>` then the MAIL parameters in normalised form.
    From,
    /// Each recipient with its parameters, separated by `, `.
    To,
    Helo,
    Esmtp,
    Tls,
    /// The authenticated identity, or `none`.
    Auth,
}

/// A malformed vector file: the file, the line and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct ParseError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Why a directory of vectors could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("no .vector files in {}", .0.display())]
    Empty(PathBuf),
}

impl Vector {
    /// The file name, which is the vector's name.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Parses a vector from its text; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Vector, ParseError> {
        Parser::new(path).parse(text)
    }
}

/// Loads every `*.vector` file under `dir` (recursively), in file-name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Vector>, LoadError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(Vector::parse(&path, &text)?)
        })
        .collect()
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "vector") {
            files.push(path);
        }
    }
    Ok(())
}

struct Parser<'a> {
    path: &'a Path,
    line: usize,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path) -> Self {
        Parser { path, line: 0 }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            path: self.path.to_path_buf(),
            line: self.line,
            message: message.into(),
        }
    }

    fn parse(mut self, text: &str) -> Result<Vector, ParseError> {
        let mut vector = Vector {
            path: self.path.to_path_buf(),
            title: String::new(),
            notes: Vec::new(),
            proves: Vec::new(),
            listener: Listener::Mx,
            tls: TlsMode::StartTlsOffered,
            auth_requires_tls: true,
            limits: Limits::default(),
            pop3_limits: sluice_core::pop3::Limits::default(),
            allow_plaintext_auth: false,
            messages: Vec::new(),
            imap_limits: sluice_core::imap::Limits::default(),
            imap_fixture: Vec::new(),
            imap_manual_store: false,
            settings: Vec::new(),
            split: Split::Any,
            known_discrepancy: None,
            live_skip: None,
            admission: None,
            steps: Vec::new(),
        };
        let mut listener_seen = false;
        let mut tls_override = None;
        // Whether a `C+:`/`R+:` is waiting for the line that sends it.
        let mut open_continuation: Option<usize> = None;

        for (index, raw) in text.lines().enumerate() {
            self.line = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if vector.steps.is_empty() {
                    let comment = comment.trim().to_string();
                    if vector.title.is_empty() {
                        vector.title = comment;
                    } else {
                        vector.notes.push(comment);
                    }
                }
                continue;
            }
            let (key, value) = split_directive(line).ok_or_else(|| {
                self.error(format!(
                    "expected `KEY: value` or a `#` comment, found `{line}`"
                ))
            })?;

            let is_send = matches!(key, "C" | "C+" | "R" | "R+");
            if open_continuation.is_some() && !is_send {
                return Err(self.error(format!(
                    "`{key}:` follows an unsent `C+:`/`R+:` line; end the chunk with `C:` or `R:`"
                )));
            }

            let header = matches!(
                key,
                "proves"
                    | "listener"
                    | "set"
                    | "split"
                    | "known-discrepancy"
                    | "message"
                    | "folder"
                    | "deliver"
            );
            if header && !vector.steps.is_empty() {
                return Err(self.error(format!(
                    "`{key}:` belongs in the header, before the dialogue"
                )));
            }

            match key {
                "proves" => {
                    if value.is_empty() {
                        return Err(
                            self.error("`proves:` needs the requirement, e.g. `RFC 5321 §4.5.2`")
                        );
                    }
                    vector.proves.push(value.to_string());
                }
                "listener" => {
                    if listener_seen {
                        return Err(self.error("`listener:` given twice"));
                    }
                    listener_seen = true;
                    vector.listener = match value {
                        "mx" => Listener::Mx,
                        "submission" => Listener::Submission,
                        "submissions" => Listener::Submissions,
                        "lmtp" => Listener::Lmtp,
                        "pop3" => Listener::Pop3,
                        "pop3s" => Listener::Pop3s,
                        "imap" => Listener::Imap,
                        "imaps" => Listener::Imaps,
                        other => {
                            return Err(self.error(format!(
                                "unknown listener `{other}` (expected mx, submission, submissions, lmtp, pop3, pop3s, imap or imaps)"
                            )));
                        }
                    };
                }
                "message" => {
                    let (uid, quoted) = value
                        .split_once(' ')
                        .ok_or_else(|| self.error("`message:` takes `UID \"ESCAPED BYTES\"`"))?;
                    let inner = quoted
                        .strip_prefix('"')
                        .and_then(|rest| rest.strip_suffix('"'))
                        .ok_or_else(|| {
                            self.error("`message:` bytes are a quoted, escaped string")
                        })?;
                    let bytes = unescape(inner).map_err(|e| self.error(e.to_string()))?;
                    vector.messages.push(FixtureMessage {
                        uid: uid.to_string(),
                        bytes,
                    });
                }
                "folder" => {
                    if value.is_empty() || value.contains(char::is_whitespace) {
                        return Err(self.error("`folder:` takes one folder name"));
                    }
                    vector.imap_fixture.push(ImapFixture::Folder {
                        name: value.to_string(),
                    });
                }
                "deliver" => {
                    let (folder, flags, bytes) = self.parse_deliver(value)?;
                    vector.imap_fixture.push(ImapFixture::Deliver {
                        folder,
                        flags,
                        bytes,
                    });
                }
                "set" => {
                    self.apply_setting(value, &mut vector, &mut tls_override)?;
                    vector.settings.push(value.to_string());
                }
                "live" => {
                    let reason = value.strip_prefix("skip").map(str::trim);
                    match reason {
                        Some(reason) if !reason.is_empty() => {
                            vector.live_skip = Some(reason.to_string());
                        }
                        _ => {
                            return Err(self.error(
                                "expected `live: skip REASON` (why a live server cannot run it)",
                            ));
                        }
                    }
                }
                "known-discrepancy" => {
                    if value.is_empty() {
                        return Err(self
                            .error("`known-discrepancy:` needs the reason the session is wrong"));
                    }
                    vector.known_discrepancy = Some(value.to_string());
                }
                "split" => {
                    vector.split = match value {
                        "any" => Split::Any,
                        "as-written" => Split::AsWritten,
                        "bytes" => Split::Bytes,
                        other => {
                            return Err(self.error(format!(
                                "unknown split `{other}` (expected any, as-written or bytes)"
                            )));
                        }
                    };
                }
                "C" | "C+" => {
                    let mut bytes = value.as_bytes().to_vec();
                    bytes.extend_from_slice(b"\r\n");
                    let flush = key == "C";
                    open_continuation = if flush { None } else { Some(self.line) };
                    self.push(&mut vector, Action::Send { bytes, flush });
                }
                "R" | "R+" => {
                    let bytes =
                        unescape(value).map_err(|e: EscapeError| self.error(e.to_string()))?;
                    if bytes.is_empty() {
                        return Err(self.error("`R:` needs at least one byte"));
                    }
                    let flush = key == "R";
                    open_continuation = if flush { None } else { Some(self.line) };
                    self.push(&mut vector, Action::Send { bytes, flush });
                }
                "S" if self.line_protocol(&vector, listener_seen) => {
                    let expect = match value {
                        "<starttls>" => Expect::StartTls,
                        "<close>" => Expect::Close,
                        "<nothing>" => Expect::Nothing,
                        line => {
                            unescape(line).map_err(|e| self.error(e.to_string()))?;
                            Expect::Line(line.to_string())
                        }
                    };
                    self.push(&mut vector, Action::Expect(expect));
                }
                "S" => {
                    let expect = self.parse_expect(value)?;
                    self.push(&mut vector, Action::Expect(expect));
                }
                "D" => {
                    let input = self.parse_driver(value)?;
                    self.push(&mut vector, Action::Driver(input));
                }
                "T" => {
                    let amount = value.strip_prefix('+').ok_or_else(|| {
                        self.error(
                            "`T:` takes a positive advance such as `+5min`, `+30s` or `+4min59s`",
                        )
                    })?;
                    let duration = parse_duration(amount).map_err(|message| self.error(message))?;
                    self.push(&mut vector, Action::Advance(duration));
                }
                "E" => {
                    let check = self.parse_check(value)?;
                    self.push(&mut vector, Action::Check(check));
                }
                other => {
                    return Err(self.error(format!(
                        "unknown directive `{other}:` (known: proves listener set split known-discrepancy message C C+ R R+ S D T E)"
                    )));
                }
            }
        }

        if let Some(line) = open_continuation {
            self.line = line;
            return Err(self
                .error("the file ends after a `C+:`/`R+:` line; end the chunk with `C:` or `R:`"));
        }
        self.line = 1;
        if vector.title.is_empty() {
            return Err(self.error("a vector starts with a `#` comment saying what it shows"));
        }
        if vector.proves.is_empty() {
            return Err(
                self.error("a vector needs at least one `proves:` line naming the requirement")
            );
        }
        if vector.steps.is_empty() {
            return Err(self.error("a vector needs a dialogue (S:, C:, ... lines)"));
        }
        if !listener_seen && self.in_pop3_folder() {
            vector.listener = Listener::Pop3;
        }
        if !listener_seen && self.in_imap_folder() {
            vector.listener = Listener::Imap;
        }
        vector.tls = match (tls_override, vector.listener) {
            (Some(tls), _) => tls,
            (None, Listener::Submissions | Listener::Pop3s | Listener::Imaps) => TlsMode::Implicit,
            (None, Listener::Mx | Listener::Submission | Listener::Pop3 | Listener::Imap) => {
                TlsMode::StartTlsOffered
            }
            // LMTP runs on a trusted network or loopback, without TLS.
            (None, Listener::Lmtp) => TlsMode::Unavailable,
        };
        Ok(vector)
    }

    /// Vectors under a `pop3` folder are POP3 dialogues unless they say otherwise.
    fn in_pop3_folder(&self) -> bool {
        self.path
            .parent()
            .is_some_and(|folder| folder.ends_with("pop3"))
    }

    /// Vectors under an `imap` folder are IMAP dialogues unless they say otherwise.
    fn in_imap_folder(&self) -> bool {
        self.path
            .parent()
            .is_some_and(|folder| folder.ends_with("imap"))
    }

    /// Whether the dialogue being parsed is POP3 or IMAP, whose `S:` lines are whole
    /// lines rather than SMTP replies: by its `listener:`, else its folder.
    fn line_protocol(&self, vector: &Vector, listener_seen: bool) -> bool {
        if listener_seen {
            vector.listener.is_pop3() || vector.listener.is_imap()
        } else {
            self.in_pop3_folder() || self.in_imap_folder()
        }
    }

    /// `FOLDER [FLAG ...] "ESCAPED"`.
    fn parse_deliver(&self, value: &str) -> Result<(String, Vec<String>, Vec<u8>), ParseError> {
        let usage = || self.error("`deliver:` takes `FOLDER [FLAG ...] \"ESCAPED BYTES\"`");
        let (words, quoted) = value.split_once('"').ok_or_else(usage)?;
        let inner = quoted.strip_suffix('"').ok_or_else(usage)?;
        let mut words = words.split_whitespace();
        let folder = words.next().ok_or_else(usage)?.to_string();
        let flags = words.map(str::to_string).collect();
        let bytes = unescape(inner).map_err(|e| self.error(e.to_string()))?;
        Ok((folder, flags, bytes))
    }

    fn push(&self, vector: &mut Vector, action: Action) {
        vector.steps.push(Step {
            line: self.line,
            action,
        });
    }

    fn apply_setting(
        &self,
        setting: &str,
        vector: &mut Vector,
        tls: &mut Option<TlsMode>,
    ) -> Result<(), ParseError> {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| self.error(format!("`set:` takes `key = value`, found `{setting}`")))?;
        let (key, value) = (key.trim(), value.trim());
        let limits = &mut vector.limits;
        match key {
            "admission" => {
                vector.admission = match value {
                    "accept" => None,
                    "too-many-connections" => Some(ConnectionRefusal::TooManyConnections),
                    "shutting-down" => Some(ConnectionRefusal::ShuttingDown),
                    other => {
                        return Err(self.error(format!(
                            "unknown admission `{other}` (expected accept, too-many-connections or shutting-down)"
                        )));
                    }
                }
            }
            "tls" => {
                *tls = Some(match value {
                    "unavailable" => TlsMode::Unavailable,
                    "starttls" => TlsMode::StartTlsOffered,
                    "implicit" => TlsMode::Implicit,
                    other => {
                        return Err(self.error(format!(
                            "unknown tls `{other}` (expected unavailable, starttls or implicit)"
                        )));
                    }
                })
            }
            "auth_requires_tls" => {
                vector.auth_requires_tls = match value {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(self
                            .error(format!("auth_requires_tls is true or false, not `{other}`")));
                    }
                }
            }
            "allow_plaintext_auth" => {
                vector.allow_plaintext_auth = match value {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(self.error(format!(
                            "allow_plaintext_auth is true or false, not `{other}`"
                        )));
                    }
                }
            }
            // Fields both protocols' limits have set both.
            "limits.command_line" => {
                limits.command_line = self.number(key, value)?;
                vector.pop3_limits.command_line = limits.command_line;
            }
            "limits.bad_commands" => {
                limits.bad_commands = self.number(key, value)?;
                vector.pop3_limits.bad_commands = limits.bad_commands;
            }
            "limits.auth_failures" => {
                limits.auth_failures = self.number(key, value)?;
                vector.pop3_limits.auth_failures = limits.auth_failures;
            }
            "limits.pipeline_buffer" => {
                limits.pipeline_buffer = self.number(key, value)?;
                vector.pop3_limits.pipeline_buffer = limits.pipeline_buffer;
            }
            "limits.auth_line" => vector.pop3_limits.auth_line = self.number(key, value)?,
            "limits.maildrop_messages" => {
                vector.pop3_limits.maildrop_messages = self.number(key, value)?;
            }
            "limits.idle_timeout" => vector.pop3_limits.idle_timeout = self.duration(value)?,
            "limits.driver_timeout" => vector.pop3_limits.driver_timeout = self.duration(value)?,
            "store" => {
                vector.imap_manual_store = match value {
                    "auto" => false,
                    "manual" => true,
                    other => {
                        return Err(self.error(format!("store is auto or manual, not `{other}`")));
                    }
                }
            }
            "imap.line" => vector.imap_limits.line = self.number(key, value)?,
            "imap.command" => vector.imap_limits.command = self.number(key, value)?,
            "imap.append_limit" => vector.imap_limits.append_limit = self.number(key, value)?,
            "imap.pipeline_buffer" => {
                vector.imap_limits.pipeline_buffer = self.number(key, value)?;
            }
            "imap.bad_commands" => vector.imap_limits.bad_commands = self.number(key, value)?,
            "imap.auth_failures" => vector.imap_limits.auth_failures = self.number(key, value)?,
            "imap.mailboxes" => vector.imap_limits.mailboxes = self.number(key, value)?,
            "imap.messages" => vector.imap_limits.messages = self.number(key, value)?,
            "imap.autologout" => vector.imap_limits.autologout = self.duration(value)?,
            "imap.unauthenticated_timeout" => {
                vector.imap_limits.unauthenticated_timeout = self.duration(value)?;
            }
            "imap.driver_timeout" => vector.imap_limits.driver_timeout = self.duration(value)?,
            "limits.text_line" => limits.text_line = self.number(key, value)?,
            "limits.recipients" => limits.recipients = self.number(key, value)?,
            "limits.message_size" => limits.message_size = self.number(key, value)?,
            "limits.transactions" => limits.transactions = self.number(key, value)?,
            "limits.command_timeout" => limits.command_timeout = self.duration(value)?,
            "limits.data_block_timeout" => limits.data_block_timeout = self.duration(value)?,
            "limits.durable_timeout" => limits.durable_timeout = self.duration(value)?,
            "limits.lookup_timeout" => limits.lookup_timeout = self.duration(value)?,
            other => {
                return Err(self.error(format!(
                    "unknown setting `{other}` (tls, auth_requires_tls, or limits.FIELD with a Limits field)"
                )));
            }
        }
        Ok(())
    }

    fn number<T: std::str::FromStr>(&self, key: &str, value: &str) -> Result<T, ParseError> {
        value
            .parse()
            .map_err(|_| self.error(format!("`{key}` takes a whole number, not `{value}`")))
    }

    fn duration(&self, value: &str) -> Result<Duration, ParseError> {
        parse_duration(value).map_err(|message| self.error(message))
    }

    fn parse_expect(&self, value: &str) -> Result<Expect, ParseError> {
        match value {
            "<starttls>" => return Ok(Expect::StartTls),
            "<close>" => return Ok(Expect::Close),
            "<nothing>" => return Ok(Expect::Nothing),
            _ => {}
        }
        if value.starts_with('<') {
            return Err(self.error(format!(
                "unknown marker `{value}` (expected <starttls>, <close> or <nothing>)"
            )));
        }
        let bad = || {
            self.error(format!(
                "`S:` takes `CODE[-] [x.y.z] [text]` or a marker, found `{value}`"
            ))
        };
        let code_text = value.get(..3).ok_or_else(bad)?;
        if !code_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let code: u16 = code_text.parse().map_err(|_| bad())?;
        if !(200..600).contains(&code) {
            return Err(self.error(format!("reply code {code} is outside 200..599")));
        }
        let (continued, rest) = match &value[3..] {
            "" => (false, ""),
            rest if rest.starts_with('-') => (true, &rest[1..]),
            rest if rest.starts_with(' ') => (false, &rest[1..]),
            _ => return Err(bad()),
        };
        let rest = rest.trim_start();
        let (status, text) = match rest.split_once(' ') {
            Some((first, text)) if is_enhanced_status(first) => {
                (Some(first.to_string()), text.trim_start())
            }
            None if is_enhanced_status(rest) => (Some(rest.to_string()), ""),
            _ => (None, rest),
        };
        if let Some(status) = &status
            && !status.starts_with(&code_text[..1])
        {
            return Err(self.error(format!(
                "enhanced status {status} does not match the class of {code}"
            )));
        }
        let text = (!text.is_empty()).then(|| text.to_string());
        Ok(Expect::Reply(ReplyPattern {
            code,
            continued,
            status,
            text,
        }))
    }

    fn parse_driver(&self, value: &str) -> Result<DriverInput, ParseError> {
        let words: Vec<&str> = value.split_whitespace().collect();
        let input = match words.as_slice() {
            ["recipient", verdict] => DriverInput::Recipient(match *verdict {
                "accept" => Answer::Give(RecipientAnswer::Accept),
                "unknown" => Answer::Give(RecipientAnswer::Unknown),
                "relay-denied" => Answer::Give(RecipientAnswer::RelayDenied),
                "tempfail" => Answer::Give(RecipientAnswer::TempFail),
                "ignore" => Answer::Ignore,
                other => {
                    return Err(self.error(format!(
                        "unknown recipient verdict `{other}` (accept, unknown, relay-denied, tempfail, ignore)"
                    )));
                }
            }),
            ["credentials", "valid", identity] => {
                DriverInput::Credentials(Answer::Give(CredentialAnswer::Valid {
                    identity: identity.to_string(),
                }))
            }
            ["credentials", "invalid"] => {
                DriverInput::Credentials(Answer::Give(CredentialAnswer::Invalid))
            }
            ["credentials", "tempfail"] => {
                DriverInput::Credentials(Answer::Give(CredentialAnswer::TempFail))
            }
            ["credentials", "ignore"] => DriverInput::Credentials(Answer::Ignore),
            ["mailbox", "answer"] => DriverInput::Mailbox(Answer::Give(MailboxAnswerKind::Answer)),
            ["mailbox", "unavailable"] => {
                DriverInput::Mailbox(Answer::Give(MailboxAnswerKind::Unavailable))
            }
            ["mailbox", "ignore"] => DriverInput::Mailbox(Answer::Ignore),
            ["mailbox", "changed"] => DriverInput::MailboxChanged,
            ["deliver", ..] => {
                let rest = value
                    .trim_start()
                    .trim_start_matches("deliver")
                    .trim_start();
                let (folder, flags, bytes) = self.parse_deliver(rest)?;
                if !flags.is_empty() {
                    return Err(self.error("`D: deliver` takes `FOLDER \"ESCAPED BYTES\"`"));
                }
                DriverInput::Deliver { folder, bytes }
            }
            ["stored", queue_id] => DriverInput::Store(Answer::Give(StoreAnswer::Stored {
                queue_id: queue_id.to_string(),
            })),
            ["store", "failed"] => DriverInput::Store(Answer::Give(StoreAnswer::Failed)),
            ["per-recipient", queue_id, outcomes @ ..] if !outcomes.is_empty() => {
                let outcomes = outcomes
                    .iter()
                    .map(|word| {
                        RecipientStoreAnswer::parse(word).ok_or_else(|| {
                            self.error(format!(
                                "unknown recipient store outcome `{word}` (stored, tempfail, mailbox-full, unknown-user)"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                DriverInput::Store(Answer::Give(StoreAnswer::PerRecipient {
                    queue_id: queue_id.to_string(),
                    outcomes,
                }))
            }
            ["store", "ignore"] => DriverInput::Store(Answer::Ignore),
            ["maildrop", answer] => DriverInput::Maildrop(match *answer {
                "open" => Answer::Give(MaildropAnswer::Open),
                "locked" => Answer::Give(MaildropAnswer::Locked),
                "tempfail" => Answer::Give(MaildropAnswer::TempFail),
                "ignore" => Answer::Ignore,
                other => {
                    return Err(self.error(format!(
                        "unknown maildrop answer `{other}` (open, locked, tempfail, ignore)"
                    )));
                }
            }),
            ["read"] => DriverInput::Read(Answer::Give(ReadAnswer::Chunks(None))),
            ["read", "chunks", size] => {
                let size: usize = self.number("read chunks", size)?;
                if size == 0 {
                    return Err(self.error("`read chunks N` needs N of at least 1"));
                }
                DriverInput::Read(Answer::Give(ReadAnswer::Chunks(Some(size))))
            }
            ["read", "failed"] => DriverInput::Read(Answer::Give(ReadAnswer::Failed)),
            ["read", "ignore"] => DriverInput::Read(Answer::Ignore),
            ["commit", "done"] => DriverInput::Commit(Answer::Give(CommitAnswer::Done)),
            ["commit", "failed"] => DriverInput::Commit(Answer::Give(CommitAnswer::Failed)),
            ["commit", "ignore"] => DriverInput::Commit(Answer::Ignore),
            ["tls", "established"] => DriverInput::TlsEstablished,
            ["tls", "failed"] => DriverInput::TlsFailed,
            ["peer", "closed"] => DriverInput::PeerClosed,
            ["shutdown"] => DriverInput::Shutdown,
            _ => {
                return Err(self.error(format!(
                    "unknown driver input `{value}` (recipient VERDICT | credentials valid ID | credentials \
                     invalid|tempfail|ignore | stored QUEUE-ID | store failed|ignore | per-recipient QUEUE-ID OUTCOME... | \
                     maildrop open|locked|tempfail|ignore | read [chunks N] | read failed|ignore | \
                     commit done|failed|ignore | tls established|failed | \
                     peer closed | shutdown)"
                )));
            }
        };
        Ok(input)
    }

    fn parse_check(&self, value: &str) -> Result<Check, ParseError> {
        let (subject, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(self.error(format!("`E: {subject}` needs a value")));
        }
        match subject {
            "event" => Ok(Check::Event(rest.to_string())),
            "credentials" => Ok(Check::Credentials(rest.to_string())),
            "recipient" => Ok(Check::Recipient(rest.to_string())),
            "maildrop" => Ok(Check::Maildrop(rest.to_string())),
            "commit" => Ok(Check::Commit(rest.to_string())),
            "message" => {
                let (field, expected) = rest.split_once(' ').unwrap_or((rest, ""));
                let field = match field {
                    "data" => MessageField::Data,
                    "from" => MessageField::From,
                    "to" => MessageField::To,
                    "helo" => MessageField::Helo,
                    "esmtp" => MessageField::Esmtp,
                    "tls" => MessageField::Tls,
                    "auth" => MessageField::Auth,
                    other => {
                        return Err(self.error(format!(
                            "unknown message field `{other}` (data, from, to, helo, esmtp, tls, auth)"
                        )));
                    }
                };
                let expected = expected.trim();
                if expected.is_empty() {
                    return Err(self.error("`E: message FIELD` needs the expected value"));
                }
                let expected = if field == MessageField::Data {
                    let inner = expected
                        .strip_prefix('"')
                        .and_then(|s| s.strip_suffix('"'))
                        .ok_or_else(|| {
                            self.error("`E: message data` takes a quoted, escaped string")
                        })?;
                    // Validated now so that a typo is a parse error, not a runtime failure.
                    unescape(inner).map_err(|e| self.error(e.to_string()))?;
                    inner.to_string()
                } else {
                    expected.to_string()
                };
                Ok(Check::Message { field, expected })
            }
            other => Err(self.error(format!(
                "unknown check `E: {other}` (event, message FIELD, credentials, recipient, maildrop, commit)"
            ))),
        }
    }
}

/// `KEY: value`, where KEY is a word or a letter with an optional `+`.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let valid = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'_' || b == b'-');
    if !valid {
        return None;
    }
    // One space after the colon is the separator; everything after it is the value,
    // so that `C:` lines keep meaningful trailing or doubled spaces.
    let value = value.strip_prefix(' ').unwrap_or(value);
    let value = if matches!(key, "C" | "C+" | "R" | "R+") {
        value
    } else {
        value.trim()
    };
    Some((key, value))
}

fn is_enhanced_status(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `5min`, `30s`, `1500ms`, or a sum such as `4min59s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 5min, 30s, 1500ms, 4min59s)");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit] {
            "min" => Duration::from_mins(amount),
            "s" => Duration::from_secs(amount),
            "ms" => Duration::from_millis(amount),
            _ => return Err(bad()),
        };
        total = total + part;
        rest = &rest[unit..];
    }
    Ok(total)
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Listener::Mx => "mx",
            Listener::Submission => "submission",
            Listener::Submissions => "submissions",
            Listener::Lmtp => "lmtp",
            Listener::Pop3 => "pop3",
            Listener::Pop3s => "pop3s",
            Listener::Imap => "imap",
            Listener::Imaps => "imaps",
        })
    }
}

impl fmt::Display for ReplyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.code, if self.continued { '-' } else { ' ' })?;
        let mut words = Vec::new();
        words.extend(self.status.as_deref());
        words.extend(self.text.as_deref());
        write!(f, "{}", words.join(" "))
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Reply(pattern) => pattern.fmt(f),
            Expect::StartTls => f.write_str("<starttls>"),
            Expect::Close => f.write_str("<close>"),
            Expect::Nothing => f.write_str("<nothing>"),
            Expect::Line(line) => f.write_str(line),
        }
    }
}

impl fmt::Display for MessageField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageField::Data => "data",
            MessageField::From => "from",
            MessageField::To => "to",
            MessageField::Helo => "helo",
            MessageField::Esmtp => "esmtp",
            MessageField::Tls => "tls",
            MessageField::Auth => "auth",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vector, ParseError> {
        Vector::parse(Path::new("t.vector"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const HEADER: &str = "# A title.\nproves: RFC 5321 §4.1.1\n";

    #[test]
    fn a_header_parses() {
        let vector = parse(
            "# Dot-unstuffing.\n# A note.\nproves: RFC 5321 §4.5.2\nlistener: submission\n\
             set: limits.recipients = 2\nset: tls = unavailable\nset: limits.command_timeout = 1min\n\
             split: bytes\n\nS: 220\n# a comment inside the dialogue\n",
        )
        .unwrap();
        assert_eq!(vector.title, "Dot-unstuffing.");
        assert_eq!(vector.notes, ["A note."]);
        assert_eq!(vector.proves, ["RFC 5321 §4.5.2"]);
        assert_eq!(vector.listener, Listener::Submission);
        assert_eq!(vector.limits.recipients, 2);
        assert_eq!(vector.limits.command_timeout, Duration::from_mins(1));
        assert_eq!(vector.tls, TlsMode::Unavailable);
        assert_eq!(vector.split, Split::Bytes);
        assert_eq!(vector.steps.len(), 1);
    }

    #[test]
    fn steps_parse() {
        let vector = parse(&format!(
            "{HEADER}S: 220\nC+: EHLO a.example\nR: NOOP\\r\\n\nS: 250-mx.sluice.test greets a.example\n\
             S: 250 2.1.0 sender ok\nS: 250 2.0.0\nS: <close>\nD: recipient relay-denied\nD: stored Q1\n\
             D: credentials valid alice\nT: +4min59s\nE: message data \"a\\r\\n\"\nE: event connected\n"
        ))
        .unwrap();
        let actions: Vec<Action> = vector.steps.into_iter().map(|s| s.action).collect();
        assert_eq!(
            actions[0],
            Action::Expect(Expect::Reply(ReplyPattern {
                code: 220,
                continued: false,
                status: None,
                text: None
            }))
        );
        assert_eq!(
            actions[1],
            Action::Send {
                bytes: b"EHLO a.example\r\n".to_vec(),
                flush: false
            }
        );
        assert_eq!(
            actions[2],
            Action::Send {
                bytes: b"NOOP\r\n".to_vec(),
                flush: true
            }
        );
        assert_eq!(
            actions[3],
            Action::Expect(Expect::Reply(ReplyPattern {
                code: 250,
                continued: true,
                status: None,
                text: Some("mx.sluice.test greets a.example".into())
            }))
        );
        assert_eq!(
            actions[4],
            Action::Expect(Expect::Reply(ReplyPattern {
                code: 250,
                continued: false,
                status: Some("2.1.0".into()),
                text: Some("sender ok".into())
            }))
        );
        assert_eq!(
            actions[5],
            Action::Expect(Expect::Reply(ReplyPattern {
                code: 250,
                continued: false,
                status: Some("2.0.0".into()),
                text: None
            }))
        );
        assert_eq!(actions[6], Action::Expect(Expect::Close));
        assert_eq!(
            actions[7],
            Action::Driver(DriverInput::Recipient(Answer::Give(
                RecipientAnswer::RelayDenied
            )))
        );
        assert_eq!(
            actions[8],
            Action::Driver(DriverInput::Store(Answer::Give(StoreAnswer::Stored {
                queue_id: "Q1".into()
            })))
        );
        assert_eq!(actions[10], Action::Advance(Duration::from_millis(299_000)));
        assert_eq!(
            actions[11],
            Action::Check(Check::Message {
                field: MessageField::Data,
                expected: "a\\r\\n".into()
            })
        );
    }

    #[test]
    fn listener_defaults_decide_tls() {
        let vector = parse(&format!("{HEADER}listener: submissions\nS: 220\n")).unwrap();
        assert_eq!(vector.tls, TlsMode::Implicit);
        let vector = parse(&format!("{HEADER}listener: lmtp\nS: 220\n")).unwrap();
        assert_eq!(
            (vector.listener, vector.tls),
            (Listener::Lmtp, TlsMode::Unavailable)
        );
        let vector = parse(&format!("{HEADER}S: 220\n")).unwrap();
        assert_eq!(
            (vector.listener, vector.tls),
            (Listener::Mx, TlsMode::StartTlsOffered)
        );
    }

    #[test]
    fn per_recipient_store_answers_parse() {
        let vector = parse(&format!(
            "{HEADER}listener: lmtp\nS: 220\nD: per-recipient Q7 stored tempfail mailbox-full unknown-user\n"
        ))
        .unwrap();
        assert_eq!(
            vector.steps[1].action,
            Action::Driver(DriverInput::Store(Answer::Give(
                StoreAnswer::PerRecipient {
                    queue_id: "Q7".into(),
                    outcomes: vec![
                        RecipientStoreAnswer::Stored,
                        RecipientStoreAnswer::TempFail,
                        RecipientStoreAnswer::MailboxFull,
                        RecipientStoreAnswer::UnknownUser,
                    ],
                }
            )))
        );
        assert!(
            error(&format!(
                "{HEADER}S: 220\nD: per-recipient Q7 stored lost\n"
            ))
            .contains("t.vector:4: unknown recipient store outcome `lost`")
        );
        assert!(
            error(&format!("{HEADER}S: 220\nD: per-recipient Q7\n"))
                .contains("unknown driver input")
        );
    }

    #[test]
    fn malformed_vectors_name_the_line() {
        assert_eq!(
            error(&format!("{HEADER}S: 220\nQ: what\n")),
            "t.vector:4: unknown directive `Q:` (known: proves listener set split known-discrepancy message C C+ R R+ S D T E)"
        );
        assert!(error(&format!("{HEADER}S: twenty\n")).starts_with("t.vector:3: `S:` takes"));
        assert!(error(&format!("{HEADER}S: 250 4.1.0 x\n")).contains("does not match the class"));
        assert!(
            error(&format!("{HEADER}S: 220\nR: \\q\n")).starts_with("t.vector:4: unknown escape")
        );
        assert!(
            error(&format!("{HEADER}S: 220\nC+: NOOP\nS: 250\n"))
                .starts_with("t.vector:5: `S:` follows an unsent")
        );
        assert!(
            error(&format!("{HEADER}S: 220\nC+: NOOP\n"))
                .starts_with("t.vector:4: the file ends after")
        );
        assert!(
            error(&format!("{HEADER}S: 220\nproves: RFC 1\n"))
                .starts_with("t.vector:4: `proves:` belongs")
        );
        assert!(
            error(&format!("{HEADER}set: limits.nonsense = 3\nS: 220\n"))
                .contains("unknown setting `limits.nonsense`")
        );
        assert!(
            error(&format!("{HEADER}set: limits.recipients = many\nS: 220\n"))
                .contains("whole number")
        );
        assert!(
            error(&format!("{HEADER}listener: smtp\nS: 220\n")).contains("unknown listener `smtp`")
        );
        assert!(
            error(&format!("{HEADER}S: 220\nD: recipient maybe\n"))
                .contains("unknown recipient verdict")
        );
        assert!(error(&format!("{HEADER}S: 220\nT: 5min\n")).contains("positive advance"));
        assert!(error(&format!("{HEADER}S: 220\nT: +5 fortnights\n")).contains("not a duration"));
        assert!(error(&format!("{HEADER}S: 220\nE: message data unquoted\n")).contains("quoted"));
        assert!(
            error(&format!("{HEADER}S: 220\nE: message colour red\n"))
                .contains("unknown message field")
        );
        assert!(error(&format!("{HEADER}S: <maybe>\n")).contains("unknown marker"));
        assert!(
            error(&format!("{HEADER}this line has no directive\n"))
                .starts_with("t.vector:3: expected `KEY: value`")
        );
        assert!(
            error("proves: RFC 5321\nS: 220\n")
                .starts_with("t.vector:1: a vector starts with a `#` comment")
        );
        assert!(error("# Title\nS: 220\n").contains("at least one `proves:`"));
        assert!(error(HEADER).contains("needs a dialogue"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5min"), Ok(Duration::from_mins(5)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2min30s"), Ok(Duration::from_secs(150)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("min").is_err());
        assert!(parse_duration("5").is_err());
    }
}
