//! Mailboxes in SQL: folders with UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ, messages
//! with flags, MODSEQ and envelope sender, expunge tombstones, subscriptions,
//! Junk events, the delivery keys that make delivery idempotent, and blob
//! reference counting — the same operations, with the same results, as
//! `sluice_core::mailbox`'s model. Reads (observations, STATUS, CHANGEDSINCE)
//! are in `reads`; tombstones and their bound in `tombstones`.

mod reads;
mod tombstones;

pub use reads::StoredJunkEvent;

use super::StoreError;
use super::directory::lookup_key;
use super::sql::{Db, SqlEngine, WriteTx, int};
use sluice_core::mailbox::{
    INBOX, JunkEvent, MailboxError, MailboxLimits, Operation, Outcome, STANDARD_FOLDERS,
    SpecialUse, appended_flags, changed_flags, junk_direction, normalise_flag,
    normalise_folder_name,
};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A folder row.
#[derive(Clone, Debug)]
struct Folder {
    id: i64,
    uidnext: i64,
    uidvalidity: i64,
    special_use: Option<SpecialUse>,
}

/// A message row as the operations need it.
#[derive(Clone, Debug)]
struct MessageRow {
    id: i64,
    uid: i64,
    blob: String,
    size: i64,
    flags: Vec<String>,
    internal_date_ms: i64,
    queue_id: String,
    modseq: i64,
    reverse_path: String,
}

fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Invalid {
        what: "stored value",
        reason: format!("{what} {value} is out of range"),
    })
}

fn split_flags(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|flag| !flag.is_empty())
        .map(str::to_owned)
        .collect()
}

fn join_flags(flags: &[String]) -> String {
    flags.join(" ")
}

fn message_row(row: &AnyRow) -> Result<MessageRow, StoreError> {
    Ok(MessageRow {
        id: int(row, "id")?,
        uid: int(row, "uid")?,
        blob: row.try_get("blob_sha256")?,
        size: int(row, "size")?,
        flags: split_flags(&row.try_get::<String, _>("flags")?),
        internal_date_ms: int(row, "internal_date_ms")?,
        queue_id: row.try_get("queue_id")?,
        modseq: int(row, "modseq")?,
        reverse_path: row.try_get("reverse_path")?,
    })
}

const MESSAGE_COLUMNS: &str =
    "id, uid, blob_sha256, size, flags, internal_date_ms, queue_id, modseq, reverse_path";

/// Takes the next UIDVALIDITY of a user.
async fn take_uidvalidity(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
) -> Result<u32, StoreError> {
    sqlx::query(
        &db.sql(
            "UPDATE addresses SET next_uidvalidity = next_uidvalidity + 1 WHERE address_key = ?",
        ),
    )
    .bind(user_key)
    .execute(&mut *tx.tx)
    .await?;
    let row = sqlx::query(&db.sql("SELECT next_uidvalidity FROM addresses WHERE address_key = ?"))
        .bind(user_key)
        .fetch_one(&mut *tx.tx)
        .await?;
    let taken = int(&row, "next_uidvalidity")? - 1;
    u32::try_from(taken)
        .map_err(|_| StoreError::Mailbox(MailboxError::UidValidityExhausted(user_key.to_owned())))
}

