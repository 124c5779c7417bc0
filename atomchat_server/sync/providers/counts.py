"""Notification counts and member summaries of the joined rooms an answer
shows, as of its end: events after it are the next answer's, which a
session adds to these counts as they arrive (sync/session.py, by ``add``)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ...storage import push as push_store
from ...storage import sync as sync_store
from .. import response
from ..answer import Answer

# Notification counts stop here: a client shows "1000+", and the count stays cheap.
UNREAD_CAP = 1000


async def provide(answer: Answer) -> None:
    await add(answer.pool, answer.requester.user_id, answer.join, answer.upto)


async def add(pool: asyncpg.Pool, user_id: str, joined: dict[str, Any], upto: int) -> None:
    """Fills in unread_notifications and summary for the ``joined`` room
    sections of an answer that ends at ``upto``."""
    if not joined:
        return
    unread, counts = await asyncio.gather(  # side by side, on two of the pool's connections
        push_store.notification_counts(pool, user_id, list(joined), UNREAD_CAP, upto),
        sync_store.member_counts(pool, list(joined)),
    )
    for room_id, room in joined.items():
        joined_count, invited_count = counts.get(room_id, (0, 0))
        notify, highlight = unread.get(room_id, (0, 0))
        response.counts(room, notify, highlight, joined_count, invited_count)
