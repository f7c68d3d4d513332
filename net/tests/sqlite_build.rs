//! The bundled SQLite is built with the workspace's flags (`.cargo/config.toml`),
//! among them fdatasync for the log's sync. SQLite lists only some of its build
//! options; the memory-statistics default set by the same line stands for all.

#![allow(clippy::unwrap_used)]

#[test]
fn the_bundled_sqlite_is_built_with_the_workspace_flags() {
    let connection = rusqlite::Connection::open_in_memory().unwrap();
    let mut statement = connection.prepare("PRAGMA compile_options").unwrap();
    let options: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"),
        "built without LIBSQLITE3_FLAGS: {options:?}"
    );
}
