-- The offers' fan-out writes a row of `offer_members` per member reached, a million for an offer
-- to everyone; each row's foreign-key checks (a `FOR KEY SHARE` lock of the member's row and of the
-- offer's, one internal query each) were two thirds of the fan-out's time (`docs/benchmarks.md`).
-- Every writer takes the ids from the rows themselves — the fan-out from `members` or
-- `segment_members` in the same statement, an explicit target after checking each member exists
-- (`offers.rs`) — and neither members nor offers are ever deleted, so the checks never refused
-- anything. SQLite keeps its declarations (it checks nothing unless told to, at no cost).
ALTER TABLE offer_members DROP CONSTRAINT IF EXISTS offer_members_member_id_fkey;
ALTER TABLE offer_members DROP CONSTRAINT IF EXISTS offer_members_offer_id_fkey;
