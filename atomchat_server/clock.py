"""The time the server reads, and the timers it sets, where a test needs to
move time on: an access token's expiry, the rate limits' refill, a typing
notice's lapse, the stream's heartbeat and auth deadline, presence timeouts,
a parked sync session's expiry.

A server made without a clock reads the real one, whose timers are the
event loop's. The tests give theirs one they can advance
(tests/support/clock.py), which fires the timers that fall due, so that a
test of an expiry or a timeout moves time on instead of sleeping through it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    """A callback set to run later; ``cancel()`` before then stops it."""

    def cancel(self) -> None: ...


class Clock:
    """The real clock: wall time for what carries dates (a token's
    expiry), monotonic time for measuring intervals (a bucket's refill),
    and the running event loop's timers."""

    def time(self) -> float:
        """Seconds since the epoch, as time.time()."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds of a clock that never goes back, as time.monotonic()."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Runs ``callback(*args)`` on the running loop ``delay`` seconds from now."""
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    async def sleep(self, seconds: float) -> None:
        """Waits ``seconds`` of this clock."""
        done = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, _settle, done)
        try:
            await done
        finally:
            timer.cancel()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


REAL = Clock()
