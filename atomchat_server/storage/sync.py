"""Queries that assemble /sync responses and feed the notifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..db import Database
from . import events as event_store
from .events import (
    EVENT_COLUMNS,
    MEMBERSHIP_COLUMNS,
    VISIBILITY_SETTINGS,
    Event,
    Membership,
    as_events,
    visibility_settings,
)

_PUSH_AT = len(Event._fields) - 1  # an Event's fields before push


async def events_between(db: Database, after: int, upto: int) -> list[Event]:
    """Every event with after < stream <= upto, in stream order, each with
    ``push``: what push rules decided for it, as services.push made it when
    it was written (the default members' outcome and the members who fare
    otherwise). The notifier reads other processes' events here, and with
    their outcomes the sync fast path keeps unread counts up in memory for
    them as for its own process's events, instead of counting again in the
    database for every client that follows the room."""
    rows = await db.fetch(
        f"SELECT {_E_COLUMNS}, e.push_actions, e.push_highlight,"
        " (SELECT jsonb_agg(jsonb_build_array(pa.user_id, pa.notify, pa.highlight, pa.actions)"
        "                   ORDER BY pa.user_id)"
        "    FROM event_push_actions pa WHERE pa.stream = e.stream) AS push_own"
        " FROM events e WHERE e.stream > $1 AND e.stream <= $2 ORDER BY e.stream",
        after,
        upto,
    )
    return [
        Event._make(
            (
                *tuple(row)[:_PUSH_AT],
                {
                    "default": None if row["push_actions"] is None else [row["push_highlight"], row["push_actions"]],
                    "own": row["push_own"] or [],
                },
            )
        )
        for row in rows
    ]


async def user_memberships(db: Database, user_id: str) -> list[Membership]:
    """The user's current membership in every room they have one in."""
    rows = await db.fetch(
        f"SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY stream",
        user_id,
    )
    return [Membership(**dict(row)) for row in rows]


async def rooms_changed_since(db: Database, room_ids: Sequence[str], after: int) -> list[str]:
    """Which of these rooms have events after the position (one index probe per room)."""
    rows = await db.fetch(
        "SELECT room_id FROM rooms WHERE room_id = ANY($1::text[]) AND head_stream > $2", list(room_ids), after
    )
    return [row["room_id"] for row in rows]


async def timeline(
    db: Database,
    room_id: str,
    *,
    after: int | None,
    upto: int,
    limit: int,
    ranges: Sequence[tuple[int, int | None]] = ((0, None),),
    **filters: Any,
) -> tuple[list[Event], bool]:
    """The newest ``limit`` events in (after, upto], oldest first, and whether
    there were more (the timeline is limited). ``filters`` as for events.page."""
    rows = await event_store.page(
        db, room_id, after=after, before=upto, backwards=True, limit=limit + 1, ranges=ranges, **filters
    )
    limited = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return rows, limited


async def state_changes(db: Database, room_id: str, *, after: int, before: int) -> list[Event]:
    """The latest state event per key among those with after < stream < before."""
    rows = await db.fetch(
        f"SELECT * FROM (SELECT DISTINCT ON (type, state_key) {EVENT_COLUMNS} FROM events"
        " WHERE room_id = $1 AND state_key IS NOT NULL AND stream > $2 AND stream < $3"
        " ORDER BY type, state_key, stream DESC) s ORDER BY stream",
        room_id,
        after,
        before,
    )
    return as_events(rows)


