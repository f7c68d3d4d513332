//! A whole batch of accepted messages staged at once, for the group commit on
//! PostgreSQL and MySQL: one multi-row statement per table for all the messages of
//! a transaction, where [`super::stage`] runs five or six statements per message,
//! each a round trip to the server (and, for the server, a statement to parse,
//! plan and log).
//!
//! It takes the common path only: every record is new and every local user exists
//! with an INBOX. It writes plain INSERTs and lets the database's keys check that;
//! when the check fails (an accept tried again, a delivery key seen before, a user
//! removed since routing, two messages of the batch with the same key, no UIDs
//! left) it answers [`Batched::Conflict`], and the caller rolls back and stages the
//! batch message by message with `stage`, which decides each of those cases. So
//! what it commits is what `stage` would commit for the same messages: the same
//! records, in the same states, holding the same references.
//!
//! Plain multi-row INSERT … VALUES, unlike MySQL's INSERT … SELECT, takes no
//! table-wide AUTO-INC lock, and nothing here reads an auto-increment id back:
//! UIDs come from the folder's own counter, taken for all of a user's copies in
//! one UPDATE.

use super::{
    AnyQuery, CLAIM_BLOB_INTO, Copies, Item, QUEUE_MESSAGE_COLUMNS, QUEUE_MESSAGE_ROW,
    QUEUE_RECORD_COLUMNS, QueueRecord, bind_queue_message, bind_queue_record, claim_blob_conflict,
    file_exists,
};
use crate::store::blob::BlobStore;
use crate::store::mailbox::take_inbox_uids;
use crate::store::sql::{Db, WriteTx, is_constraint_violation};
use crate::store::{IncomingMessage, StoreError};
use sluice_core::mailbox::INBOX;
use sluice_core::node;
use std::collections::BTreeMap;

/// What staging a batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::store) enum Batched {
    /// Every record of every message is written into the transaction.
    Staged,
    /// Some message is off the common path: roll back and stage one by one.
    Conflict,
}

/// Most rows one statement inserts; a batch with more takes several statements.
const MAX_ROWS: usize = 64;

/// Writes the records of every message of `items` inside `tx`, or finds that one
/// of them needs [`super::stage`]'s care (see the module's comment). On
/// `Conflict` the transaction holds a part of the batch: roll it back.
pub(in crate::store) async fn stage_batch(
    db: &Db,
    blobs: &BlobStore,
    tx: &mut WriteTx<'_>,
    items: &[Item<'_>],
) -> Result<Batched, StoreError> {
    match stage_all(db, blobs, tx, items).await {
        Err(error) if is_constraint_violation(&error) => Ok(Batched::Conflict),
        other => other,
    }
}

/// One body's claim: the references all the batch's copies make to it.
struct BlobClaim<'a> {
    size: i64,
    references: i64,
    content: Option<&'a [u8]>,
}

/// One copy into a local user's INBOX.
struct InboxCopy<'a> {
    message: &'a IncomingMessage,
    user_key: &'a str,
    blob: &'a str,
    size: i64,
}

