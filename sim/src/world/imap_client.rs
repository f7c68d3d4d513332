//! A simulated IMAP client: test scaffolding that speaks IMAP bytes to a host's
//! IMAP service (core's `ImapSession`) and records what it was answered for the
//! retrieval checkers (`check::retrieval`). It logs in, selects INBOX and then,
//! after a drawn think time, lists its folder, adds flags, moves a message to
//! Archive, expunges what it flagged \Deleted, idles, or switches folders; it
//! reconnects when its connection ends. It decides nothing about mail: it is one
//! user at a keyboard, and its small parser reads only what it asks for.
//!
//! The world drives it (`world/retrieval.rs`): bytes in, connection events, and one
//! timer, each call answering with what the world must do.

use crate::check::retrieval::{
    Expunged, FlagsStored, Idled, Listed, Listing, Moved, RetrievalLog, copy_name,
};
use crate::engine::Pcg32;
use sluice_core::time::{Duration, Instant};

/// How long the client waits for a command's tagged answer before it gives the
/// connection up (a silent crash leaves it waiting otherwise).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The folder MOVE takes messages to.
pub const ARCHIVE: &str = "Archive";
pub const INBOX: &str = "INBOX";

/// What the world must do for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Open a connection to the mailbox host.
    Connect,
    Send(Vec<u8>),
    /// Drop the connection.
    Close,
}

/// How the client behaves, from the scenario.
#[derive(Clone, Copy, Debug)]
pub struct ClientParams {
    pub think_max: Duration,
    pub idle_min: Duration,
    pub idle_max: Duration,
}

/// The command the client waits on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Command {
    Login,
    Select(String),
    List,
    Store { uid: u32, flag: &'static str },
    Move { uid: u32 },
    Expunge { uids: Vec<u32> },
    Noop,
    Idle,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Disconnected,
    Connecting,
    Greeting,
    /// Thinking before the next command.
    Ready,
    Waiting {
        tag: String,
        command: Command,
        sent: Instant,
    },
    /// In IDLE until the timer.
    Idling {
        tag: String,
    },
}

/// The folder the client has selected.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Selected {
    name: String,
    uidvalidity: u32,
}

/// One simulated IMAP user.
#[derive(Debug)]
pub struct ImapClient {
    pub user: String,
    /// The connection the world gave it, while it has one.
    pub conn: Option<u64>,
    params: ClientParams,
    state: State,
    next_tag: u64,
    input: Vec<u8>,
    selected: Option<Selected>,
    /// UIDVALIDITY heard during a SELECT.
    select_uidvalidity: Option<u32>,
    /// Sequence number − 1 → UID where known (from listings; EXISTS adds unknowns).
    seqs: Vec<Option<u32>>,
    /// The last listing of the selected folder, kept up to date with own changes.
    listing: Vec<Listed>,
    /// FETCH responses of the current command: (sequence number, message).
    fetched: Vec<(u32, Listed)>,
    /// (UID, tag) of the messages the server reported expunged during the
    /// current command.
    expunged_now: Vec<(u32, String)>,
    /// COPYUID of the current command: (UIDVALIDITY, target UIDs).
    copyuid: Option<(u32, Vec<u32>)>,
    idle: Option<Idled>,
    /// When the world must call `on_timer`, and the generation of that timer.
    timer: Option<Instant>,
    pub timer_generation: u64,
}

impl ImapClient {
    pub fn new(user: String, params: ClientParams) -> ImapClient {
        ImapClient {
            user,
            conn: None,
            params,
            state: State::Disconnected,
            next_tag: 0,
            input: Vec::new(),
            selected: None,
            select_uidvalidity: None,
            seqs: Vec::new(),
            listing: Vec::new(),
            fetched: Vec::new(),
            expunged_now: Vec::new(),
            copyuid: None,
            idle: None,
            timer: None,
            timer_generation: 0,
        }
    }

    /// The timer the world must set, if it changed since the last call.
    pub fn take_timer(&mut self) -> Option<(Instant, u64)> {
        let at = self.timer.take()?;
        self.timer_generation += 1;
        Some((at, self.timer_generation))
    }

    fn set_timer(&mut self, at: Instant) {
        self.timer = Some(at);
    }

    /// The first connection, at `at`.
    pub fn start(&mut self, at: Instant) {
        self.set_timer(at);
    }

    fn think(&mut self, now: Instant, rng: &mut Pcg32) {
        self.state = State::Ready;
        let millis = rng.between(1, self.params.think_max.as_millis().max(1));
        self.set_timer(now + Duration::from_millis(millis));
    }

