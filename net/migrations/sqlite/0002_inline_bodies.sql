-- Small message bodies live in the blob row itself (`content`), committed in the
-- same transaction as the records that use them: one fsync per message instead of
-- three. NULL: the body is the file <blob_dir>/ab/cd/<blob_sha256>. A row with
-- content is read from the row even if a file of the same name exists.
ALTER TABLE blobs ADD COLUMN content BLOB;

-- Garbage collection looks for rows at refcount 0; only those are in this index,
-- so it costs nothing for the rows in use.
CREATE INDEX blobs_unreferenced ON blobs (blob_sha256) WHERE refcount = 0;
