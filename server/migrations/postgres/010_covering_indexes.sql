-- Every posting reads the member's open lots and sums their purchases in the tier window.
-- Rows of one member lie scattered among everyone else's (they are written as members
-- buy), so each was a page of its own to fetch; with the columns in the indexes, both
-- reads are one range scan of a few adjacent index pages.
DROP INDEX postings_by_member;
CREATE INDEX postings_by_member ON postings (member_id, at, kind, total_minor, earned);
DROP INDEX lots_open_by_member;
CREATE INDEX lots_open_by_member ON lots (member_id, lot_id, rule, points, remaining,
    expired, earned_at, available_at, expires_at, warned) WHERE remaining > 0;
