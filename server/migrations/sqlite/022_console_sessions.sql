-- The operators' console sessions (docs/console.md): the SHA-256 of the session id the cookie
-- carries (never the id), whose session it is, its CSRF token, and when it ends. A session of a
-- disabled operator is refused by joining `operators`; logout deletes the row; expired rows are
-- swept when a new session is made.
CREATE TABLE console_sessions (
    id_hash BLOB PRIMARY KEY,
    operator_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
