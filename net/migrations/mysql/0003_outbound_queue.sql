-- The delivery queue's durable state (issue 4); see the SQLite migration for the
-- meaning of each column.
CREATE TABLE queue_messages (
    queue_id VARCHAR(255) NOT NULL PRIMARY KEY,
    reverse_path VARCHAR(330) NOT NULL,
    envid VARCHAR(255),
    ret VARCHAR(8),
    smtputf8 INTEGER NOT NULL,
    received_headers INTEGER NOT NULL,
    size BIGINT NOT NULL,
    blob_sha256 CHAR(64) NOT NULL,
    arrival_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE queue_records
    ADD COLUMN destination VARCHAR(600),
    ADD COLUMN notify VARCHAR(32),
    ADD COLUMN orcpt VARCHAR(600),
    ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_ms BIGINT,
    ADD COLUMN last_attempt_ms BIGINT,
    ADD COLUMN final_at_ms BIGINT,
    ADD COLUMN status VARCHAR(16),
    ADD COLUMN remote_mta VARCHAR(255),
    ADD COLUMN diagnostic VARCHAR(4000),
    ADD COLUMN diagnostic_is_reply INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN notify_passed_on INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
