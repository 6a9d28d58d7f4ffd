-- Targeted offers and segments (the storage backends). Targeting is decided here, in SQL;
-- an offer reaches a member's offers document only when projected (at their next sync).
CREATE TABLE offers (
    offer_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_key TEXT,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    use_limit BIGINT NOT NULL,
    member_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX offers_standing ON offers (valid_until) WHERE target_kind <> 'members';
CREATE TABLE offer_members (
    offer_id TEXT NOT NULL REFERENCES offers (offer_id),
    member_id TEXT NOT NULL REFERENCES members (member_id),
    uses BIGINT NOT NULL DEFAULT 0,
    projected_version BIGINT NOT NULL DEFAULT 0,
    projected_uses BIGINT NOT NULL DEFAULT 0,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, offer_id)
);
CREATE TABLE segments (
    segment_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    computed_at BIGINT,
    member_count BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE segment_members (
    segment_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (segment_id, member_id)
);
CREATE TABLE member_rfm (
    member_id TEXT PRIMARY KEY,
    recency BIGINT NOT NULL,
    frequency BIGINT NOT NULL,
    monetary BIGINT NOT NULL,
    last_purchase_at BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    spend_minor BIGINT NOT NULL,
    computed_at BIGINT NOT NULL
);
CREATE TABLE programme_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    fanout_seq BIGINT NOT NULL
);
INSERT INTO programme_state (id, fanout_seq) VALUES (1, 0);
