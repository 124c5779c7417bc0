-- Sync filters uploaded by clients (POST /user/{userId}/filter).
CREATE TABLE filters (
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    filter_id  bigint GENERATED ALWAYS AS IDENTITY,
    definition jsonb NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
