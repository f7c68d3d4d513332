//! What each answer from the driver does: the responses it completes and the
//! state it leaves.

use super::list;
use super::request::{MailboxAnswer, MailboxChanges, MailboxRefusal};
use super::responses::{self, Kind};
use super::view::SelectedView;
use super::{AfterChanges, ImapSession, Mode, Purpose};
use crate::imap::event::{DisconnectReason, SessionEvent};
use crate::imap::io::CredentialOutcome;
use crate::time::Instant;

impl ImapSession {
    pub(super) fn on_credentials(
        &mut self,
        now: Instant,
        purpose: Purpose,
        outcome: CredentialOutcome,
    ) {
        let Purpose::Credentials {
            tag,
            mechanism,
            username,
        } = purpose
        else {
            return;
        };
        match outcome {
            CredentialOutcome::Valid { identity } => {
                self.user = Some(identity.clone());
                self.idle_deadline = now + self.config.limits.autologout;
                self.event(SessionEvent::AuthSucceeded {
                    mechanism,
                    identity,
                });
                let code = format!("CAPABILITY {}", self.capabilities());
                self.send(responses::tagged(&tag, Kind::Ok, Some(&code), "Logged in"));
            }
            CredentialOutcome::Invalid => {
                self.event(SessionEvent::AuthFailed {
                    mechanism: mechanism.to_owned(),
                    username: Some(username),
                });
                self.reject(
                    &tag,
                    Kind::No,
                    Some("AUTHENTICATIONFAILED"),
                    "Invalid credentials",
                    mechanism,
                );
                self.auth_failures = self.auth_failures.saturating_add(1);
                if self.auth_failures >= self.config.limits.auth_failures {
                    self.close(
                        Some("Too many failed logins"),
                        DisconnectReason::TooManyAuthFailures,
                    );
                }
            }
            CredentialOutcome::TemporaryFailure => {
                self.reject(
                    &tag,
                    Kind::No,
                    Some("UNAVAILABLE"),
                    "Try again later",
                    mechanism,
                );
            }
        }
    }

    fn refused(&mut self, now: Instant, tag: &str, command: &str, refusal: &MailboxRefusal) {
        let (code, text) = responses::refusal(refusal);
        self.event(SessionEvent::CommandRejected {
            command: command.to_owned(),
            bad: false,
        });
        self.finish(
            now,
            responses::tagged(tag, Kind::No, Some(code), &text),
            true,
        );
    }

    /// An answer that does not fit its request: a driver bug, reported as such.
    fn mismatched(&mut self, now: Instant, tag: &str, command: &str) {
        self.event(SessionEvent::CommandRejected {
            command: command.to_owned(),
            bad: false,
        });
        self.finish(
            now,
            responses::tagged(tag, Kind::No, Some("SERVERBUG"), "Internal error"),
            true,
        );
    }

