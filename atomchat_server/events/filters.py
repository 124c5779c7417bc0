"""Room event filters (the Matrix RoomEventFilter subset AtomChat honours)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..patterns import like_escape


class FilterError(ValueError):
    """The filter is not valid JSON of the expected shape."""


@dataclass(frozen=True)
class RoomEventFilter:
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    limit: int | None = None
    lazy_load_members: bool = False

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RoomEventFilter:
        if not isinstance(value, dict):
            raise FilterError("a filter must be a JSON object")

        def strings(key: str) -> tuple[str, ...] | None:
            if key not in value:
                return None
            items = value[key]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise FilterError(f"filter field '{key}' must be a list of strings")
            if any("\x00" in i for i in items):
                raise FilterError(f"filter field '{key}' cannot contain NUL characters")
            return tuple(items)

        limit = value.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise FilterError("filter field 'limit' must be a positive integer")
        lazy = value.get("lazy_load_members", False)
        if not isinstance(lazy, bool):
            raise FilterError("filter field 'lazy_load_members' must be a boolean")
        return cls(
            types=strings("types"),
            not_types=strings("not_types") or (),
            senders=strings("senders"),
            not_senders=strings("not_senders") or (),
            limit=limit,
            lazy_load_members=lazy,
        )

    def wants_type(self, event_type: str) -> bool:
        """Whether the types / not_types lists let this event type through."""
        if self.types is not None and not any(_matches(event_type, t) for t in self.types):
            return False
        return not any(_matches(event_type, t) for t in self.not_types)

    def type_patterns(self) -> tuple[list[str] | None, list[str] | None]:
        """The type filters as SQL LIKE patterns ('*' is the Matrix wildcard)."""
        return (
            _patterns(self.types) if self.types is not None else None,
            _patterns(self.not_types) if self.not_types else None,
        )


def _matches(event_type: str, pattern: str) -> bool:
    """A type against a Matrix type pattern, where '*' matches any run of characters."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), event_type) is not None


def _patterns(types: tuple[str, ...]) -> list[str]:
    return [like_escape(t).replace("*", "%") for t in types]


@dataclass(frozen=True)
class SyncFilter:
    """The parts of a Matrix sync filter that AtomChat honours."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    timeline: RoomEventFilter = RoomEventFilter()
    state: RoomEventFilter = RoomEventFilter()
    presence: RoomEventFilter = RoomEventFilter()  # its types / not_types decide whether m.presence comes

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SyncFilter:
        if not isinstance(value, dict):
            raise FilterError("a filter must be a JSON object")
        room = value.get("room", {})
        if not isinstance(room, dict):
            raise FilterError("filter field 'room' must be an object")
        rooms = room.get("rooms")
        not_rooms = room.get("not_rooms", [])
        for name, items in (("rooms", rooms or []), ("not_rooms", not_rooms)):
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise FilterError(f"filter field 'room.{name}' must be a list of strings")
        include_leave = room.get("include_leave", False)
        if not isinstance(include_leave, bool):
            raise FilterError("filter field 'room.include_leave' must be a boolean")
        return cls(
            rooms=tuple(rooms) if rooms is not None else None,
            not_rooms=tuple(not_rooms),
            include_leave=include_leave,
            timeline=RoomEventFilter.from_json(room.get("timeline", {})),
            state=RoomEventFilter.from_json(room.get("state", {})),
            presence=RoomEventFilter.from_json(value.get("presence", {})),
        )

    def wants_room(self, room_id: str) -> bool:
        return (self.rooms is None or room_id in self.rooms) and room_id not in self.not_rooms


# The most events a sync timeline carries, whatever the filter asks (as /messages).
MAX_TIMELINE_LIMIT = 1000
DEFAULT_TIMELINE_LIMIT = 20


def _type_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression matching any of these Matrix type patterns."""
    return re.compile(
        "|".join("(?:" + ".*".join(re.escape(part) for part in pattern.split("*")) + ")" for pattern in patterns)
        or "(?!)",
        re.DOTALL,
    )


class CompiledFilter:
    """A sync filter made ready to be applied, in memory, to events as they
    are dispatched: the sync engine's fast path asks it which rooms and
    which timeline events a client wants, without the database. ``number``
    tells compiled filters apart (answers made with equal filters are the
    same); equal filters are compiled once and share it."""

    __slots__ = (
        "source",
        "number",
        "timeline_limit",
        "lazy_members",
        "_rooms",
        "_not_rooms",
        "_types",
        "_not_types",
        "_senders",
        "_not_senders",
        "_every_room",
        "_every_event",
    )

    def __init__(self, source: SyncFilter, number: int) -> None:
        self.source = source
        self.number = number
        timeline = source.timeline
        self.timeline_limit = min(timeline.limit or DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT)
        # Lazy loading adds the senders' member events to an answer's state,
        # unless the state filter leaves member events out anyway.
        self.lazy_members = (timeline.lazy_load_members or source.state.lazy_load_members) and source.state.wants_type(
            "m.room.member"
        )
        self._rooms = frozenset(source.rooms) if source.rooms is not None else None
        self._not_rooms = frozenset(source.not_rooms)
        self._types = _type_regex(timeline.types) if timeline.types is not None else None
        self._not_types = _type_regex(timeline.not_types) if timeline.not_types else None
        self._senders = frozenset(timeline.senders) if timeline.senders is not None else None
        self._not_senders = frozenset(timeline.not_senders)
        self._every_room = self._rooms is None and not self._not_rooms
        self._every_event = (
            self._types is None and self._not_types is None and self._senders is None and not self._not_senders
        )

    def keeps_room(self, room_id: str) -> bool:
        return self._every_room or ((self._rooms is None or room_id in self._rooms) and room_id not in self._not_rooms)

    def keeps_event(self, event_type: str, sender: str) -> bool:
        """Whether a room's timeline shows an event of this type and sender."""
        if self._every_event:
            return True
        if self._types is not None and self._types.fullmatch(event_type) is None:
            return False
        if self._not_types is not None and self._not_types.fullmatch(event_type) is not None:
            return False
        if self._senders is not None and sender not in self._senders:
            return False
        return sender not in self._not_senders