    fn send(&mut self, now: Instant, command: Command, text: &str) -> ClientAction {
        self.next_tag += 1;
        let tag = format!("c{}", self.next_tag);
        self.fetched.clear();
        self.expunged_now.clear();
        self.copyuid = None;
        if let Command::Select(_) = command {
            // SELECT deselects the folder before it answers (RFC 9051 §6.3.2).
            self.selected = None;
            self.select_uidvalidity = None;
            self.seqs.clear();
            self.listing.clear();
        }
        self.state = State::Waiting {
            tag: tag.clone(),
            command,
            sent: now,
        };
        self.set_timer(now + ANSWER_TIMEOUT);
        ClientAction::Send(format!("{tag} {text}\r\n").into_bytes())
    }

    /// The timer fired.
    pub fn on_timer(
        &mut self,
        now: Instant,
        rng: &mut Pcg32,
        log: &mut RetrievalLog,
    ) -> Vec<ClientAction> {
        match self.state.clone() {
            State::Disconnected => {
                self.state = State::Connecting;
                vec![ClientAction::Connect]
            }
            State::Ready => vec![self.next_command(now, rng)],
            State::Idling { tag } => {
                self.end_idle(now, log);
                self.state = State::Waiting {
                    tag,
                    command: Command::Idle,
                    sent: now,
                };
                self.set_timer(now + ANSWER_TIMEOUT);
                vec![ClientAction::Send(b"DONE\r\n".to_vec())]
            }
            // No answer in time: the connection is given up.
            State::Greeting | State::Waiting { .. } => {
                self.lost(now, rng, log);
                vec![ClientAction::Close]
            }
            State::Connecting => Vec::new(),
        }
    }

    /// The connection is open.
    pub fn on_connected(&mut self, now: Instant, conn: u64) {
        self.conn = Some(conn);
        self.state = State::Greeting;
        self.input.clear();
        self.set_timer(now + ANSWER_TIMEOUT);
    }

    /// The connection ended, or never opened: reconnect after a pause.
    pub fn on_closed(&mut self, now: Instant, rng: &mut Pcg32, log: &mut RetrievalLog) {
        self.lost(now, rng, log);
    }

    fn lost(&mut self, now: Instant, rng: &mut Pcg32, log: &mut RetrievalLog) {
        self.end_idle(now, log);
        self.conn = None;
        self.state = State::Disconnected;
        self.selected = None;
        self.seqs.clear();
        self.listing.clear();
        self.input.clear();
        self.set_timer(now + Duration::from_millis(rng.between(2_000, 20_000)));
    }

    fn end_idle(&mut self, now: Instant, log: &mut RetrievalLog) {
        if let Some(mut idle) = self.idle.take() {
            idle.ended = now;
            log.idles.push(idle);
        }
    }

    /// The next command, drawn.
    fn next_command(&mut self, now: Instant, rng: &mut Pcg32) -> ClientAction {
        let Some(selected) = self.selected.clone() else {
            return self.send(now, Command::Select(INBOX.to_owned()), "SELECT INBOX");
        };
        let roll = rng.below(100);
        let pick = |rng: &mut Pcg32, listing: &[Listed]| {
            let index = rng.below(listing.len() as u64) as usize;
            listing.get(index).map(|m| m.uid)
        };
        if roll < 25 || self.listing.is_empty() && roll < 67 {
            return self.list(now);
        }
        if roll < 45 {
            let flag = match rng.below(3) {
                0 => "\\Seen",
                1 => "\\Flagged",
                _ => "\\Deleted",
            };
            if let Some(uid) = pick(rng, &self.listing) {
                return self.send(
                    now,
                    Command::Store { uid, flag },
                    &format!("UID STORE {uid} +FLAGS ({flag})"),
                );
            }
        }
        if roll < 57
            && selected.name == INBOX
            && let Some(uid) = pick(rng, &self.listing)
        {
            return self.send(
                now,
                Command::Move { uid },
                &format!("UID MOVE {uid} {ARCHIVE}"),
            );
        }
        if roll < 67 {
            let uids: Vec<u32> = self
                .listing
                .iter()
                .filter(|m| m.flags.iter().any(|f| f == "\\Deleted"))
                .map(|m| m.uid)
                .collect();
            if !uids.is_empty() {
                let set = sluice_core::imap::request::UidSet::from_uids(uids.iter().copied());
                let text = format!("UID EXPUNGE {}", set.to_imap());
                return self.send(now, Command::Expunge { uids }, &text);
            }
        }
        if roll < 75 {
            return self.send(now, Command::Noop, "NOOP");
        }
        if roll < 90 {
            return self.send(now, Command::Idle, "IDLE");
        }
        let other = if selected.name == INBOX {
            ARCHIVE
        } else {
            INBOX
        };
        self.send(
            now,
            Command::Select(other.to_owned()),
            &format!("SELECT {other}"),
        )
    }

