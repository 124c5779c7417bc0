"""What every verb of the room service shares: its handles, and the small
steps each verb takes before handing events to the persister.

The module functions here take the database handle explicitly, so that a
service outside this package which writes room events on its own terms
(the original /api's, atomchat_server/compat/service.py) takes the same
steps rather than copies of them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ...auth.sessions import Requester
from ...db import Database
from ...errors import MatrixError, invalid_param, not_found
from ...events import ids
from ...events.drafts import MAX_EVENT_BYTES, EventDraft
from ...events.format import client_event
from ...storage import events as event_store
from ...storage import users as user_store
from ..backfill import Backfill
from ..federation_join import RemoteMembership
from ..moderation import Blocks
from ..persister import Persister, Signer


def check_size(draft: EventDraft) -> None:
    """413 for an event larger than Matrix allows, before anything is written."""
    size = len(json.dumps(draft.as_event(), ensure_ascii=False).encode())
    if size > MAX_EVENT_BYTES - 1024:  # room for the fields the server adds
        raise MatrixError(413, "M_TOO_LARGE", f"The event is larger than {MAX_EVENT_BYTES} bytes")


def requested(
    requester: Requester, room_id: str, event_type: str, content: dict[str, Any], **fields: Any
) -> EventDraft:
    """An event the requester asks for; a moderator's is judged as a moderator's."""
    return EventDraft(
        room_id=room_id,
        sender=requester.user_id,
        type=event_type,
        content=content,
        by_moderator=requester.is_moderator,
        **fields,
    )


async def member_profile(db: Database, user_id: str) -> dict[str, Any]:
    """The display name and avatar a member event of the user carries."""
    user = await user_store.get_user(db, user_id)
    if user is None:
        return {}
    return {k: v for k, v in (("displayname", user.displayname), ("avatar_url", user.avatar_url)) if v is not None}


async def power_state(db: Database, room_id: str) -> dict[tuple[str, str], Any]:
    """The state that says who has which power level in the room."""
    return {
        k: v._asdict()
        for k, v in (
            await event_store.state_events(db, room_id, [("m.room.power_levels", ""), ("m.room.create", "")])
        ).items()
    }


async def require_room(db: Database, room_id: str) -> event_store.Room:
    """The room's row; 404 for an unknown or deleted room."""
    room = await event_store.get_room(db, room_id)
    if room is None or room.deleted:
        raise not_found("Unknown room")
    return room


class RoomsBase:
    """The handles every verb uses; each verb's module adds its methods."""

    def __init__(self, *, pool: asyncpg.Pool, persister: Persister, signer: Signer, blocks: Blocks) -> None:
        self._pool = pool
        self._signer = signer
        self._blocks = blocks
        self._persister = persister
        self.server_name = signer.server_name
        # Joins of and invites to other servers' rooms and users; set when
        # the federation client is there (services/federation_join.py).
        self.remote: RemoteMembership | None = None
        # Which room another server's alias names, and servers to join it
        # through, asked of that server (services/federation.Queries.alias,
        # which answers 404 for a name that is no server's); set when federating.
        self.remote_aliases: Callable[[str], Awaitable[dict[str, Any]]] | None = None
        # History from before this server joined a room, asked of its other
        # servers when a reader pages past it (services/backfill.py).
        self.history: Backfill | None = None

    def _format(self, row: event_store.Event, requester: Requester | None) -> dict[str, Any]:
        device = (requester.user_id, requester.device_id) if requester else None
        return client_event(row, device=device)

    async def _require_local_user(self, user_id: str) -> None:
        parts = ids.split_user_id(user_id)
        if parts is None:
            raise invalid_param(f"Invalid user id {user_id!r}")
        if parts[1] != self.server_name or await user_store.get_user(self._pool, user_id) is None:
            raise not_found(f"Unknown user {user_id}")

    async def _require_room(self, room_id: str) -> event_store.Room:
        return await require_room(self._pool, room_id)

    async def _write_one(self, draft: EventDraft, txn: tuple[str, str, str] | None = None) -> str:
        check_size(draft)
        rows = await self._persister.write([draft], txn=txn)
        return rows[0]["event_id"]
