-- Points lots, the tier's state, and the programme's configuration. Every ledger movement
-- still belongs to a posting: the programme's own changes (expiry, event points, tier
-- changes) are postings of their own kinds. `revision` guards every change of a member's
-- points against a concurrent one; `next_event_at` lets the settle job find the members
-- whose points mature or expire, or whose tier is up for review, without a scan.
CREATE TABLE programme (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    config TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
ALTER TABLE members ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN tier_manual BIGINT NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN tier_since BIGINT;
ALTER TABLE members ADD COLUMN tier_review_at BIGINT;
ALTER TABLE members ADD COLUMN tier_downgrade_at BIGINT;
ALTER TABLE members ADD COLUMN next_event_at BIGINT;
CREATE INDEX members_by_next_event ON members (next_event_at)
    WHERE next_event_at IS NOT NULL;
CREATE TABLE lots (
    lot_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    posting TEXT NOT NULL REFERENCES postings (idempotency_key),
    rule TEXT NOT NULL,
    points BIGINT NOT NULL,
    remaining BIGINT NOT NULL CHECK (remaining >= 0),
    expired BIGINT NOT NULL DEFAULT 0,
    earned_at BIGINT NOT NULL,
    available_at BIGINT NOT NULL,
    expires_at BIGINT,
    warned BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX lots_open_by_member ON lots (member_id) WHERE remaining > 0;
CREATE INDEX lots_by_posting ON lots (posting);
ALTER TABLE ledger ADD COLUMN rule TEXT NOT NULL DEFAULT '';
CREATE INDEX postings_by_member ON postings (member_id, at);
