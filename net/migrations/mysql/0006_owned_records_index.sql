-- On SQLite and PostgreSQL this migration replaces the indexes on queue_records'
-- state and success_owed with one partial index of the records the queue still
-- owns. MySQL and MariaDB have no partial indexes: the two indexes stay, which
-- answer the same query by an index merge. Nothing changes; the version is kept
-- in step with the other engines.
DO 0;
