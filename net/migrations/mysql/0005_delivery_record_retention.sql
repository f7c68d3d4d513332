-- The records of copies written into local mailboxes are kept for
-- storage.delivery_record_days: queue records (what `sluice queue show` reads) by
-- their message's arrival, delivery keys by the arrival they were recorded for.
-- Keys written before this migration have no time and are kept.
ALTER TABLE deliveries ADD COLUMN delivered_at_ms BIGINT NULL,
    ADD INDEX deliveries_delivered_at (delivered_at_ms);
ALTER TABLE queue_records ADD INDEX queue_records_received_at (received_at_ms);
