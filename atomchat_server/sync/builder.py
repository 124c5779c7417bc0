"""Assembles /sync responses: what changed for a user between two stream positions.

``since`` and ``upto`` are positions in the global stream; every event with a
position in (since, upto] that the user may see is in the response exactly
once, in stream order. ``upto`` is always a position the notifier knows to be
complete (every event at or below it is committed), so a client resuming from
``next_batch`` neither misses nor repeats an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..auth.sessions import Requester
from ..events.filters import RoomEventFilter, SyncFilter
from ..events.format import client_event, stripped_state
from ..events.visibility import visible_ranges
from ..storage import events as event_store
from ..storage import sync as sync_store
from . import tokens

DEFAULT_TIMELINE_LIMIT = 20
# State a client is shown for a room it is invited to.
INVITE_STATE_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.canonical_alias",
                      "m.room.avatar", "m.room.encryption", "m.room.topic")


@dataclass(frozen=True)
class SyncResult:
    body: dict[str, Any]
    empty: bool  # nothing happened for the user: a long-poll should keep waiting
    joined_rooms: frozenset[str]  # the rooms the user is in: what a long-poll listens to


class SyncBuilder:
    def __init__(self, pool) -> None:
        self._pool = pool

    async def sync(self, requester: Requester, *, since: int | None, upto: int, sync_filter: SyncFilter,
                   full_state: bool) -> SyncResult:
        user_id = requester.user_id
        joined: dict[str, Any] = {}
        invited: dict[str, Any] = {}
        left: dict[str, Any] = {}
        steady: list[str] = []
        member_of: list[str] = []
        for membership in await sync_store.user_memberships(self._pool, user_id):
            room_id = membership["room_id"]
            if not sync_filter.wants_room(room_id):
                continue
            now = await self._membership_at(room_id, user_id, membership, upto)
            if now is None:
                continue
            then = None
            if since is not None:
                then = now if membership["stream"] <= since else await self._membership_at(
                    room_id, user_id, membership, since)
            if now["membership"] == "join":
                member_of.append(room_id)
                if since is not None and then is not None and then["membership"] == "join" and not full_state:
                    steady.append(room_id)
                else:
                    joined[room_id] = await self._joined_room(requester, room_id, None, upto, sync_filter)
            elif now["membership"] == "invite":
                if since is None or now["stream"] > since:
                    invited[room_id] = await self._invited_room(room_id, now)
            elif (since is not None and now["stream"] > since and then is not None
                  and then["membership"] in ("join", "invite")) or (since is None and sync_filter.include_leave):
                if not membership["forgotten"]:
                    left[room_id] = await self._left_room(requester, room_id, since, now, sync_filter)

        if steady:
            for room_id in await sync_store.rooms_changed_since(self._pool, steady, since):
                room = await self._joined_room(requester, room_id, since, upto, sync_filter)
                if room["timeline"]["events"]:
                    joined[room_id] = room

        body = {
            "next_batch": tokens.make(upto),
            "rooms": {"join": joined, "invite": invited, "leave": left},
            "account_data": {"events": []},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        }
        return SyncResult(body, empty=not (joined or invited or left), joined_rooms=frozenset(member_of))

    async def _membership_at(self, room_id: str, user_id: str, current, position: int):
        """The user's membership row as of ``position`` (None if they had none)."""
        if current["stream"] <= position:
            return current
        row = await event_store.state_event(self._pool, room_id, "m.room.member", user_id, at_stream=position)
        if row is None:
            return None
        return {"membership": row["content"].get("membership"), "stream": row["stream"], "event_id": row["event_id"]}

    def _format(self, rows, requester: Requester) -> list[dict[str, Any]]:
        device = (requester.user_id, requester.device_id)
        return [client_event(row, device=device) for row in rows]

    async def _timeline(self, room_id: str, after: int | None, upto: int, flt: RoomEventFilter,
                        ranges) -> tuple[list[Any], bool]:
        types, not_types = flt.type_patterns()
        return await sync_store.timeline(
            self._pool, room_id, after=after, upto=upto, limit=flt.limit or DEFAULT_TIMELINE_LIMIT, ranges=ranges,
            types=types, not_types=not_types, senders=list(flt.senders) if flt.senders is not None else None,
            not_senders=list(flt.not_senders) or None)

    async def _ranges(self, room_id: str, user_id: str):
        visibility = await event_store.state_event(self._pool, room_id, "m.room.history_visibility", "")
        setting = visibility["content"].get("history_visibility", "shared") if visibility else "shared"
        history = await event_store.membership_history(self._pool, room_id, user_id)
        return visible_ranges(history, setting) or [(0, 0)]

    async def _joined_room(self, requester: Requester, room_id: str, since: int | None, upto: int,
                           sync_filter: SyncFilter) -> dict[str, Any]:
        """A joined room's section. With ``since`` None, a full view (initial
        sync or newly joined): the newest events and the state before them;
        otherwise what happened after ``since``."""
        ranges = await self._ranges(room_id, requester.user_id) if since is None else ((0, None),)
        rows, limited = await self._timeline(room_id, since, upto, sync_filter.timeline, ranges)
        start = rows[0]["stream"] - 1 if rows else upto
        if since is None:
            state_rows = await event_store.state_at(self._pool, room_id, start)
        elif limited:
            state_rows = await sync_store.state_changes(self._pool, room_id, after=since, before=start + 1)
        else:
            state_rows = []
        state_rows = self._filter_state(state_rows, rows, requester.user_id, sync_filter.state,
                                        sync_filter.timeline.lazy_load_members or sync_filter.state.lazy_load_members)
        joined_count, invited_count = await sync_store.member_counts(self._pool, room_id)
        return {
            "timeline": {"events": self._format(rows, requester), "limited": limited, "prev_batch": tokens.make(start)},
            "state": {"events": self._format(state_rows, requester)},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "unread_notifications": {"highlight_count": 0, "notification_count": 0},
            "summary": {"m.joined_member_count": joined_count, "m.invited_member_count": invited_count},
        }

    @staticmethod
    def _filter_state(state_rows, timeline_rows, user_id: str, flt: RoomEventFilter, lazy_members: bool):
        senders = {row["sender"] for row in timeline_rows} | {user_id}
        kept = []
        for row in state_rows:
            if lazy_members and row["type"] == "m.room.member" and row["state_key"] not in senders:
                continue
            if flt.types is not None and not any(_type_matches(row["type"], t) for t in flt.types):
                continue
            if any(_type_matches(row["type"], t) for t in flt.not_types):
                continue
            kept.append(row)
        return kept

    async def _invited_room(self, room_id: str, membership) -> dict[str, Any]:
        rows = [row for row in await event_store.current_state(self._pool, room_id)
                if row["type"] in INVITE_STATE_TYPES]
        invite = await event_store.get_event(self._pool, membership["event_id"])
        inviter = await event_store.state_event(self._pool, room_id, "m.room.member", invite["sender"],
                                                at_stream=invite["stream"])
        if inviter is not None and inviter["event_id"] != invite["event_id"]:
            rows.append(inviter)
        events = [stripped_state(row) for row in rows] + [stripped_state(invite)]
        return {"invite_state": {"events": events}}

    async def _left_room(self, requester: Requester, room_id: str, since: int | None, membership,
                         sync_filter: SyncFilter) -> dict[str, Any]:
        """Events up to and including the user's leave (or ban)."""
        rows, limited = await self._timeline(room_id, since, membership["stream"], sync_filter.timeline,
                                             await self._ranges(room_id, requester.user_id))
        start = rows[0]["stream"] - 1 if rows else membership["stream"]
        return {
            "timeline": {"events": self._format(rows, requester), "limited": limited, "prev_batch": tokens.make(start)},
            "state": {"events": []},
            "account_data": {"events": []},
        }


def _type_matches(event_type: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