    pub(super) fn on_answer(&mut self, now: Instant, purpose: Purpose, answer: MailboxAnswer) {
        match purpose {
            Purpose::Credentials { .. } => {}
            Purpose::Select {
                tag,
                mailbox,
                read_only,
            } => self.on_selected(now, tag, mailbox, read_only, answer),
            Purpose::List { tag, spec } => {
                let command = if spec.lsub { "LSUB" } else { "LIST" };
                match answer {
                    MailboxAnswer::Mailboxes(mailboxes) => {
                        if mailboxes.len() > self.config.limits.mailboxes {
                            let refusal = MailboxRefusal::Limit("Too many mailboxes".into());
                            self.refused(now, &tag, command, &refusal);
                            return;
                        }
                        let lines = list::respond(
                            &spec,
                            &mailboxes,
                            self.utf8_names(),
                            self.config.limits.append_limit,
                        );
                        if !lines.is_empty() {
                            self.send(lines);
                        }
                        self.ok(now, &tag, &format!("{command} completed"));
                    }
                    MailboxAnswer::Refused(refusal) => self.refused(now, &tag, command, &refusal),
                    _ => self.mismatched(now, &tag, command),
                }
            }
            Purpose::Status {
                tag,
                mailbox,
                items,
            } => match answer {
                MailboxAnswer::Status(status) => {
                    let line = responses::status_data(
                        &mailbox,
                        &items,
                        &status,
                        self.utf8_names(),
                        self.config.limits.append_limit,
                    );
                    self.send(line);
                    self.ok(now, &tag, "STATUS completed");
                }
                MailboxAnswer::Refused(refusal) => self.refused(now, &tag, "STATUS", &refusal),
                _ => self.mismatched(now, &tag, "STATUS"),
            },
            Purpose::Simple { tag, command } => match answer {
                MailboxAnswer::Done => self.ok(now, &tag, &format!("{command} completed")),
                MailboxAnswer::Refused(refusal) => self.refused(now, &tag, command, &refusal),
                _ => self.mismatched(now, &tag, command),
            },
            Purpose::Append { tag } => match answer {
                MailboxAnswer::Appended { uidvalidity, uid } => {
                    // The selected mailbox may have grown: EXISTS before the OK.
                    self.changed |= self.selected.is_some();
                    let code = format!("APPENDUID {uidvalidity} {uid}");
                    let response =
                        responses::tagged(&tag, Kind::Ok, Some(&code), "APPEND completed");
                    self.finish(now, response, true);
                }
                MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox) => {
                    self.try_create(now, &tag, "APPEND", true);
                }
                MailboxAnswer::Refused(refusal) => self.refused(now, &tag, "APPEND", &refusal),
                _ => self.mismatched(now, &tag, "APPEND"),
            },
            Purpose::Expunge { tag, close } => match answer {
                MailboxAnswer::Expunged(uids) if close => {
                    let _ = uids;
                    self.ok(now, &tag, "CLOSE completed");
                }
                MailboxAnswer::Expunged(uids) => {
                    self.absorb_own(&MailboxChanges {
                        expunged: uids,
                        ..self.own_changes()
                    });
                    // The view's HIGHESTMODSEQ moves past these expunges too.
                    self.changed = true;
                    self.ok(now, &tag, "EXPUNGE completed");
                }
                MailboxAnswer::Refused(_) if close => {
                    // The mailbox is closed whatever became of the expunge.
                    self.ok(now, &tag, "CLOSE completed");
                }
                MailboxAnswer::Refused(refusal) => self.refused(now, &tag, "EXPUNGE", &refusal),
                _ => self.mismatched(now, &tag, "EXPUNGE"),
            },
            Purpose::Store {
                tag,
                silent,
                by_uid,
            } => match answer {
                MailboxAnswer::Stored { changed, modified } => {
                    let condstore = self.enabled.condstore;
                    self.reported_flags = changed.iter().map(|m| (m.uid, m.modseq)).collect();
                    // Ask for the changes before the tagged OK, so that the view's
                    // HIGHESTMODSEQ passes this STORE (its own FETCHes not repeated).
                    self.changed = true;
                    if let Some(view) = &self.selected {
                        let mut lines = Vec::new();
                        for message in &changed {
                            // .SILENT suppresses the FETCH, except MODSEQ under
                            // CONDSTORE (RFC 7162 §3.1.3).
                            if silent && !condstore {
                                continue;
                            }
                            if let Some(seq) = view.uids().seq_of(message.uid) {
                                lines.extend(responses::fetch_flags(
                                    seq,
                                    message.uid,
                                    &message.flags,
                                    condstore.then_some(message.modseq),
                                ));
                            }
                        }
                        if !lines.is_empty() {
                            self.send(lines);
                        }
                    }
                    let response = if modified.is_empty() {
                        responses::tagged(&tag, Kind::Ok, None, "STORE completed")
                    } else {
                        let code = format!("MODIFIED {}", modified.to_imap());
                        responses::tagged(&tag, Kind::Ok, Some(&code), "Conditional STORE failed")
                    };
                    self.finish(now, response, by_uid);
                }
                MailboxAnswer::Refused(refusal) => self.refused(now, &tag, "STORE", &refusal),
                _ => self.mismatched(now, &tag, "STORE"),
            },
            Purpose::Copy {
                tag,
                moving,
                by_uid,
            } => {
                let command = if moving { "MOVE" } else { "COPY" };
                match answer {
                    MailboxAnswer::Copied { uidvalidity, uids } => {
                        let code = (!uids.is_empty()).then(|| {
                            let source =
                                super::request::UidSet::from_uids(uids.iter().map(|p| p.0));
                            let target =
                                super::request::UidSet::from_uids(uids.iter().map(|p| p.1));
                            format!(
                                "COPYUID {uidvalidity} {} {}",
                                source.to_imap(),
                                target.to_imap()
                            )
                        });
                        if moving {
                            // RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
                            if let Some(code) = &code {
                                self.send(responses::untagged_ok(code, "Moved"));
                            }
                            self.absorb_own(&MailboxChanges {
                                expunged: uids.iter().map(|pair| pair.0).collect(),
                                ..self.own_changes()
                            });
                            self.changed = true;
                            // Expunges are reported before the OK whether the MOVE
                            // named sequence numbers or UIDs: RFC 6851 §3.3 has them
                            // sent, and RFC 9051 §7.5.1 holds EXPUNGE back only during
                            // FETCH, STORE and SEARCH, not MOVE, whose expunges are its
                            // very result.
                            self.finish(
                                now,
                                responses::tagged(&tag, Kind::Ok, None, "MOVE completed"),
                                true,
                            );
                        } else {
                            self.finish(
                                now,
                                responses::tagged(
                                    &tag,
                                    Kind::Ok,
                                    code.as_deref(),
                                    "COPY completed",
                                ),
                                by_uid,
                            );
                        }
                    }
                    MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox) => {
                        self.try_create(now, &tag, command, by_uid);
                    }
                    MailboxAnswer::Refused(refusal) => self.refused(now, &tag, command, &refusal),
                    _ => self.mismatched(now, &tag, command),
                }
            }
            Purpose::Changes(after) => self.on_changes(now, after, answer),
            Purpose::Fetch(job) => self.on_fetch_answer(now, *job, answer),
            Purpose::Search(job) => self.on_search_answer(now, *job, answer),
        }
    }

    /// A COPY, MOVE or APPEND into a mailbox that does not exist: NO [TRYCREATE], so
    /// that the client may create it and try again (RFC 9051 §6.3.12, §6.4.7).
    fn try_create(&mut self, now: Instant, tag: &str, command: &str, expunges_allowed: bool) {
        self.event(SessionEvent::CommandRejected {
            command: command.to_owned(),
            bad: false,
        });
        let response = responses::tagged(tag, Kind::No, Some("TRYCREATE"), "No such mailbox");
        self.finish(now, response, expunges_allowed);
    }

    /// The selected mailbox's own state as a change set to fill in.
    fn own_changes(&self) -> MailboxChanges {
        self.selected
            .as_ref()
            .map(|view| MailboxChanges {
                uidvalidity: view.uidvalidity(),
                uidnext: view.uidnext(),
                highest_modseq: view.highest_modseq(),
                ..MailboxChanges::default()
            })
            .unwrap_or_default()
    }

    /// Takes in changes this session made itself (EXPUNGE, MOVE).
    fn absorb_own(&mut self, changes: &MailboxChanges) {
        let limit = self.config.limits.messages;
        if let Some(view) = &mut self.selected {
            let _ = view.absorb(changes, limit);
        }
    }

    fn on_selected(
        &mut self,
        now: Instant,
        tag: String,
        mailbox: String,
        read_only: bool,
        answer: MailboxAnswer,
    ) {
        let command = if read_only { "EXAMINE" } else { "SELECT" };
        let selected = match answer {
            MailboxAnswer::Selected(selected) => selected,
            MailboxAnswer::Refused(refusal) => {
                self.refused(now, &tag, command, &refusal);
                return;
            }
            _ => {
                self.mismatched(now, &tag, command);
                return;
            }
        };
        if selected.uids.len() > self.config.limits.messages {
            let refusal = MailboxRefusal::Limit("Mailbox too large".into());
            self.refused(now, &tag, command, &refusal);
            return;
        }
        let read_only = read_only || selected.read_only;
        let view = SelectedView::new(
            mailbox.clone(),
            read_only,
            selected.uidvalidity,
            selected.uidnext,
            selected.highest_modseq,
            &selected.uids,
        );
        let mut out = responses::flags(&selected.keywords);
        out.extend(format!("* {} EXISTS\r\n", view.exists()).as_bytes());
        if !self.enabled.imap4rev2 {
            // IMAP4rev1 clients expect RECENT and UNSEEN (RFC 3501 §6.3.1); no
            // session here claims \Recent.
            out.extend(b"* 0 RECENT\r\n");
            if let Some(seq) = selected
                .first_unseen
                .and_then(|uid| view.uids().seq_of(uid))
            {
                out.extend(responses::untagged_ok(
                    &format!("UNSEEN {seq}"),
                    "First unseen",
                ));
            }
        }
        out.extend(responses::untagged_ok(
            &format!("UIDVALIDITY {}", selected.uidvalidity),
            "UIDs valid",
        ));
        out.extend(responses::untagged_ok(
            &format!("UIDNEXT {}", selected.uidnext),
            "Predicted next UID",
        ));
        let permanent = if read_only {
            "PERMANENTFLAGS ()".to_owned()
        } else {
            let mut flags = responses::SYSTEM_FLAGS.to_owned();
            for keyword in &selected.keywords {
                flags.push(' ');
                flags.push_str(keyword);
            }
            format!("PERMANENTFLAGS ({flags} \\*)")
        };
        out.extend(responses::untagged_ok(&permanent, "Flags permitted"));
        if self.enabled.condstore {
            out.extend(responses::untagged_ok(
                &format!("HIGHESTMODSEQ {}", selected.highest_modseq),
                "Highest",
            ));
        }
        if let Some(changes) = &selected.changes {
            let vanished: Vec<u32> = changes.expunged.clone();
            if !vanished.is_empty() {
                let set = super::request::UidSet::from_uids(vanished);
                out.extend(format!("* VANISHED (EARLIER) {}\r\n", set.to_imap()).as_bytes());
            }
            for message in &changes.changed {
                if let Some(seq) = view.uids().seq_of(message.uid) {
                    out.extend(responses::fetch_flags(
                        seq,
                        message.uid,
                        &message.flags,
                        Some(message.modseq),
                    ));
                }
            }
        }
        self.send(out);
        self.event(SessionEvent::Selected { mailbox, read_only });
        self.selected = Some(view);
        let code = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let response =
            responses::tagged(&tag, Kind::Ok, Some(code), &format!("{command} completed"));
        self.finish(now, response, true);
    }

    fn on_changes(&mut self, now: Instant, after: AfterChanges, answer: MailboxAnswer) {
        let changes = match answer {
            MailboxAnswer::Changes(changes) => Some(changes),
            MailboxAnswer::Refused(MailboxRefusal::NoSuchMailbox) => None,
            // Any other answer: nothing learned this time; carry on.
            _ => Some(self.own_changes()),
        };
        let limit = self.config.limits.messages;
        let condstore = self.enabled.condstore;
        let absorbed = match (&mut self.selected, changes) {
            (Some(view), Some(changes)) => view.absorb(&changes, limit).ok(),
            _ => None,
        };
        let Some(flag_changes) = absorbed else {
            // The mailbox was deleted or recreated under us (RFC 9051 §7.1.5 BYE).
            self.close(
                Some("Selected mailbox no longer exists"),
                DisconnectReason::MailboxGone,
            );
            return;
        };
        let reported = std::mem::take(&mut self.reported_flags);
        let mut lines = Vec::new();
        for (seq, message) in flag_changes {
            if reported.contains(&(message.uid, message.modseq)) {
                continue;
            }
            lines.extend(responses::fetch_flags(
                seq,
                message.uid,
                &message.flags,
                condstore.then_some(message.modseq),
            ));
        }
        if !lines.is_empty() {
            self.send(lines);
        }
        match after {
            AfterChanges::Finish {
                response,
                expunge_allowed,
            } => self.finish(now, response, expunge_allowed),
            AfterChanges::IdleStart { tag } => {
                self.report_view(true);
                self.send(responses::continuation("idling"));
                self.mode = Mode::Idle { tag };
            }
            AfterChanges::IdleUpdate { tag } => {
                self.report_view(true);
                self.mode = Mode::Idle { tag };
            }
        }
    }
}
