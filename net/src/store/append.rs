//! IMAP APPEND with its body: the body placed as an accepted message's is
//! (inline in its blob row up to the inline limit, else a durable file first),
//! then the blob claimed and the message written in one transaction, with the
//! results of core's mailbox model (`Operation::Append`).

use super::StoreError;
use super::acceptance::{CLAIM_BLOB_INTO, claim_blob_conflict, file_exists, place_body};
use super::blob::BlobStore;
use super::mailbox;
use super::sql::{Db, with_retries};
use sluice_core::mailbox::{MailboxLimits, Operation, Outcome};
use std::sync::Arc;

/// What to append, and where.
#[derive(Clone, Copy, Debug)]
pub struct Append<'a> {
    pub user: &'a str,
    pub folder: &'a str,
    pub flags: &'a [String],
    /// The internal date: the client's, or the time of the APPEND.
    pub internal_date_ms: i64,
    pub body: &'a [u8],
}

/// Stores `append`'s body and message; `Outcome::Appended` with the UIDVALIDITY
/// and UID (APPENDUID), or the model's refusal (no such folder: TRYCREATE).
pub(super) async fn append(
    db: &Db,
    blobs: &Arc<BlobStore>,
    limits: &MailboxLimits,
    inline_body_limit: usize,
    append: &Append<'_>,
) -> Result<Outcome, StoreError> {
    let inline = inline_body_limit > 0 && append.body.len() <= inline_body_limit;
    let (blob, content) = place_body(blobs, inline, append.body).await?;
    let size = i64::try_from(append.body.len()).map_err(|_| StoreError::Invalid {
        what: "message size",
        reason: append.body.len().to_string(),
    })?;
    let operation = Operation::Append {
        user: append.user.to_owned(),
        folder: append.folder.to_owned(),
        flags: append.flags.to_vec(),
        internal_date_ms: append.internal_date_ms,
        blob: blob.clone(),
        size: append.body.len() as u64,
    };
    with_retries(|| async {
        let mut tx = db.begin_write().await?;
        // The claim adds no reference (the append does, if it is not refused) but
        // stores an inline body and locks the row, so that garbage collection
        // cannot remove a file body between the check below and the commit.
        sqlx::query(&db.sql(&format!(
            "{CLAIM_BLOB_INTO} VALUES (?, ?, 0, ?) {}",
            claim_blob_conflict(db)
        )))
        .bind(&blob)
        .bind(size)
        .bind(content.as_deref())
        .execute(&mut *tx.tx)
        .await?;
        if content.is_none() && !file_exists(blobs, &blob).await? {
            return Err(StoreError::BlobRemoved(blob.clone()));
        }
        match mailbox::apply(db, &mut tx, limits, &operation).await? {
            Ok(outcome) => {
                tx.commit().await?;
                Ok(outcome)
            }
            // Rolled back now (not when the connection is next used); a file body
            // left behind is garbage that collection removes after its grace period.
            Err(refusal) => {
                tx.rollback().await?;
                Err(refusal.into())
            }
        }
    })
    .await
}
