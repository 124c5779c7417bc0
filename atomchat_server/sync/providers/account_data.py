"""Account data: the user's global entries and each room's, changed in
(since, upto] (all of them in an initial sync)."""

from __future__ import annotations

from ...storage import ephemeral as ephemeral_store
from ..answer import Answer


async def provide(answer: Answer) -> None:
    rows = await ephemeral_store.account_data_since(answer.pool, answer.requester.user_id, answer.since, answer.upto)
    for row in rows:
        entry = {"type": row.type, "content": row.content}
        if row.room_id:
            answer.room_account_data.setdefault(row.room_id, []).append(entry)
        else:
            answer.account_data.append(entry)
