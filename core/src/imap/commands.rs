//! What each command does: its state check, its immediate responses, or the
//! request it sends to the driver.

use super::list::{self, ListSpec};
use super::request::{MailboxRequest, Resync, UidSet};
use super::responses::{self, Kind, StatusItem};
use super::{AfterChanges, ImapSession, Mode, Purpose};
use crate::imap::event::{DisconnectReason, SessionEvent};
use crate::imap::io::{Credentials, Output};
use crate::mailbox::FlagMode;
use crate::sasl;
use crate::time::Instant;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_types::command::{CommandBody, SelectParameter};
use imap_types::core::AString;
use imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_types::mailbox::{ListMailbox, Mailbox};
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_types::status::StatusDataItemName;

/// The tag at the start of a command, if it is a valid one; `*` otherwise.
pub(super) fn tag_of(command: &[u8]) -> String {
    let end = command
        .iter()
        .position(|&byte| byte == b' ' || byte == b'\r' || byte == b'\n')
        .unwrap_or(command.len());
    let tag = &command[..end];
    let valid = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&byte| byte > b' ' && byte < 0x7f && !b"(){%*\"\\+".contains(&byte));
    match core::str::from_utf8(tag) {
        Ok(tag) if valid => tag.to_owned(),
        _ => "*".to_owned(),
    }
}

/// The command word after the tag, for logs and for framing decisions.
pub(super) fn verb_of(command: &[u8]) -> String {
    command
        .split(|&byte| byte == b' ' || byte == b'\r' || byte == b'\n')
        .nth(1)
        .and_then(|verb| core::str::from_utf8(verb).ok())
        .filter(|verb| verb.len() <= 16 && verb.bytes().all(|b| b.is_ascii_alphabetic()))
        .map_or_else(|| "?".to_owned(), str::to_ascii_uppercase)
}

/// A name as the client spelled it, in UTF-8: decoded from modified UTF-7
/// unless the client uses UTF-8 names.
fn decoded(raw: &[u8], utf8: bool) -> Option<String> {
    let text = String::from_utf8(raw.to_vec()).ok()?;
    if utf8 {
        Some(text)
    } else {
        super::utf7::decode(&text)
    }
}

/// A mailbox name as the store knows it.
fn mailbox_name(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".to_owned()),
        Mailbox::Other(other) => {
            let name = decoded(other.as_ref(), utf8)?;
            let name = name
                .strip_suffix(list::DELIMITER)
                .unwrap_or(&name)
                .to_owned();
            (!name.is_empty()).then_some(name)
        }
    }
}

fn astring_text(value: &AString<'_>) -> Option<String> {
    String::from_utf8(value.as_ref().to_vec()).ok()
}

fn list_mailbox_text(value: &ListMailbox<'_>, utf8: bool) -> Option<String> {
    match value {
        ListMailbox::Token(token) => decoded(token.as_ref(), utf8),
        ListMailbox::String(string) => decoded(string.as_ref(), utf8),
    }
}

/// The canonical spelling of a flag for the store.
fn flag_text(flag: &Flag<'_>) -> String {
    flag.to_string()
}

