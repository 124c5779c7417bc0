"""Presence rows. A change of state or status message takes a stream
position (under the persister's stream lock, like receipts); refreshing
when a user was last active does not."""

from __future__ import annotations

from dataclasses import dataclass

from ..db import Database


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's presence as the presence table holds it."""

    user_id: str
    state: str  # online, unavailable or offline
    status_msg: str | None
    chosen: bool  # set by the user, not by syncing
    last_active_ts: int
    stream: int


_PRESENCE_COLUMNS = "user_id, state, status_msg, chosen, last_active_ts, stream"


async def refresh_active(db: Database, user_id: str, now_ms: int) -> Presence | None:
    """Notes that a present (not offline) user is active; their presence,
    or None when they are offline or were never seen."""
    row = await db.fetchrow(
        f"UPDATE presence SET last_active_ts = $2 WHERE user_id = $1 AND state <> 'offline'"
        f" RETURNING {_PRESENCE_COLUMNS}",
        user_id,
        now_ms,
    )
    return Presence(**dict(row)) if row is not None else None


async def get_presence(db: Database, user_id: str) -> Presence | None:
    row = await db.fetchrow(f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE user_id = $1", user_id)
    return Presence(**dict(row)) if row is not None else None


async def put_presence(
    conn: Database, *, user_id: str, state: str, status_msg: str | None, keep_status: bool, chosen: bool, now_ms: int
) -> int:
    """Sets the user's state (and status message, unless ``keep_status``),
    at a new stream position."""
    return await conn.fetchval(
        "INSERT INTO presence (user_id, state, status_msg, chosen, last_active_ts, stream)"
        " VALUES ($1, $2, $3, $5, $6, nextval('event_stream'))"
        " ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state, chosen = EXCLUDED.chosen,"
        " status_msg = CASE WHEN $4 THEN presence.status_msg ELSE EXCLUDED.status_msg END,"
        " last_active_ts = EXCLUDED.last_active_ts, stream = EXCLUDED.stream RETURNING stream",
        user_id,
        state,
        status_msg,
        keep_status,
        chosen,
        now_ms,
    )


async def any_lapsed(db: Database, before_ms: int) -> bool:
    """Whether some present user was last active before ``before_ms``."""
    return await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM presence WHERE state <> 'offline' AND last_active_ts < $1)", before_ms
    )


async def set_lapsed_offline(conn: Database, *, before_ms: int) -> int | None:
    """Every present user last active before ``before_ms`` goes offline
    (a chosen state ends); returns the highest position taken, if any."""
    return await conn.fetchval(
        "WITH gone AS (UPDATE presence SET state = 'offline', chosen = false, stream = nextval('event_stream')"
        " WHERE state <> 'offline' AND last_active_ts < $1 RETURNING stream) SELECT max(stream) FROM gone",
        before_ms,
    )


async def shares_room(db: Database, user_id: str, other: str) -> bool:
    """Whether the two users are both joined to some room."""
    return await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM memberships a JOIN memberships b ON b.room_id = a.room_id"
        " WHERE a.user_id = $1 AND a.membership = 'join' AND b.user_id = $2 AND b.membership = 'join')",
        user_id,
        other,
    )


# The users whose presence a user is shown: themselves and everyone joined
# to a room they are joined to.
_AUDIENCE = (
    "(SELECT $1::text UNION SELECT b.user_id FROM memberships a JOIN memberships b"
    " ON b.room_id = a.room_id AND b.membership = 'join' WHERE a.user_id = $1 AND a.membership = 'join')"
)


async def presence_since(db: Database, user_id: str, after: int | None, upto: int) -> list[Presence]:
    """The presence the user is shown for changes in (after, upto]; with
    ``after`` None (an initial sync), every such user who is not offline."""
    if after is None:
        rows = await db.fetch(
            f"SELECT {_PRESENCE_COLUMNS} FROM presence"
            f" WHERE user_id IN {_AUDIENCE} AND state <> 'offline' AND stream <= $2 ORDER BY stream",
            user_id,
            upto,
        )
    else:
        rows = await db.fetch(
            f"SELECT {_PRESENCE_COLUMNS} FROM presence"
            f" WHERE stream > $2 AND stream <= $3 AND user_id IN {_AUDIENCE} ORDER BY stream",
            user_id,
            after,
            upto,
        )
    return [Presence(**dict(row)) for row in rows]
