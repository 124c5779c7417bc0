"""Membership: joining (here or through another server), inviting,
leaving, kicking and banning, forgetting, and keeping members' profiles in
their member events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...auth.sessions import Requester
from ...errors import MatrixError, forbidden, invalid_param, not_found
from ...events import ids
from ...events.drafts import EventDraft
from ...storage import directory as directory_store
from ...storage import events as event_store
from .base import RoomsBase, member_profile, requested


class Membership(RoomsBase):
    async def resolve_room(self, room_id_or_alias: str) -> tuple[str, list[str]]:
        """The room an id or alias names, and the servers to join it
        through that the directory of another server's alias lists (none
        for an id or one of this server's aliases)."""
        if ids.is_room_alias(room_id_or_alias):
            if self.remote_aliases is not None and ids.server_of(room_id_or_alias) != self.server_name:
                found = await self.remote_aliases(room_id_or_alias)
                return found["room_id"], found["servers"]
            row = await directory_store.get_alias(self._pool, room_id_or_alias)
            if row is None:
                raise not_found("Unknown room alias")
            return row.room_id, []
        if not ids.is_room_id(room_id_or_alias):
            raise invalid_param("Expected a room id or a room alias")
        return room_id_or_alias, []

    async def set_membership(
        self,
        requester: Requester,
        room_id: str,
        target: str,
        membership: str,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        if target != requester.user_id:
            parts = ids.split_user_id(target)
            if parts is None:
                raise invalid_param(f"Invalid user id {target!r}")
        # On oneself: the membership (leaving is what a suspended account keeps); on someone else: invite or kick.
        action = membership if target == requester.user_id else "invite" if membership == "invite" else "kick"
        self._blocks.require(requester.user_id, action)
        room = await self._require_room(room_id)
        if room.stub and membership == "leave" and target == requester.user_id and self.remote is not None:
            # Rejecting an invite to another server's room.
            return await self.remote.reject(requester.user_id, room_id, ids.server_of(room.creator), reason)
        content: dict[str, Any] = {"membership": membership}
        if membership in ("join", "invite"):
            content.update(await member_profile(self._pool, target))
        if reason:
            content["reason"] = reason
        content.update(extra or {})
        return await self._write_one(requested(requester, room_id, "m.room.member", content, state_key=target))

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

    async def moderate(self, requester: Requester, room_id: str, action: str, target: str, reason: str | None) -> None:
        """kick, ban or unban. A kick and an unban both write a "leave", which
        the rules allow from either state; each keeps to its own meaning here,
        so an unban never removes a member and a kick never lifts a ban."""
        self._blocks.require(requester.user_id, "kick")
        if action != "ban":
            await self._require_room(room_id)
            row = await event_store.membership(self._pool, room_id, target)
            current = row.membership if row else "leave"
            if action == "unban" and current != "ban":
                raise forbidden(f"{target} is not banned from this room")
            if action == "kick" and current not in ("join", "invite", "knock"):
                raise forbidden(
                    f"{target} is banned: only an unban lifts a ban"
                    if current == "ban"
                    else f"{target} is not in this room"
                )
        await self.set_membership(requester, room_id, target, "ban" if action == "ban" else "leave", reason)

    async def join(
        self, requester: Requester, room_id_or_alias: str, reason: str | None = None, *, servers: Sequence[str] = ()
    ) -> str:
        room_id, listed = await self.resolve_room(room_id_or_alias)
        room = await event_store.get_room(self._pool, room_id)
        if self.remote is not None and (room is None or room.stub):
            # A room of another server: through the servers named, those its
            # alias's directory lists, the one in its id, or the one that
            # sent the invite.
            self._blocks.require(requester.user_id, "join")
            via = [*servers, *listed]
            if ids.server_of(room_id):
                via.append(ids.server_of(room_id))
            if room is not None:
                via.append(ids.server_of(room.creator))
            content = await member_profile(self._pool, requester.user_id)
            if reason:
                content["reason"] = reason
            await self.remote.join(requester.user_id, room_id, via, content)
            return room_id
        await self.set_membership(requester, room_id, requester.user_id, "join", reason)
        return room_id

    async def forget(self, requester: Requester, room_id: str) -> None:
        row = await event_store.membership(self._pool, room_id, requester.user_id)
        if row is None:
            raise not_found("You have never been in this room")
        if row.membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
        await event_store.set_forgotten(self._pool, room_id, requester.user_id)

    async def joined_rooms(self, requester: Requester) -> list[str]:
        return await event_store.rooms_of(self._pool, requester.user_id)

    async def profile_changed(self, user_id: str, profile: dict[str, Any]) -> None:
        """Re-sends the user's join event in each of their rooms with the new
        display name and avatar, as clients learn profiles from member events."""
        requester_rooms = await event_store.rooms_of(self._pool, user_id)
        for room_id in requester_rooms:
            member = await event_store.state_event(self._pool, room_id, "m.room.member", user_id)
            if member is None or member.content.get("membership") != "join":
                continue
            # The old join's reason was about joining, not about this change.
            content = {k: v for k, v in member.content.items() if k not in ("displayname", "avatar_url", "reason")}
            content.update({k: v for k, v in profile.items() if v is not None})
            try:
                await self._write_one(
                    EventDraft(
                        room_id=room_id, sender=user_id, type="m.room.member", content=content, state_key=user_id
                    )
                )
            except MatrixError:
                continue  # e.g. the user was removed meanwhile: nothing to update there
