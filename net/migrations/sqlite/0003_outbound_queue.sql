-- The delivery queue's durable state (issue 4). One row per queued message with the
-- envelope facts a notice or a delivery needs, and per recipient where it stands:
-- state pending | deferred | delivered | failed, its destination (core's text form,
-- e.g. "mx:example.org tls=opportunistic"; NULL for a copy written into a local
-- mailbox at acceptance), DSN parameters, the retry schedule and the last outcome.
-- A blob's refcount counts mailbox entries and queue records not yet final.
CREATE TABLE queue_messages (
    queue_id TEXT PRIMARY KEY NOT NULL,
    -- Without angle brackets; '' is the null reverse-path.
    reverse_path TEXT NOT NULL,
    envid TEXT,
    ret TEXT,
    smtputf8 INTEGER NOT NULL,
    received_headers INTEGER NOT NULL,
    size INTEGER NOT NULL,
    blob_sha256 TEXT NOT NULL,
    arrival_ms INTEGER NOT NULL
);

ALTER TABLE queue_records ADD COLUMN destination TEXT;
ALTER TABLE queue_records ADD COLUMN notify TEXT;
ALTER TABLE queue_records ADD COLUMN orcpt TEXT;
ALTER TABLE queue_records ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_records ADD COLUMN next_attempt_ms INTEGER;
ALTER TABLE queue_records ADD COLUMN last_attempt_ms INTEGER;
ALTER TABLE queue_records ADD COLUMN final_at_ms INTEGER;
ALTER TABLE queue_records ADD COLUMN status TEXT;
ALTER TABLE queue_records ADD COLUMN remote_mta TEXT;
ALTER TABLE queue_records ADD COLUMN diagnostic TEXT;
ALTER TABLE queue_records ADD COLUMN diagnostic_is_reply INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_records ADD COLUMN notify_passed_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_records ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
