-- A refresh issues access tokens of a new generation. The tokens of older
-- generations end as soon as one of the newer generation is used, so a
-- refreshed-away token does not live on until it expires.
ALTER TABLE sessions ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN oldest_valid_generation integer NOT NULL DEFAULT 0;
