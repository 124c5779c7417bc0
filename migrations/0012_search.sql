-- Full-text search of room messages, names and topics (POST /search).
--
-- One narrow row per searchable event, kept by triggers on events, so that
-- every way of writing events is indexed and the events table is unchanged.
-- The text searched is content.body of m.room.message, content.name of
-- m.room.name and content.topic of m.room.topic, as English (stemmed,
-- without stop words). A redaction prunes the content, and with it the row.

CREATE FUNCTION event_search_text(type text, content jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE type
        WHEN 'm.room.message' THEN content->>'body'
        WHEN 'm.room.name' THEN content->>'name'
        WHEN 'm.room.topic' THEN content->>'topic'
    END
$$;

CREATE TABLE event_search (
    stream  bigint PRIMARY KEY REFERENCES events (stream) ON DELETE CASCADE,
    room_id text NOT NULL,
    type    text NOT NULL,
    sender  text NOT NULL,
    vector  tsvector NOT NULL
);
CREATE INDEX event_search_vector ON event_search USING gin (vector);

-- Statement-level: one INSERT ... SELECT per statement that appends events,
-- however many it appends.
CREATE FUNCTION event_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_search (stream, room_id, type, sender, vector)
    SELECT stream, room_id, type, sender, to_tsvector('english', event_search_text(type, content))
      FROM appended WHERE event_search_text(type, content) IS NOT NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_search_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended FOR EACH STATEMENT EXECUTE FUNCTION event_search_insert();

-- A changed content (a redaction) is searched as it now is.
CREATE FUNCTION event_search_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_search s USING changed_old o, changed_new n
     WHERE s.stream = o.stream AND n.stream = o.stream AND n.content IS DISTINCT FROM o.content;
    INSERT INTO event_search (stream, room_id, type, sender, vector)
    SELECT n.stream, n.room_id, n.type, n.sender, to_tsvector('english', event_search_text(n.type, n.content))
      FROM changed_new n JOIN changed_old o USING (stream)
     WHERE n.content IS DISTINCT FROM o.content AND event_search_text(n.type, n.content) IS NOT NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_search_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION event_search_update();

INSERT INTO event_search (stream, room_id, type, sender, vector)
SELECT stream, room_id, type, sender, to_tsvector('english', event_search_text(type, content))
  FROM events WHERE event_search_text(type, content) IS NOT NULL;
