-- Events as federation PDUs.
--
-- An event of a room made from now on is a full PDU: content hash,
-- signatures, auth_events, and an event id that is its reference hash. The
-- PDU as other servers see it (no "unsigned", no "event_id") is kept whole
-- in events.pdu, so it is served back byte for byte. Rooms made before keep
-- their random event ids, have no PDUs and stay local (rooms.pdus false).
ALTER TABLE rooms ADD COLUMN pdus boolean NOT NULL DEFAULT false;
-- The room's forward extremities: the events no other event of the room
-- names in prev_events yet. A local event cites them all; received events
-- can fork the room, so there may be more than one.
ALTER TABLE rooms ADD COLUMN extremities text[] NOT NULL DEFAULT '{}';
ALTER TABLE events ADD COLUMN pdu jsonb;
-- A room known only by an invite of a local user from another server: it
-- holds that invite alone until the user joins through that server.
ALTER TABLE rooms ADD COLUMN stub boolean NOT NULL DEFAULT false;
