//! The delivery queue's durable side: reading the queued messages back into core's
//! queue types at start, the body an attempt sends, and staging the queue's
//! decisions (recipient states with the notice they carry, or the removal of a
//! finished message) for the group commit in `commit`. The text forms of DSN parameters and outcomes live here.

use super::blob::BlobStore;
use super::commit::{Committer, Placed, Write};
use super::mailbox::change_blob_refs;
use super::owned::{is_final, message_still_owned, record_still_owned};
use super::queue;
use super::sql::{Db, WriteTx, int};
use super::{IncomingMessage, StoreError};
use sluice_core::delivery::{Destination, Diagnostic, Failure};
use sluice_core::queue::{QueuedMessage, QueuedRecipient, RecipientChange, RecipientState};
use sluice_core::smtp::params::{Notify, OriginalRecipient, Ret};
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::time::Instant;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The most characters of a reply or error kept per recipient (the MySQL column
/// holds 4000); a server's essay is cut, never a reason for a write to fail.
const MAX_DIAGNOSTIC: usize = 2000;
/// Likewise for a remote host name.
const MAX_REMOTE_MTA: usize = 255;

/// `text` cut to at most `limit` characters.
fn bounded(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

/// A queued message's body, as an attempt sends it.
#[derive(Clone, Debug)]
pub struct OutboundBody {
    pub data: Vec<u8>,
    pub smtputf8: bool,
}

pub(crate) fn notify_text(notify: Notify) -> String {
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

fn parse_notify(text: &str) -> Option<Notify> {
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

pub(crate) fn orcpt_text(orcpt: &OriginalRecipient) -> String {
    format!("{};{}", orcpt.address_type, orcpt.address)
}

fn parse_orcpt(text: &str) -> Option<OriginalRecipient> {
    let (address_type, address) = text.split_once(';')?;
    Some(OriginalRecipient {
        address_type: address_type.to_owned(),
        address: address.to_owned(),
    })
}

pub(crate) fn ret_text(ret: Ret) -> &'static str {
    match ret {
        Ret::Full => "FULL",
        Ret::Headers => "HDRS",
    }
}

fn parse_ret(text: &str) -> Option<Ret> {
    match text {
        "FULL" => Some(Ret::Full),
        "HDRS" => Some(Ret::Headers),
        _ => None,
    }
}

fn instant(ms: i64) -> Instant {
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
    attempts: i64,
    next_attempt_ms: Option<i64>,
    pub(super) last_attempt_ms: Option<i64>,
    pub(super) final_at_ms: Option<i64>,
    pub(super) status: Option<String>,
    remote_mta: Option<String>,
    pub(super) diagnostic: Option<String>,
    pub(super) diagnostic_is_reply: bool,
    notify_passed_on: bool,
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
fn state_of(row: &AnyRow) -> Result<Option<RecipientState>, StoreError> {
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

impl Db {
    /// Every message with a recipient still to deliver, with all its queued
    /// recipients, as core's queue takes them at start. Records written before the
    /// queue kept destinations go to their domain's MX hosts.
    pub(crate) async fn queued_messages(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT r.queue_id, r.recipient, r.reverse_path, r.state, r.blob_sha256, \
             r.received_at_ms, r.destination, r.notify, r.orcpt, r.attempts, \
             r.next_attempt_ms, r.last_attempt_ms, r.final_at_ms, r.status, r.remote_mta, \
             r.diagnostic, r.diagnostic_is_reply, r.notify_passed_on, r.delay_notified, \
             r.success_owed, m.envid, m.ret, m.received_headers, m.size, m.arrival_ms \
             FROM queue_records r LEFT JOIN queue_messages m ON m.queue_id = r.queue_id \
             WHERE {} ORDER BY r.id",
            message_still_owned("r.queue_id")
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut messages: BTreeMap<String, QueuedMessage> = BTreeMap::new();
        let mut order = Vec::new();
        for row in &rows {
            let state: String = row.try_get("state")?;
            let destination: Option<String> = row.try_get("destination")?;
            let recipient: String = row.try_get("recipient")?;
            // A copy written into a local mailbox at acceptance is not the queue's.
            if destination.is_none() && is_final(&state) {
                continue;
            }
            let destination = match destination {
                Some(text) => text
                    .parse::<Destination>()
                    .map_err(|error| StoreError::Invalid {
                        what: "queue record destination",
                        reason: error.to_string(),
                    })?,
                None => Destination::mx_of_address(&recipient),
            };
            let Some(recipient_state) = state_of(row)? else {
                continue;
            };
            let queue_id: String = row.try_get("queue_id")?;
            let message = match messages.get_mut(&queue_id) {
                Some(message) => message,
                None => {
                    let reverse_path: String = row.try_get("reverse_path")?;
                    let reverse_path = reverse_path
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned();
                    let arrival = row
                        .try_get::<Option<i64>, _>("arrival_ms")?
                        .unwrap_or(int(row, "received_at_ms")?);
                    order.push(queue_id.clone());
                    messages.entry(queue_id.clone()).or_insert(QueuedMessage {
                        queue_id: queue_id.clone(),
                        reverse_path: (!reverse_path.is_empty()).then_some(reverse_path),
                        envid: row.try_get("envid")?,
                        ret: row
                            .try_get::<Option<String>, _>("ret")?
                            .as_deref()
                            .and_then(parse_ret),
                        arrival: instant(arrival),
                        size: u64::try_from(row.try_get::<Option<i64>, _>("size")?.unwrap_or(0))
                            .unwrap_or(0),
                        received_headers: u32::try_from(
                            row.try_get::<Option<i64>, _>("received_headers")?
                                .unwrap_or(0),
                        )
                        .unwrap_or(u32::MAX),
                        recipients: Vec::new(),
                    })
                }
            };
            message.recipients.push(QueuedRecipient {
                address: recipient,
                original: row
                    .try_get::<Option<String>, _>("orcpt")?
                    .as_deref()
                    .and_then(parse_orcpt),
                notify: row
                    .try_get::<Option<String>, _>("notify")?
                    .as_deref()
                    .and_then(parse_notify),
                destination,
                state: recipient_state,
                delay_notified: int(row, "delay_notified")? != 0,
                success_owed: int(row, "success_owed")? != 0,
            });
        }
        Ok(order
            .into_iter()
            .filter_map(|queue_id| messages.remove(&queue_id))
            .collect())
    }

    /// The blob and SMTPUTF8 flag of a queued message.
    pub(crate) async fn outbound_blob(&self, queue_id: &str) -> Result<(String, bool), StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT r.blob_sha256, m.smtputf8 FROM queue_records r \
             LEFT JOIN queue_messages m ON m.queue_id = r.queue_id \
             WHERE r.queue_id = ? ORDER BY r.id",
        ))
        .bind(queue_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("queued message {queue_id}")))?;
        let smtputf8 = row.try_get::<Option<i64>, _>("smtputf8")?.unwrap_or(0) != 0;
        Ok((row.try_get("blob_sha256")?, smtputf8))
    }
}

async fn write_state(
    db: &Db,
    tx: &mut WriteTx,
    queue_id: &str,
    columns: &StateColumns,
    change: &RecipientChange,
) -> Result<(), StoreError> {
    sqlx::query(&db.sql(
        "UPDATE queue_records SET state = ?, attempts = ?, next_attempt_ms = ?, \
         last_attempt_ms = ?, final_at_ms = ?, status = ?, remote_mta = ?, diagnostic = ?, \
         diagnostic_is_reply = ?, notify_passed_on = ?, delay_notified = ?, success_owed = ? \
         WHERE queue_id = ? AND recipient = ?",
    ))
    .bind(columns.state)
    .bind(columns.attempts)
    .bind(columns.next_attempt_ms)
    .bind(columns.last_attempt_ms)
    .bind(columns.final_at_ms)
    .bind(columns.status.as_deref())
    .bind(columns.remote_mta.as_deref())
    .bind(columns.diagnostic.as_deref())
    .bind(i32::from(columns.diagnostic_is_reply))
    .bind(i32::from(columns.notify_passed_on))
    .bind(i32::from(change.delay_notified))
    .bind(i32::from(change.success_owed))
    .bind(queue_id)
    .bind(&change.address)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// One decision of the delivery queue about one queued message, as the group
/// commit makes it durable: recipient changes, the notice stored with them (body
/// placed), or — for the message's last decision, or an administrator's deletion —
/// the removal of the message instead of its changes.
#[derive(Debug)]
pub(super) struct QueueWrite {
    pub(super) queue_id: String,
    pub(super) changes: Vec<RecipientChange>,
    pub(super) notice: Option<Placed>,
    pub(super) remove: bool,
}

/// Writes one queue decision inside `tx`. Idempotent: changes to records that are
/// gone (deleted meanwhile) are skipped, and a notice is stored once per queue id.
pub(super) async fn stage(
    db: &Db,
    blobs: &BlobStore,
    tx: &mut WriteTx,
    write: &QueueWrite,
) -> Result<(), StoreError> {
    if write.remove {
        // The records go, so their last states need not be written first.
        remove_records(db, tx, &write.queue_id).await?;
    } else {
        write_changes(db, tx, &write.queue_id, &write.changes).await?;
    }
    if let Some(notice) = &write.notice {
        queue::stage(db, blobs, tx, &notice.item()).await?;
    }
    Ok(())
}

/// Writes recipient changes, releasing the body reference of each record that
/// becomes final.
async fn write_changes(
    db: &Db,
    tx: &mut WriteTx,
    queue_id: &str,
    changes: &[RecipientChange],
) -> Result<(), StoreError> {
    let mut released = 0_i64;
    let mut blob = None;
    for change in changes {
        let row = sqlx::query(&db.sql(
            "SELECT state, success_owed, blob_sha256 FROM queue_records \
             WHERE queue_id = ? AND recipient = ?",
        ))
        .bind(queue_id)
        .bind(&change.address)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(row) = row else {
            // Deleted by an administrator meanwhile: nothing left to record.
            continue;
        };
        let before: String = row.try_get("state")?;
        let held = record_still_owned(&before, int(&row, "success_owed")? != 0);
        blob = Some(row.try_get::<String, _>("blob_sha256")?);
        let columns = StateColumns::of(&change.state);
        let holds = record_still_owned(columns.state, change.success_owed);
        released += i64::from(held) - i64::from(holds);
        write_state(db, tx, queue_id, &columns, change).await?;
    }
    if let Some(blob) = blob {
        change_blob_refs(db, tx, &blob, -released).await?;
    }
    Ok(())
}

/// Deletes a message's queue records and envelope, releasing the body held by
/// records not yet final or still owing a notice.
async fn remove_records(db: &Db, tx: &mut WriteTx, queue_id: &str) -> Result<(), StoreError> {
    let rows = sqlx::query(
        &db.sql("SELECT state, success_owed, blob_sha256 FROM queue_records WHERE queue_id = ?"),
    )
    .bind(queue_id)
    .fetch_all(&mut *tx.tx)
    .await?;
    let mut held = 0_i64;
    let mut blob = None;
    for row in &rows {
        let state: String = row.try_get("state")?;
        blob = Some(row.try_get::<String, _>("blob_sha256")?);
        if record_still_owned(&state, int(row, "success_owed")? != 0) {
            held += 1;
        }
    }
    if let Some(blob) = blob {
        change_blob_refs(db, tx, &blob, -held).await?;
    }
    sqlx::query(&db.sql("DELETE FROM queue_records WHERE queue_id = ?"))
        .bind(queue_id)
        .execute(&mut *tx.tx)
        .await?;
    sqlx::query(&db.sql("DELETE FROM queue_messages WHERE queue_id = ?"))
        .bind(queue_id)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// Makes one queue decision durable through the group commit; see
/// [`super::Store::persist_queue`]. Answers once it is committed.
pub(crate) async fn persist(
    blobs: &Arc<BlobStore>,
    committer: &Committer,
    inline_body_limit: usize,
    queue_id: &str,
    changes: &[RecipientChange],
    notice: Option<&IncomingMessage>,
    remove: bool,
) -> Result<(), StoreError> {
    let write = |notice: Option<Placed>| {
        Write::Queue(QueueWrite {
            queue_id: queue_id.to_owned(),
            changes: changes.to_vec(),
            notice,
            remove,
        })
    };
    match notice {
        Some(message) => {
            queue::commit_placed(blobs, committer, inline_body_limit, message, |placed| {
                write(Some(placed))
            })
            .await
        }
        None => committer.commit(write(None)).await,
    }
}
