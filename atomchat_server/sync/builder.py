"""Assembles /sync responses: what changed for a user between two stream positions.

``since`` and ``upto`` are positions in the global stream; every event with a
position in (since, upto] that the user may see is in the response exactly
once, in stream order. ``upto`` is always a position the notifier knows to be
complete (every event at or below it is committed), so a client resuming from
``next_batch`` neither misses nor repeats an event.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import asyncpg

from ..auth.sessions import Requester
from ..events.filters import DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT, RoomEventFilter, SyncFilter
from ..events.format import client_event, stripped_state
from ..events.visibility import Range, visible_ranges
from ..storage import ephemeral as ephemeral_store
from ..storage import events as event_store
from ..storage import keys as key_store
from ..storage import push as push_store
from ..storage import sync as sync_store
from ..storage.events import Event, Membership
from . import response, tokens

if TYPE_CHECKING:
    from ..notifier import TypingNotices
    from ..services.presence import Presence

# Notification counts stop here: a client shows "1000+", and the count stays cheap.
UNREAD_CAP = 1000
# To-device messages in one answer at most; more wait for the next.
TO_DEVICE_LIMIT = 100
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


@dataclass(frozen=True)
class ServiceReads:
    """What an answer reads through services/, which app hands in (the sync
    engine sits below services/, the room and key endpoints use the same)."""

    presence: Presence
    # services.relations.bundle: events in their client form with their aggregations
    bundle: Callable[[asyncpg.Pool, Requester, str, Sequence[Event], Sequence[Range]], Awaitable[list[dict[str, Any]]]]
    # services.keys.key_state: a device's one-time key counts and unused fallback key types
    key_state: Callable[[asyncpg.Pool, str, str], Awaitable[tuple[dict[str, int], list[str]]]]
    # services.keys.device_list_changes: (changed, left) for a user between two positions
    device_list_changes: Callable[[asyncpg.Pool, str, int, int], Awaitable[tuple[list[str], list[str]]]]


class _Membership(NamedTuple):
    """The user's membership of a room as of a position."""

    membership: str | None
    stream: int
    event_id: str


@dataclass
class SyncResult:
    body: dict[str, Any] | None
    empty: bool  # nothing happened for the user: a long-poll should keep waiting
    joined_rooms: frozenset[str]  # the rooms the user is in: what a listener follows
    text: str | None = None  # the body as JSON, when it was assembled as text
    # The position the answer reaches (its next_batch) when built from the
    # database: the one asked for, or less when it stops early (more is set).
    position: int | None = None
    more: bool = False
    typing_position: int = 0  # where the answer leaves the typing notices (notifier.TypingNotices)

    def json(self) -> str:
        if self.text is None:
            self.text = json.dumps(self.body, ensure_ascii=False, separators=(",", ":"))
        return self.text


