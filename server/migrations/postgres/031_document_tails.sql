-- Changes appended to a document since its last whole save, one row per write. Appending used to
-- be `data = data || change`, which writes the whole value again (a TOASTed value is never
-- changed in place): a card a few hundred changes long paid for its whole history at every
-- catch-up. Now an append writes its change alone; a document's bytes are `documents.data`
-- followed by its tails in version order, and a whole save replaces `data` and drops the tails.
-- Keyed by member first, as every member-owned table (docs/scaling.md).
CREATE TABLE document_tails (
    member_id TEXT NOT NULL,
    kind BIGINT NOT NULL,
    version BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (member_id, kind, version),
    FOREIGN KEY (member_id, kind) REFERENCES documents (member_id, kind)
);
