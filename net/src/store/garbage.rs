//! Garbage collection of message bodies: blob rows whose reference count reached
//! zero (with their files), blob files that no row names (left by a crash between
//! the file write and the commit) and stale temp files.
//!
//! Safety against a concurrent accept rests on one rule shared with `acceptance`: a
//! blob file is removed only inside a transaction that holds its blob row — it
//! deletes the row `WHERE refcount = 0`, claiming the key first when no row exists
//! — and the accept path checks that the file exists only after it has locked the
//! same row. Whichever commits first, the other sees it: a body re-referenced
//! between the scan and the removal survives, and an accept whose file was removed
//! writes it again. Orphan and temp files are removed only once older than a grace
//! period, so that a body being written (no row yet) is never taken.

use super::blob::{BlobStore, FileKind};
use super::sql::{Db, WriteTx, int, with_retries};
use super::{StoreError, blob_task};
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Candidates removed per transaction: bounds memory, the transaction's size and
/// how long it holds SQLite's single writer slot.
const BATCH: usize = 256;
/// Temp files are removed only once at least this old, whatever the grace
/// period: a writer's temp file has no row to protect it, and removing it
/// mid-write would fail that accept.
const TEMP_FILE_MIN_AGE: Duration = Duration::from_secs(600);

/// What one garbage collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Blob rows deleted (their reference count was zero).
    pub rows: u64,
    /// Files deleted from the blob folder (bodies and temp files).
    pub files: u64,
    /// Octets freed: deleted files plus inline bodies of deleted rows.
    pub bytes: u64,
}

impl std::ops::AddAssign for GarbageReport {
    fn add_assign(&mut self, other: GarbageReport) {
        self.rows += other.rows;
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

/// Something garbage collection may remove, as found by a scan. Removal checks
/// again; a candidate that is in use by then is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// A blob row at reference count 0; `inline_bytes` is its inline body's
    /// length (0 for a file body, whose file is removed with it).
    UnreferencedRow { blob: String, inline_bytes: u64 },
    /// A blob file older than the grace period that no row names.
    OrphanFile { blob: String, bytes: u64 },
    /// A writer's temp file older than the grace period.
    TempFile { path: PathBuf, bytes: u64 },
}

/// Up to `limit` candidates: unreferenced rows first, then orphan and temp files.
pub(crate) async fn find(
    db: &Db,
    blobs: &Arc<BlobStore>,
    grace: Duration,
    limit: usize,
) -> Result<Vec<Garbage>, StoreError> {
    let mut found = Vec::new();
    let mut after = String::new();
    while found.len() < limit {
        let page = unreferenced_rows(db, &after, (limit - found.len()).min(BATCH)).await?;
        let Some(Garbage::UnreferencedRow { blob, .. }) = page.last() else {
            break;
        };
        after = blob.clone();
        found.extend(page);
    }
    let leaves = {
        let blobs = Arc::clone(blobs);
        blob_task(move || blobs.leaf_folders()).await?
    };
    for leaf in leaves {
        if found.len() >= limit {
            break;
        }
        let mut orphans = orphans_in(db, blobs, leaf, grace).await?;
        orphans.truncate(limit - found.len());
        found.extend(orphans);
    }
    Ok(found)
}

/// Finds and removes everything collectable, in batches; see [`find`] and [`remove`].
pub(crate) async fn collect(
    db: &Db,
    blobs: &Arc<BlobStore>,
    grace: Duration,
) -> Result<GarbageReport, StoreError> {
    let mut report = GarbageReport::default();
    let mut after = String::new();
    loop {
        let page = unreferenced_rows(db, &after, BATCH).await?;
        let Some(Garbage::UnreferencedRow { blob, .. }) = page.last() else {
            break;
        };
        after = blob.clone();
        report += remove(db, blobs, &page).await?;
    }
    let leaves = {
        let blobs = Arc::clone(blobs);
        blob_task(move || blobs.leaf_folders()).await?
    };
    for leaf in leaves {
        let orphans = orphans_in(db, blobs, leaf, grace).await?;
        for chunk in orphans.chunks(BATCH) {
            report += remove(db, blobs, chunk).await?;
        }
    }
    Ok(report)
}

/// Rows at reference count 0 whose name sorts after `after`, in name order.
async fn unreferenced_rows(db: &Db, after: &str, limit: usize) -> Result<Vec<Garbage>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = sqlx::query(&db.sql(
        "SELECT blob_sha256, CASE WHEN content IS NULL THEN 0 ELSE size END AS inline_bytes \
         FROM blobs WHERE refcount = 0 AND blob_sha256 > ? ORDER BY blob_sha256 LIMIT ?",
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Garbage::UnreferencedRow {
                blob: row.try_get("blob_sha256")?,
                inline_bytes: u64::try_from(int(row, "inline_bytes")?).unwrap_or(0),
            })
        })
        .collect()
}

