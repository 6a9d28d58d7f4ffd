-- RFM score migration between two recomputes (issue 14 §3): every recompute records itself in
-- `rfm_runs` (with the recompute before it) and, per dimension, how many members went from each
-- previous score to each new one (0 = no purchase in the window). Only cells with members are
-- stored and never 0 → 0 (members without a score both times: all members minus the rest, derived
-- when read). The job keeps the latest 100 runs. Written by the batch job only.
CREATE TABLE rfm_runs (
    computed_at INTEGER PRIMARY KEY,
    previous_at INTEGER
);
CREATE TABLE rfm_moves (
    computed_at INTEGER NOT NULL,
    dimension TEXT NOT NULL CHECK (dimension IN ('recency', 'frequency', 'monetary')),
    from_score INTEGER NOT NULL CHECK (from_score BETWEEN 0 AND 5),
    to_score INTEGER NOT NULL CHECK (to_score BETWEEN 0 AND 5),
    members INTEGER NOT NULL,
    PRIMARY KEY (computed_at, dimension, from_score, to_score)
) WITHOUT ROWID;
