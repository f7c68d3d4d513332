//! The user directory in SQL: domains (with catch-all), users, aliases and groups
//! in one address namespace, the router's lookups against it, and password checks.
//! Domains are lower-cased; local parts keep their spelling but match ASCII-case-insensitively.

use super::sql::{Db, int, run_ready};
use super::{StoreError, mailbox, password};
use rusqlite::OptionalExtension;
use sluice_core::directory::{AddressEntry, DirectoryAnswer, DirectoryQuery, DomainEntry};
use sluice_core::smtp::address::{Domain, Host, Mailbox};
use sqlx::Row;

/// What kind of thing an address row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Alias,
    Group,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Alias => "alias",
            Kind::Group => "group",
        }
    }
    pub(crate) fn parse(text: &str) -> Option<Kind> {
        match text {
            "user" => Some(Kind::User),
            "alias" => Some(Kind::Alias),
            "group" => Some(Kind::Group),
            _ => None,
        }
    }
}

/// An address in the two forms the store keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    /// Local part in its wire form, `@`, domain lower-cased.
    pub(crate) canonical: String,
    /// `canonical` ASCII-lower-cased: what lookups compare.
    pub(crate) key: String,
    /// The domain, lower-cased (empty for address literals).
    pub(crate) domain: String,
}

/// Parses and normalises an address; `what` names it in the error.
pub(crate) fn normalise_address(what: &'static str, text: &str) -> Result<Address, StoreError> {
    let mailbox = Mailbox::parse(text.trim()).map_err(|error| StoreError::Invalid {
        what,
        reason: format!("{text:?}: {error}"),
    })?;
    let domain = match &mailbox.host {
        Host::Domain(domain) => domain.as_str().to_ascii_lowercase(),
        Host::Literal(_) => String::new(),
    };
    let canonical = format!(
        "{}@{}",
        mailbox.local_part,
        mailbox.host.to_string().to_ascii_lowercase()
    );
    Ok(Address {
        key: canonical.to_ascii_lowercase(),
        canonical,
        domain,
    })
}

/// An address of a local domain: no address literals.
fn normalise_local_address(what: &'static str, text: &str) -> Result<Address, StoreError> {
    let address = normalise_address(what, text)?;
    if address.domain.is_empty() {
        return Err(StoreError::Invalid {
            what,
            reason: format!("{text:?}: an address literal cannot be a local address"),
        });
    }
    Ok(address)
}

pub(crate) fn normalise_domain(text: &str) -> Result<String, StoreError> {
    Domain::parse(text.trim())
        .map(|domain| domain.as_str().to_ascii_lowercase())
        .map_err(|error| StoreError::Invalid {
            what: "domain",
            reason: format!("{text:?}: {error}"),
        })
}

/// The lookup key of whatever the caller passed: normalised if it parses, else
/// lower-cased as is (it then simply matches nothing that was validated).
pub(crate) fn lookup_key(text: &str) -> String {
    normalise_address("address", text)
        .map(|address| address.key)
        .unwrap_or_else(|_| text.trim().to_ascii_lowercase())
}

/// The reads a router lookup makes, for one way of reaching the database: sqlx
/// on every engine, or an SQLite file's read connection. [`answer`] is the one
/// lookup over them.
trait DirectoryReads {
    /// The domain row of `name` (lower-cased).
    async fn domain(&mut self, name: &str) -> Result<Option<DomainEntry>, StoreError>;
    /// See [`Db::address_kind`].
    async fn address_kind(&mut self, key: &str) -> Result<Option<(Kind, String)>, StoreError>;
    /// The targets of an alias or the members of a group, in order.
    async fn targets_of(&mut self, key: &str) -> Result<Vec<String>, StoreError>;
}

/// Answers one router lookup with `reads`.
async fn answer(
    reads: &mut impl DirectoryReads,
    query: &DirectoryQuery,
) -> Result<DirectoryAnswer, StoreError> {
    match query {
        DirectoryQuery::Domain { domain } => {
            let name = domain.trim().to_ascii_lowercase();
            Ok(DirectoryAnswer::Domain(reads.domain(&name).await?))
        }
        DirectoryQuery::Address { address } => {
            let key = lookup_key(address);
            let entry = match reads.address_kind(&key).await? {
                None => None,
                Some((Kind::User, address)) => Some(AddressEntry::User { address }),
                Some((Kind::Alias, _)) => Some(AddressEntry::Alias {
                    targets: reads.targets_of(&key).await?,
                }),
                Some((Kind::Group, _)) => Some(AddressEntry::Group {
                    members: reads.targets_of(&key).await?,
                }),
            };
            Ok(DirectoryAnswer::Address(entry))
        }
    }
}

