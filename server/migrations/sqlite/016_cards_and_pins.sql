-- Cards without the app (`docs/programme.md`, "Cards without the app"): a member's PIN for the
-- till, stored as a salted PBKDF2 hash, with its wrong tries and lock; and the checkout sessions a
-- card number opened whose PIN was entered.
CREATE TABLE member_pins (
    member_id TEXT PRIMARY KEY REFERENCES members (member_id),
    hash TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER
);
CREATE TABLE session_pins (
    session_id TEXT PRIMARY KEY,
    verified_at INTEGER NOT NULL
);
-- Plastic cards linked to a member besides the card number the server gave them (the app's):
-- scanned at a till they open a card session for the member; one reported lost opens nothing,
-- and its number is never linked again.
CREATE TABLE member_cards (
    card_number TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (member_id),
    status TEXT NOT NULL,
    linked_at INTEGER NOT NULL
);
CREATE INDEX member_cards_by_member ON member_cards (member_id);
