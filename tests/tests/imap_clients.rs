//! Real IMAP clients end to end: Python's imaplib over STARTTLS and implicit TLS
//! through every command a mail client uses, imapclient (PyPI) with CONDSTORE, MOVE
//! and IDLE, curl's imap:// and imaps://, mbsync syncing to a local Maildir and back,
//! fetchmail into an MDA, and neomutt headless.
//!
//! Every scenario runs twice, against the real `sluice` binary and against a private
//! Dovecot (`sluice_tests::dovecot`): Dovecot's run proves the scenario and its
//! assertions are right about IMAP, Sluice's that Sluice answers the same way. Mail
//! reaches Sluice over SMTP (the 250 comes once the copy is durable) and Dovecot
//! over LMTP. A message read back must be the stored one with the Return-Path field
//! first; on Sluice it is compared with the store's own bytes.
//!
//! A missing client skips its test outside CI and fails it in CI
//! (`tests/install-peers.sh` installs them all). No test sleeps: each waits for a
//! client's exit, its output, or the server's reply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imap_codec::{ResponseCodec, decode::Decoder};
use imap_types::IntoStatic;
use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;
use imap_types::fetch::MessageDataItem;
use imap_types::flag::FlagFetch;
use imap_types::response::{Data, Response};
use sluice_tests::clients::{self, Submission};
use sluice_tests::dovecot::Dovecot;
use sluice_tests::imap::{
    self, ImapSecurity, ImaplibRun, Step, StepOutcome, fetch, login, search, select, store,
};
use sluice_tests::server::{Server, ServerSetup};
use sluice_tests::tools::require_tool;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const USER: &str = "user@sluice.test";
const PASSWORD: &str = "correct horse";
const SENDER: &str = "a@client.test";

// ---------------------------------------------------------------------------
// The server under test: Sluice or Dovecot, behind one interface.

enum Kind {
    Sluice(Box<Server>),
    Dovecot(Box<Dovecot>),
}

struct Peer {
    kind: Kind,
    /// The clients' own files (configurations, Maildirs, saved mail).
    files: tempfile::TempDir,
    /// The certificate the server presents, for clients that check it.
    certificate: PathBuf,
}

impl Peer {
    fn sluice() -> Option<Peer> {
        let files = tempfile::Builder::new()
            .prefix("sluice-imap-clients-")
            .tempdir()
            .unwrap();
        // A certificate for localhost and 127.0.0.1 rather than the generated one
        // for the server's host name: mbsync checks the name it dials.
        let (certificate, key) = imap::write_loopback_certificate(files.path()).unwrap();
        let setup = ServerSetup {
            extra_toml: format!(
                "\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
                certificate.display(),
                key.display()
            ),
            ..ServerSetup::default()
        };
        let server = Server::start(&setup).unwrap();
        Some(Peer {
            kind: Kind::Sluice(Box::new(server)),
            files,
            certificate,
        })
    }

    fn dovecot() -> Option<Peer> {
        let dovecot = Dovecot::start(&[(USER, PASSWORD)]).unwrap()?;
        let certificate = dovecot.certificate();
        Some(Peer {
            kind: Kind::Dovecot(Box::new(dovecot)),
            files: tempfile::Builder::new()
                .prefix("dovecot-imap-clients-")
                .tempdir()
                .unwrap(),
            certificate,
        })
    }

    fn imap(&self) -> SocketAddr {
        match &self.kind {
            Kind::Sluice(server) => server.address("imap").unwrap(),
            Kind::Dovecot(dovecot) => dovecot.imap(),
        }
    }

    fn imaps(&self) -> SocketAddr {
        match &self.kind {
            Kind::Sluice(server) => server.address("imaps").unwrap(),
            Kind::Dovecot(dovecot) => dovecot.imaps(),
        }
    }

    fn files(&self) -> &Path {
        self.files.path()
    }

    /// Delivers `message` to USER's INBOX; returns once the server holds it.
    fn deliver(&self, message: &[u8]) {
        match &self.kind {
            Kind::Sluice(server) => {
                let path = self.files().join("outgoing.eml");
                std::fs::write(&path, message).unwrap();
                let mut submission = Submission::new(server.address("mx").unwrap(), SENDER, USER);
                submission.message = Some(&path);
                let report = clients::smtplib(&submission).unwrap();
                assert_eq!(report.error(), None, "{}", report.raw);
                assert_eq!(report.code("data"), Some(250), "{}", report.raw);
            }
            Kind::Dovecot(dovecot) => dovecot.deliver(SENDER, USER, message).unwrap(),
        }
    }

    /// Checks that `read` (a whole message as a client read it from `folder`) is the
    /// message sent as `sent`: the Return-Path field first, the sent bytes last, and
    /// on Sluice exactly the stored message after the Return-Path field.
    fn assert_read(&self, read: &[u8], sent: &[u8], folder: &str) {
        let field = format!("Return-Path: <{SENDER}>\r\n");
        assert!(
            read.starts_with(field.as_bytes()),
            "no Return-Path first:\n{}",
            String::from_utf8_lossy(read)
        );
        assert!(
            read.ends_with(sent),
            "not the sent message:\n{}",
            String::from_utf8_lossy(read)
        );
        if let Kind::Sluice(server) = &self.kind {
            let id = message_id(sent);
            let stored = block_on(server.folder_contents(USER, folder)).unwrap();
            let stored = stored
                .iter()
                .find(|m| message_id(m) == id)
                .unwrap_or_else(|| panic!("{id} is not in the stored {folder}"));
            assert_eq!(
                String::from_utf8_lossy(&read[field.len()..]),
                String::from_utf8_lossy(stored),
                "what the client read is not the stored message"
            );
        }
    }

