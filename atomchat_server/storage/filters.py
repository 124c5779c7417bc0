"""Sync filters stored for clients."""

from __future__ import annotations

from typing import Any

from ..db import Database


async def create_filter(db: Database, user_id: str, definition: dict[str, Any]) -> int:
    return await db.fetchval(
        "INSERT INTO filters (user_id, definition) VALUES ($1, $2) RETURNING filter_id", user_id, definition
    )


async def get_filter(db: Database, user_id: str, filter_id: int) -> dict[str, Any] | None:
    return await db.fetchval("SELECT definition FROM filters WHERE user_id = $1 AND filter_id = $2", user_id, filter_id)
