"""History taken from other servers (backfill): where a room's history here
begins, and the insert that puts older events before it.

Backfilled events are history only: they take positions below every
position the room had (the countdown sequence of migration 0019), and the
insert touches nothing else — not the room's head, forward extremities or
current state, not memberships, and it announces nothing — so sync, the
stream and the notifier, which read forward from the global stream, never
see them as new.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..db import Database

# The first key of the two-key advisory lock that serialises backfill inserts
# per room ("Bfil"), apart from the outbox's and any other advisory locks.
BACKFILL_LOCK_SPACE = 0x4266696C


async def joined_at_depth(db: Database, room_id: str, server_name: str) -> int | None:
    """The depth of the first join of one of this server's users to the
    room: where this server's own timeline of the room begins (None: none of
    its users ever joined). Backfill fills the history before it; a gap
    after it belongs to the forward history (get_missing_events), never to
    backfill."""
    return await db.fetchval(
        "SELECT min(depth) FROM events WHERE room_id = $1 AND stream > 0 AND type = 'm.room.member'"
        " AND content->>'membership' = 'join' AND substr(state_key, strpos(state_key, ':') + 1) = $2",
        room_id,
        server_name,
    )


async def backward_extremities(db: Database, room_id: str, up_to_depth: int, limit: int) -> list[str]:
    """Events that the room's events here up to ``up_to_depth`` (the
    server's first join) cite as prev events but that this server has never
    judged (neither holds nor refused): where its history of the room
    begins. Those cited by the oldest events come first."""
    rows = await db.fetch(
        "SELECT p.value AS event_id FROM events e, jsonb_array_elements_text(e.pdu->'prev_events') p"
        " WHERE e.room_id = $1 AND e.pdu IS NOT NULL AND e.depth <= $2"
        " AND NOT EXISTS (SELECT 1 FROM events x WHERE x.event_id = p.value)"
        " AND NOT EXISTS (SELECT 1 FROM refused_events r WHERE r.event_id = p.value)"
        " GROUP BY p.value ORDER BY min(e.stream) LIMIT $3",
        room_id,
        up_to_depth,
        limit,
    )
    return [row["event_id"] for row in rows]


async def lowest_position(db: Database, room_id: str) -> int | None:
    """The position of the room's oldest event here (None: it has none)."""
    return await db.fetchval("SELECT min(stream) FROM events WHERE room_id = $1", room_id)


# The events come as one JSON array, newest first; positions are taken from
# the countdown sequence and paired with them in that order (the newest gets
# the highest, closest to the positions already held), whatever order
# PostgreSQL evaluates nextval() in. Events held or refused already are left
# out before positions are taken.
_INSERT_HISTORY = """
WITH input AS (
    SELECT value AS ev, row_number() OVER (ORDER BY ord) AS n
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(value, ord)
    WHERE NOT EXISTS (SELECT 1 FROM events x WHERE x.event_id = value->>'event_id')
      AND NOT EXISTS (SELECT 1 FROM refused_events r WHERE r.event_id = value->>'event_id')
), taken AS (
    SELECT stream, row_number() OVER (ORDER BY stream DESC) AS n
    FROM (SELECT nextval('event_backfill_stream') AS stream FROM input) s
)
INSERT INTO events (stream, event_id, room_id, type, state_key, sender, content, origin_server_ts,
                    depth, prev_events, unsigned, redacts, pdu)
SELECT taken.stream, ev->>'event_id', $2, ev->>'type', ev->>'state_key', ev->>'sender',
       ev->'content', (ev->>'origin_server_ts')::bigint, (ev->>'depth')::bigint,
       ARRAY(SELECT jsonb_array_elements_text(ev->'prev_events')), '{}'::jsonb, ev->>'redacts', ev->'pdu'
FROM input JOIN taken USING (n)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id, stream
"""


async def lock_history(conn: Database, room_id: str) -> None:
    """Takes the room's backfill lock for the caller's transaction: two
    backfills of one room at once (in any process) insert one after the
    other, the second finding the first's events held."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", BACKFILL_LOCK_SPACE, room_id)


async def insert_history(conn: Database, room_id: str, events: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Puts the events (newest first; each with event_id, type, state_key,
    sender, content, origin_server_ts, depth, prev_events, redacts and pdu)
    before everything the room holds; call it under ``lock_history``.
    Returns event id -> position of those inserted."""
    rows = await conn.fetch(_INSERT_HISTORY, list(events), room_id)
    return {row["event_id"]: row["stream"] for row in rows}


async def origin_memberships(db: Database, room_id: str, server_name: str) -> list[list[tuple[int, str]]]:
    """Each of the server's users' membership history in the room, as
    (position, membership) oldest first: what the server may see of it."""
    rows = await db.fetch(
        "SELECT state_key, array_agg(ARRAY[stream::text, content->>'membership'] ORDER BY stream) AS history"
        " FROM events WHERE room_id = $1 AND type = 'm.room.member'"
        " AND substr(state_key, strpos(state_key, ':') + 1) = $2 GROUP BY state_key",
        room_id,
        server_name,
    )
    return [[(int(stream), membership) for stream, membership in row["history"]] for row in rows]


async def history_visibility(db: Database, room_id: str) -> str | None:
    """The room's current history_visibility setting (None when unset)."""
    return await db.fetchval(
        "SELECT e.content->>'history_visibility' FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.room_id = $1 AND cs.type = 'm.room.history_visibility' AND cs.state_key = ''",
        room_id,
    )


async def earliest_position(db: Database) -> int:
    """The lowest position of any event: below 0 once some history was
    backfilled (then the low end of a search of all history)."""
    return int(await db.fetchval("SELECT COALESCE(min(stream), 0) FROM events"))
