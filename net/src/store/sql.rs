//! The database handle shared by the store's modules: one sqlx `AnyPool` plus the
//! SQL engine it talks to, so that one SQL text (written with `?` placeholders) serves
//! all three engines and the few dialect differences are spelled out in one place.

use super::StoreError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long SQLite's log grows before a commit copies it into the database file:
/// 10,000 pages (about 40 MB) instead of SQLite's 1,000. A page rewritten by many
/// commits in between (the last leaf of each table and index, the folder's UID
/// counter) is copied once per checkpoint, so a longer log means fewer page copies
/// and fewer syncs of the database file per accepted message (measured with the
/// bench's 10 sessions: 17.3 to 16.1 writes and 3.5 to 2.7 reads per message).
/// Every connection to the file, pooled or the writer thread's, sets the same.
pub(crate) const WAL_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 10000";

/// Which SQL engine a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlEngine {
    Sqlite,
    Postgres,
    Mysql,
}

impl SqlEngine {
    /// The SQL engine a database URL names, if Sluice supports it.
    pub fn from_url(url: &str) -> Option<SqlEngine> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(SqlEngine::Sqlite),
            "postgres" | "postgresql" => Some(SqlEngine::Postgres),
            "mysql" | "mariadb" => Some(SqlEngine::Mysql),
            _ => None,
        }
    }
}

/// A pool and its dialect.
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pub(crate) pool: AnyPool,
    pub(crate) engine: SqlEngine,
    /// SQLite has a single writer; queueing writers here instead of in SQLite's
    /// busy handler (which sleeps and polls) keeps concurrent accepts fast and
    /// rules out `database is locked` errors under load.
    write_lock: Arc<Mutex<()>>,
    /// The database file of an SQLite store (None in memory and on the other
    /// engines): the SQLite writer of the group commit opens its own connection.
    sqlite_file: Option<PathBuf>,
    /// Read connections to that file, for lookups made on the calling thread.
    sqlite_readers: Option<Arc<SqliteReaders>>,
}

/// Most idle read connections an SQLite store keeps; a busier moment opens more
/// and closes the extra ones after use.
const IDLE_READERS: usize = 4;

/// Read connections to an SQLite file, used on the calling thread. A read in WAL
/// mode takes no lock a writer holds, so it does not wait on the group commit;
/// with the pages cached, a lookup takes microseconds, far less than the hand-off
/// to a sqlx connection's worker thread and back.
#[derive(Debug)]
pub(crate) struct SqliteReaders {
    path: PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl SqliteReaders {
    /// Runs `read` on an idle connection (or a new one).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = rusqlite::Connection::open(&self.path)?;
                // Reads only: a bug that tried to write here fails instead.
                connection.pragma_update(None, "query_only", "ON")?;
                connection.busy_timeout(Duration::from_secs(10))?;
                connection
            }
        };
        let result = read(&connection);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_READERS
        {
            idle.push(connection);
        }
        result
    }
}

/// Runs a future whose every step is synchronous (the rusqlite statements of the
/// store never wait on anything) to its end on this thread: how the store runs its
/// shared async algorithms over an SQLite connection of its own. Should one ever be
/// pending, the thread parks until it is woken, so this stays correct.
pub(crate) fn run_ready<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A write transaction, on a pooled connection of its own (`'static`) or on one
/// its caller holds; on SQLite it also holds the process-wide writer slot.
pub(crate) struct WriteTx<'c> {
    pub(crate) tx: Transaction<'c, Any>,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteTx")
    }
}

impl WriteTx<'_> {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Whether a `scheme://authority/path?query` URL has a non-empty path after the
/// authority (the database's name).
fn names_a_database(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_query = after_scheme.split(['?', '#']).next().unwrap_or_default();
    without_query
        .split_once('/')
        .is_some_and(|(_, path)| !path.trim_matches('/').is_empty())
}