struct SqlxReads<'a>(&'a Db);

impl DirectoryReads for SqlxReads<'_> {
    async fn domain(&mut self, name: &str) -> Result<Option<DomainEntry>, StoreError> {
        self.0.domain(name).await
    }

    async fn address_kind(&mut self, key: &str) -> Result<Option<(Kind, String)>, StoreError> {
        self.0.address_kind(key).await
    }

    async fn targets_of(&mut self, key: &str) -> Result<Vec<String>, StoreError> {
        self.0.targets_of(key).await
    }
}

/// The same reads as [`SqlxReads`], in SQLite's text, on a read connection.
struct SqliteReads<'a>(&'a rusqlite::Connection);

impl DirectoryReads for SqliteReads<'_> {
    async fn domain(&mut self, name: &str) -> Result<Option<DomainEntry>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT name, catch_all FROM domains WHERE name = ?")?
            .query_row([name], |row| {
                Ok(DomainEntry {
                    name: row.get(0)?,
                    catch_all: row.get(1)?,
                })
            })
            .optional()?)
    }

    async fn address_kind(&mut self, key: &str) -> Result<Option<(Kind, String)>, StoreError> {
        let row = self
            .0
            .prepare_cached("SELECT kind, address FROM addresses WHERE address_key = ?")?
            .query_row([key], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .optional()?;
        Ok(row.and_then(|(kind, address)| Kind::parse(&kind).map(|kind| (kind, address))))
    }

    async fn targets_of(&mut self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut statement = self.0.prepare_cached(
            "SELECT target FROM address_targets WHERE address_key = ? ORDER BY position",
        )?;
        let targets = statement
            .query_map([key], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(targets)
    }
}

impl Db {
    /// The kind and canonical address of an address row, if present.
    pub(crate) async fn address_kind(
        &self,
        key: &str,
    ) -> Result<Option<(Kind, String)>, StoreError> {
        let row =
            sqlx::query(&self.sql("SELECT kind, address FROM addresses WHERE address_key = ?"))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind")?;
        let address: String = row.try_get("address")?;
        Ok(Kind::parse(&kind).map(|kind| (kind, address)))
    }

    async fn targets_of(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            &self.sql("SELECT target FROM address_targets WHERE address_key = ? ORDER BY position"),
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("target")?))
            .collect()
    }

    /// Answers one router lookup. On an SQLite file it reads on the calling
    /// thread through one of the store's own read connections (see
    /// `sql::SqliteReaders`): a lookup there takes microseconds, less than the
    /// hand-off to a sqlx connection's worker thread and back.
    pub(crate) async fn query(
        &self,
        query: &DirectoryQuery,
    ) -> Result<DirectoryAnswer, StoreError> {
        match self.sqlite_readers() {
            Some(readers) => {
                readers.read(|connection| run_ready(answer(&mut SqliteReads(connection), query)))
            }
            None => answer(&mut SqlxReads(self), query).await,
        }
    }

    async fn domain(&self, name: &str) -> Result<Option<DomainEntry>, StoreError> {
        let row = sqlx::query(&self.sql("SELECT name, catch_all FROM domains WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(DomainEntry {
                name: row.try_get("name")?,
                catch_all: row.try_get("catch_all")?,
            })),
            None => Ok(None),
        }
    }

    pub(crate) async fn verify_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = lookup_key(username);
        let row = sqlx::query(&self.sql(
            "SELECT address, password_hash FROM addresses WHERE address_key = ? AND kind = 'user'",
        ))
        .bind(&key)
        .fetch_optional(&self.pool)
        .await?;
        let stored = match row {
            Some(row) => Some((
                row.try_get::<String, _>("address")?,
                row.try_get::<Option<String>, _>("password_hash")?,
            )),
            None => None,
        };
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async worker threads.
        let verdict = tokio::task::spawn_blocking(move || match stored {
            Some((address, Some(phc))) => password::verify(&password, &phc).then_some(address),
            _ => {
                password::verify_against_dummy(&password);
                None
            }
        })
        .await
        .map_err(|error| StoreError::Invalid {
            what: "password check",
            reason: error.to_string(),
        })?;
        Ok(verdict)
    }

    pub(crate) async fn add_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalise_domain(name)?;
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query(&self.sql("SELECT name FROM domains WHERE name = ?"))
            .bind(&name)
            .fetch_optional(&mut *tx.tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists(format!("domain {name}")));
        }
        sqlx::query(&self.sql("INSERT INTO domains (name, catch_all) VALUES (?, NULL)"))
            .bind(&name)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    pub(crate) async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = name.trim().to_ascii_lowercase();
        let mut tx = self.begin_write().await?;
        let in_use =
            sqlx::query(&self.sql("SELECT COUNT(*) AS n FROM addresses WHERE domain_name = ?"))
                .bind(&name)
                .fetch_one(&mut *tx.tx)
                .await?;
        if int(&in_use, "n")? > 0 {
            // Removing a domain must never silently delete mailboxes.
            return Err(StoreError::Invalid {
                what: "domain removal",
                reason: format!("domain {name} still has users, aliases or groups"),
            });
        }
        let removed = sqlx::query(&self.sql("DELETE FROM domains WHERE name = ?"))
            .bind(&name)
            .execute(&mut *tx.tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        tx.commit().await
    }

    pub(crate) async fn list_domains(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM domains ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("name")?))
            .collect()
    }

    pub(crate) async fn set_catch_all(
        &self,
        domain: &str,
        target: Option<&str>,
    ) -> Result<(), StoreError> {
        let name = domain.trim().to_ascii_lowercase();
        let target = match target {
            Some(target) => Some(normalise_address("catch-all target", target)?.canonical),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(&self.sql("UPDATE domains SET catch_all = ? WHERE name = ?"))
            .bind(target)
            .bind(&name)
            .execute(&mut *tx.tx)
            .await?;
        // MySQL counts only changed rows, so zero may also mean "same target".
        let exists = updated.rows_affected() > 0
            || sqlx::query(&self.sql("SELECT name FROM domains WHERE name = ?"))
                .bind(&name)
                .fetch_optional(&mut *tx.tx)
                .await?
                .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        tx.commit().await
    }

    /// Inserts the address row after checking the namespace and the domain.
    async fn insert_address(
        &self,
        tx: &mut super::sql::WriteTx<'_>,
        address: &Address,
        kind: Kind,
        password_hash: Option<&str>,
        next_uidvalidity: i64,
    ) -> Result<(), StoreError> {
        let domain = sqlx::query(&self.sql("SELECT name FROM domains WHERE name = ?"))
            .bind(&address.domain)
            .fetch_optional(&mut *tx.tx)
            .await?;
        if domain.is_none() {
            return Err(StoreError::NotFound(format!("domain {}", address.domain)));
        }
        let existing = sqlx::query(&self.sql("SELECT kind FROM addresses WHERE address_key = ?"))
            .bind(&address.key)
            .fetch_optional(&mut *tx.tx)
            .await?;
        if let Some(row) = existing {
            let kind: String = row.try_get("kind")?;
            return Err(StoreError::AlreadyExists(format!(
                "{} (as {kind})",
                address.canonical
            )));
        }
        sqlx::query(&self.sql(
            "INSERT INTO addresses (address_key, address, domain_name, kind, password_hash, \
             next_uidvalidity) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(&address.key)
        .bind(&address.canonical)
        .bind(&address.domain)
        .bind(kind.as_str())
        .bind(password_hash)
        .bind(next_uidvalidity)
        .execute(&mut *tx.tx)
        .await?;
        Ok(())
    }

    /// Creates a user from an existing PHC hash (none: cannot log in), with its standard folders;
    /// `uidvalidity_base` is the UIDVALIDITY of its INBOX (the others follow).
    pub(crate) async fn add_user_with_hash(
        &self,
        address: &str,
        password_hash: Option<&str>,
        uidvalidity_base: u32,
    ) -> Result<String, StoreError> {
        let address = normalise_local_address("user address", address)?;
        if password_hash.is_some_and(|phc| !password::is_valid_phc(phc)) {
            return Err(StoreError::Invalid {
                what: "password hash",
                reason: "not an argon2 PHC string".to_owned(),
            });
        }
        let mut tx = self.begin_write().await?;
        self.insert_address(
            &mut tx,
            &address,
            Kind::User,
            password_hash,
            i64::from(uidvalidity_base.max(1)),
        )
        .await?;
        mailbox::create_standard_folders(self, &mut tx, &address.key).await?;
        tx.commit().await?;
        Ok(address.canonical)
    }

    pub(crate) async fn set_password_hash(
        &self,
        address: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let key = lookup_key(address);
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query(&self.sql(
                "UPDATE addresses SET password_hash = ? WHERE address_key = ? AND kind = 'user'",
            ))
            .bind(password_hash)
            .bind(&key)
            .execute(&mut *tx.tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {}", address.trim())));
        }
        tx.commit().await
    }

    /// Deletes an address row of the given kind (targets and folders cascade).
    async fn remove_address(&self, text: &str, kind: Kind) -> Result<(), StoreError> {
        let key = lookup_key(text);
        let mut tx = self.begin_write().await?;
        if kind == Kind::User {
            mailbox::release_user_blobs(self, &mut tx, &key).await?;
        }
        let deleted =
            sqlx::query(&self.sql("DELETE FROM addresses WHERE address_key = ? AND kind = ?"))
                .bind(&key)
                .bind(kind.as_str())
                .execute(&mut *tx.tx)
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "{} {}",
                kind.as_str(),
                text.trim()
            )));
        }
        tx.commit().await
    }

    pub(crate) async fn remove_user(&self, address: &str) -> Result<(), StoreError> {
        self.remove_address(address, Kind::User).await
    }

    pub(crate) async fn list_kind(&self, kind: Kind) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            &self.sql("SELECT address FROM addresses WHERE kind = ? ORDER BY address_key"),
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("address")?))
            .collect()
    }

    /// Aliases or groups with their targets, in name order.
    pub(crate) async fn list_with_targets(
        &self,
        kind: Kind,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows =
            sqlx::query(&self.sql(
                "SELECT address, address_key FROM addresses WHERE kind = ? ORDER BY address_key",
            ))
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("address_key")?;
            out.push((row.try_get("address")?, self.targets_of(&key).await?));
        }
        Ok(out)
    }

    /// Creates an alias or a group with its targets (deduplicated, order kept).
    pub(crate) async fn add_with_targets(
        &self,
        text: &str,
        targets: &[String],
        kind: Kind,
    ) -> Result<(), StoreError> {
        let what = if kind == Kind::Alias {
            "alias address"
        } else {
            "group address"
        };
        let address = normalise_local_address(what, text)?;
        if kind == Kind::Alias && targets.is_empty() {
            return Err(StoreError::Invalid {
                what: "alias",
                reason: format!("{} needs at least one target", address.canonical),
            });
        }
        let mut normalised: Vec<Address> = Vec::with_capacity(targets.len());
        for target in targets {
            let target = normalise_address(
                if kind == Kind::Alias {
                    "alias target"
                } else {
                    "group member"
                },
                target,
            )?;
            if !normalised.iter().any(|seen| seen.key == target.key) {
                normalised.push(target);
            }
        }
        let mut tx = self.begin_write().await?;
        self.insert_address(&mut tx, &address, kind, None, 1)
            .await?;
        for (position, target) in normalised.iter().enumerate() {
            self.insert_target(&mut tx, &address.key, target, position as i64)
                .await?;
        }
        tx.commit().await
    }

    async fn insert_target(
        &self,
        tx: &mut super::sql::WriteTx<'_>,
        key: &str,
        target: &Address,
        position: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "INSERT INTO address_targets (address_key, target_key, target, position) \
             VALUES (?, ?, ?, ?)",
        ))
        .bind(key)
        .bind(&target.key)
        .bind(&target.canonical)
        .bind(position)
        .execute(&mut *tx.tx)
        .await?;
        Ok(())
    }

    pub(crate) async fn remove_with_targets(
        &self,
        text: &str,
        kind: Kind,
    ) -> Result<(), StoreError> {
        self.remove_address(text, kind).await
    }

    pub(crate) async fn add_group_member(
        &self,
        group: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        let key = lookup_key(group);
        let member = normalise_address("group member", member)?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            &self.sql("SELECT kind FROM addresses WHERE address_key = ? AND kind = 'group'"),
        )
        .bind(&key)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if row.is_none() {
            return Err(StoreError::NotFound(format!("group {}", group.trim())));
        }
        let existing = sqlx::query(
            &self
                .sql("SELECT target FROM address_targets WHERE address_key = ? AND target_key = ?"),
        )
        .bind(&key)
        .bind(&member.key)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if existing.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "member {} of group {}",
                member.canonical,
                group.trim()
            )));
        }
        let next = sqlx::query(&self.sql(
            "SELECT COALESCE(MAX(position), -1) + 1 AS next FROM address_targets \
             WHERE address_key = ?",
        ))
        .bind(&key)
        .fetch_one(&mut *tx.tx)
        .await?;
        let position = int(&next, "next")?;
        self.insert_target(&mut tx, &key, &member, position).await?;
        tx.commit().await
    }

    pub(crate) async fn remove_group_member(
        &self,
        group: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        let key = lookup_key(group);
        let member_key = lookup_key(member);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            &self.sql("SELECT kind FROM addresses WHERE address_key = ? AND kind = 'group'"),
        )
        .bind(&key)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if row.is_none() {
            return Err(StoreError::NotFound(format!("group {}", group.trim())));
        }
        let deleted = sqlx::query(
            &self.sql("DELETE FROM address_targets WHERE address_key = ? AND target_key = ?"),
        )
        .bind(&key)
        .bind(&member_key)
        .execute(&mut *tx.tx)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "member {} of group {}",
                member.trim(),
                group.trim()
            )));
        }
        tx.commit().await
    }
}
