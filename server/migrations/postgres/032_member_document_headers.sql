-- Each of a member's four document headers (version, epoch, summary) copied into the member's own
-- row, kept by a trigger: as SQLite's 032 (the reasons are there). The sync's first statement
-- reads the device's row and the member's, and no document row. The trigger runs in the
-- transaction of every write of a document, whatever wrote it, so the copy is never stale. The
-- trigger locks the member's row after the document's: every writer of a document takes the
-- member's row first (`update_document`), or two writers of one member's documents deadlock.
ALTER TABLE members
    ADD COLUMN card_doc_version BIGINT,
    ADD COLUMN card_doc_epoch BIGINT,
    ADD COLUMN card_doc_digest BYTEA,
    ADD COLUMN card_doc_ops BIGINT,
    ADD COLUMN card_doc_changes BIGINT,
    ADD COLUMN offers_doc_version BIGINT,
    ADD COLUMN offers_doc_epoch BIGINT,
    ADD COLUMN offers_doc_digest BYTEA,
    ADD COLUMN offers_doc_ops BIGINT,
    ADD COLUMN offers_doc_changes BIGINT,
    ADD COLUMN inbox_doc_version BIGINT,
    ADD COLUMN inbox_doc_epoch BIGINT,
    ADD COLUMN inbox_doc_digest BYTEA,
    ADD COLUMN inbox_doc_ops BIGINT,
    ADD COLUMN inbox_doc_changes BIGINT,
    ADD COLUMN member_doc_version BIGINT,
    ADD COLUMN member_doc_epoch BIGINT,
    ADD COLUMN member_doc_digest BYTEA,
    ADD COLUMN member_doc_ops BIGINT,
    ADD COLUMN member_doc_changes BIGINT;
UPDATE members SET
    card_doc_version = d.version,
    card_doc_epoch = d.epoch,
    card_doc_digest = d.summary_digest,
    card_doc_ops = d.summary_ops,
    card_doc_changes = d.summary_changes
FROM documents d WHERE d.member_id = members.member_id AND d.kind = 0;
UPDATE members SET
    offers_doc_version = d.version,
    offers_doc_epoch = d.epoch,
    offers_doc_digest = d.summary_digest,
    offers_doc_ops = d.summary_ops,
    offers_doc_changes = d.summary_changes
FROM documents d WHERE d.member_id = members.member_id AND d.kind = 1;
UPDATE members SET
    inbox_doc_version = d.version,
    inbox_doc_epoch = d.epoch,
    inbox_doc_digest = d.summary_digest,
    inbox_doc_ops = d.summary_ops,
    inbox_doc_changes = d.summary_changes
FROM documents d WHERE d.member_id = members.member_id AND d.kind = 2;
UPDATE members SET
    member_doc_version = d.version,
    member_doc_epoch = d.epoch,
    member_doc_digest = d.summary_digest,
    member_doc_ops = d.summary_ops,
    member_doc_changes = d.summary_changes
FROM documents d WHERE d.member_id = members.member_id AND d.kind = 3;
CREATE FUNCTION member_document_headers_copy() RETURNS trigger LANGUAGE plpgsql AS
$$
DECLARE
    r documents;
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- No path deletes a document today; one that does leaves no header behind.
        r := OLD;
        r.version := NULL;
        r.epoch := NULL;
        r.summary_digest := NULL;
        r.summary_ops := NULL;
        r.summary_changes := NULL;
    ELSE
        r := NEW;
    END IF;
    IF r.kind = 0 THEN
        UPDATE members SET
            card_doc_version = r.version,
            card_doc_epoch = r.epoch,
            card_doc_digest = r.summary_digest,
            card_doc_ops = r.summary_ops,
            card_doc_changes = r.summary_changes
        WHERE member_id = r.member_id;
    ELSIF r.kind = 1 THEN
        UPDATE members SET
            offers_doc_version = r.version,
            offers_doc_epoch = r.epoch,
            offers_doc_digest = r.summary_digest,
            offers_doc_ops = r.summary_ops,
            offers_doc_changes = r.summary_changes
        WHERE member_id = r.member_id;
    ELSIF r.kind = 2 THEN
        UPDATE members SET
            inbox_doc_version = r.version,
            inbox_doc_epoch = r.epoch,
            inbox_doc_digest = r.summary_digest,
            inbox_doc_ops = r.summary_ops,
            inbox_doc_changes = r.summary_changes
        WHERE member_id = r.member_id;
    ELSIF r.kind = 3 THEN
        UPDATE members SET
            member_doc_version = r.version,
            member_doc_epoch = r.epoch,
            member_doc_digest = r.summary_digest,
            member_doc_ops = r.summary_ops,
            member_doc_changes = r.summary_changes
        WHERE member_id = r.member_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER member_document_headers
AFTER INSERT OR DELETE OR UPDATE OF version, epoch, summary_digest, summary_ops, summary_changes
ON documents FOR EACH ROW EXECUTE FUNCTION member_document_headers_copy();
