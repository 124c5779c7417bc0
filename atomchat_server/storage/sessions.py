"""Devices and their login sessions.

Every change that revokes sessions also notifies ``SESSIONS_CHANNEL`` in the
same transaction, so every server process drops its cached copy of that
user's sessions the moment the revocation commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..db import Database

SESSIONS_CHANNEL = "atomchat_sessions"


async def _revoked(conn: Database, user_id: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", SESSIONS_CHANNEL, user_id)


async def revoke_cached_sessions(db: Database, user_id: str) -> None:
    """Makes every process forget what it cached of the user's sessions (their
    role or standing changed), without ending the sessions."""
    await _revoked(db, user_id)


async def start_session(
    pool: asyncpg.Pool,
    *,
    user_id: str,
    device_id: str,
    display_name: str | None,
    session_id: str,
    refresh_token_hash: str | None,
) -> bool:
    """Records a login. Logging in again with an existing device id keeps the
    device and replaces its session, revoking the tokens issued before;
    returns whether it did."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO devices (user_id, device_id, display_name) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, device_id) DO NOTHING",  # a known device keeps its name
            user_id,
            device_id,
            display_name,
        )
        replaced = await conn.execute("DELETE FROM sessions WHERE user_id = $1 AND device_id = $2", user_id, device_id)
        await conn.execute(
            "INSERT INTO sessions (session_id, user_id, device_id, refresh_token_hash) VALUES ($1, $2, $3, $4)",
            session_id,
            user_id,
            device_id,
            refresh_token_hash,
        )
        if replaced == "DELETE 0":
            return False
        await _revoked(conn, user_id)
        return True


@dataclass(frozen=True, slots=True)
class Session:
    """A live login, as checking an access token needs it."""

    session_id: str
    user_id: str
    device_id: str
    oldest_valid_generation: int  # tokens of earlier generations are refused
    is_moderator: bool  # of the account


async def get_session(db: Database, session_id: str) -> Session | None:
    row = await db.fetchrow(
        "SELECT s.session_id, s.user_id, s.device_id, s.oldest_valid_generation, u.is_moderator"
        " FROM sessions s JOIN users u USING (user_id) WHERE s.session_id = $1",
        session_id,
    )
    return Session(**dict(row)) if row is not None else None


async def refresh_token_user(db: Database, token_hash: str) -> str | None:
    """The account a refresh token (the session's current or previous one,
    see ``rotate_refresh_token``) belongs to; None when it is unknown."""
    user_id: str | None = await db.fetchval(
        "SELECT user_id FROM sessions WHERE refresh_token_hash = $1 OR previous_refresh_token_hash = $1", token_hash
    )
    return user_id


@dataclass(frozen=True, slots=True)
class RefreshedSession:
    """A session whose refresh token was swapped, at its new token generation."""

    session_id: str
    user_id: str
    device_id: str
    token_generation: int


async def rotate_refresh_token(db: Database, old_hash: str, new_hash: str) -> RefreshedSession | None:
    """Swaps a refresh token for a new one; None when the old one is unknown
    (never issued, replaced for good, or its session ended).

    The session's current refresh token moves the session to its next token
    generation and stays behind as the previous one. The previous one still
    works until a token of the new generation is used
    (``retire_generations_before``) or the new refresh token is: trading it
    again answers that same generation with a new refresh token in place of
    the one whose answer the client never got."""
    row = await db.fetchrow(
        "UPDATE sessions SET refresh_token_hash = $2,"
        " previous_refresh_token_hash ="
        " CASE WHEN refresh_token_hash = $1 THEN $1 ELSE previous_refresh_token_hash END,"
        " token_generation = token_generation + (refresh_token_hash = $1)::int"
        " WHERE refresh_token_hash = $1 OR previous_refresh_token_hash = $1"
        " RETURNING session_id, user_id, device_id, token_generation",
        old_hash,
        new_hash,
    )
    return RefreshedSession(**dict(row)) if row is not None else None


async def retire_generations_before(pool: asyncpg.Pool, session_id: str, user_id: str, generation: int) -> None:
    """Ends the session's access tokens older than ``generation`` (a token
    of it was just used), telling every process; a use of the newest
    generation also ends the refresh token it was traded for."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE sessions SET oldest_valid_generation = $2,"
            " previous_refresh_token_hash ="
            " CASE WHEN token_generation = $2 THEN NULL ELSE previous_refresh_token_hash END"
            " WHERE session_id = $1 AND oldest_valid_generation < $2 AND token_generation >= $2",
            session_id,
            generation,
        )
        if status != "UPDATE 0":
            await _revoked(conn, user_id)


async def delete_devices(pool: asyncpg.Pool, user_id: str, device_ids: list[str] | None = None) -> int:
    """Deletes the named devices (all when None) with their sessions; returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        if device_ids is None:
            status = await conn.execute("DELETE FROM devices WHERE user_id = $1", user_id)
        else:
            status = await conn.execute(
                "DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2::text[])", user_id, device_ids
            )
        count = int(status.split()[-1])
        if count:
            await _revoked(conn, user_id)
        return count


@dataclass(frozen=True, slots=True)
class Device:
    """A device of a user, as the devices table holds it."""

    user_id: str
    device_id: str
    display_name: str | None
    created_at: datetime
    last_seen_at: datetime | None  # None until a request of it is recorded
    last_seen_ip: str | None


_DEVICE_COLUMNS = "user_id, device_id, display_name, created_at, last_seen_at, last_seen_ip"


async def list_devices(db: Database, user_id: str) -> list[Device]:
    rows = await db.fetch(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY created_at, device_id", user_id
    )
    return [Device(**dict(row)) for row in rows]


async def get_device(db: Database, user_id: str, device_id: str) -> Device | None:
    row = await db.fetchrow(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = $1 AND device_id = $2", user_id, device_id
    )
    return Device(**dict(row)) if row is not None else None


async def rename_device(db: Database, user_id: str, device_id: str, display_name: str | None) -> bool:
    status = await db.execute(
        "UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2",
        user_id,
        device_id,
        display_name,
    )
    return status != "UPDATE 0"


async def touch_device(db: Database, user_id: str, device_id: str, ip: str) -> None:
    await db.execute(
        "UPDATE devices SET last_seen_at = now(), last_seen_ip = $3 WHERE user_id = $1 AND device_id = $2",
        user_id,
        device_id,
        ip,
    )