impl ImapSession {
    pub(super) fn on_command(&mut self, now: Instant, command: &[u8]) {
        let stripped = super::search_flow::strip_return(command);
        self.search_return = stripped.as_ref().map(|(_, options)| *options);
        let command = stripped
            .as_ref()
            .map_or(command, |(rest, _)| rest.as_slice());
        let decoded = CommandCodec::default().decode(command);
        match decoded {
            Ok((b"", parsed)) => {
                let tag = parsed.tag.inner().to_owned();
                self.dispatch(now, tag, parsed.body);
            }
            _ => {
                if verb_of(command) == "STATUS"
                    && let Some((tag, mailbox, items)) = parse_status(command)
                {
                    if self.user.is_none() {
                        self.wrong_state(&tag, "STATUS");
                        return;
                    }
                    let name = if self.utf8_names() {
                        Some(mailbox)
                    } else {
                        super::utf7::decode(&mailbox)
                    };
                    let Some(mailbox) = name else {
                        self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", "STATUS");
                        return;
                    };
                    let request = MailboxRequest::Status {
                        mailbox: mailbox.clone(),
                    };
                    self.ask(
                        now,
                        request,
                        Purpose::Status {
                            tag,
                            mailbox,
                            items,
                        },
                    );
                    return;
                }
                if verb_of(command) == "LIST"
                    && let Some((tag, mut spec)) = list::parse_extended(command)
                {
                    if !self.utf8_names() {
                        let names = std::iter::once(&mut spec.reference).chain(&mut spec.patterns);
                        for name in names {
                            match super::utf7::decode(name) {
                                Some(text) => *name = text,
                                None => {
                                    self.reject(
                                        &tag,
                                        Kind::Bad,
                                        None,
                                        "Invalid mailbox name",
                                        "LIST",
                                    );
                                    return;
                                }
                            }
                        }
                    }
                    if self.user.is_some() {
                        self.list(now, tag, spec);
                    } else {
                        self.wrong_state(&tag, "LIST");
                    }
                    return;
                }
                let tag = tag_of(command);
                let verb = verb_of(command);
                self.reject(&tag, Kind::Bad, None, "Invalid command syntax", &verb);
            }
        }
    }

    fn wrong_state(&mut self, tag: &str, command: &str) {
        self.reject(
            tag,
            Kind::Bad,
            None,
            "Command not valid in this state",
            command,
        );
    }

    pub(super) fn ok(&mut self, now: Instant, tag: &str, text: &str) {
        self.finish(now, responses::tagged(tag, Kind::Ok, None, text), true);
    }

