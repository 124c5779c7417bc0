"""To-device messages for the requesting device.

This provider runs first: with more than TO_DEVICE_LIMIT messages waiting,
the whole answer stops at the last one it carries (``upto`` lowered, ``more``
set), so the next answer goes on from there, every stream in one order.
"""

from __future__ import annotations

from ...storage import keys as key_store
from ..answer import Answer

# To-device messages in one answer at most; more wait for the next.
TO_DEVICE_LIMIT = 100


async def provide(answer: Answer) -> None:
    requester = answer.requester
    rows = await key_store.to_device_between(
        answer.pool, requester.user_id, requester.device_id, answer.since, answer.upto, TO_DEVICE_LIMIT + 1
    )
    if len(rows) > TO_DEVICE_LIMIT:
        rows = rows[:TO_DEVICE_LIMIT]
        answer.upto = rows[-1].stream
        answer.more = True
    answer.to_device = [{"sender": row.sender, "type": row.type, "content": row.content} for row in rows]
