-- Structured ledger reasons (issue 13 §6): a stable code and its parameters (JSON text) that an
-- app can word in the member's language, and when earned points become spendable, so "pending" is
-- a state read from the clock rather than words in the text. Rows written before this keep their
-- text; they read with the code their rule implies (`ReasonCode::stored`) and no parameters.
ALTER TABLE ledger ADD COLUMN reason_code TEXT;
ALTER TABLE ledger ADD COLUMN reason_params TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN available_at BIGINT;