    fn dispatch(&mut self, now: Instant, tag: String, body: CommandBody<'_>) {
        let name = body.name();
        let authenticated = self.user.is_some();
        let selected = self.selected.is_some();
        match body {
            CommandBody::Capability => {
                let line = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.send(line.into_bytes());
                self.ok(now, &tag, "CAPABILITY completed");
            }
            CommandBody::Noop | CommandBody::Check
                if authenticated || matches!(body, CommandBody::Noop) =>
            {
                // NOOP is the client's poll: always ask the store.
                if self.selected.is_some() {
                    self.changed = true;
                }
                self.ok(now, &tag, &format!("{name} completed"));
            }
            CommandBody::Logout => {
                self.send(responses::bye("Logging out"));
                self.send(responses::tagged(&tag, Kind::Ok, None, "LOGOUT completed"));
                self.close(None, DisconnectReason::Logout);
            }
            CommandBody::Id { .. } => {
                self.send(b"* ID (\"name\" \"Sluice\")\r\n".to_vec());
                self.ok(now, &tag, "ID completed");
            }
            CommandBody::StartTLS if !authenticated => self.starttls(&tag),
            CommandBody::Login { username, password } if !authenticated => {
                let (Some(username), Some(password)) =
                    (astring_text(&username), astring_text(password.declassify()))
                else {
                    self.reject(&tag, Kind::Bad, None, "Credentials must be UTF-8", "LOGIN");
                    return;
                };
                self.login(now, tag, "LOGIN", None, username, password);
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                if !mechanism.as_ref().eq_ignore_ascii_case("PLAIN") {
                    self.reject(
                        &tag,
                        Kind::No,
                        None,
                        "Unsupported mechanism",
                        "AUTHENTICATE",
                    );
                } else if !self.auth_allowed() {
                    self.reject(
                        &tag,
                        Kind::No,
                        Some("PRIVACYREQUIRED"),
                        "TLS required",
                        "AUTHENTICATE",
                    );
                } else if let Some(response) = initial_response {
                    let encoded = STANDARD.encode(response.declassify().as_ref());
                    self.on_auth_response(now, tag, encoded.as_bytes());
                } else {
                    self.send(responses::continuation(""));
                    self.mode = Mode::AuthResponse { tag };
                }
            }
            CommandBody::Enable { capabilities } if authenticated => {
                let mut newly = Vec::new();
                for capability in capabilities.as_ref() {
                    let word = capability.to_string().to_ascii_uppercase();
                    let switch = match word.as_str() {
                        "CONDSTORE" => Some(&mut self.enabled.condstore),
                        "QRESYNC" => Some(&mut self.enabled.qresync),
                        "IMAP4REV2" => Some(&mut self.enabled.imap4rev2),
                        "UTF8=ACCEPT" => Some(&mut self.enabled.utf8),
                        _ => None,
                    };
                    if let Some(switch) = switch
                        && !*switch
                    {
                        *switch = true;
                        newly.push(capability.to_string());
                    }
                }
                if self.enabled.qresync {
                    // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                    self.enabled.condstore = true;
                }
                let mut line = "* ENABLED".to_owned();
                for word in newly {
                    line.push(' ');
                    line.push_str(&word);
                }
                line.push_str("\r\n");
                self.send(line.into_bytes());
                self.ok(now, &tag, "ENABLE completed");
            }
            CommandBody::Namespace if authenticated => {
                self.send(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n".to_vec());
                self.ok(now, &tag, "NAMESPACE completed");
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } if authenticated => {
                self.select(now, tag, &mailbox, &parameters, false);
            }
            CommandBody::Examine {
                mailbox,
                parameters,
            } if authenticated => {
                self.select(now, tag, &mailbox, &parameters, true);
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            }
            | CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } if authenticated => {
                let lsub = name == "LSUB";
                let (Some(reference), Some(pattern)) = (
                    mailbox_reference(&reference, self.utf8_names()),
                    list_mailbox_text(&mailbox_wildcard, self.utf8_names()),
                ) else {
                    self.reject(&tag, Kind::Bad, None, "Names must be UTF-8", name);
                    return;
                };
                let spec = ListSpec {
                    reference,
                    patterns: vec![pattern],
                    lsub,
                    ..ListSpec::default()
                };
                self.list(now, tag, spec);
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } if authenticated => {
                let Some(mailbox) = mailbox_name(&mailbox, self.utf8_names()) else {
                    self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", "STATUS");
                    return;
                };
                let items = item_names
                    .iter()
                    .filter_map(|item| match item {
                        StatusDataItemName::Messages => Some(StatusItem::Messages),
                        StatusDataItemName::Recent => Some(StatusItem::Recent),
                        StatusDataItemName::UidNext => Some(StatusItem::UidNext),
                        StatusDataItemName::UidValidity => Some(StatusItem::UidValidity),
                        StatusDataItemName::Unseen => Some(StatusItem::Unseen),
                        StatusDataItemName::Deleted => Some(StatusItem::Deleted),
                        StatusDataItemName::HighestModSeq => Some(StatusItem::HighestModSeq),
                        // DELETED-STORAGE (RFC 9208) is not offered.
                        _ => None,
                    })
                    .collect();
                let request = MailboxRequest::Status {
                    mailbox: mailbox.clone(),
                };
                self.ask(
                    now,
                    request,
                    Purpose::Status {
                        tag,
                        mailbox,
                        items,
                    },
                );
            }
            CommandBody::Create { mailbox } if authenticated => {
                self.simple(now, tag, "CREATE", &mailbox, |mailbox| {
                    MailboxRequest::Create {
                        mailbox,
                        special_use: None,
                    }
                });
            }
            CommandBody::Delete { mailbox } if authenticated => {
                self.simple(now, tag, "DELETE", &mailbox, |mailbox| {
                    MailboxRequest::Delete { mailbox }
                });
            }
            CommandBody::Subscribe { mailbox } if authenticated => {
                self.simple(now, tag, "SUBSCRIBE", &mailbox, |mailbox| {
                    MailboxRequest::Subscribe { mailbox }
                });
            }
            CommandBody::Unsubscribe { mailbox } if authenticated => {
                self.simple(now, tag, "UNSUBSCRIBE", &mailbox, |mailbox| {
                    MailboxRequest::Unsubscribe { mailbox }
                });
            }
            CommandBody::Rename { from, to } if authenticated => {
                let (Some(from), Some(to)) = (
                    mailbox_name(&from, self.utf8_names()),
                    mailbox_name(&to, self.utf8_names()),
                ) else {
                    self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", "RENAME");
                    return;
                };
                self.ask(
                    now,
                    MailboxRequest::Rename { from, to },
                    Purpose::Simple {
                        tag,
                        command: "RENAME",
                    },
                );
            }
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } if authenticated => {
                let Some(mailbox) = mailbox_name(&mailbox, self.utf8_names()) else {
                    self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", "APPEND");
                    return;
                };
                let bytes = match message {
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal(literal) => {
                        literal.as_ref().to_vec()
                    }
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal8(literal) => {
                        literal.data.to_vec()
                    }
                };
                let request = MailboxRequest::Append {
                    mailbox,
                    flags: flags.iter().map(flag_text).collect(),
                    internal_date_ms: date.map(|date| date.as_ref().timestamp_millis()),
                    message: bytes,
                };
                self.ask(now, request, Purpose::Append { tag });
            }
            CommandBody::Idle if authenticated => {
                if self.selected.is_some() {
                    self.changed = true;
                    self.idle_changes(now, AfterChanges::IdleStart { tag });
                } else {
                    self.send(responses::continuation("idling"));
                    self.mode = Mode::Idle { tag };
                }
            }
            CommandBody::Close | CommandBody::Unselect if selected => {
                let Some(view) = self.selected.take() else {
                    return;
                };
                if name == "CLOSE" && !view.read_only {
                    // CLOSE expunges silently (RFC 9051 §6.4.1); the view is gone already.
                    let request = MailboxRequest::Expunge {
                        mailbox: view.mailbox.clone(),
                        uids: None,
                    };
                    self.changed = false;
                    self.ask(now, request, Purpose::Expunge { tag, close: true });
                } else {
                    self.changed = false;
                    self.ok(now, &tag, &format!("{name} completed"));
                }
            }
            CommandBody::Expunge if selected => self.expunge(now, tag, None),
            CommandBody::ExpungeUid { sequence_set } if selected => {
                let uids = self.resolve(&sequence_set, true);
                self.expunge(now, tag, Some(uids));
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } if selected => {
                let Some(view) = &self.selected else {
                    return;
                };
                if view.read_only {
                    self.reject(
                        &tag,
                        Kind::No,
                        Some("READ-ONLY"),
                        "Mailbox is read-only",
                        "STORE",
                    );
                    return;
                }
                let mailbox = view.mailbox.clone();
                let uids = self.resolve(&sequence_set, uid);
                let unchanged_since = modifiers
                    .iter()
                    .map(|modifier| match modifier {
                        imap_types::command::StoreModifier::UnchangedSince(value) => *value,
                    })
                    .next();
                if unchanged_since.is_some() {
                    self.enabled.condstore = true;
                }
                let mode = match kind {
                    StoreType::Replace => FlagMode::Set,
                    StoreType::Add => FlagMode::Add,
                    StoreType::Remove => FlagMode::Remove,
                };
                let request = MailboxRequest::Store {
                    mailbox,
                    uids,
                    mode,
                    flags: flags.iter().map(flag_text).collect(),
                    unchanged_since,
                };
                let silent = response == StoreResponse::Silent;
                self.ask(
                    now,
                    request,
                    Purpose::Store {
                        tag,
                        silent,
                        by_uid: uid,
                    },
                );
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            }
            | CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } if selected => {
                let moving = name == "MOVE";
                let Some(to) = mailbox_name(&mailbox, self.utf8_names()) else {
                    self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", name);
                    return;
                };
                let Some(view) = &self.selected else {
                    return;
                };
                if moving && view.read_only {
                    self.reject(
                        &tag,
                        Kind::No,
                        Some("READ-ONLY"),
                        "Mailbox is read-only",
                        name,
                    );
                    return;
                }
                let from = view.mailbox.clone();
                let uids = self.resolve(&sequence_set, uid);
                let request = if moving {
                    MailboxRequest::Move { from, to, uids }
                } else {
                    MailboxRequest::Copy { from, to, uids }
                };
                self.ask(
                    now,
                    request,
                    Purpose::Copy {
                        tag,
                        moving,
                        by_uid: uid,
                    },
                );
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } if selected => self.fetch(
                now,
                tag,
                &sequence_set,
                &macro_or_item_names,
                uid,
                &modifiers,
            ),
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } if selected => {
                if super::super::message::check_charset(charset.as_ref()).is_err() {
                    self.reject(
                        &tag,
                        Kind::No,
                        Some("BADCHARSET (UTF-8 US-ASCII)"),
                        "Unsupported charset",
                        name,
                    );
                    return;
                }
                self.search(now, tag, criteria.into_inner(), uid);
            }
            _ => {
                if matches!(name, "STARTTLS" | "LOGIN" | "AUTHENTICATE")
                    || authenticated
                    || self.known_command(name)
                {
                    self.wrong_state(&tag, name);
                } else {
                    self.reject(&tag, Kind::Bad, None, "Unknown command", name);
                }
            }
        }
    }

    fn fetch(
        &mut self,
        now: Instant,
        tag: String,
        set: &SequenceSet,
        items: &imap_types::fetch::MacroOrMessageDataItemNames<'_>,
        by_uid: bool,
        modifiers: &[imap_types::command::FetchModifier],
    ) {
        use imap_types::command::FetchModifier;
        use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
        let mut changed_since = None;
        let mut vanished = false;
        for modifier in modifiers {
            match modifier {
                FetchModifier::ChangedSince(value) => changed_since = Some(value.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        // RFC 7162 §3.2.6: VANISHED only in UID FETCH with CHANGEDSINCE, QRESYNC enabled.
        if vanished && !(by_uid && changed_since.is_some() && self.enabled.qresync) {
            self.reject(
                &tag,
                Kind::Bad,
                None,
                "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC",
                "FETCH",
            );
            return;
        }
        let asks_modseq = matches!(items, MacroOrMessageDataItemNames::MessageDataItemNames(names)
            if names.contains(&MessageDataItemName::ModSeq));
        if changed_since.is_some() || asks_modseq {
            // RFC 7162 §3.1: both are CONDSTORE enabling commands.
            self.enabled.condstore = true;
        }
        let plan = super::fetch::FetchPlan::new(items, by_uid, changed_since.is_some());
        let uids = self.resolve(set, by_uid);
        let largest = self
            .selected
            .as_ref()
            .map_or(0, |view| view.uidnext().saturating_sub(1));
        let job = super::fetch_flow::FetchJob {
            tag,
            by_uid,
            plan,
            changed_since,
            asked: if vanished {
                uid_set(set, largest)
            } else {
                UidSet::default()
            },
            batches: super::fetch_flow::Batches::new(uids, self.config.limits.fetch_batch),
            batch: Default::default(),
            seen_set: Vec::new(),
            stage: super::fetch_flow::FetchStage::Metadata,
        };
        self.start_fetch(now, job, vanished);
    }

    fn search(
        &mut self,
        now: Instant,
        tag: String,
        keys: Vec<imap_types::search::SearchKey<'_>>,
        by_uid: bool,
    ) {
        use imap_types::IntoStatic;
        let Some(view) = &self.selected else {
            return;
        };
        let all = UidSet::from_uids(view.uids().iter());
        let returns = self.search_return.take().or_else(|| {
            self.enabled
                .imap4rev2
                .then(|| super::search_flow::ReturnOptions {
                    all: true,
                    ..Default::default()
                })
        });
        let keys: Vec<_> = keys.into_iter().map(IntoStatic::into_static).collect();
        if keys.iter().any(super::search_flow::uses_modseq) {
            self.enabled.condstore = true;
        }
        let job = super::search_flow::SearchJob {
            tag,
            by_uid,
            keys,
            returns,
            batches: super::fetch_flow::Batches::new(all, self.config.limits.fetch_batch),
            batch: Default::default(),
            hits: Vec::new(),
            content_stage: false,
        };
        self.search_next_batch(now, job);
    }

    fn known_command(&self, name: &str) -> bool {
        !matches!(
            name,
            "COMPRESS"
                | "GETQUOTA"
                | "GETQUOTAROOT"
                | "SETQUOTA"
                | "SETMETADATA"
                | "GETMETADATA"
                | "SORT"
                | "THREAD"
        )
    }

    fn starttls(&mut self, tag: &str) {
        if self.config.tls != super::TlsMode::StartTlsOffered || self.tls_active {
            self.reject(tag, Kind::Bad, None, "TLS is not available", "STARTTLS");
            return;
        }
        self.send(responses::tagged(
            tag,
            Kind::Ok,
            None,
            "Begin TLS negotiation now",
        ));
        if self.framer.pending() > 0 {
            // Commands pipelined behind STARTTLS would be read as if they came
            // through TLS (CVE-2011-0411).
            self.close(None, DisconnectReason::StartTlsInjection);
            return;
        }
        self.framer.clear();
        self.outputs.push_back(Output::StartTls);
        self.mode = Mode::TlsHandshake;
    }

    fn login(
        &mut self,
        now: Instant,
        tag: String,
        mechanism: &'static str,
        authorization_id: Option<String>,
        username: String,
        password: String,
    ) {
        if !self.auth_allowed() {
            self.reject(
                &tag,
                Kind::No,
                Some("PRIVACYREQUIRED"),
                "TLS required",
                mechanism,
            );
            return;
        }
        let token = self.tokens.next();
        self.outputs.push_back(Output::CheckCredentials {
            token,
            credentials: Credentials {
                mechanism,
                authorization_id,
                username: username.clone(),
                password,
            },
        });
        self.mode = Mode::Waiting(super::Wait {
            token,
            deadline: now + self.config.limits.driver_timeout,
            purpose: Purpose::Credentials {
                tag,
                mechanism,
                username,
            },
        });
    }

    /// The PLAIN response line (base64), or `*` to cancel.
    pub(super) fn on_auth_response(&mut self, now: Instant, tag: String, line: &[u8]) {
        if sasl::is_cancel(line) {
            self.reject(
                &tag,
                Kind::Bad,
                None,
                "AUTHENTICATE cancelled",
                "AUTHENTICATE",
            );
            return;
        }
        match sasl::decode_plain(line) {
            Ok(plain) => self.login(
                now,
                tag,
                "PLAIN",
                plain.authorization_id,
                plain.username,
                plain.password,
            ),
            Err(sasl::Undecodable) => {
                self.event(SessionEvent::AuthFailed {
                    mechanism: "PLAIN".to_owned(),
                    username: None,
                });
                self.reject(
                    &tag,
                    Kind::Bad,
                    None,
                    "Malformed PLAIN response",
                    "AUTHENTICATE",
                );
            }
        }
    }

    pub(super) fn on_idle_line(&mut self, now: Instant, tag: String, line: &[u8]) {
        if line.eq_ignore_ascii_case(b"DONE") {
            self.ok(now, &tag, "IDLE terminated");
        } else {
            self.reject(&tag, Kind::Bad, None, "Expected DONE", "IDLE");
        }
    }

    /// Asks for the selected mailbox's changes on the way into, or during, IDLE.
    pub(super) fn idle_changes(&mut self, now: Instant, after: AfterChanges) {
        let Some(view) = &self.selected else {
            return;
        };
        self.changed = false;
        let request = MailboxRequest::Changes {
            mailbox: view.mailbox.clone(),
            since_modseq: view.highest_modseq(),
            known_uidnext: view.uidnext(),
        };
        self.ask(now, request, Purpose::Changes(after));
    }

    fn select(
        &mut self,
        now: Instant,
        tag: String,
        mailbox: &Mailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
    ) {
        let command = if read_only { "EXAMINE" } else { "SELECT" };
        let Some(name) = mailbox_name(mailbox, self.utf8_names()) else {
            self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", command);
            return;
        };
        let mut resync = None;
        for parameter in parameters {
            match parameter {
                SelectParameter::CondStore => self.enabled.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.enabled.qresync {
                        self.reject(&tag, Kind::Bad, None, "QRESYNC is not enabled", command);
                        return;
                    }
                    resync = Some(Resync {
                        uidvalidity: uid_validity.get(),
                        since_modseq: mod_sequence_value.get(),
                        known_uids: known_uids.as_ref().map(|set| uid_set(set, u32::MAX)),
                    });
                }
            }
        }
        if self.selected.take().is_some() {
            // RFC 9051 §6.3.2 / RFC 7162 §3.2.11: the previous mailbox is closed first.
            self.send(responses::untagged_ok("CLOSED", "Previous mailbox closed"));
        }
        self.changed = false;
        let request = MailboxRequest::Select {
            mailbox: name.clone(),
            read_only,
            resync,
        };
        self.ask(
            now,
            request,
            Purpose::Select {
                tag,
                mailbox: name,
                read_only,
            },
        );
    }

    pub(super) fn list(&mut self, now: Instant, tag: String, spec: ListSpec) {
        if !spec.lsub && spec.patterns.iter().all(String::is_empty) {
            // RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
            self.send(b"* LIST (\\Noselect) \"/\" \"\"\r\n".to_vec());
            self.ok(now, &tag, "LIST completed");
            return;
        }
        let request = MailboxRequest::ListMailboxes {
            with_status: spec.return_status.is_some(),
        };
        self.ask(now, request, Purpose::List { tag, spec });
    }

    fn simple(
        &mut self,
        now: Instant,
        tag: String,
        command: &'static str,
        mailbox: &Mailbox<'_>,
        request: impl FnOnce(String) -> MailboxRequest,
    ) {
        let Some(name) = mailbox_name(mailbox, self.utf8_names()) else {
            self.reject(&tag, Kind::Bad, None, "Invalid mailbox name", command);
            return;
        };
        self.ask(now, request(name), Purpose::Simple { tag, command });
    }

    fn expunge(&mut self, now: Instant, tag: String, uids: Option<UidSet>) {
        let Some(view) = &self.selected else {
            return;
        };
        if view.read_only {
            self.reject(
                &tag,
                Kind::No,
                Some("READ-ONLY"),
                "Mailbox is read-only",
                "EXPUNGE",
            );
            return;
        }
        let request = MailboxRequest::Expunge {
            mailbox: view.mailbox.clone(),
            uids,
        };
        self.ask(now, request, Purpose::Expunge { tag, close: false });
    }

    /// The UIDs a sequence set names in the selected mailbox, as the client knows
    /// it: sequence numbers through the view, UIDs clipped to the known ones.
    fn resolve(&self, set: &SequenceSet, by_uid: bool) -> UidSet {
        let Some(view) = &self.selected else {
            return UidSet::default();
        };
        let uids = view.uids();
        if by_uid {
            let max = uids.max_uid().unwrap_or(0);
            let wanted = uid_set(set, max);
            UidSet::from_uids(uids.iter().filter(|uid| wanted.contains(*uid)))
        } else {
            let exists = uids.len();
            let wanted = uid_set(set, exists);
            UidSet::from_uids(
                uids.iter()
                    .zip(1u32..)
                    .filter(|(_, seq)| wanted.contains(*seq))
                    .map(|(uid, _)| uid),
            )
        }
    }
}

/// A sequence set as ranges of numbers, `*` standing for `largest`.
fn uid_set(set: &SequenceSet, largest: u32) -> UidSet {
    let value = |item: &SeqOrUid| match item {
        SeqOrUid::Value(value) => value.get(),
        SeqOrUid::Asterisk => largest,
    };
    UidSet::from_ranges(set.0.as_ref().iter().map(|sequence| match sequence {
        Sequence::Single(item) => (value(item), value(item)),
        Sequence::Range(a, b) => (value(a), value(b)),
    }))
}

/// A LIST reference: any mailbox name, empty allowed.
fn mailbox_reference(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".to_owned()),
        Mailbox::Other(other) => decoded(other.as_ref(), utf8),
    }
}

/// STATUS with items imap-codec does not know (APPENDLIMIT, SIZE):
/// `tag STATUS mailbox (item ...)`.
fn parse_status(command: &[u8]) -> Option<(String, String, Vec<StatusItem>)> {
    use super::syntax::{Value, tag_and_verb, text};
    let (tag, verb, mut parser) = tag_and_verb(command)?;
    if !verb.eq_ignore_ascii_case("STATUS") {
        return None;
    }
    parser.space()?;
    let mailbox = text(parser.value()?)?;
    parser.space()?;
    let Value::List(names) = parser.value()? else {
        return None;
    };
    parser.line_end()?;
    let mut items = Vec::new();
    for name in names {
        let Value::Atom(name) = name else {
            return None;
        };
        items.push(list::status_item(&name)?);
    }
    let mailbox = if mailbox.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        mailbox
    };
    (!items.is_empty()).then_some((tag, mailbox, items))
}
