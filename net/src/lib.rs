//! Sluice's production runtime: drivers that run the `sluice-core` machines on
//! tokio, real sockets and real disks. Drivers decide nothing about mail; they
//! carry bytes, perform the I/O a machine asks for and report back.
//!
//! Module plan (filled by later issues):
//! - `listener`: MX, submission and submissions listeners; PROXY protocol; per-IP limits.
//! - `tls`: rustls configuration, certificate loading and self-signed generation.
//! - `smtp_driver`: pumps a socket (generic over the stream type) through a server session.
//! - `store`: sqlx stores (SQLite, PostgreSQL, MySQL/MariaDB) and the content-addressed blob folder.
//! - `config`: the TOML configuration with precise errors.
//! - `cli`: the `sluice` command line.
//!
//! Today the crate holds only the binary's entry point; `sluice serve` arrives with
//! the issue that builds the production listeners.
