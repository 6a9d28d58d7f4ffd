CREATE TABLE members (
    member_id TEXT PRIMARY KEY,
    card_number TEXT NOT NULL UNIQUE,
    external_ref TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE activation_codes (
    code_hash BYTEA PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    device_id TEXT
);
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    secret_hash BYTEA NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX devices_by_member ON devices (member_id);
CREATE TABLE documents (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    kind BIGINT NOT NULL,
    version BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (member_id, kind)
);
CREATE TABLE peer_states (
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    kind BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (device_id, kind)
);
