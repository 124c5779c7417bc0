"""Assembles /sync responses: what changed for a user between two stream positions.

``since`` and ``upto`` are positions in the global stream; every event with a
position in (since, upto] that the user may see is in the response exactly
once, in stream order. ``upto`` is always a position the notifier knows to be
complete (every event at or below it is committed), so a client resuming from
``next_batch`` neither misses nor repeats an event.

Each stream has its provider (sync/providers/), which fills in its part of
one Answer (sync/answer.py); the builder runs them in turn and writes the
answer through response.py, the one shape of an answer whatever made it.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from ..auth.sessions import Requester
from ..events.filters import SyncFilter
from . import response, tokens
from .answer import Answer, ServiceReads, StreamProvider
from .providers import (
    account_data,
    counts,
    device_lists,
    ephemeral,
    membership,
    presence,
    rooms,
    to_device,
    typing_notices,
)

if TYPE_CHECKING:
    from ..notifier import TypingNotices


@dataclass
class SyncResult:
    body: dict[str, Any] | None
    empty: bool  # nothing happened for the user: a long-poll should keep waiting
    # The rooms the user is in: what a listener follows. An answer made in
    # memory holds its listener's own set (unchanged by it), not a copy.
    joined_rooms: AbstractSet[str]
    text: str | None = None  # the body as JSON, when it was assembled as text
    # The position the answer reaches (its next_batch) when built from the
    # database: the one asked for, or less when it stops early (more is set).
    position: int | None = None
    more: bool = False
    typing_position: int = 0  # where the answer leaves the typing notices (notifier.TypingNotices)

    def json(self) -> str:
        if self.text is None:
            self.text = response.dumps(self.body)
        return self.text


class SyncBuilder:
    """Answers from the database: runs the stream providers over one Answer."""

    def __init__(self, pool: asyncpg.Pool, services: ServiceReads, typing: TypingNotices) -> None:
        self._pool = pool
        # What the providers read through services/ (public: the room
        # reader's own tests build one with it).
        self.services = services
        self._typing = typing
        # The providers, in the order sync runs them: to-device first, since
        # it may end the answer early; membership before those that follow
        # its split of the rooms; typing and the other per-room streams
        # before the rooms, which show a steady room when they hold something
        # for it; the counts after the rooms they count. Each is held by the
        # builder, not named in sync, so one builder's stream can be replaced.
        self._to_device: StreamProvider = to_device.provide
        self._membership: StreamProvider = membership.provide
        self._typing_notices: StreamProvider = typing_notices.provide
        self._ephemeral: StreamProvider = ephemeral.provide
        self._account_data: StreamProvider = account_data.provide
        self._rooms: StreamProvider = rooms.provide
        self._counts: StreamProvider = counts.provide
        self._device_lists: StreamProvider = device_lists.provide
        self._presence: StreamProvider = presence.provide

    async def sync(
        self,
        requester: Requester,
        *,
        since: int | None,
        upto: int,
        sync_filter: SyncFilter,
        full_state: bool,
        typing_since: int | None = None,
    ) -> SyncResult:
        """The answer for what happened in (since, upto]; typing notices
        that changed after the typing position ``typing_since`` (None: all
        current ones)."""
        answer = Answer(
            pool=self._pool,
            services=self.services,
            typing=self._typing,
            requester=requester,
            sync_filter=sync_filter,
            full_state=full_state,
            since=since,
            upto=upto,
            typing_since=typing_since,
        )
        for provide in (
            self._to_device,
            self._membership,
            self._typing_notices,
            self._ephemeral,
            self._account_data,
            self._rooms,
            self._counts,
            self._device_lists,
            self._presence,
        ):
            await provide(answer)
        body = response.answer(
            tokens.make_sync(answer.upto, self._typing.mark(answer.typing_at)),
            join=answer.join,
            invite=answer.invite,
            leave=answer.leave,
            account_data=answer.account_data,
            presence=answer.presence,
            to_device=answer.to_device,
            changed=answer.changed,
            left=answer.left,
            key_counts=answer.key_counts,
            fallback_keys=answer.fallback_keys,
        )
        empty = not (
            answer.join
            or answer.invite
            or answer.leave
            or answer.account_data
            or answer.presence
            or answer.to_device
            or answer.changed
            or answer.left
        )
        return SyncResult(
            body,
            empty=empty,
            joined_rooms=frozenset(answer.member_of),
            position=answer.upto,
            more=answer.more,
            typing_position=answer.typing_at,
        )

    async def add_counts(self, user_id: str, joined: dict[str, Any], upto: int) -> None:
        """Fills in unread_notifications and summary for the joined room
        sections of an answer a session made in memory (providers/counts.py)."""
        await counts.add(self._pool, user_id, joined, upto)
