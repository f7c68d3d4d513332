//! One mail transaction: MAIL, the RCPTs and DATA or BDAT, pipelined when the server
//! offers PIPELINING (RFC 2920 §3.1: DATA last in the group, replies read in order),
//! then the body streamed one block per write, and the final reply — one for SMTP,
//! one per accepted recipient for LMTP (RFC 2033 §4.2).

use super::body::{BodyEncoder, Framing};
use super::envelope;
use super::replies::{final_answer, local_failure, refusal};
use super::{
    ClientEvent, ClientSession, Limits, MessageReport, OutgoingMessage, Phase, Protocol,
    RecipientOutcome, TransactionProgress,
};
use crate::delivery::{Failure, RecipientResult};
use crate::smtp::reply::{EnhancedStatus, Reply, ReplyClass, ReplyCode};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::sync::Arc;

/// The transaction in progress.
#[derive(Debug)]
pub(super) struct Transaction {
    queue_id: String,
    /// Per recipient, its outcome once known.
    outcomes: Vec<Option<RecipientOutcome>>,
    /// The replies still due, in the order the commands went out.
    expected: VecDeque<Expect>,
    /// RCPT lines not yet sent (without PIPELINING they go one at a time).
    unsent_rcpts: VecDeque<(usize, Vec<u8>)>,
    /// Recipients whose RCPT was accepted, in RCPT order.
    accepted: Vec<usize>,
    framing: Framing,
    body: Arc<[u8]>,
    /// Present while the body is being sent.
    encoder: Option<BodyEncoder>,
    /// A block of the body was handed out and the driver has not yet said it is written.
    awaiting_written: bool,
    /// BDAT chunks may follow each other without waiting for their replies (SMTP with
    /// PIPELINING, RFC 3030 §4.2); LMTP waits for each, so its replies cannot get mixed up.
    pipelined_chunks: bool,
    /// Nothing more will be sent: MAIL, DATA or a chunk was refused, or no recipient was
    /// accepted. Replies still due are read and dropped.
    abandoned: bool,
    /// DATA was sent, or the first BDAT chunk.
    data_started: bool,
    mail_accepted: bool,
    /// The server answered the end of the data, which ends its transaction.
    data_ended: bool,
    /// The server answered some command of this transaction.
    answered: bool,
    /// The end of the data (the final "." or BDAT LAST) was handed to the driver.
    end_of_data_sent: bool,
    notify_passed_on: bool,
}

/// A reply the transaction waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    /// The reply to a BDAT chunk that is not the last.
    Chunk,
    /// SMTP's one reply after the data, for every accepted recipient.
    Final,
    /// LMTP's reply after the data for one accepted recipient (RFC 2033 §4.2).
    FinalFor(usize),
    /// The reply to the empty body that closes a pipelined DATA answered 354 although
    /// no recipient was accepted (RFC 2920 §3.1).
    Discarded,
}

impl Expect {
    /// RFC 5321 §4.5.3.2: how long each reply may take.
    fn timeout(self, limits: &Limits) -> Duration {
        match self {
            Expect::Mail | Expect::Rcpt(_) => limits.command_timeout,
            Expect::Data => limits.data_initiation_timeout,
            Expect::Chunk => limits.data_block_timeout,
            Expect::Final | Expect::FinalFor(_) | Expect::Discarded => {
                limits.data_termination_timeout
            }
        }
    }
}

impl Transaction {
    fn decide(&mut self, index: usize, result: RecipientResult) {
        if let Some(slot @ None) = self.outcomes.get_mut(index) {
            *slot = Some(RecipientOutcome::Final(result));
        }
    }

    /// Gives every accepted recipient without an outcome the same result.
    fn decide_accepted(&mut self, result: &RecipientResult) {
        for index in self.accepted.clone() {
            self.decide(index, result.clone());
        }
    }

    /// How far the transaction got, for its report.
    fn progress(&self) -> TransactionProgress {
        let final_reply_due = self
            .expected
            .iter()
            .any(|expect| matches!(expect, Expect::Final | Expect::FinalFor(_)));
        if self.end_of_data_sent && final_reply_due {
            TransactionProgress::AwaitingFinalReply
        } else if self.expected.is_empty() && self.encoder.is_none() {
            TransactionProgress::Finished
        } else if self.answered {
            TransactionProgress::Answered
        } else {
            TransactionProgress::Unanswered
        }
    }

    fn report_with(self, undecided: impl Fn() -> RecipientOutcome) -> MessageReport {
        let progress = self.progress();
        MessageReport {
            progress,
            queue_id: self.queue_id,
            recipients: self
                .outcomes
                .into_iter()
                .map(|outcome| outcome.unwrap_or_else(&undecided))
                .collect(),
        }
    }

    /// The report of a transaction cut short by a session failure: every recipient
    /// without an answer is unresolved.
    pub(super) fn into_report(self, failure: &Failure) -> MessageReport {
        self.report_with(|| RecipientOutcome::Unresolved(failure.clone()))
    }
}

