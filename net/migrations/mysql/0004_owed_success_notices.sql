-- A copy written into a local mailbox at acceptance with NOTIFY=SUCCESS owes its
-- sender a success notice. The accept transaction records the debt on the copy's
-- queue record (success_owed = 1, destination 'local ...', with its NOTIFY and
-- ORCPT); the queue stores the notice and clears the debt in one transaction, and
-- a restart finds any debt still open. Earlier rows owe nothing.
ALTER TABLE queue_records ADD COLUMN success_owed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_records ADD INDEX queue_records_success_owed (success_owed);
