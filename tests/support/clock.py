"""A server clock a test moves on instead of sleeping (atomchat_server.clock)."""

from __future__ import annotations

from atomchat_server.clock import Clock


class ShiftedClock(Clock):
    """The real time plus what the test has advanced it by: time still
    passes as usual, and ``advance(seconds)`` jumps ahead at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "time does not go back"
        self.offset += seconds

    def time(self) -> float:
        return super().time() + self.offset

    def monotonic(self) -> float:
        return super().monotonic() + self.offset
