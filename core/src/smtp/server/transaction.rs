//! The mail transaction: MAIL, RCPT, DATA and BDAT, the recipient and store
//! requests, and the verdict on a complete message. Where LMTP differs (the replies
//! at the end of data), the `lmtp` module takes over.

use super::data::{BodyReader, Framing};
use super::{
    AcceptedMessage, Chunk, DisconnectReason, EnvelopeRecipient, ListenerKind, Mode, Output,
    RecipientCheck, RecipientStoreOutcome, RecipientVerdict, Refusal, RejectReason, ServerSession,
    SessionEvent, StoreOutcome, Transaction, Wait, capabilities, replies,
};
use crate::smtp::address::{ForwardPath, ReversePath};
use crate::smtp::params::{BodyType, MailParameters, RcptParameters};
use crate::time::Instant;

impl ServerSession {
    pub(super) fn on_mail(&mut self, from: ReversePath, params: MailParameters) {
        const VERB: &str = "MAIL";
        let Some((helo, esmtp)) = self.helo.clone() else {
            let reply = if self.config.kind == ListenerKind::Lmtp {
                replies::lhlo_first()
            } else {
                replies::helo_first()
            };
            return self.refuse_bad(VERB, reply);
        };
        if self.transaction.is_some() {
            return self.refuse_bad(VERB, replies::nested_mail());
        }
        if self.config.kind == ListenerKind::Submission && self.authenticated.is_none() {
            return self.refuse(VERB, replies::authentication_required());
        }
        if self.shutting_down {
            // Only reachable when this MAIL was pipelined behind the transaction that
            // the shutdown waited for.
            let reply = replies::shutting_down(&self.config.hostname);
            return self.close_refusing(VERB, reply, DisconnectReason::Shutdown);
        }
        if self.transactions >= self.config.limits.transactions {
            let reply = replies::too_many_transactions(&self.config.hostname);
            return self.close_refusing(VERB, reply, DisconnectReason::TooManyTransactions);
        }
        if !esmtp && let Some(keyword) = first_mail_keyword(&params) {
            return self.refuse_bad(VERB, replies::unsupported_parameter(keyword));
        }
        if params.body == Some(BodyType::BinaryMime) {
            return self.refuse_bad(VERB, replies::unsupported_parameter("BODY=BINARYMIME"));
        }
        if params.auth.is_some() && !capabilities::auth_offered(&self.config, self.tls_active) {
            return self.refuse_bad(VERB, replies::unsupported_parameter("AUTH"));
        }
        if params
            .size
            .is_some_and(|size| size > self.config.limits.message_size)
        {
            return self.refuse(VERB, replies::message_too_big());
        }
        if !params.smtputf8 && !reverse_path_is_ascii(&from) {
            return self.refuse(VERB, replies::needs_smtputf8());
        }
        self.transactions += 1;
        self.transaction = Some(Transaction {
            helo,
            esmtp,
            reverse_path: from,
            params,
            recipients: Vec::new(),
            body: None,
        });
        self.send(&replies::sender_ok());
    }

    pub(super) fn on_rcpt(&mut self, now: Instant, to: ForwardPath, params: RcptParameters) {
        const VERB: &str = "RCPT";
        let Some(transaction) = &self.transaction else {
            return self.refuse_bad(VERB, replies::mail_first_for_rcpt());
        };
        if !transaction.esmtp
            && let Some(keyword) = first_rcpt_keyword(&params)
        {
            return self.refuse_bad(VERB, replies::unsupported_parameter(keyword));
        }
        if !transaction.params.smtputf8 && !forward_path_is_ascii(&to) {
            return self.refuse(VERB, replies::needs_smtputf8());
        }
        if transaction.recipients.len() >= self.config.limits.recipients {
            return self.refuse(VERB, replies::too_many_recipients());
        }
        let token = self.tokens.next();
        let check = RecipientCheck {
            reverse_path: transaction.reverse_path.clone(),
            recipient: to.clone(),
            authenticated: self.authenticated.clone(),
        };
        self.outputs
            .push_back(Output::CheckRecipient { token, check });
        self.mode = Mode::Waiting(Wait::Recipient {
            token,
            recipient: EnvelopeRecipient { path: to, params },
            deadline: now + self.config.limits.lookup_timeout,
        });
    }

