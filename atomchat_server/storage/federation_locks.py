"""Advisory locks that let one server process among several send a
destination's outgoing queue, and the NOTIFY that wakes the holder."""

from __future__ import annotations

import asyncpg

from ..db import Database

# The first key of the two-key advisory lock: this project's outbox locks
# apart from any other advisory locks on the database.
OUTBOX_LOCK_SPACE = 0x4F425831  # "OBX1"


async def try_lock(conn: asyncpg.Connection, destination: str) -> bool:
    """Takes the destination's session lock on ``conn`` if nobody holds it."""
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", OUTBOX_LOCK_SPACE, destination)
    return taken


async def unlock(conn: asyncpg.Connection, destination: str) -> None:
    await conn.fetchval("SELECT pg_advisory_unlock($1, hashtext($2))", OUTBOX_LOCK_SPACE, destination)


async def announce(db: Database, channel: str, destination: str) -> None:
    await db.execute("SELECT pg_notify($1, $2)", channel, destination)
