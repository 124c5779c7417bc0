"""History visibility: which stretches of a room's timeline a user may read.

The answer is a list of inclusive stream ranges computed from the user's
membership history in the room and the room's ``history_visibility``; the
storage layer reads only events inside them. The current visibility setting
governs the whole history (a simplification of the spec, which applies the
setting in force at each event).
"""

from __future__ import annotations

from collections.abc import Sequence

Range = tuple[int, int | None]  # (first, last) stream positions; last None: still open

_PRESENT = {"joined": {"join"}, "invited": {"join", "invite"}}


def visible_ranges(history: Sequence[tuple[int, str]], history_visibility: str, forgotten: bool = False) -> list[Range]:
    """``history`` is the user's membership events in the room as (stream,
    membership), oldest first. An empty result means the user may read nothing."""
    if history_visibility == "world_readable":
        return [(0, None)]
    if forgotten:
        return []
    if history_visibility in _PRESENT:
        return _periods(history, _PRESENT[history_visibility])
    # "shared" (and anything unknown, read as the spec's default "shared"):
    # everything up to the end of the user's last time in the room.
    joined = _periods(history, {"join"})
    if not joined:
        return []
    return [(0, joined[-1][1])]


def _periods(history: Sequence[tuple[int, str]], present: set[str]) -> list[Range]:
    periods: list[Range] = []
    start: int | None = None
    for stream, membership in history:
        if membership in present and start is None:
            start = stream
        elif membership not in present and start is not None:
            periods.append((start, stream))  # the event that ends the period is still seen
            start = None
    if start is not None:
        periods.append((start, None))
    return periods


def can_see(ranges: Sequence[Range], stream: int) -> bool:
    return any(lo <= stream and (hi is None or stream <= hi) for lo, hi in ranges)
