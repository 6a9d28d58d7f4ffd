-- Operators manage offers (issue 14 §2): an offer withdrawn is taken out of members' offers
-- documents at their next sync and never applied again. The figures per offer count only what
-- happened, through two indexes that never hold a row per member merely reached: uses by offer
-- (members who used it) and activations by offer (members who clipped it).
ALTER TABLE offers ADD COLUMN withdrawn_at INTEGER;
CREATE INDEX offer_members_used ON offer_members (offer_id) WHERE uses > 0;
CREATE INDEX member_activations_by_offer ON member_activations (offer_id);
