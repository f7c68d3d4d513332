//! The TRANSACTION state (RFC 1939 §5, RFC 2449 TOP and UIDL): the listing
//! commands, reading messages as streams, deletion marks, and QUIT's UPDATE.

use super::stuffing::{self, MessageStream};
use super::{
    CommitOutcome, DisconnectReason, MessageData, Mode, Output, Pop3Session, SessionEvent, State,
    Wait, command::Command, replies,
};
use crate::time::Instant;

impl Pop3Session {
    pub(super) fn on_transaction_command(&mut self, now: Instant, command: Command) {
        let verb = command.verb();
        let State::Transaction(maildrop) = &mut self.state else {
            return self.refuse_bad(verb, replies::wrong_state());
        };
        match command {
            Command::Noop => self.send(&replies::noop()),
            Command::Stat => {
                let (messages, octets) = maildrop.stat();
                self.send(&replies::stat(messages, octets));
            }
            Command::List(Some(number)) | Command::Uidl(Some(number)) => {
                let response = match maildrop.get(number) {
                    Some((_, entry)) if verb == "LIST" => replies::scan_line(number, entry.size),
                    Some((_, entry)) => replies::uid_line(number, &entry.uid),
                    None => return self.refuse(verb, replies::no_such_message()),
                };
                self.send(&response);
            }
            Command::List(None) => {
                let (messages, octets) = maildrop.stat();
                let lines: Vec<String> = maildrop
                    .visible()
                    .map(|(number, entry)| format!("{number} {}", entry.size))
                    .collect();
                let mut bytes = replies::listing(messages, octets).to_bytes();
                stuffing::stuffed_lines(&lines, &mut bytes);
                self.send_bytes(bytes);
            }
            Command::Uidl(None) => {
                let lines: Vec<String> = maildrop
                    .visible()
                    .map(|(number, entry)| format!("{number} {}", entry.uid))
                    .collect();
                let mut bytes = replies::uid_listing().to_bytes();
                stuffing::stuffed_lines(&lines, &mut bytes);
                self.send_bytes(bytes);
            }
            Command::Retr(number) => {
                let Some((index, entry)) = maildrop.get(number) else {
                    return self.refuse(verb, replies::no_such_message());
                };
                let status = replies::message_follows(entry.size);
                let uid = entry.uid.clone();
                self.read(now, (index, uid, verb), status, MessageStream::whole());
            }
            Command::Top { message, lines } => {
                let Some((index, entry)) = maildrop.get(message) else {
                    return self.refuse(verb, replies::no_such_message());
                };
                let uid = entry.uid.clone();
                let stream = MessageStream::top(lines);
                self.read(now, (index, uid, verb), replies::top_follows(), stream);
            }
            Command::Dele(number) => match maildrop.get(number) {
                Some((index, _)) => {
                    maildrop.delete(index);
                    self.send(&replies::deleted(number));
                }
                None => self.refuse(verb, replies::no_such_message()),
            },
            Command::Rset => {
                maildrop.reset();
                let (messages, octets) = maildrop.stat();
                self.send(&replies::maildrop_ready(messages, octets));
            }
            // Routed elsewhere by `on_line`; listed for the compiler.
            Command::User(_)
            | Command::Pass(_)
            | Command::Auth { .. }
            | Command::Capa
            | Command::Stls
            | Command::Quit => {}
        }
    }

    fn read(
        &mut self,
        now: Instant,
        (index, uid, verb): (usize, String, &'static str),
        status: replies::Response,
        stream: MessageStream,
    ) {
        let token = self.tokens.next();
        self.outputs
            .push_back(Output::ReadMessage { token, index, uid });
        self.mode = Mode::Waiting(Wait::Read {
            token,
            verb,
            status: Some(status),
            stream,
            deadline: now + self.config.limits.driver_timeout,
        });
    }

    /// A chunk, the end or a failure of the message being read; `None` when the
    /// driver let the deadline pass.
    pub(super) fn on_message_data(&mut self, now: Instant, wait: Wait, data: Option<MessageData>) {
        let Wait::Read {
            token,
            verb,
            mut status,
            mut stream,
            ..
        } = wait
        else {
            return;
        };
        let mut bytes = Vec::new();
        match data {
            Some(MessageData::Chunk(chunk)) => {
                if let Some(status) = status.take() {
                    bytes = status.to_bytes();
                }
                stream.feed(&chunk, &mut bytes);
                if stream.is_complete() {
                    stream.finish(&mut bytes);
                    self.send_bytes(bytes);
                    self.outputs.push_back(Output::StopReading { token });
                    return;
                }
                self.send_bytes(bytes);
                self.mode = Mode::Waiting(Wait::Read {
                    token,
                    verb,
                    status,
                    stream,
                    deadline: now + self.config.limits.driver_timeout,
                });
            }
            Some(MessageData::End) => {
                if let Some(status) = status.take() {
                    bytes = status.to_bytes();
                }
                stream.finish(&mut bytes);
                self.send_bytes(bytes);
            }
            Some(MessageData::Failed) | None => match status {
                Some(_) => self.refuse(verb, replies::read_failed()),
                // Part of the message is out: only closing without the terminating
                // dot tells the client the response is incomplete.
                None => self.close(None, DisconnectReason::ReadFailed),
            },
        }
    }

    /// QUIT: from AUTHORIZATION, goodbye; from TRANSACTION, the UPDATE state —
    /// deletions committed by the driver before `+OK`.
    pub(super) fn on_quit(&mut self, now: Instant) {
        let State::Transaction(maildrop) = &self.state else {
            let response = replies::signing_off(&self.config.hostname);
            return self.close(Some(response), DisconnectReason::Quit);
        };
        let messages = maildrop.deleted();
        if messages.is_empty() {
            let response = replies::signing_off(&self.config.hostname);
            return self.close(Some(response), DisconnectReason::Quit);
        }
        let token = self.tokens.next();
        let count = messages.len();
        self.state = State::Update;
        self.outputs
            .push_back(Output::CommitDeletions { token, messages });
        self.mode = Mode::Waiting(Wait::Commit {
            token,
            count,
            deadline: now + self.config.limits.driver_timeout,
        });
    }

    /// The driver's answer to the commit; `None` when it did not answer in time.
    pub(super) fn on_commit_outcome(&mut self, count: usize, outcome: Option<CommitOutcome>) {
        let response = match outcome {
            Some(CommitOutcome::Done) => {
                self.event(SessionEvent::DeletionsCommitted { count });
                replies::signing_off_after_deletions(&self.config.hostname, count)
            }
            Some(CommitOutcome::Failed) | None => {
                self.event(SessionEvent::DeletionsFailed { count });
                replies::deletions_failed()
            }
        };
        self.close(Some(response), DisconnectReason::Quit);
    }
}
