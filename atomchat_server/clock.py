"""The time the server reads where a test needs to move it on: an access
token's expiry and the rate limits' refill.

A server made without a clock reads the real one. The tests give theirs one
they can advance (tests/support/clock.py), so that a test of an expiry or a
refill moves time on instead of sleeping through it.
"""

from __future__ import annotations

import time


class Clock:
    """The real clock: wall time for what carries dates (a token's
    expiry), monotonic time for measuring intervals (a bucket's refill)."""

    def time(self) -> float:
        """Seconds since the epoch, as time.time()."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds of a clock that never goes back, as time.monotonic()."""
        return time.monotonic()


REAL = Clock()
