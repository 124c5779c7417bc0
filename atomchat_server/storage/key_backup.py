"""Server-side key backup: a user's backup versions and the encrypted session
keys in each. Changes to one user's backup are serialized by a lock on the
version row, so concurrent uploads of one session keep the better key."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..db import Database

_VERSION = (
    "SELECT v.version, v.algorithm, v.auth_data, v.etag,"
    " (SELECT count(*) FROM key_backup_sessions s WHERE s.user_id = v.user_id AND s.version = v.version)"
    " AS count FROM key_backup_versions v WHERE v.user_id = $1 AND NOT v.deleted"
)


async def create_version(pool: asyncpg.Pool, user_id: str, algorithm: str, auth_data: dict[str, Any]) -> int:
    """A new version, numbered after every earlier one (deleted ones too); it becomes the current one."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user_id)
        return await conn.fetchval(
            "INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data)"
            " SELECT $1, COALESCE(max(version), 0) + 1, $2, $3 FROM key_backup_versions WHERE user_id = $1"
            " RETURNING version",
            user_id,
            algorithm,
            auth_data,
        )


@dataclass(frozen=True, slots=True)
class BackupVersion:
    """A live backup version, with the number of keys it holds."""

    version: int
    algorithm: str
    auth_data: dict[str, Any]
    etag: int  # moves on every change of the keys
    count: int


async def get_version(db: Database, user_id: str, version: int | None) -> BackupVersion | None:
    """The named live version, or the current one (None): with its key count."""
    if version is None:
        row = await db.fetchrow(_VERSION + " ORDER BY v.version DESC LIMIT 1", user_id)
    else:
        row = await db.fetchrow(_VERSION + " AND v.version = $2", user_id, version)
    return BackupVersion(**dict(row)) if row is not None else None


async def update_auth_data(db: Database, user_id: str, version: int, auth_data: dict[str, Any]) -> None:
    await db.execute(
        "UPDATE key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND NOT deleted",
        user_id,
        version,
        auth_data,
    )


async def delete_version(pool: asyncpg.Pool, user_id: str, version: int) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE key_backup_versions SET deleted = true WHERE user_id = $1 AND version = $2 AND NOT deleted",
            user_id,
            version,
        )
        await conn.execute("DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2", user_id, version)
        return status != "UPDATE 0"


async def put_sessions(
    pool: asyncpg.Pool,
    user_id: str,
    version: int,
    sessions: Sequence[tuple[str, str, Mapping[str, Any]]],
    replaces: Callable[[Mapping[str, Any] | None, Mapping[str, Any]], bool],
) -> tuple[int, int] | None:
    """Stores (room, session, key) entries into the version if it is still the
    current one, each only where ``replaces(stored, new)`` says so; returns
    (etag, count) after, or None when the version is not current (any more)."""
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(
            "SELECT version FROM key_backup_versions WHERE user_id = $1 AND NOT deleted"
            " ORDER BY version DESC LIMIT 1 FOR UPDATE",
            user_id,
        )
        if current != version:
            return None
        stored = {
            (row["room_id"], row["session_id"]): dict(row)
            for row in await conn.fetch(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified"
                " FROM key_backup_sessions s JOIN unnest($3::text[], $4::text[]) AS q(room_id, session_id)"
                " USING (room_id, session_id) WHERE s.user_id = $1 AND s.version = $2",
                user_id,
                version,
                [s[0] for s in sessions],
                [s[1] for s in sessions],
            )
        }
        kept = {(room, session): key for room, session, key in sessions if replaces(stored.get((room, session)), key)}
        if kept:
            await conn.executemany(
                "INSERT INTO key_backup_sessions (user_id, version, room_id, session_id, first_message_index,"
                " forwarded_count, is_verified, session_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
                " first_message_index = EXCLUDED.first_message_index, forwarded_count = EXCLUDED.forwarded_count,"
                " is_verified = EXCLUDED.is_verified, session_data = EXCLUDED.session_data",
                [
                    (
                        user_id,
                        version,
                        room,
                        session,
                        key["first_message_index"],
                        key["forwarded_count"],
                        key["is_verified"],
                        key["session_data"],
                    )
                    for (room, session), key in kept.items()
                ],
            )
        return await _touched(conn, user_id, version, bool(kept))


async def delete_sessions(
    pool: asyncpg.Pool, user_id: str, version: int, room_id: str | None, session_id: str | None
) -> tuple[int, int]:
    """Deletes the version's keys (of one room, or one session); returns (etag, count)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT 1 FROM key_backup_versions WHERE user_id = $1 AND version = $2 FOR UPDATE", user_id, version
        )
        status = await conn.execute(
            "DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2"
            " AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)",
            user_id,
            version,
            room_id,
            session_id,
        )
        return await _touched(conn, user_id, version, status != "DELETE 0")


async def _touched(conn: Database, user_id: str, version: int, changed: bool) -> tuple[int, int]:
    """(etag, count) of the version, moving the etag on if its keys changed."""
    row = await conn.fetchrow(
        "UPDATE key_backup_versions SET etag = etag + $3::int WHERE user_id = $1 AND version = $2"
        " RETURNING etag, (SELECT count(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2) AS count",
        user_id,
        version,
        int(changed),
    )
    assert row is not None, "the caller found the version, and versions are never removed"
    return row["etag"], row["count"]


@dataclass(frozen=True, slots=True)
class BackedUpKey:
    """A Megolm session key in a backup, encrypted by the client (``session_data``)."""

    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: dict[str, Any]


async def get_sessions(
    db: Database, user_id: str, version: int, room_id: str | None, session_id: str | None
) -> list[BackedUpKey]:
    rows = await db.fetch(
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
        " FROM key_backup_sessions WHERE user_id = $1 AND version = $2"
        " AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)"
        " ORDER BY room_id, session_id",
        user_id,
        version,
        room_id,
        session_id,
    )
    return [BackedUpKey(**dict(row)) for row in rows]
