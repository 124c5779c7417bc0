-- Conversations as clients show them: relations (edits, threads,
-- references, reactions), presence and reports of content.

-- Relations are read through expression indexes on the events' own
-- content: nothing more is written when an event is sent, and a redaction,
-- which prunes m.relates_to with the rest of the content, removes the
-- relation from the index by itself.
-- The relation type is in the key so that aggregating a message's edits
-- and threads never reads its (possibly thousands of) reactions.
CREATE INDEX events_relations
    ON events (room_id, ((content->'m.relates_to'->>'event_id')), ((content->'m.relates_to'->>'rel_type')), stream)
    WHERE (content->'m.relates_to'->>'event_id') IS NOT NULL;
-- A room's threads by latest activity (GET /rooms/{roomId}/threads).
CREATE INDEX events_threads ON events (room_id, stream)
    WHERE (content->'m.relates_to'->>'rel_type') = 'm.thread';

-- Presence: one row per user who was ever seen. Only a change of state or
-- status message takes a stream position (and reaches clients through
-- sync); last_active_ts is refreshed now and then, not on every request.
CREATE TABLE presence (
    user_id        text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    state          text NOT NULL CHECK (state IN ('online', 'unavailable', 'offline')),
    status_msg     text,
    chosen         boolean NOT NULL DEFAULT false,  -- the state was set by the user, not by syncing
    last_active_ts bigint NOT NULL,
    stream         bigint NOT NULL
);
CREATE INDEX presence_by_stream ON presence (stream);
CREATE INDEX presence_present ON presence (last_active_ts) WHERE state <> 'offline';

-- Reports of events, rooms and users, for the moderators.
CREATE TABLE reports (
    report_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('event', 'room', 'user')),
    reporter    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    room_id     text,              -- event and room reports
    event_id    text,              -- event reports
    user_id     text,              -- user reports; for an event report, its sender
    reason      text NOT NULL,
    score       integer,
    received_ts bigint NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
    handled_by  text,
    handled_ts  bigint,
    note        text
);
CREATE INDEX reports_by_status ON reports (status, report_id);
