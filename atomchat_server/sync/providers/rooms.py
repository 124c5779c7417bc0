"""Timeline and state: the sections of the rooms an answer covers, as the
membership provider split them (steady, shown whole, invited, left).

A room is read in batches however many there are: every query reads all of
the answer's rooms of one kind at once (initial sync costs as many queries
for twelve rooms as for three), bar the state changes of a limited steady
timeline and the bundles of a limited timeline others relate to. A steady
room is shown when its timeline, its ephemeral events or its account data
(written by the providers before this one) hold something; every joined
room's section takes those from the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from ...auth.sessions import Requester
from ...events.filters import DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT, RoomEventFilter, SyncFilter
from ...events.format import client_event, stripped_state
from ...events.visibility import Range, ranges_in_force
from ...storage import events as event_store
from ...storage import sync as sync_store
from ...storage.events import Event
from .. import response, tokens
from ..answer import Answer, MembershipAt, ServiceReads

# State a client is shown for a room it is invited to.
INVITE_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.topic",
)


async def provide(answer: Answer) -> None:
    rooms = RoomReader(answer.pool, answer.services)
    requester, sync_filter, since, upto = answer.requester, answer.sync_filter, answer.since, answer.upto
    whole = await rooms.whole(requester, answer.whole, upto, sync_filter) if answer.whole else {}
    for room_id in answer.fresh:
        if room_id in whole:
            answer.join[room_id] = whole[room_id]
        else:
            # full_state resends the state of a room the user stayed in, never events the client already has.
            answer.join[room_id] = await rooms.joined(requester, room_id, since, upto, sync_filter, full_state=True)
    if answer.invites:
        answer.invite = await rooms.invited(answer.invites)
    if answer.leaves:
        answer.leave = await rooms.left(requester, answer.leaves, since, upto, sync_filter)
    if answer.steady:
        assert since is not None, "a room is steady only between two syncs"
        with_events = set(await sync_store.rooms_changed_since(answer.pool, answer.steady, since))
        noted = answer.ephemeral.keys() | answer.room_account_data.keys()
        changed = [room_id for room_id in answer.steady if room_id in with_events or room_id in noted]
        steady = await rooms.steady(requester, changed, since, upto, sync_filter)
        for room_id in changed:
            room = steady[room_id]
            if room["timeline"]["events"] or room_id in noted:
                answer.join[room_id] = room
    for room_id, room in answer.join.items():
        room["ephemeral"]["events"] = answer.ephemeral.get(room_id, [])
        room["account_data"]["events"] = answer.room_account_data.get(room_id, [])


class RoomReader:
    """Builds room sections from the database through one pool."""

    def __init__(self, pool: asyncpg.Pool, services: ServiceReads) -> None:
        self._pool = pool
        self._bundle = services.bundle

    def _format(self, rows: Iterable[Event], requester: Requester) -> list[dict[str, Any]]:
        device = (requester.user_id, requester.device_id)
        now_ms = int(time.time() * 1000)  # once for all: an answer may hold thousands of events
        return [client_event(row, device=device, now_ms=now_ms) for row in rows]

    async def _timeline_events(
        self, requester: Requester, room_id: str, rows: Sequence[Event], limited: bool, ranges: Sequence[Range] | None
    ) -> list[dict[str, Any]]:
        """A timeline's events, with their bundled aggregations when it is
        limited (as the spec has it): a timeline that is not follows on from
        what the client has, which aggregates the new children itself.
        ``ranges`` None: the reader's visible stretches are read here."""
        if not limited:
            return self._format(rows, requester)
        if ranges is None:
            ranges = await self._ranges(room_id, requester.user_id)
        return await self._bundle(self._pool, requester, room_id, rows, ranges)

    async def _timeline(
        self, room_id: str, after: int | None, upto: int, flt: RoomEventFilter, ranges: Sequence[Range]
    ) -> tuple[list[Event], bool]:
        types, not_types = flt.type_patterns()
        return await sync_store.timeline(
            self._pool,
            room_id,
            after=after,
            upto=upto,
            limit=min(flt.limit or DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT),
            ranges=ranges,
            types=types,
            not_types=not_types,
            senders=list(flt.senders) if flt.senders is not None else None,
            not_senders=list(flt.not_senders) or None,
        )

    async def _ranges(self, room_id: str, user_id: str) -> list[Range]:
        return (await self._all_ranges([room_id], user_id))[room_id]

    async def _all_ranges(self, room_ids: list[str], user_id: str) -> dict[str, list[Range]]:
        """Per room, the stretches the user may read ([(0, 0)] for none:
        nothing of the timeline's positions)."""
        access = await sync_store.read_access(self._pool, room_ids, user_id)
        return {room_id: ranges_in_force(access[room_id][1], access[room_id][0]) or [(0, 0)] for room_id in room_ids}

    async def joined(
        self,
        requester: Requester,
        room_id: str,
        since: int | None,
        upto: int,
        sync_filter: SyncFilter,
        full_state: bool = False,
    ) -> dict[str, Any]:
        """A joined room's section. With ``since`` None, a full view (initial
        sync or newly joined): the newest events and the state before them;
        otherwise what happened after ``since``, with the whole state before
        the timeline when ``full_state``."""
        ranges: Sequence[Range] = await self._ranges(room_id, requester.user_id) if since is None else ((0, None),)
        rows, limited = await self._timeline(room_id, since, upto, sync_filter.timeline, ranges)
        start = rows[0].stream - 1 if rows else upto
        state_rows: Sequence[Event]
        if since is None or full_state:
            state_rows = await event_store.state_at(self._pool, room_id, start)
        elif limited:
            state_rows = await sync_store.state_changes(self._pool, room_id, after=since, before=start + 1)
        else:
            state_rows = []
        lazy = sync_filter.timeline.lazy_load_members or sync_filter.state.lazy_load_members
        if lazy and since is not None and not full_state:
            state_rows = await self._with_senders(room_id, state_rows, rows, requester.user_id, start)
        state_rows = self._filter_state(state_rows, rows, requester.user_id, sync_filter.state, lazy)
        return response.joined_room(
            await self._timeline_events(requester, room_id, rows, limited, ranges if since is None else None),
            limited=limited,
            prev_batch=tokens.make(start),
            state=self._format(state_rows, requester),
        )

    async def steady(
        self, requester: Requester, room_ids: list[str], since: int, upto: int, sync_filter: SyncFilter
    ) -> dict[str, dict[str, Any]]:
        """joined() with ``since`` for many rooms the user stayed in,
        in a fixed number of queries (more only per limited timeline: its
        state changes, and its bundle when others relate to its events)."""
        if not room_ids:
            return {}
        user_id = requester.user_id
        timelines = await self._timelines(
            room_ids, {room_id: ((0, None),) for room_id in room_ids}, since, upto, sync_filter.timeline
        )
        starts = {room_id: rows[0].stream - 1 if rows else upto for room_id, (rows, _) in timelines.items()}
        state: dict[str, Sequence[Event]] = {}
        for room_id, (_, limited) in timelines.items():
            state[room_id] = (
                await sync_store.state_changes(self._pool, room_id, after=since, before=starts[room_id] + 1)
                if limited
                else []
            )
        lazy = sync_filter.timeline.lazy_load_members or sync_filter.state.lazy_load_members
        if lazy:
            # The member events of the timeline's senders, as they were before it (see _with_senders).
            wanted = []
            for room_id, (rows, _) in timelines.items():
                known = {row.state_key for row in [*state[room_id], *rows] if row.type == "m.room.member"}
                wanted += [
                    (room_id, "m.room.member", sender, starts[room_id])
                    for sender in sorted({row.sender for row in rows} - known - {user_id})
                ]
            found = await sync_store.state_events_before(self._pool, wanted) if wanted else {}
            for room_id, _type, sender, _start in wanted:
                member = found.get((room_id, "m.room.member", sender))
                if member is not None:
                    state[room_id] = [*state[room_id], member]
            state = {room_id: sorted(rows, key=lambda row: row.stream) for room_id, rows in state.items()}
        related = await self._related(timelines)
        result: dict[str, dict[str, Any]] = {}
        for room_id in room_ids:
            rows, limited = timelines[room_id]
            state_rows = self._filter_state(state[room_id], rows, user_id, sync_filter.state, lazy)
            bundled = limited and any(row.event_id in related for row in rows)
            result[room_id] = response.joined_room(
                await self._timeline_events(requester, room_id, rows, bundled, None),
                limited=limited,
                prev_batch=tokens.make(starts[room_id]),
                state=self._format(state_rows, requester),
            )
        return result

    async def _timelines(
        self,
        room_ids: list[str],
        ranges: Mapping[str, Sequence[Range]],
        since: int | None,
        upto: int,
        flt: RoomEventFilter,
    ) -> dict[str, tuple[list[Event], bool]]:
        """_timeline() of many rooms, in one query."""
        types, not_types = flt.type_patterns()
        return await sync_store.timelines(
            self._pool,
            [(room_id, ranges[room_id]) for room_id in room_ids],
            after=since,
            upto=upto,
            limit=min(flt.limit or DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT),
            types=types,
            not_types=not_types,
            senders=list(flt.senders) if flt.senders is not None else None,
            not_senders=list(flt.not_senders) or None,
        )

    async def _related(self, timelines: dict[str, tuple[list[Event], bool]]) -> set[str]:
        """The events of the limited timelines that others relate to (whose
        timelines need bundling), in one query."""
        events = [
            (room_id, row.event_id)
            for room_id, (rows, limited) in timelines.items()
            if limited
            for row in rows
            if row.state_key is None
        ]
        return await sync_store.with_relations(self._pool, events) if events else set()

    async def whole(
        self, requester: Requester, room_ids: list[str], upto: int, sync_filter: SyncFilter
    ) -> dict[str, dict[str, Any]]:
        """joined() with ``since`` None for many rooms, in a fixed
        number of queries however many rooms there are (more only for rooms
        whose limited timelines hold events others relate to, bundled per
        room): the timelines in one, and the state before each from the
        rooms' current state, corrected for what changed since the start of
        the timeline."""
        user_id = requester.user_id
        ranges = await self._all_ranges(room_ids, user_id)
        timelines = await self._timelines(room_ids, ranges, None, upto, sync_filter.timeline)
        starts = {room_id: rows[0].stream - 1 if rows else upto for room_id, (rows, _) in timelines.items()}
        lazy = sync_filter.timeline.lazy_load_members or sync_filter.state.lazy_load_members
        members: dict[str, Sequence[str]] | None = None
        if lazy:  # of the member events, only those of the timeline's senders and the reader
            members = {
                room_id: sorted({str(row.sender) for row in rows} | {user_id})
                for room_id, (rows, _) in timelines.items()
            }
        # The state and the bundles' question are read side by side, on two of the pool's connections.
        current, related = await asyncio.gather(
            sync_store.current_states(self._pool, room_ids, members), self._related(timelines)
        )
        # State that changed at or after the start of a timeline is read as it was just before.
        moved = [
            (room_id, row.type, row.key, starts[room_id])
            for room_id, rows in current.items()
            for row in rows
            if row.stream > starts[room_id]
        ]
        before = await sync_store.state_events_before(self._pool, moved) if moved else {}
        result: dict[str, dict[str, Any]] = {}
        for room_id in room_ids:
            rows, limited = timelines[room_id]
            state_rows: list[Event] = []
            for row in current[room_id]:
                earlier = row if row.stream <= starts[room_id] else before.get((room_id, row.type, row.key))
                if earlier is not None:
                    state_rows.append(earlier)
            state_rows.sort(key=lambda row: row.stream)
            state_rows = self._filter_state(state_rows, rows, user_id, sync_filter.state, lazy)
            if limited and any(row.event_id in related for row in rows):
                events = await self._bundle(self._pool, requester, room_id, rows, ranges[room_id])
            else:
                events = self._format(rows, requester)
            result[room_id] = response.joined_room(
                events,
                limited=limited,
                prev_batch=tokens.make(starts[room_id]),
                state=self._format(state_rows, requester),
            )
        return result

    async def _with_senders(
        self, room_id: str, state_rows: Sequence[Event], timeline_rows: Sequence[Event], user_id: str, start: int
    ) -> Sequence[Event]:
        """Lazy loading, incremental: the member events of the timeline's
        senders join the state, as they were before the timeline, since the
        client may never have been sent them (the reader knows its own)."""
        known = {row.state_key for row in [*state_rows, *timeline_rows] if row.type == "m.room.member"}
        needed = sorted({row.sender for row in timeline_rows} - known - {user_id})
        if not needed:
            return state_rows
        extra = await event_store.member_events_of(self._pool, room_id, needed, at_stream=start)
        return sorted([*state_rows, *extra], key=lambda row: row.stream)

    @staticmethod
    def _filter_state(
        state_rows: Sequence[Event],
        timeline_rows: Sequence[Event],
        user_id: str,
        flt: RoomEventFilter,
        lazy_members: bool,
    ) -> list[Event]:
        senders = {row.sender for row in timeline_rows} | {user_id}
        kept = []
        for row in state_rows:
            if lazy_members and row.type == "m.room.member" and row.state_key not in senders:
                continue
            if not flt.wants_type(row.type):
                continue
            kept.append(row)
        return kept

    async def invited(self, invites: dict[str, MembershipAt]) -> dict[str, Any]:
        """The sections of the rooms the user is invited to (their
        memberships, by room), in three queries however many there are: the
        rooms' current state but their members, the invites, and the
        inviters' member events as of their invites."""
        room_ids = list(invites)
        current = await sync_store.current_states(self._pool, room_ids, {room_id: () for room_id in room_ids})
        events = await sync_store.events_by_id(self._pool, [membership.event_id for membership in invites.values()])
        invite_of = {room_id: events[membership.event_id] for room_id, membership in invites.items()}
        inviters = await sync_store.state_events_before(
            self._pool,
            [(room_id, "m.room.member", invite.sender, invite.stream) for room_id, invite in invite_of.items()],
        )
        result: dict[str, Any] = {}
        for room_id, invite in invite_of.items():
            rows = [row for row in current[room_id] if row.type in INVITE_STATE_TYPES]
            inviter = inviters.get((room_id, "m.room.member", invite.sender))
            if inviter is not None and inviter.event_id != invite.event_id:
                rows.append(inviter)
            result[room_id] = response.invited_room([stripped_state(row) for row in [*rows, invite]])
        return result

    async def left(
        self,
        requester: Requester,
        leaves: dict[str, MembershipAt],
        since: int | None,
        upto: int,
        sync_filter: SyncFilter,
    ) -> dict[str, Any]:
        """The sections of the rooms the user left or was banned from (their
        memberships, by room): the events up to and including the leave, in
        a fixed number of queries however many rooms (more only for limited
        timelines holding events others relate to, bundled per room)."""
        room_ids = list(leaves)
        ranges = await self._all_ranges(room_ids, requester.user_id)
        # Each room's timeline ends at the leave: its ranges are cut there.
        cut = {
            room_id: [
                (low, leaves[room_id].stream if high is None else min(high, leaves[room_id].stream))
                for low, high in ranges[room_id]
                if low <= leaves[room_id].stream
            ]
            or [(0, 0)]
            for room_id in room_ids
        }
        timelines = await self._timelines(room_ids, cut, since, upto, sync_filter.timeline)
        related = await self._related(timelines)
        result: dict[str, Any] = {}
        for room_id in room_ids:
            rows, limited = timelines[room_id]
            start = rows[0].stream - 1 if rows else leaves[room_id].stream
            if limited and any(row.event_id in related for row in rows):
                events = await self._bundle(self._pool, requester, room_id, rows, ranges[room_id])
            else:
                events = self._format(rows, requester)
            result[room_id] = response.left_room(events, limited=limited, prev_batch=tokens.make(start))
        return result
