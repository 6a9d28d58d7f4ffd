-- The points ledger: the system of record for balances. Every till request is a posting
-- under its idempotency key; the balance is kept with the ledger in one transaction.
ALTER TABLE members ADD COLUMN balance BIGINT NOT NULL DEFAULT 0;
CREATE TABLE checkout_sessions (
    session_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    till_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE postings (
    idempotency_key TEXT PRIMARY KEY,
    request_hash BYTEA NOT NULL,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    kind TEXT NOT NULL,
    refers_to TEXT REFERENCES postings (idempotency_key),
    till_id TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    earned BIGINT NOT NULL,
    redeemed BIGINT NOT NULL,
    at BIGINT NOT NULL,
    response BYTEA NOT NULL
);
CREATE INDEX postings_by_purchase ON postings (refers_to);
CREATE TABLE ledger (
    tx_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    posting TEXT NOT NULL REFERENCES postings (idempotency_key),
    points BIGINT NOT NULL,
    reason TEXT NOT NULL,
    till_id TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX ledger_by_member ON ledger (member_id, at);
