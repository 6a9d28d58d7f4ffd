-- Communications: each message once, one delivery row per recipient with its status and
-- reason (the operators' record, and what a segment send writes instead of documents),
-- the mirror of the members' requests, and the programme's replies to them. `projected`
-- = 0 marks what a member's inbox document still lacks; `version` lets a projection tell
-- whether the row changed under it. `segment_members` belongs to segments; it is created
-- here too (if absent) because a segment send reads it.
CREATE TABLE IF NOT EXISTS segment_members (
    segment_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (segment_id, member_id)
);
CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    target TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE deliveries (
    message_id TEXT NOT NULL REFERENCES messages (message_id),
    member_id TEXT NOT NULL REFERENCES members (member_id),
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    day BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    in_inbox BIGINT NOT NULL,
    projected BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    attempts BIGINT NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, member_id)
);
CREATE INDEX deliveries_by_member ON deliveries (member_id, created_at);
CREATE INDEX deliveries_to_project ON deliveries (member_id) WHERE projected = 0;
CREATE INDEX deliveries_marketing_by_day ON deliveries (member_id, day)
    WHERE kind = 'marketing' AND in_inbox = 1;
CREATE INDEX deliveries_queued ON deliveries (not_before) WHERE status = 'queued';
CREATE TABLE member_requests (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (member_id, request_id)
);
CREATE INDEX member_requests_by_time ON member_requests (at);
CREATE TABLE member_request_followups (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    request_id TEXT NOT NULL,
    followup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (member_id, request_id, followup_id)
);
CREATE TABLE request_threads (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    projected BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (member_id, request_id)
);
CREATE INDEX request_threads_to_project ON request_threads (member_id)
    WHERE projected = 0;
CREATE TABLE request_replies (
    member_id TEXT NOT NULL REFERENCES members (member_id),
    request_id TEXT NOT NULL,
    reply_id TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (member_id, request_id, reply_id)
);
