"""Relations between events, read through the expression indexes of
migration 0013 on ``content -> 'm.relates_to'``: nothing extra is written
when an event is sent, and a redaction (which prunes the content) removes
the relation from the index by itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..db import Database
from .events import Event, _columns, as_event, as_events, event_of

# The parent and the relation type of an event, as the indexes spell them.
_PARENT = "(content->'m.relates_to'->>'event_id')"
_REL_TYPE = "(content->'m.relates_to'->>'rel_type')"

# In the history (not an outlier: the state taken in on joining a room has
# no place in it until backfill places it), inside the visible stretches
# (unnest of two arrays of bounds).
_VISIBLE = (
    "NOT {alias}outlier AND EXISTS (SELECT 1 FROM unnest({lo}::bigint[], {hi}::bigint[]) r(lo, hi)"
    " WHERE {alias}stream >= r.lo AND (r.hi IS NULL OR {alias}stream <= r.hi))"
)


def _visible(lo: str, hi: str, alias: str = "") -> str:
    return _VISIBLE.format(lo=lo, hi=hi, alias=alias)


async def children(
    db: Database,
    room_id: str,
    event_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    after: int | None,
    before: int | None,
    backwards: bool,
    limit: int,
    ranges: Sequence[tuple[int, int | None]],
    depth: int = 1,
) -> list[Event]:
    """Up to ``limit`` events relating to ``event_id`` (with ``depth`` > 1,
    also events relating to those, and so on), with after < stream <=
    before, inside the visible ``ranges``, newest first when ``backwards``.
    The type filters hold for every event on the way, not just the last."""
    order = "DESC" if backwards else "ASC"
    rows = await db.fetch(
        "WITH RECURSIVE tree (event_id, depth) AS ("
        f"  SELECT event_id, 1 FROM events WHERE room_id = $1 AND {_PARENT} = $2"
        f"   AND ($3::text IS NULL OR {_REL_TYPE} = $3) AND ($4::text IS NULL OR type = $4)"
        "  UNION"
        "  SELECT e.event_id, t.depth + 1 FROM tree t JOIN events e"
        f"   ON e.room_id = $1 AND (e.content->'m.relates_to'->>'event_id') = t.event_id"
        "   WHERE t.depth < $5 AND ($3::text IS NULL OR (e.content->'m.relates_to'->>'rel_type') = $3)"
        "   AND ($4::text IS NULL OR e.type = $4)"
        ")"
        f" SELECT {_columns('e')} FROM events e WHERE e.event_id IN (SELECT event_id FROM tree)"
        " AND ($6::bigint IS NULL OR e.stream > $6) AND ($7::bigint IS NULL OR e.stream <= $7)"
        f" AND {_visible('$8', '$9', 'e.')}"
        f" ORDER BY e.stream {order} LIMIT $10",
        room_id,
        event_id,
        rel_type,
        event_type,
        depth,
        after,
        before,
        [r[0] for r in ranges],
        [r[1] for r in ranges],
        limit,
    )
    return as_events(rows)


# Per parent: the thread's size, latest event and the reader's part in it;
# the most recent valid edit (same sender and type as the parent, which is
# no state event and no edit itself; carrying m.new_content; most recent by
# origin_server_ts, then event id); the ids of referring events. Children
# the reader may not see count for nothing.
_AGGREGATES = f"""
WITH kids AS (
    SELECT stream, event_id, sender, type, origin_server_ts, content ? 'm.new_content' AS has_new,
           {_PARENT} AS parent, {_REL_TYPE} AS rel_type
    FROM events
    WHERE room_id = $1 AND {_PARENT} = ANY($2::text[]) AND {_REL_TYPE} = ANY($3::text[])
      AND {_visible("$4", "$5")}
), threads AS (
    SELECT k.parent, max(k.stream) AS latest, count(*) AS n,
           bool_or(k.sender = $6) OR bool_or(p.sender = $6) AS participated
    FROM kids k JOIN events p ON p.event_id = k.parent
    WHERE k.rel_type = 'm.thread' GROUP BY k.parent
), edits AS (
    SELECT DISTINCT ON (k.parent) k.parent, k.stream
    FROM kids k JOIN events p ON p.event_id = k.parent
    WHERE k.rel_type = 'm.replace' AND k.has_new AND p.room_id = $1 AND p.sender = k.sender
      AND p.type = k.type AND p.state_key IS NULL
      AND (p.content->'m.relates_to'->>'rel_type') IS DISTINCT FROM 'm.replace'
    ORDER BY k.parent, k.origin_server_ts DESC, k.event_id DESC
)
SELECT 'm.thread' AS rel_type, t.parent, t.n AS count, t.participated, NULL::text[] AS event_ids,
       to_jsonb(e) AS event
FROM threads t JOIN events e ON e.stream = t.latest
UNION ALL
SELECT 'm.replace', d.parent, NULL, NULL, NULL, to_jsonb(e) FROM edits d JOIN events e ON e.stream = d.stream
UNION ALL
SELECT 'm.reference', parent, NULL, NULL, array_agg(event_id ORDER BY stream), NULL
FROM kids WHERE rel_type = 'm.reference' GROUP BY parent
"""


async def aggregates(
    db: Database,
    room_id: str,
    parents: Sequence[str],
    *,
    rel_types: Sequence[str],
    ranges: Sequence[tuple[int, int | None]],
    user_id: str,
) -> list[dict[str, Any]]:
    """The aggregates of the ``parents`` (as events.relations.bundle takes
    them), in one round trip; an ``event`` comes back as an Event."""
    if not parents:
        return []
    rows = await db.fetch(
        _AGGREGATES, room_id, list(parents), list(rel_types), [r[0] for r in ranges], [r[1] for r in ranges], user_id
    )
    return [{**dict(row), "event": None if row["event"] is None else event_of(row["event"])} for row in rows]


class ThreadRoot(NamedTuple):
    """A thread's root event, and the position of the thread's latest event."""

    event: Event
    activity: int


async def thread_roots(
    db: Database,
    room_id: str,
    *,
    before: int | None,
    limit: int,
    ranges: Sequence[tuple[int, int | None]],
    participant: str | None,
) -> list[ThreadRoot]:
    """The room's thread roots, by latest activity newest first (each with
    ``activity``, the position of its latest thread event the reader may see),
    those whose latest activity is at or below ``before``; with
    ``participant``, only threads that user started or wrote in."""
    rows = await db.fetch(
        "WITH threads AS ("
        f"  SELECT {_PARENT} AS root, max(stream) AS activity,"
        "    bool_or(sender = $5) AS wrote FROM events"
        f"  WHERE room_id = $1 AND {_REL_TYPE} = 'm.thread' AND {_visible('$3', '$4')}"
        "  GROUP BY 1"
        ")"
        f" SELECT {_columns('e')}, t.activity FROM threads t JOIN events e ON e.event_id = t.root"
        " WHERE e.room_id = $1 AND ($2::bigint IS NULL OR t.activity <= $2)"
        f" AND {_visible('$3', '$4', 'e.')}"
        " AND ($5::text IS NULL OR t.wrote OR e.sender = $5)"
        " ORDER BY t.activity DESC LIMIT $6",
        room_id,
        before,
        [r[0] for r in ranges],
        [r[1] for r in ranges],
        participant,
        limit,
    )
    return [ThreadRoot(as_event(tuple(row)[:-1]), row["activity"]) for row in rows]
