"""Presence of the users the requester shares a room with, changed in
(since, upto], unless the filter leaves m.presence out."""

from __future__ import annotations

from ..answer import Answer


async def provide(answer: Answer) -> None:
    if answer.sync_filter.presence.wants_type("m.presence"):
        answer.presence = await answer.services.presence.events_since(
            answer.requester.user_id, answer.since, answer.upto
        )
