-- Outliers: events this server holds without their place in the room's
-- history, the state and auth chain taken in when it joins a room (and auth
-- events fetched to judge others). They build the room's state and are served
-- to other servers, but history reads (/messages, /context, sync timelines)
-- leave them out: a reader paging back must not meet the room's create event
-- before the older history that backfill brings.
ALTER TABLE events ADD COLUMN outlier boolean NOT NULL DEFAULT false;
-- When backfill later takes in an outlier as part of the room's history, the
-- event moves to its backfilled position (storage.backfill): its search entry
-- follows it.
ALTER TABLE event_search DROP CONSTRAINT event_search_stream_fkey,
    ADD CONSTRAINT event_search_stream_fkey FOREIGN KEY (stream) REFERENCES events (stream)
        ON DELETE CASCADE ON UPDATE CASCADE;
