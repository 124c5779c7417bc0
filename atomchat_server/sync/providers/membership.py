"""Membership changes: which rooms an answer covers, and how.

A joined room the user stayed in since ``since`` is steady (only what
changed is shown, and only if something did); one joined since, or left and
joined again, is shown whole, with what history visibility allows; invites
and leaves newer than ``since`` get their own sections (leaves in an initial
sync only when the filter asks). The other providers read this split.
"""

from __future__ import annotations

import asyncpg

from ...storage import events as event_store
from ...storage import sync as sync_store
from ...storage.events import Membership
from ..answer import Answer, MembershipAt


async def provide(answer: Answer) -> None:
    pool, user_id, since, upto = answer.pool, answer.requester.user_id, answer.since, answer.upto
    for membership in await sync_store.user_memberships(pool, user_id):
        room_id = membership.room_id
        if not answer.sync_filter.wants_room(room_id):
            continue
        now = await _membership_at(pool, room_id, user_id, membership, upto)
        if now is None:
            continue
        then = None
        if since is not None:
            then = (
                now if membership.stream <= since else await _membership_at(pool, room_id, user_id, membership, since)
            )
        if now.membership == "join":
            answer.member_of.append(room_id)
            stayed = (
                since is not None
                and then is not None
                and then.membership == "join"
                and (membership.stream <= since or not await _left_between(pool, room_id, user_id, since, upto))
            )
            if stayed and not answer.full_state:
                answer.steady.append(room_id)
            else:
                answer.fresh.append(room_id)
                if not stayed:
                    answer.whole.append(room_id)
        elif now.membership == "invite":
            if since is None or now.stream > since:
                answer.invites[room_id] = now
        elif not membership.forgotten and (
            (since is not None and now.stream > since and then is not None and then.membership in ("join", "invite"))
            or (since is None and answer.sync_filter.include_leave)
        ):
            answer.leaves[room_id] = now


async def _left_between(pool: asyncpg.Pool, room_id: str, user_id: str, since: int, upto: int) -> bool:
    """Whether the user was out of the room at some point in (since, upto]
    (left and joined again): then the room is shown as newly joined, with
    what history visibility allows, not as continuous."""
    history = await event_store.membership_history(pool, room_id, user_id)
    return any(since < stream <= upto and membership != "join" for stream, membership in history)


async def _membership_at(
    pool: asyncpg.Pool, room_id: str, user_id: str, current: Membership, position: int
) -> MembershipAt | None:
    """The user's membership as of ``position`` (None if they had none)."""
    if current.stream <= position:
        return MembershipAt(current.membership, current.stream, current.event_id)
    row = await event_store.state_event(pool, room_id, "m.room.member", user_id, at_stream=position)
    if row is None:
        return None
    return MembershipAt(row.content.get("membership"), row.stream, row.event_id)