    /// Answers a RCPT with the driver's verdict; `None` when the lookup timed out.
    pub(super) fn on_recipient_verdict(
        &mut self,
        recipient: EnvelopeRecipient,
        verdict: Option<RecipientVerdict>,
    ) {
        let reply = match verdict {
            Some(RecipientVerdict::Accept) => {
                if let Some(transaction) = self.transaction.as_mut() {
                    transaction.recipients.push(recipient);
                }
                return self.send(&replies::recipient_ok());
            }
            Some(RecipientVerdict::UnknownUser) => replies::user_unknown(&recipient.path),
            Some(RecipientVerdict::RelayDenied) => replies::relay_denied(&recipient.path),
            Some(RecipientVerdict::TemporaryFailure) | None => {
                replies::recipient_lookup_failed(&recipient.path)
            }
        };
        let code = reply.code;
        self.refuse("RCPT", reply);
        self.event(SessionEvent::RecipientRejected {
            recipient: recipient.path,
            code,
        });
    }

    pub(super) fn on_data(&mut self, now: Instant) {
        const VERB: &str = "DATA";
        let lmtp = self.config.kind == ListenerKind::Lmtp;
        let limits = &self.config.limits;
        let (max_line, max_size) = (limits.text_line, limits.message_size);
        let Some(transaction) = self.transaction.as_mut() else {
            return self.refuse_bad(VERB, replies::mail_first_for_data());
        };
        if transaction.body.is_some() {
            return self.refuse_bad(VERB, replies::data_after_bdat());
        }
        if transaction.recipients.is_empty() {
            // Expected with PIPELINING when every RCPT failed (RFC 2920 §3.1): not a client
            // error. LMTP requires 503 here (RFC 2033 §4.2).
            let reply = if lmtp {
                replies::lmtp_no_valid_recipients()
            } else {
                replies::no_valid_recipients()
            };
            let code = reply.code;
            self.refuse(VERB, reply);
            return self.event(SessionEvent::TransactionRejected {
                code,
                reason: RejectReason::NoValidRecipients,
            });
        }
        transaction.body = Some(BodyReader::new(Framing::Dot, max_line, max_size));
        self.send(&replies::start_data());
        self.mode = Mode::Data;
        self.idle_deadline = now + self.config.limits.data_block_timeout;
    }

    pub(super) fn on_bdat(&mut self, now: Instant, size: u64, last: bool) {
        let lmtp = self.config.kind == ListenerKind::Lmtp;
        let limits = &self.config.limits;
        let (max_line, max_size) = (limits.text_line, limits.message_size);
        // RFC 2033 §4.3: an LMTP client expects one reply to BDAT LAST per accepted
        // recipient; with none accepted it expects none, and a reply would put every
        // later pipelined reply out of step.
        let silent = lmtp && last;
        let refusal = if self.helo.as_ref().is_some_and(|(_, esmtp)| !esmtp) {
            Some(Refusal {
                reply: replies::bdat_requires_ehlo(),
                bad: true,
                silent: false,
            })
        } else if let Some(transaction) = self.transaction.as_mut() {
            if transaction.recipients.is_empty() {
                Some(Refusal {
                    reply: if lmtp {
                        replies::lmtp_no_valid_recipients()
                    } else {
                        replies::no_valid_recipients()
                    },
                    bad: false,
                    silent,
                })
            } else {
                transaction
                    .body
                    .get_or_insert_with(|| BodyReader::new(Framing::Chunked, max_line, max_size));
                None
            }
        } else {
            Some(Refusal {
                reply: replies::mail_first_for_data(),
                bad: !silent,
                silent,
            })
        };
        self.mode = Mode::Chunk(Chunk {
            remaining: size,
            size,
            last,
            refusal,
        });
        self.idle_deadline = now + self.config.limits.data_block_timeout;
    }

