-- The queue finds the records it still owns (not final, or a success notice owed)
-- through one partial index that holds those records only. It replaces an index on
-- every record's state and one on every record's success_owed flag: most records
-- are local copies, final from their first write and owing nothing, and each of
-- them used to add an entry to both, a page written per group commit for each.
DROP INDEX queue_records_state;
DROP INDEX queue_records_success_owed;
CREATE INDEX queue_records_owned ON queue_records (queue_id)
    WHERE state = 'pending' OR state = 'deferred' OR success_owed = 1;