impl ClientSession {
    pub(super) fn begin_transaction(&mut self, now: Instant, message: OutgoingMessage) {
        let plan = envelope::plan(&message, &self.capabilities, &self.config);
        for parameter in plan.dropped.iter().copied() {
            self.event(ClientEvent::ParameterDropped {
                queue_id: message.queue_id.clone(),
                parameter,
            });
        }
        let mut transaction = Transaction {
            queue_id: message.queue_id,
            outcomes: plan
                .decided
                .into_iter()
                .map(|decided| decided.map(RecipientOutcome::Final))
                .collect(),
            expected: VecDeque::new(),
            unsent_rcpts: VecDeque::new(),
            accepted: Vec::new(),
            framing: plan.framing,
            body: message.body,
            encoder: None,
            awaiting_written: false,
            pipelined_chunks: self.capabilities.pipelining
                && self.config.protocol == Protocol::Smtp,
            abandoned: false,
            data_started: false,
            mail_accepted: false,
            data_ended: false,
            answered: false,
            end_of_data_sent: false,
            notify_passed_on: plan.notify_passed_on,
        };
        let Some(mut batch) = plan.mail else {
            // Everything was decided before sending: nothing to ask the server.
            self.transaction = Some(transaction);
            return self.finish_transaction(now);
        };
        transaction.expected.push_back(Expect::Mail);
        if self.capabilities.pipelining {
            for (index, line) in plan.rcpts {
                batch.extend_from_slice(&line);
                transaction.expected.push_back(Expect::Rcpt(index));
            }
            // With CHUNKING the data waits for the RCPT replies: no chunk goes out
            // unless some recipient was accepted.
            if transaction.framing == Framing::Data {
                batch.extend_from_slice(b"DATA\r\n");
                transaction.expected.push_back(Expect::Data);
                transaction.data_started = true;
            }
        } else {
            transaction.unsent_rcpts = plan.rcpts.into();
        }
        self.send(batch);
        self.transaction = Some(transaction);
        self.phase = Phase::Transaction;
        self.advance_transaction(now);
    }

    pub(super) fn on_transaction_reply(&mut self, now: Instant, reply: Reply) {
        let Some(mut transaction) = self.transaction.take() else {
            return self.protocol_violation("a reply outside any transaction");
        };
        let Some(expect) = transaction.expected.pop_front() else {
            self.transaction = Some(transaction);
            return self.protocol_violation("a reply the session did not ask for");
        };
        transaction.answered = true;
        let in_step = self.read_transaction_reply(&mut transaction, expect, &reply);
        self.transaction = Some(transaction);
        if !in_step {
            let text = format!("reply {} out of place after {expect:?}", reply.code);
            return self.protocol_violation(&text);
        }
        self.advance_transaction(now);
    }

    /// Applies one reply; false when the reply makes no sense where it came (a 3xx
    /// other than DATA's 354, a 2xx to DATA).
    fn read_transaction_reply(
        &mut self,
        transaction: &mut Transaction,
        expect: Expect,
        reply: &Reply,
    ) -> bool {
        let remote = self.config.remote_host.as_str();
        let class = reply.code.class();
        if class == ReplyClass::PositiveIntermediate && expect != Expect::Data {
            return false;
        }
        match expect {
            Expect::Mail => match refusal(reply, remote) {
                None => transaction.mail_accepted = true,
                Some(result) => {
                    for index in 0..transaction.outcomes.len() {
                        transaction.decide(index, result.clone());
                    }
                    transaction.abandoned = true;
                    transaction.unsent_rcpts.clear();
                }
            },
            Expect::Rcpt(index) => {
                if !transaction.abandoned {
                    match refusal(reply, remote) {
                        None => transaction.accepted.push(index),
                        Some(result) => transaction.decide(index, result),
                    }
                }
            }
            Expect::Data => {
                if reply.code == ReplyCode(354) {
                    if transaction.abandoned || transaction.accepted.is_empty() {
                        // RFC 2920 §3.1: DATA was pipelined and no recipient took it;
                        // close the data at once with an empty body.
                        self.send(b".\r\n".to_vec());
                        transaction.expected.push_back(Expect::Discarded);
                        transaction.abandoned = true;
                    } else {
                        let body = Arc::clone(&transaction.body);
                        transaction.encoder = Some(BodyEncoder::new(body, Framing::Data));
                    }
                } else {
                    let Some(result) = refusal(reply, remote) else {
                        return false;
                    };
                    if !transaction.abandoned {
                        transaction.decide_accepted(&result);
                    }
                    transaction.abandoned = true;
                }
            }
            Expect::Chunk => {
                if let Some(result) = refusal(reply, remote)
                    && !transaction.abandoned
                {
                    // RFC 3030 §3: after a failed chunk the transaction is over; RSET.
                    transaction.decide_accepted(&result);
                    transaction.abandoned = true;
                    transaction.encoder = None;
                }
            }
            Expect::Final | Expect::FinalFor(_) => {
                transaction.data_ended = true;
                let Some(result) = final_answer(reply, remote, transaction.notify_passed_on) else {
                    return false;
                };
                if !transaction.abandoned {
                    match expect {
                        Expect::FinalFor(index) => transaction.decide(index, result),
                        _ => transaction.decide_accepted(&result),
                    }
                }
            }
            Expect::Discarded => transaction.data_ended = true,
        }
        true
    }

