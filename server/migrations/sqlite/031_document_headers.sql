-- A document's header — its version, epoch and summary — in an index of its own beside its key.
-- The epoch and summary columns were added after `data` (012, 013), and a row keeps its columns in
-- that order: a document longer than about a kilobyte spills into a chain of overflow pages, and
-- reading a column after `data` walks that chain page by page, so the sync's check of the headers
-- cost more the longer a member's documents. With this index every check of the headers
-- (`sync_check`, the sync's device-and-check statement) reads the index and never a document's
-- bytes. SQLite keeps it in the same transaction as every write of the row, so it is never stale.
CREATE INDEX documents_headers
    ON documents (member_id, kind, version, epoch, summary_digest, summary_ops, summary_changes);
