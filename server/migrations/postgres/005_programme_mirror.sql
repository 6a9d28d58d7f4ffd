-- The programme: the member's tier, and a relational mirror of what the member document
-- says (preferences, consents, activations), so targeting and the till query SQL instead
-- of loading a million Automerge documents.
ALTER TABLE members ADD COLUMN tier TEXT NOT NULL DEFAULT 'base';
CREATE TABLE member_preferences (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (member_id, key)
);
CREATE INDEX member_preferences_by_value ON member_preferences (key, value);
CREATE TABLE member_consents (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    channel TEXT NOT NULL,
    granted BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (member_id, channel)
);
CREATE TABLE member_activations (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    offer_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (member_id, offer_id)
);
