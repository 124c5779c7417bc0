"""Who is calling: turns an access token into a Requester, with a cache.

A token's signature is checked on every request; whether its session still
exists is answered from a per-process cache, filled from PostgreSQL on a miss.
Revocations reach the cache through ``forget_user``, called by the notifier
for every revocation committed by any process.

A revocation must be honoured at once, also by a process other than the one
that made it, so a cached answer is only given after a round trip on the
notifier's listening connection: PostgreSQL sends a listening connection
every notification committed before a query ahead of that query's answer,
so once the round trip is back, every revocation committed before the
request arrived has reached the cache. Concurrent requests share round
trips, which is what makes the cache cheaper than asking for the session.
While the notifier is not listening, nothing is cached and every request
asks the database.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg

from ..errors import unknown_token
from ..storage import sessions as session_store
from .tokens import TokenClaims, TokenCodec

_LAST_SEEN_INTERVAL = 60.0  # seconds between last-seen writes per session
_ROUND_TRIP_TIMEOUT = 10.0  # seconds before the listening connection counts as lost


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str
    session_id: str
    is_moderator: bool


class _RoundTrips:
    """Round trips on one connection, shared: at most one is in flight and
    one more queued behind it for everyone who arrived meanwhile."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._in_flight: asyncio.Future[bool] | None = None
        self._queued: asyncio.Future[bool] | None = None

    async def complete(self) -> bool:
        """True once a round trip that began after this call has come back;
        False if the connection failed."""
        if self._in_flight is None:
            future = self._in_flight = self._start()
        else:
            # The one in flight may have begun before this call: wait for the next.
            if self._queued is None:
                self._queued = asyncio.get_running_loop().create_future()
            future = self._queued
        return await asyncio.shield(future)

    def _start(self) -> asyncio.Future[bool]:
        task = asyncio.ensure_future(self._round_trip())
        task.add_done_callback(self._finished)
        return task

    async def _round_trip(self) -> bool:
        try:
            await self._conn.execute("SELECT 1", timeout=_ROUND_TRIP_TIMEOUT)
        except Exception:
            # Lost or unresponsive: the caller asks the database instead, and
            # closing the connection makes the notifier listen on a new one.
            if not self._conn.is_closed():
                self._conn.terminate()
            return False
        return True

    def _finished(self, _task: asyncio.Future[bool]) -> None:
        queued, self._queued = self._queued, None
        self._in_flight = None
        if queued is not None:
            self._in_flight = task = self._start()

            def settle(done: asyncio.Future[bool]) -> None:
                if not queued.done():
                    queued.set_result(not done.cancelled() and done.result())

            task.add_done_callback(settle)


class SessionCache:
    def __init__(self, pool: asyncpg.Pool, codec: TokenCodec, max_entries: int = 50_000) -> None:
        self._pool = pool
        self._codec = codec
        self._max = max_entries
        # session id -> (its requester, its oldest valid token generation)
        self._entries: OrderedDict[str, tuple[Requester, int]] = OrderedDict()
        self._generation = 0
        self._last_seen: dict[str, float] = {}
        self._round_trips: _RoundTrips | None = None

    def listening(self, conn: asyncpg.Connection | None) -> None:
        """Called by the notifier with the connection on which revocations
        arrive, or None while it has none. Either way the cache starts empty:
        what was revoked while nobody listened is unknown."""
        self.forget_all()
        self._round_trips = _RoundTrips(conn) if conn is not None else None

    async def authenticate(self, claims: TokenClaims) -> Requester:
        """The requester a token speaks for, given its claims (TokenCodec.read,
        which refused a token not genuine or expired); M_UNKNOWN_TOKEN if it
        has expired since, or its session has ended, or if a token of a
        later generation of its session (issued by a refresh) has been used.
        The first use of a new generation's token ends the older ones."""
        if self._codec.expired(claims):
            raise unknown_token("The access token has expired", soft_logout=True)
        entry = None
        if claims.session_id in self._entries and await self._caught_up():
            entry = self._entries.get(claims.session_id)  # gone if revoked meanwhile
        if entry is None:
            generation = self._generation
            row = await session_store.get_session(self._pool, claims.session_id)
            if row is None:
                raise unknown_token()
            entry = (
                # Interned: one copy of each, shared with the token's claims (tokens.py).
                Requester(
                    sys.intern(row.user_id), sys.intern(row.device_id), sys.intern(row.session_id), row.is_moderator
                ),
                row.oldest_valid_generation,
            )
            # Cache only if no revocation arrived while we were asking.
            if self._round_trips is not None and generation == self._generation:
                self._entries[claims.session_id] = entry
                if len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(claims.session_id)
        requester, oldest_valid = entry
        if (requester.user_id, requester.device_id) != (claims.user_id, claims.device_id):
            raise unknown_token()
        if claims.generation < oldest_valid:
            raise unknown_token("This access token was replaced by a refreshed one")
        if claims.generation > oldest_valid:
            await session_store.retire_generations_before(
                self._pool, claims.session_id, requester.user_id, claims.generation
            )
            self.forget_user(requester.user_id)  # at once here, as the NOTIFY does elsewhere
        return requester

    async def listening_alive(self) -> bool:
        """A round trip on the listening connection (shared with requests'):
        False if there is none or it failed, in which case it is dropped."""
        return await self._caught_up()

    async def _caught_up(self) -> bool:
        """True once every revocation committed before the call has been applied."""
        round_trips = self._round_trips
        return round_trips is not None and await round_trips.complete()

    def forget_user(self, user_id: str) -> None:
        self._generation += 1
        for session_id in [sid for sid, (r, _) in self._entries.items() if r.user_id == user_id]:
            del self._entries[session_id]

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()

    def due_for_last_seen(self, session_id: str) -> bool:
        """True at most once a minute per session: when to record last-seen."""
        now = time.monotonic()
        last = self._last_seen.get(session_id)
        if last is not None and now - last < _LAST_SEEN_INTERVAL:
            return False
        if len(self._last_seen) > self._max:
            self._last_seen.clear()
        self._last_seen[session_id] = now
        return True
