-- What the push rules decided: one row per event and member it notifies
-- (events that notify nobody leave no rows). Written by the persister in
-- the transaction that appends the events; unread notification and
-- highlight counts in /sync and GET /notifications read it. Rows of purged
-- events are skipped by joining events, so no cascade is kept.
CREATE TABLE event_push_actions (
    user_id   text NOT NULL,
    room_id   text NOT NULL,
    stream    bigint NOT NULL,          -- the event's position
    highlight boolean NOT NULL,
    actions   jsonb NOT NULL,           -- the matching rule's actions
    PRIMARY KEY (user_id, room_id, stream)
);
-- GET /notifications: a user's notifications, newest first, in all rooms.
CREATE INDEX event_push_actions_by_user ON event_push_actions (user_id, stream);

-- Pushers (POST /pushers/set): where a push gateway is to be told of a
-- user's notifications. Kept and listed; this server sends no pushes yet.
CREATE TABLE pushers (
    user_id             text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    app_id              text NOT NULL,
    pushkey             text NOT NULL,
    kind                text NOT NULL,
    app_display_name    text NOT NULL,
    device_display_name text NOT NULL,
    profile_tag         text,
    lang                text NOT NULL,
    data                jsonb NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX pushers_by_user ON pushers (user_id);
