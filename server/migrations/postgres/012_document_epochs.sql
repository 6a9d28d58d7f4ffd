-- Document epochs (`loyalty_core::epoch`): a document started afresh from its current
-- state carries its epoch, and devices with a copy of another epoch replace theirs.
ALTER TABLE documents ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