/// Whether a file was last modified at least `grace` ago. A file without a
/// modification time, or one from the future (clock skew on a NAS), is young.
fn is_old(modified: Option<SystemTime>, grace: Duration, now: SystemTime) -> bool {
    modified
        .and_then(|modified| now.duration_since(modified).ok())
        .is_some_and(|age| age >= grace)
}

/// The old files of one leaf folder that no row names, and its old temp files.
async fn orphans_in(
    db: &Db,
    blobs: &Arc<BlobStore>,
    leaf: PathBuf,
    grace: Duration,
) -> Result<Vec<Garbage>, StoreError> {
    let files = {
        let blobs = Arc::clone(blobs);
        blob_task(move || blobs.files_in(&leaf)).await?
    };
    let now = SystemTime::now();
    let mut temps = Vec::new();
    let mut old_blobs = Vec::new();
    for file in files {
        match file.kind {
            FileKind::Temp if is_old(file.modified, grace.max(TEMP_FILE_MIN_AGE), now) => {
                temps.push(Garbage::TempFile {
                    path: file.path,
                    bytes: file.length,
                });
            }
            FileKind::Blob(blob) if is_old(file.modified, grace, now) => {
                old_blobs.push((blob, file.length));
            }
            FileKind::Temp | FileKind::Blob(_) => {}
        }
    }
    let mut found = Vec::new();
    for chunk in old_blobs.chunks(BATCH) {
        let named = named_by_rows(db, chunk.iter().map(|(blob, _)| blob.as_str())).await?;
        for (blob, bytes) in chunk {
            if !named.contains(blob) {
                found.push(Garbage::OrphanFile {
                    blob: blob.clone(),
                    bytes: *bytes,
                });
            }
        }
    }
    found.extend(temps);
    Ok(found)
}

/// Which of these blob names have a row.
async fn named_by_rows<'a>(
    db: &Db,
    names: impl Iterator<Item = &'a str>,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        return Ok(Default::default());
    }
    let placeholders = vec!["?"; names.len()].join(", ");
    let statement = db.sql(&format!(
        "SELECT blob_sha256 FROM blobs WHERE blob_sha256 IN ({placeholders})"
    ));
    let mut query = sqlx::query(&statement);
    for name in &names {
        query = query.bind(*name);
    }
    let rows = query.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<String, _>("blob_sha256")?))
        .collect()
}