    /// Sluice only: the Message-IDs of a folder as the store holds it.
    fn stored_ids(&self, folder: &str) -> Option<Vec<String>> {
        let Kind::Sluice(server) = &self.kind else {
            return None;
        };
        let stored = block_on(server.folder_contents(USER, folder)).unwrap();
        let mut ids: Vec<String> = stored.iter().map(|m| message_id(m)).collect();
        ids.sort();
        Some(ids)
    }

    /// One imaplib session: login (plain LOGIN) then `steps`, then LOGOUT.
    fn session(&self, security: ImapSecurity, steps: Vec<Step>) -> ImaplibRun {
        self.session_idle(security, steps, || {})
    }

    fn session_idle(
        &self,
        security: ImapSecurity,
        steps: Vec<Step>,
        on_idle: impl FnMut(),
    ) -> ImaplibRun {
        let address = match security {
            ImapSecurity::ImplicitTls => self.imaps(),
            ImapSecurity::Plain | ImapSecurity::StartTls => self.imap(),
        };
        let mut all = steps;
        all.push(Step::new("logout"));
        imap::imaplib(address, security, &all, on_idle).unwrap()
    }

    /// Each folder's messages as a client sees them: (Message-ID, UID, flags), in
    /// sequence order, read over IMAP without changing anything (EXAMINE, PEEK).
    fn view(&self, folders: &[&str]) -> BTreeMap<String, Vec<Seen>> {
        let mut steps = vec![login(USER, PASSWORD)];
        for folder in folders {
            steps.push(Step::new("examine").arg("mailbox", *folder));
            steps.push(fetch(
                "1:*",
                "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
            ));
        }
        let run = self.session(ImapSecurity::ImplicitTls, steps);
        let mut view = BTreeMap::new();
        for (index, folder) in folders.iter().enumerate() {
            let examine = run.nth("examine", index);
            assert!(examine.ok(), "EXAMINE {folder}: {}", run.raw);
            let seen = fetches(run.nth("fetch", index))
                .into_iter()
                .map(|f| Seen {
                    id: message_id(&f.section().unwrap_or_default()),
                    uid: f.uid().unwrap(),
                    flags: f.flags(),
                })
                .collect();
            view.insert((*folder).to_owned(), seen);
        }
        view
    }
}

/// One message as [`Peer::view`] saw it.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    uid: u32,
    flags: Vec<String>,
}

