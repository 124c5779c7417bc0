"""Bridges PostgreSQL LISTEN/NOTIFY to this process.

One dedicated connection listens; what other processes (and this one)
commit is announced there, and the notifier hands it on. Today it carries
session revocations to the session cache. If the listening connection drops,
the cache is switched off (so no revoked token is honoured from memory) until
the notifier has listened again.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from .auth.sessions import SessionCache
from .storage.sessions import SESSIONS_CHANNEL

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, dsn: str, sessions: SessionCache) -> None:
        self._dsn = dsn
        self._sessions = sessions
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._keep_listening())

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(SESSIONS_CHANNEL, self._on_session_revoked)
        conn.add_termination_listener(lambda _conn: self._lost.set())
        self._conn = conn
        self._lost.clear()
        self._sessions.forget_all()
        self._sessions.enabled = True

    async def _keep_listening(self) -> None:
        delay = 0.5
        while True:
            await self._lost.wait()
            self._sessions.enabled = False
            self._sessions.forget_all()
            log.warning("lost the PostgreSQL LISTEN connection; reconnecting")
            try:
                await self._listen()
                delay = 0.5
                log.info("listening on PostgreSQL again")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot listen on PostgreSQL yet (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _on_session_revoked(self, _conn, _pid, _channel, user_id: str) -> None:
        self._sessions.forget_user(user_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._sessions.enabled = False
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