/// Removes candidates, each only if it is still garbage: rows and their files in
/// one transaction that re-checks `refcount = 0` (tried again after a deadlock
/// with a concurrent accept); temp files directly.
pub(crate) async fn remove(
    db: &Db,
    blobs: &Arc<BlobStore>,
    candidates: &[Garbage],
) -> Result<GarbageReport, StoreError> {
    let (temps, held): (Vec<&Garbage>, Vec<&Garbage>) = candidates
        .iter()
        .partition(|candidate| matches!(candidate, Garbage::TempFile { .. }));
    let mut report = GarbageReport::default();
    if !held.is_empty() {
        report = with_retries(|| remove_held(db, blobs, &held)).await?;
    }
    let temp_paths = temps
        .into_iter()
        .filter_map(|candidate| match candidate {
            Garbage::TempFile { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    report += remove_files(blobs, temp_paths).await?;
    Ok(report)
}

/// Removes rows and orphan files in one transaction.
async fn remove_held(
    db: &Db,
    blobs: &Arc<BlobStore>,
    candidates: &[&Garbage],
) -> Result<GarbageReport, StoreError> {
    let mut report = GarbageReport::default();
    let mut tx = db.begin_write().await?;
    let mut doomed_files = Vec::new();
    for candidate in candidates {
        match candidate {
            Garbage::TempFile { .. } => {}
            Garbage::UnreferencedRow { blob, inline_bytes } => {
                if delete_unreferenced(db, &mut tx, blob).await? {
                    report.rows += 1;
                    report.bytes += inline_bytes;
                    doomed_files.extend(blobs.path(blob));
                }
            }
            Garbage::OrphanFile { blob, bytes } => {
                // Claim the name: an accept of this body now waits for our commit
                // (and then finds the file gone), or has committed (and we keep it).
                let size = i64::try_from(*bytes).unwrap_or(i64::MAX);
                let claimed = sqlx::query(
                    &db.insert_ignore("blobs (blob_sha256, size, refcount) VALUES (?, ?, 0)"),
                )
                .bind(blob.as_str())
                .bind(size)
                .execute(&mut *tx.tx)
                .await?
                .rows_affected()
                    == 1;
                if delete_unreferenced(db, &mut tx, blob).await? {
                    if !claimed {
                        // A row at zero appeared since the scan: it goes too.
                        report.rows += 1;
                    }
                    doomed_files.extend(blobs.path(blob));
                }
            }
        }
    }
    // Still inside the transaction: the rows stay locked while their files go.
    report += remove_files(blobs, doomed_files).await?;
    tx.commit().await?;
    Ok(report)
}

/// Deletes a blob row if nothing references it; whether it did.
async fn delete_unreferenced(
    db: &Db,
    tx: &mut WriteTx<'_>,
    blob: &str,
) -> Result<bool, StoreError> {
    let deleted = sqlx::query(&db.sql("DELETE FROM blobs WHERE blob_sha256 = ? AND refcount = 0"))
        .bind(blob)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Removes files on a blocking thread. A file that cannot be removed is logged
/// and left: without its row it is an orphan, and the next collection tries again.
async fn remove_files(
    blobs: &Arc<BlobStore>,
    paths: Vec<PathBuf>,
) -> Result<GarbageReport, StoreError> {
    if paths.is_empty() {
        return Ok(GarbageReport::default());
    }
    let blobs = Arc::clone(blobs);
    blob_task(move || {
        let mut report = GarbageReport::default();
        for path in &paths {
            match blobs.remove_file(path) {
                Ok(Some(length)) => {
                    report.files += 1;
                    report.bytes += length;
                }
                Ok(None) => {}
                Err(error) => log_kept(path, &error),
            }
        }
        Ok(report)
    })
    .await
}

fn log_kept(path: &Path, error: &StoreError) {
    tracing::warn!(path = %path.display(), %error, "garbage collection could not remove a file");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_needs_a_modification_time_in_the_past() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let hour = Duration::from_secs(3600);
        assert!(is_old(Some(now - hour), hour, now));
        assert!(!is_old(
            Some(now - hour + Duration::from_secs(1)),
            hour,
            now
        ));
        assert!(!is_old(Some(now + hour), Duration::ZERO, now));
        assert!(!is_old(None, Duration::ZERO, now));
        assert!(is_old(Some(now), Duration::ZERO, now));
    }
}
