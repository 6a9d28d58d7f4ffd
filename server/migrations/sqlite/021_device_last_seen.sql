-- When each device was last seen (issue 14 §2: the member's one window lists their devices with
-- it). An authenticated device request writes it at most once per `service::devices::SEEN_STEP_MS`,
-- so the sync path stays read-only nearly always. NULL: not seen since this column exists.
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER;
