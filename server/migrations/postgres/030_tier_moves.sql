-- Tier movement from → to (issue 14 §3): every change of a member's tier, whatever made it (an
-- upgrade at a purchase, a downgrade at a review, an operator's manual tier), recorded by a
-- trigger on the one column, so no write path can forget it and the one-statement posting stays
-- as it is. `at` is when the member entered the new tier (the tier state's `since`, which every
-- change sets). The members report counts the moves in a window through `tier_moves_by_time`.
-- Keyed by member first, as every member-owned table (docs/scaling.md).
CREATE TABLE tier_moves (
    member_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    from_tier TEXT NOT NULL,
    to_tier TEXT NOT NULL,
    PRIMARY KEY (member_id, at, from_tier, to_tier)
);
CREATE INDEX tier_moves_by_time ON tier_moves (at, from_tier, to_tier);

CREATE FUNCTION tier_moves_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tier_moves (member_id, at, from_tier, to_tier)
    VALUES (NEW.member_id, coalesce(NEW.tier_since, NEW.created_at), OLD.tier, NEW.tier)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER tier_moves_record AFTER UPDATE OF tier ON members
FOR EACH ROW WHEN (OLD.tier IS DISTINCT FROM NEW.tier)
EXECUTE FUNCTION tier_moves_record();
