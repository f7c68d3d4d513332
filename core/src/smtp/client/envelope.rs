//! Planning a transaction before a byte is sent: which recipients can be sent at all,
//! which message-wide checks against the server's extensions fail (SIZE, 8BITMIME,
//! SMTPUTF8), and the MAIL and RCPT command lines with the parameters the server
//! takes. Every command line is built from parsed, typed values and checked to hold
//! no CR or LF, so nothing from the queue can inject a command.

use super::body::{self, Framing};
use super::capabilities::Capabilities;
use super::config::{ClientConfig, Protocol};
use super::message::{OutgoingMessage, OutgoingRecipient};
use super::replies::local_failure;
use crate::delivery::RecipientResult;
use crate::smtp::address::{ForwardPath, Mailbox, ReversePath};
use crate::smtp::command::Command;
use crate::smtp::params::{BodyType, MailParameters, RcptParameters};
use crate::smtp::reply::EnhancedStatus;
use crate::smtp::xtext;

/// RFC 3461 §4.4: the longest ENVID, counted on its xtext form.
const MAX_ENVID: usize = 100;

/// What to send for one message, and what is already decided.
#[derive(Debug)]
pub(super) struct Plan {
    /// Per recipient (in message order), the result decided without asking the server.
    pub(super) decided: Vec<Option<RecipientResult>>,
    /// The MAIL command line with its CRLF; `None` when nothing is to be sent.
    pub(super) mail: Option<Vec<u8>>,
    /// The RCPT command lines with their CRLF, and the recipient each is for.
    pub(super) rcpts: Vec<(usize, Vec<u8>)>,
    pub(super) framing: Framing,
    /// Whether DSN parameters went to the server (RFC 3461 §5.2.2): it sends the
    /// notices from here on.
    pub(super) notify_passed_on: bool,
    /// Parameters left out because they could not be written validly.
    pub(super) dropped: Vec<&'static str>,
}

/// A command as a wire line, or `None` if its text holds a CR or LF.
fn wire_line(command: &Command) -> Option<Vec<u8>> {
    let text = command.to_string();
    if text.contains(['\r', '\n']) {
        return None;
    }
    let mut line = text.into_bytes();
    line.extend_from_slice(b"\r\n");
    Some(line)
}

fn permanent(remote: &str, status: EnhancedStatus, text: &str) -> RecipientResult {
    RecipientResult::Permanent(local_failure(status, Some(remote), text))
}

/// Reads a recipient address; `Postmaster` alone is the special forward-path of
/// RFC 5321 §4.5.1.
fn forward_path(address: &str) -> Option<ForwardPath> {
    if address.eq_ignore_ascii_case("postmaster") {
        return Some(ForwardPath::Postmaster);
    }
    Mailbox::parse(address).ok().map(ForwardPath::Mailbox)
}

fn is_ascii_path(path: &ForwardPath) -> bool {
    match path {
        ForwardPath::Postmaster => true,
        ForwardPath::Mailbox(mailbox) => mailbox.is_ascii(),
    }
}

/// The recipient's DSN parameters, keeping ORCPT only if it reads back the same: an
/// address type that is not an atom would otherwise corrupt the command.
fn rcpt_parameters(
    recipient: &OutgoingRecipient,
    dropped: &mut Vec<&'static str>,
) -> RcptParameters {
    let orcpt = recipient.orcpt.clone().filter(|orcpt| {
        let alone = RcptParameters {
            notify: None,
            orcpt: Some(orcpt.clone()),
        };
        let valid = RcptParameters::parse(&alone.to_string()).is_ok_and(|read| read == alone);
        if !valid {
            dropped.push("ORCPT");
        }
        valid
    });
    RcptParameters {
        notify: recipient.notify,
        orcpt,
    }
}