async fn insert_folder(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<u32, StoreError> {
    let uidvalidity = take_uidvalidity(db, tx, user_key).await?;
    sqlx::query(&db.sql(
        "INSERT INTO folders (user_key, name, special_use, uidvalidity, uidnext) \
         VALUES (?, ?, ?, ?, 1)",
    ))
    .bind(user_key)
    .bind(name)
    .bind(special_use.map(SpecialUse::attribute))
    .bind(i64::from(uidvalidity))
    .execute(&mut *tx.tx)
    .await?;
    Ok(uidvalidity)
}

/// INBOX and the special-use folders of a new user, in the model's order.
pub(crate) async fn create_standard_folders(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
) -> Result<(), StoreError> {
    insert_folder(db, tx, user_key, INBOX, None).await?;
    for special in STANDARD_FOLDERS {
        insert_folder(db, tx, user_key, special.folder_name(), Some(special)).await?;
    }
    Ok(())
}

/// Ensures the blob row exists, so message rows may reference it.
pub(crate) async fn ensure_blob(
    db: &Db,
    tx: &mut WriteTx<'_>,
    blob: &str,
    size: i64,
) -> Result<(), StoreError> {
    sqlx::query(&db.insert_ignore("blobs (blob_sha256, size, refcount) VALUES (?, ?, 0)"))
        .bind(blob)
        .bind(size)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// Adds (or, negative, drops) references to a blob.
pub(crate) async fn change_blob_refs(
    db: &Db,
    tx: &mut WriteTx<'_>,
    blob: &str,
    delta: i64,
) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    sqlx::query(&db.sql("UPDATE blobs SET refcount = refcount + ? WHERE blob_sha256 = ?"))
        .bind(delta)
        .bind(blob)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// Drops the references held by a set of message rows.
async fn release_rows(
    db: &Db,
    tx: &mut WriteTx<'_>,
    rows: &[MessageRow],
) -> Result<(), StoreError> {
    let mut counts: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for row in rows {
        *counts.entry(row.blob.as_str()).or_default() += 1;
    }
    for (blob, count) in counts {
        change_blob_refs(db, tx, blob, -count).await?;
    }
    Ok(())
}

/// Drops the blob references of every message of a user about to be removed.
pub(crate) async fn release_user_blobs(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
) -> Result<(), StoreError> {
    let rows = sqlx::query(&db.sql(
        "SELECT m.blob_sha256 AS blob_sha256, COUNT(*) AS n FROM messages m \
         JOIN folders f ON m.folder_id = f.id WHERE f.user_key = ? GROUP BY m.blob_sha256",
    ))
    .bind(user_key)
    .fetch_all(&mut *tx.tx)
    .await?;
    for row in rows {
        let blob: String = row.try_get("blob_sha256")?;
        change_blob_refs(db, tx, &blob, -int(&row, "n")?).await?;
    }
    Ok(())
}

async fn user_exists(db: &Db, tx: &mut WriteTx<'_>, user_key: &str) -> Result<bool, StoreError> {
    let row = sqlx::query(
        &db.sql("SELECT address FROM addresses WHERE address_key = ? AND kind = 'user'"),
    )
    .bind(user_key)
    .fetch_optional(&mut *tx.tx)
    .await?;
    Ok(row.is_some())
}

async fn find_folder(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
    name: &str,
) -> Result<Option<Folder>, StoreError> {
    let row = sqlx::query(&db.sql(
        "SELECT id, uidnext, uidvalidity, special_use FROM folders \
         WHERE user_key = ? AND name = ?",
    ))
    .bind(user_key)
    .bind(name)
    .fetch_optional(&mut *tx.tx)
    .await?;
    match row {
        Some(row) => {
            let special_use: Option<String> = row.try_get("special_use")?;
            Ok(Some(Folder {
                id: int(&row, "id")?,
                uidnext: int(&row, "uidnext")?,
                uidvalidity: int(&row, "uidvalidity")?,
                special_use: special_use.as_deref().and_then(SpecialUse::from_attribute),
            }))
        }
        None => Ok(None),
    }
}

/// Reserves `count` consecutive UIDs in a folder; the first one.
/// The increment is a single UPDATE, which row-locks the folder on PostgreSQL and
/// MySQL until commit, so concurrent deliveries to one folder serialise there.
async fn allocate_uids(
    db: &Db,
    tx: &mut WriteTx<'_>,
    folder: &Folder,
    folder_name: &str,
    count: i64,
) -> Result<Result<u32, MailboxError>, StoreError> {
    if folder.uidnext + count > i64::from(u32::MAX) {
        return Ok(Err(MailboxError::UidsExhausted(folder_name.to_owned())));
    }
    sqlx::query(&db.sql("UPDATE folders SET uidnext = uidnext + ? WHERE id = ?"))
        .bind(count)
        .bind(folder.id)
        .execute(&mut *tx.tx)
        .await?;
    let row = sqlx::query(&db.sql("SELECT uidnext FROM folders WHERE id = ?"))
        .bind(folder.id)
        .fetch_one(&mut *tx.tx)
        .await?;
    let uidnext = int(&row, "uidnext")?;
    if uidnext > i64::from(u32::MAX) {
        return Ok(Err(MailboxError::UidsExhausted(folder_name.to_owned())));
    }
    Ok(Ok(to_u32(uidnext - count, "uid")?))
}

/// Advances a folder's HIGHESTMODSEQ for one operation's changes there; the new
/// value. The UPDATE row-locks the folder until commit.
async fn next_modseq(db: &Db, tx: &mut WriteTx<'_>, folder_id: i64) -> Result<i64, StoreError> {
    sqlx::query(&db.sql("UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = ?"))
        .bind(folder_id)
        .execute(&mut *tx.tx)
        .await?;
    let row = sqlx::query(&db.sql("SELECT highestmodseq FROM folders WHERE id = ?"))
        .bind(folder_id)
        .fetch_one(&mut *tx.tx)
        .await?;
    int(&row, "highestmodseq")
}

/// A message row to write, in `folder_id` under `uid`.
struct NewMessage<'a> {
    folder_id: i64,
    uid: u32,
    blob: &'a str,
    size: i64,
    flags: &'a [String],
    internal_date_ms: i64,
    queue_id: &'a str,
    modseq: i64,
    reverse_path: &'a str,
}

async fn insert_message(
    db: &Db,
    tx: &mut WriteTx<'_>,
    message: &NewMessage<'_>,
) -> Result<(), StoreError> {
    sqlx::query(&db.sql(
        "INSERT INTO messages (folder_id, uid, blob_sha256, size, flags, internal_date_ms, \
         queue_id, modseq, reverse_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(message.folder_id)
    .bind(i64::from(message.uid))
    .bind(message.blob)
    .bind(message.size)
    .bind(join_flags(message.flags))
    .bind(message.internal_date_ms)
    .bind(message.queue_id)
    .bind(message.modseq)
    .bind(message.reverse_path)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// One local copy written into its user's INBOX.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InboxDelivery<'a> {
    pub(crate) user_key: &'a str,
    pub(crate) delivery_key: &'a str,
    pub(crate) blob: &'a str,
    pub(crate) size: i64,
    pub(crate) internal_date_ms: i64,
    pub(crate) queue_id: &'a str,
    /// The envelope sender (no angle brackets; empty for the null path).
    pub(crate) reverse_path: &'a str,
}

/// One message into a user's INBOX, unless its delivery key was seen before.
pub(crate) async fn deliver(
    db: &Db,
    tx: &mut WriteTx<'_>,
    delivery: &InboxDelivery<'_>,
) -> Result<Result<Outcome, MailboxError>, StoreError> {
    if !user_exists(db, tx, delivery.user_key).await? {
        return Ok(Err(MailboxError::NoSuchUser(delivery.user_key.to_owned())));
    }
    ensure_blob(db, tx, delivery.blob, delivery.size).await?;
    let outcome = deliver_to_inbox(db, tx, delivery).await?;
    if let Ok(Outcome::Delivered { .. }) = outcome {
        change_blob_refs(db, tx, delivery.blob, 1).await?;
    }
    Ok(outcome)
}

/// The INBOX half of [`deliver`], for a caller that has checked the user and
/// holds the blob row, and that counts the blob references itself (one per
/// `Delivered`). Few statements: it is on the accept path, once per recipient.
/// The copy takes the INBOX's next MODSEQ, advanced by the same UPDATE that
/// takes its UID and read back inside the message's own INSERT.
pub(crate) async fn deliver_to_inbox(
    db: &Db,
    tx: &mut WriteTx<'_>,
    delivery: &InboxDelivery<'_>,
) -> Result<Result<Outcome, MailboxError>, StoreError> {
    let user_key = delivery.user_key;
    match record_delivery_key(
        db,
        tx,
        user_key,
        delivery.delivery_key,
        delivery.internal_date_ms,
    )
    .await?
    {
        KeyRecord::Recorded => {}
        KeyRecord::Seen => return Ok(Ok(Outcome::AlreadyDelivered)),
        KeyRecord::NoSuchUser => return Ok(Err(MailboxError::NoSuchUser(user_key.to_owned()))),
    }
    let (folder_id, uid) = match take_inbox_uid(db, tx, user_key).await? {
        Ok(taken) => taken,
        Err(error) => return Ok(Err(error)),
    };
    sqlx::query(&db.sql(
        "INSERT INTO messages (folder_id, uid, blob_sha256, size, flags, internal_date_ms, \
         queue_id, modseq, reverse_path) VALUES (?, ?, ?, ?, '', ?, ?, \
         (SELECT highestmodseq FROM folders WHERE id = ?), ?)",
    ))
    .bind(folder_id)
    .bind(i64::from(uid))
    .bind(delivery.blob)
    .bind(delivery.size)
    .bind(delivery.internal_date_ms)
    .bind(delivery.queue_id)
    .bind(folder_id)
    .bind(delivery.reverse_path)
    .execute(&mut *tx.tx)
    .await?;
    Ok(Ok(Outcome::Delivered { uid }))
}

/// What recording a delivery key found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyRecord {
    Recorded,
    /// The user had this key already: the copy was delivered before.
    Seen,
    /// No such user (any more): nothing was recorded.
    NoSuchUser,
}

/// Records a delivery key for a user who exists. The insert itself checks that
/// the user exists, which saves a lookup on the common path; only when it writes
/// nothing does a second query tell a seen key from a missing user. A refusal
/// later in the same transaction rolls the key back with everything else.
async fn record_delivery_key(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
    delivery_key: &str,
    arrived_at_ms: i64,
) -> Result<KeyRecord, StoreError> {
    let statement = match db.engine {
        // MySQL has no ON CONFLICT, and sqlx's FOUND_ROWS makes an ON DUPLICATE
        // KEY no-op count as a row: the insert skips a seen key itself.
        SqlEngine::Mysql => "INSERT INTO deliveries (user_key, delivery_key, delivered_at_ms) \
             SELECT ?, ?, ? FROM addresses WHERE address_key = ? AND kind = 'user' \
             AND NOT EXISTS (SELECT 1 FROM deliveries WHERE user_key = ? AND delivery_key = ?)"
            .to_owned(),
        SqlEngine::Sqlite | SqlEngine::Postgres => db.insert_or_skip(
            "deliveries (user_key, delivery_key, delivered_at_ms) SELECT ?, ?, ? FROM addresses \
             WHERE address_key = ? AND kind = 'user'",
        ),
    };
    let mut insert = sqlx::query(&statement)
        .bind(user_key)
        .bind(delivery_key)
        .bind(arrived_at_ms)
        .bind(user_key);
    if db.engine == SqlEngine::Mysql {
        insert = insert.bind(user_key).bind(delivery_key);
    }
    let inserted = insert.execute(&mut *tx.tx).await?.rows_affected();
    if inserted == 1 {
        Ok(KeyRecord::Recorded)
    } else if user_exists(db, tx, user_key).await? {
        Ok(KeyRecord::Seen)
    } else {
        Ok(KeyRecord::NoSuchUser)
    }
}

/// Takes the next UID and MODSEQ of a user's INBOX: its folder id and the UID.
/// One `UPDATE … RETURNING` where the engine has it (SQLite, PostgreSQL); the
/// UPDATE row-locks the folder, so concurrent deliveries serialise there.
async fn take_inbox_uid(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
) -> Result<Result<(i64, u32), MailboxError>, StoreError> {
    if db.engine == SqlEngine::Mysql {
        let Some(inbox) = find_folder(db, tx, user_key, INBOX).await? else {
            return Ok(Err(MailboxError::NoSuchFolder(INBOX.to_owned())));
        };
        // No RETURNING on MySQL: LAST_INSERT_ID(expr) hands the incremented value
        // back in the UPDATE's own reply, which saves reading it again.
        let taken = sqlx::query(
            "UPDATE folders SET uidnext = LAST_INSERT_ID(uidnext + 1), \
             highestmodseq = highestmodseq + 1 WHERE id = ?",
        )
        .bind(inbox.id)
        .execute(&mut *tx.tx)
        .await?;
        let uidnext = match taken.last_insert_id() {
            Some(uidnext) if taken.rows_affected() == 1 => uidnext,
            _ => return Ok(Err(MailboxError::NoSuchFolder(INBOX.to_owned()))),
        };
        if uidnext > i64::from(u32::MAX) {
            return Ok(Err(MailboxError::UidsExhausted(INBOX.to_owned())));
        }
        return Ok(Ok((inbox.id, to_u32(uidnext - 1, "uid")?)));
    }
    let row = sqlx::query(&db.sql(
        "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
         WHERE user_key = ? AND name = ? RETURNING id, uidnext",
    ))
    .bind(user_key)
    .bind(INBOX)
    .fetch_optional(&mut *tx.tx)
    .await?;
    let Some(row) = row else {
        return Ok(Err(MailboxError::NoSuchFolder(INBOX.to_owned())));
    };
    let uidnext = int(&row, "uidnext")?;
    // The caller's transaction rolls the increment back with this refusal.
    if uidnext > i64::from(u32::MAX) {
        return Ok(Err(MailboxError::UidsExhausted(INBOX.to_owned())));
    }
    Ok(Ok((int(&row, "id")?, to_u32(uidnext - 1, "uid")?)))
}

/// Takes `count` consecutive UIDs (and as many MODSEQs) of a user's INBOX at
/// once, for a batch of deliveries: the first UID. The batch's copies take the
/// UIDs and MODSEQs in order, as one delivery after the other would. None when the user is no user (any more), has
/// no INBOX, or has fewer than `count` UIDs left: cases [`deliver_to_inbox`]
/// answers one delivery at a time. Row-locks the folder like [`take_inbox_uid`].
pub(crate) async fn take_inbox_uids(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
    count: u32,
) -> Result<Option<u32>, StoreError> {
    const WHERE: &str = "WHERE user_key = ? AND name = ? AND EXISTS \
         (SELECT 1 FROM addresses WHERE address_key = folders.user_key AND kind = 'user')";
    let uidnext = if db.engine == SqlEngine::Mysql {
        // LAST_INSERT_ID(expr) hands the new uidnext back in the UPDATE's own reply.
        let taken = sqlx::query(&format!(
            "UPDATE folders SET uidnext = LAST_INSERT_ID(uidnext + ?), \
             highestmodseq = highestmodseq + ? {WHERE}"
        ))
        .bind(i64::from(count))
        .bind(i64::from(count))
        .bind(user_key)
        .bind(INBOX)
        .execute(&mut *tx.tx)
        .await?;
        match taken.last_insert_id() {
            Some(uidnext) if taken.rows_affected() == 1 => uidnext,
            _ => return Ok(None),
        }
    } else {
        let row = sqlx::query(&db.sql(&format!(
            "UPDATE folders SET uidnext = uidnext + ?, highestmodseq = highestmodseq + ? \
             {WHERE} RETURNING uidnext"
        )))
        .bind(i64::from(count))
        .bind(i64::from(count))
        .bind(user_key)
        .bind(INBOX)
        .fetch_optional(&mut *tx.tx)
        .await?;
        match row {
            Some(row) => int(&row, "uidnext")?,
            None => return Ok(None),
        }
    };
    // As in `take_inbox_uid`: the last UID taken leaves uidnext at most u32::MAX.
    if uidnext > i64::from(u32::MAX) {
        return Ok(None);
    }
    Ok(Some(to_u32(uidnext - i64::from(count), "uid")?))
}

async fn folder_rows(
    db: &Db,
    tx: &mut WriteTx<'_>,
    folder_id: i64,
) -> Result<Vec<MessageRow>, StoreError> {
    let rows = sqlx::query(&db.sql(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE folder_id = ? ORDER BY uid"
    )))
    .bind(folder_id)
    .fetch_all(&mut *tx.tx)
    .await?;
    rows.iter().map(message_row).collect()
}

async fn delete_rows(db: &Db, tx: &mut WriteTx<'_>, rows: &[MessageRow]) -> Result<(), StoreError> {
    for row in rows {
        sqlx::query(&db.sql("DELETE FROM messages WHERE id = ?"))
            .bind(row.id)
            .execute(&mut *tx.tx)
            .await?;
    }
    release_rows(db, tx, rows).await
}

/// Resolves user and folder for an operation, or the model's error.
async fn resolve(
    db: &Db,
    tx: &mut WriteTx<'_>,
    user_key: &str,
    user: &str,
    folder: &str,
) -> Result<Result<(String, Folder), MailboxError>, StoreError> {
    if !user_exists(db, tx, user_key).await? {
        return Ok(Err(MailboxError::NoSuchUser(user.to_owned())));
    }
    let name = match normalise_folder_name(folder) {
        Ok(name) => name,
        Err(error) => return Ok(Err(error)),
    };
    match find_folder(db, tx, user_key, &name).await? {
        Some(found) => Ok(Ok((name, found))),
        None => Ok(Err(MailboxError::NoSuchFolder(name))),
    }
}

/// Applies one mailbox operation inside `tx`. The outer `Result` is a storage
/// failure; the inner one is the model's refusal (the caller rolls back then).
/// Checks run in the model's order, so that both refuse alike.
pub(crate) async fn apply(
    db: &Db,
    tx: &mut WriteTx<'_>,
    limits: &MailboxLimits,
    operation: &Operation,
) -> Result<Result<Outcome, MailboxError>, StoreError> {
    let user = operation.user();
    let user_key = lookup_key(user);
    macro_rules! attempt {
        ($expr:expr) => {
            match $expr {
                Ok(value) => value,
                Err(error) => return Ok(Err(error)),
            }
        };
    }
    match operation {
        Operation::AddUser { .. } => Err(StoreError::Invalid {
            what: "mailbox operation",
            reason: "users are created with Store::add_user".to_owned(),
        }),
        Operation::Deliver {
            delivery_key,
            blob,
            size,
            internal_date_ms,
            reverse_path,
            ..
        } => {
            if !user_exists(db, tx, &user_key).await? {
                return Ok(Err(MailboxError::NoSuchUser(user.to_owned())));
            }
            let delivery = InboxDelivery {
                user_key: &user_key,
                delivery_key,
                blob,
                size: stored_size(*size)?,
                internal_date_ms: *internal_date_ms,
                queue_id: delivery_key,
                reverse_path,
            };
            deliver(db, tx, &delivery).await
        }
        Operation::Append {
            folder,
            flags,
            internal_date_ms,
            blob,
            size,
            ..
        } => {
            let (name, found) = attempt!(resolve(db, tx, &user_key, user, folder).await?);
            let flags = attempt!(appended_flags(flags));
            let size = stored_size(*size)?;
            let uid = attempt!(allocate_uids(db, tx, &found, &name, 1).await?);
            let modseq = next_modseq(db, tx, found.id).await?;
            ensure_blob(db, tx, blob, size).await?;
            let message = NewMessage {
                folder_id: found.id,
                uid,
                blob,
                size,
                flags: &flags,
                internal_date_ms: *internal_date_ms,
                // An appended message has no queue id; its row needs some text.
                queue_id: "",
                modseq,
                reverse_path: "",
            };
            insert_message(db, tx, &message).await?;
            change_blob_refs(db, tx, blob, 1).await?;
            Ok(Ok(Outcome::Appended {
                uidvalidity: to_u32(found.uidvalidity, "uidvalidity")?,
                uid,
            }))
        }
        Operation::StoreFlags {
            folder,
            uids,
            mode,
            flags,
            unchanged_since,
            ..
        } => {
            let (_, found) = attempt!(resolve(db, tx, &user_key, user, folder).await?);
            let mut normalised = Vec::with_capacity(flags.len());
            for flag in flags {
                normalised.push(attempt!(normalise_flag(flag)));
            }
            // Every new flag set first: a refusal for one message changes none.
            let mut stored = Vec::new();
            let mut modified = Vec::new();
            let mut changes = Vec::new();
            for row in folder_rows(db, tx, found.id).await? {
                let Ok(uid) = u32::try_from(row.uid) else {
                    continue;
                };
                if !uids.contains(&uid) {
                    continue;
                }
                let modseq = u64::try_from(row.modseq).unwrap_or_default();
                if unchanged_since.is_some_and(|since| modseq > since) {
                    modified.push(uid);
                    continue;
                }
                let new_flags = attempt!(changed_flags(&row.flags, *mode, &normalised));
                if new_flags != row.flags {
                    changes.push((row.id, new_flags));
                }
                stored.push(uid);
            }
            if !changes.is_empty() {
                let modseq = next_modseq(db, tx, found.id).await?;
                for (id, new_flags) in changes {
                    sqlx::query(&db.sql("UPDATE messages SET flags = ?, modseq = ? WHERE id = ?"))
                        .bind(join_flags(&new_flags))
                        .bind(modseq)
                        .bind(id)
                        .execute(&mut *tx.tx)
                        .await?;
                }
            }
            Ok(Ok(Outcome::FlagsStored {
                uids: stored,
                modified,
            }))
        }
        Operation::Expunge { folder, uids, .. } => {
            let (_, found) = attempt!(resolve(db, tx, &user_key, user, folder).await?);
            let doomed: Vec<MessageRow> = folder_rows(db, tx, found.id)
                .await?
                .into_iter()
                .filter(|row| {
                    uids.as_ref().is_none_or(|only| {
                        u32::try_from(row.uid).is_ok_and(|uid| only.contains(&uid))
                    })
                })
                .filter(|row| row.flags.iter().any(|flag| flag == "\\Deleted"))
                .collect();
            let mut uids = Vec::with_capacity(doomed.len());
            for row in &doomed {
                uids.push(to_u32(row.uid, "uid")?);
            }
            if !doomed.is_empty() {
                delete_rows(db, tx, &doomed).await?;
                let modseq = next_modseq(db, tx, found.id).await?;
                tombstones::bury(db, tx, found.id, &uids, modseq, limits).await?;
            }
            Ok(Ok(Outcome::Expunged { uids }))
        }
        Operation::Copy {
            from,
            to,
            uids,
            at_ms,
            ..
        }
        | Operation::Move {
            from,
            to,
            uids,
            at_ms,
            ..
        } => {
            let moving = matches!(operation, Operation::Move { .. });
            let (_, source) = attempt!(resolve(db, tx, &user_key, user, from).await?);
            let (target_name, target) = attempt!(resolve(db, tx, &user_key, user, to).await?);
            if moving && source.id == target.id {
                return Ok(Err(MailboxError::SameFolder));
            }
            let chosen: Vec<MessageRow> = folder_rows(db, tx, source.id)
                .await?
                .into_iter()
                .filter(|row| u32::try_from(row.uid).is_ok_and(|uid| uids.contains(&uid)))
                .collect();
            let mut pairs = Vec::with_capacity(chosen.len());
            if !chosen.is_empty() {
                let first = attempt!(
                    allocate_uids(db, tx, &target, &target_name, chosen.len() as i64).await?
                );
                let modseq = next_modseq(db, tx, target.id).await?;
                for (offset, row) in chosen.iter().enumerate() {
                    let new_uid = first + offset as u32;
                    let message = NewMessage {
                        folder_id: target.id,
                        uid: new_uid,
                        blob: &row.blob,
                        size: row.size,
                        flags: &row.flags,
                        internal_date_ms: row.internal_date_ms,
                        queue_id: &row.queue_id,
                        modseq,
                        reverse_path: &row.reverse_path,
                    };
                    insert_message(db, tx, &message).await?;
                    change_blob_refs(db, tx, &row.blob, 1).await?;
                    pairs.push((to_u32(row.uid, "uid")?, new_uid));
                }
                if moving {
                    delete_rows(db, tx, &chosen).await?;
                    let modseq = next_modseq(db, tx, source.id).await?;
                    let moved: Vec<u32> = pairs.iter().map(|(uid, _)| *uid).collect();
                    tombstones::bury(db, tx, source.id, &moved, modseq, limits).await?;
                }
            }
            let mut junk = Vec::new();
            if let Some(direction) = junk_direction(source.special_use, target.special_use) {
                for row in &chosen {
                    let event = JunkEvent {
                        blob: row.blob.clone(),
                        direction,
                        at_ms: *at_ms,
                    };
                    reads::record_junk_event(db, tx, &user_key, &event).await?;
                    junk.push(event);
                }
            }
            if moving {
                Ok(Ok(Outcome::Moved { uids: pairs, junk }))
            } else {
                Ok(Ok(Outcome::Copied { uids: pairs, junk }))
            }
        }
        Operation::CreateFolder { name, .. } => {
            if !user_exists(db, tx, &user_key).await? {
                return Ok(Err(MailboxError::NoSuchUser(user.to_owned())));
            }
            let name = attempt!(normalise_folder_name(name));
            if find_folder(db, tx, &user_key, &name).await?.is_some() {
                return Ok(Err(MailboxError::FolderExists(name)));
            }
            let uidvalidity = insert_folder(db, tx, &user_key, &name, None).await?;
            Ok(Ok(Outcome::FolderCreated { uidvalidity }))
        }
        Operation::DeleteFolder { name, .. } => {
            let (name, found) = attempt!(resolve(db, tx, &user_key, user, name).await?);
            if name == INBOX {
                return Ok(Err(MailboxError::InboxIsPermanent));
            }
            let rows = folder_rows(db, tx, found.id).await?;
            delete_rows(db, tx, &rows).await?;
            tombstones::forget(db, tx, found.id).await?;
            sqlx::query(&db.sql("DELETE FROM folders WHERE id = ?"))
                .bind(found.id)
                .execute(&mut *tx.tx)
                .await?;
            Ok(Ok(Outcome::FolderDeleted))
        }
        Operation::RenameFolder { from, to, .. } => {
            let (from_name, found) = attempt!(resolve(db, tx, &user_key, user, from).await?);
            if from_name == INBOX {
                return Ok(Err(MailboxError::InboxIsPermanent));
            }
            let to_name = attempt!(normalise_folder_name(to));
            if find_folder(db, tx, &user_key, &to_name).await?.is_some() {
                return Ok(Err(MailboxError::FolderExists(to_name)));
            }
            sqlx::query(&db.sql("UPDATE folders SET name = ? WHERE id = ?"))
                .bind(&to_name)
                .bind(found.id)
                .execute(&mut *tx.tx)
                .await?;
            Ok(Ok(Outcome::FolderRenamed))
        }
        Operation::Subscribe { name, .. } => {
            if !user_exists(db, tx, &user_key).await? {
                return Ok(Err(MailboxError::NoSuchUser(user.to_owned())));
            }
            let name = attempt!(normalise_folder_name(name));
            let subscribed =
                reads::count_subscriptions(db, &mut tx.tx, &user_key, Some(&name)).await?;
            if subscribed == 0 {
                let most = limits.subscriptions_per_user;
                let all = reads::count_subscriptions(db, &mut tx.tx, &user_key, None).await?;
                if usize::try_from(all).unwrap_or(usize::MAX) >= most {
                    return Ok(Err(MailboxError::TooManySubscriptions(most)));
                }
                sqlx::query(&db.sql("INSERT INTO subscriptions (user_key, name) VALUES (?, ?)"))
                    .bind(&user_key)
                    .bind(&name)
                    .execute(&mut *tx.tx)
                    .await?;
            }
            Ok(Ok(Outcome::Subscribed))
        }
        Operation::Unsubscribe { name, .. } => {
            if !user_exists(db, tx, &user_key).await? {
                return Ok(Err(MailboxError::NoSuchUser(user.to_owned())));
            }
            let name = attempt!(normalise_folder_name(name));
            sqlx::query(&db.sql("DELETE FROM subscriptions WHERE user_key = ? AND name = ?"))
                .bind(&user_key)
                .bind(&name)
                .execute(&mut *tx.tx)
                .await?;
            Ok(Ok(Outcome::Unsubscribed))
        }
    }
}

/// A message size as its column keeps it.
fn stored_size(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::Invalid {
        what: "message size",
        reason: size.to_string(),
    })
}