    fn list(&mut self, now: Instant) -> ClientAction {
        self.send(
            now,
            Command::List,
            "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID RECEIVED)])",
        )
    }

    /// Bytes from the server.
    pub fn on_bytes(
        &mut self,
        now: Instant,
        rng: &mut Pcg32,
        log: &mut RetrievalLog,
        bytes: &[u8],
    ) -> Vec<ClientAction> {
        self.input.extend_from_slice(bytes);
        let mut actions = Vec::new();
        while let Some((line, literal)) = take_response(&mut self.input) {
            actions.extend(self.response(now, rng, log, &line, literal.as_deref()));
            if self.conn.is_none() {
                break;
            }
        }
        actions
    }

    fn protocol_error(&mut self, now: Instant, log: &mut RetrievalLog, text: String) {
        log.protocol_errors.push((now, self.user.clone(), text));
    }

    /// One whole response: its text (a literal's bytes left out) and the literal.
    fn response(
        &mut self,
        now: Instant,
        rng: &mut Pcg32,
        log: &mut RetrievalLog,
        line: &str,
        literal: Option<&[u8]>,
    ) -> Vec<ClientAction> {
        if let Some(rest) = line.strip_prefix("* ") {
            return self.untagged(now, log, rest, literal);
        }
        if line.starts_with('+') {
            if let State::Waiting {
                tag,
                command: Command::Idle,
                ..
            } = self.state.clone()
            {
                let idle_secs = rng.between(
                    self.params.idle_min.as_millis() / 1000,
                    self.params.idle_max.as_millis() / 1000,
                );
                if self.selected.as_ref().is_some_and(|s| s.name == INBOX) {
                    self.idle = Some(Idled {
                        user: self.user.clone(),
                        started: now,
                        ended: now,
                        exists_at_start: self.seqs.len() as u32,
                        exists: Vec::new(),
                    });
                }
                self.state = State::Idling { tag };
                self.set_timer(now + Duration::from_secs(idle_secs));
            } else {
                self.protocol_error(now, log, format!("unexpected continuation {line:?}"));
            }
            return Vec::new();
        }
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        let State::Waiting {
            tag: waited,
            command,
            sent,
        } = self.state.clone()
        else {
            self.protocol_error(now, log, format!("unexpected tagged response {line:?}"));
            return Vec::new();
        };
        if tag != waited {
            self.protocol_error(now, log, format!("response {line:?} for another tag"));
            return Vec::new();
        }
        let status = rest.split(' ').next().unwrap_or("");
        match status {
            "OK" => self.done(now, rng, log, command, sent),
            "NO" => {
                if command == Command::Login {
                    self.protocol_error(now, log, format!("LOGIN refused: {line:?}"));
                }
                if let Command::Select(_) = command {
                    self.selected = None;
                }
                self.think(now, rng);
                Vec::new()
            }
            _ => {
                self.protocol_error(now, log, format!("{command:?} answered {line:?}"));
                self.think(now, rng);
                Vec::new()
            }
        }
    }

