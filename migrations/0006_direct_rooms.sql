-- The original API's one-to-one messages: each pair of people has one
-- private room, whoever writes first. Stored by the pair's account ids,
-- smaller first, so the pair finds the same room either way round.
CREATE TABLE direct_rooms (
    user_low  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_high bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id   text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    PRIMARY KEY (user_low, user_high),
    CHECK (user_low <= user_high)
);
