"""Receipts, read markers, typing notices and account data.

Each change of a receipt or of account data is written through the
persister, so it takes a position in the same stream as events and reaches
clients through /sync like them. Typing notices are kept in memory by the
notifier, with a position of their own.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..clock import REAL, Clock
from ..errors import MatrixError, forbidden, invalid_param, not_found
from ..federation.outbox import Outbox
from ..notifier import Notifier
from ..storage import ephemeral as store
from ..storage import events as event_store
from ..storage import federation as federation_store
from .persister import Persister

MAX_TYPING_TIMEOUT_MS = 120_000
DEFAULT_TYPING_TIMEOUT_MS = 30_000
RECEIPT_TYPES = ("m.read", "m.read.private")
# Account data the server manages itself; clients may not set these directly.
SERVER_MANAGED_ACCOUNT_DATA = ("m.fully_read", "m.push_rules")
MAX_TAG_BYTES = 255  # as the spec bounds a tag's name


class Ephemeral:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        persister: Persister,
        notifier: Notifier,
        outbox: Outbox | None = None,
        server_name: str = "",
        clock: Clock = REAL,
    ) -> None:
        self._pool = pool
        self._clock = clock  # when a typing notice lapses, and a receipt's time
        self._persister = persister
        self._notifier = notifier
        self._outbox = outbox  # typing notices and receipts for the other servers in a room
        self._server_name = server_name

    async def _require_joined(self, requester: Requester, room_id: str) -> None:
        if not await event_store.is_joined(self._pool, room_id, requester.user_id):
            if await event_store.get_room(self._pool, room_id) is None:
                raise not_found("Unknown room")
            raise forbidden("You are not in this room")

    # -- receipts and read markers -----------------------------------------------

    async def receipt(
        self, requester: Requester, room_id: str, receipt_type: str, event_id: str, thread_id: str = ""
    ) -> None:
        if receipt_type == "m.fully_read":
            await self.read_markers(requester, room_id, {"m.fully_read": event_id})
            return
        if receipt_type not in RECEIPT_TYPES:
            raise invalid_param(f"Unknown receipt type {receipt_type!r}")
        await self._require_joined(requester, room_id)
        event = await event_store.get_event(self._pool, event_id)
        if event is None or event.room_id != room_id:
            raise not_found("Unknown event")
        ts = int(self._clock.time() * 1000)
        await self._persister.update(
            partial(
                store.put_receipt,
                room_id=room_id,
                user_id=requester.user_id,
                receipt_type=receipt_type,
                thread_id=thread_id,
                event_id=event_id,
                event_stream=event.stream,
                ts=ts,
            )
        )
        if receipt_type == "m.read":  # private receipts stay on this server
            data: dict[str, Any] = {"ts": ts, **({"thread_id": thread_id} if thread_id else {})}
            await self._federate(
                room_id,
                "m.receipt",
                {room_id: {receipt_type: {requester.user_id: {"event_ids": [event_id], "data": data}}}},
            )

    async def read_markers(self, requester: Requester, room_id: str, markers: dict[str, str]) -> None:
        await self._require_joined(requester, room_id)
        fully_read = markers.get("m.fully_read")
        if fully_read is not None:
            event = await event_store.get_event(self._pool, fully_read)
            if event is None or event.room_id != room_id:
                raise not_found("Unknown event")
            await self._persister.update(
                partial(
                    store.put_account_data,
                    user_id=requester.user_id,
                    room_id=room_id,
                    type="m.fully_read",
                    content={"event_id": fully_read},
                )
            )
        for receipt_type in RECEIPT_TYPES:
            if receipt_type in markers:
                await self.receipt(requester, room_id, receipt_type, markers[receipt_type])

    # -- typing ------------------------------------------------------------------------

    async def typing(self, requester: Requester, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        if user_id != requester.user_id:
            raise forbidden("You may only set your own typing state")
        await self._require_joined(requester, room_id)
        await self._set_typing(room_id, user_id, typing, timeout_ms)
        await self._federate(room_id, "m.typing", {"room_id": room_id, "user_id": user_id, "typing": typing})

    async def _federate(self, room_id: str, edu_type: str, content: dict[str, Any]) -> None:
        """Queues the EDU for every other server with a user in the room."""
        if self._outbox is None:
            return
        for server in await federation_store.joined_servers(self._pool, room_id):
            if server != self._server_name:
                await self._outbox.enqueue_edu(server, edu_type, content)

    async def _set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        """Typing notices are not history: they live in the memory of every
        server process (notifier.TypingNotices), not in the database."""
        timeout_ms = max(0, min(timeout_ms, MAX_TYPING_TIMEOUT_MS)) if typing else 0
        expires_ms = int(self._clock.time() * 1000) + timeout_ms if typing else 0
        await self._notifier.set_typing(room_id, user_id, expires_ms)

    # -- from other servers (federation EDUs) ------------------------------------------

    async def remote_typing(self, room_id: str, user_id: str, typing: bool) -> bool:
        """A remote user's typing notice (it lapses by itself after the
        default timeout, as other servers send no timeout); False, and
        nothing changed, unless the user is in the room."""
        if not await event_store.is_joined(self._pool, room_id, user_id):
            return False
        await self._set_typing(room_id, user_id, typing, DEFAULT_TYPING_TIMEOUT_MS)
        return True

    async def remote_receipt(
        self, room_id: str, user_id: str, receipt_type: str, event_id: str, ts: int, thread_id: str = ""
    ) -> bool:
        """A remote user's read receipt; False, and nothing changed, unless
        the user is in the room and the event is one of the room's."""
        if receipt_type not in RECEIPT_TYPES or not await event_store.is_joined(self._pool, room_id, user_id):
            return False
        event = await event_store.get_event(self._pool, event_id)
        if event is None or event.room_id != room_id:
            return False
        await self._persister.update(
            partial(
                store.put_receipt,
                room_id=room_id,
                user_id=user_id,
                receipt_type=receipt_type,
                thread_id=thread_id,
                event_id=event_id,
                event_stream=event.stream,
                ts=ts,
            )
        )
        return True

    # -- account data -----------------------------------------------------------------

    async def set_account_data(
        self, requester: Requester, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> None:
        if user_id != requester.user_id:
            raise forbidden("You may only set your own account data")
        if data_type in SERVER_MANAGED_ACCOUNT_DATA:
            raise MatrixError(405, "M_BAD_JSON", f"{data_type} is managed by the server")
        if room_id and await event_store.get_room(self._pool, room_id) is None:
            raise not_found("Unknown room")
        await self._persister.update(
            partial(store.put_account_data, user_id=user_id, room_id=room_id, type=data_type, content=content)
        )

    async def account_data(self, requester: Requester, user_id: str, room_id: str, data_type: str) -> dict[str, Any]:
        if user_id != requester.user_id:
            raise forbidden("You may only read your own account data")
        content = await store.get_account_data(self._pool, user_id, room_id, data_type)
        if content is None:
            raise not_found("No account data of that type")
        return content

    # -- room tags (the m.tag room account data) ---------------------------------------------

    async def _tag_target(self, requester: Requester, user_id: str, room_id: str) -> None:
        if user_id != requester.user_id:
            raise forbidden("You may only tag rooms for yourself")
        if await event_store.get_room(self._pool, room_id) is None:
            raise not_found("Unknown room")

    async def tags(self, requester: Requester, user_id: str, room_id: str) -> dict[str, Any]:
        await self._tag_target(requester, user_id, room_id)
        content = await store.get_account_data(self._pool, user_id, room_id, "m.tag") or {}
        tags = content.get("tags")
        return {"tags": tags if isinstance(tags, dict) else {}}

    async def set_tag(
        self, requester: Requester, user_id: str, room_id: str, tag: str, content: dict[str, Any] | None
    ) -> None:
        """Adds or changes one tag (``content`` None: removes it); the
        change reaches the user's clients as m.tag room account data."""
        if len(tag.encode()) > MAX_TAG_BYTES:
            raise invalid_param(f"A tag is at most {MAX_TAG_BYTES} bytes long")
        await self._tag_target(requester, user_id, room_id)
        await self._persister.update(partial(store.put_tag, user_id=user_id, room_id=room_id, tag=tag, content=content))