async fn stage_all(
    db: &Db,
    blobs: &BlobStore,
    tx: &mut WriteTx<'_>,
    items: &[Item<'_>],
) -> Result<Batched, StoreError> {
    let copies: Vec<Copies<'_>> = items.iter().map(|item| Copies::of(item.message)).collect();
    // Sorted by name: concurrent transactions lock blob rows in the same order.
    let mut claims: BTreeMap<&str, BlobClaim<'_>> = BTreeMap::new();
    for (item, copies) in items.iter().zip(&copies) {
        let claim = claims.entry(item.blob).or_insert(BlobClaim {
            size: item.size,
            references: 0,
            content: None,
        });
        claim.references += copies.references();
        claim.content = claim.content.or(item.content);
    }
    let claims: Vec<(&str, BlobClaim<'_>)> = claims.into_iter().collect();
    insert_rows(
        db,
        tx,
        CLAIM_BLOB_INTO,
        "(?, ?, ?, ?)",
        claim_blob_conflict(db),
        &claims,
        |query, (blob, claim)| {
            query
                .bind(*blob)
                .bind(claim.size)
                .bind(claim.references)
                .bind(claim.content)
        },
    )
    .await?;
    // Inside the transaction, after the claim, as in `stage`.
    for (blob, claim) in &claims {
        if claim.content.is_none() && !file_exists(blobs, blob).await? {
            return Err(StoreError::BlobRemoved((*blob).to_owned()));
        }
    }

    let local = node::local_destination();
    let mut records = Vec::new();
    let mut envelopes = Vec::new();
    let mut inbox = Vec::new();
    for (item, copies) in items.iter().zip(&copies) {
        for copy in &copies.locals {
            let entry = QueueRecord::local(copy, &local, item.message.received_at_ms);
            records.push((*item, entry));
            inbox.push(InboxCopy {
                message: item.message,
                user_key: &copy.key,
                blob: item.blob,
                size: item.size,
            });
        }
        if !copies.queued.is_empty() || copies.locals.iter().any(|copy| copy.owes_success) {
            envelopes.push(*item);
        }
        for &copy in &copies.queued {
            records.push((*item, QueueRecord::queued(copy)));
        }
    }
    let record_row = format!("({})", ["?"; 16].join(", "));
    insert_rows(
        db,
        tx,
        &format!("INSERT INTO {QUEUE_RECORD_COLUMNS}"),
        &record_row,
        "",
        &records,
        |query, (item, entry)| bind_queue_record(query, item.message, entry, item.blob),
    )
    .await?;
    if !deliver_to_inboxes(db, tx, &inbox).await? {
        return Ok(Batched::Conflict);
    }
    insert_rows(
        db,
        tx,
        &format!("INSERT INTO {QUEUE_MESSAGE_COLUMNS}"),
        &format!("({QUEUE_MESSAGE_ROW})"),
        "",
        &envelopes,
        |query, item| bind_queue_message(query, item.message, item.size, item.blob),
    )
    .await?;
    Ok(Batched::Staged)
}

/// Records the delivery keys of `copies`, takes their UIDs (one UPDATE per user,
/// in the order of user keys, which keeps concurrent transactions free of
/// deadlocks on folder rows) and writes their INBOX entries. False when a user
/// has no INBOX or no UIDs left for them.
async fn deliver_to_inboxes(
    db: &Db,
    tx: &mut WriteTx<'_>,
    copies: &[InboxCopy<'_>],
) -> Result<bool, StoreError> {
    if copies.is_empty() {
        return Ok(true);
    }
    // The foreign key to `addresses` fails the insert for a user who is gone.
    insert_rows(
        db,
        tx,
        "INSERT INTO deliveries (user_key, delivery_key, delivered_at_ms)",
        "(?, ?, ?)",
        "",
        copies,
        |query, copy| {
            query
                .bind(copy.user_key)
                .bind(&copy.message.delivery_key)
                .bind(copy.message.received_at_ms)
        },
    )
    .await?;
    let mut per_user: BTreeMap<&str, u32> = BTreeMap::new();
    for copy in copies {
        *per_user.entry(copy.user_key).or_default() += 1;
    }
    let mut next_uid: BTreeMap<&str, u32> = BTreeMap::new();
    let mut remaining = per_user.clone();
    for (user_key, count) in per_user {
        match take_inbox_uids(db, tx, user_key, count).await? {
            Some(first) => next_uid.insert(user_key, first),
            None => return Ok(false),
        };
    }
    // UIDs in batch order, as one delivery after the other would take them,
    // and so the MODSEQs: the folder's HIGHESTMODSEQ rose by the user's count,
    // and a copy's MODSEQ is that less the copies of the user after it.
    let mut entries = Vec::with_capacity(copies.len());
    for copy in copies {
        let (Some(uid), Some(after)) = (
            next_uid.get_mut(copy.user_key),
            remaining.get_mut(copy.user_key),
        ) else {
            return Ok(false);
        };
        *after -= 1;
        entries.push((copy, i64::from(*uid), i64::from(*after)));
        *uid += 1;
    }
    insert_rows(
        db,
        tx,
        "INSERT INTO messages (folder_id, uid, blob_sha256, size, flags, internal_date_ms, \
         queue_id, modseq, reverse_path)",
        "((SELECT id FROM folders WHERE user_key = ? AND name = ?), ?, ?, ?, '', ?, ?, \
         (SELECT highestmodseq - ? FROM folders WHERE user_key = ? AND name = ?), ?)",
        "",
        &entries,
        |query, (copy, uid, after)| {
            query
                .bind(copy.user_key)
                .bind(INBOX)
                .bind(*uid)
                .bind(copy.blob)
                .bind(copy.size)
                .bind(copy.message.received_at_ms)
                .bind(&copy.message.queue_id)
                .bind(*after)
                .bind(copy.user_key)
                .bind(INBOX)
                .bind(copy.message.envelope_sender())
        },
    )
    .await?;
    Ok(true)
}

/// Runs `head VALUES row, row, … tail` for `rows`, binding each with `bind`, in
/// statements of a power of two rows each (at most [`MAX_ROWS`]): so a connection
/// meets few distinct statement texts, prepares each once and keeps it in its
/// statement cache, whatever the sizes of the batches.
async fn insert_rows<R>(
    db: &Db,
    tx: &mut WriteTx<'_>,
    head: &str,
    row: &str,
    tail: &str,
    rows: &[R],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q R) -> AnyQuery<'q>,
) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let count = chunk_len(rest.len());
        let (chunk, after) = rest.split_at(count);
        let statement = db.sql(&format!(
            "{head} VALUES {} {tail}",
            vec![row; count].join(", ")
        ));
        let mut query = sqlx::query(&statement);
        for one in chunk {
            query = bind(query, one);
        }
        query.execute(&mut *tx.tx).await?;
        rest = after;
    }
    Ok(())
}

/// The rows of the next statement for `remaining` rows: the largest power of two
/// not above it, nor above [`MAX_ROWS`].
fn chunk_len(remaining: usize) -> usize {
    let capped = remaining.min(MAX_ROWS);
    1 << (usize::BITS - 1 - capped.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_powers_of_two_up_to_the_cap() {
        let split = |mut remaining: usize| {
            let mut lengths = Vec::new();
            while remaining > 0 {
                let length = chunk_len(remaining);
                lengths.push(length);
                remaining -= length;
            }
            lengths
        };
        assert_eq!(split(1), [1]);
        assert_eq!(split(10), [8, 2]);
        assert_eq!(split(64), [64]);
        assert_eq!(split(100), [64, 32, 4]);
        assert_eq!(split(200), [64, 64, 64, 8]);
    }
}
