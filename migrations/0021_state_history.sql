-- A state key's history in a room: the state event of a (type, state key)
-- as of a position (sync's state before a timeline, the lazily loaded
-- members of its senders, an invite's inviter) is one probe of this index,
-- newest first, instead of a walk over the room's events up to the position.
CREATE INDEX events_state_history ON events (room_id, type, state_key, stream) WHERE state_key IS NOT NULL;
