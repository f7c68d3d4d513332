-- Sluice's first schema (MySQL / MariaDB). Addresses are looked up by address_key,
-- the ASCII-lower-cased canonical address; `address` keeps the canonical spelling.
-- Binary collation everywhere: case folding is done by the store, never by MySQL.
-- VARCHAR (not TEXT) because sqlx's Any driver reads MySQL TEXT columns as bytes.
CREATE TABLE domains (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    catch_all VARCHAR(320)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE addresses (
    address_key VARCHAR(320) NOT NULL PRIMARY KEY,
    address VARCHAR(320) NOT NULL,
    domain_name VARCHAR(255) NOT NULL,
    kind VARCHAR(8) NOT NULL,
    password_hash VARCHAR(255),
    next_uidvalidity BIGINT NOT NULL DEFAULT 1,
    FOREIGN KEY (domain_name) REFERENCES domains (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE address_targets (
    address_key VARCHAR(320) NOT NULL,
    target_key VARCHAR(320) NOT NULL,
    target VARCHAR(320) NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (address_key, target_key),
    FOREIGN KEY (address_key) REFERENCES addresses (address_key) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE folders (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_key VARCHAR(320) NOT NULL,
    name VARCHAR(255) NOT NULL,
    special_use VARCHAR(16),
    uidvalidity BIGINT NOT NULL,
    uidnext BIGINT NOT NULL,
    UNIQUE (user_key, name),
    FOREIGN KEY (user_key) REFERENCES addresses (address_key) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- refcount = mailbox entries + `pending` queue records using the body; a row at
-- zero (and its file) may be removed by a later cleanup. Queue records have no
-- foreign key to blobs: only `pending` ones hold a reference.
CREATE TABLE blobs (
    blob_sha256 CHAR(64) NOT NULL PRIMARY KEY,
    size BIGINT NOT NULL,
    refcount BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE messages (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    folder_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    blob_sha256 CHAR(64) NOT NULL,
    size BIGINT NOT NULL,
    flags VARCHAR(2000) NOT NULL,
    internal_date_ms BIGINT NOT NULL,
    queue_id VARCHAR(255) NOT NULL,
    UNIQUE (folder_id, uid),
    FOREIGN KEY (folder_id) REFERENCES folders (id) ON DELETE CASCADE,
    FOREIGN KEY (blob_sha256) REFERENCES blobs (blob_sha256)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE deliveries (
    user_key VARCHAR(320) NOT NULL,
    delivery_key VARCHAR(255) NOT NULL,
    PRIMARY KEY (user_key, delivery_key),
    FOREIGN KEY (user_key) REFERENCES addresses (address_key) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE queue_records (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue_id VARCHAR(255) NOT NULL,
    recipient VARCHAR(320) NOT NULL,
    original_recipient VARCHAR(320) NOT NULL,
    reverse_path VARCHAR(330) NOT NULL,
    state VARCHAR(16) NOT NULL,
    blob_sha256 CHAR(64) NOT NULL,
    received_at_ms BIGINT NOT NULL,
    UNIQUE (queue_id, recipient),
    INDEX queue_records_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
