-- Sluice's first schema (SQLite). Addresses are looked up by address_key, the
-- ASCII-lower-cased canonical address; `address` keeps the canonical spelling.
CREATE TABLE domains (
    name TEXT PRIMARY KEY NOT NULL,
    catch_all TEXT
);

CREATE TABLE addresses (
    address_key TEXT PRIMARY KEY NOT NULL,
    address TEXT NOT NULL,
    domain_name TEXT NOT NULL REFERENCES domains (name),
    kind TEXT NOT NULL CHECK (kind IN ('user', 'alias', 'group')),
    password_hash TEXT,
    next_uidvalidity INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE address_targets (
    address_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    target_key TEXT NOT NULL,
    target TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (address_key, target_key)
);

CREATE TABLE folders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    special_use TEXT,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    UNIQUE (user_key, name)
);

-- refcount = mailbox entries + `pending` queue records using the body; a row at
-- zero (and its file) may be removed by a later cleanup.
CREATE TABLE blobs (
    blob_sha256 TEXT PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL,
    refcount INTEGER NOT NULL
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    blob_sha256 TEXT NOT NULL REFERENCES blobs (blob_sha256),
    size INTEGER NOT NULL,
    flags TEXT NOT NULL,
    internal_date_ms INTEGER NOT NULL,
    queue_id TEXT NOT NULL,
    UNIQUE (folder_id, uid)
);

CREATE TABLE deliveries (
    user_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    delivery_key TEXT NOT NULL,
    PRIMARY KEY (user_key, delivery_key)
);

CREATE TABLE queue_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    original_recipient TEXT NOT NULL,
    reverse_path TEXT NOT NULL,
    state TEXT NOT NULL,
    -- No foreign key: only `pending` records hold a blob reference (see blobs).
    blob_sha256 TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    UNIQUE (queue_id, recipient)
);

CREATE INDEX queue_records_state ON queue_records (state, id);
