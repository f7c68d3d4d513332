-- The records of copies written into local mailboxes are kept for
-- storage.delivery_record_days: queue records (what `sluice queue show` reads) by
-- their message's arrival, delivery keys by the arrival they were recorded for.
-- Keys written before this migration have no time and are kept.
ALTER TABLE deliveries ADD COLUMN delivered_at_ms INTEGER;
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at_ms);
CREATE INDEX queue_records_received_at ON queue_records (received_at_ms);
