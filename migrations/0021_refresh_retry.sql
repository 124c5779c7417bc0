-- A refresh token stays usable after it was traded for a new pair, until
-- the new access or refresh token is first used (as the Matrix
-- specification asks): a client whose refresh answer was lost, or that
-- reloaded before storing it, can trade the previous token again instead
-- of being signed out. storage/sessions.py keeps the column.
ALTER TABLE sessions ADD COLUMN previous_refresh_token_hash text UNIQUE;
