-- A till's idempotency key lives in its till's namespace: the posting id is `till:<till>:<key>`,
-- so two tills may use the same key and no till can take a key of the programme's own postings
-- (`event:<member>:<event>`). Postings made before keep their answers for retries under their new
-- ids; the rows that name them follow (the foreign keys are checked at the end of the migration's
-- transaction).
PRAGMA defer_foreign_keys = ON;
UPDATE postings SET refers_to = coalesce(
        (SELECT 'till:' || p.till_id || ':' || p.idempotency_key FROM postings p
         WHERE p.idempotency_key = postings.refers_to AND p.kind = 'purchase'),
        refers_to)
    WHERE refers_to IS NOT NULL;
UPDATE lots SET posting = 'till:' ||
        (SELECT p.till_id FROM postings p WHERE p.idempotency_key = lots.posting)
        || ':' || posting
    WHERE posting IN (SELECT idempotency_key FROM postings WHERE kind IN ('purchase', 'refund'));
UPDATE ledger SET posting = 'till:' || till_id || ':' || posting
    WHERE posting IN (SELECT idempotency_key FROM postings WHERE kind IN ('purchase', 'refund'));
UPDATE postings SET idempotency_key = 'till:' || till_id || ':' || idempotency_key
    WHERE kind IN ('purchase', 'refund');
