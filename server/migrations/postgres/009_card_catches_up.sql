-- The card document stops being written by every posting: it catches up with the ledger
-- when read (`server/src/projection/card.rs`). `card_revision` is the member's revision it shows;
-- cards written so far were projected by each posting, so they show the current one.
ALTER TABLE members ADD COLUMN card_revision BIGINT NOT NULL DEFAULT 0;
UPDATE members SET card_revision = revision;
