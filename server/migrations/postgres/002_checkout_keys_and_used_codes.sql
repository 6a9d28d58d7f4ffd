-- Checkout: the keys devices sign codes with, card status, and the codes already used.
ALTER TABLE members ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
CREATE TABLE device_keys (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    key_id BIGINT NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (member_id, key_id)
);
CREATE TABLE used_codes (
    code_id BYTEA PRIMARY KEY,
    used_at BIGINT NOT NULL
);
