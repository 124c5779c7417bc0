-- Where a user's current membership began: a display name change re-sends
-- the join event, which must not look like joining anew (unread counts
-- start at the joining).
ALTER TABLE memberships ADD COLUMN since_stream bigint;
UPDATE memberships SET since_stream = stream;
ALTER TABLE memberships ALTER COLUMN since_stream SET NOT NULL;
