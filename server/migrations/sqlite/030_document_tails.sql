-- Changes appended to a document since its last whole save, one row per write. Appending used to
-- be `data = data || change`, which rewrites every page of the stored document: a card a few
-- hundred changes long paid for its whole history at every catch-up. Now an append writes its
-- change alone; a document's bytes are `documents.data` followed by its tails in version order,
-- and a whole save replaces `data` and drops the tails. Keyed by member first, as every
-- member-owned table (docs/scaling.md).
CREATE TABLE document_tails (
    member_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (member_id, kind, version),
    FOREIGN KEY (member_id, kind) REFERENCES documents (member_id, kind)
) WITHOUT ROWID;
