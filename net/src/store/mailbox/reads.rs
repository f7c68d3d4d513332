//! Reading mailboxes: canonical observations (what the model-based test
//! compares), a folder's messages, SELECT/STATUS state, what changed after a
//! MODSEQ (CONDSTORE/QRESYNC), subscriptions, and the Junk events the classifier
//! reads. Each read that needs several statements runs them in one transaction,
//! so they see one state.

use super::{MessageRow, message_row, split_flags, to_u32};
use crate::store::directory::lookup_key;
use crate::store::sql::{Db, SqlEngine, WriteTx, int};
use crate::store::{StoreError, StoredMessage};
use sluice_core::mailbox::{
    ChangedMessage, Changes, FolderEntry, FolderObservation, FolderStatus, JunkDirection,
    JunkEvent, MailboxError, MessageObservation, SpecialUse, UserObservation,
    normalise_folder_name,
};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

/// A Junk event as the store keeps it: its place in the event log, the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredJunkEvent {
    /// Ascending in the order the events were recorded.
    pub id: i64,
    /// The user's lookup key (the lower-cased address).
    pub user: String,
    pub event: JunkEvent,
}

/// Appends one Junk event to the log.
pub(super) async fn record_junk_event(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
    event: &JunkEvent,
) -> Result<(), StoreError> {
    sqlx::query(&db.sql(
        "INSERT INTO mailbox_events (user_key, blob_sha256, direction, at_ms) \
         VALUES (?, ?, ?, ?)",
    ))
    .bind(user_key)
    .bind(&event.blob)
    .bind(event.direction.as_str())
    .bind(event.at_ms)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// How many names the user has subscribed (`name`: whether that one is).
pub(super) async fn count_subscriptions(
    db: &Db,
    connection: &mut AnyConnection,
    user_key: &str,
    name: Option<&str>,
) -> Result<i64, StoreError> {
    let row = match name {
        Some(name) => {
            sqlx::query(
                &db.sql("SELECT COUNT(*) AS n FROM subscriptions WHERE user_key = ? AND name = ?"),
            )
            .bind(user_key)
            .bind(name)
            .fetch_one(connection)
            .await?
        }
        None => {
            sqlx::query(&db.sql("SELECT COUNT(*) AS n FROM subscriptions WHERE user_key = ?"))
                .bind(user_key)
                .fetch_one(connection)
                .await?
        }
    };
    int(&row, "n")
}

/// A read transaction that sees one state throughout (PostgreSQL's default
/// isolation would give each statement its own snapshot).
async fn begin_read(db: &Db) -> Result<Transaction<'static, Any>, StoreError> {
    let mut tx = db.pool.begin().await?;
    if db.engine == SqlEngine::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// Runs `work` in a read transaction ([`begin_read`]) and ends it whatever the
/// outcome. A transaction merely dropped is rolled back only when its connection
/// is next used: until then the idle pooled connection keeps its snapshot and, on
/// MariaDB, the metadata locks of every table it read, which blocks DDL (a test's
/// DROP DATABASE, a migration) indefinitely.
async fn read<T>(
    db: &Db,
    work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut tx = begin_read(db).await?;
    let result = work(&mut tx).await;
    let ended = tx.rollback().await;
    let value = result?;
    ended?;
    Ok(value)
}

/// A folder row as reads need it.
struct FolderRow {
    id: i64,
    uidvalidity: u32,
    uidnext: u32,
    highestmodseq: u64,
    vanished_floor: u64,
    special_use: Option<SpecialUse>,
}

const FOLDER_COLUMNS: &str =
    "id, name, special_use, uidvalidity, uidnext, highestmodseq, vanished_floor";

fn folder_row(row: &AnyRow) -> Result<FolderRow, StoreError> {
    let special_use: Option<String> = row.try_get("special_use")?;
    Ok(FolderRow {
        id: int(row, "id")?,
        uidvalidity: to_u32(int(row, "uidvalidity")?, "uidvalidity")?,
        uidnext: to_u32(int(row, "uidnext")?, "uidnext")?,
        highestmodseq: to_u64(int(row, "highestmodseq")?),
        vanished_floor: to_u64(int(row, "vanished_floor")?),
        special_use: special_use.as_deref().and_then(SpecialUse::from_attribute),
    })
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// The model's refusal (`NoSuchUser`) unless `user_key` names a user.
async fn require_user(
    db: &Db,
    connection: &mut AnyConnection,
    user: &str,
    user_key: &str,
) -> Result<(), StoreError> {
    let known = sqlx::query(
        &db.sql("SELECT address FROM addresses WHERE address_key = ? AND kind = 'user'"),
    )
    .bind(user_key)
    .fetch_optional(connection)
    .await?;
    match known {
        Some(_) => Ok(()),
        None => Err(MailboxError::NoSuchUser(user.to_owned()).into()),
    }
}

/// The folder `folder` of `user`, or the model's refusal.
async fn resolve_folder(
    db: &Db,
    connection: &mut AnyConnection,
    user: &str,
    folder: &str,
) -> Result<FolderRow, StoreError> {
    let user_key = lookup_key(user);
    require_user(db, &mut *connection, user, &user_key).await?;
    let name = normalise_folder_name(folder)?;
    let row = sqlx::query(&db.sql(&format!(
        "SELECT {FOLDER_COLUMNS} FROM folders WHERE user_key = ? AND name = ?"
    )))
    .bind(&user_key)
    .bind(&name)
    .fetch_optional(&mut *connection)
    .await?;
    match row {
        Some(row) => folder_row(&row),
        None => Err(MailboxError::NoSuchFolder(name).into()),
    }
}

/// Every message row of a folder, by UID.
async fn message_rows(
    db: &Db,
    connection: &mut AnyConnection,
    folder_id: i64,
) -> Result<Vec<MessageRow>, StoreError> {
    let rows = sqlx::query(&db.sql(&format!(
        "SELECT {} FROM messages WHERE folder_id = ? ORDER BY uid",
        super::MESSAGE_COLUMNS
    )))
    .bind(folder_id)
    .fetch_all(connection)
    .await?;
    rows.iter().map(message_row).collect()
}

/// SELECT's and STATUS's numbers, counted from the folder's rows (the flags are
/// a text column: counting `\Seen` in SQL would need each engine's escaping).
async fn status_of(
    db: &Db,
    connection: &mut AnyConnection,
    folder: &FolderRow,
) -> Result<FolderStatus, StoreError> {
    let rows = sqlx::query(&db.sql("SELECT size, flags FROM messages WHERE folder_id = ?"))
        .bind(folder.id)
        .fetch_all(connection)
        .await?;
    let mut status = FolderStatus {
        uidvalidity: folder.uidvalidity,
        uidnext: folder.uidnext,
        highestmodseq: folder.highestmodseq,
        messages: 0,
        unseen: 0,
        deleted: 0,
        size: 0,
    };
    for row in &rows {
        status.messages = status.messages.saturating_add(1);
        status.size = status.size.saturating_add(to_u64(int(row, "size")?));
        let flags = split_flags(&row.try_get::<String, _>("flags")?);
        if !flags.iter().any(|flag| flag == "\\Seen") {
            status.unseen = status.unseen.saturating_add(1);
        }
        if flags.iter().any(|flag| flag == "\\Deleted") {
            status.deleted = status.deleted.saturating_add(1);
        }
    }
    Ok(status)
}

impl Db {
    /// One user's folders, messages and subscriptions, canonically.
    pub(crate) async fn observe_user(&self, user: &str) -> Result<UserObservation, StoreError> {
        let user_key = lookup_key(user);
        read(self, async |tx| {
            let folders = sqlx::query(&self.sql(&format!(
                "SELECT {FOLDER_COLUMNS} FROM folders WHERE user_key = ? ORDER BY name"
            )))
            .bind(&user_key)
            .fetch_all(&mut *tx)
            .await?;
            let mut observation = UserObservation::default();
            for row in folders {
                let folder = folder_row(&row)?;
                let mut messages = Vec::new();
                for message in message_rows(self, &mut *tx, folder.id).await? {
                    messages.push(MessageObservation {
                        uid: to_u32(message.uid, "uid")?,
                        flags: message.flags,
                        size: to_u64(message.size),
                        blob: message.blob,
                        internal_date_ms: message.internal_date_ms,
                        modseq: to_u64(message.modseq),
                        reverse_path: message.reverse_path,
                    });
                }
                let tombstones = sqlx::query(&self.sql(
                    "SELECT uid, modseq FROM expunged_messages WHERE folder_id = ? ORDER BY uid",
                ))
                .bind(folder.id)
                .fetch_all(&mut *tx)
                .await?;
                let mut vanished = Vec::with_capacity(tombstones.len());
                for tombstone in &tombstones {
                    vanished.push((
                        to_u32(int(tombstone, "uid")?, "uid")?,
                        to_u64(int(tombstone, "modseq")?),
                    ));
                }
                observation.folders.insert(
                    row.try_get("name")?,
                    FolderObservation {
                        uidvalidity: folder.uidvalidity,
                        uidnext: folder.uidnext,
                        special_use: folder.special_use,
                        highestmodseq: folder.highestmodseq,
                        vanished,
                        vanished_floor: folder.vanished_floor,
                        messages,
                    },
                );
            }
            observation.subscriptions = self
                .subscriptions_of(&mut *tx, &user_key)
                .await?
                .into_iter()
                .collect();
            Ok(observation)
        })
        .await
    }

    async fn subscriptions_of(
        &self,
        connection: &mut AnyConnection,
        user_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            &self.sql("SELECT name FROM subscriptions WHERE user_key = ? ORDER BY name"),
        )
        .bind(user_key)
        .fetch_all(connection)
        .await?;
        let mut names: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<String, _>("name"))
            .collect::<Result<_, _>>()?;
        // Byte order whatever the database's collation.
        names.sort();
        Ok(names)
    }

    /// A user's subscribed names, in byte order.
    pub(crate) async fn subscriptions(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let user_key = lookup_key(user);
        read(self, async |tx| {
            require_user(self, &mut *tx, user, &user_key).await?;
            self.subscriptions_of(&mut *tx, &user_key).await
        })
        .await
    }

    /// A user's folders (name and special use), by name in byte order.
    pub(crate) async fn folder_entries(&self, user: &str) -> Result<Vec<FolderEntry>, StoreError> {
        let user_key = lookup_key(user);
        read(self, async |tx| {
            require_user(self, &mut *tx, user, &user_key).await?;
            let rows = sqlx::query(&self.sql(&format!(
                "SELECT {FOLDER_COLUMNS} FROM folders WHERE user_key = ?"
            )))
            .bind(&user_key)
            .fetch_all(&mut *tx)
            .await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                entries.push(FolderEntry {
                    name: row.try_get("name")?,
                    special_use: folder_row(row)?.special_use,
                });
            }
            // Byte order whatever the database's collation.
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
        .await
    }

    /// The messages of a folder with a UID in `from..=to`, by UID, in the
    /// model's form; a missing user or folder is the model's refusal.
    pub(crate) async fn folder_observations(
        &self,
        user: &str,
        folder: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<MessageObservation>, StoreError> {
        // One statement, outside a transaction: IMAP asks this for every message
        // a FETCH or SEARCH reads. Only an empty answer needs the second look that
        // tells a missing user or folder (the model's refusal) from no messages.
        let Ok(name) = normalise_folder_name(folder) else {
            // The model's refusal, in the model's order (a missing user first).
            return read(self, async |tx| {
                resolve_folder(self, tx, user, folder)
                    .await
                    .map(|_| Vec::new())
            })
            .await;
        };
        let columns: Vec<String> = super::MESSAGE_COLUMNS
            .split(", ")
            .map(|column| format!("m.{column}"))
            .collect();
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {} FROM messages m JOIN folders f ON f.id = m.folder_id \
             WHERE f.user_key = ? AND f.name = ? AND m.uid >= ? AND m.uid <= ? ORDER BY m.uid",
            columns.join(", ")
        )))
        .bind(lookup_key(user))
        .bind(name)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            read(self, async |tx| {
                resolve_folder(self, tx, user, folder).await.map(|_| ())
            })
            .await?;
        }
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = message_row(row)?;
            messages.push(MessageObservation {
                uid: to_u32(message.uid, "uid")?,
                flags: message.flags,
                size: to_u64(message.size),
                blob: message.blob,
                internal_date_ms: message.internal_date_ms,
                modseq: to_u64(message.modseq),
                reverse_path: message.reverse_path,
            });
        }
        Ok(messages)
    }

    /// SELECT's and STATUS's view of a folder.
    pub(crate) async fn folder_status(
        &self,
        user: &str,
        folder: &str,
    ) -> Result<FolderStatus, StoreError> {
        read(self, async |tx| {
            let found = resolve_folder(self, &mut *tx, user, folder).await?;
            status_of(self, &mut *tx, &found).await
        })
        .await
    }

    /// What changed in a folder after `modseq`, as core's model answers it.
    pub(crate) async fn changes_since(
        &self,
        user: &str,
        folder: &str,
        modseq: u64,
    ) -> Result<Changes, StoreError> {
        // Above every stored MODSEQ: nothing changed after it.
        let since = i64::try_from(modseq).unwrap_or(i64::MAX);
        read(self, async |tx| {
            let found = resolve_folder(self, &mut *tx, user, folder).await?;
            let status = status_of(self, &mut *tx, &found).await?;
            let rows = sqlx::query(&self.sql(
                "SELECT uid, flags, modseq, internal_date_ms, size, reverse_path FROM messages \
                 WHERE folder_id = ? AND modseq > ? ORDER BY uid",
            ))
            .bind(found.id)
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
            let mut changed = Vec::with_capacity(rows.len());
            for row in &rows {
                changed.push(ChangedMessage {
                    uid: to_u32(int(row, "uid")?, "uid")?,
                    flags: split_flags(&row.try_get::<String, _>("flags")?),
                    modseq: to_u64(int(row, "modseq")?),
                    internal_date_ms: int(row, "internal_date_ms")?,
                    size: to_u64(int(row, "size")?),
                    reverse_path: row.try_get("reverse_path")?,
                });
            }
            let rows = sqlx::query(&self.sql(
                "SELECT uid FROM expunged_messages WHERE folder_id = ? AND modseq > ? ORDER BY uid",
            ))
            .bind(found.id)
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
            let mut vanished = Vec::with_capacity(rows.len());
            for row in &rows {
                vanished.push(to_u32(int(row, "uid")?, "uid")?);
            }
            Ok(Changes {
                status,
                changed,
                vanished,
                vanished_complete: modseq >= found.vanished_floor,
            })
        })
        .await
    }

    /// Up to `limit` Junk events recorded after the one numbered `after_id`
    /// (0: from the first), oldest first.
    pub(crate) async fn junk_events(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredJunkEvent>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT id, user_key, blob_sha256, direction, at_ms FROM mailbox_events \
             WHERE id > ? ORDER BY id LIMIT ?",
        ))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let direction: String = row.try_get("direction")?;
            let direction =
                JunkDirection::parse(&direction).ok_or_else(|| StoreError::Invalid {
                    what: "stored Junk event direction",
                    reason: direction.clone(),
                })?;
            events.push(StoredJunkEvent {
                id: int(row, "id")?,
                user: row.try_get("user_key")?,
                event: JunkEvent {
                    blob: row.try_get("blob_sha256")?,
                    direction,
                    at_ms: int(row, "at_ms")?,
                },
            });
        }
        Ok(events)
    }

    /// Deletes the Junk events up to and including `up_to_id`, once the
    /// classifier has learnt from them: the log's bound is its reader's pace.
    pub(crate) async fn forget_junk_events(&self, up_to_id: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query(&self.sql("DELETE FROM mailbox_events WHERE id <= ?"))
            .bind(up_to_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    pub(crate) async fn folder_messages(
        &self,
        user: &str,
        folder: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let user_key = lookup_key(user);
        let name = normalise_folder_name(folder)?;
        let found =
            sqlx::query(&self.sql("SELECT id FROM folders WHERE user_key = ? AND name = ?"))
                .bind(&user_key)
                .bind(&name)
                .fetch_optional(&self.pool)
                .await?;
        let Some(found) = found else {
            return Err(StoreError::NotFound(format!(
                "folder {name} of {}",
                user.trim()
            )));
        };
        let mut connection = self.pool.acquire().await?;
        let rows = message_rows(self, &mut connection, int(&found, "id")?).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(StoredMessage {
                uid: to_u32(row.uid, "uid")?,
                folder: name.clone(),
                queue_id: row.queue_id,
                blob: row.blob,
                size: to_u64(row.size),
                flags: row.flags,
                internal_date_ms: row.internal_date_ms,
                modseq: to_u64(row.modseq),
                reverse_path: row.reverse_path,
            });
        }
        Ok(out)
    }
}
