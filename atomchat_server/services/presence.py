"""Presence: who is online, kept cheaply and correctly across processes.

Each process remembers in memory, per user, when it last wrote that the
user is active and in which state. A sync (or an open stream) writes
nothing when that was less than a refresh interval ago (a third of the
presence timeout) in the same state; otherwise it refreshes the user's
``last_active_ts`` with one plain UPDATE, and only a change of state goes
through the persister and takes a stream position, which wakes the
clients that share a room with the user. So a user who keeps syncing costs
one small write per refresh interval, not one per request.

PostgreSQL is the shared truth: every process sweeps, every refresh
interval, the users whose ``last_active_ts`` is older than the timeout and
sets them offline, in one conditional UPDATE. A user active on another
process has a fresh ``last_active_ts`` (refreshed at least every interval
there), so no process sets offline a user that another still sees.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..clock import REAL, Clock
from ..db import Database
from ..errors import forbidden, not_found
from ..events import presence as rules
from ..storage import presence as store
from ..storage import users as user_store
from .persister import Persister

log = logging.getLogger(__name__)


class Presence:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        persister: Persister,
        timeout_seconds: float,
        tracking: bool = True,
        clock: Clock = REAL,
    ) -> None:
        self._pool = pool
        self._clock = clock  # last-active times, the refresh interval and the sweep's timer
        # Off: syncing and streaming change nobody's presence (and nobody is
        # swept); what users set themselves is still kept and shown.
        self.tracking = tracking
        self._persister = persister
        self.timeout_ms = int(timeout_seconds * 1000)
        self.refresh_seconds = timeout_seconds / 3
        self._written: dict[str, tuple[float, str]] = {}  # user -> (monotonic time, state) of the last write
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.tracking:
            self._task = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # its CancelledError, taken here

    @property
    def active_window_ms(self) -> int:
        """How recently an online user must have been seen to be currently
        active: ``last_active_ts`` is refreshed once per interval at most."""
        return int(self.refresh_seconds * 2000)

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    # -- being seen -----------------------------------------------------------------

    def _due(self, user_id: str, syncing_as: str) -> bool:
        """Whether a sync as ``syncing_as`` has anything to write: not when
        it asks for offline, nor when this process wrote the same state for
        the user less than a refresh interval ago."""
        if syncing_as == rules.OFFLINE or not self.tracking:
            return False
        last = self._written.get(user_id)
        return last is None or last[1] != syncing_as or self._clock.monotonic() - last[0] >= self.refresh_seconds

    async def seen(self, user_id: str, syncing_as: str) -> None:
        """A client of the user syncs (or streams) with ``set_presence=syncing_as``."""
        if not self._due(user_id, syncing_as):
            return
        self._written[user_id] = (self._clock.monotonic(), syncing_as)
        row = await store.refresh_active(self._pool, user_id, self._now_ms())
        if row is not None and rules.after_sync(row.state, row.chosen, syncing_as) is None:
            return
        await self._persister.update(partial(self._sync_state, user_id=user_id, syncing_as=syncing_as))

    async def _sync_state(self, conn: Database, *, user_id: str, syncing_as: str) -> int | None:
        """Under the stream lock: moves the user to the state syncing asks
        for, unless another write got there first (or they chose theirs)."""
        row = await store.get_presence(conn, user_id)
        state = rules.after_sync(row.state if row else None, row.chosen if row else False, syncing_as)
        if state is None:
            return None
        return await store.put_presence(
            conn, user_id=user_id, state=state, status_msg=None, keep_status=True, chosen=False, now_ms=self._now_ms()
        )

    def seen_soon(self, user_id: str, syncing_as: str) -> None:
        """seen() for callers that do not wait for it (an open stream's pong)."""
        if self._due(user_id, syncing_as):
            asyncio.ensure_future(self._seen_logged(user_id, syncing_as))

    async def _seen_logged(self, user_id: str, syncing_as: str) -> None:
        try:
            await self.seen(user_id, syncing_as)
        except Exception:  # a background write: log it, the next one retries
            log.exception("cannot record the presence of %s", user_id)

    # -- choosing and reading -----------------------------------------------------------

    async def set_status(
        self, requester: Requester, user_id: str, state: str, status_msg: str | None, keep_status: bool
    ) -> None:
        if user_id != requester.user_id:
            raise forbidden("You may only set your own presence")
        self._written[user_id] = (self._clock.monotonic(), state)
        await self._persister.update(
            partial(
                store.put_presence,
                user_id=user_id,
                state=state,
                status_msg=status_msg,
                keep_status=keep_status,
                chosen=state != rules.ONLINE,
                now_ms=self._now_ms(),
            )
        )

    async def status(self, requester: Requester, user_id: str) -> dict[str, Any]:
        if user_id != requester.user_id:
            if await user_store.get_user(self._pool, user_id) is None:
                raise not_found("Unknown user")
            if not requester.is_moderator and not await store.shares_room(self._pool, requester.user_id, user_id):
                raise forbidden("You share no room with this user")
        row = await store.get_presence(self._pool, user_id)
        if row is None:
            return {"presence": rules.OFFLINE}
        return rules.presence_content(
            row.state, row.status_msg, row.last_active_ts, self._now_ms(), self.active_window_ms
        )

    async def events_since(self, user_id: str, after: int | None, upto: int) -> list[dict[str, Any]]:
        """The m.presence events a sync answer carries."""
        now = self._now_ms()
        return [
            rules.presence_event(row.user_id, row.state, row.status_msg, row.last_active_ts, now, self.active_window_ms)
            for row in await store.presence_since(self._pool, user_id, after, upto)
        ]

    # -- going offline ------------------------------------------------------------------

    async def sweep(self) -> None:
        """Sets offline everyone no process has seen for the timeout."""
        cutoff = self._now_ms() - self.timeout_ms
        forget_before = self._clock.monotonic() - self.timeout_ms / 1000
        for user_id, (written, _state) in list(self._written.items()):
            if written < forget_before:
                del self._written[user_id]
        if await store.any_lapsed(self._pool, cutoff):
            await self._persister.update(partial(store.set_lapsed_offline, before_ms=cutoff))

    async def _sweep_forever(self) -> None:
        while True:
            await self._clock.sleep(self.refresh_seconds)
            try:
                await self.sweep()
            except Exception:  # the database may be away for a moment: try next time
                log.exception("presence sweep failed; retrying")
