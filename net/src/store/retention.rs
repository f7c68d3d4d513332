//! Retention of the records of copies written into local mailboxes: their queue
//! records (the history `sluice queue show` reads) and their delivery keys (which
//! keep a redelivered message out of a mailbox it reached before). Both grow with
//! every local copy; once older than the retention they go, in batches of their
//! own transactions, so that a large backlog never holds the writer for long. The
//! mailbox copies themselves are untouched.

use super::StoreError;
use super::owned::STILL_OWNED;
use super::sql::{Db, int, with_retries};
use sqlx::Row;

/// Rows deleted per transaction.
const BATCH: i64 = 512;

/// What one pruning deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Queue records of local copies.
    pub records: u64,
    /// Delivery keys.
    pub keys: u64,
}

/// Deletes the records of local copies of messages that arrived before
/// `arrived_before_ms` (milliseconds since the Unix epoch). A record that still
/// owes a success notice, or that belongs to the queue (a destination), is kept.
pub(crate) async fn prune(db: &Db, arrived_before_ms: i64) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport::default();
    loop {
        let deleted = with_retries(|| prune_records(db, arrived_before_ms)).await?;
        report.records += deleted;
        if deleted < BATCH as u64 {
            break;
        }
    }
    loop {
        let deleted = with_retries(|| prune_keys(db, arrived_before_ms)).await?;
        report.keys += deleted;
        if deleted < BATCH as u64 {
            break;
        }
    }
    Ok(report)
}

/// One batch of queue records: picked by id, then deleted by id (MySQL takes no
/// LIMIT inside an IN subquery, PostgreSQL no LIMIT on DELETE).
async fn prune_records(db: &Db, arrived_before_ms: i64) -> Result<u64, StoreError> {
    let mut tx = db.begin_write().await?;
    // A local copy (no destination) delivered at acceptance, that the queue no
    // longer owns (no success notice owed).
    let ids: Vec<i64> = sqlx::query(&db.sql(&format!(
        "SELECT id FROM queue_records WHERE received_at_ms < ? AND destination IS NULL \
         AND state = 'delivered' AND NOT {STILL_OWNED} ORDER BY id LIMIT ?",
    )))
    .bind(arrived_before_ms)
    .bind(BATCH)
    .fetch_all(&mut *tx.tx)
    .await?
    .iter()
    .map(|row| int(row, "id"))
    .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let statement = db.sql(&format!("DELETE FROM queue_records WHERE id IN ({marks})"));
    let mut delete = sqlx::query(&statement);
    for id in &ids {
        delete = delete.bind(*id);
    }
    let deleted = delete.execute(&mut *tx.tx).await?.rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// One batch of delivery keys, picked by their (user, key) and deleted by it (a
/// row-value list, which all three databases take).
async fn prune_keys(db: &Db, arrived_before_ms: i64) -> Result<u64, StoreError> {
    let mut tx = db.begin_write().await?;
    let keys: Vec<(String, String)> = sqlx::query(
        &db.sql("SELECT user_key, delivery_key FROM deliveries WHERE delivered_at_ms < ? LIMIT ?"),
    )
    .bind(arrived_before_ms)
    .bind(BATCH)
    .fetch_all(&mut *tx.tx)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("user_key")?, row.try_get("delivery_key")?)))
    .collect::<Result<_, StoreError>>()?;
    if keys.is_empty() {
        return Ok(0);
    }
    let marks = vec!["(?, ?)"; keys.len()].join(", ");
    let statement = db.sql(&format!(
        "DELETE FROM deliveries WHERE (user_key, delivery_key) IN ({marks})"
    ));
    let mut delete = sqlx::query(&statement);
    for (user_key, delivery_key) in &keys {
        delete = delete.bind(user_key).bind(delivery_key);
    }
    let deleted = delete.execute(&mut *tx.tx).await?.rows_affected();
    tx.commit().await?;
    Ok(deleted)
}
