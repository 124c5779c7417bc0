-- Rooms as append-only event logs.
--
-- Every event has a position in one global stream (events.stream), assigned
-- under a transaction-scoped advisory lock so that positions follow commit
-- order: once position N is visible, every position below N is too. Sync
-- tokens and pagination tokens are such positions.

CREATE TABLE rooms (
    -- Small integer id for the original /api surface, which names rooms by number.
    id            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    room_id       text PRIMARY KEY,
    room_version  text NOT NULL,
    creator       text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published     boolean NOT NULL DEFAULT false,  -- listed in the public room directory
    -- The newest event: the next event's prev_events and depth come from it.
    head_event_id text,
    head_depth    bigint NOT NULL DEFAULT 0,
    head_stream   bigint NOT NULL DEFAULT 0
);
CREATE INDEX rooms_published ON rooms (published) WHERE published;

CREATE SEQUENCE event_stream;

CREATE TABLE events (
    stream           bigint PRIMARY KEY,
    event_id         text NOT NULL UNIQUE,
    room_id          text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    type             text NOT NULL,
    state_key        text,
    sender           text NOT NULL,
    content          jsonb NOT NULL,
    origin_server_ts bigint NOT NULL,
    depth            bigint NOT NULL,
    prev_events      text[] NOT NULL,
    -- Server-side extras for clients: prev_content/prev_sender/replaces_state of state events.
    unsigned         jsonb NOT NULL DEFAULT '{}',
    redacts          text,           -- the target of an m.room.redaction
    redacted_by      text,           -- set when this event was redacted (its content is then pruned)
    txn_device       text,           -- the sending device and its transaction id,
    txn_id           text            -- echoed to that device only
);
-- /messages pages and room timelines: one index range scan per page.
CREATE INDEX events_by_room ON events (room_id, stream);
-- A user's membership history in a room, for history visibility.
CREATE INDEX events_membership_history ON events (room_id, state_key, stream) WHERE type = 'm.room.member';

CREATE TABLE current_state (
    room_id   text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    type      text NOT NULL,
    state_key text NOT NULL,
    event_id  text NOT NULL,
    stream    bigint NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Current membership, indexed both ways: a room's members and a user's rooms.
CREATE TABLE memberships (
    room_id    text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    membership text NOT NULL,
    event_id   text NOT NULL,
    stream     bigint NOT NULL,
    forgotten  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id, membership);

-- Idempotent sends: a retried transaction id maps to the event it made.
CREATE TABLE event_txns (
    user_id    text NOT NULL,
    device_id  text NOT NULL,
    txn_id     text NOT NULL,
    event_id   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE room_aliases (
    alias   text PRIMARY KEY,
    room_id text NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    creator text NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);
