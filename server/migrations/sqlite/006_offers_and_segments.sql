-- Targeted offers and segments (`server/src/storage/sqlite/offers.rs`). Targeting is decided here, in SQL;
-- an offer reaches a member's offers document only when projected (at their next sync).
CREATE TABLE offers (
    offer_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_key TEXT,
    valid_from INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    use_limit INTEGER NOT NULL,
    member_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX offers_standing ON offers (valid_until) WHERE target_kind <> 'members';
CREATE TABLE offer_members (
    offer_id TEXT NOT NULL REFERENCES offers (offer_id),
    member_id TEXT NOT NULL REFERENCES members (member_id),
    uses INTEGER NOT NULL DEFAULT 0,
    projected_version INTEGER NOT NULL DEFAULT 0,
    projected_uses INTEGER NOT NULL DEFAULT 0,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (member_id, offer_id)
) WITHOUT ROWID;
CREATE TABLE segments (
    segment_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    computed_at INTEGER,
    member_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE segment_members (
    segment_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (segment_id, member_id)
) WITHOUT ROWID;
CREATE TABLE member_rfm (
    member_id TEXT PRIMARY KEY,
    recency INTEGER NOT NULL,
    frequency INTEGER NOT NULL,
    monetary INTEGER NOT NULL,
    last_purchase_at INTEGER NOT NULL,
    purchases INTEGER NOT NULL,
    spend_minor INTEGER NOT NULL,
    computed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE programme_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fanout_seq INTEGER NOT NULL
);
INSERT INTO programme_state (id, fanout_seq) VALUES (1, 0);
