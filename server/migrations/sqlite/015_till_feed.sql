-- The offline till (`docs/checkout-code.md` §9-10). The key feed numbers every change of a device
-- key or of a card's status from one counter, so a till asking "what changed after N" never
-- misses one; triggers number them, so no write path can forget to. Codes used by offline
-- purchases are kept as long as a till may flush (days, not minutes), and what a flush could not
-- do as the till did it is kept for operators.
CREATE TABLE till_feed (only_row INTEGER PRIMARY KEY CHECK (only_row = 1), seq INTEGER NOT NULL);
ALTER TABLE device_keys ADD COLUMN feed_seq INTEGER;
ALTER TABLE members ADD COLUMN feed_seq INTEGER;
-- Existing keys, numbered in the order they were registered.
UPDATE device_keys SET feed_seq = n.rn
FROM (SELECT member_id, key_id,
             row_number() OVER (ORDER BY created_at, member_id, key_id) AS rn
      FROM device_keys) AS n
WHERE device_keys.member_id = n.member_id AND device_keys.key_id = n.key_id;
UPDATE members SET feed_seq = (SELECT count(*) FROM device_keys) + n.rn
FROM (SELECT member_id, row_number() OVER (ORDER BY member_id) AS rn
      FROM members WHERE status <> 'active') AS n
WHERE members.member_id = n.member_id;
INSERT INTO till_feed (only_row, seq)
VALUES (1, (SELECT count(*) FROM device_keys) + (SELECT count(*) FROM members WHERE status <> 'active'));
CREATE INDEX device_keys_by_feed ON device_keys (feed_seq);
CREATE INDEX members_by_feed ON members (feed_seq) WHERE feed_seq IS NOT NULL;

CREATE TRIGGER till_feed_key_added AFTER INSERT ON device_keys
BEGIN
    UPDATE till_feed SET seq = seq + 1;
    UPDATE device_keys SET feed_seq = (SELECT seq FROM till_feed)
    WHERE member_id = NEW.member_id AND key_id = NEW.key_id;
END;
CREATE TRIGGER till_feed_key_revoked AFTER UPDATE OF revoked_at ON device_keys
WHEN OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
    UPDATE till_feed SET seq = seq + 1;
    UPDATE device_keys SET feed_seq = (SELECT seq FROM till_feed)
    WHERE member_id = NEW.member_id AND key_id = NEW.key_id;
END;
CREATE TRIGGER till_feed_device_revoked AFTER UPDATE OF revoked_at ON devices
WHEN OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
    UPDATE till_feed SET seq = seq + 1;
    UPDATE device_keys SET feed_seq = (SELECT seq FROM till_feed) WHERE device_id = NEW.device_id;
END;
CREATE TRIGGER till_feed_card_status AFTER UPDATE OF status ON members
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE till_feed SET seq = seq + 1;
    UPDATE members SET feed_seq = (SELECT seq FROM till_feed) WHERE member_id = NEW.member_id;
END;

CREATE TABLE offline_codes (
    code_id BLOB PRIMARY KEY,
    posting TEXT NOT NULL,
    till_id TEXT NOT NULL,
    code_time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX offline_codes_by_time ON offline_codes (code_time);
CREATE TABLE till_exceptions (
    posting TEXT NOT NULL,
    kind TEXT NOT NULL,
    member_id TEXT,
    till_id TEXT NOT NULL,
    points INTEGER NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (posting, kind)
);
CREATE INDEX till_exceptions_by_time ON till_exceptions (at);
