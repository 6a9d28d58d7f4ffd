-- Points lots, the tier's state, and the programme's configuration. Every ledger movement
-- still belongs to a posting: the programme's own changes (expiry, event points, tier
-- changes) are postings of their own kinds. `revision` guards every change of a member's
-- points against a concurrent one; `next_event_at` lets the settle job find the members
-- whose points mature or expire, or whose tier is up for review, without a scan.
CREATE TABLE programme (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    config TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
ALTER TABLE members ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN tier_manual INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN tier_since INTEGER;
ALTER TABLE members ADD COLUMN tier_review_at INTEGER;
ALTER TABLE members ADD COLUMN tier_downgrade_at INTEGER;
ALTER TABLE members ADD COLUMN next_event_at INTEGER;
CREATE INDEX members_by_next_event ON members (next_event_at)
    WHERE next_event_at IS NOT NULL;
CREATE TABLE lots (
    lot_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    posting TEXT NOT NULL REFERENCES postings (idempotency_key),
    rule TEXT NOT NULL,
    points INTEGER NOT NULL,
    remaining INTEGER NOT NULL CHECK (remaining >= 0),
    expired INTEGER NOT NULL DEFAULT 0,
    earned_at INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    expires_at INTEGER,
    warned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX lots_open_by_member ON lots (member_id) WHERE remaining > 0;
CREATE INDEX lots_by_posting ON lots (posting);
ALTER TABLE ledger ADD COLUMN rule TEXT NOT NULL DEFAULT '';
CREATE INDEX postings_by_member ON postings (member_id, at);