impl Db {
    pub(crate) async fn connect(url: &str) -> Result<Db, StoreError> {
        let engine =
            SqlEngine::from_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        sqlx::any::install_default_drivers();
        let url = match engine {
            // sqlx's Any driver knows MySQL only by its own scheme.
            SqlEngine::Mysql if url.starts_with("mariadb:") => {
                format!("mysql:{}", &url["mariadb:".len()..])
            }
            _ => url.to_owned(),
        };
        if engine == SqlEngine::Mysql && !names_a_database(&url) {
            // Without one, sqlx connects with no default database and the first
            // migration query fails with an unhelpful "unexpected null".
            return Err(StoreError::Invalid {
                what: "database URL",
                reason: "a MySQL/MariaDB URL must name its database: \
                         mysql://USER@HOST:PORT/DATABASE"
                    .to_owned(),
            });
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let sqlite_file = if engine == SqlEngine::Sqlite && !in_memory {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?;
            Some(options.get_filename().to_owned())
        } else {
            None
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(if engine == SqlEngine::Sqlite { 4 } else { 10 })
            // A connection to a local SQLite file does not go stale; testing it
            // before each use would cost a round trip to its worker thread per query.
            .test_before_acquire(engine != SqlEngine::Sqlite)
            .acquire_timeout(Duration::from_secs(30));
        if engine == SqlEngine::Sqlite && in_memory {
            // Each connection to an in-memory SQLite is its own empty database:
            // keep exactly one, forever (the store never nests a pool query
            // inside its own write transaction, so one connection cannot deadlock).
            options = options
                .min_connections(1)
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if engine == SqlEngine::Sqlite {
            options = options.after_connect(|connection, _| {
                Box::pin(async move {
                    // synchronous=FULL: a committed transaction survives power loss,
                    // which is what the 250 after DATA promises.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA foreign_keys = ON",
                        WAL_AUTOCHECKPOINT,
                    ] {
                        connection.execute(pragma).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        Ok(Db {
            pool,
            engine,
            write_lock: Arc::new(Mutex::new(())),
            sqlite_readers: sqlite_file.clone().map(|path| {
                Arc::new(SqliteReaders {
                    path,
                    idle: std::sync::Mutex::default(),
                })
            }),
            sqlite_file,
        })
    }

    /// The database file, on SQLite outside memory.
    pub(crate) fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// The read connections of an SQLite file.
    pub(crate) fn sqlite_readers(&self) -> Option<&SqliteReaders> {
        self.sqlite_readers.as_deref()
    }

    /// The process-wide writer slot every SQLite write transaction holds.
    pub(crate) fn writer_slot(&self) -> Arc<Mutex<()>> {
        Arc::clone(&self.write_lock)
    }

    /// Rewrites `?` placeholders into the engine's form (`$1`, `$2`… on PostgreSQL).
    /// No SQL in the store has a `?` inside a string literal, so a plain scan suffices.
    pub(crate) fn sql(&self, text: &str) -> String {
        if self.engine != SqlEngine::Postgres {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len() + 8);
        let mut number = 0;
        for character in text.chars() {
            if character == '?' {
                number += 1;
                out.push('$');
                out.push_str(&number.to_string());
            } else {
                out.push(character);
            }
        }
        out
    }

    /// `INSERT … ` that silently skips rows whose key exists, in each dialect.
    /// `rest` is everything after `INSERT INTO`.
    pub(crate) fn insert_ignore(&self, rest: &str) -> String {
        match self.engine {
            SqlEngine::Mysql => format!("INSERT IGNORE INTO {rest}"),
            SqlEngine::Sqlite | SqlEngine::Postgres => {
                self.sql(&format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"))
            }
        }
    }

    /// `INSERT …` that skips a row whose unique key exists, and fails on any other
    /// error. On MySQL it is a plain INSERT (MySQL's INSERT IGNORE would also turn
    /// a too-long value into a silent truncation): look for the key first there.
    pub(crate) fn insert_or_skip(&self, rest: &str) -> String {
        match self.engine {
            SqlEngine::Mysql => format!("INSERT INTO {rest}"),
            SqlEngine::Sqlite | SqlEngine::Postgres => {
                self.sql(&format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"))
            }
        }
    }

    /// Starts a write transaction. On SQLite: waits for the writer slot and takes
    /// the database write lock at once (`BEGIN IMMEDIATE`), so a transaction never
    /// fails half-way on lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'static>, StoreError> {
        if self.engine == SqlEngine::Sqlite {
            let writer = Arc::clone(&self.write_lock).lock_owned().await;
            let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            Ok(WriteTx {
                tx,
                _writer: Some(writer),
            })
        } else {
            let tx = self.pool.begin().await?;
            Ok(WriteTx { tx, _writer: None })
        }
    }

    /// Starts a write transaction on a connection the caller keeps from one
    /// transaction to the next (PostgreSQL and MySQL only: SQLite's writers queue
    /// for the writer slot in [`Db::begin_write`]).
    pub(crate) async fn begin_write_on<'c>(
        &self,
        connection: &'c mut AnyConnection,
    ) -> Result<WriteTx<'c>, StoreError> {
        debug_assert_ne!(self.engine, SqlEngine::Sqlite);
        let tx = Connection::begin(connection).await?;
        Ok(WriteTx { tx, _writer: None })
    }
}

/// Reads an integer column as i64 whatever width the engine reports.
pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(column)?)
}

/// Whether a failed transaction may simply be tried again: deadlocks and
/// serialization failures, and unique-key races with a concurrent writer of the
/// same delivery (the retry then finds the row and skips it).
pub(crate) fn is_retryable(error: &StoreError) -> bool {
    let code = match error {
        StoreError::Database(sqlx::Error::Database(database)) => {
            // MariaDB's INSERT ... SELECT takes the table's AUTO-INC lock, and losing
            // a deadlock there is reported as ER_AUTOINC_READ_FAILED (1467, SQLSTATE
            // HY000) rather than as a deadlock; the statement failed whole, so the
            // transaction is simply tried again like any other deadlock.
            if database
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|mysql| mysql.number() == MYSQL_AUTOINC_READ_FAILED)
            {
                return true;
            }
            database.code().unwrap_or_default()
        }
        // The SQLite writer's own connection (rusqlite): the same extended codes.
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
            failure.extended_code.to_string().into()
        }
        _ => return false,
    };
    matches!(
        code.as_ref(),
        // PostgreSQL: serialization failure, deadlock, unique violation.
        "40001" | "40P01" | "23505"
        // MySQL/MariaDB report SQLSTATEs: deadlock (40001 above), duplicate key.
        | "23000"
        // SQLite extended codes: busy, busy snapshot, unique, primary key.
        | "5" | "517" | "2067" | "1555"
    )
}

/// Whether a statement failed on an integrity constraint (SQLSTATE class 23: a
/// duplicate key, a missing foreign row): for a caller that tried a shortcut which
/// assumed none, and takes the long way instead.
pub(crate) fn is_constraint_violation(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::Database(database)) => {
            database.code().is_some_and(|code| code.starts_with("23"))
        }
        _ => false,
    }
}

/// Whether the connection itself failed (it was closed under us, or spoke
/// nonsense), rather than a statement: another connection may well succeed.
pub(crate) fn is_connection_failure(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_))
    )
}