/// Plans the transaction for `message` on a server offering `capabilities`.
pub(super) fn plan(
    message: &OutgoingMessage,
    capabilities: &Capabilities,
    config: &ClientConfig,
) -> Plan {
    let remote = config.remote_host.as_str();
    let mut plan = Plan {
        decided: vec![None; message.recipients.len()],
        mail: None,
        rcpts: Vec::new(),
        framing: if capabilities.chunking {
            Framing::Chunks
        } else {
            Framing::Data
        },
        // LMTP is final delivery: success notices stay ours (see `Delivered`).
        notify_passed_on: capabilities.dsn && config.protocol == Protocol::Smtp,
        dropped: Vec::new(),
    };
    let refuse_all = |plan: &mut Plan, status: EnhancedStatus, text: &str| {
        for decided in &mut plan.decided {
            decided.get_or_insert_with(|| permanent(remote, status, text));
        }
        plan.rcpts.clear();
        plan.mail = None;
    };

    let reverse_path = match &message.reverse_path {
        None => ReversePath::Null,
        Some(address) => match Mailbox::parse(address) {
            Ok(mailbox) => ReversePath::Mailbox(mailbox),
            Err(_) => {
                refuse_all(
                    &mut plan,
                    EnhancedStatus::new(5, 1, 7),
                    "the sender address is not a valid mailbox",
                );
                return plan;
            }
        },
    };
    let sender_ascii = match &reverse_path {
        ReversePath::Null => true,
        ReversePath::Mailbox(mailbox) => mailbox.is_ascii(),
    };
    // RFC 6531 §3.4: a message that needs SMTPUTF8 must not go to a server without it.
    if (message.smtputf8 || !sender_ascii) && !capabilities.smtputf8 {
        refuse_all(
            &mut plan,
            EnhancedStatus::new(5, 6, 7),
            "the message needs SMTPUTF8, which the server does not offer",
        );
        return plan;
    }
    // No MIME downgrade (RFC 6152 §3 would have us convert to 7 bit): refuse instead.
    let eight_bit = message.eight_bit || body::has_eight_bit(&message.body);
    if eight_bit && !capabilities.eight_bit_mime {
        refuse_all(
            &mut plan,
            EnhancedStatus::new(5, 6, 3),
            "8-bit message to a server without 8BITMIME (no conversion is done)",
        );
        return plan;
    }
    let size = body::normalised_len(&message.body);
    if let Some(limit) = capabilities.size_limit
        && size > limit
    {
        let text = format!("message of {size} octets exceeds the server's SIZE {limit}");
        refuse_all(&mut plan, EnhancedStatus::new(5, 3, 4), &text);
        return plan;
    }

    let dsn = plan.notify_passed_on;
    let mut needs_smtputf8 = message.smtputf8 || !sender_ascii;
    for (index, recipient) in message.recipients.iter().enumerate() {
        let decision = if plan.rcpts.len() >= config.limits.recipients {
            Err(RecipientResult::Temporary(local_failure(
                EnhancedStatus::new(4, 5, 3),
                Some(remote),
                "too many recipients for one transaction; left for the next attempt",
            )))
        } else {
            match forward_path(&recipient.address) {
                None => Err(permanent(
                    remote,
                    EnhancedStatus::new(5, 1, 3),
                    "the recipient address is not a valid mailbox",
                )),
                Some(path) if !is_ascii_path(&path) && !capabilities.smtputf8 => Err(permanent(
                    remote,
                    EnhancedStatus::new(5, 6, 7),
                    "UTF-8 recipient address and the server does not offer SMTPUTF8",
                )),
                Some(path) => {
                    needs_smtputf8 |= !is_ascii_path(&path);
                    let params = if dsn {
                        rcpt_parameters(recipient, &mut plan.dropped)
                    } else {
                        RcptParameters::default()
                    };
                    wire_line(&Command::Rcpt { to: path, params }).ok_or_else(|| {
                        permanent(
                            remote,
                            EnhancedStatus::new(5, 1, 3),
                            "the recipient cannot be written as a command",
                        )
                    })
                }
            }
        };
        match decision {
            Ok(line) => plan.rcpts.push((index, line)),
            Err(result) => {
                if let Some(slot) = plan.decided.get_mut(index) {
                    *slot = Some(result);
                }
            }
        }
    }
    if plan.rcpts.is_empty() {
        return plan;
    }

    let envid = message.envid.clone().filter(|envid| {
        let fits = xtext::encode(envid.as_bytes()).len() <= MAX_ENVID;
        if dsn && !fits {
            plan.dropped.push("ENVID");
        }
        fits
    });
    let params = MailParameters {
        size: capabilities.size.then_some(size),
        body: (eight_bit && capabilities.eight_bit_mime).then_some(BodyType::EightBitMime),
        smtputf8: needs_smtputf8,
        ret: if dsn { message.ret } else { None },
        envid: if dsn { envid } else { None },
        auth: None,
    };
    match wire_line(&Command::Mail {
        from: reverse_path,
        params,
    }) {
        Some(line) => plan.mail = Some(line),
        None => refuse_all(
            &mut plan,
            EnhancedStatus::new(5, 1, 7),
            "the sender cannot be written as a command",
        ),
    }
    plan
}
