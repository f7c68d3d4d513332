//! Hearing the mailbox changes other processes commit to the same database, so
//! that an IMAP session in IDLE learns of mail a second backend process (or the
//! `sluice` command line) stored. PostgreSQL carries them as notifications
//! (LISTEN/NOTIFY on one channel: each process announces its own writes there and
//! skips its own echoes); SQLite and MySQL/MariaDB have no such channel, so a
//! bounded poll compares, every [`POLL_INTERVAL`], the folder states of the users
//! someone is listening for. Either way what arrives is an announcement on the
//! process's [`MailboxWatch`]: a hint, never an answer.

use super::StoreError;
use super::sql::{Db, SqlEngine, int};
use super::watch::MailboxWatch;
use sqlx::Row;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// The PostgreSQL notification channel.
const CHANNEL: &str = "sluice_mailbox";

/// How often the poll looks: IDLE's wake-up across processes within a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Users whose folder states one poll query compares (bounds the statement).
const USERS_PER_QUERY: usize = 500;

/// Announcements waiting for the notifier; more are dropped (hints).
const OUTWARD_BACKLOG: usize = 1024;

/// A number naming one open store among the processes on a database.
pub(super) fn instance_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// The payload of one notification: the announcing store, then the user.
fn payload(instance: u64, user_key: &str) -> String {
    format!("{instance:016x}:{user_key}")
}

/// Starts the task that sends this store's announcements as PostgreSQL
/// notifications, and returns its inbox. Announcements that queued up while one
/// was sent go out once per user.
pub(super) fn spawn_notifier(db: Db, instance: u64) -> mpsc::Sender<String> {
    let (sender, mut inbox) = mpsc::channel::<String>(OUTWARD_BACKLOG);
    tokio::spawn(async move {
        let mut users = Vec::new();
        while inbox.recv_many(&mut users, OUTWARD_BACKLOG).await > 0 {
            users.sort();
            users.dedup();
            for user in users.drain(..) {
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload(instance, &user))
                    .execute(&db.pool)
                    .await;
                if let Err(error) = sent {
                    tracing::debug!(%error, "cannot notify other processes");
                }
            }
        }
    });
    sender
}

/// Hears other processes until the watch's process ends. Spawned once per
/// serving node; failures are logged and retried, never fatal.
pub(super) async fn hear(db: Db, database_url: String, watch: MailboxWatch, instance: u64) {
    if db.engine == SqlEngine::Postgres {
        listen(&database_url, &watch, instance).await;
    } else {
        poll(&db, &watch).await;
    }
}

async fn listen(database_url: &str, watch: &MailboxWatch, instance: u64) {
    let own = format!("{instance:016x}:");
    loop {
        match sqlx::postgres::PgListener::connect(database_url).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(CHANNEL).await {
                    tracing::warn!(%error, "cannot LISTEN for mailbox changes");
                } else {
                    tracing::debug!("listening for other processes' mailbox changes");
                    // Whatever was committed before this connection listened (at
                    // start, or while reconnecting) was not heard: say so.
                    for user in watch.watched_users() {
                        watch.announce_here(&user);
                    }
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                let payload = notification.payload();
                                if let Some((_, user)) = payload.split_once(':')
                                    && !payload.starts_with(&own)
                                {
                                    watch.announce_here(user);
                                }
                            }
                            // The connection was lost: listen anew (and announce
                            // what may have been missed meanwhile) on a new one.
                            Ok(None) => break,
                            Err(error) => {
                                tracing::warn!(%error, "mailbox change notifications failed");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot connect to hear mailbox changes"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn poll(db: &Db, watch: &MailboxWatch) {
    let mut known: HashMap<String, u64> = HashMap::new();
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let users = watch.watched_users();
        known.retain(|user, _| users.contains(user));
        for chunk in users.chunks(USERS_PER_QUERY) {
            match fingerprints(db, chunk).await {
                Ok(now) => {
                    for user in chunk {
                        let print = now.get(user).copied().unwrap_or_default();
                        // A user first seen is announced too: a change made between
                        // the session's last look and this poll would be lost otherwise.
                        if known.insert(user.clone(), print) != Some(print) {
                            watch.announce_here(user);
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot poll for mailbox changes"),
            }
        }
    }
}

/// One number per user that changes whenever any of their folders does: every
/// mailbox change advances its folder's HIGHESTMODSEQ, and creating, deleting or
/// renaming a folder changes the set of (UIDVALIDITY, MODSEQ) pairs summed here.
async fn fingerprints(db: &Db, users: &[String]) -> Result<HashMap<String, u64>, StoreError> {
    let marks = vec!["?"; users.len()].join(", ");
    let sql = format!(
        "SELECT user_key, uidvalidity, highestmodseq, uidnext FROM folders \
         WHERE user_key IN ({marks})"
    );
    let sql = db.sql(&sql);
    let mut query = sqlx::query(&sql);
    for user in users {
        query = query.bind(user);
    }
    let rows = query.fetch_all(&db.pool).await?;
    let mut prints: HashMap<String, u64> = HashMap::new();
    for row in &rows {
        let user: String = row.try_get("user_key")?;
        let folder = mix(
            int(row, "uidvalidity")?,
            int(row, "highestmodseq")?,
            int(row, "uidnext")?,
        );
        let print = prints.entry(user).or_default();
        *print = print.wrapping_add(folder);
    }
    Ok(prints)
}

/// A folder's state as one well-spread number (summed per user, so the order of
/// rows does not matter).
fn mix(uidvalidity: i64, modseq: i64, uidnext: i64) -> u64 {
    let mut value = (uidvalidity as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    value ^= (modseq as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    value ^= (uidnext as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    value ^ (value >> 29)
}
