//! The delivery queue's durable side: reading the queued messages back into core's
//! queue types at start, the body an attempt sends, writing the queue's decisions
//! (recipient states, with the notice they carry, in one transaction) and removing
//! finished messages. The text forms of DSN parameters and outcomes live here.

use super::blob::BlobStore;
use super::mailbox::change_blob_refs;
use super::queue::{Item, place_body, stage};
use super::sql::{Db, WriteTx, int, is_retryable};
use super::{IncomingMessage, StoreError};
use sluice_core::delivery::{Destination, Diagnostic, Failure};
use sluice_core::queue::{QueuedMessage, QueuedRecipient, RecipientChange, RecipientState};
use sluice_core::smtp::params::{Notify, OriginalRecipient, Ret};
use sluice_core::smtp::reply::{EnhancedStatus, Reply};
use sluice_core::time::Instant;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;
use std::time::Duration;

/// Attempts for a write that hit a deadlock or a lock timeout.
const ATTEMPTS: u32 = 5;
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
struct StateColumns {
    state: &'static str,
    attempts: i64,
    next_attempt_ms: Option<i64>,
    last_attempt_ms: Option<i64>,
    final_at_ms: Option<i64>,
    status: Option<String>,
    remote_mta: Option<String>,
    diagnostic: Option<String>,
    diagnostic_is_reply: bool,
    notify_passed_on: bool,
}

impl StateColumns {
    fn of(state: &RecipientState) -> StateColumns {
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

fn is_final(state: &str) -> bool {
    state == "delivered" || state == "failed"
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
        let rows = sqlx::query(
            "SELECT r.queue_id, r.recipient, r.reverse_path, r.state, r.blob_sha256, \
             r.received_at_ms, r.destination, r.notify, r.orcpt, r.attempts, \
             r.next_attempt_ms, r.last_attempt_ms, r.final_at_ms, r.status, r.remote_mta, \
             r.diagnostic, r.diagnostic_is_reply, r.notify_passed_on, r.delay_notified, \
             m.envid, m.ret, m.received_headers, m.size, m.arrival_ms \
             FROM queue_records r LEFT JOIN queue_messages m ON m.queue_id = r.queue_id \
             WHERE r.queue_id IN (SELECT queue_id FROM queue_records \
                                  WHERE state IN ('pending', 'deferred')) \
             ORDER BY r.id",
        )
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
                None => {
                    let domain = recipient.rsplit_once('@').map_or("", |(_, domain)| domain);
                    Destination::mx(domain)
                }
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

    /// Writes recipient changes of `queue_id`, and stores `notice` (body placed) in
    /// the same transaction.
    async fn persist_once(
        &self,
        blobs: &BlobStore,
        queue_id: &str,
        changes: &[RecipientChange],
        notice: Option<&Item<'_>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut released = 0_i64;
        let mut blob = None;
        for change in changes {
            let row = sqlx::query(&self.sql(
                "SELECT state, blob_sha256 FROM queue_records WHERE queue_id = ? AND recipient = ?",
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
            blob = Some(row.try_get::<String, _>("blob_sha256")?);
            let columns = StateColumns::of(&change.state);
            if !is_final(&before) && is_final(columns.state) {
                released += 1;
            }
            write_state(
                self,
                &mut tx,
                queue_id,
                &change.address,
                &columns,
                change.delay_notified,
            )
            .await?;
        }
        if let Some(blob) = blob {
            change_blob_refs(self, &mut tx, &blob, -released).await?;
        }
        if let Some(item) = notice {
            stage(self, blobs, &mut tx, item).await?;
        }
        tx.commit().await
    }

    /// Deletes a message's queue records and envelope, releasing the body held by
    /// records not yet final.
    async fn remove_queued_once(&self, queue_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            &self.sql("SELECT state, blob_sha256 FROM queue_records WHERE queue_id = ?"),
        )
        .bind(queue_id)
        .fetch_all(&mut *tx.tx)
        .await?;
        let mut held = 0_i64;
        let mut blob = None;
        for row in &rows {
            let state: String = row.try_get("state")?;
            blob = Some(row.try_get::<String, _>("blob_sha256")?);
            if !is_final(&state) {
                held += 1;
            }
        }
        if let Some(blob) = blob {
            change_blob_refs(self, &mut tx, &blob, -held).await?;
        }
        sqlx::query(&self.sql("DELETE FROM queue_records WHERE queue_id = ?"))
            .bind(queue_id)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query(&self.sql("DELETE FROM queue_messages WHERE queue_id = ?"))
            .bind(queue_id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    pub(crate) async fn remove_queued(&self, queue_id: &str) -> Result<(), StoreError> {
        retry(|| self.remove_queued_once(queue_id)).await
    }
}

async fn write_state(
    db: &Db,
    tx: &mut WriteTx,
    queue_id: &str,
    address: &str,
    columns: &StateColumns,
    delay_notified: bool,
) -> Result<(), StoreError> {
    sqlx::query(&db.sql(
        "UPDATE queue_records SET state = ?, attempts = ?, next_attempt_ms = ?, \
         last_attempt_ms = ?, final_at_ms = ?, status = ?, remote_mta = ?, diagnostic = ?, \
         diagnostic_is_reply = ?, notify_passed_on = ?, delay_notified = ? \
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
    .bind(i32::from(delay_notified))
    .bind(queue_id)
    .bind(address)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

async fn retry<F, Fut>(mut write: F) -> Result<(), StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write().await {
            Err(error) if attempt < ATTEMPTS && is_retryable(&error) => {
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// Writes the queue's changes with their notice; see [`super::Store::persist_queue`].
pub(crate) async fn persist(
    db: &Db,
    blobs: &std::sync::Arc<BlobStore>,
    inline_body_limit: usize,
    queue_id: &str,
    changes: &[RecipientChange],
    notice: Option<&IncomingMessage>,
) -> Result<(), StoreError> {
    let placed = match notice {
        Some(message) => {
            let inline = inline_body_limit > 0 && message.data.len() <= inline_body_limit;
            Some(place_body(blobs, inline, &message.data).await?)
        }
        None => None,
    };
    let item = match (notice, &placed) {
        (Some(message), Some((blob, content))) => Some(Item {
            message,
            size: i64::try_from(message.data.len()).unwrap_or(i64::MAX),
            blob,
            content: content.as_deref(),
        }),
        _ => None,
    };
    retry(|| db.persist_once(blobs, queue_id, changes, item.as_ref())).await
}
