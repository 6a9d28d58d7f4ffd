CREATE TABLE members (
    member_id TEXT PRIMARY KEY,
    card_number TEXT NOT NULL UNIQUE,
    external_ref TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE activation_codes (
    code_hash BLOB PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    device_id TEXT
);
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    secret_hash BLOB NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX devices_by_member ON devices (member_id);
CREATE TABLE documents (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    kind INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (member_id, kind)
) WITHOUT ROWID;
CREATE TABLE peer_states (
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    kind INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (device_id, kind)
) WITHOUT ROWID;
