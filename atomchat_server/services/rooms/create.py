"""Creating rooms: the initial events as one batch, then the alias and the
directory entry a createRoom request asks for."""

from __future__ import annotations

import contextlib
import time

from ...auth.sessions import Requester
from ...errors import MatrixError, invalid_param
from ...events import ids
from ...events.drafts import EventDraft
from ...events.pdu import build_pdu, finish_pdu
from ...events.room_creation import RoomRequest, create_content, initial_events
from ...events.room_versions import RoomVersion, room_version
from ...storage import directory as directory_store
from ..persister import RoomIdTaken
from .base import RoomsBase, check_size, member_profile

# Tries at a room id that is not taken: each moves the create event's
# timestamp on by a millisecond (see RoomIdTaken).
CREATE_ATTEMPTS = 5


class Creating(RoomsBase):
    async def create_room(
        self, requester: Requester, request: RoomRequest, *, alias_localpart: str | None, publish: bool
    ) -> str:
        self._blocks.require(requester.user_id, "create_room")
        version = room_version(request.room_version)
        for attempt in range(CREATE_ATTEMPTS - 1):
            with contextlib.suppress(RoomIdTaken):
                return await self._create_room(requester, request, version, attempt, alias_localpart, publish)
        return await self._create_room(requester, request, version, CREATE_ATTEMPTS - 1, alias_localpart, publish)

    async def _create_room(
        self,
        requester: Requester,
        request: RoomRequest,
        version: RoomVersion,
        attempt: int,
        alias_localpart: str | None,
        publish: bool,
    ) -> str:
        create: EventDraft | None = None
        if version.room_id_is_create_event_id:
            # A later attempt moves the timestamp on, which changes the id.
            create = self._create_event(requester.user_id, request, int(time.time() * 1000) + attempt)
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
        creator = await member_profile(self._pool, requester.user_id)
        drafts = initial_events(room_id, requester.user_id, request, creator, create)
        for draft in drafts:
            check_size(draft)
        try:
            await self._persister.write(drafts, new_room=version.identifier)
        except MatrixError as refusal:
            # The creator may do anything in a new room: a refused initial
            # event means the request asked for something invalid.
            if refusal.errcode != "M_FORBIDDEN":
                raise
            raise invalid_param(f"The room's initial state is invalid: {refusal.error}") from None
        if alias:
            try:
                await directory_store.create_alias(self._pool, alias, room_id, requester.user_id)
            except directory_store.AliasTaken:
                raise MatrixError(400, "M_ROOM_IN_USE", "That room alias is taken") from None
        if publish:
            await directory_store.set_published(self._pool, room_id, True)
        return room_id

    def _create_event(self, creator: str, request: RoomRequest, now_ms: int) -> EventDraft:
        """The signed m.room.create of a room whose id is made from it."""
        version = room_version(request.room_version)
        pdu = build_pdu(
            room_id="",
            sender=creator,
            event_type="m.room.create",
            content=create_content(creator, request),
            state_key="",
            redacts=None,
            origin_server_ts=now_ms,
            depth=1,
            prev_events=[],
            auth_events=[],
            version=version,
        )
        event_id, signed = finish_pdu(pdu, self._signer.server_name, self._signer.key, version)
        return EventDraft(
            room_id="!" + event_id[1:],
            sender=creator,
            type="m.room.create",
            content=signed["content"],
            state_key="",
            event_id=event_id,
            pdu=signed,
        )
