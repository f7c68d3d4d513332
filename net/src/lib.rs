//! Sluice's production runtime: drivers that run the `sluice-core` machines on
//! tokio, real sockets and real disks. Drivers decide nothing about mail; they
//! carry bytes, perform the I/O a machine asks for and report back.
//!
//! Modules:
//! - [`store`]: sqlx stores (SQLite, PostgreSQL, MySQL/MariaDB) and the content-addressed blob folder.
//! - [`config`]: the TOML configuration file, its defaults and its errors.
//! - [`delivery`]: the delivery service: the queue machine, attempts over SMTP/LMTP, notices.
//! - [`control`]: the control socket through which `sluice queue` reaches a running server.
//! - [`node`]: a running node: store, TLS and listeners, with graceful shutdown.
//! - [`listener`]: one SMTP, POP3 or IMAP listener: connection limits, PROXY header, implicit TLS.
//! - [`imap_driver`]: one IMAP connection pumped through core's `ImapSession`, woken by the store's change announcements (IDLE).
//! - [`imap_backend`]: the SQL store as core's IMAP `MailboxBackend`.
//! - [`pop3_driver`]: one POP3 connection pumped through core's `Pop3Session`, with maildrop locks and streamed reads.
//! - [`smtp_driver`]: one connection pumped through core's reception machine (`sluice_core::node`), generic over the stream.
//! - [`routing`]: core's router run for one recipient check against the reception store.
//! - [`incoming`]: where a connection came from (address, reverse DNS name) for the Received field.
//! - [`reception_store`]: what the SMTP driver needs from storage (credentials, directory lookups, durable acceptance), as a trait.
//! - [`tls`]: rustls configuration and the self-signed certificate.
//! - [`dns`]: MX, address and PTR lookups on hickory, behind the configured override table.
//! - [`dkim`]: DKIM signing of outgoing mail per sending domain, and key generation.
//! - [`maybe_tls`], [`proxy_header`], [`clock`], [`queue_id`], [`logging`], [`cli`]: small helpers.

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod delivery;
pub mod dkim;
pub mod dns;
pub mod imap_backend;
pub mod imap_driver;
pub mod incoming;
pub mod listener;
pub mod logging;
pub mod login;
pub mod maybe_tls;
pub mod node;
pub mod pop3_driver;
pub mod proxy_header;
pub mod queue_id;
pub mod reception_store;
pub mod routing;
pub mod smtp_driver;
pub mod store;
pub mod tls;
