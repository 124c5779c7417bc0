"""Rooms: creation, membership, sending, state and reading history.

Every change becomes an event committed through the Persister, which applies
the room authorization rules under the stream lock. Reads check history
visibility here, from the reader's membership history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import MatrixError, forbidden, not_found
from ..events import ids
from ..events.drafts import MAX_EVENT_BYTES, EventDraft
from ..events.filters import RoomEventFilter
from ..events.format import client_event
from ..events.pdu import build_pdu, finish_pdu
from ..events.power_levels import edits_directory, edits_members
from ..events.room_creation import RoomRequest, create_content, initial_events
from ..events.room_versions import room_version
from ..events.visibility import Range, can_see, visible_ranges
from ..storage import directory as directory_store
from ..storage import events as event_store
from ..storage import users as user_store
from ..sync import tokens
from .federation_join import RemoteMembership
from .moderation import Blocks
from .persister import Persister, Signer
from .relations import bundle, check_relation

MAX_PAGE = 1000


@dataclass(frozen=True)
class Page:
    chunk: list[dict[str, Any]]
    start: str
    end: str | None
    state: list[dict[str, Any]]


class Rooms:
    def __init__(self, *, pool: asyncpg.Pool, persister: Persister, signer: Signer, blocks: Blocks) -> None:
        self._pool = pool
        self._signer = signer
        self._blocks = blocks
        self._persister = persister
        self.server_name = signer.server_name
        # Joins of and invites to other servers' rooms and users; set when
        # the federation client is there (services/federation_join.py).
        self.remote: RemoteMembership | None = None

    # -- helpers -----------------------------------------------------------

    def _format(self, row: asyncpg.Record, requester: Requester | None) -> dict[str, Any]:
        device = (requester.user_id, requester.device_id) if requester else None
        return client_event(row, device=device)

    async def _profile(self, user_id: str) -> dict[str, Any]:
        user = await user_store.get_user(self._pool, user_id)
        if user is None:
            return {}
        return {k: user[k] for k in ("displayname", "avatar_url") if user[k] is not None}

    async def _require_local_user(self, user_id: str) -> None:
        parts = ids.split_user_id(user_id)
        if parts is None:
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user id {user_id!r}")
        if parts[1] != self.server_name or await user_store.get_user(self._pool, user_id) is None:
            raise not_found(f"Unknown user {user_id}")

    async def _require_room(self, room_id: str) -> asyncpg.Record:
        room = await event_store.get_room(self._pool, room_id)
        if room is None or room["deleted"]:
            raise not_found("Unknown room")
        return room

    async def _levels(self, room_id: str) -> dict[tuple[str, str], Any]:
        """The state that says who has which power level in the room."""
        return {k: dict(v) for k, v in (await event_store.state_events(
            self._pool, room_id, [("m.room.power_levels", ""), ("m.room.create", "")])).items()}

    @staticmethod
    def _check_size(draft: EventDraft) -> None:
        size = len(json.dumps(draft.as_event(), ensure_ascii=False).encode())
        if size > MAX_EVENT_BYTES - 1024:  # room for the fields the server adds
            raise MatrixError(413, "M_TOO_LARGE", f"The event is larger than {MAX_EVENT_BYTES} bytes")

    @staticmethod
    def _draft(requester: Requester, room_id: str, event_type: str, content: dict[str, Any],
               **fields: Any) -> EventDraft:
        """An event the requester asks for; a moderator's is judged as a moderator's."""
        return EventDraft(room_id=room_id, sender=requester.user_id, type=event_type, content=content,
                          by_moderator=requester.is_moderator, **fields)

    async def _write_one(self, draft: EventDraft, txn: tuple[str, str, str] | None = None) -> str:
        self._check_size(draft)
        rows = await self._persister.write([draft], txn=txn)
        return rows[0]["event_id"]

    # -- creating rooms ------------------------------------------------------

    async def create_room(self, requester: Requester, request: RoomRequest, *, alias_localpart: str | None,
                          publish: bool) -> str:
        self._blocks.require(requester.user_id, "create_room")
        version = room_version(request.room_version)
        create: EventDraft | None = None
        if version.room_id_is_create_event_id:
            create = self._create_event(requester.user_id, request)
            room_id = create.room_id
        else:
            room_id = ids.new_room_id(self.server_name)
        alias = f"#{alias_localpart}:{self.server_name}" if alias_localpart else None
        if alias and await directory_store.get_alias(self._pool, alias):
            raise MatrixError(400, "M_ROOM_IN_USE", "That room alias is taken")
        for user in request.invite:
            await self._require_local_user(user)
        if alias:
            request = RoomRequest(**{**request.__dict__, "canonical_alias": alias})
        drafts = initial_events(room_id, requester.user_id, request, await self._profile(requester.user_id), create)
        for draft in drafts:
            self._check_size(draft)
        try:
            await self._persister.write(drafts, new_room=version.identifier)
        except MatrixError as refusal:
            # The creator may do anything in a new room: a refused initial
            # event means the request asked for something invalid.
            if refusal.errcode != "M_FORBIDDEN":
                raise
            raise MatrixError(400, "M_INVALID_PARAM", f"The room's initial state is invalid: {refusal.error}") from None
        if alias:
            try:
                await directory_store.create_alias(self._pool, alias, room_id, requester.user_id)
            except directory_store.AliasTaken:
                raise MatrixError(400, "M_ROOM_IN_USE", "That room alias is taken") from None
        if publish:
            await directory_store.set_published(self._pool, room_id, True)
        return room_id

    def _create_event(self, creator: str, request: RoomRequest) -> EventDraft:
        """The signed m.room.create of a room whose id is made from it."""
        version = room_version(request.room_version)
        pdu = build_pdu(room_id="", sender=creator, event_type="m.room.create",
                        content=create_content(creator, request), state_key="", redacts=None,
                        origin_server_ts=int(time.time() * 1000), depth=1, prev_events=[], auth_events=[],
                        version=version)
        event_id, signed = finish_pdu(pdu, self._signer.server_name, self._signer.key, version)
        return EventDraft(room_id="!" + event_id[1:], sender=creator, type="m.room.create",
                          content=signed["content"], state_key="", event_id=event_id, pdu=signed)

    # -- membership ----------------------------------------------------------

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if ids.is_room_alias(room_id_or_alias):
            row = await directory_store.get_alias(self._pool, room_id_or_alias)
            if row is None:
                raise not_found("Unknown room alias")
            return row["room_id"]
        if not ids.is_room_id(room_id_or_alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Expected a room id or a room alias")
        return room_id_or_alias

    async def set_membership(self, requester: Requester, room_id: str, target: str, membership: str,
                             reason: str | None = None, extra: dict[str, Any] | None = None) -> str:
        if target != requester.user_id:
            parts = ids.split_user_id(target)
            if parts is None:
                raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user id {target!r}")
        # On oneself: the membership (leaving is what a suspended account keeps); on someone else: invite or kick.
        action = membership if target == requester.user_id else "invite" if membership == "invite" else "kick"
        self._blocks.require(requester.user_id, action)
        room = await self._require_room(room_id)
        if room["stub"] and membership == "leave" and target == requester.user_id and self.remote is not None:
            # Rejecting an invite to another server's room.
            return await self.remote.reject(requester.user_id, room_id, room["creator"].partition(":")[2], reason)
        content: dict[str, Any] = {"membership": membership}
        if membership in ("join", "invite"):
            content.update(await self._profile(target))
        if reason:
            content["reason"] = reason
        content.update(extra or {})
        return await self._write_one(self._draft(requester, room_id, "m.room.member", content, state_key=target))

    async def invite(self, requester: Requester, room_id: str, user_id: str, reason: str | None) -> None:
        parts = ids.split_user_id(user_id)
        if self.remote is not None and parts is not None and parts[1] != self.server_name:
            self._blocks.require(requester.user_id, "invite")
            await self._require_room(room_id)
            content: dict[str, Any] = {"reason": reason} if reason else {}
            await self.remote.invite(requester.user_id, room_id, user_id, content)
            return
        await self._require_local_user(user_id)
        await self.set_membership(requester, room_id, user_id, "invite", reason)

    async def moderate(self, requester: Requester, room_id: str, action: str, target: str,
                       reason: str | None) -> None:
        """kick, ban or unban. A kick and an unban both write a "leave", which
        the rules allow from either state; each keeps to its own meaning here,
        so an unban never removes a member and a kick never lifts a ban."""
        self._blocks.require(requester.user_id, "kick")
        if action != "ban":
            await self._require_room(room_id)
            row = await event_store.membership(self._pool, room_id, target)
            current = row["membership"] if row else "leave"
            if action == "unban" and current != "ban":
                raise forbidden(f"{target} is not banned from this room")
            if action == "kick" and current not in ("join", "invite", "knock"):
                raise forbidden(f"{target} is banned: only an unban lifts a ban" if current == "ban"
                                else f"{target} is not in this room")
        await self.set_membership(requester, room_id, target, "ban" if action == "ban" else "leave", reason)

    async def edit_members(self, requester: Requester, room_id: str, *, add: Sequence[str] = (),
                           remove: Sequence[str] = (), name: str | None = None) -> None:
        """The original API's edit of a room: its name and member changes
        as one unit, so a refused part changes nothing. Each change is the
        requester's own event, judged by the room's rules as a Matrix
        request would be: an added user is invited, and joined at once too
        only where the room lets the requester edit its member list
        (EDIT_MEMBERS); a removal is a leave the rules must allow."""
        if name is not None:
            self._blocks.require(requester.user_id, "state")
        if add:
            self._blocks.require(requester.user_id, "invite")
        if any(user_id != requester.user_id for user_id in remove):
            self._blocks.require(requester.user_id, "kick")
        await self._require_room(room_id)
        at_once = edits_members(await self._levels(room_id), requester.user_id)
        drafts = []
        if name is not None:
            drafts.append(self._draft(requester, room_id, "m.room.name", {"name": name}, state_key=""))
        for user_id in add:
            current = await event_store.membership(self._pool, room_id, user_id)
            membership = current["membership"] if current else None
            if membership == "join" or (membership == "invite" and not at_once):
                continue
            profile = await self._profile(user_id)
            if membership != "invite":
                drafts.append(self._draft(requester, room_id, "m.room.member", {"membership": "invite", **profile},
                                          state_key=user_id))
            if at_once:
                drafts.append(EventDraft(room_id=room_id, sender=user_id, type="m.room.member",
                                         content={"membership": "join", **profile}, state_key=user_id,
                                         added_by=requester.user_id))
        # The requester's own leave last: they act on the others as a member.
        for user_id in sorted(remove, key=lambda user_id: user_id == requester.user_id):
            drafts.append(self._draft(requester, room_id, "m.room.member", {"membership": "leave"},
                                      state_key=user_id))
        for draft in drafts:
            self._check_size(draft)
        if drafts:
            await self._persister.write(drafts)

    async def join(self, requester: Requester, room_id_or_alias: str, reason: str | None = None, *,
                   servers: Sequence[str] = ()) -> str:
        room_id = await self.resolve_room(room_id_or_alias)
        room = await event_store.get_room(self._pool, room_id)
        if self.remote is not None and (room is None or room["stub"]):
            # A room of another server: through the servers named, the one in
            # its id, or the one that sent the invite.
            self._blocks.require(requester.user_id, "join")
            via = list(servers)
            if ":" in room_id:
                via.append(room_id.partition(":")[2])
            if room is not None:
                via.append(room["creator"].partition(":")[2])
            profile = await self._profile(requester.user_id)
            if reason:
                profile["reason"] = reason
            await self.remote.join(requester.user_id, room_id, via, profile)
            return room_id
        await self.set_membership(requester, room_id, requester.user_id, "join", reason)
        return room_id

    async def forget(self, requester: Requester, room_id: str) -> None:
        row = await event_store.membership(self._pool, room_id, requester.user_id)
        if row is None:
            raise not_found("You have never been in this room")
        if row["membership"] in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
        await event_store.set_forgotten(self._pool, room_id, requester.user_id)

    async def joined_rooms(self, requester: Requester) -> list[str]:
        return await event_store.rooms_of(self._pool, requester.user_id)

    # -- sending ---------------------------------------------------------------

    async def send(self, requester: Requester, room_id: str, event_type: str, content: dict[str, Any],
                   txn_id: str) -> str:
        if event_type == "m.room.redaction":
            # In room version 10 what a redaction redacts is outside its content.
            raise MatrixError(400, "M_BAD_JSON", "Redact with PUT /rooms/{roomId}/redact/{eventId}/{txnId}")
        # The persister finds a retried transaction id, and refuses an unknown
        # or deleted room, inside its batch: nothing to ask the database first.
        self._blocks.require(requester.user_id, "send")
        await check_relation(self._pool, room_id, content)
        txn = (requester.user_id, requester.device_id, txn_id)
        return await self._write_one(self._draft(requester, room_id, event_type, content), txn)

    async def set_state(self, requester: Requester, room_id: str, event_type: str, state_key: str,
                        content: dict[str, Any]) -> str:
        self._blocks.require(requester.user_id, "state")
        await self._require_room(room_id)
        return await self._write_one(self._draft(requester, room_id, event_type, content, state_key=state_key))

    async def set_power_level(self, user_id: str, room_id: str, key: str, level: int) -> None:
        """Sets one key of the room's power levels, as ``user_id`` and judged
        by the room rules as their change (the server's upgrades of rooms
        it made; people change power levels with set_state)."""
        await self._require_room(room_id)
        current = await event_store.state_event(self._pool, room_id, "m.room.power_levels", "")
        content = dict(current["content"]) if current is not None else {}
        if content.get(key) != level:
            await self._write_one(EventDraft(room_id=room_id, sender=user_id, type="m.room.power_levels",
                                             content={**content, key: level}, state_key=""))

    async def redact(self, requester: Requester, room_id: str, event_id: str, txn_id: str,
                     reason: str | None) -> str:
        txn = (requester.user_id, requester.device_id, txn_id)
        existing = await event_store.transaction_event(self._pool, *txn)
        if existing is not None:
            return existing
        target = await event_store.get_event(self._pool, event_id)
        if target is None or target["room_id"] != room_id:
            raise not_found("Unknown event")
        self._blocks.require(requester.user_id, "redact" if target["sender"] == requester.user_id else "redact_others")
        content = {"reason": reason} if reason else {}
        return await self._write_one(self._draft(requester, room_id, "m.room.redaction", content, redacts=event_id),
                                     txn)

    # -- reading ---------------------------------------------------------------

    async def _access(self, requester: Requester, room_id: str) -> tuple[Any, list[Range]]:
        """What decides the requester's reading of the room (storage's
        read_access row) and the stretches of it they may read (a moderator:
        all). 404 for an unknown room, 403 if they may read none of it."""
        access = await event_store.read_access(self._pool, room_id, requester.user_id)
        if access is None or access["deleted"]:
            raise not_found("Unknown room")
        ranges = self._readable(requester, access)
        if not ranges:
            raise forbidden("You are not allowed to read this room")
        return access, ranges

    @staticmethod
    def _readable(requester: Requester, access: asyncpg.Record) -> list[Range]:
        """The stretches of a room the requester may read, from its
        read_access row (a moderator: all)."""
        if requester.is_moderator:
            return [(0, None)]
        return visible_ranges([tuple(entry) for entry in access["history"]],
                              access["history_visibility"] or "shared", forgotten=bool(access["forgotten"]))

    async def readable_rooms(self, requester: Requester) -> dict[str, list[Range]]:
        """Every room the requester has a membership in and may read some of,
        with the stretches they may read: what /messages would show them."""
        rows = await event_store.read_access_of_member(self._pool, requester.user_id)
        readable = {row["room_id"]: self._readable(requester, row) for row in rows}
        return {room_id: ranges for room_id, ranges in readable.items() if ranges}

    async def readable_ranges(self, requester: Requester, room_id: str) -> list[Range]:
        """The stretches of the room the requester may read (see _access)."""
        return (await self._access(requester, room_id))[1]

    async def _state_point(self, requester: Requester, room_id: str,
                           access_and_ranges: tuple[Any, list[Range]] | None = None) -> int | None:
        """None to read the current state; a stream position for someone who
        left (they see the state as it was when they left)."""
        access, ranges = access_and_ranges or await self._access(requester, room_id)
        last = ranges[-1][1]
        if last is None or access["membership"] == "join":
            return None
        return last

    async def state(self, requester: Requester, room_id: str) -> list[dict[str, Any]]:
        point = await self._state_point(requester, room_id)
        rows = (await event_store.current_state(self._pool, room_id) if point is None
                else await event_store.state_at(self._pool, room_id, point))
        return [self._format(row, requester) for row in rows]

    async def state_content(self, requester: Requester, room_id: str, event_type: str,
                            state_key: str) -> dict[str, Any]:
        point = await self._state_point(requester, room_id)
        row = await event_store.state_event(self._pool, room_id, event_type, state_key, at_stream=point)
        if row is None:
            raise not_found("No such state event")
        return row["content"]

    async def members(self, requester: Requester, room_id: str, *, membership: str | None,
                      not_membership: str | None) -> list[dict[str, Any]]:
        point = await self._state_point(requester, room_id)
        if point is None:
            rows = await event_store.member_events(
                self._pool, room_id, memberships=[membership] if membership else None,
                not_memberships=[not_membership] if not_membership else None)
        else:
            rows = [r for r in await event_store.state_at(self._pool, room_id, point)
                    if r["type"] == "m.room.member"
                    and (membership is None or r["content"].get("membership") == membership)
                    and (not_membership is None or r["content"].get("membership") != not_membership)]
        return [self._format(row, requester) for row in rows]

    async def joined_members(self, requester: Requester, room_id: str) -> dict[str, dict[str, Any]]:
        membership = await event_store.membership(self._pool, room_id, requester.user_id)
        if requester.is_moderator or membership is None or membership["membership"] != "join":
            await self._require_room(room_id)
            if not requester.is_moderator:
                raise forbidden("You are not in this room")
        return {row["state_key"]: {"display_name": row["content"].get("displayname"),
                                   "avatar_url": row["content"].get("avatar_url")}
                for row in await event_store.joined_members(self._pool, room_id)}

    async def event(self, requester: Requester, room_id: str, event_id: str) -> dict[str, Any]:
        ranges = await self.readable_ranges(requester, room_id)
        row = await event_store.get_event(self._pool, event_id)
        if row is None or row["room_id"] != room_id or not can_see(ranges, row["stream"]):
            raise not_found("Event not found")
        return (await bundle(self._pool, requester, room_id, [row], ranges))[0]

    async def context(self, requester: Requester, room_id: str, event_id: str, limit: int) -> dict[str, Any]:
        ranges = await self.readable_ranges(requester, room_id)
        row = await event_store.get_event(self._pool, event_id)
        if row is None or row["room_id"] != room_id or not can_see(ranges, row["stream"]):
            raise not_found("Event not found")
        limit = max(0, min(limit, MAX_PAGE))
        before = limit // 2
        earlier, later = await event_store.events_around(self._pool, room_id, row["stream"], before=before,
                                                        after=limit - before, ranges=ranges)
        last_stream = later[-1]["stream"] if later else row["stream"]
        state_rows = await event_store.state_at(self._pool, room_id, last_stream)
        events = await bundle(self._pool, requester, room_id, [row, *earlier, *later], ranges)
        return {
            "event": events[0],
            "events_before": events[1:1 + len(earlier)],
            "events_after": events[1 + len(earlier):],
            "start": tokens.make((earlier[-1]["stream"] if earlier else row["stream"]) - 1),
            "end": tokens.make(last_stream),
            "state": [self._format(r, requester) for r in state_rows],
        }

    async def messages(self, requester: Requester, room_id: str, *, from_token: str | None, to_token: str | None,
                       backwards: bool, limit: int, event_filter: RoomEventFilter) -> Page:
        access, ranges = await self._access(requester, room_id)
        limit = max(1, min(event_filter.limit or limit, MAX_PAGE))
        position = tokens.parse(from_token) if from_token else None
        bound = tokens.parse(to_token, "to") if to_token else None
        if position is None:
            # From the newest event of the room: its head (a later event of
            # another room changes nothing in this one).
            position = access["head_stream"] if backwards else 0
        types, not_types = event_filter.type_patterns()
        # One row more than the page tells whether anything follows it, so
        # `end` is left out exactly when the page reaches the end of what the
        # reader may see (no empty page after a full last one).
        query: dict[str, Any] = dict(ranges=ranges, types=types, not_types=not_types, limit=limit + 1,
                     senders=list(event_filter.senders) if event_filter.senders is not None else None,
                     not_senders=list(event_filter.not_senders) or None)
        if backwards:
            rows = await event_store.page(self._pool, room_id, after=bound, before=position, backwards=True, **query)
        else:
            rows = await event_store.page(self._pool, room_id, after=position, before=bound, backwards=False, **query)
        more = len(rows) > limit
        rows = rows[:limit]
        end = None
        if more:
            end = tokens.make(rows[-1]["stream"] - 1 if backwards else rows[-1]["stream"])
        state = []
        if event_filter.lazy_load_members and rows:
            # The senders' member events as the reader may know them: current
            # for a member, as they were at the leave for someone who left.
            point = await self._state_point(requester, room_id, (access, ranges))
            senders = sorted({row["sender"] for row in rows})
            state = [self._format(r, requester)
                     for r in await event_store.member_events_of(self._pool, room_id, senders, at_stream=point)]
        return Page(chunk=await bundle(self._pool, requester, room_id, rows, ranges), start=tokens.make(position),
                    end=end, state=state)

    # -- aliases and the directory ---------------------------------------------

    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        parts = alias[1:].partition(":")
        if not ids.is_room_alias(alias) or parts[2] != self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", f"Room aliases here end in ':{self.server_name}'")
        self._blocks.require(requester.user_id, "directory")
        membership = await event_store.membership(self._pool, room_id, requester.user_id)
        if membership is None or membership["membership"] != "join":
            await self._require_room(room_id)
            raise forbidden("You must be in the room to give it an alias")
        try:
            await directory_store.create_alias(self._pool, alias, room_id, requester.user_id)
        except directory_store.AliasTaken:
            raise MatrixError(409, "M_UNKNOWN", "That room alias is taken") from None

    async def lookup_alias(self, alias: str) -> str:
        row = await directory_store.get_alias(self._pool, alias)
        if row is None:
            raise not_found("Unknown room alias")
        return row["room_id"]

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        row = await directory_store.get_alias(self._pool, alias)
        if row is None:
            raise not_found("Unknown room alias")
        self._blocks.require(requester.user_id, "directory")
        if row["creator"] != requester.user_id and not edits_directory(await self._levels(row["room_id"]),
                                                                       requester.user_id):
            raise forbidden("Only the alias's creator or someone who may set the room's aliases may delete it")
        await directory_store.delete_alias(self._pool, alias)

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        """Publishing a room or taking it out of the directory: a server
        moderator, or a member with the level of m.room.canonical_alias."""
        self._blocks.require(requester.user_id, "directory")
        if not requester.is_moderator:
            membership = await event_store.membership(self._pool, room_id, requester.user_id)
            if membership is None or membership["membership"] != "join":
                await self._require_room(room_id)
                raise forbidden("You must be in the room to publish it")
            if not edits_directory(await self._levels(room_id), requester.user_id):
                raise forbidden("Publishing the room needs the power level to set its aliases "
                                "(m.room.canonical_alias)")
        else:
            await self._require_room(room_id)
        await directory_store.set_published(self._pool, room_id, visibility == "public")

    async def visibility(self, room_id: str) -> str:
        room = await event_store.get_room(self._pool, room_id)
        if room is None:
            raise not_found("Unknown room")
        return "public" if room["published"] else "private"

    async def public_rooms(self, *, limit: int, since: str | None, search: str | None) -> dict[str, Any]:
        limit = max(1, min(limit, 500))
        # The token is the last entry's place in the order (members, room id),
        # so a page follows on even when that room has left the directory.
        after = None
        if since:
            members, dot, room_id = since[1:].partition(".")
            if not since.startswith("p") or not members.isdigit() or len(members) > 12 or not ids.is_room_id(room_id):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid 'since' token")
            after = (int(members), room_id)
        pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if search else None
        rows = await directory_store.public_rooms(self._pool, search=pattern, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        chunk = []
        for row in rows:
            entry = {"room_id": row["room_id"], "num_joined_members": row["members"],
                     "world_readable": row["history_visibility"] == "world_readable",
                     "guest_can_join": row["guest_access"] == "can_join",
                     "join_rule": row["join_rule"] or "invite"}
            for key in ("name", "topic", "canonical_alias"):
                if row[key]:  # an empty value means unset: leave the key out
                    entry[key] = row[key]
            chunk.append(entry)
        body: dict[str, Any] = {"chunk": chunk}
        if more:
            body["next_batch"] = f"p{rows[-1]['members']}.{rows[-1]['room_id']}"
        return body

    async def profile_changed(self, user_id: str, profile: dict[str, Any]) -> None:
        """Re-sends the user's join event in each of their rooms with the new
        display name and avatar, as clients learn profiles from member events."""
        requester_rooms = await event_store.rooms_of(self._pool, user_id)
        for room_id in requester_rooms:
            member = await event_store.state_event(self._pool, room_id, "m.room.member", user_id)
            if member is None or member["content"].get("membership") != "join":
                continue
            # The old join's reason was about joining, not about this change.
            content = {k: v for k, v in member["content"].items()
                       if k not in ("displayname", "avatar_url", "reason")}
            content.update({k: v for k, v in profile.items() if v is not None})
            try:
                await self._write_one(EventDraft(room_id=room_id, sender=user_id, type="m.room.member",
                                                 content=content, state_key=user_id))
            except MatrixError:
                continue  # e.g. the user was removed meanwhile: nothing to update there
