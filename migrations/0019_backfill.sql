-- History taken from other servers (backfill) goes before everything this
-- server held: its events take positions from a second sequence that counts
-- down from -1, so each batch lands before the one taken before it, and
-- every position below 0 is an event older than the room's first one here.
-- The global stream (event_stream) never hands these out: sync and the
-- notifier, which read forward from positions >= 0, never see them.
CREATE SEQUENCE event_backfill_stream INCREMENT BY -1 MAXVALUE -1 START WITH -1;
