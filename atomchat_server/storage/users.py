"""The users table."""

from __future__ import annotations

import asyncpg

from ..db import Database


class UserExists(Exception):
    """The username is taken (compared without regard to case)."""


async def create_user(db: Database, *, user_id: str, localpart: str, password_hash: str | None,
                      is_moderator: bool = False, email: str = "") -> asyncpg.Record:
    try:
        row = await db.fetchrow(
            "INSERT INTO users (user_id, localpart, password_hash, is_moderator, email)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING *",
            user_id, localpart, password_hash, is_moderator, email,
        )
    except asyncpg.UniqueViolationError:
        raise UserExists(localpart) from None
    assert row is not None  # RETURNING gives the row inserted
    return row


async def get_user(db: Database, user_id: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM users WHERE user_id = $1", user_id)


async def find_by_localpart(db: Database, localpart: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM users WHERE lower(localpart) = lower($1)", localpart)


async def localpart_taken(db: Database, localpart: str) -> bool:
    return await db.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE lower(localpart) = lower($1))", localpart)


async def set_password_hash(db: Database, user_id: str, password_hash: str) -> None:
    await db.execute("UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash)


async def list_users(db: Database) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM users ORDER BY id")


async def set_displayname(db: Database, user_id: str, displayname: str | None) -> None:
    await db.execute("UPDATE users SET displayname = $2 WHERE user_id = $1", user_id, displayname)


async def set_avatar_url(db: Database, user_id: str, avatar_url: str | None) -> None:
    await db.execute("UPDATE users SET avatar_url = $2 WHERE user_id = $1", user_id, avatar_url)
