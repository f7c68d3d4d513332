//! How the delivery queue's values sit in the columns of `queue_records` and
//! `queue_messages`: the text forms of DSN parameters (NOTIFY, ORCPT, RET) and of a
//! recipient's state and last outcome, written by acceptance and the queue alike,
//! and read back when the queue is restored.

use super::StoreError;
use super::sql::int;
use sluice_core::delivery::{Diagnostic, Failure};
use sluice_core::queue::RecipientState;
use sluice_core::smtp::params::{Notify, OriginalRecipient, Ret};
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::time::Instant;
use sqlx::Row;
use sqlx::any::AnyRow;

/// The most characters of a reply or error kept per recipient (the MySQL column
/// holds 4000); a server's essay is cut, never a reason for a write to fail.
const MAX_DIAGNOSTIC: usize = 2000;
/// Likewise for a remote host name.
const MAX_REMOTE_MTA: usize = 255;

/// `text` cut to at most `limit` characters.
fn bounded(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

pub(super) fn notify_text(notify: Notify) -> String {
    match notify {
        Notify::Never => "NEVER".to_owned(),
        Notify::On {
            success,
            failure,
            delay,
        } => [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(","),
    }
}

pub(super) fn parse_notify(text: &str) -> Option<Notify> {
    if text == "NEVER" {
        return Some(Notify::Never);
    }
    let words: Vec<&str> = text.split(',').collect();
    let notify = Notify::On {
        success: words.contains(&"SUCCESS"),
        failure: words.contains(&"FAILURE"),
        delay: words.contains(&"DELAY"),
    };
    (notify
        != Notify::On {
            success: false,
            failure: false,
            delay: false,
        })
    .then_some(notify)
}

pub(super) fn orcpt_text(orcpt: &OriginalRecipient) -> String {
    format!("{};{}", orcpt.address_type, orcpt.address)
}

pub(super) fn parse_orcpt(text: &str) -> Option<OriginalRecipient> {
    let (address_type, address) = text.split_once(';')?;
    Some(OriginalRecipient {
        address_type: address_type.to_owned(),
        address: address.to_owned(),
    })
}

pub(super) fn ret_text(ret: Ret) -> &'static str {
    match ret {
        Ret::Full => "FULL",
        Ret::Headers => "HDRS",
    }
}

pub(super) fn parse_ret(text: &str) -> Option<Ret> {
    match text {
        "FULL" => Some(Ret::Full),
        "HDRS" => Some(Ret::Headers),
        _ => None,
    }
}

pub(super) fn instant(ms: i64) -> Instant {
    Instant::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn millis(at: Instant) -> i64 {
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

/// A reply as stored: its wire form, parsed back.
fn parse_reply(text: &str) -> Option<Reply> {
    let mut wire = text.replace('\n', "\r\n");
    if !wire.ends_with("\r\n") {
        wire.push_str("\r\n");
    }
    Reply::parse(wire.as_bytes(), 4096, 256)
        .ok()
        .flatten()
        .map(|(reply, _)| reply)
}

fn reply_text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.to_bytes())
        .trim_end()
        .replace("\r\n", "\n")
}

/// The columns a recipient state is written to.
pub(super) struct StateColumns {
    pub(super) state: &'static str,
    pub(super) attempts: i64,
    pub(super) next_attempt_ms: Option<i64>,
    pub(super) last_attempt_ms: Option<i64>,
    pub(super) final_at_ms: Option<i64>,
    pub(super) status: Option<String>,
    pub(super) remote_mta: Option<String>,
    pub(super) diagnostic: Option<String>,
    pub(super) diagnostic_is_reply: bool,
    pub(super) notify_passed_on: bool,
}

impl StateColumns {
    pub(super) fn of(state: &RecipientState) -> StateColumns {
        let failure_columns = |failure: &Failure| {
            let (diagnostic, is_reply) = match &failure.diagnostic {
                Diagnostic::Reply(reply) => (reply_text(reply), true),
                Diagnostic::Local(text) => (text.clone(), false),
            };
            (
                Some(failure.status.to_string()),
                failure
                    .remote_mta
                    .as_deref()
                    .map(|host| bounded(host, MAX_REMOTE_MTA)),
                Some(bounded(&diagnostic, MAX_DIAGNOSTIC)),
                is_reply,
            )
        };
        match state {
            RecipientState::Pending => StateColumns {
                state: "pending",
                attempts: 0,
                next_attempt_ms: None,
                last_attempt_ms: None,
                final_at_ms: None,
                status: None,
                remote_mta: None,
                diagnostic: None,
                diagnostic_is_reply: false,
                notify_passed_on: false,
            },
            RecipientState::Deferred {
                attempts,
                next_attempt,
                last_failure,
                last_attempt_at,
            } => {
                let (status, remote_mta, diagnostic, diagnostic_is_reply) =
                    failure_columns(last_failure);
                StateColumns {
                    state: "deferred",
                    attempts: i64::from(*attempts),
                    next_attempt_ms: Some(millis(*next_attempt)),
                    last_attempt_ms: Some(millis(*last_attempt_at)),
                    final_at_ms: None,
                    status,
                    remote_mta,
                    diagnostic,
                    diagnostic_is_reply,
                    notify_passed_on: false,
                }
            }
            RecipientState::Delivered {
                at,
                remote_mta,
                reply,
                notify_passed_on,
            } => StateColumns {
                state: "delivered",
                attempts: 0,
                next_attempt_ms: None,
                last_attempt_ms: Some(millis(*at)),
                final_at_ms: Some(millis(*at)),
                status: reply.status.map(|status| status.to_string()),
                remote_mta: remote_mta
                    .as_deref()
                    .map(|host| bounded(host, MAX_REMOTE_MTA)),
                diagnostic: Some(bounded(&reply_text(reply), MAX_DIAGNOSTIC)),
                diagnostic_is_reply: true,
                notify_passed_on: *notify_passed_on,
            },
            RecipientState::Failed { at, failure } => {
                let (status, remote_mta, diagnostic, diagnostic_is_reply) =
                    failure_columns(failure);
                StateColumns {
                    state: "failed",
                    attempts: 0,
                    next_attempt_ms: None,
                    last_attempt_ms: Some(millis(*at)),
                    final_at_ms: Some(millis(*at)),
                    status,
                    remote_mta,
                    diagnostic,
                    diagnostic_is_reply,
                    notify_passed_on: false,
                }
            }
        }
    }
}

/// Reads a stored recipient state back; `None` for a row the queue does not own.
pub(super) fn state_of(row: &AnyRow) -> Result<Option<RecipientState>, StoreError> {
    let state: String = row.try_get("state")?;
    let status = row
        .try_get::<Option<String>, _>("status")?
        .and_then(|text| EnhancedStatus::parse_prefix(&text).map(|(status, _)| status));
    let diagnostic_text: Option<String> = row.try_get("diagnostic")?;
    let is_reply = int(row, "diagnostic_is_reply")? != 0;
    let remote_mta: Option<String> = row.try_get("remote_mta")?;
    let failure = |default_class: u8| Failure {
        status: status.unwrap_or(EnhancedStatus::new(default_class, 0, 0)),
        remote_mta: remote_mta.clone(),
        diagnostic: match (&diagnostic_text, is_reply) {
            (Some(text), true) => parse_reply(text)
                .map(Diagnostic::Reply)
                .unwrap_or_else(|| Diagnostic::Local(text.clone())),
            (Some(text), false) => Diagnostic::Local(text.clone()),
            (None, _) => Diagnostic::Local(String::new()),
        },
    };
    let optional_ms = |column: &str| -> Result<Option<i64>, StoreError> {
        Ok(row.try_get::<Option<i64>, _>(column)?)
    };
    Ok(Some(match state.as_str() {
        "pending" => RecipientState::Pending,
        "deferred" => RecipientState::Deferred {
            attempts: u32::try_from(int(row, "attempts")?).unwrap_or(u32::MAX),
            next_attempt: instant(optional_ms("next_attempt_ms")?.unwrap_or(0)),
            last_failure: failure(4),
            last_attempt_at: instant(optional_ms("last_attempt_ms")?.unwrap_or(0)),
        },
        "failed" => RecipientState::Failed {
            at: instant(optional_ms("final_at_ms")?.unwrap_or(0)),
            failure: failure(5),
        },
        "delivered" => RecipientState::Delivered {
            at: instant(optional_ms("final_at_ms")?.unwrap_or(0)),
            remote_mta,
            reply: diagnostic_text
                .as_deref()
                .and_then(parse_reply)
                .unwrap_or_else(|| Reply::new(250, EnhancedStatus::new(2, 0, 0), "delivered")),
            notify_passed_on: int(row, "notify_passed_on")? != 0,
        },
        _ => return Ok(None),
    }))
}
