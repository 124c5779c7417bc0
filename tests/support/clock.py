"""A server clock a test moves on instead of sleeping (atomchat_server.clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from atomchat_server.clock import Clock


class ShiftedClock(Clock):
    """The real time plus what the test has advanced it by: time still
    passes as usual (a timer also fires when its delay has really passed),
    and ``advance(seconds)`` jumps ahead at once, firing the timers that the
    jump makes due, earliest first."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._timers: set[_ShiftedTimer] = set()

    def advance(self, seconds: float) -> None:
        """Moves time on by ``seconds``. The timers that fall due run now,
        those set on another thread's loop as soon as that loop can; timers
        they set in turn fall after the new time, so each repeating timer
        fires at most once per advance."""
        assert seconds >= 0, "time does not go back"
        self.offset += seconds
        now = self.monotonic()
        for timer in sorted((t for t in self._timers if t.when <= now), key=lambda t: t.when):
            timer.fire_soon()

    def time(self) -> float:
        return super().time() + self.offset

    def monotonic(self) -> float:
        return super().monotonic() + self.offset

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _ShiftedTimer:
        timer = _ShiftedTimer(self, self.monotonic() + delay, callback, args)
        timer.handle = timer.loop.call_later(delay, timer.fire)
        self._timers.add(timer)
        return timer


class _ShiftedTimer:
    def __init__(self, clock: ShiftedClock, when: float, callback: Callable[..., Any], args: tuple) -> None:
        self.clock = clock
        self.when = when
        self.loop = asyncio.get_running_loop()
        self.handle: asyncio.TimerHandle | None = None
        self._callback = callback
        self._args = args
        self._done = False

    def cancel(self) -> None:
        self._finish()

    def fire(self) -> None:
        if not self._done:
            self._finish()
            self._callback(*self._args)

    def fire_soon(self) -> None:
        """Fires now if set on the calling thread's loop, else on its own."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop:
            self.fire()
        else:
            self.loop.call_soon_threadsafe(self.fire)

    def _finish(self) -> None:
        self._done = True
        self.clock._timers.discard(self)
        if self.handle is not None:
            self.handle.cancel()
