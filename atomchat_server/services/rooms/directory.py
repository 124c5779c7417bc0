"""Aliases and the public room directory."""

from __future__ import annotations

from typing import Any

from ...auth.sessions import Requester
from ...errors import MatrixError, forbidden, invalid_param, not_found
from ...events import ids
from ...events.power_levels import edits_directory
from ...paging import fetch_page
from ...storage import directory as directory_store
from ...storage import events as event_store
from .base import RoomsBase, power_state


class Directory(RoomsBase):
    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        parts = alias[1:].partition(":")
        if not ids.is_room_alias(alias) or parts[2] != self.server_name:
            raise invalid_param(f"Room aliases here end in ':{self.server_name}'")
        self._blocks.require(requester.user_id, "directory")
        if not await event_store.is_joined(self._pool, room_id, requester.user_id):
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
        return row.room_id

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        row = await directory_store.get_alias(self._pool, alias)
        if row is None:
            raise not_found("Unknown room alias")
        self._blocks.require(requester.user_id, "directory")
        if row.creator != requester.user_id and not edits_directory(
            await power_state(self._pool, row.room_id), requester.user_id
        ):
            raise forbidden("Only the alias's creator or someone who may set the room's aliases may delete it")
        await directory_store.delete_alias(self._pool, alias)

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        """Publishing a room or taking it out of the directory: a server
        moderator, or a member with the level of m.room.canonical_alias."""
        self._blocks.require(requester.user_id, "directory")
        if not requester.is_moderator:
            if not await event_store.is_joined(self._pool, room_id, requester.user_id):
                await self._require_room(room_id)
                raise forbidden("You must be in the room to publish it")
            if not edits_directory(await power_state(self._pool, room_id), requester.user_id):
                raise forbidden("Publishing the room needs the power level to set its aliases (m.room.canonical_alias)")
        else:
            await self._require_room(room_id)
        await directory_store.set_published(self._pool, room_id, visibility == "public")

    async def visibility(self, room_id: str) -> str:
        room = await event_store.get_room(self._pool, room_id)
        if room is None:
            raise not_found("Unknown room")
        return "public" if room.published else "private"

    async def public_rooms(self, *, limit: int, since: str | None, search: str | None) -> dict[str, Any]:
        limit = max(1, min(limit, 500))
        # The token is the last entry's place in the order (members, room id),
        # so a page follows on even when that room has left the directory.
        after = None
        if since:
            members, dot, room_id = since[1:].partition(".")
            if not since.startswith("p") or not members.isdigit() or len(members) > 12 or not ids.is_room_id(room_id):
                raise invalid_param("Invalid 'since' token")
            after = (int(members), room_id)
        rows, more = await fetch_page(
            lambda n: directory_store.public_rooms(self._pool, search=search, after=after, limit=n), limit
        )
        chunk = []
        for row in rows:
            entry: dict[str, Any] = {
                "room_id": row.room_id,
                "num_joined_members": row.members,
                "world_readable": row.history_visibility == "world_readable",
                "guest_can_join": row.guest_access == "can_join",
                "join_rule": row.join_rule or "invite",
            }
            for key, value in (("name", row.name), ("topic", row.topic), ("canonical_alias", row.canonical_alias)):
                if value:  # an empty value means unset: leave the key out
                    entry[key] = value
            chunk.append(entry)
        body: dict[str, Any] = {"chunk": chunk}
        if more:
            body["next_batch"] = f"p{rows[-1].members}.{rows[-1].room_id}"
        return body
