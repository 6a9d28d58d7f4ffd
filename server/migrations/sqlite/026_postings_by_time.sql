-- The fraud watch list reads a window of postings (by default the last 7 days): without an index
-- by time that was a scan of every posting ever made, twice (members, tills). One more entry per
-- posting buys reading only the window.
CREATE INDEX postings_by_time ON postings (at);
