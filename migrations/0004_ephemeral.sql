-- Receipts, typing notices and account data. Each change takes a position in
-- the global event stream (under the same lock as events), so one sync token
-- orders everything a client can see.

CREATE TABLE receipts (
    room_id      text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    user_id      text NOT NULL,
    receipt_type text NOT NULL,            -- m.read or m.read.private
    thread_id    text NOT NULL DEFAULT '',
    event_id     text NOT NULL,
    event_stream bigint NOT NULL,          -- the position of the event read up to
    ts           bigint NOT NULL,
    stream       bigint NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_by_room_stream ON receipts (room_id, stream);
CREATE INDEX receipts_by_stream ON receipts (stream);

CREATE TABLE typing (
    room_id    text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    typing     boolean NOT NULL,
    expires_ms bigint NOT NULL,            -- when a typing notice lapses by itself
    stream     bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX typing_by_room_stream ON typing (room_id, stream);
CREATE INDEX typing_by_stream ON typing (stream);

CREATE TABLE account_data (
    user_id text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    room_id text NOT NULL DEFAULT '',      -- '' for global account data
    type    text NOT NULL,
    content jsonb NOT NULL,
    stream  bigint NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_user_stream ON account_data (user_id, stream);
CREATE INDEX account_data_by_stream ON account_data (stream);
