-- Each ledger movement carries the member's revision it was posted at, so the card's catch-up
-- (`server/src/projection/card.rs`) reads only the movements its card has not shown — those
-- above `members.card_revision` — instead of the member's fifty most recent with their reasons
-- parsed, at every live update (docs/benchmarks.md, the live update). Not by time: an offline
-- purchase is posted with the time it was made, hours or days late.
--
-- Earlier movements: a card that is up to date shows them already (0 keeps them below any card
-- revision); a card behind its ledger (a member whose card nobody read since) is given its
-- member's current revision for every movement, so its next catch-up reads the newest of all of
-- them, as before. Adding a column with a constant default rewrites nothing; the update touches
-- only the movements of members whose card is behind.
ALTER TABLE ledger ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
UPDATE ledger l SET revision = m.revision
FROM members m
WHERE m.member_id = l.member_id AND m.card_revision < m.revision;
CREATE INDEX ledger_by_revision ON ledger (member_id, revision);