/// MySQL/MariaDB's ER_AUTOINC_READ_FAILED: a lost race for the AUTO-INC lock.
const MYSQL_AUTOINC_READ_FAILED: u16 = 1467;

/// Tries for a transaction that hit a deadlock, a serialization failure or a
/// concurrent duplicate.
pub(crate) const TRANSACTION_ATTEMPTS: u32 = 5;

/// Runs `transaction` until it succeeds, fails with an error that a second try
/// cannot cure, or has been tried [`TRANSACTION_ATTEMPTS`] times, with a short
/// growing pause in between so that the writer it collided with can finish. Every
/// transaction the store retries goes through here.
pub(crate) async fn with_retries<T, F, Fut>(mut transaction: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transaction().await {
            Err(error) if attempt < TRANSACTION_ATTEMPTS && is_retryable(&error) => {
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mysql_url_must_name_its_database() {
        for url in [
            "mysql://root@127.0.0.1:3306/mail",
            "mysql://u:p@db/mail?ssl-mode=disabled",
        ] {
            assert!(names_a_database(url), "{url}");
        }
        for url in [
            "mysql://root@127.0.0.1:3306",
            "mysql://root@127.0.0.1:3306/",
            "mysql://root@db?ssl-mode=disabled",
            "mysql://root@db/?x=/y",
        ] {
            assert!(!names_a_database(url), "{url}");
        }
    }

    #[tokio::test]
    async fn a_mysql_url_without_a_database_is_refused_before_connecting() {
        // Nothing listens on port 1: the refusal comes before any connection.
        let error = Db::connect("mysql://root@127.0.0.1:1").await.err();
        let message = error.map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("must name its database"), "{message}");
    }

    /// The 250 after DATA rests on this: every pooled SQLite connection runs in
    /// WAL mode with synchronous = FULL (2), where each commit fsyncs the WAL.
    /// NORMAL (1) would let the last commits vanish on power loss.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_sqlite_connection_commits_durably() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("d.db").display());
        let db = Db::connect(&url).await.unwrap();
        let mut connections = Vec::new();
        for _ in 0..4 {
            connections.push(db.pool.acquire().await.unwrap());
        }
        for connection in &mut connections {
            let synchronous = sqlx::query("PRAGMA synchronous")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            assert_eq!(int(&synchronous, "synchronous").unwrap(), 2);
            let journal = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            assert_eq!(journal.try_get::<String, _>("journal_mode").unwrap(), "wal");
        }
    }
}
