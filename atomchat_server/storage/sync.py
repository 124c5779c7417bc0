"""Queries that assemble /sync responses and feed the notifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..db import Database
from . import events as event_store
from .events import EVENT_COLUMNS


async def events_between(db: Database, after: int, upto: int) -> list[asyncpg.Record]:
    """Every event with after < stream <= upto, in stream order."""
    return await db.fetch(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE stream > $1 AND stream <= $2 ORDER BY stream", after, upto
    )


async def user_memberships(db: Database, user_id: str) -> list[asyncpg.Record]:
    """The user's current membership in every room they have one in."""
    return await db.fetch(
        "SELECT room_id, membership, stream, event_id, forgotten FROM memberships WHERE user_id = $1 ORDER BY stream",
        user_id,
    )


async def rooms_changed_since(db: Database, room_ids: Sequence[str], after: int) -> list[str]:
    """Which of these rooms have events after the position (one index probe per room)."""
    rows = await db.fetch(
        "SELECT room_id FROM rooms WHERE room_id = ANY($1::text[]) AND head_stream > $2", list(room_ids), after
    )
    return [row["room_id"] for row in rows]


async def timeline(db: Database, room_id: str, *, after: int | None, upto: int, limit: int,
                   ranges: Sequence[tuple[int, int | None]] = ((0, None),),
                   **filters: Any) -> tuple[list[asyncpg.Record], bool]:
    """The newest ``limit`` events in (after, upto], oldest first, and whether
    there were more (the timeline is limited). ``filters`` as for events.page."""
    rows = await event_store.page(db, room_id, after=after, before=upto, backwards=True, limit=limit + 1,
                                  ranges=ranges, **filters)
    limited = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return rows, limited


async def state_changes(db: Database, room_id: str, *, after: int, before: int) -> list[asyncpg.Record]:
    """The latest state event per key among those with after < stream < before."""
    return await db.fetch(
        f"SELECT * FROM (SELECT DISTINCT ON (type, state_key) {EVENT_COLUMNS} FROM events"
        " WHERE room_id = $1 AND state_key IS NOT NULL AND stream > $2 AND stream < $3"
        " ORDER BY type, state_key, stream DESC) s ORDER BY stream",
        room_id, after, before,
    )


async def member_counts(db: Database, room_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per room, (joined, invited) member counts."""
    rows = await db.fetch(
        "SELECT room_id, count(*) FILTER (WHERE membership = 'join') AS joined,"
        " count(*) FILTER (WHERE membership = 'invite') AS invited FROM memberships"
        " WHERE room_id = ANY($1::text[]) GROUP BY room_id",
        list(room_ids),
    )
    return {row["room_id"]: (row["joined"], row["invited"]) for row in rows}
