"""The room protocol other servers speak to this one: joining and leaving
rooms through it (make_join/send_join, make_leave/send_leave), inviting its
users (invite), and reading rooms' events, state and auth chains (event,
state, state_ids, event_auth, backfill, get_missing_events).

Every read checks that the asking server may see the room: one of its users
is in it now. Each event read is then judged as of that event (the room's
history visibility in force then and the asking server's users' membership
then, events.visibility.server_sees): one it may not see is served redacted
among others (backfill, get_missing_events: its place in the room's graph,
not its content) and refused on its own (event, and the state at it), but
for a state event asked by id, served redacted (what authorization reads
survives). Auth chains are served whole: they are what checking the events
needs. Answers carry the PDUs as stored, which are what this server sent or
accepted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ..errors import MatrixError, forbidden, not_found
from ..events.auth import AuthError, auth_event_keys, check
from ..events.drafts import EventDraft
from ..events.ids import server_of, split_user_id
from ..events.pdu import as_event, build_pdu
from ..events.pdu_checks import PduError, check_format
from ..events.redaction import prune_event
from ..events.room_versions import RoomVersion, UnknownRoomVersion, room_version
from ..events.signing import event_id as reference_event_id
from ..events.signing import has_valid_content_hash, sign_event
from ..events.visibility import server_sees
from ..storage import backfill as backfill_store
from ..storage import events as event_store
from ..storage import pdus as pdu_store
from ..storage import users as user_store
from ..storage.pdus import PduRoom, StoredPdu
from .federation_events import FederationEvents
from .federation_send import PduOutbox
from .persister import Persister, Signer

# Each reading answers at most this many events.
MAX_EVENTS = 100
MAX_AUTH_CHAIN = 50000


def incompatible(version: str) -> MatrixError:
    return MatrixError(
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        f"The room is of version {version}, which the asking server does not support",
        room_version=version,
    )


class FederationRooms:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        persister: Persister,
        signer: Signer,
        events: FederationEvents,
        outbox: PduOutbox | None = None,
    ) -> None:
        self._pool = pool
        self._persister = persister
        self._signer = signer
        self._events = events
        self._outbox = outbox  # relays the joins and leaves taken in to the room's other servers

    # -- helpers -------------------------------------------------------------

    async def _room(self, room_id: str) -> tuple[PduRoom, RoomVersion]:
        room = await pdu_store.pdu_room(self._pool, room_id)
        if room is None:
            raise not_found("This server does not share that room")
        return room, room_version(room.room_version)

    async def _require_in_room(self, origin: str, room_id: str) -> tuple[PduRoom, RoomVersion]:
        """The room, when a user of ``origin`` is in it (or invited to it)."""
        room, version = await self._room(room_id)
        if not await pdu_store.server_in_room(self._pool, room_id, origin):
            raise forbidden(f"{origin} has no user in this room")
        return room, version

    async def _seen_by(self, origin: str, room_id: str, rows: Sequence[StoredPdu]) -> list[bool]:
        """Whether ``origin`` may have each of the room's events whole (see the module's docstring)."""
        if not rows:
            return []
        changes = await backfill_store.visibility_changes(self._pool, room_id)
        histories = await backfill_store.origin_memberships(self._pool, room_id, origin)
        return server_sees([(r.stream, r.depth) for r in rows], changes, histories)

    async def _as_seen_by(
        self, origin: str, room_id: str, version: RoomVersion, rows: Sequence[StoredPdu]
    ) -> list[Any]:
        """The events' PDUs as ``origin`` may have them: whole, or redacted."""
        seen = await self._seen_by(origin, room_id, rows)
        return [self._shown(r, ok, version) for r, ok in zip(rows, seen, strict=True)]

    @classmethod
    def _shown(cls, row: StoredPdu, seen: bool, version: RoomVersion) -> dict[str, Any]:
        """The event's PDU whole when the asking server may see it, else redacted."""
        return cls._pdu(row) if seen else prune_event(cls._pdu(row), version)

    async def _require_seen(self, origin: str, room_id: str, row: StoredPdu) -> None:
        if not (await self._seen_by(origin, room_id, [row]))[0]:
            raise forbidden(f"{origin} may not see that event")

    async def _auth_chain(self, room_id: str, event_ids: Sequence[str], version: RoomVersion) -> list[Any]:
        """The auth chain of the events, without them; from version 12 with
        the create event, which every event's authorization uses without citing it."""
        chain = await pdu_store.auth_chain(self._pool, room_id, event_ids, include_self=False, limit=MAX_AUTH_CHAIN)
        if version.room_id_is_create_event_id:
            create_id = "$" + room_id[1:]
            if all(row.event_id != create_id for row in chain):
                chain = list(await pdu_store.pdus(self._pool, room_id, [create_id])) + list(chain)
        return list(chain)

    @staticmethod
    def _pdu(row: StoredPdu) -> dict[str, Any]:
        return dict(row.pdu)

    async def _template(self, room_id: str, version: RoomVersion, user_id: str, membership: str) -> dict[str, Any]:
        """A membership event for the remote server to sign, citing the room's
        forward extremities and current state; refused now if the rules refuse it."""
        room = await pdu_store.pdu_room(self._pool, room_id)
        assert room is not None, "checked by the caller"
        draft = {
            "room_id": room_id,
            "sender": user_id,
            "type": "m.room.member",
            "state_key": user_id,
            "content": {"membership": membership},
        }
        keys = auth_event_keys(draft, version)
        state = {
            k: v._asdict()
            for k, v in (await event_store.state_events(self._pool, room_id, keys + [("m.room.create", "")])).items()
        }
        try:
            check(draft, state)
        except AuthError as exc:
            raise forbidden(f"{user_id} may not {membership} this room: {exc}") from None
        depth = await pdu_store.max_depth(self._pool, room_id, list(room.extremities))
        return build_pdu(
            room_id=room_id,
            sender=user_id,
            event_type="m.room.member",
            content={"membership": membership},
            state_key=user_id,
            redacts=None,
            origin_server_ts=int(time.time() * 1000),
            depth=depth + 1,
            prev_events=list(room.extremities)[-10:],
            auth_events=[state[k]["event_id"] for k in keys if k in state],
            version=version,
        )

    @staticmethod
    def _require_user_of(origin: str, user_id: str) -> None:
        parts = split_user_id(user_id)
        if parts is None or parts[1] != origin:
            raise forbidden(f"{user_id} is not a user of {origin}")

    # -- joining and leaving ------------------------------------------------

    async def make_join(self, origin: str, room_id: str, user_id: str, versions: Sequence[str]) -> dict[str, Any]:
        self._require_user_of(origin, user_id)
        _, version = await self._room(room_id)
        if version.identifier not in versions:
            raise incompatible(version.identifier)
        return {"room_version": version.identifier, "event": await self._template(room_id, version, user_id, "join")}

    async def make_leave(self, origin: str, room_id: str, user_id: str) -> dict[str, Any]:
        self._require_user_of(origin, user_id)
        _, version = await self._room(room_id)
        return {"room_version": version.identifier, "event": await self._template(room_id, version, user_id, "leave")}

    async def _send_membership(
        self, origin: str, room_id: str, event_id: str, pdu: Any, membership: str
    ) -> tuple[dict[str, Any], int, RoomVersion]:
        """Takes in a membership event the origin signed: (its PDU, its stream, the room version)."""
        _, version = await self._room(room_id)
        try:
            check_format(pdu, version)
        except PduError as exc:
            raise MatrixError(400, "M_BAD_JSON", str(exc)) from None
        if reference_event_id(pdu, version) != event_id:
            raise MatrixError(400, "M_BAD_JSON", "The event id does not match the event")
        content = pdu["content"]
        if (pdu["type"], pdu.get("state_key"), content.get("membership"), pdu.get("room_id")) != (
            "m.room.member",
            pdu["sender"],
            membership,
            room_id,
        ):
            raise MatrixError(400, "M_BAD_JSON", f"Expected the {membership} of its sender in this room")
        self._require_user_of(origin, pdu["sender"])
        error = (await self._events.receive_pdus(origin, [pdu]))[event_id].get("error")
        if error is not None:
            raise forbidden(f"The {membership} was refused: {error}")
        row = await event_store.get_event(self._pool, event_id)
        if row is None:
            raise forbidden(f"The {membership} is not allowed by the room's current state")
        await self._relay(origin, room_id, event_id)
        return pdu, row.stream, version

    async def _relay(self, origin: str, room_id: str, event_id: str) -> None:
        """Queues a membership this server took in for the room's other
        servers (neither this one nor the origin): the joining server may
        know none of them yet, and is not bound to tell them (Synapse does not)."""
        if self._outbox is None:
            return
        servers = set(await pdu_store.servers_in_room(self._pool, room_id)) - {origin, self._signer.server_name}
        stored = await pdu_store.pdus(self._pool, room_id, [event_id])
        if servers and stored:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._outbox.queue_pdus(conn, servers, [self._pdu(stored[0])])
            self._outbox.wake(servers)

    async def send_join(self, origin: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
        """The room's state before the join and its auth chain, with the join
        as this server signed it too."""
        joined, stream, version = await self._send_membership(origin, room_id, event_id, pdu, "join")
        state = await pdu_store.state_pdus_after(self._pool, room_id, stream - 1)
        chain = await self._auth_chain(room_id, [r.event_id for r in state], version)
        stored = await pdu_store.pdus(self._pool, room_id, [event_id])
        return {
            "origin": self._signer.server_name,
            "members_omitted": False,
            "state": [self._pdu(r) for r in state],
            "auth_chain": [self._pdu(r) for r in chain],
            "event": self._pdu(stored[0]) if stored else joined,
        }

    async def send_leave(self, origin: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
        await self._send_membership(origin, room_id, event_id, pdu, "leave")
        return {}

    # -- invites -------------------------------------------------------------

    async def invite(self, origin: str, room_id: str, event_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An invite of a local user to a room of another server: checked,
        signed by this server and kept, so the user sees it in /sync."""
        try:
            version = room_version(body.get("room_version"))
        except UnknownRoomVersion:
            raise incompatible(str(body.get("room_version"))) from None
        pdu = body.get("event")
        try:
            check_format(pdu, version)
        except PduError as exc:
            raise MatrixError(400, "M_BAD_JSON", str(exc)) from None
        assert isinstance(pdu, Mapping)
        if reference_event_id(pdu, version) != event_id or pdu.get("room_id") != room_id:
            raise MatrixError(400, "M_BAD_JSON", "The event id or room id does not match the event")
        target = pdu.get("state_key")
        if (
            pdu["type"] != "m.room.member"
            or pdu["content"].get("membership") != "invite"
            or not isinstance(target, str)
        ):
            raise MatrixError(400, "M_BAD_JSON", "Expected an invite")
        if server_of(pdu["sender"]) != origin:
            raise forbidden(f"{pdu['sender']} is not a user of {origin}")
        if server_of(target) != self._signer.server_name or await user_store.get_user(self._pool, target) is None:
            raise not_found(f"Unknown user {target}")
        try:
            await self._events.check_signed(pdu, version)
        except PduError as exc:
            raise forbidden(str(exc)) from None
        if not has_valid_content_hash(pdu):
            raise forbidden("The invite's content hash does not match its content")
        signed = sign_event(pdu, self._signer.server_name, self._signer.key, version)
        room = await pdu_store.pdu_room(self._pool, room_id)
        if room is not None:
            # A room this server is in: the invite is an event of it like any other.
            error = (await self._events.receive_pdus(origin, [signed]))[event_id].get("error")
            if error is not None:
                raise forbidden(f"The invite was refused: {error}")
        elif not await pdu_store.has_event(self._pool, event_id):
            event = as_event(signed, event_id, version)
            draft = EventDraft(
                room_id=room_id,
                sender=event["sender"],
                type="m.room.member",
                content=event["content"],
                state_key=target,
                event_id=event_id,
                pdu=signed,
                by_server=True,
            )
            await self._persister.write([draft], new_room=version.identifier, stub=True)
        return {"event": signed}

    # -- reading ---------------------------------------------------------------

    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        """One event; one the asking server may not see is refused, or, a
        state event, served redacted: authorizing other events may need it,
        and its redacted form keeps what authorization reads."""
        found = await pdu_store.event_pdu(self._pool, event_id)
        if found is None:
            raise not_found("Unknown event")
        room_id, row = found
        _, version = await self._require_in_room(origin, room_id)
        seen = (await self._seen_by(origin, room_id, [row]))[0]
        if not seen and row.state_key is None:
            raise forbidden(f"{origin} may not see that event")
        return {
            "origin": self._signer.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [self._shown(row, seen, version)],
        }

    async def _state_rows(self, origin: str, room_id: str, event_id: str) -> tuple[list[StoredPdu], RoomVersion]:
        _, version = await self._require_in_room(origin, room_id)
        at = await pdu_store.pdus(self._pool, room_id, [event_id])
        if not at:
            raise not_found("Unknown event")
        await self._require_seen(origin, room_id, at[0])
        # The state before the event: the state after it, less its own entry.
        state = await pdu_store.state_pdus_after(self._pool, room_id, at[0].stream - 1)
        return state, version

    async def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        state, version = await self._state_rows(origin, room_id, event_id)
        chain = await self._auth_chain(room_id, [r.event_id for r in state], version)
        return {"pdus": [self._pdu(r) for r in state], "auth_chain": [self._pdu(r) for r in chain]}

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        state, version = await self._state_rows(origin, room_id, event_id)
        chain = await self._auth_chain(room_id, [r.event_id for r in state], version)
        return {"pdu_ids": [r.event_id for r in state], "auth_chain_ids": [r.event_id for r in chain]}

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        _, version = await self._require_in_room(origin, room_id)
        if not await pdu_store.pdus(self._pool, room_id, [event_id]):
            raise not_found("Unknown event")
        chain = await self._auth_chain(room_id, [event_id], version)
        return {"auth_chain": [self._pdu(r) for r in chain]}

    async def backfill(self, origin: str, room_id: str, from_ids: Sequence[str], limit: int) -> dict[str, Any]:
        """Up to ``limit`` (at most MAX_EVENTS) events at and before
        ``from_ids``, newest first; those the asking server may not see, redacted."""
        _, version = await self._require_in_room(origin, room_id)
        rows = await pdu_store.backfill(self._pool, room_id, from_ids, max(1, min(limit, MAX_EVENTS)))
        return {
            "origin": self._signer.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": await self._as_seen_by(origin, room_id, version, rows),
        }

    async def get_missing_events(self, origin: str, room_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The events between ``earliest_events`` and ``latest_events``,
        oldest first; those the asking server may not see, redacted."""
        _, version = await self._require_in_room(origin, room_id)
        limit = body.get("limit", 10)
        min_depth = body.get("min_depth", 0)
        rows = await pdu_store.missing_events(
            self._pool,
            room_id,
            list(body.get("earliest_events", [])),
            list(body.get("latest_events", [])),
            max(1, min(limit if isinstance(limit, int) else 10, MAX_EVENTS)),
            min_depth if isinstance(min_depth, int) else 0,
        )
        return {"events": await self._as_seen_by(origin, room_id, version, rows[::-1])}
