"""Who is calling: turns an access token into a Requester, with a cache.

A token's signature is checked on every request; whether its session still
exists is answered from a per-process cache, filled from PostgreSQL on a miss.
Revocations reach the cache through ``forget_user``, called by the notifier
for every revocation committed by any process; while the notifier is not
listening, the cache is switched off and every request asks the database.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import unknown_token
from ..storage import sessions as session_store
from .tokens import TokenCodec

_LAST_SEEN_INTERVAL = 60.0  # seconds between last-seen writes per session


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str
    session_id: str
    is_moderator: bool


class SessionCache:
    def __init__(self, pool, codec: TokenCodec, max_entries: int = 50_000) -> None:
        self._pool = pool
        self._codec = codec
        self._max = max_entries
        self._entries: OrderedDict[str, Requester] = OrderedDict()
        self._generation = 0
        self._last_seen: dict[str, float] = {}
        self.enabled = False

    async def authenticate(self, token: str) -> Requester:
        """The requester the token speaks for; M_UNKNOWN_TOKEN if it is not
        genuine, has expired, or its session has ended."""
        claims = self._codec.read(token)
        requester = self._entries.get(claims.session_id)
        if requester is None:
            generation = self._generation
            row = await session_store.get_session(self._pool, claims.session_id)
            if row is None:
                raise unknown_token()
            requester = Requester(row["user_id"], row["device_id"], row["session_id"], row["is_moderator"])
            # Cache only if no revocation arrived while we were asking.
            if self.enabled and generation == self._generation:
                self._entries[claims.session_id] = requester
                if len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(claims.session_id)
        if (requester.user_id, requester.device_id) != (claims.user_id, claims.device_id):
            raise unknown_token()
        return requester

    def forget_user(self, user_id: str) -> None:
        self._generation += 1
        for session_id in [sid for sid, r in self._entries.items() if r.user_id == user_id]:
            del self._entries[session_id]

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()

    def due_for_last_seen(self, session_id: str) -> bool:
        """True at most once a minute per session: when to record last-seen."""
        now = time.monotonic()
        if now - self._last_seen.get(session_id, 0.0) < _LAST_SEEN_INTERVAL:
            return False
        if len(self._last_seen) > self._max:
            self._last_seen.clear()
        self._last_seen[session_id] = now
        return True
