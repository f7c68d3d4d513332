-- What IMAP needs of the mailbox store (issue 11): MODSEQ, expunge tombstones,
-- the envelope sender, subscriptions and Junk events. See the SQLite migration
-- for the meaning of each column.
ALTER TABLE folders
    ADD COLUMN highestmodseq BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN vanished_floor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages
    ADD COLUMN modseq BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN reverse_path TEXT NOT NULL DEFAULT '';

CREATE TABLE expunged_messages (
    folder_id BIGINT NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uid BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY (folder_id, uid)
);

CREATE TABLE subscriptions (
    user_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (user_key, name)
);

CREATE TABLE mailbox_events (
    id BIGSERIAL PRIMARY KEY,
    user_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    blob_sha256 TEXT NOT NULL,
    direction TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