class SyncBuilder:
    def __init__(self, pool: asyncpg.Pool, services: ServiceReads, typing: TypingNotices) -> None:
        self._pool = pool
        self._services = services
        self._typing = typing

    async def sync(
        self,
        requester: Requester,
        *,
        since: int | None,
        upto: int,
        sync_filter: SyncFilter,
        full_state: bool,
        typing_since: int | None = None,
    ) -> SyncResult:
        """The answer for what happened in (since, upto]; typing notices
        that changed after the typing position ``typing_since`` (None: all
        current ones)."""
        user_id = requester.user_id
        # At most TO_DEVICE_LIMIT to-device messages an answer: with more
        # waiting, the whole answer stops at the last one it carries, so the
        # next answer goes on from there, everything in one order.
        to_device = await key_store.to_device_between(
            self._pool, user_id, requester.device_id, since, upto, TO_DEVICE_LIMIT + 1
        )
        more = len(to_device) > TO_DEVICE_LIMIT
        if more:
            to_device = to_device[:TO_DEVICE_LIMIT]
            upto = to_device[-1].stream
        joined: dict[str, Any] = {}
        invited: dict[str, Any] = {}
        left: dict[str, Any] = {}
        steady: list[str] = []
        whole: list[str] = []  # joined rooms shown whole: the newest events and the state before them
        member_of: list[str] = []
        for membership in await sync_store.user_memberships(self._pool, user_id):
            room_id = membership.room_id
            if not sync_filter.wants_room(room_id):
                continue
            now = await self._membership_at(room_id, user_id, membership, upto)
            if now is None:
                continue
            then = None
            if since is not None:
                then = (
                    now
                    if membership.stream <= since
                    else await self._membership_at(room_id, user_id, membership, since)
                )
            if now.membership == "join":
                member_of.append(room_id)
                stayed = (
                    since is not None
                    and then is not None
                    and then.membership == "join"
                    and (membership.stream <= since or not await self._left_between(room_id, user_id, since, upto))
                )
                if stayed and not full_state:
                    steady.append(room_id)
                elif not stayed:
                    whole.append(room_id)
                    joined[room_id] = {}  # made below, all at once
                else:
                    # full_state resends the state, never events the client already has.
                    joined[room_id] = await self._joined_room(
                        requester, room_id, since if stayed else None, upto, sync_filter, full_state=full_state
                    )
            elif now.membership == "invite":
                if since is None or now.stream > since:
                    invited[room_id] = now  # made below, all at once
            elif not membership.forgotten and (
                (
                    since is not None
                    and now.stream > since
                    and then is not None
                    and then.membership in ("join", "invite")
                )
                or (since is None and sync_filter.include_leave)
            ):
                left[room_id] = now  # made below, all at once

        # The typers and the typing position are taken in one step, nothing
        # awaited between them: a notice changing while the rest is built is
        # then in the next answer, never in this one under a position that
        # precedes it (which made the next answer tell it again).
        typing_at = self._typing.position
        typers = {
            **self._typing.changes(set(steady), typing_since),
            **self._typing.changes({room_id for room_id in joined if room_id not in steady}, None),
        }
        if whole:
            joined.update(await self._whole_rooms(requester, whole, upto, sync_filter))
        if invited:
            invited = await self._invited_rooms(invited)
        if left:
            left = await self._left_rooms(requester, left, since, upto, sync_filter)
        account_rows = await ephemeral_store.account_data_since(self._pool, user_id, since, upto)
        room_account: dict[str, list[dict[str, Any]]] = {}
        for row in account_rows:
            if row.room_id:
                room_account.setdefault(row.room_id, []).append({"type": row.type, "content": row.content})
        if steady:
            assert since is not None, "a room is steady only between two syncs"
            ephemeral = await self._ephemeral(requester, steady, since, upto, typers)
            with_events = set(await sync_store.rooms_changed_since(self._pool, steady, since))
            changed = [
                room_id
                for room_id in steady
                if room_id in with_events or room_id in ephemeral or room_id in room_account
            ]
            rooms = await self._steady_rooms(requester, changed, since, upto, sync_filter)
            for room_id in changed:
                room = rooms[room_id]
                room["ephemeral"]["events"] = ephemeral.get(room_id, [])
                if room["timeline"]["events"] or room_id in ephemeral or room_id in room_account:
                    joined[room_id] = room
        fresh = [room_id for room_id in joined if room_id not in steady]
        if fresh:
            ephemeral = await self._ephemeral(requester, fresh, None, upto, typers)
            for room_id in fresh:
                joined[room_id]["ephemeral"]["events"] = ephemeral.get(room_id, [])
        for room_id, room in joined.items():
            room["account_data"]["events"] = room_account.get(room_id, [])
        await self.add_counts(user_id, joined, upto)

        device_lists = await self._device_lists(requester, since, upto)
        key_counts, unused_fallback = await self._services.key_state(self._pool, user_id, requester.device_id)
        body = response.answer(
            tokens.make_sync(upto, self._typing.mark(typing_at)),
            join=joined,
            invite=invited,
            leave=left,
            account_data=[{"type": row.type, "content": row.content} for row in account_rows if not row.room_id],
            presence=(
                await self._services.presence.events_since(user_id, since, upto)
                if sync_filter.presence.wants_type("m.presence")
                else []
            ),
            to_device=[{"sender": row.sender, "type": row.type, "content": row.content} for row in to_device],
            changed=device_lists["changed"],
            left=device_lists["left"],
            key_counts=key_counts,
            fallback_keys=unused_fallback,
        )
        empty = not (
            joined
            or invited
            or left
            or body["account_data"]["events"]
            or body["presence"]["events"]
            or to_device
            or device_lists["changed"]
            or device_lists["left"]
        )
        return SyncResult(
            body, empty=empty, joined_rooms=frozenset(member_of), position=upto, more=more, typing_position=typing_at
        )

    async def _device_lists(self, requester: Requester, since: int | None, upto: int) -> dict[str, list[str]]:
        """Whose devices changed after ``since`` (nothing in an initial sync)."""
        if since is None:
            return {"changed": [], "left": []}
        changed, left = await self._services.device_list_changes(self._pool, requester.user_id, since, upto)
        return {"changed": changed, "left": left}

    async def add_counts(self, user_id: str, joined: dict[str, Any], upto: int) -> None:
        """Fills in unread_notifications and summary for the joined rooms of a
        response that ends at ``upto``: events after it are the next answer's,
        which a session adds to these counts as they arrive."""
        if not joined:
            return
        unread = await push_store.notification_counts(self._pool, user_id, list(joined), UNREAD_CAP, upto)
        counts = await sync_store.member_counts(self._pool, list(joined))
        for room_id, room in joined.items():
            joined_count, invited_count = counts.get(room_id, (0, 0))
            notify, highlight = unread.get(room_id, (0, 0))
            response.counts(room, notify, highlight, joined_count, invited_count)

    async def _ephemeral(
        self,
        requester: Requester,
        room_ids: list[str],
        since: int | None,
        upto: int,
        typers: dict[str, list[str]],
    ) -> dict[str, list[dict[str, Any]]]:
        """m.typing and m.receipt events per room: the rooms' entries of
        ``typers`` (the typing changes the answer carries), and receipts
        changed in (since, upto]; with ``since`` None, the rooms' whole
        current receipts."""
        result: dict[str, list[dict[str, Any]]] = {}
        for room_id in room_ids:
            if room_id in typers:
                result[room_id] = [{"type": "m.typing", "content": {"user_ids": typers[room_id]}}]
        receipts: dict[str, dict[str, Any]] = {}
        for row in await ephemeral_store.receipts_since(self._pool, room_ids, since, upto):
            if row.receipt_type == "m.read.private" and row.user_id != requester.user_id:
                continue
            receipt: dict[str, Any] = {"ts": row.ts}
            if row.thread_id:
                receipt["thread_id"] = row.thread_id
            content = receipts.setdefault(row.room_id, {})
            content.setdefault(row.event_id, {}).setdefault(row.receipt_type, {})[row.user_id] = receipt
        for room_id, content in receipts.items():
            result.setdefault(room_id, []).append({"type": "m.receipt", "content": content})
        return result

    async def _left_between(self, room_id: str, user_id: str, since: int, upto: int) -> bool:
        """Whether the user was out of the room at some point in (since, upto]
        (left and joined again): then the room is shown as newly joined, with
        what history visibility allows, not as continuous."""
        history = await event_store.membership_history(self._pool, room_id, user_id)
        return any(since < stream <= upto and membership != "join" for stream, membership in history)

    async def _membership_at(
        self, room_id: str, user_id: str, current: Membership, position: int
    ) -> _Membership | None:
        """The user's membership as of ``position`` (None if they had none)."""
        if current.stream <= position:
            return _Membership(current.membership, current.stream, current.event_id)
        row = await event_store.state_event(self._pool, room_id, "m.room.member", user_id, at_stream=position)
        if row is None:
            return None
        return _Membership(row.content.get("membership"), row.stream, row.event_id)

    def _format(self, rows: Iterable[Event], requester: Requester) -> list[dict[str, Any]]:
        device = (requester.user_id, requester.device_id)
        return [client_event(row, device=device) for row in rows]

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
        return await self._services.bundle(self._pool, requester, room_id, rows, ranges)

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
        visibility = await event_store.state_event(self._pool, room_id, "m.room.history_visibility", "")
        setting = visibility.content.get("history_visibility", "shared") if visibility else "shared"
        history = await event_store.membership_history(self._pool, room_id, user_id)
        return visible_ranges(history, setting) or [(0, 0)]

    async def _joined_room(
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

    async def _steady_rooms(
        self, requester: Requester, room_ids: list[str], since: int, upto: int, sync_filter: SyncFilter
    ) -> dict[str, dict[str, Any]]:
        """_joined_room() with ``since`` for many rooms the user stayed in,
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

    async def _whole_rooms(
        self, requester: Requester, room_ids: list[str], upto: int, sync_filter: SyncFilter
    ) -> dict[str, dict[str, Any]]:
        """_joined_room() with ``since`` None for many rooms, in a fixed
        number of queries however many rooms there are (more only for rooms
        whose limited timelines hold events others relate to, bundled per
        room): the timelines in one, and the state before each from the
        rooms' current state, corrected for what changed since the start of
        the timeline."""
        user_id = requester.user_id
        access = await sync_store.read_access(self._pool, room_ids, user_id)
        ranges = {room_id: visible_ranges(access[room_id][1], access[room_id][0]) or [(0, 0)] for room_id in room_ids}
        timelines = await self._timelines(room_ids, ranges, None, upto, sync_filter.timeline)
        starts = {room_id: rows[0].stream - 1 if rows else upto for room_id, (rows, _) in timelines.items()}
        lazy = sync_filter.timeline.lazy_load_members or sync_filter.state.lazy_load_members
        members: dict[str, Sequence[str]] | None = None
        if lazy:  # of the member events, only those of the timeline's senders and the reader
            members = {
                room_id: sorted({str(row.sender) for row in rows} | {user_id})
                for room_id, (rows, _) in timelines.items()
            }
        current = await sync_store.current_states(self._pool, room_ids, members)
        # State that changed at or after the start of a timeline is read as it was just before.
        moved = [
            (room_id, row.type, row.key, starts[room_id])
            for room_id, rows in current.items()
            for row in rows
            if row.stream > starts[room_id]
        ]
        before = await sync_store.state_events_before(self._pool, moved) if moved else {}
        related = await self._related(timelines)
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
                events = await self._services.bundle(self._pool, requester, room_id, rows, ranges[room_id])
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

    async def _invited_rooms(self, invites: dict[str, _Membership]) -> dict[str, Any]:
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

    async def _left_rooms(
        self,
        requester: Requester,
        leaves: dict[str, _Membership],
        since: int | None,
        upto: int,
        sync_filter: SyncFilter,
    ) -> dict[str, Any]:
        """The sections of the rooms the user left or was banned from (their
        memberships, by room): the events up to and including the leave, in
        a fixed number of queries however many rooms (more only for limited
        timelines holding events others relate to, bundled per room)."""
        room_ids = list(leaves)
        access = await sync_store.read_access(self._pool, room_ids, requester.user_id)
        ranges = {room_id: visible_ranges(access[room_id][1], access[room_id][0]) or [(0, 0)] for room_id in room_ids}
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
                events = await self._services.bundle(self._pool, requester, room_id, rows, ranges[room_id])
            else:
                events = self._format(rows, requester)
            result[room_id] = response.left_room(events, limited=limited, prev_batch=tokens.make(start))
        return result
