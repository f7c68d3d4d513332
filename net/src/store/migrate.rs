//! The schema migrations of each SQL engine, embedded in the binary (the `sluice`
//! binary must run without its source tree) and applied with sqlx's migrator,
//! which records what ran and refuses an edited migration.

use super::StoreError;
use super::sql::{Db, SqlEngine};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// (version, description, SQL) per engine; versions and descriptions match
/// across engines so that the three schemas evolve in step.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "inline bodies",
        include_str!("../../migrations/sqlite/0002_inline_bodies.sql"),
    ),
    (
        3,
        "outbound queue",
        include_str!("../../migrations/sqlite/0003_outbound_queue.sql"),
    ),
    (
        4,
        "owed success notices",
        include_str!("../../migrations/sqlite/0004_owed_success_notices.sql"),
    ),
    (
        5,
        "delivery record retention",
        include_str!("../../migrations/sqlite/0005_delivery_record_retention.sql"),
    ),
    (
        6,
        "owned records index",
        include_str!("../../migrations/sqlite/0006_owned_records_index.sql"),
    ),
    (
        7,
        "imap store",
        include_str!("../../migrations/sqlite/0007_imap_store.sql"),
    ),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "inline bodies",
        include_str!("../../migrations/postgres/0002_inline_bodies.sql"),
    ),
    (
        3,
        "outbound queue",
        include_str!("../../migrations/postgres/0003_outbound_queue.sql"),
    ),
    (
        4,
        "owed success notices",
        include_str!("../../migrations/postgres/0004_owed_success_notices.sql"),
    ),
    (
        5,
        "delivery record retention",
        include_str!("../../migrations/postgres/0005_delivery_record_retention.sql"),
    ),
    (
        6,
        "owned records index",
        include_str!("../../migrations/postgres/0006_owned_records_index.sql"),
    ),
    (
        7,
        "imap store",
        include_str!("../../migrations/postgres/0007_imap_store.sql"),
    ),
];
const MYSQL: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/mysql/0001_initial.sql"),
    ),
    (
        2,
        "inline bodies",
        include_str!("../../migrations/mysql/0002_inline_bodies.sql"),
    ),
    (
        3,
        "outbound queue",
        include_str!("../../migrations/mysql/0003_outbound_queue.sql"),
    ),
    (
        4,
        "owed success notices",
        include_str!("../../migrations/mysql/0004_owed_success_notices.sql"),
    ),
    (
        5,
        "delivery record retention",
        include_str!("../../migrations/mysql/0005_delivery_record_retention.sql"),
    ),
    (
        6,
        "owned records index",
        include_str!("../../migrations/mysql/0006_owned_records_index.sql"),
    ),
    (
        7,
        "imap store",
        include_str!("../../migrations/mysql/0007_imap_store.sql"),
    ),
];

/// Brings the database up to the newest schema; running it again is a no-op.
pub(crate) async fn run(db: &Db) -> Result<(), StoreError> {
    let source = match db.engine {
        SqlEngine::Sqlite => SQLITE,
        SqlEngine::Postgres => POSTGRES,
        SqlEngine::Mysql => MYSQL,
    };
    let migrations: Vec<Migration> = source
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    // The fields are public (and documented as semver-exempt) because sqlx's own
    // `migrate!` macro fills them; sqlx is pinned exactly, and `Migrator::new`
    // would need the migrations as files on disk at run time.
    let migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    migrator.run(&db.pool).await?;
    Ok(())
}
