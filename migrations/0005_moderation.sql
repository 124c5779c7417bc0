-- Moderation: the server's own settings (such as which room is the
-- moderation policy room) and deleted rooms.

CREATE TABLE server_state (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- A deleted room keeps its row (unless purged) but is gone for users.
ALTER TABLE rooms ADD COLUMN deleted boolean NOT NULL DEFAULT false;