/// POP3's UPDATE state (RFC 1939 §6): removes exactly the messages `uids` of a
/// folder, whatever their flags, as an expunge of them would (tombstones, one
/// MODSEQ), leaving any other `\Deleted` message for its IMAP client to expunge.
/// UIDs no longer there are skipped; the UIDs removed are returned.
pub(crate) async fn remove_uids(
    db: &Db,
    tx: &mut WriteTx<'_>,
    limits: &MailboxLimits,
    user: &str,
    folder: &str,
    uids: &[u32],
) -> Result<Result<Vec<u32>, MailboxError>, StoreError> {
    let user_key = lookup_key(user);
    let found = match resolve(db, tx, &user_key, user, folder).await? {
        Ok((_, found)) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let doomed: Vec<MessageRow> = folder_rows(db, tx, found.id)
        .await?
        .into_iter()
        .filter(|row| u32::try_from(row.uid).is_ok_and(|uid| uids.contains(&uid)))
        .collect();
    let mut removed = Vec::with_capacity(doomed.len());
    for row in &doomed {
        removed.push(to_u32(row.uid, "uid")?);
    }
    if !doomed.is_empty() {
        delete_rows(db, tx, &doomed).await?;
        let modseq = next_modseq(db, tx, found.id).await?;
        tombstones::bury(db, tx, found.id, &removed, modseq, limits).await?;
    }
    Ok(Ok(removed))
}
