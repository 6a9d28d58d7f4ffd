-- Used codes and checkout sessions are only needed while they can still matter; these
-- indexes let each scan sweep out the stale ones cheaply.
CREATE INDEX used_codes_by_time ON used_codes (used_at);
CREATE INDEX checkout_sessions_by_expiry ON checkout_sessions (expires_at);
