"""History visibility: which stretches of a room's timeline a user may read.

The answer is a list of inclusive stream ranges computed from the user's
membership history in the room and the room's ``history_visibility``
settings; the storage layer reads only events inside them. Each event is
judged by the setting in force when it was sent (``ranges_in_force``, for
clients; ``server_sees``, for other servers), a setting change by the
setting before or after it.

History taken from other servers (backfill) lies at negative positions,
before the room's first event here. Reading history (/messages) sees it
where the setting lets the reader see the room's past (``floor=EARLIEST``);
sync opens its ranges at 0 (the default), since backfilled events are never
new.
"""

from __future__ import annotations

from bisect import bisect_right
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


def ranges_in_force(
    history: Sequence[tuple[int, str]],
    settings: Sequence[tuple[int, str]],
    forgotten: bool = False,
    *,
    floor: int = 0,
) -> list[Range]:
    """visible_ranges under each of the room's settings where it is in
    force. ``settings`` are the room's history_visibility events as (stream,
    setting), oldest first: each governs the events from itself to the next
    one, that next one included (a change is seen where the setting before
    or after it lets it be); the first also governs what came before it
    (history this server holds from before it, such as the create event);
    none at all is the spec's default, "shared"."""
    if len(settings) <= 1:
        return visible_ranges(history, settings[0][1] if settings else "shared", forgotten, floor=floor)
    ranges: list[Range] = []
    for at, (stream, setting) in enumerate(settings):
        start = floor if at == 0 else stream
        end = settings[at + 1][0] if at + 1 < len(settings) else None
        for lo, hi in visible_ranges(history, setting, forgotten, floor=floor):
            lo, hi = max(lo, start), hi if end is None else (end if hi is None else min(hi, end))
            if hi is None or lo <= hi:
                ranges.append((lo, hi))
    return _merged(ranges)


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


# One m.room.history_visibility event of a room: (stream, depth, setting,
# outlier). An outlier (the state taken in on joining, not yet placed in the
# history) has a position that says when this server learnt it, not where it
# was sent; its depth says where it stands among the events held.
SettingChange = tuple[int, int, str, bool]

DEFAULT_SETTING = "shared"


def server_sees(
    events: Sequence[tuple[int, int]],
    changes: Sequence[SettingChange],
    histories: Sequence[Sequence[tuple[int, str]]],
) -> list[bool]:
    """Whether another server may have each of ``events`` ((stream, depth))
    whole: whether one of its users (``histories``, as for visible_ranges)
    may see it under the setting in force at that event (``changes``, oldest
    first): the last change before it, or an outlier change of lower depth
    when that stands later. A setting change itself is seen when the setting
    before or after it lets it be; a user's own membership event when the
    membership before or after does (the ranges include both ends)."""
    merged: dict[str, tuple[list[int], list[Range]]] = {}

    def sees(setting: str, stream: int) -> bool:
        if setting not in merged:
            ranges = _merged(server_ranges(histories, setting))
            merged[setting] = ([lo for lo, _ in ranges], ranges)
        starts, ranges = merged[setting]
        at = bisect_right(starts, stream) - 1
        if at < 0:
            return False
        last = ranges[at][1]
        return last is None or stream <= last

    seen = []
    for stream, depth in events:
        before = _setting_at(changes, stream, depth, inclusive=False)
        after = _setting_at(changes, stream, depth, inclusive=True)
        seen.append(sees(before, stream) or (after != before and sees(after, stream)))
    return seen


def _setting_at(changes: Sequence[SettingChange], stream: int, depth: int, *, inclusive: bool) -> str:
    """The setting in force before the event at (stream, depth), or after
    it (``inclusive``: the event's own change counts)."""
    placed: SettingChange | None = None
    outlier: SettingChange | None = None
    for change in changes:
        at, at_depth, _, is_outlier = change
        if inclusive and at == stream:
            return change[2]
        if is_outlier:
            if at_depth < depth and (outlier is None or at_depth > outlier[1]):
                outlier = change
        elif at < stream:
            placed = change
    if placed is not None and (outlier is None or placed[1] >= outlier[1]):
        return placed[2]
    return outlier[2] if outlier is not None else DEFAULT_SETTING


def _merged(ranges: Sequence[Range]) -> list[Range]:
    """The ranges sorted, those overlapping made one."""
    out: list[Range] = []
    for lo, hi in sorted(ranges, key=lambda r: r[0]):
        if out and (out[-1][1] is None or lo <= out[-1][1] + 1):
            last_hi = out[-1][1]
            out[-1] = (out[-1][0], None if last_hi is None or hi is None else max(last_hi, hi))
        else:
            out.append((lo, hi))
    return out
