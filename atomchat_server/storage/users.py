"""The users table, read as ``User`` rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..db import Database


@dataclass(frozen=True)
class User:
    """An account, as the users table holds it: what crosses into the
    services instead of a driver record, so its fields are typed."""

    id: int  # the original /api names users by this number; 0 is the server's own account
    user_id: str  # @localpart:server_name
    localpart: str
    password_hash: str | None
    email: str
    is_moderator: bool
    displayname: str | None
    avatar_url: str | None
    created_at: datetime


# The columns of a User, for every query that reads users whole.
USER_COLUMNS = "id, user_id, localpart, password_hash, email, is_moderator, displayname, avatar_url, created_at"


def as_user(row: asyncpg.Record) -> User:
    return User(**dict(row))


def maybe_user(row: asyncpg.Record | None) -> User | None:
    return as_user(row) if row is not None else None


class UserExists(Exception):
    """The username is taken (compared without regard to case)."""


async def create_user(
    db: Database,
    *,
    user_id: str,
    localpart: str,
    password_hash: str | None,
    is_moderator: bool = False,
    email: str = "",
) -> User:
    try:
        row = await db.fetchrow(
            "INSERT INTO users (user_id, localpart, password_hash, is_moderator, email)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}",
            user_id,
            localpart,
            password_hash,
            is_moderator,
            email,
        )
    except asyncpg.UniqueViolationError:
        raise UserExists(localpart) from None
    assert row is not None  # RETURNING gives the row inserted
    return as_user(row)


async def get_user(db: Database, user_id: str) -> User | None:
    return maybe_user(await db.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE user_id = $1", user_id))


async def find_by_localpart(db: Database, localpart: str) -> User | None:
    return maybe_user(
        await db.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE lower(localpart) = lower($1)", localpart)
    )


async def localpart_taken(db: Database, localpart: str) -> bool:
    return await db.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE lower(localpart) = lower($1))", localpart)


async def set_password_hash(db: Database, user_id: str, password_hash: str) -> None:
    await db.execute("UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash)


async def list_users(db: Database) -> list[User]:
    return [as_user(row) for row in await db.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")]


async def set_displayname(db: Database, user_id: str, displayname: str | None) -> None:
    await db.execute("UPDATE users SET displayname = $2 WHERE user_id = $1", user_id, displayname)


async def set_avatar_url(db: Database, user_id: str, avatar_url: str | None) -> None:
    await db.execute("UPDATE users SET avatar_url = $2 WHERE user_id = $1", user_id, avatar_url)