async def member_counts(db: Database, room_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per room, (joined, invited) member counts."""
    rows = await db.fetch(
        "SELECT room_id, count(*) FILTER (WHERE membership = 'join') AS joined,"
        " count(*) FILTER (WHERE membership = 'invite') AS invited FROM memberships"
        " WHERE room_id = ANY($1::text[]) GROUP BY room_id",
        list(room_ids),
    )
    return {row["room_id"]: (row["joined"], row["invited"]) for row in rows}


# -- a full view of many rooms at once (initial sync) ----------------------------------

_E_COLUMNS = ", ".join(f"e.{column.strip()}" for column in EVENT_COLUMNS.split(","))


async def read_access(
    db: Database, room_ids: Sequence[str], user_id: str
) -> dict[str, tuple[list[tuple[int, str]], list[tuple[int, str]]]]:
    """Per room: its history visibility settings as (stream, setting) and
    the user's membership history as (stream, membership), both oldest
    first (events.ranges_in_force reads them)."""
    rows = await db.fetch(
        "SELECT r.room_id,"
        f" {VISIBILITY_SETTINGS.format(room='r.room_id')} AS settings,"
        " ARRAY(SELECT ARRAY[stream::text, content->>'membership'] FROM events"
        "   WHERE room_id = r.room_id AND type = 'm.room.member' AND state_key = $2 ORDER BY stream) AS history"
        " FROM unnest($1::text[]) r(room_id)",
        list(room_ids),
        user_id,
    )
    return {
        row["room_id"]: (
            visibility_settings(row["settings"]),
            [(int(stream), membership) for stream, membership in row["history"]],
        )
        for row in rows
    }


async def timelines(
    db: Database,
    rooms: Sequence[tuple[str, Sequence[tuple[int, int | None]]]],
    *,
    after: int | None = None,
    upto: int,
    limit: int,
    types: Sequence[str] | None = None,
    not_types: Sequence[str] | None = None,
    senders: Sequence[str] | None = None,
    not_senders: Sequence[str] | None = None,
) -> dict[str, tuple[list[Event], bool]]:
    """timeline() of many rooms in one round trip: per room (with its own
    visible ranges), the newest ``limit`` events in (after, upto], oldest
    first, and whether there were more. Each room's ranges travel as one
    multirange, tested per row; ``after`` bounds the index range scan (a
    position below every other when there is none), so that an incremental
    sync reads each room's new events only, whatever plan the statement has.

    The multirange test is wrapped in COALESCE (a no-op: neither side is
    ever NULL) for the planner's sake: it cannot estimate a containment in
    a per-row multirange and guesses that almost no event passes, so it
    reads all of a room's events up to ``upto`` and sorts them; a COALESCE
    is guessed to keep half, and the plan walks the room's index backwards
    from ``upto``, stopping at the limit."""
    room_ids = [room_id for room_id, _ in rooms]
    rows = await db.fetch(
        "SELECT t.* FROM unnest($1::text[], $2::text[]) r(room, ranges) CROSS JOIN LATERAL ("
        f" SELECT {EVENT_COLUMNS} FROM events"
        "  WHERE room_id = r.room AND stream <= $3 AND stream > COALESCE($4::bigint, '-9223372036854775808'::bigint)"
        "  AND COALESCE(stream <@ r.ranges::int8multirange, false)"
        "  AND ($5::text[] IS NULL OR type LIKE ANY($5))"
        "  AND ($6::text[] IS NULL OR NOT type LIKE ANY($6))"
        "  AND ($7::text[] IS NULL OR sender = ANY($7))"
        "  AND ($8::text[] IS NULL OR NOT sender = ANY($8)) AND NOT outlier"
        "  ORDER BY stream DESC LIMIT $9) t",
        room_ids,
        [_multirange(ranges) for _, ranges in rooms],
        upto,
        after,
        types,
        not_types,
        senders,
        not_senders,
        limit + 1,
    )
    found: dict[str, list[Event]] = {room_id: [] for room_id in room_ids}
    for event in as_events(rows):
        found[event.room_id].append(event)
    result: dict[str, tuple[list[Event], bool]] = {}
    for room_id, room_rows in found.items():
        limited = len(room_rows) > limit
        room_rows = room_rows[:limit]
        room_rows.reverse()
        result[room_id] = (room_rows, limited)
    return result


def _multirange(ranges: Sequence[tuple[int, int | None]]) -> str:
    """Visible ranges (inclusive bounds, None: open) as an int8multirange
    literal; an empty range (high below low), which holds nothing, is left out."""
    return (
        "{"
        + ",".join(f"[{low},{'' if high is None else high}]" for low, high in ranges if high is None or high >= low)
        + "}"
    )


async def current_states(
    db: Database, room_ids: Sequence[str], members: dict[str, Sequence[str]] | None = None
) -> dict[str, list[Event]]:
    """The current state of many rooms, per room in stream order; with
    ``members``, of the m.room.member events only those of the users it
    names for each room. Each event is one probe of the events' id index
    (a lateral subquery, its LIMIT a no-op on a unique key, which the planner
    cannot turn into a hash join reading every event of the database, as it
    did where the tables had no statistics yet)."""
    wanted = [(room_id, user_id) for room_id, user_ids in (members or {}).items() for user_id in user_ids]
    rows = await db.fetch(
        "SELECT e.* FROM current_state cs"
        f" CROSS JOIN LATERAL (SELECT {EVENT_COLUMNS} FROM events WHERE event_id = cs.event_id LIMIT 1) e"
        " WHERE cs.room_id = ANY($1::text[]) AND (NOT $2 OR cs.type <> 'm.room.member'"
        "   OR (cs.room_id, cs.state_key) IN (SELECT * FROM unnest($3::text[], $4::text[])))"
        " ORDER BY e.stream",
        list(room_ids),
        members is not None,
        [pair[0] for pair in wanted],
        [pair[1] for pair in wanted],
    )
    result: dict[str, list[Event]] = {room_id: [] for room_id in room_ids}
    for event in as_events(rows):
        result[event.room_id].append(event)
    return result


async def state_events_before(
    db: Database, keys: Sequence[tuple[str, str, str, int]]
) -> dict[tuple[str, str, str], Event]:
    """For each (room, type, state_key, position): the newest such state
    event at or below the position (keys with none are absent).

    Member keys (lazily loaded members, inviters: most of them) name their
    type as a constant, so that each is one probe of the members' history
    index (events_membership_history); with the type a column of the keys,
    no plan can use that partial index, and each key walked its room's
    events back from the position."""
    rows = await db.fetch(
        "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) k(room, type, key, at))"
        f" SELECT t.* FROM k CROSS JOIN LATERAL (SELECT {EVENT_COLUMNS} FROM events"
        "   WHERE room_id = k.room AND type = 'm.room.member' AND state_key = k.key AND stream <= k.at"
        "   ORDER BY stream DESC LIMIT 1) t WHERE k.type = 'm.room.member'"
        f" UNION ALL SELECT t.* FROM k CROSS JOIN LATERAL (SELECT {EVENT_COLUMNS} FROM events"
        "   WHERE room_id = k.room AND type = k.type AND state_key = k.key AND stream <= k.at"
        "   ORDER BY stream DESC LIMIT 1) t WHERE k.type <> 'm.room.member'",
        [key[0] for key in keys],
        [key[1] for key in keys],
        [key[2] for key in keys],
        [key[3] for key in keys],
    )
    return {(event.room_id, event.type, event.key): event for event in as_events(rows)}


async def events_by_id(db: Database, event_ids: Sequence[str]) -> dict[str, Event]:
    """Many events by id, in one query (unknown ids are absent)."""
    rows = await db.fetch(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ANY($1::text[])", list(event_ids))
    return {event.event_id: event for event in as_events(rows)}


async def with_relations(db: Database, events: Sequence[tuple[str, str]]) -> set[str]:
    """Of these (room, event id) pairs, the events that others relate to:
    one probe of the relations index per pair (a lateral subquery with a
    limit, which the planner cannot turn into a hash join over every event
    of the database)."""
    rows = await db.fetch(
        "SELECT p.event_id FROM unnest($1::text[], $2::text[]) p(room, event_id) CROSS JOIN LATERAL ("
        " SELECT 1 FROM events WHERE room_id = p.room AND (content->'m.relates_to'->>'event_id') = p.event_id"
        " LIMIT 1) r",
        [pair[0] for pair in events],
        [pair[1] for pair in events],
    )
    return {row["event_id"] for row in rows}
