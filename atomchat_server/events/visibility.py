"""History visibility: which stretches of a room's timeline a user may read.

The answer is a list of inclusive stream ranges computed from the user's
membership history in the room and the room's ``history_visibility``; the
storage layer reads only events inside them. The current visibility setting
governs the whole history (a simplification of the spec, which applies the
setting in force at each event).

History taken from other servers (backfill) lies at negative positions,
before the room's first event here. Reading history (/messages) sees it
where the setting lets the reader see the room's past (``floor=EARLIEST``);
sync opens its ranges at 0 (the default), since backfilled events are never
new.
"""

from __future__ import annotations

from collections.abc import Sequence

Range = tuple[int, int | None]  # (first, last) stream positions; last None: still open

# The lowest position a range may open at: before any backfilled event.
EARLIEST = -(10**18) + 1

_PRESENT = {"joined": {"join"}, "invited": {"join", "invite"}}


def visible_ranges(
    history: Sequence[tuple[int, str]], history_visibility: str, forgotten: bool = False, *, floor: int = 0
) -> list[Range]:
    """``history`` is the user's membership events in the room as (stream,
    membership), oldest first. An empty result means the user may read
    nothing. No range opens below ``floor``."""
    if history_visibility == "world_readable":
        return [(floor, None)]
    if forgotten:
        return []
    if history_visibility in _PRESENT:
        periods = _periods(history, _PRESENT[history_visibility])
        return [(max(lo, floor), hi) for lo, hi in periods if hi is None or hi >= floor]
    # "shared" (and anything unknown, read as the spec's default "shared"):
    # everything up to the end of the user's last time in the room.
    joined = _periods(history, {"join"})
    if not joined or (joined[-1][1] is not None and joined[-1][1] < floor):
        return []
    return [(floor, joined[-1][1])]


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


def server_ranges(histories: Sequence[Sequence[tuple[int, str]]], history_visibility: str) -> list[Range]:
    """What another server may read of a room: what any of its users may
    (``histories``: each user's membership history, as for
    visible_ranges), including history this server took in by backfill."""
    ranges: list[Range] = []
    for history in histories:
        ranges.extend(visible_ranges(history, history_visibility, floor=EARLIEST))
    return ranges
