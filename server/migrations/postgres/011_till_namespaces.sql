-- A till's idempotency key lives in its till's namespace: the posting id is `till:<till>:<key>`.
-- On SQLite this migration renamed the postings made before; a PostgreSQL database starts at the
-- schema of its time, so it has no posting of the old form to move and this step is empty. It is
-- kept so the two backends' migrations carry the same numbers.
SELECT 1;
