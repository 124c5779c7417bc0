"""Local users in other servers' rooms: joining a remote room
(make_join/send_join through one of the servers named), and inviting a
user of another server (v2 invite, whose answer carries that server's
signature).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import asyncpg

from ..errors import MatrixError, forbidden
from ..events.auth import AuthError, auth_event_keys, check
from ..events.drafts import EventDraft
from ..events.format import stripped_state
from ..events.ids import server_of
from ..events.pdu import build_pdu, finish_pdu
from ..events.room_versions import KNOWN_ROOM_VERSIONS, UnknownRoomVersion, room_version
from ..storage import events as event_store
from ..storage import pdus as pdu_store
from .federation_events import FederationEvents, RemoteCalls
from .persister import Persister, Signer

log = logging.getLogger(__name__)

# The room versions make_join offers to accept.
ACCEPTED_VERSIONS = tuple(KNOWN_ROOM_VERSIONS)
INVITE_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
)


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


class RemoteMembership:
    def __init__(
        self, *, pool: asyncpg.Pool, persister: Persister, signer: Signer, events: FederationEvents, client: RemoteCalls
    ) -> None:
        self._pool = pool
        self._persister = persister
        self._signer = signer
        self._events = events
        self._client = client

    async def join(self, user_id: str, room_id: str, servers: Sequence[str], profile: Mapping[str, Any]) -> str:
        """Joins a room this server is not in through the first of
        ``servers`` that lets the user in; returns the join's event id."""
        failures = []
        for server in dict.fromkeys(s for s in servers if s != self._signer.server_name):
            try:
                made = await self._client.request(
                    server,
                    "GET",
                    "/_matrix/federation/v1/make_join/" + _path(room_id, user_id),
                    query={"ver": list(ACCEPTED_VERSIONS)},
                )
                version = room_version(made.get("room_version", "1") if isinstance(made, Mapping) else None)
                template = made.get("event")
                if not isinstance(template, Mapping) or (
                    template.get("type"),
                    template.get("state_key"),
                    template.get("sender"),
                    template.get("room_id"),
                ) != ("m.room.member", user_id, user_id, room_id):
                    raise ValueError("the join template is not this user's join of this room")
                pdu = build_pdu(
                    room_id=room_id,
                    sender=user_id,
                    event_type="m.room.member",
                    content={**dict(profile), "membership": "join"},
                    state_key=user_id,
                    redacts=None,
                    origin_server_ts=int(time.time() * 1000),
                    depth=int(template["depth"]),
                    prev_events=list(template["prev_events"]),
                    auth_events=list(template["auth_events"]),
                    version=version,
                )
                event_id, signed = finish_pdu(pdu, self._signer.server_name, self._signer.key, version)
                answer = await self._client.request(
                    server, "PUT", "/_matrix/federation/v2/send_join/" + _path(room_id, event_id), body=signed
                )
                if not isinstance(answer, Mapping):
                    raise ValueError("send_join answered no object")
                await self._events.take_room(
                    server, room_id, version, answer.get("state"), answer.get("auth_chain"), signed, event_id
                )
                return event_id
            except (UnknownRoomVersion, ValueError, KeyError, TypeError, MatrixError) as exc:
                failures.append(f"{server}: {exc}")
            except Exception as exc:  # noqa: BLE001 - unreachable or refusing: try the next server
                failures.append(f"{server}: {type(exc).__name__}: {exc}")
        log.info("could not join %s: %s", room_id, "; ".join(failures))
        raise MatrixError(
            404,
            "M_NOT_FOUND",
            "Could not join the room through any of the servers given"
            + (f" ({'; '.join(failures)})" if failures else ""),
        )

    async def reject(self, user_id: str, room_id: str, server: str, reason: str | None) -> str:
        """Rejects an invite to a room this server knows only by it: the
        leave goes to the inviting server (make_leave/send_leave) when it
        answers, and is kept here in any case; returns its event id."""
        stub = await pdu_store.stub_room(self._pool, room_id)
        room = await event_store.get_room(self._pool, room_id)
        if not stub or room is None:
            raise forbidden("This room is not one you were invited to from another server")
        version = room_version(room.room_version)
        content: dict[str, Any] = {"membership": "leave", **({"reason": reason} if reason else {})}
        signed: dict[str, Any] | None = None
        try:
            made = await self._client.request(
                server, "GET", "/_matrix/federation/v1/make_leave/" + _path(room_id, user_id)
            )
            template = made["event"]
            pdu = build_pdu(
                room_id=room_id,
                sender=user_id,
                event_type="m.room.member",
                content=content,
                state_key=user_id,
                redacts=None,
                origin_server_ts=int(time.time() * 1000),
                depth=int(template["depth"]),
                prev_events=list(template["prev_events"]),
                auth_events=list(template["auth_events"]),
                version=version,
            )
            event_id, signed = finish_pdu(pdu, self._signer.server_name, self._signer.key, version)
            await self._client.request(
                server, "PUT", "/_matrix/federation/v2/send_leave/" + _path(room_id, event_id), body=signed
            )
        except Exception as exc:  # noqa: BLE001 - the inviting server is not told; the user is out here anyway
            log.info("could not tell %s that %s rejects the invite to %s: %s", server, user_id, room_id, exc)
            signed = None
        draft = EventDraft(
            room_id=room_id, sender=user_id, type="m.room.member", content=content, state_key=user_id, by_server=True
        )
        if signed is not None:
            draft = EventDraft(
                room_id=room_id,
                sender=user_id,
                type="m.room.member",
                content=content,
                state_key=user_id,
                by_server=True,
                event_id=event_id,
                pdu=signed,
            )
        rows = await self._persister.write([draft])
        return str(rows[0]["event_id"]) if rows else draft.event_id

    async def invite(self, inviter: str, room_id: str, target: str, content: Mapping[str, Any]) -> str:
        """Invites a user of another server: the invite is built here, signed
        by both servers, then committed; returns its event id."""
        room = await pdu_store.pdu_room(self._pool, room_id)
        if room is None:
            raise forbidden("Users of other servers can only be invited to rooms made since federation")
        version = room_version(room["room_version"])
        invite_content = {**dict(content), "membership": "invite"}
        event = {
            "room_id": room_id,
            "sender": inviter,
            "type": "m.room.member",
            "state_key": target,
            "content": invite_content,
        }
        keys = auth_event_keys(event, version)
        state = {
            k: v._asdict()
            for k, v in (await event_store.state_events(self._pool, room_id, [*keys, ("m.room.create", "")])).items()
        }
        try:
            check(event, state)
        except AuthError as exc:
            raise forbidden(str(exc)) from None
        prev = list(room["extremities"])[-10:]
        pdu = build_pdu(
            room_id=room_id,
            sender=inviter,
            event_type="m.room.member",
            content=invite_content,
            state_key=target,
            redacts=None,
            origin_server_ts=int(time.time() * 1000),
            depth=await pdu_store.max_depth(self._pool, room_id, prev) + 1,
            prev_events=prev,
            auth_events=[state[k]["event_id"] for k in keys if k in state],
            version=version,
        )
        event_id, signed = finish_pdu(pdu, self._signer.server_name, self._signer.key, version)
        stripped = [
            stripped_state(row)
            for row in await event_store.current_state(self._pool, room_id)
            if row.type in INVITE_STATE_TYPES
        ]
        server = server_of(target)
        try:
            answer = await self._client.request(
                server,
                "PUT",
                "/_matrix/federation/v2/invite/" + _path(room_id, event_id),
                body={"room_version": version.identifier, "event": signed, "invite_room_state": stripped},
            )
        except Exception as exc:  # noqa: BLE001 - the remote refused or cannot be reached
            raise forbidden(f"{server} did not take the invite: {exc}") from None
        returned = answer.get("event") if isinstance(answer, Mapping) else None
        if not isinstance(returned, Mapping) or not isinstance(returned.get("signatures"), Mapping):
            raise forbidden(f"{server} answered the invite without the signed event")
        # Keep what this server built, with the invitee's server's signature added.
        both = {**signed, "signatures": {**returned["signatures"], **signed["signatures"]}}
        await self._persister.write(
            [
                EventDraft(
                    room_id=room_id,
                    sender=inviter,
                    type="m.room.member",
                    content=both["content"],
                    state_key=target,
                    event_id=event_id,
                    pdu=both,
                )
            ]
        )
        return event_id
