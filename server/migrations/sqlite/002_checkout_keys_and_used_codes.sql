-- Checkout: the keys devices sign codes with, card status, and the codes already used.
ALTER TABLE members ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
CREATE TABLE device_keys (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    key_id INTEGER NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    PRIMARY KEY (member_id, key_id)
) WITHOUT ROWID;
CREATE TABLE used_codes (
    code_id BLOB PRIMARY KEY,
    used_at INTEGER NOT NULL
) WITHOUT ROWID;
