"""Sending: messages and other timeline events, state, and redactions.
A retried transaction id answers with the event it first made."""

from __future__ import annotations

from typing import Any

from ...auth.sessions import Requester
from ...errors import bad_json, not_found
from ...storage import events as event_store
from ..relations import check_relation
from .base import RoomsBase, requested


class Sending(RoomsBase):
    async def send(
        self, requester: Requester, room_id: str, event_type: str, content: dict[str, Any], txn_id: str
    ) -> str:
        if event_type == "m.room.redaction":
            # In room version 10 what a redaction redacts is outside its content.
            raise bad_json("Redact with PUT /rooms/{roomId}/redact/{eventId}/{txnId}")
        # The persister finds a retried transaction id, and refuses an unknown
        # or deleted room, inside its batch: nothing to ask the database first.
        self._blocks.require(requester.user_id, "send")
        await check_relation(self._pool, room_id, content)
        txn = (requester.user_id, requester.device_id, txn_id)
        return await self._write_one(requested(requester, room_id, event_type, content), txn)

    async def set_state(
        self, requester: Requester, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> str:
        self._blocks.require(requester.user_id, "state")
        await self._require_room(room_id)
        return await self._write_one(requested(requester, room_id, event_type, content, state_key=state_key))

    async def redact(self, requester: Requester, room_id: str, event_id: str, txn_id: str, reason: str | None) -> str:
        txn = (requester.user_id, requester.device_id, txn_id)
        existing = await event_store.transaction_event(self._pool, *txn)
        if existing is not None:
            return existing
        target = await event_store.get_event(self._pool, event_id)
        if target is None or target.room_id != room_id:
            raise not_found("Unknown event")
        self._blocks.require(requester.user_id, "redact" if target.sender == requester.user_id else "redact_others")
        content = {"reason": reason} if reason else {}
        return await self._write_one(requested(requester, room_id, "m.room.redaction", content, redacts=event_id), txn)
