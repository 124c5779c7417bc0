-- Reads of rooms' history: search leaves outliers out; the redactions of an
-- event and a room's history visibility settings are found by index.

-- Outliers (migration 0020) have no place in a room's history, so search,
-- which reads history, must not find them: a room's name or topic taken in
-- on joining would otherwise be found at the join's position. They get a
-- search entry when backfill places them in the history (outlier set to
-- false), at the position they take there.

CREATE OR REPLACE FUNCTION event_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_search (stream, room_id, type, sender, vector)
    SELECT stream, room_id, type, sender, to_tsvector('english', event_search_text(type, content))
      FROM appended WHERE NOT outlier AND event_search_text(type, content) IS NOT NULL;
    RETURN NULL;
END
$$;

-- A changed content (a redaction) is searched as it now is; an outlier
-- placed in the history is searched from then on. Old and new rows pair by
-- event id: placing an outlier changes its position.
CREATE OR REPLACE FUNCTION event_search_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_search s USING changed_old o JOIN changed_new n USING (event_id)
     WHERE s.stream = n.stream AND n.content IS DISTINCT FROM o.content;
    INSERT INTO event_search (stream, room_id, type, sender, vector)
    SELECT n.stream, n.room_id, n.type, n.sender, to_tsvector('english', event_search_text(n.type, n.content))
      FROM changed_new n JOIN changed_old o USING (event_id)
     WHERE NOT n.outlier AND (n.content IS DISTINCT FROM o.content OR o.outlier)
       AND event_search_text(n.type, n.content) IS NOT NULL;
    RETURN NULL;
END
$$;

DELETE FROM event_search s USING events e WHERE e.stream = s.stream AND e.outlier;

-- The redactions naming an event, found when that event arrives after them
-- (backfill takes in history newest first, a redaction before its target).
CREATE INDEX events_by_redacts ON events (redacts) WHERE redacts IS NOT NULL;

-- The room's history visibility settings, all of them: another server's read
-- of a room judges each event by the setting in force when it was sent.
CREATE INDEX events_history_visibility ON events (room_id, stream) WHERE type = 'm.room.history_visibility';
