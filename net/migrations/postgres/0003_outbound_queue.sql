-- The delivery queue's durable state (issue 4); see the SQLite migration for the
-- meaning of each column.
CREATE TABLE queue_messages (
    queue_id TEXT PRIMARY KEY,
    reverse_path TEXT NOT NULL,
    envid TEXT,
    ret TEXT,
    smtputf8 INTEGER NOT NULL,
    received_headers INTEGER NOT NULL,
    size BIGINT NOT NULL,
    blob_sha256 TEXT NOT NULL,
    arrival_ms BIGINT NOT NULL
);

ALTER TABLE queue_records
    ADD COLUMN destination TEXT,
    ADD COLUMN notify TEXT,
    ADD COLUMN orcpt TEXT,
    ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_ms BIGINT,
    ADD COLUMN last_attempt_ms BIGINT,
    ADD COLUMN final_at_ms BIGINT,
    ADD COLUMN status TEXT,
    ADD COLUMN remote_mta TEXT,
    ADD COLUMN diagnostic TEXT,
    ADD COLUMN diagnostic_is_reply INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN notify_passed_on INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