    fn untagged(
        &mut self,
        now: Instant,
        log: &mut RetrievalLog,
        rest: &str,
        literal: Option<&[u8]>,
    ) -> Vec<ClientAction> {
        if self.state == State::Greeting {
            if rest.starts_with("OK") {
                let password = format!("secret-{}", self.user);
                let text = format!("LOGIN {} {password}", self.user);
                return vec![self.send(now, Command::Login, &text)];
            }
            // A BYE greeting: the close follows.
            return Vec::new();
        }
        let mut words = rest.split(' ');
        let first = words.next().unwrap_or("");
        let second = words.next().unwrap_or("");
        if let Ok(number) = first.parse::<u32>() {
            match second {
                "EXISTS" => {
                    let count = number as usize;
                    if count >= self.seqs.len() {
                        self.seqs.resize(count, None);
                    } else {
                        self.protocol_error(
                            now,
                            log,
                            format!("EXISTS {count} below the {} known", self.seqs.len()),
                        );
                    }
                    if let Some(idle) = &mut self.idle
                        && matches!(self.state, State::Idling { .. })
                    {
                        idle.exists.push((now, number));
                    }
                }
                "EXPUNGE" => {
                    let index = number as usize;
                    if index == 0 || index > self.seqs.len() {
                        self.protocol_error(now, log, format!("EXPUNGE {number} out of range"));
                    } else if let Some(uid) = self.seqs.remove(index - 1) {
                        let tag = self
                            .listing
                            .iter()
                            .find(|m| m.uid == uid)
                            .map(|m| m.tag.clone())
                            .unwrap_or_default();
                        self.expunged_now.push((uid, tag));
                        self.listing.retain(|m| m.uid != uid);
                    }
                }
                "FETCH" => match parse_fetch(rest, literal).filter(|_| number > 0) {
                    Some(message) => {
                        if let Some(slot) = self.seqs.get_mut(number as usize - 1) {
                            *slot = Some(message.uid);
                        }
                        if let Some(known) = self.listing.iter_mut().find(|m| m.uid == message.uid)
                        {
                            known.flags = message.flags.clone();
                        }
                        self.fetched.push((number, message));
                    }
                    None => self.protocol_error(now, log, format!("unreadable FETCH {rest:?}")),
                },
                _ => {}
            }
            return Vec::new();
        }
        if first == "OK"
            && let Some(code) = rest.split('[').nth(1).and_then(|c| c.split(']').next())
        {
            let mut parts = code.split(' ');
            match parts.next() {
                Some("UIDVALIDITY") => {
                    self.select_uidvalidity = parts.next().and_then(|v| v.parse().ok());
                }
                Some("COPYUID") => {
                    let uidvalidity = parts.next().and_then(|v| v.parse().ok());
                    let _source = parts.next();
                    let targets = parts.next().map(parse_uid_set).unwrap_or_default();
                    if let Some(uidvalidity) = uidvalidity {
                        self.copyuid = Some((uidvalidity, targets));
                    }
                }
                _ => {}
            }
        }
        Vec::new()
    }

    /// A tagged OK for `command`.
    fn done(
        &mut self,
        now: Instant,
        rng: &mut Pcg32,
        log: &mut RetrievalLog,
        command: Command,
        sent: Instant,
    ) -> Vec<ClientAction> {
        let folder = self.selected.clone();
        match command {
            Command::Login => {
                log.logins += 1;
                return vec![self.send(now, Command::Select(INBOX.to_owned()), "SELECT INBOX")];
            }
            Command::Select(name) => {
                let Some(uidvalidity) = self.select_uidvalidity.take() else {
                    self.protocol_error(now, log, format!("SELECT {name} without UIDVALIDITY"));
                    self.think(now, rng);
                    return Vec::new();
                };
                self.selected = Some(Selected { name, uidvalidity });
                self.listing.clear();
                // EXISTS came before the OK; what the UIDs are, the listing says.
                self.seqs.iter_mut().for_each(|slot| *slot = None);
                return vec![self.list(now)];
            }
            Command::List => {
                if let Some(folder) = &folder {
                    let mut messages: Vec<Listed> =
                        self.fetched.drain(..).map(|(_, m)| m).collect();
                    messages.sort_by_key(|m| m.uid);
                    messages.dedup_by_key(|m| m.uid);
                    log.listings.push(Listing {
                        user: self.user.clone(),
                        folder: folder.name.clone(),
                        uidvalidity: folder.uidvalidity,
                        sent,
                        done: now,
                        messages: messages.clone(),
                    });
                    self.listing = messages;
                }
            }
            Command::Store { uid, flag } => {
                if let Some(folder) = &folder {
                    log.flags.push(FlagsStored {
                        user: self.user.clone(),
                        folder: folder.name.clone(),
                        uidvalidity: folder.uidvalidity,
                        uid,
                        flags: vec![flag.to_owned()],
                        at: now,
                    });
                }
                if let Some(known) = self.listing.iter_mut().find(|m| m.uid == uid)
                    && !known.flags.iter().any(|f| f == flag)
                {
                    known.flags.push(flag.to_owned());
                }
            }
            Command::Move { uid } => {
                let tag = self
                    .listing
                    .iter()
                    .find(|m| m.uid == uid)
                    .map(|m| m.tag.clone())
                    .unwrap_or_default();
                if let Some(folder) = &folder {
                    log.moves.push(Moved {
                        user: self.user.clone(),
                        tag,
                        from: folder.name.clone(),
                        from_uidvalidity: folder.uidvalidity,
                        uid,
                        to: ARCHIVE.to_owned(),
                        target: self
                            .copyuid
                            .take()
                            .and_then(|(v, uids)| uids.first().map(|uid| (v, *uid))),
                        at: now,
                    });
                }
                self.listing.retain(|m| m.uid != uid);
            }
            Command::Expunge { uids } => {
                for (uid, tag) in std::mem::take(&mut self.expunged_now) {
                    if !uids.contains(&uid) {
                        self.protocol_error(now, log, format!("UID EXPUNGE removed {uid} too"));
                        continue;
                    }
                    if let Some(folder) = &folder {
                        log.expunges.push(Expunged {
                            user: self.user.clone(),
                            tag,
                            folder: folder.name.clone(),
                            uidvalidity: folder.uidvalidity,
                            uid,
                            at: now,
                        });
                    }
                }
            }
            Command::Noop | Command::Idle => {}
        }
        self.think(now, rng);
        Vec::new()
    }
}

