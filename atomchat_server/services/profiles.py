"""Display names and avatars."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import forbidden, not_found
from ..storage import users as user_store
from .moderation import Blocks
from .rooms import Rooms

_SETTERS = {"displayname": user_store.set_displayname, "avatar_url": user_store.set_avatar_url}


class Profiles:
    def __init__(self, *, pool: asyncpg.Pool, rooms: Rooms, blocks: Blocks) -> None:
        self._pool = pool
        self._blocks = blocks
        self._rooms = rooms

    async def get(self, user_id: str) -> dict[str, Any]:
        user = await user_store.get_user(self._pool, user_id)
        if user is None:
            raise not_found("Unknown user")
        return {"displayname": user.displayname, "avatar_url": user.avatar_url}

    async def set(self, requester: Requester, user_id: str, field: str, value: str | None) -> None:
        """Changes one profile field and announces it in the user's rooms."""
        if user_id != requester.user_id:
            raise forbidden("You may only change your own profile")
        self._blocks.require(user_id, "profile")
        await _SETTERS[field](self._pool, user_id, value)
        await self._rooms.profile_changed(user_id, await self.get(user_id))
