"""The rooms' ephemeral events kept in the database: read receipts (typing
notices, the other kind, live in memory: providers/typing_notices.py). Steady rooms
get the receipts changed in (since, upto]; rooms shown whole, their whole
current receipts. A private receipt is shown to its own user only."""

from __future__ import annotations

from typing import Any

import asyncpg

from ...storage import ephemeral as ephemeral_store
from ..answer import Answer


async def provide(answer: Answer) -> None:
    if answer.steady:
        await _receipts(answer, answer.steady, answer.since)
    if answer.fresh:
        await _receipts(answer, answer.fresh, None)


async def _receipts(answer: Answer, room_ids: list[str], since: int | None) -> None:
    pool: asyncpg.Pool = answer.pool
    user_id = answer.requester.user_id
    receipts: dict[str, dict[str, Any]] = {}
    for row in await ephemeral_store.receipts_since(pool, room_ids, since, answer.upto):
        if row.receipt_type == "m.read.private" and row.user_id != user_id:
            continue
        receipt: dict[str, Any] = {"ts": row.ts}
        if row.thread_id:
            receipt["thread_id"] = row.thread_id
        content = receipts.setdefault(row.room_id, {})
        content.setdefault(row.event_id, {}).setdefault(row.receipt_type, {})[row.user_id] = receipt
    for room_id, content in receipts.items():
        answer.ephemeral.setdefault(room_id, []).append({"type": "m.receipt", "content": content})
