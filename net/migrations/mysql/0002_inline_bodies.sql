-- Small message bodies live in the blob row itself (`content`), committed in the
-- same transaction as the records that use them: one fsync per message instead of
-- three. NULL: the body is the file <blob_dir>/ab/cd/<blob_sha256>. A row with
-- content is read from the row even if a file of the same name exists.
-- LONGBLOB: storage.inline_body_limit is capped well below max_allowed_packet.
-- MySQL has no partial index, and a full index on refcount would be rewritten by
-- every accept: garbage collection scans the table instead (it runs rarely).
ALTER TABLE blobs ADD COLUMN content LONGBLOB NULL;
