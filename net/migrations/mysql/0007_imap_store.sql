-- What IMAP needs of the mailbox store (issue 11): MODSEQ, expunge tombstones,
-- the envelope sender, subscriptions and Junk events. See the SQLite migration
-- for the meaning of each column.
ALTER TABLE folders
    ADD COLUMN highestmodseq BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN vanished_floor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages
    ADD COLUMN modseq BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN reverse_path VARCHAR(330) NOT NULL DEFAULT '';

CREATE TABLE expunged_messages (
    folder_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY (folder_id, uid),
    FOREIGN KEY (folder_id) REFERENCES folders (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE subscriptions (
    user_key VARCHAR(320) NOT NULL,
    name VARCHAR(255) NOT NULL,
    PRIMARY KEY (user_key, name),
    FOREIGN KEY (user_key) REFERENCES addresses (address_key) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE mailbox_events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_key VARCHAR(320) NOT NULL,
    blob_sha256 CHAR(64) NOT NULL,
    direction VARCHAR(16) NOT NULL,
    at_ms BIGINT NOT NULL,
    FOREIGN KEY (user_key) REFERENCES addresses (address_key) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
