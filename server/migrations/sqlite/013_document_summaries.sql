-- What a sync compares without loading a document (`storage::DocSummary`): the digest of its
-- heads and the size of its history, written with the bytes they describe. NULL is unknown (rows
-- from before this step, writers that give none): a sync then loads the document and fills it in.
ALTER TABLE documents ADD COLUMN summary_digest BLOB;
ALTER TABLE documents ADD COLUMN summary_ops INTEGER;
ALTER TABLE documents ADD COLUMN summary_changes INTEGER;
