-- Typing notices live in each server process's memory and reach the other
-- processes by NOTIFY (storage/ephemeral.announce_typing): they are not
-- history and take no stream position. The table that held them is read
-- and written by nothing since; its indexes go with it.
DROP TABLE typing;
