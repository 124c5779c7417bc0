"""Reading: state, members, single events, context and history pages, each
limited to the stretches of the room the reader may see (history
visibility, from the reader's membership history)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...auth.sessions import Requester
from ...errors import forbidden, not_found
from ...events.filters import RoomEventFilter
from ...events.visibility import EARLIEST, Range, can_see, ranges_in_force
from ...paging import fetch_page
from ...storage import backfill as backfill_store
from ...storage import events as event_store
from ...storage.events import Event, ReadAccess
from ...sync import tokens
from ..relations import bundle
from .base import RoomsBase

MAX_PAGE = 1000
# Fills from other servers one /messages page may wait for.
MAX_FILLS = 3


@dataclass(frozen=True)
class Page:
    chunk: list[dict[str, Any]]
    start: str
    end: str | None
    state: list[dict[str, Any]]


class Reading(RoomsBase):
    async def _access(self, requester: Requester, room_id: str) -> tuple[ReadAccess, list[Range]]:
        """What decides the requester's reading of the room (storage's
        read_access row) and the stretches of it they may read (a moderator:
        all). 404 for an unknown room, 403 if they may read none of it."""
        access = await event_store.read_access(self._pool, room_id, requester.user_id)
        if access is None or access.deleted:
            raise not_found("Unknown room")
        ranges = self._readable(requester, access)
        if not ranges:
            raise forbidden("You are not allowed to read this room")
        return access, ranges

    @staticmethod
    def _readable(requester: Requester, access: ReadAccess) -> list[Range]:
        """The stretches of a room the requester may read, from its
        read_access row (a moderator: all)."""
        if requester.is_moderator:
            return [(EARLIEST, None)]
        return ranges_in_force(access.history, access.settings, forgotten=bool(access.forgotten), floor=EARLIEST)

    async def readable_rooms(self, requester: Requester) -> dict[str, list[Range]]:
        """Every room the requester has a membership in and may read some of,
        with the stretches they may read: what /messages would show them."""
        rows = await event_store.read_access_of_member(self._pool, requester.user_id)
        readable = {row.room_id: self._readable(requester, row) for row in rows}
        return {room_id: ranges for room_id, ranges in readable.items() if ranges}

    async def readable_ranges(self, requester: Requester, room_id: str) -> list[Range]:
        """The stretches of the room the requester may read (see _access)."""
        return (await self._access(requester, room_id))[1]

    async def _state_point(
        self, requester: Requester, room_id: str, access_and_ranges: tuple[ReadAccess, list[Range]] | None = None
    ) -> int | None:
        """None to read the current state; a stream position for someone who
        left (they see the state as it was when they left)."""
        access, ranges = access_and_ranges or await self._access(requester, room_id)
        last = ranges[-1][1]
        if last is None or access.membership == "join":
            return None
        return last

    async def state(self, requester: Requester, room_id: str) -> list[dict[str, Any]]:
        point = await self._state_point(requester, room_id)
        rows = (
            await event_store.current_state(self._pool, room_id)
            if point is None
            else await event_store.state_at(self._pool, room_id, point)
        )
        return [self._format(row, requester) for row in rows]

    async def state_content(
        self, requester: Requester, room_id: str, event_type: str, state_key: str
    ) -> dict[str, Any]:
        point = await self._state_point(requester, room_id)
        row = await event_store.state_event(self._pool, room_id, event_type, state_key, at_stream=point)
        if row is None:
            raise not_found("No such state event")
        return row.content

    async def members(
        self, requester: Requester, room_id: str, *, membership: str | None, not_membership: str | None
    ) -> list[dict[str, Any]]:
        point = await self._state_point(requester, room_id)
        if point is None:
            rows = await event_store.member_events(
                self._pool,
                room_id,
                memberships=[membership] if membership else None,
                not_memberships=[not_membership] if not_membership else None,
            )
        else:
            rows = [
                r
                for r in await event_store.state_at(self._pool, room_id, point)
                if r.type == "m.room.member"
                and (membership is None or r.content.get("membership") == membership)
                and (not_membership is None or r.content.get("membership") != not_membership)
            ]
        return [self._format(row, requester) for row in rows]

    async def joined_members(self, requester: Requester, room_id: str) -> dict[str, dict[str, Any]]:
        if requester.is_moderator or not await event_store.is_joined(self._pool, room_id, requester.user_id):
            await self._require_room(room_id)
            if not requester.is_moderator:
                raise forbidden("You are not in this room")
        return {
            row.key: {
                "display_name": row.content.get("displayname"),
                "avatar_url": row.content.get("avatar_url"),
            }
            for row in await event_store.joined_members(self._pool, room_id)
        }

    async def readable_event(self, requester: Requester, room_id: str, event_id: str) -> tuple[Event, list[Range]]:
        """An event of the room's history that the requester may read, with
        the stretches of the room they may read (see _access). 404 for an
        event of another room, one they may not read, and an outlier: held
        without a place in the history (the state taken in on joining the
        room, until backfill places it), so no history read shows it."""
        ranges = await self.readable_ranges(requester, room_id)
        row = await event_store.get_event(self._pool, event_id)
        if row is None or row.room_id != room_id or row.outlier or not can_see(ranges, row.stream):
            raise not_found("Event not found")
        return row, ranges

    async def event(self, requester: Requester, room_id: str, event_id: str) -> dict[str, Any]:
        row, ranges = await self.readable_event(requester, room_id, event_id)
        return (await bundle(self._pool, requester, room_id, [row], ranges))[0]

    async def context(self, requester: Requester, room_id: str, event_id: str, limit: int) -> dict[str, Any]:
        row, ranges = await self.readable_event(requester, room_id, event_id)
        limit = max(0, min(limit, MAX_PAGE))
        before = limit // 2
        earlier, later = await event_store.events_around(
            self._pool, room_id, row.stream, before=before, after=limit - before, ranges=ranges
        )
        last_stream = later[-1].stream if later else row.stream
        state_rows = await event_store.state_at(self._pool, room_id, last_stream)
        events = await bundle(self._pool, requester, room_id, [row, *earlier, *later], ranges)
        return {
            "event": events[0],
            "events_before": events[1 : 1 + len(earlier)],
            "events_after": events[1 + len(earlier) :],
            "start": tokens.make((earlier[-1].stream if earlier else row.stream) - 1),
            "end": tokens.make(last_stream),
            "state": [self._format(r, requester) for r in state_rows],
        }

    async def _backfilled(self, room_id: str, rows: list[Any], read: Any, limit: int) -> tuple[list[Any], bool, bool]:
        """A backwards page that reached the oldest event held, after asking
        the room's other servers for what came before (services.backfill):
        the page read again, whether more follows it, and whether the last
        fill brought events (the next page may find more there)."""
        if self.history is None:
            return rows, False, False
        more = filled = False
        for _ in range(MAX_FILLS):
            lowest = await backfill_store.lowest_position(self._pool, room_id)
            filled = await self.history.fill(room_id, lowest)
            if not filled:
                break
            rows, more = await fetch_page(read, limit)
            if more:
                break
        return rows, more, filled

    async def messages(
        self,
        requester: Requester,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> Page:
        access, ranges = await self._access(requester, room_id)
        limit = max(1, min(event_filter.limit or limit, MAX_PAGE))
        position = tokens.parse(from_token) if from_token else None
        bound = tokens.parse(to_token, "to") if to_token else None
        if position is None:
            # From the newest event of the room: its head (a later event of
            # another room changes nothing in this one).
            position = access.head_stream if backwards else EARLIEST
        types, not_types = event_filter.type_patterns()
        after, before = (bound, position) if backwards else (position, bound)

        def read(n: int) -> Any:
            return event_store.page(
                self._pool,
                room_id,
                after=after,
                before=before,
                backwards=backwards,
                ranges=ranges,
                types=types,
                not_types=not_types,
                limit=n,
                senders=list(event_filter.senders) if event_filter.senders is not None else None,
                not_senders=list(event_filter.not_senders) or None,
            )

        # `end` is left out exactly when the page reaches the end of what the
        # reader may see (paging.py), here and on the room's other servers.
        rows, more = await fetch_page(read, limit)
        filled = False
        if backwards and not more and bound is None and ranges[0][0] < 0:
            rows, more, filled = await self._backfilled(room_id, rows, read, limit)
        end = None
        if more or (filled and rows):
            end = tokens.make(rows[-1].stream - 1 if backwards else rows[-1].stream)
        state = []
        if event_filter.lazy_load_members and rows:
            # The senders' member events as the reader may know them: current
            # for a member, as they were at the leave for someone who left.
            point = await self._state_point(requester, room_id, (access, ranges))
            senders = sorted({row.sender for row in rows})
            state = [
                self._format(r, requester)
                for r in await event_store.member_events_of(self._pool, room_id, senders, at_stream=point)
            ]
        return Page(
            chunk=await bundle(self._pool, requester, room_id, rows, ranges),
            start=tokens.make(position),
            end=end,
            state=state,
        )
