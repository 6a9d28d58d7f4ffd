-- Named operator accounts with roles (support, marketing, admin), each with the SHA-256 of its
-- bearer token, and the audit log of every operator write (docs/operations.md, *Operators*).
CREATE TABLE operators (
    operator_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    disabled_at BIGINT
);
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    operator_id TEXT NOT NULL,
    operator_name TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX audit_by_operator ON audit_log (operator_id, id);
