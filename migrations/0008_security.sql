-- Security fixes (issue 17).
--
-- A refresh issues access tokens of a new generation. The tokens of older
-- generations end as soon as one of the newer generation is used, so a
-- refreshed-away token does not live on until it expires.
ALTER TABLE sessions ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN oldest_valid_generation integer NOT NULL DEFAULT 0;

-- Rooms made through the original /api before their power levels could say
-- that members edit the member list (org.atomchat.edit_members). Every room
-- that exists now is listed; at start the server gives those made through
-- /api the level, as their creator, and empties the list (see
-- Compat.upgrade_old_api_rooms).
CREATE TABLE api_rooms_to_upgrade (
    room_id text PRIMARY KEY REFERENCES rooms (room_id) ON DELETE CASCADE
);
INSERT INTO api_rooms_to_upgrade (room_id) SELECT room_id FROM rooms WHERE NOT deleted;
