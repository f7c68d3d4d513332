//! Expunge tombstones: the UID and expunge MODSEQ of every message removed from
//! a folder, for VANISHED (EARLIER) (RFC 7162 §3.2.5.2), kept to the newest
//! [`MailboxLimits::tombstones_per_folder`] of a folder, as in core's model.

use crate::store::StoreError;
use crate::store::sql::{Db, WriteTx, int};
use sluice_core::mailbox::MailboxLimits;

/// Records `uids` as expunged from `folder_id` at `modseq`, then lets go of the
/// oldest tombstones (by MODSEQ, then UID) past the bound, raising the folder's
/// `vanished_floor` to the highest MODSEQ let go.
pub(super) async fn bury(
    db: &Db,
    tx: &mut WriteTx<'_>,
    folder_id: i64,
    uids: &[u32],
    modseq: i64,
    limits: &MailboxLimits,
) -> Result<(), StoreError> {
    for uid in uids {
        sqlx::query(
            &db.sql("INSERT INTO expunged_messages (folder_id, uid, modseq) VALUES (?, ?, ?)"),
        )
        .bind(folder_id)
        .bind(i64::from(*uid))
        .bind(modseq)
        .execute(&mut *tx.tx)
        .await?;
    }
    let row =
        sqlx::query(&db.sql("SELECT COUNT(*) AS n FROM expunged_messages WHERE folder_id = ?"))
            .bind(folder_id)
            .fetch_one(&mut *tx.tx)
            .await?;
    let kept = usize::try_from(int(&row, "n")?).unwrap_or_default();
    let keep = limits.tombstones_per_folder;
    if kept <= keep {
        return Ok(());
    }
    let excess = i64::try_from(kept - keep).unwrap_or(i64::MAX);
    // The newest of the tombstones to let go: every one up to it, in (MODSEQ,
    // UID) order, goes.
    let rows = sqlx::query(&db.sql(
        "SELECT uid, modseq FROM expunged_messages WHERE folder_id = ? \
         ORDER BY modseq, uid LIMIT ?",
    ))
    .bind(folder_id)
    .bind(excess)
    .fetch_all(&mut *tx.tx)
    .await?;
    let Some(last) = rows.last() else {
        return Ok(());
    };
    let (last_uid, last_modseq) = (int(last, "uid")?, int(last, "modseq")?);
    sqlx::query(&db.sql(
        "DELETE FROM expunged_messages WHERE folder_id = ? \
         AND (modseq < ? OR (modseq = ? AND uid <= ?))",
    ))
    .bind(folder_id)
    .bind(last_modseq)
    .bind(last_modseq)
    .bind(last_uid)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query(&db.sql(
        "UPDATE folders SET vanished_floor = \
         CASE WHEN vanished_floor < ? THEN ? ELSE vanished_floor END WHERE id = ?",
    ))
    .bind(last_modseq)
    .bind(last_modseq)
    .bind(folder_id)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// Drops the tombstones of a folder being deleted (the foreign key would too,
/// where the engine enforces it; saying it keeps the rule in one place).
pub(super) async fn forget(
    db: &Db,
    tx: &mut WriteTx<'_>,
    folder_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(&db.sql("DELETE FROM expunged_messages WHERE folder_id = ?"))
        .bind(folder_id)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}
