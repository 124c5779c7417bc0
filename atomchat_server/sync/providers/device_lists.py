"""The requesting device's keys: whose device lists changed in (since, upto]
(nothing in an initial sync), and the device's one-time key counts and
unused fallback key types, read through services.keys."""

from __future__ import annotations

from ..answer import Answer


async def provide(answer: Answer) -> None:
    requester, services = answer.requester, answer.services
    if answer.since is not None:
        answer.changed, answer.left = await services.device_list_changes(
            answer.pool, requester.user_id, answer.since, answer.upto
        )
    answer.key_counts, answer.fallback_keys = await services.key_state(
        answer.pool, requester.user_id, requester.device_id
    )
