-- Segment sizes over time (issue 14 §3): every recompute records, per segment, its members and
-- how many joined and departed since the previous recompute — the migration between two runs —
-- so the report reads a small table, never a copy of the memberships. Deleted with the segment.
CREATE TABLE segment_runs (
    segment_id TEXT NOT NULL,
    computed_at BIGINT NOT NULL,
    members BIGINT NOT NULL,
    joined BIGINT NOT NULL,
    departed BIGINT NOT NULL,
    PRIMARY KEY (segment_id, computed_at)
);
