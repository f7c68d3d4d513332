//! Shared by the store tests: one store per test on each SQL engine. SQLite always
//! (a file in a temp folder); PostgreSQL and MariaDB/MySQL when
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` name a server, with a
//! uniquely named database created for the test and dropped afterwards. Tests about
//! bodies also run once per placement (inline in the database, or files).

#![allow(dead_code, unreachable_pub)]

use sluice_net::store::{Store, StoreOptions};
use sqlx::{Connection, Executor};
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

impl Engine {
    fn variable(self) -> Option<&'static str> {
        match self {
            Engine::Sqlite => None,
            Engine::Postgres => Some("SLUICE_TEST_POSTGRES_URL"),
            Engine::Mysql => Some("SLUICE_TEST_MYSQL_URL"),
        }
    }
}

/// Where the stores of a test put accepted bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The default options: every test body is small enough to be inline.
    Inline,
    /// `inline_body_limit = 0`: every body is a file.
    File,
}

impl Placement {
    pub fn options(self) -> StoreOptions {
        match self {
            Placement::Inline => StoreOptions::default(),
            Placement::File => StoreOptions {
                inline_body_limit: 0,
                ..StoreOptions::default()
            },
        }
    }
}

/// A database that exists for one test, dropped (best effort) when this is.
#[derive(Debug)]
pub struct TestDatabase {
    pub engine: Engine,
    /// What [`TestDatabase::open`] passes to the store; Inline unless a test says so.
    pub placement: Placement,
    pub url: String,
    /// Holds the SQLite file and the blob folder.
    pub dir: TempDir,
    server_url: Option<String>,
    name: String,
}

fn server_url(engine: Engine) -> Option<String> {
    let variable = engine.variable()?;
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => None,
    }
}

/// The URL of the server's maintenance database, for CREATE/DROP DATABASE.
fn admin_url(engine: Engine, server: &str) -> String {
    match engine {
        Engine::Postgres => format!("{server}/postgres"),
        _ => server.to_owned(),
    }
}

impl TestDatabase {
    /// A fresh empty database, or None (after saying so) when the engine is not configured.
    pub async fn create(engine: Engine) -> Option<TestDatabase> {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!(
            "sluice_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        if engine == Engine::Sqlite {
            let url = format!("sqlite:{}?mode=rwc", dir.path().join("sluice.db").display());
            return Some(TestDatabase {
                engine,
                placement: Placement::Inline,
                url,
                dir,
                server_url: None,
                name,
            });
        }
        let Some(server) = server_url(engine) else {
            println!("skipped: {} not set", engine.variable().unwrap_or_default());
            return None;
        };
        let mut admin = sqlx::AnyConnection::connect(&admin_url(engine, &server))
            .await
            .expect("connect to the test database server");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        Some(TestDatabase {
            engine,
            placement: Placement::Inline,
            url: format!("{server}/{name}"),
            dir,
            server_url: Some(server),
            name,
        })
    }

    pub fn blob_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("blobs")
    }

    pub fn with_placement(mut self, placement: Placement) -> TestDatabase {
        self.placement = placement;
        self
    }

    /// A store on this database with the test's placement.
    pub async fn open(&self) -> Store {
        self.open_with(self.placement.options()).await
    }

    pub async fn open_with(&self, options: StoreOptions) -> Store {
        Store::open_with(&self.url, &self.blob_dir(), options)
            .await
            .expect("open the store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(server) = self.server_url.clone() else {
            return;
        };
        let engine = self.engine;
        let name = self.name.clone();
        // Drop may run inside a tokio runtime (or while unwinding): do the async
        // cleanup on a thread of its own with its own small runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url(engine, &server)).await
                else {
                    return;
                };
                let statement = match engine {
                    Engine::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                let _ = admin.execute(statement.as_str()).await;
                let _ = admin.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Declares one `#[tokio::test]` per engine for an `async fn(TestDatabase)`.
#[macro_export]
macro_rules! per_engine {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(database) =
                        $crate::common::TestDatabase::create($crate::common::Engine::Sqlite).await
                    {
                        super::$test(database).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(database) =
                        $crate::common::TestDatabase::create($crate::common::Engine::Postgres).await
                    {
                        super::$test(database).await;
                    }
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(database) =
                        $crate::common::TestDatabase::create($crate::common::Engine::Mysql).await
                    {
                        super::$test(database).await;
                    }
                }
            )*
        }
    };
}

/// Like `per_engine!`, once per placement of bodies: modules `sqlite_inline`,
/// `sqlite_file`, `postgres_inline`, … each with one test per function.
#[macro_export]
macro_rules! per_engine_and_placement {
    ($($test:ident),* $(,)?) => {
        $crate::one_engine_and_placement!(sqlite_inline, Sqlite, Inline; $($test),*);
        $crate::one_engine_and_placement!(sqlite_file, Sqlite, File; $($test),*);
        $crate::one_engine_and_placement!(postgres_inline, Postgres, Inline; $($test),*);
        $crate::one_engine_and_placement!(postgres_file, Postgres, File; $($test),*);
        $crate::one_engine_and_placement!(mysql_inline, Mysql, Inline; $($test),*);
        $crate::one_engine_and_placement!(mysql_file, Mysql, File; $($test),*);
    };
}

/// One module of `per_engine_and_placement!`.
#[macro_export]
macro_rules! one_engine_and_placement {
    ($module:ident, $engine:ident, $placement:ident; $($test:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(database) =
                        $crate::common::TestDatabase::create($crate::common::Engine::$engine).await
                    {
                        super::$test(
                            database.with_placement($crate::common::Placement::$placement),
                        )
                        .await;
                    }
                }
            )*
        }
    };
}
