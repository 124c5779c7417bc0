"""Queries for the original AtomChat REST API (/api), which names users and
rooms by number and shows rooms as objects with their members."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..db import Database
from ..storage.users import USER_COLUMNS, User, as_user, maybe_user


@dataclass(frozen=True, slots=True)
class RoomObject:
    """A room as /api shows it: number, name, creation time and joined members' numbers."""

    id: int
    room_id: str
    creator: str
    created_at: datetime
    name: str | None
    member_ids: list[int]


def _room_object(row: asyncpg.Record | None) -> RoomObject | None:
    return RoomObject(**dict(row)) if row is not None else None


_ROOM_OBJECT = """
SELECT r.id, r.room_id, r.creator, r.created_at,
       (SELECT e.content->>'name' FROM current_state cs JOIN events e USING (event_id)
         WHERE cs.room_id = r.room_id AND cs.type = 'm.room.name' AND cs.state_key = '') AS name,
       ARRAY(SELECT u.id FROM memberships m JOIN users u USING (user_id)
              WHERE m.room_id = r.room_id AND m.membership = 'join' ORDER BY u.id) AS member_ids
  FROM rooms r
"""


# Account number 0 is the server's own account: no person can address it.
async def user_by_id(db: Database, number: int) -> User | None:
    return maybe_user(await db.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND id > 0", number))


async def users_by_ids(db: Database, numbers: Sequence[int]) -> list[User]:
    return [
        as_user(row)
        for row in await db.fetch(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[]) AND id > 0", list(numbers)
        )
    ]


async def room_object(db: Database, number: int) -> RoomObject | None:
    return _room_object(await db.fetchrow(_ROOM_OBJECT + " WHERE r.id = $1 AND NOT r.deleted", number))


async def room_object_by_room_id(db: Database, room_id: str) -> RoomObject | None:
    return _room_object(await db.fetchrow(_ROOM_OBJECT + " WHERE r.room_id = $1", room_id))


async def rooms_of(db: Database, user_id: str) -> list[RoomObject]:
    rows = await db.fetch(
        _ROOM_OBJECT + " WHERE NOT r.deleted AND r.room_id IN"
        " (SELECT room_id FROM memberships WHERE user_id = $1 AND membership = 'join') ORDER BY r.id",
        user_id,
    )
    return [RoomObject(**dict(row)) for row in rows]


async def all_rooms(db: Database, exclude: str) -> list[RoomObject]:
    rows = await db.fetch(_ROOM_OBJECT + " WHERE NOT r.deleted AND r.room_id <> $1 ORDER BY r.id", exclude)
    return [RoomObject(**dict(row)) for row in rows]


async def room_name_taken(db: Database, name: str, except_room: str | None = None) -> bool:
    return await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM current_state cs JOIN events e USING (event_id)"
        " JOIN rooms r ON r.room_id = cs.room_id"
        " WHERE cs.type = 'm.room.name' AND cs.state_key = '' AND e.content->>'name' = $1 AND NOT r.deleted"
        " AND ($2::text IS NULL OR cs.room_id <> $2))",
        name,
        except_room,
    )


@dataclass(frozen=True, slots=True)
class Message:
    """A text message as /api shows it, with its author's number."""

    stream: int
    text: str
    origin_server_ts: int
    author: int


_MESSAGE = (
    "SELECT e.stream, e.content->>'body' AS text, e.origin_server_ts, u.id AS author FROM events e"
    " JOIN users u ON u.user_id = e.sender"
)


async def messages(
    db: Database, room_id: str, *, before: int | None = None, after: int | None = None, limit: int, newest_first: bool
) -> list[Message]:
    """Up to ``limit`` text messages with after < stream < before, with their
    authors' numbers."""
    order = "DESC" if newest_first else "ASC"
    rows = await db.fetch(
        _MESSAGE + " WHERE e.room_id = $1 AND e.type = 'm.room.message' AND e.redacted_by IS NULL"
        " AND jsonb_typeof(e.content->'body') = 'string'"
        " AND ($2::bigint IS NULL OR e.stream < $2) AND ($3::bigint IS NULL OR e.stream > $3)"
        f" ORDER BY e.stream {order} LIMIT $4",
        room_id,
        before,
        after,
        limit,
    )
    return [Message(**dict(row)) for row in rows]


async def message(db: Database, event_id: str) -> Message | None:
    row = await db.fetchrow(_MESSAGE + " WHERE e.event_id = $1", event_id)
    return Message(**dict(row)) if row is not None else None


class Locks:
    """Named locks that hold across server processes (PostgreSQL advisory
    locks). A held lock keeps one pool connection busy while the work under
    it needs connections of its own; so locks never take more than half the
    pool, and the work under them always finds a connection (were every
    connection holding or awaiting a lock, none would be left to finish)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._slots = asyncio.Semaphore(max(1, pool.get_max_size() // 2))

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[PoolConnectionProxy]:
        """Holds the lock named ``key``; yields the connection that holds it."""
        async with self._slots, self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
            try:
                yield conn
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)


async def direct_room(db: Database, low: int, high: int) -> str | None:
    return await db.fetchval("SELECT room_id FROM direct_rooms WHERE user_low = $1 AND user_high = $2", low, high)


async def set_direct_room(db: Database, low: int, high: int, room_id: str) -> None:
    """Records the pair's room, replacing one they can no longer use."""
    await db.execute(
        "INSERT INTO direct_rooms (user_low, user_high, room_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_low, user_high) DO UPDATE SET room_id = EXCLUDED.room_id",
        low,
        high,
        room_id,
    )


@dataclass(frozen=True, slots=True)
class RoomToUpgrade:
    """A room listed by migration 0008, with its creator and the content of
    its first power levels event (what it was made with; None if it has none)."""

    room_id: str
    creator: str
    first_levels: dict[str, Any] | None


async def rooms_to_upgrade(db: Database) -> list[RoomToUpgrade]:
    """The rooms listed by migration 0008, with their creator and the
    content of their first power levels event (what they were made with)."""
    rows = await db.fetch(
        "SELECT u.room_id, r.creator,"
        " (SELECT e.content FROM events e WHERE e.room_id = u.room_id AND e.type = 'm.room.power_levels'"
        "   AND e.state_key = '' ORDER BY e.stream LIMIT 1) AS first_levels"
        " FROM api_rooms_to_upgrade u JOIN rooms r USING (room_id) ORDER BY r.id"
    )
    return [RoomToUpgrade(**dict(row)) for row in rows]


async def upgraded(db: Database, room_id: str) -> None:
    await db.execute("DELETE FROM api_rooms_to_upgrade WHERE room_id = $1", room_id)
