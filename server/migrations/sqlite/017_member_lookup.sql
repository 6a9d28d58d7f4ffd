-- Operators find members by the retailer's own reference (`GET /v1/admin/members?external_ref=`);
-- e-mail and phone are found through `member_preferences (key, value)`, indexed since 005.
CREATE INDEX members_by_external_ref ON members (external_ref) WHERE external_ref IS NOT NULL;
