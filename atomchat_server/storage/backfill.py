"""History taken from other servers (backfill): where a room's history here
begins, and the insert that puts older events before it.

Backfilled events are history only: they take positions below every
position the room had (the countdown sequence of migration 0019), and the
insert touches nothing else — not the room's head, forward extremities or
current state, not memberships, and it announces nothing — so sync, the
stream and the notifier, which read forward from the global stream, never
see them as new. An event held as an outlier (the state and auth chain
taken in on joining, which history reads leave out) is not inserted again
when backfill brings it: it moves to its place in the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..db import Database
from .events import Event, _columns, as_event

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


async def former_servers(db: Database, room_id: str, limit: int) -> list[str]:
    """Servers whose users joined the room at some point (by the member
    events held), those that joined first first: who may hold its early
    history, whether or not they are in it now."""
    rows = await db.fetch(
        "SELECT substr(state_key, strpos(state_key, ':') + 1) AS server FROM events"
        " WHERE room_id = $1 AND type = 'm.room.member' AND content->>'membership' = 'join'"
        " GROUP BY 1 ORDER BY min(stream), 1 LIMIT $2",
        room_id,
        limit,
    )
    return [row["server"] for row in rows]


async def backward_extremities(db: Database, room_id: str, up_to_depth: int, limit: int) -> list[str]:
    """Events that the room's history here up to ``up_to_depth`` (the
    server's first join) cites as prev events but that this server has never
    judged (neither holds nor refused) or holds only as outliers: where its
    history of the room begins. Those cited by the oldest events come first."""
    rows = await db.fetch(
        "SELECT p.value AS event_id FROM events e, jsonb_array_elements_text(e.pdu->'prev_events') p"
        " WHERE e.room_id = $1 AND e.pdu IS NOT NULL AND NOT e.outlier AND e.depth <= $2"
        " AND NOT EXISTS (SELECT 1 FROM events x WHERE x.event_id = p.value AND NOT x.outlier)"
        " AND NOT EXISTS (SELECT 1 FROM refused_events r WHERE r.event_id = p.value)"
        " GROUP BY p.value ORDER BY min(e.stream) LIMIT $3",
        room_id,
        up_to_depth,
        limit,
    )
    return [row["event_id"] for row in rows]


async def lowest_position(db: Database, room_id: str) -> int | None:
    """The position of the oldest event of the room's history here (None:
    it has none)."""
    return await db.fetchval("SELECT min(stream) FROM events WHERE room_id = $1 AND NOT outlier", room_id)


# The events come as one JSON array, newest first; positions are taken from
# the countdown sequence and paired with them in that order (the newest gets
# the highest, closest to the positions already held), whatever order
# PostgreSQL evaluates nextval() in. Events refused, or held with their place
# in the history, are left out before positions are taken. An outlier held
# (taken in on joining the room) is not inserted again but moved to its
# position and made part of the history: it is indexed for search from then
# on (migration 0022). The current state and membership rows naming it
# keep theirs: the position at which that state became this server's.
_INSERT_HISTORY = """
WITH input AS (
    SELECT value AS ev, row_number() OVER (ORDER BY ord) AS n
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(value, ord)
    WHERE NOT EXISTS (SELECT 1 FROM events x WHERE x.event_id = value->>'event_id' AND NOT x.outlier)
      AND NOT EXISTS (SELECT 1 FROM refused_events r WHERE r.event_id = value->>'event_id')
), taken AS (
    SELECT stream, row_number() OVER (ORDER BY stream DESC) AS n
    FROM (SELECT nextval('event_backfill_stream') AS stream FROM input) s
), placed AS (
    SELECT input.ev, taken.stream FROM input JOIN taken USING (n)
), moved AS (
    UPDATE events e SET stream = placed.stream, outlier = false
    FROM placed WHERE e.event_id = placed.ev->>'event_id' AND e.room_id = $2 AND e.outlier
    RETURNING e.event_id, e.stream
), added AS (
    INSERT INTO events (stream, event_id, room_id, type, state_key, sender, content, origin_server_ts,
                        depth, prev_events, unsigned, redacts, pdu)
    SELECT stream, ev->>'event_id', $2, ev->>'type', ev->>'state_key', ev->>'sender',
           ev->'content', (ev->>'origin_server_ts')::bigint, (ev->>'depth')::bigint,
           ARRAY(SELECT jsonb_array_elements_text(ev->'prev_events')), '{}'::jsonb, ev->>'redacts', ev->'pdu'
    FROM placed WHERE NOT EXISTS (SELECT 1 FROM events x WHERE x.event_id = ev->>'event_id')
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, stream
)
SELECT event_id, stream FROM moved UNION ALL SELECT event_id, stream FROM added
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
    Returns event id -> position of those inserted or placed (outliers)."""
    rows = await conn.fetch(_INSERT_HISTORY, list(events), room_id)
    return {row["event_id"]: row["stream"] for row in rows}


class RedactionPair(NamedTuple):
    """A redaction held in a room's history and the event it names."""

    redaction: Event
    auth_events: list[str]  # the redaction's: the state it was sent in
    target: Event


async def redaction_pairs(db: Database, room_id: str, event_ids: Sequence[str]) -> list[RedactionPair]:
    """The room's redactions whose target it holds unredacted, either of
    the two among ``event_ids``, both in the history (not outliers)."""
    width = len(Event._fields) - 1  # the columns _columns reads: all but push
    rows = await db.fetch(
        f"SELECT {_columns('r')}, r.pdu->'auth_events' AS auth_events, {_columns('t')}"
        " FROM events r JOIN events t ON t.event_id = r.redacts AND t.room_id = r.room_id"
        " WHERE r.room_id = $1 AND r.redacts IS NOT NULL AND NOT r.outlier AND NOT t.outlier"
        " AND t.redacted_by IS NULL AND (r.event_id = ANY($2::text[]) OR r.redacts = ANY($2::text[]))",
        room_id,
        list(event_ids),
    )
    return [
        RedactionPair(as_event(tuple(row)[:width]), list(row["auth_events"] or []), as_event(tuple(row)[width + 1 :]))
        for row in rows
    ]


async def outliers(db: Database, room_id: str, event_ids: Sequence[str]) -> set[str]:
    """Those of the events the room holds as outliers (no place in its history yet)."""
    rows = await db.fetch(
        "SELECT event_id FROM events WHERE room_id = $1 AND outlier AND event_id = ANY($2::text[])",
        room_id,
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


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


class SettingChange(NamedTuple):
    """One m.room.history_visibility event of a room (a named tuple: what
    events.visibility.server_sees takes)."""

    stream: int
    depth: int
    setting: str  # "" when the content names none (then read as the default)
    outlier: bool


async def visibility_changes(db: Database, room_id: str) -> list[SettingChange]:
    """Every history_visibility event the room holds, oldest first, outliers
    included: which setting was in force at each of its events."""
    rows = await db.fetch(
        "SELECT stream, depth, COALESCE(content->>'history_visibility', '') AS setting, outlier FROM events"
        " WHERE room_id = $1 AND type = 'm.room.history_visibility' AND state_key = '' ORDER BY stream",
        room_id,
    )
    return [SettingChange(*row) for row in rows]


async def earliest_position(db: Database) -> int:
    """The lowest position of any event: below 0 once some history was
    backfilled (then the low end of a search of all history)."""
    return int(await db.fetchval("SELECT COALESCE(min(stream), 0) FROM events"))
