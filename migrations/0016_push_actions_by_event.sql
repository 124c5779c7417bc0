-- The notifier reads the push outcomes of the events other server processes
-- wrote (storage.sync.events_between) by event position: one index probe
-- per event instead of a scan of every member's outcomes.
CREATE INDEX event_push_actions_by_stream ON event_push_actions (stream);