/// Takes one whole response from `input`: its text without CRLF, with each
/// literal's bytes taken out (kept apart; a listing asks for one per message).
fn take_response(input: &mut Vec<u8>) -> Option<(String, Option<Vec<u8>>)> {
    let mut text = Vec::new();
    let mut literal = None;
    let mut at = 0;
    loop {
        let end = input[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let line = &input[at..end];
        text.extend_from_slice(line);
        let announced = literal_length(line);
        at = end + 2;
        match announced {
            Some(length) => {
                if input.len() < at + length {
                    return None;
                }
                literal = Some(input[at..at + length].to_vec());
                at += length;
            }
            None => break,
        }
    }
    input.drain(..at);
    Some((String::from_utf8_lossy(&text).into_owned(), literal))
}

/// The length of the literal a line announces at its end (`{28}`).
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?;
    let open = line.strip_suffix('}')?.rfind('{')?;
    line[open + 1..line.len() - 1].parse().ok()
}

/// UID and FLAGS of a FETCH response, and the copy its literal's header fields
/// name (a flag push has none).
fn parse_fetch(rest: &str, literal: Option<&[u8]>) -> Option<Listed> {
    let items = rest.split_once('(')?.1;
    let uid = items
        .split(['(', ' ', ')'])
        .skip_while(|word| *word != "UID")
        .nth(1)?
        .parse()
        .ok()?;
    let flags = match items.split_once("FLAGS (") {
        Some((_, after)) => after
            .split(')')
            .next()?
            .split(' ')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let tag = literal.map(copy_name).unwrap_or_default();
    Some(Listed { uid, tag, flags })
}

/// The UIDs of a sequence set such as `4:6,9`.
fn parse_uid_set(text: &str) -> Vec<u32> {
    let mut uids = Vec::new();
    for part in text.split(',') {
        let (low, high) = part.split_once(':').unwrap_or((part, part));
        if let (Ok(low), Ok(high)) = (low.parse::<u32>(), high.parse::<u32>()) {
            uids.extend(low.min(high)..=low.max(high));
        }
    }
    uids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_taken_whole_with_their_literal() {
        let mut input = b"* 1 FETCH (UID 4 FLAGS (\\Seen) BODY[HEADER.FIELDS (MESSAGE-ID)] {31}\r\nMessage-ID: <m7@workload.sim>\r\n)\r\nc2 OK".to_vec();
        let (line, literal) = take_response(&mut input).expect("one response");
        assert_eq!(
            literal.as_deref(),
            Some(&b"Message-ID: <m7@workload.sim>\r\n"[..])
        );
        let message = parse_fetch(line.strip_prefix("* 1 ").unwrap(), literal.as_deref());
        assert_eq!(
            message,
            Some(Listed {
                uid: 4,
                tag: "m7".to_owned(),
                flags: vec!["\\Seen".to_owned()]
            })
        );
        assert_eq!(
            take_response(&mut input),
            None,
            "the tagged line is not whole yet"
        );
        input.extend_from_slice(b" done\r\n");
        assert_eq!(
            take_response(&mut input).map(|r| r.0).as_deref(),
            Some("c2 OK done")
        );
    }

    #[test]
    fn uid_sets_are_read() {
        assert_eq!(parse_uid_set("4:6,9"), vec![4, 5, 6, 9]);
        assert_eq!(parse_uid_set("x"), Vec::<u32>::new());
    }
}
