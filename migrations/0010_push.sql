-- What the push rules decided for each event, kept small. On the event
-- itself, the outcome for a member with the default rules whom nothing in
-- the event names (push_actions NULL: such a member is not notified); in
-- event_push_actions, the members whose outcome differs (mentioned, invited,
-- or with rules of their own; notify false where they are not notified
-- after all). Written by the statement that appends the events; /sync's
-- notification and highlight counts and GET /notifications read them. Rows
-- of purged events are skipped by joining events, so no cascade is kept.
ALTER TABLE events ADD COLUMN push_actions jsonb;
ALTER TABLE events ADD COLUMN push_highlight boolean NOT NULL DEFAULT false;

CREATE TABLE event_push_actions (
    user_id   text NOT NULL,
    room_id   text NOT NULL,
    stream    bigint NOT NULL,          -- the event's position
    notify    boolean NOT NULL,
    highlight boolean NOT NULL,
    actions   jsonb NOT NULL,           -- the matching rule's actions
    PRIMARY KEY (user_id, room_id, stream)
);
-- GET /notifications: a user's own outcomes, newest first, in all rooms.
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
