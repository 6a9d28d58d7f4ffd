-- Operators adjust members' points (`service::adjustments`): each adjustment is a posting of kind
-- `adjust`, and the operator who made it is recorded on it. NULL for every other posting (a
-- till's, the programme's own), and for all rows written before this step.
ALTER TABLE postings ADD COLUMN operator TEXT;