fn ids(seen: &[Seen]) -> Vec<String> {
    let mut ids: Vec<String> = seen.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

fn find<'a>(seen: &'a [Seen], id: &str) -> &'a Seen {
    seen.iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id} not in {seen:?}"))
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Runs `scenario` against Sluice and against Dovecot as two tests, when the tools
/// it needs are installed.
macro_rules! against_both {
    ($scenario:ident, $sluice:ident, $dovecot:ident, [$($tool:literal),*]) => {
        #[test]
        fn $sluice() {
            if ![$($tool),*].iter().all(|tool| require_tool(tool)) {
                return;
            }
            if let Some(peer) = Peer::sluice() {
                $scenario(&peer);
            }
        }

        #[test]
        fn $dovecot() {
            if ![$($tool),*].iter().all(|tool| require_tool(tool)) {
                return;
            }
            if let Some(peer) = Peer::dovecot() {
                $scenario(&peer);
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Messages and what clients report about them.

/// A small message with CRLF lines; its Message-ID is `<ID@client.test>`.
fn message(id: &str, from: &str, subject: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\n\
         To: <{USER}>\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{id}@client.test>\r\n\
         Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         {headers}\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}"
    )
    .into_bytes()
}

fn simple(id: &str) -> Vec<u8> {
    message(
        id,
        "Sender <sender@client.test>",
        &format!("about {id}"),
        "",
        &format!("the body of {id}\r\n"),
    )
}

/// A multipart/mixed message: a text part and a small attachment.
fn multipart(id: &str, subject: &str, word: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@client.test>\r\n\
         To: <{USER}>\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{id}@client.test>\r\n\
         Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b-{id}\"\r\n\
         \r\n\
         --b-{id}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         the text part mentions {word}\r\n\
         --b-{id}\r\n\
         Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         AAECAwQFBgcICQ==\r\n\
         --b-{id}--\r\n"
    )
    .into_bytes()
}

/// The Message-ID of a message (or of a header block), with its angle brackets;
/// LF or CRLF line ends.
fn message_id(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .take_while(|line| !line.trim_end_matches('\r').is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

fn id(name: &str) -> String {
    format!("<{name}@client.test>")
}

/// One FETCH response, parsed by imap-codec (so also proven well-formed).
struct Fetch {
    seq: u32,
    items: Vec<MessageDataItem<'static>>,
    raw: String,
}

impl Fetch {
    fn uid(&self) -> Option<u32> {
        self.items.iter().find_map(|item| match item {
            MessageDataItem::Uid(uid) => Some(uid.get()),
            _ => None,
        })
    }

    fn flags(&self) -> Vec<String> {
        self.items
            .iter()
            .find_map(|item| match item {
                MessageDataItem::Flags(flags) => Some(
                    flags
                        .iter()
                        .map(|flag| match flag {
                            FlagFetch::Flag(flag) => flag.to_string(),
                            FlagFetch::Recent => "\\Recent".to_owned(),
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags().iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    fn size(&self) -> Option<u32> {
        self.items.iter().find_map(|item| match item {
            MessageDataItem::Rfc822Size(size) => Some(*size),
            _ => None,
        })
    }

    /// The data of the first body section in the response.
    fn section(&self) -> Option<Vec<u8>> {
        self.items.iter().find_map(|item| match item {
            MessageDataItem::BodyExt { data, .. } => {
                Some(data.clone().into_option().unwrap_or_default().into_owned())
            }
            _ => None,
        })
    }

    fn envelope(&self) -> &Envelope<'static> {
        self.items
            .iter()
            .find_map(|item| match item {
                MessageDataItem::Envelope(envelope) => Some(envelope),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no ENVELOPE in {}", self.raw))
    }

    fn structure(&self) -> &BodyStructure<'static> {
        self.items
            .iter()
            .find_map(|item| match item {
                MessageDataItem::BodyStructure(structure) => Some(structure),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no BODYSTRUCTURE in {}", self.raw))
    }

    fn has_internal_date(&self) -> bool {
        self.items
            .iter()
            .any(|item| matches!(item, MessageDataItem::InternalDate(_)))
    }
}

fn fetches(step: &StepOutcome) -> Vec<Fetch> {
    step.untagged("FETCH")
        .into_iter()
        .map(|raw| {
            let text = String::from_utf8_lossy(raw).into_owned();
            let (_, parsed) = ResponseCodec::default()
                .decode(raw)
                .unwrap_or_else(|e| panic!("imap-codec cannot parse {text:?}: {e:?}"));
            let Response::Data(Data::Fetch { seq, items }) = parsed else {
                panic!("not a FETCH response: {text}");
            };
            Fetch {
                seq: seq.get(),
                items: items.into_iter().map(IntoStatic::into_static).collect(),
                raw: text,
            }
        })
        .collect()
}

/// The one FETCH response for `seq` in a step.
fn fetched(step: &StepOutcome, seq: u32) -> Fetch {
    fetches(step)
        .into_iter()
        .find(|f| f.seq == seq)
        .unwrap_or_else(|| panic!("no FETCH for {seq}:\n{}", step.transcript()))
}

/// The numbers of a step's `* SEARCH` responses.
fn searched(step: &StepOutcome) -> Vec<u32> {
    assert!(step.ok(), "SEARCH refused: {}", step.transcript());
    let mut numbers: Vec<u32> = step
        .untagged("SEARCH")
        .iter()
        .flat_map(|raw| {
            String::from_utf8_lossy(raw)
                .split_whitespace()
                .skip(2)
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

fn nstring(value: &imap_types::core::NString<'static>) -> String {
    String::from_utf8_lossy(&value.clone().into_option().unwrap_or_default()).into_owned()
}

// ---------------------------------------------------------------------------
// imaplib: reading and searching over STARTTLS.

fn imaplib_reads_and_searches(peer: &Peer) {
    let alpha = message(
        "alpha",
        "Alice <alice@client.test>",
        "alpha report",
        "",
        "the quick fox\r\n",
    );
    let beta = message(
        "beta",
        "Sender <sender@client.test>",
        "=?UTF-8?Q?gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=",
        "X-Custom: needle-header\r\n",
        "plain beta body with zebra\r\n",
    );
    let gamma = multipart("gamma", "gamma multipart", "kiwi");
    for sent in [&alpha, &beta, &gamma] {
        peer.deliver(sent);
    }
    let steps = vec![
        Step::new("capability"),
        login(USER, PASSWORD),
        Step::new("capability"),
        Step::new("list"),
        Step::new("lsub"),
        Step::new("status")
            .arg("mailbox", "INBOX")
            .arg("items", "(MESSAGES UIDNEXT UNSEEN)"),
        Step::new("examine").arg("mailbox", "INBOX"),
        fetch(
            "1:*",
            "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)",
        ),
        fetch("1", "(BODY[])"),
        select("INBOX"),
        fetch("1", "(FLAGS)"),
        fetch("1", "(BODY.PEEK[HEADER])"),
        fetch("1", "(BODY[TEXT]<0.10>)"),
        fetch("2", "(BODY[])"),
        fetch("3", "(BODY.PEEK[])"),
        fetch("1:*", "(FLAGS)"),
        search(&["ALL"]),
        search(&["UNSEEN"]),
        search(&["FROM", "alice"]),
        search(&["SUBJECT", "multipart"]),
        search(&["TEXT", "zebra"]),
        search(&["HEADER", "X-Custom", "needle-header"]),
        search(&["SUBJECT"])
            .arg("charset", "UTF-8")
            .arg("literal", "grüße"),
        search(&["TEXT", "kiwi"]).uid(),
        Step::new("noop"),
    ];
    let run = peer.session(ImapSecurity::StartTls, steps);
    assert!(run.all_ok(), "{}", run.raw);

    // After STARTTLS the client may authenticate; after LOGIN the server says more.
    let before = run.nth("capability", 0).text.to_ascii_uppercase();
    assert!(before.contains("AUTH=PLAIN"), "{before}");
    let after = run.nth("capability", 1).text.to_ascii_uppercase();
    for capability in ["IMAP4REV1", "IDLE", "MOVE", "UIDPLUS", "CONDSTORE"] {
        assert!(after.contains(capability), "{capability} missing: {after}");
    }
    assert!(
        run.step("list").transcript().contains("INBOX"),
        "{}",
        run.raw
    );
    let status = run.step("status").transcript();
    assert!(
        status.contains("MESSAGES 3") && status.contains("UNSEEN 3"),
        "{status}"
    );

    let examine = run.step("examine");
    assert!(examine.transcript().contains("* 3 EXISTS"), "{}", run.raw);
    assert!(examine.tagged().contains("READ-ONLY"), "{}", run.raw);

    // The metadata of all three.
    let listing = fetches(run.nth("fetch", 0));
    assert_eq!(listing.len(), 3, "{}", run.raw);
    let (first, second, third) = (&listing[0], &listing[1], &listing[2]);
    assert!(listing.iter().all(Fetch::has_internal_date));
    let uids: Vec<u32> = listing.iter().map(|f| f.uid().unwrap()).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "{uids:?}");
    let envelope = first.envelope();
    assert_eq!(nstring(&envelope.subject), "alpha report");
    assert_eq!(nstring(&envelope.message_id), id("alpha"));
    assert_eq!(nstring(&envelope.from[0].mailbox), "alice");
    assert_eq!(nstring(&envelope.from[0].host), "client.test");
    // ENVELOPE carries the subject as written, still RFC 2047 encoded.
    assert_eq!(
        nstring(&second.envelope().subject),
        "=?UTF-8?Q?gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?="
    );
    assert!(matches!(first.structure(), BodyStructure::Single { .. }));
    assert!(
        matches!(third.structure(), BodyStructure::Multi { .. }),
        "{}",
        third.raw
    );
    assert!(
        third.raw.to_ascii_lowercase().contains("\"mixed\""),
        "{}",
        third.raw
    );

    // BODY[] in a read-only mailbox reads the message and leaves it unseen.
    let read_first = fetched(run.nth("fetch", 1), 1).section().unwrap();
    peer.assert_read(&read_first, &alpha, "INBOX");
    assert_eq!(first.size(), Some(u32::try_from(read_first.len()).unwrap()));
    let flags_after_examine = fetched(run.nth("fetch", 2), 1);
    assert!(
        !flags_after_examine.has_flag("\\Seen"),
        "{}",
        flags_after_examine.raw
    );

    // Sections: the header, then ten octets of the text.
    let header_end = read_first
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    let header = fetched(run.nth("fetch", 3), 1).section().unwrap();
    assert_eq!(header, read_first[..header_end]);
    let text = fetched(run.nth("fetch", 4), 1).section().unwrap();
    assert_eq!(text, read_first[header_end..header_end + 10]);
    let read_second = fetched(run.nth("fetch", 5), 2).section().unwrap();
    peer.assert_read(&read_second, &beta, "INBOX");
    assert_eq!(
        second.size(),
        Some(u32::try_from(read_second.len()).unwrap())
    );
    let read_third = fetched(run.nth("fetch", 6), 3).section().unwrap();
    peer.assert_read(&read_third, &gamma, "INBOX");

    // BODY[TEXT] and BODY[] set \Seen; BODY.PEEK does not.
    let flags = fetches(run.nth("fetch", 7));
    let seen: Vec<bool> = flags.iter().map(|f| f.has_flag("\\Seen")).collect();
    assert_eq!(seen, vec![true, true, false], "{}", run.raw);

    assert_eq!(searched(run.nth("search", 0)), vec![1, 2, 3]);
    assert_eq!(searched(run.nth("search", 1)), vec![3], "UNSEEN");
    assert_eq!(searched(run.nth("search", 2)), vec![1], "FROM");
    assert_eq!(searched(run.nth("search", 3)), vec![3], "SUBJECT");
    assert_eq!(searched(run.nth("search", 4)), vec![2], "TEXT");
    assert_eq!(searched(run.nth("search", 5)), vec![2], "HEADER");
    assert_eq!(
        searched(run.nth("search", 6)),
        vec![2],
        "SUBJECT in UTF-8 against an encoded word"
    );
    assert_eq!(searched(run.nth("search", 7)), vec![uids[2]], "UID SEARCH");
    // imaplib understood the answer too.
    assert_eq!(run.nth("search", 7).text, uids[2].to_string());
}

against_both!(
    imaplib_reads_and_searches,
    imaplib_reads_and_searches_on_sluice,
    imaplib_reads_and_searches_on_dovecot,
    ["python3"]
);

// ---------------------------------------------------------------------------
// imaplib: folders, flags, copy, move, append and expunge over implicit TLS.

fn imaplib_files_flags_and_deletes(peer: &Peer) {
    let sent: Vec<Vec<u8>> = ["one", "two", "three", "four"]
        .iter()
        .map(|name| simple(name))
        .collect();
    for message in &sent {
        peer.deliver(message);
    }
    let auth = Step::new("authenticate")
        .arg("user", USER)
        .arg("password", PASSWORD);
    let first = peer.session(
        ImapSecurity::ImplicitTls,
        vec![
            auth,
            Step::new("create").arg("mailbox", "Work"),
            Step::new("create").arg("mailbox", "Old"),
            Step::new("rename").arg("mailbox", "Old").arg("to", "Older"),
            Step::new("subscribe").arg("mailbox", "Work"),
            Step::new("lsub"),
            Step::new("unsubscribe").arg("mailbox", "Work"),
            Step::new("lsub"),
            Step::new("delete").arg("mailbox", "Older"),
            Step::new("list"),
            select("INBOX"),
            store("1", "+FLAGS", "(\\Flagged $Label)"),
            store("1", "-FLAGS", "($Label)"),
            store("2", "FLAGS.SILENT", "(\\Answered)"),
            fetch("1:4", "(UID FLAGS)"),
            Step::new("copy").arg("set", "1").arg("mailbox", "Work"),
            Step::new("move").arg("set", "2").arg("mailbox", "Work"),
            Step::new("status")
                .arg("mailbox", "Work")
                .arg("items", "(MESSAGES)"),
            Step::new("unselect"),
        ],
    );
    assert!(first.all_ok(), "{}", first.raw);
    let listed = |step: &StepOutcome| -> Vec<String> {
        step.untagged("LIST")
            .iter()
            .chain(step.untagged("LSUB").iter())
            .map(|raw| {
                let line = String::from_utf8_lossy(raw);
                line.trim_end()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    };
    assert!(listed(first.nth("lsub", 0)).contains(&"Work".to_owned()));
    assert!(!listed(first.nth("lsub", 1)).contains(&"Work".to_owned()));
    // A server may create special-use folders of its own (Sluice does): only
    // INBOX, Work and the absence of the deleted one are asked for.
    let names = listed(first.step("list"));
    assert!(
        names.contains(&"INBOX".to_owned()) && names.contains(&"Work".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "Old" || n == "Older"),
        "{names:?}"
    );

    // +FLAGS answers with the new flags; -FLAGS takes one away; .SILENT says nothing.
    let added = fetched(first.nth("store", 0), 1);
    assert!(added.has_flag("\\Flagged") && added.has_flag("$Label"));
    assert!(
        first.nth("store", 2).untagged("FETCH").is_empty(),
        "{}",
        first.raw
    );
    let flags = fetches(first.nth("fetch", 0));
    assert!(flags[0].has_flag("\\Flagged") && !flags[0].has_flag("$Label"));
    assert!(flags[1].has_flag("\\Answered"));
    let uids: Vec<u32> = flags.iter().map(|f| f.uid().unwrap()).collect();
    // MOVE by sequence number expunges the moved message from this session's view.
    assert!(
        first.step("move").transcript().contains("* 2 EXPUNGE"),
        "{}",
        first.raw
    );
    assert!(
        first.step("status").transcript().contains("MESSAGES 2"),
        "{}",
        first.raw
    );

    // Second session, by UID: what is left in INBOX is one, three, four.
    let appended = peer.files().join("appended.eml");
    let appended_message = simple("appended");
    std::fs::write(&appended, &appended_message).unwrap();
    let second = peer.session(
        ImapSecurity::StartTls,
        vec![
            login(USER, PASSWORD),
            select("INBOX"),
            Step::new("move")
                .arg("set", uids[2].to_string())
                .arg("mailbox", "Work")
                .uid(),
            store(&uids[0].to_string(), "+FLAGS", "(\\Deleted)").uid(),
            store(&uids[3].to_string(), "+FLAGS", "(\\Deleted)").uid(),
            Step::new("uid_expunge").arg("set", uids[0].to_string()),
            Step::new("close"),
            Step::new("append")
                .arg("mailbox", "Work")
                .arg("file", appended.display().to_string())
                .arg("flags", "(\\Seen)"),
            select("Work"),
            fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"),
            store("1", "+FLAGS", "(\\Deleted)"),
            Step::new("expunge"),
            Step::new("noop"),
        ],
    );
    assert!(second.all_ok(), "{}", second.raw);
    // UID EXPUNGE removed only the named UID, though four was \Deleted as well...
    let expunged = second.step("uid_expunge").untagged("EXPUNGE");
    assert_eq!(expunged.len(), 1, "{}", second.raw);
    // ... and CLOSE removed four silently.
    assert!(
        second.step("close").untagged("EXPUNGE").is_empty(),
        "{}",
        second.raw
    );
    assert!(
        second.step("append").tagged().contains("APPENDUID"),
        "{}",
        second.raw
    );
    // Work before its EXPUNGE: one (copied), two (moved), three (UID-moved), appended.
    let work = fetches(second.step("fetch"));
    let work_ids: Vec<String> = work
        .iter()
        .map(|f| message_id(&f.section().unwrap()))
        .collect();
    let mut sorted = work_ids.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![id("appended"), id("one"), id("three"), id("two")],
        "{}",
        second.raw
    );
    let appended_fetch = work
        .iter()
        .find(|f| message_id(&f.section().unwrap()) == id("appended"))
        .unwrap();
    assert!(appended_fetch.has_flag("\\Seen"));
    // The copy kept its flag; the move kept its flag.
    let copied = work
        .iter()
        .find(|f| message_id(&f.section().unwrap()) == id("one"))
        .unwrap();
    assert!(copied.has_flag("\\Flagged"), "{}", copied.raw);
    assert!(
        second.step("expunge").transcript().contains("* 1 EXPUNGE"),
        "{}",
        second.raw
    );

    // Read back: INBOX is empty, Work holds what is left.
    let view = peer.view(&["INBOX", "Work"]);
    assert!(view["INBOX"].is_empty(), "{view:?}");
    let mut left: Vec<String> = work_ids[1..].to_vec();
    left.sort();
    assert_eq!(ids(&view["Work"]), left);
    if let Some(stored) = peer.stored_ids("Work") {
        assert_eq!(stored, left, "the store agrees");
        assert_eq!(peer.stored_ids("INBOX").unwrap(), Vec::<String>::new());
    }
}

against_both!(
    imaplib_files_flags_and_deletes,
    imaplib_files_flags_and_deletes_on_sluice,
    imaplib_files_flags_and_deletes_on_dovecot,
    ["python3"]
);

// ---------------------------------------------------------------------------
// imaplib: IDLE hears a delivery.

fn imaplib_idle_hears_a_delivery(peer: &Peer) {
    peer.deliver(&simple("before-idle"));
    let arriving = simple("during-idle");
    let mut delivered = false;
    let run = peer.session_idle(
        ImapSecurity::StartTls,
        vec![
            login(USER, PASSWORD),
            select("INBOX"),
            Step::new("idle"),
            fetch("2", "(ENVELOPE)"),
        ],
        || {
            peer.deliver(&arriving);
            delivered = true;
        },
    );
    assert!(delivered, "the server never accepted IDLE:\n{}", run.raw);
    assert!(run.all_ok(), "{}", run.raw);
    assert!(
        run.step("idle").transcript().contains("* 2 EXISTS"),
        "{}",
        run.raw
    );
    let envelope = fetched(run.step("fetch"), 2);
    assert_eq!(nstring(&envelope.envelope().message_id), id("during-idle"));
}

against_both!(
    imaplib_idle_hears_a_delivery,
    imaplib_idle_hears_a_delivery_on_sluice,
    imaplib_idle_hears_a_delivery_on_dovecot,
    ["python3"]
);

// ---------------------------------------------------------------------------
// imapclient: ENVELOPE, BODYSTRUCTURE, CONDSTORE, MOVE, idle_check.

fn imapclient_condstore_move_and_idle(peer: &Peer) {
    peer.deliver(&simple("ic-first"));
    peer.deliver(&multipart("ic-second", "second of two", "pear"));
    let report = imap::imapclient(peer.imaps(), USER, PASSWORD, "Archive", || {
        peer.deliver(&simple("ic-third"));
    })
    .unwrap();
    assert_eq!(report.get("exists"), "2", "{}", report.raw);
    let uids: Vec<u32> = report
        .get("uids")
        .split(' ')
        .map(|u| u.parse().unwrap())
        .collect();
    assert_eq!(uids.len(), 2);
    let envelopes = report.all("envelope");
    assert_eq!(
        envelopes,
        vec![
            format!(
                "{}|about ic-first|sender@client.test|{}",
                uids[0],
                id("ic-first")
            ),
            format!(
                "{}|second of two|sender@client.test|{}",
                uids[1],
                id("ic-second")
            ),
        ],
        "{}",
        report.raw
    );
    assert_eq!(
        report.all("bodystructure"),
        vec![
            format!("{}|text/plain", uids[0]),
            format!("{}|multipart/mixed", uids[1])
        ]
    );
    // CHANGEDSINCE the HIGHESTMODSEQ seen at SELECT: only the message flagged since,
    // with a MODSEQ above it.
    let highest: u64 = report.get("highestmodseq").parse().unwrap_or_else(|_| {
        panic!("no HIGHESTMODSEQ at SELECT: {}", report.raw);
    });
    let changed = report.all("changed");
    assert_eq!(changed.len(), 1, "{}", report.raw);
    let fields: Vec<&str> = changed[0].split('|').collect();
    assert_eq!(fields[0], uids[0].to_string());
    assert!(fields[1].contains("\\Flagged"), "{}", changed[0]);
    assert!(
        fields[2].parse::<u64>().unwrap() > highest,
        "{}",
        changed[0]
    );
    // MOVE took the second message out of INBOX into Archive.
    assert_eq!(report.get("inbox_after_move"), uids[0].to_string());
    assert_eq!(report.get("folder_messages"), "1");
    // IDLE: the delivery made while idling arrived as message 2.
    assert_eq!(report.get("idle_exists"), "2", "{}", report.raw);
    assert_eq!(report.get("logout"), "ok");

    let view = peer.view(&["INBOX", "Archive"]);
    assert_eq!(ids(&view["INBOX"]), vec![id("ic-first"), id("ic-third")]);
    assert_eq!(ids(&view["Archive"]), vec![id("ic-second")]);
    assert!(
        find(&view["INBOX"], &id("ic-first"))
            .flags
            .contains(&"\\Flagged".to_owned())
    );
}

against_both!(
    imapclient_condstore_move_and_idle,
    imapclient_condstore_move_and_idle_on_sluice,
    imapclient_condstore_move_and_idle_on_dovecot,
    ["python3"]
);

// ---------------------------------------------------------------------------
// curl: imap:// with STARTTLS required, and imaps://.

fn curl_lists_fetches_and_searches(peer: &Peer) {
    let first = simple("curl-first");
    let second = message(
        "curl-second",
        "Sender <sender@client.test>",
        "findme please",
        "",
        "second body\r\n",
    );
    peer.deliver(&first);
    peer.deliver(&second);
    let view = peer.view(&["INBOX"]);
    let uid_second = find(&view["INBOX"], &id("curl-second")).uid;
    for (security, address) in [
        (ImapSecurity::StartTls, peer.imap()),
        (ImapSecurity::ImplicitTls, peer.imaps()),
    ] {
        let listing = imap::curl_imap(address, security, USER, PASSWORD, "")
            .unwrap()
            .ok("curl list")
            .unwrap();
        assert!(
            listing.stdout.contains("* LIST") && listing.stdout.contains("INBOX"),
            "{listing:?}"
        );
        let fetched = imap::curl_imap(
            address,
            security,
            USER,
            PASSWORD,
            &format!("INBOX/;UID={uid_second}"),
        )
        .unwrap()
        .ok("curl fetch")
        .unwrap();
        peer.assert_read(fetched.stdout.as_bytes(), &second, "INBOX");
        let found = imap::curl_imap(address, security, USER, PASSWORD, "INBOX?SUBJECT%20findme")
            .unwrap()
            .ok("curl search")
            .unwrap();
        assert_eq!(found.stdout.trim_end(), "* SEARCH 2", "{found:?}");
    }
}

against_both!(
    curl_lists_fetches_and_searches,
    curl_lists_fetches_and_searches_on_sluice,
    curl_lists_fetches_and_searches_on_dovecot,
    ["curl", "python3"]
);

// ---------------------------------------------------------------------------
// mbsync: INBOX and a folder to a local Maildir and back.

/// A local Maildir folder's messages: Message-ID → flags letters (from the file name).
fn local_folder(root: &Path, folder: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name
                .split_once(":2,")
                .map(|(_, f)| f.to_owned())
                .unwrap_or_default();
            found.insert(message_id(&std::fs::read(&path).unwrap()), flags);
        }
    }
    found
}

/// The path of the local file holding `id` in `folder`.
fn local_file(root: &Path, folder: &str, id: &str) -> PathBuf {
    ["cur", "new"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(root.join(folder).join(sub)).unwrap())
        .map(|entry| entry.unwrap().path())
        .find(|path| message_id(&std::fs::read(path).unwrap()) == id)
        .unwrap_or_else(|| panic!("{id} not in local {folder}"))
}

fn mbsync_syncs_both_ways(peer: &Peer) {
    let one = simple("mb-one");
    let two = simple("mb-two");
    peer.deliver(&one);
    peer.deliver(&two);
    let created = peer.session(
        ImapSecurity::ImplicitTls,
        vec![
            login(USER, PASSWORD),
            Step::new("create").arg("mailbox", "Filed"),
        ],
    );
    assert!(created.all_ok(), "{}", created.raw);
    let mbsync = imap::Mbsync::new(
        peer.files(),
        peer.imaps(),
        &peer.certificate,
        USER,
        PASSWORD,
        &["INBOX", "Filed"],
    )
    .unwrap();
    let root = mbsync.maildir.clone();

    // 1. New mail on the server reaches the Maildir, byte for byte after the
    //    server's own fields (mbsync may store LF line ends).
    mbsync.sync().unwrap();
    let local = local_folder(&root, "INBOX");
    assert_eq!(
        local.keys().cloned().collect::<Vec<_>>(),
        vec![id("mb-one"), id("mb-two")]
    );
    // mbsync adds its own X-TUID field at the end of the header (to find a message
    // again across an interrupted sync): the rest is the sent message after the
    // server's fields, LF or CRLF alike.
    let stored = std::fs::read(local_file(&root, "INBOX", &id("mb-one"))).unwrap();
    let lf = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    let without_tuid: String = lf(&stored)
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("X-TUID: "))
        .collect();
    assert!(without_tuid.ends_with(&lf(&one)), "{}", lf(&stored));

    // 2. Flags both ways and new mail both ways: the server flags one, the Maildir
    //    marks two seen; the server gets three, the Maildir gets four.
    let flagged = peer.session(
        ImapSecurity::ImplicitTls,
        vec![
            login(USER, PASSWORD),
            select("INBOX"),
            store("1", "+FLAGS", "(\\Flagged)"),
        ],
    );
    assert!(flagged.all_ok(), "{}", flagged.raw);
    let two_file = local_file(&root, "INBOX", &id("mb-two"));
    let name = two_file.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    std::fs::rename(
        &two_file,
        root.join("INBOX/cur").join(format!("{base}:2,S")),
    )
    .unwrap();
    peer.deliver(&simple("mb-three"));
    let four = simple("mb-four");
    std::fs::write(root.join("INBOX/new/local-four.eml"), &four).unwrap();
    mbsync.sync().unwrap();
    let local = local_folder(&root, "INBOX");
    assert_eq!(local.len(), 4, "{local:?}");
    assert!(local[&id("mb-one")].contains('F'), "{local:?}");
    assert!(local.contains_key(&id("mb-three")));
    let view = peer.view(&["INBOX"]);
    assert_eq!(
        ids(&view["INBOX"]),
        vec![id("mb-four"), id("mb-one"), id("mb-three"), id("mb-two")]
    );
    assert!(
        find(&view["INBOX"], &id("mb-two"))
            .flags
            .contains(&"\\Seen".to_owned()),
        "{view:?}"
    );

    // 3. A move on the server (one into Filed) becomes a move in the Maildir.
    let moved = peer.session(
        ImapSecurity::ImplicitTls,
        vec![
            login(USER, PASSWORD),
            select("INBOX"),
            Step::new("move")
                .arg("set", find(&view["INBOX"], &id("mb-one")).uid.to_string())
                .arg("mailbox", "Filed")
                .uid(),
        ],
    );
    assert!(moved.all_ok(), "{}", moved.raw);
    mbsync.sync().unwrap();
    assert!(!local_folder(&root, "INBOX").contains_key(&id("mb-one")));
    assert!(local_folder(&root, "Filed").contains_key(&id("mb-one")));

    // 4. Deletions on both sides: the Maildir loses two, the server expunges three.
    std::fs::remove_file(local_file(&root, "INBOX", &id("mb-two"))).unwrap();
    let view = peer.view(&["INBOX"]);
    let deleted = peer.session(
        ImapSecurity::ImplicitTls,
        vec![
            login(USER, PASSWORD),
            select("INBOX"),
            store(
                &find(&view["INBOX"], &id("mb-three")).uid.to_string(),
                "+FLAGS",
                "(\\Deleted)",
            )
            .uid(),
            Step::new("expunge"),
        ],
    );
    assert!(deleted.all_ok(), "{}", deleted.raw);
    mbsync.sync().unwrap();
    let view = peer.view(&["INBOX", "Filed"]);
    assert_eq!(ids(&view["INBOX"]), vec![id("mb-four")], "{view:?}");
    assert_eq!(ids(&view["Filed"]), vec![id("mb-one")], "{view:?}");
    assert_eq!(
        local_folder(&root, "INBOX")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec![id("mb-four")]
    );
    assert_eq!(
        local_folder(&root, "Filed")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec![id("mb-one")]
    );
    if let Some(stored) = peer.stored_ids("INBOX") {
        assert_eq!(stored, vec![id("mb-four")], "the store agrees");
    }
}

against_both!(
    mbsync_syncs_both_ways,
    mbsync_syncs_both_ways_on_sluice,
    mbsync_syncs_both_ways_on_dovecot,
    ["mbsync", "python3"]
);

// ---------------------------------------------------------------------------
// fetchmail: keep, then flush.

/// The messages an MDA wrote: their Message-IDs, sorted, and their bytes.
fn mda_files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            (message_id(&bytes), bytes)
        })
        .collect();
    files.sort();
    files
}

fn fetchmail_keeps_then_flushes(peer: &Peer) {
    let one = simple("fm-one");
    let two = multipart("fm-two", "fetch me", "plum");
    peer.deliver(&one);
    peer.deliver(&two);
    let out = peer.files().join("out");
    let kept = imap::fetchmail(peer.files(), peer.imaps(), USER, PASSWORD, &out, true).unwrap();
    assert_eq!(kept.code, Some(0), "{kept:?}");
    let files = mda_files(&out);
    assert_eq!(
        files.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        vec![id("fm-one"), id("fm-two")]
    );
    // Each file ends with what was sent (fetchmail may write LF line ends and adds
    // its own Received field on top).
    let lf = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    for ((_, written), sent) in files.iter().zip([&one, &two]) {
        assert!(lf(written).ends_with(&lf(sent)), "{}", lf(written));
        assert!(lf(written).contains(&format!("Return-Path: <{SENDER}>")));
    }
    // Kept, and marked seen.
    let view = peer.view(&["INBOX"]);
    assert_eq!(view["INBOX"].len(), 2);
    assert!(
        view["INBOX"]
            .iter()
            .all(|m| m.flags.contains(&"\\Seen".to_owned()))
    );

    // Flush: fetch all again (seen ones too), then they are gone from the server.
    let flushed = imap::fetchmail(peer.files(), peer.imaps(), USER, PASSWORD, &out, false).unwrap();
    assert_eq!(flushed.code, Some(0), "{flushed:?}");
    assert_eq!(mda_files(&out).len(), 4);
    assert!(peer.view(&["INBOX"])["INBOX"].is_empty());
    // Nothing left: fetchmail's "no mail" exit.
    let empty = imap::fetchmail(peer.files(), peer.imaps(), USER, PASSWORD, &out, false).unwrap();
    assert_eq!(empty.code, Some(1), "{empty:?}");
    if let Some(stored) = peer.stored_ids("INBOX") {
        assert!(stored.is_empty(), "{stored:?}");
    }
}

against_both!(
    fetchmail_keeps_then_flushes,
    fetchmail_keeps_then_flushes_on_sluice,
    fetchmail_keeps_then_flushes_on_dovecot,
    ["fetchmail", "python3"]
);

// ---------------------------------------------------------------------------
// neomutt: open INBOX over TLS, save every message, delete one.

fn neomutt_saves_and_deletes(peer: &Peer) {
    let one = simple("nm-one");
    let two = simple("nm-two");
    peer.deliver(&one);
    peer.deliver(&two);
    let saved = peer.files().join("saved.mbox");
    let commands = format!(
        "<tag-pattern>~A<enter><tag-prefix><copy-message>{}<enter>\
         <untag-pattern>~A<enter><first-entry><delete-message><sync-mailbox><quit>",
        saved.display()
    );
    let finished = imap::neomutt(
        peer.files(),
        peer.imaps(),
        &peer.certificate,
        USER,
        PASSWORD,
        &commands,
    )
    .unwrap();
    assert!(finished.success, "{finished:?}");
    let mbox = std::fs::read_to_string(&saved)
        .unwrap_or_else(|e| panic!("neomutt saved nothing ({e}): {finished:?}"));
    let froms = mbox.lines().filter(|l| l.starts_with("From ")).count();
    assert_eq!(froms, 2, "{mbox}");
    for name in ["nm-one", "nm-two"] {
        assert!(mbox.contains(&id(name)), "{mbox}");
    }
    // One of the two was deleted and expunged by the sync.
    let view = peer.view(&["INBOX"]);
    assert_eq!(view["INBOX"].len(), 1, "{view:?}\n{finished:?}");
    if let Some(stored) = peer.stored_ids("INBOX") {
        assert_eq!(stored.len(), 1);
    }
}

against_both!(
    neomutt_saves_and_deletes,
    neomutt_saves_and_deletes_on_sluice,
    neomutt_saves_and_deletes_on_dovecot,
    ["neomutt", "script", "python3"]
);

// ---------------------------------------------------------------------------
// Sluice only: no password before TLS.

#[test]
fn sluice_refuses_login_before_tls() {
    if !require_tool("python3") {
        return;
    }
    let peer = Peer::sluice().unwrap();
    let run = peer.session(
        ImapSecurity::Plain,
        vec![Step::new("capability"), login(USER, PASSWORD)],
    );
    let capabilities = run.step("capability").text.to_ascii_uppercase();
    assert!(
        capabilities.contains("LOGINDISABLED") && capabilities.contains("STARTTLS"),
        "{}",
        run.raw
    );
    assert!(!run.step("login").ok(), "{}", run.raw);
}
