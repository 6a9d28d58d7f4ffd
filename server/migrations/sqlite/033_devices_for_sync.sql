-- What the sync's first statement reads of a device — its member, secret's hash, revocation and
-- when it was last seen — beside its id in an index of its own. `devices` is a rowid table keyed
-- by a text id, so a look-up by id was two b-tree seeks, the id's index then the table; with the
-- columns in the index it is one, on every request a phone makes (docs/benchmarks.md, "nothing
-- changed" per second). The columns change rarely: the last-seen time at most every five
-- minutes.
CREATE INDEX devices_for_sync
    ON devices (device_id, member_id, secret_hash, revoked_at, last_seen_at);
