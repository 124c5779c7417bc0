"""Server state, moderator flags and the queries behind the admin API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..db import Database
from ..patterns import like_search


async def get_server_state(db: Database, key: str) -> str | None:
    return await db.fetchval("SELECT value FROM server_state WHERE key = $1", key)


async def claim_server_state(db: Database, key: str, value: str) -> str:
    """Sets the key unless another process did first; returns the value that won."""
    await db.execute("INSERT INTO server_state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value)
    won = await get_server_state(db, key)
    assert won is not None  # the row is there now, inserted here or by the other process
    return won


async def oldest_user_id(db: Database) -> str | None:
    """The id of the first account made (the server's own, number 0, once
    the policy room exists), or None in an empty database."""
    return await db.fetchval("SELECT user_id FROM users ORDER BY id LIMIT 1")


async def ensure_system_user(db: Database, user_id: str, localpart: str) -> None:
    """The account the server acts as (it has no password: nobody logs in as it)."""
    # Number 0, outside the numbers people get (from 1), which the original API shows.
    await db.execute(
        "INSERT INTO users (id, user_id, localpart, password_hash) OVERRIDING SYSTEM VALUE"
        " VALUES (0, $1, $2, NULL) ON CONFLICT DO NOTHING",
        user_id,
        localpart,
    )


async def set_moderator(db: Database, user_id: str, is_moderator: bool) -> bool:
    status = await db.execute("UPDATE users SET is_moderator = $2 WHERE user_id = $1", user_id, is_moderator)
    return status != "UPDATE 0"


async def moderators(db: Database) -> list[str]:
    return [row["user_id"] for row in await db.fetch("SELECT user_id FROM users WHERE is_moderator ORDER BY id")]


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account as the admin API lists it, with its last activity."""

    id: int
    user_id: str
    localpart: str
    is_moderator: bool
    displayname: str | None
    created_at: datetime
    last_seen_at: datetime | None  # the latest of its devices'; None if none was seen


async def list_users(
    db: Database,
    *,
    search: str | None,
    user_ids: Sequence[str] | None,
    moderators_only: bool,
    after_id: int,
    limit: int,
    exclude: str,
) -> list[AccountSummary]:
    """A page of accounts ordered by id, with their last activity."""
    rows = await db.fetch(
        "SELECT u.id, u.user_id, u.localpart, u.is_moderator, u.displayname, u.created_at,"
        " (SELECT max(last_seen_at) FROM devices d WHERE d.user_id = u.user_id) AS last_seen_at"
        " FROM users u WHERE u.id > $1 AND u.user_id <> $6"
        " AND ($2::text IS NULL OR u.localpart ILIKE $2 OR u.displayname ILIKE $2)"
        " AND ($3::text[] IS NULL OR u.user_id = ANY($3)) AND (NOT $4 OR u.is_moderator)"
        " ORDER BY u.id LIMIT $5",
        after_id,
        like_search(search),
        user_ids,
        moderators_only,
        limit,
        exclude,
    )
    return [AccountSummary(**dict(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class UserRoom:
    """A room a user has a membership in, and what it is."""

    room_id: str
    membership: str


async def user_rooms(db: Database, user_id: str) -> list[UserRoom]:
    rows = await db.fetch(
        "SELECT m.room_id, m.membership FROM memberships m JOIN rooms r USING (room_id)"
        " WHERE m.user_id = $1 AND NOT r.deleted ORDER BY m.stream",
        user_id,
    )
    return [UserRoom(**dict(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as the admin API lists it, with its name, member count and last activity."""

    id: int
    room_id: str
    creator: str
    created_at: datetime
    published: bool
    name: str | None
    members: int  # joined
    last_activity_ts: int | None  # of its latest event


async def room_summary(db: Database, room_id: str) -> RoomSummary | None:
    rows = await list_rooms(db, search=None, after_id=0, limit=1, exclude="", room_id=room_id)
    return rows[0] if rows else None


async def list_rooms(
    db: Database, *, search: str | None, after_id: int, limit: int, exclude: str, room_id: str | None = None
) -> list[RoomSummary]:
    """A page of rooms ordered by id, with name, member count and last activity."""
    rows = await db.fetch(
        """
        SELECT r.id, r.room_id, r.creator, r.created_at, r.published,
               (SELECT e.content->>'name' FROM current_state cs JOIN events e USING (event_id)
                 WHERE cs.room_id = r.room_id AND cs.type = 'm.room.name' AND cs.state_key = '') AS name,
               (SELECT count(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join') AS members,
               (SELECT e.origin_server_ts FROM events e WHERE e.event_id = r.head_event_id) AS last_activity_ts
          FROM rooms r
         WHERE NOT r.deleted AND r.id > $1 AND r.room_id <> $4 AND ($5::text IS NULL OR r.room_id = $5)
           AND ($2::text IS NULL OR EXISTS (
                SELECT 1 FROM current_state cs JOIN events e USING (event_id)
                 WHERE cs.room_id = r.room_id AND cs.type = 'm.room.name' AND cs.state_key = ''
                   AND e.content->>'name' ILIKE $2))
         ORDER BY r.id LIMIT $3
        """,
        after_id,
        like_search(search),
        limit,
        exclude,
        room_id,
    )
    return [RoomSummary(**dict(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class SentEvent:
    """Where an event of a sender is: its position, id and room."""

    stream: int
    event_id: str
    room_id: str


async def events_of_sender(db: Database, user_id: str, after_stream: int, limit: int) -> list[SentEvent]:
    """A sender's events that can still be redacted (not redacted, not state), oldest first."""
    rows = await db.fetch(
        "SELECT e.stream, e.event_id, e.room_id FROM events e JOIN rooms r USING (room_id)"
        " WHERE e.sender = $1 AND e.stream > $2 AND e.redacted_by IS NULL AND e.state_key IS NULL"
        " AND e.type <> 'm.room.redaction' AND NOT r.deleted ORDER BY e.stream LIMIT $3",
        user_id,
        after_stream,
        limit,
    )
    return [SentEvent(**dict(row)) for row in rows]


async def mark_room_deleted(db: Database, room_id: str) -> None:
    await db.execute("UPDATE rooms SET deleted = true, published = false WHERE room_id = $1", room_id)
    await db.execute("DELETE FROM room_aliases WHERE room_id = $1", room_id)


async def purge_room(db: Database, room_id: str) -> None:
    """Deletes the room and, through the foreign keys, every event and row of it."""
    await db.execute(
        "DELETE FROM event_txns WHERE event_id IN (SELECT event_id FROM events WHERE room_id = $1)", room_id
    )
    await db.execute("DELETE FROM rooms WHERE room_id = $1", room_id)
