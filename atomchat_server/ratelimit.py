"""Token-bucket rate limits, kept per process and keyed by address or
account, and caps on what one account holds open at once."""

from __future__ import annotations

import math

from .clock import REAL, Clock
from .errors import MatrixError, limit_exceeded


class RateLimiter:
    def __init__(self, per_second: float, burst: int, max_keys: int = 100_000, clock: Clock = REAL) -> None:
        self.per_second = per_second
        self._clock = clock
        self.burst = max(1, burst)
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def _tokens(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - updated) * self.per_second)

    def check(self, key: str, *, consume: bool = True) -> None:
        """Raises M_LIMIT_EXCEEDED with the wait in retry_after_ms when the key's
        bucket is empty; otherwise takes one token from it (unless told not to)."""
        now = self._clock.monotonic()
        tokens = self._tokens(key, now)
        if tokens < 1:
            wait = (1 - tokens) / self.per_second if self.per_second > 0 else 3600.0
            raise limit_exceeded(max(1, math.ceil(wait * 1000)))
        if consume:
            self.consume(key, now=now, tokens=tokens)

    def consume(self, key: str, *, now: float | None = None, tokens: float | None = None) -> None:
        now = self._clock.monotonic() if now is None else now
        tokens = self._tokens(key, now) if tokens is None else tokens
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._prune(now)
        self._buckets[key] = (tokens - 1, now)

    def _prune(self, now: float) -> None:
        """Drops buckets that have refilled: they hold nothing worth remembering."""
        full = [k for k in self._buckets if self._tokens(k, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()


class OpenPerAccount:
    """How many of one kind of long-lived request (WebSocket streams,
    waiting long-polls) each account holds open in this process, refused
    past ``limit``: one stolen or buggy token cannot hold the server's
    sockets and memory."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self._what = what
        self._open: dict[str, int] = {}

    def take(self, user_id: str) -> None:
        """Counts one more, or raises 429 M_LIMIT_EXCEEDED at the limit."""
        count = self._open.get(user_id, 0)
        if count >= self.limit:
            raise MatrixError(
                429, "M_LIMIT_EXCEEDED", f"Too many open {self._what} for this account (at most {self.limit})"
            )
        self._open[user_id] = count + 1

    def total(self) -> int:
        """How many are open, over all accounts (for the metrics)."""
        return sum(self._open.values())

    def give_back(self, user_id: str) -> None:
        count = self._open.get(user_id, 0) - 1
        if count > 0:
            self._open[user_id] = count
        else:
            self._open.pop(user_id, None)
