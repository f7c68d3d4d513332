//! Sluice's production runtime: drivers that run the `sluice-core` machines on
//! tokio, real sockets and real disks. Drivers decide nothing about mail; they
//! carry bytes, perform the I/O a machine asks for and report back.
//!
//! Modules:
//! - [`store`]: sqlx stores (SQLite, PostgreSQL, MySQL/MariaDB) and the content-addressed blob folder.
//!
//! Planned: `config` (the TOML file), `tls` (rustls, self-signed certificates),
//! `smtp_driver` (a socket pumped through a server session, generic over the stream),
//! `listener` (MX, submission, submissions; PROXY protocol; per-IP limits), `cli`.

pub mod store;