    pub(super) fn on_written(&mut self, now: Instant) {
        if let Some(transaction) = self.transaction.as_mut()
            && transaction.awaiting_written
        {
            transaction.awaiting_written = false;
            self.advance_transaction(now);
        }
    }

    /// Sends whatever the transaction can send next, finishes it when nothing is due,
    /// and sets the deadline for what it waits on.
    fn advance_transaction(&mut self, now: Instant) {
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if transaction.encoder.is_some() {
            if transaction.awaiting_written {
                return;
            }
            let chunk_reply_due = transaction.expected.contains(&Expect::Chunk);
            if transaction.framing == Framing::Data
                || transaction.pipelined_chunks
                || !chunk_reply_due
            {
                return self.send_next_block(now);
            }
        } else if !transaction.abandoned && transaction.expected.is_empty() {
            if let Some((index, line)) = transaction.unsent_rcpts.pop_front() {
                transaction.expected.push_back(Expect::Rcpt(index));
                self.send(line);
                return self.set_reply_deadline(now);
            }
            if !transaction.data_started {
                if transaction.accepted.is_empty() {
                    transaction.abandoned = true;
                } else {
                    transaction.data_started = true;
                    if transaction.framing == Framing::Data {
                        transaction.expected.push_back(Expect::Data);
                        self.send_line("DATA");
                        return self.set_reply_deadline(now);
                    }
                    let body = Arc::clone(&transaction.body);
                    transaction.encoder = Some(BodyEncoder::new(body, Framing::Chunks));
                    return self.send_next_block(now);
                }
            }
        }
        if transaction.expected.is_empty() && transaction.encoder.is_none() {
            return self.finish_transaction(now);
        }
        self.set_reply_deadline(now);
    }

    fn set_reply_deadline(&mut self, now: Instant) {
        let limits = &self.config.limits;
        let timeout = match &self.transaction {
            Some(transaction) if transaction.awaiting_written => limits.data_block_timeout,
            Some(transaction) => transaction
                .expected
                .front()
                .map_or(limits.data_block_timeout, |expect| expect.timeout(limits)),
            None => limits.command_timeout,
        };
        self.deadline = Some(now + timeout);
    }

    /// Hands out the next block of the body: DATA text (with the final "." after the
    /// last block) or one BDAT chunk with its command.
    fn send_next_block(&mut self, now: Instant) {
        let block_size = self.config.limits.data_block;
        let protocol = self.config.protocol;
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        let Some(encoder) = transaction.encoder.as_mut() else {
            return;
        };
        let block = encoder.next_block(block_size);
        let last = encoder.is_finished();
        let bytes = match transaction.framing {
            Framing::Data => {
                let mut bytes = block;
                if last {
                    bytes.extend_from_slice(b".\r\n");
                }
                bytes
            }
            Framing::Chunks => {
                let command = format!(
                    "BDAT {}{}\r\n",
                    block.len(),
                    if last { " LAST" } else { "" }
                );
                let mut bytes = Vec::with_capacity(command.len() + block.len());
                bytes.extend_from_slice(command.as_bytes());
                bytes.extend_from_slice(&block);
                bytes
            }
        };
        if last {
            transaction.encoder = None;
            transaction.end_of_data_sent = true;
            match protocol {
                Protocol::Smtp => transaction.expected.push_back(Expect::Final),
                Protocol::Lmtp => {
                    let finals = transaction
                        .accepted
                        .iter()
                        .map(|&index| Expect::FinalFor(index));
                    transaction.expected.extend(finals);
                }
            }
        } else if transaction.framing == Framing::Chunks {
            transaction.expected.push_back(Expect::Chunk);
        }
        transaction.awaiting_written = true;
        self.send(bytes);
        self.set_reply_deadline(now);
    }

    fn finish_transaction(&mut self, now: Instant) {
        let Some(transaction) = self.transaction.take() else {
            return;
        };
        self.needs_reset = transaction.mail_accepted && !transaction.data_ended;
        let remote = self.config.remote_host.clone();
        // Every recipient is decided by now; this only guards against a server that
        // skipped an answer without our noticing.
        let report = transaction.report_with(|| {
            RecipientOutcome::Final(RecipientResult::Temporary(local_failure(
                EnhancedStatus::new(4, 5, 0),
                Some(&remote),
                "the server gave no answer for this recipient",
            )))
        });
        self.report(report);
        self.start_next(now);
    }
}
