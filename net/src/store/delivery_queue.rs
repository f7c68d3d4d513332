//! The delivery queue's durable side: restoring the queued messages into core's
//! queue types at start, the body an attempt sends, the queue listings and retry
//! of `sluice queue`, and staging the queue's decisions (recipient states with the
//! notice they carry, or the removal of a finished message) for the group commit.
//!
//! A notice is staged as an accepted message (`acceptance`); the text forms of the
//! columns live in `queue_columns`.

use super::acceptance::{self, Placed};
use super::blob::BlobStore;
use super::mailbox::change_blob_refs;
use super::owned::{is_final, message_still_owned, record_still_owned};
use super::queue_columns::{StateColumns, instant, parse_notify, parse_orcpt, parse_ret, state_of};
use super::sql::{Db, WriteTx, int};
use super::{QueueEntry, StoreError};
use sluice_core::delivery::Destination;
use sluice_core::queue::{QueuedMessage, QueuedRecipient, RecipientChange};
use sqlx::Row;
use std::collections::BTreeMap;

/// A queued message's body, as an attempt sends it.
#[derive(Clone, Debug)]
pub struct QueuedBody {
    pub data: Vec<u8>,
    pub smtputf8: bool,
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
    pub(crate) async fn queued_blob(&self, queue_id: &str) -> Result<(String, bool), StoreError> {
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
    tx: &mut WriteTx<'_>,
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
    tx: &mut WriteTx<'_>,
    write: &QueueWrite,
) -> Result<(), StoreError> {
    if write.remove {
        // The records go, so their last states need not be written first.
        remove_records(db, tx, &write.queue_id).await?;
    } else {
        write_changes(db, tx, &write.queue_id, &write.changes).await?;
    }
    if let Some(notice) = &write.notice {
        acceptance::stage(db, blobs, tx, &notice.item()).await?;
    }
    Ok(())
}

/// Writes recipient changes, releasing the body reference of each record that
/// becomes final.
async fn write_changes(
    db: &Db,
    tx: &mut WriteTx<'_>,
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
async fn remove_records(db: &Db, tx: &mut WriteTx<'_>, queue_id: &str) -> Result<(), StoreError> {
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

/// Which queue records a listing reads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum QueueSelection<'a> {
    All,
    /// The messages still in the queue.
    Outstanding,
    Message(&'a str),
}

impl Db {
    pub(crate) async fn queue_entries(
        &self,
        selection: QueueSelection<'_>,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let filter = match selection {
            QueueSelection::All => String::new(),
            QueueSelection::Outstanding => format!("WHERE {} ", message_still_owned("queue_id")),
            QueueSelection::Message(_) => "WHERE queue_id = ? ".to_owned(),
        };
        let statement = self.sql(&format!(
            "SELECT queue_id, reverse_path, recipient, state, received_at_ms, destination, \
             attempts, next_attempt_ms, status, remote_mta, diagnostic FROM queue_records \
             {filter}ORDER BY id"
        ));
        let mut query = sqlx::query(&statement);
        if let QueueSelection::Message(queue_id) = selection {
            query = query.bind(queue_id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(QueueEntry {
                    queue_id: row.try_get("queue_id")?,
                    reverse_path: row.try_get("reverse_path")?,
                    recipient: row.try_get("recipient")?,
                    state: row.try_get("state")?,
                    received_at_ms: int(row, "received_at_ms")?,
                    destination: row.try_get("destination")?,
                    attempts: int(row, "attempts")?,
                    next_attempt_ms: row.try_get("next_attempt_ms")?,
                    status: row.try_get("status")?,
                    remote_mta: row.try_get("remote_mta")?,
                    diagnostic: row.try_get("diagnostic")?,
                })
            })
            .collect()
    }

    /// Makes deferred recipients (of one message, or all) due now: what `sluice
    /// queue retry|flush` does when no server is running; the next start sees it.
    pub(crate) async fn retry_now(
        &self,
        queue_id: Option<&str>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let result =
            match queue_id {
                Some(queue_id) => {
                    sqlx::query(&self.sql(
                        "UPDATE queue_records SET next_attempt_ms = ? \
                     WHERE state = 'deferred' AND queue_id = ?",
                    ))
                    .bind(now_ms)
                    .bind(queue_id)
                    .execute(&mut *tx.tx)
                    .await?
                }
                None => {
                    sqlx::query(&self.sql(
                        "UPDATE queue_records SET next_attempt_ms = ? WHERE state = 'deferred'",
                    ))
                    .bind(now_ms)
                    .execute(&mut *tx.tx)
                    .await?
                }
            };
        tx.commit().await?;
        Ok(result.rows_affected())
    }
}
