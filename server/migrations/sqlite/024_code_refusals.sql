-- The fraud watch list (issue 14 §3) counts the codes tills refused (replayed, forged, expired,
-- revoked keys, blocked or lost cards). A refusal answers no one and changes nothing else, so
-- only a count is kept, per UTC day, till, member (empty when the code named no known card) and
-- reason: a till flooding refusals grows one row, not one per attempt.
CREATE TABLE code_refusals (
    day INTEGER NOT NULL,
    till_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, till_id, member_id, reason)
) WITHOUT ROWID;
