-- Delivery states say what is known (docs/messages.md): `handed_over` when a provider accepted an
-- external delivery, `logged` when no provider is configured and it only reached the server's log.
-- External deliveries recorded as `sent` before were all logged only (the server shipped no
-- provider), so they say so now and their inboxes are projected again; in-app deliveries stay
-- `sent`, the inbox document being their delivery. `detail` keeps the provider's words.
ALTER TABLE deliveries ADD COLUMN detail TEXT;
UPDATE deliveries
SET status = 'logged', version = version + 1,
    projected = CASE WHEN in_inbox = 1 THEN 0 ELSE 1 END
WHERE status = 'sent' AND channel <> 'inapp';
