-- What IMAP needs of the mailbox store (issue 11).
-- CONDSTORE/QRESYNC (RFC 7162): each folder counts its modification sequence
-- (highestmodseq, starting at 1), each message has the MODSEQ of its last change,
-- and each expunged message leaves a tombstone (its UID and the MODSEQ of its
-- expunge) so that VANISHED (EARLIER) can be answered. A folder keeps its newest
-- tombstones only; vanished_floor is the highest MODSEQ of one let go (0: none),
-- below which a client must resynchronise fully. Existing messages start at
-- MODSEQ 1, their folder's HIGHESTMODSEQ. No index on messages' modseq: it would
-- add an index entry to every accepted local copy, and CHANGEDSINCE reads one
-- folder's rows, which (folder_id, uid) already finds.
ALTER TABLE folders ADD COLUMN highestmodseq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE folders ADD COLUMN vanished_floor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;
-- The envelope sender (the reverse-path without brackets; '' for the null path
-- and for APPEND), for the Return-Path field on read (RFC 5321 §4.4). Copies
-- written before this migration have none.
ALTER TABLE messages ADD COLUMN reverse_path TEXT NOT NULL DEFAULT '';

CREATE TABLE expunged_messages (
    folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
);

-- Subscribed names (RFC 9051 §6.3.7): names, not folders; a folder's deletion
-- or rename leaves them as they are.
CREATE TABLE subscriptions (
    user_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (user_key, name)
);

-- A message copied or moved into (into-junk) or out of (out-of-junk) a user's
-- Junk folder, for the anti-spam classifier to learn from, in order of id.
CREATE TABLE mailbox_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key TEXT NOT NULL REFERENCES addresses (address_key) ON DELETE CASCADE,
    blob_sha256 TEXT NOT NULL,
    direction TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