    pub(super) fn end_of_chunk(&mut self, now: Instant) {
        let Mode::Chunk(chunk) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return;
        };
        self.idle_deadline = now + self.config.limits.command_timeout;
        match chunk.refusal {
            Some(Refusal {
                reply,
                silent: true,
                ..
            }) => self.end_without_recipients(&reply),
            Some(Refusal {
                reply, bad: true, ..
            }) => self.refuse_bad("BDAT", reply),
            Some(Refusal {
                reply, bad: false, ..
            }) => self.refuse("BDAT", reply),
            None if chunk.last => self.end_of_message(now),
            None => self.send(&replies::chunk_received(chunk.size)),
        }
    }

    /// The body is complete (DATA's terminator or BDAT LAST): refuse it, or ask the
    /// driver to make it durable and wait.
    pub(super) fn end_of_message(&mut self, now: Instant) {
        self.mode = Mode::Command;
        self.idle_deadline = now + self.config.limits.command_timeout;
        let Some(mut transaction) = self.transaction.take() else {
            return;
        };
        let Some(reader) = transaction.body.take() else {
            return;
        };
        let body = match reader.finish() {
            Ok(body) => body,
            Err(reason) => {
                let reply = match reason {
                    RejectReason::BareLineEnding => replies::bare_line_ending_in_data(),
                    RejectReason::MessageTooBig => replies::message_too_big(),
                    RejectReason::TextLineTooLong => {
                        replies::text_line_too_long(self.config.limits.text_line)
                    }
                    RejectReason::NoValidRecipients
                    | RejectReason::StoreFailed
                    | RejectReason::StoreTimedOut => replies::not_stored(),
                };
                self.send_end_of_data_reply(&reply, transaction.recipients.len());
                return self.event(SessionEvent::TransactionRejected {
                    code: reply.code,
                    reason,
                });
            }
        };
        let token = self.tokens.next();
        let recipients = transaction
            .recipients
            .iter()
            .map(|recipient| recipient.path.clone())
            .collect();
        let reverse_path = transaction.reverse_path.clone();
        let message = AcceptedMessage {
            helo: transaction.helo,
            esmtp: transaction.esmtp,
            tls: self.tls_active,
            authenticated: self.authenticated.clone(),
            reverse_path: transaction.reverse_path,
            mail_params: transaction.params,
            recipients: transaction.recipients,
            data: body.data,
        };
        self.outputs
            .push_back(Output::StoreMessage { token, message });
        self.mode = Mode::Waiting(Wait::Store {
            token,
            reverse_path,
            recipients,
            size: body.size,
            deadline: now + self.config.limits.durable_timeout,
        });
    }

    pub(super) fn on_store_outcome(&mut self, wait: Wait, outcome: Option<StoreOutcome>) {
        let Wait::Store {
            reverse_path,
            recipients,
            size,
            ..
        } = wait
        else {
            return;
        };
        if self.config.kind == ListenerKind::Lmtp {
            return self.answer_each_recipient(reverse_path, recipients, size, outcome);
        }
        let outcome_given = outcome.is_some();
        let queue_id = match outcome {
            Some(StoreOutcome::Stored { queue_id }) => Some(queue_id),
            // One reply speaks for every recipient, so it may promise only if each
            // copy is durable.
            Some(StoreOutcome::PerRecipient {
                queue_id,
                recipients: outcomes,
            }) if outcomes.len() >= recipients.len()
                && outcomes
                    .iter()
                    .take(recipients.len())
                    .all(|outcome| *outcome == RecipientStoreOutcome::Stored) =>
            {
                Some(queue_id)
            }
            Some(StoreOutcome::Failed | StoreOutcome::PerRecipient { .. }) | None => None,
        };
        match queue_id {
            Some(queue_id) => {
                self.send(&replies::queued(&queue_id));
                self.event(SessionEvent::TransactionAccepted {
                    queue_id,
                    reverse_path,
                    recipients: recipients.len(),
                    stored: recipients,
                    size,
                });
            }
            None => {
                let reply = replies::not_stored();
                self.send(&reply);
                let reason = if outcome_given {
                    RejectReason::StoreFailed
                } else {
                    RejectReason::StoreTimedOut
                };
                self.event(SessionEvent::TransactionRejected {
                    code: reply.code,
                    reason,
                });
            }
        }
    }
}

/// The first MAIL parameter given, for the 555 reply after HELO.
fn first_mail_keyword(params: &MailParameters) -> Option<&'static str> {
    [
        (params.size.is_some(), "SIZE"),
        (params.body.is_some(), "BODY"),
        (params.smtputf8, "SMTPUTF8"),
        (params.ret.is_some(), "RET"),
        (params.envid.is_some(), "ENVID"),
        (params.auth.is_some(), "AUTH"),
    ]
    .into_iter()
    .find_map(|(given, keyword)| given.then_some(keyword))
}

fn first_rcpt_keyword(params: &RcptParameters) -> Option<&'static str> {
    [
        (params.notify.is_some(), "NOTIFY"),
        (params.orcpt.is_some(), "ORCPT"),
    ]
    .into_iter()
    .find_map(|(given, keyword)| given.then_some(keyword))
}

fn reverse_path_is_ascii(path: &ReversePath) -> bool {
    match path {
        ReversePath::Null => true,
        ReversePath::Mailbox(mailbox) => mailbox.is_ascii(),
    }
}

fn forward_path_is_ascii(path: &ForwardPath) -> bool {
    match path {
        ForwardPath::Postmaster => true,
        ForwardPath::Mailbox(mailbox) => mailbox.is_ascii(),
    }
}
