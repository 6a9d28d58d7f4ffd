-- The offline till (`docs/checkout-code.md` §9-10). The key feed numbers every change of a device
-- key or of a card's status from one counter row. Taking the next number locks that row until
-- the writing transaction ends, and a transaction is visible before its locks are released, so
-- numbers become visible in order: a till asking "what changed after N" never misses a change
-- that commits later with a smaller number (a plain sequence would allow that across instances).
-- Triggers number the changes, so no write path can forget to. Codes used by offline purchases
-- are kept as long as a till may flush, and what a flush could not do is kept for operators.
CREATE TABLE till_feed (only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), seq BIGINT NOT NULL);
ALTER TABLE device_keys ADD COLUMN feed_seq BIGINT;
ALTER TABLE members ADD COLUMN feed_seq BIGINT;
UPDATE device_keys SET feed_seq = n.rn
FROM (SELECT member_id, key_id,
             row_number() OVER (ORDER BY created_at, member_id, key_id) AS rn
      FROM device_keys) AS n
WHERE device_keys.member_id = n.member_id AND device_keys.key_id = n.key_id;
UPDATE members SET feed_seq = (SELECT count(*) FROM device_keys) + n.rn
FROM (SELECT member_id, row_number() OVER (ORDER BY member_id) AS rn
      FROM members WHERE status <> 'active') AS n
WHERE members.member_id = n.member_id;
INSERT INTO till_feed (seq)
VALUES ((SELECT count(*) FROM device_keys) + (SELECT count(*) FROM members WHERE status <> 'active'));
CREATE INDEX device_keys_by_feed ON device_keys (feed_seq);
CREATE INDEX members_by_feed ON members (feed_seq) WHERE feed_seq IS NOT NULL;

CREATE FUNCTION till_feed_next() RETURNS BIGINT LANGUAGE sql AS
$$ UPDATE till_feed SET seq = seq + 1 RETURNING seq $$;
CREATE FUNCTION till_feed_number() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.feed_seq := till_feed_next(); RETURN NEW; END $$;
CREATE FUNCTION till_feed_device_revoked() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN
    UPDATE device_keys SET feed_seq = till_feed_next() WHERE device_id = NEW.device_id;
    RETURN NULL;
END $$;
CREATE TRIGGER till_feed_key_added BEFORE INSERT ON device_keys
FOR EACH ROW EXECUTE FUNCTION till_feed_number();
CREATE TRIGGER till_feed_key_revoked BEFORE UPDATE OF revoked_at ON device_keys
FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
EXECUTE FUNCTION till_feed_number();
CREATE TRIGGER till_feed_device_revoked AFTER UPDATE OF revoked_at ON devices
FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
EXECUTE FUNCTION till_feed_device_revoked();
CREATE TRIGGER till_feed_card_status BEFORE UPDATE OF status ON members
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION till_feed_number();

CREATE TABLE offline_codes (
    code_id BYTEA PRIMARY KEY,
    posting TEXT NOT NULL,
    till_id TEXT NOT NULL,
    code_time BIGINT NOT NULL
);
CREATE INDEX offline_codes_by_time ON offline_codes (code_time);
CREATE TABLE till_exceptions (
    posting TEXT NOT NULL,
    kind TEXT NOT NULL,
    member_id TEXT,
    till_id TEXT NOT NULL,
    points BIGINT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (posting, kind)
);
CREATE INDEX till_exceptions_by_time ON till_exceptions (at);
