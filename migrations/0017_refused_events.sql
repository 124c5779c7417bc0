-- Received events that did not make it into a room's timeline, kept apart
-- from the events table so that nothing a client reads can see them.
--
-- 'rejected': the event failed the authorization rules on its own
-- auth_events or on the state before it. It is never shown to clients, never
-- cited as a prev or auth event by this server, never served to other
-- servers, and an event citing it as an auth event is rejected too; kept so
-- that the same event sent again is answered without checking it again.
--
-- 'soft_failed': the event passed those rules but not the room's current
-- state (a banned user's server citing the room from before the ban). Never
-- shown to clients nor a forward extremity; other servers may still cite it
-- as a prev event, so it is served by GET /event and its state counts when
-- an event after it is judged.
CREATE TABLE refused_events (
    event_id text PRIMARY KEY,
    room_id text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,  -- purged with its room
    status text NOT NULL CHECK (status IN ('rejected', 'soft_failed')),
    reason text NOT NULL,
    pdu jsonb NOT NULL,
    received_ts bigint NOT NULL
);
CREATE INDEX refused_events_by_room ON refused_events (room_id);
