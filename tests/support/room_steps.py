"""Steps the room tests share: users who act on rooms through the
schema-checked client, and a look at the stored event log to compare
what the API answers with what was committed."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import asyncpg

from atomchat_server.validation import schemas

from .client import MATRIX, ApiClient, Response, check_schema, path_param

SERVER = "test.local"


def text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


def bodies(events: list[dict[str, Any]]) -> list[str]:
    """The bodies of the m.room.message events among ``events``, in order."""
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message" and "body" in e["content"]]


def check_events(events: list[dict[str, Any]]) -> None:
    """Checks each event against the schema of its type, where there is one
    (events/event dispatches by type, as the response schemas do)."""
    for event in events:
        check_schema("events/event", event)


def ids_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


@dataclass
class User:
    api: ApiClient
    user_id: str
    access_token: str
    device_id: str

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        schema: str | None = None,
        raw: bytes | str | None = None,
    ) -> Response:
        """A request under /_matrix/client/v3 as this user; ``schema`` names
        the body of the expected success (error bodies have their own)."""
        return await self.api.request(
            method,
            MATRIX + path,
            body,
            token=self.access_token,
            status=status,
            schema=schema if status < 400 else None,
            raw=raw,
        )

    # -- rooms and membership ---------------------------------------------

    async def create_room(self, **body: Any) -> str:
        return (await self.call("POST", "/createRoom", body, schema="matrix/createRoom.response"))["room_id"]

    async def join(self, room_id_or_alias: str, *, status: int = 200, encode: bool = True, **body: Any) -> Response:
        target = path_param(room_id_or_alias) if encode else room_id_or_alias
        return await self.call("POST", f"/join/{target}", body, status=status, schema="matrix/join.response")

    async def leave(self, room_id: str, *, status: int = 200, **body: Any) -> Response:
        return await self.call("POST", f"/rooms/{room_id}/leave", body, status=status, schema="matrix/empty.response")

    async def act(
        self, action: str, room_id: str, user: User | str, *, status: int = 200, reason: str | None = None
    ) -> Response:
        """invite, kick, ban or unban ``user``."""
        body = {"user_id": user if isinstance(user, str) else user.user_id}
        if reason is not None:
            body["reason"] = reason
        return await self.call(
            "POST", f"/rooms/{room_id}/{action}", body, status=status, schema="matrix/empty.response"
        )

    async def invite(self, room_id: str, user: User | str, **kwargs: Any) -> Response:
        return await self.act("invite", room_id, user, **kwargs)

    # -- sending ------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        *,
        event_type: str = "m.room.message",
        txn_id: str | None = None,
        status: int = 200,
    ) -> Response:
        txn_id = txn_id or uuid.uuid4().hex
        return await self.call(
            "PUT",
            f"/rooms/{room_id}/send/{event_type}/{txn_id}",
            content,
            status=status,
            schema="matrix/event_id.response",
        )

    async def say(self, room_id: str, body: str) -> str:
        return (await self.send(room_id, text(body)))["event_id"]

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "", *, status: int = 200
    ) -> Response:
        return await self.call(
            "PUT",
            f"/rooms/{room_id}/state/{event_type}/{path_param(state_key)}",
            content,
            status=status,
            schema="matrix/event_id.response",
        )

    async def get_state(self, room_id: str, event_type: str, state_key: str = "", *, status: int = 200) -> Response:
        """The content of one state event, checked against its event type's
        content schema when there is one."""
        answer = await self.call(
            "GET",
            f"/rooms/{room_id}/state/{event_type}/{path_param(state_key)}",
            status=status,
            schema="matrix/state_content.response",
        )
        if status == 200:
            schemas().check_content(event_type, answer.body)
        return answer

    async def redact(
        self, room_id: str, event_id: str, *, reason: str | None = None, txn_id: str | None = None, status: int = 200
    ) -> Response:
        body = {"reason": reason} if reason is not None else {}
        return await self.call(
            "PUT",
            f"/rooms/{room_id}/redact/{path_param(event_id)}/{txn_id or uuid.uuid4().hex}",
            body,
            status=status,
            schema="matrix/event_id.response",
        )

    # -- reading ------------------------------------------------------------

    async def state(self, room_id: str, *, status: int = 200) -> Response:
        answer = await self.call("GET", f"/rooms/{room_id}/state", status=status, schema="matrix/room_state.response")
        if status == 200:
            check_events(answer.body)
        return answer

    async def messages(self, room_id: str, *, status: int = 200, **params: Any) -> Response:
        """GET /messages; a ``filter`` given as a dict is sent as JSON."""
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        query = urlencode({k: v for k, v in params.items() if v is not None})
        answer = await self.call(
            "GET",
            f"/rooms/{room_id}/messages" + (f"?{query}" if query else ""),
            status=status,
            schema="matrix/messages.response",
        )
        if status == 200:
            check_events(answer["chunk"] + answer.get("state", []))
        return answer

    async def all_messages(self, room_id: str, *, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """Every event a paginated walk returns, following ``end`` until it
        is absent; also the number of pages it took. Each page's ``start`` is
        the token it was asked for."""
        events: list[dict[str, Any]] = []
        token = params.pop("from", None)
        pages = 0
        while True:
            page = await self.messages(room_id, limit=limit, **{"from": token}, **params)
            pages += 1
            if token is not None:
                assert page["start"] == token
            assert len(page["chunk"]) <= limit
            events += page["chunk"]
            if "end" not in page.body:
                return events, pages
            assert page["chunk"], "a page with an 'end' must carry events"
            token = page["end"]
            assert pages < 1000, "pagination does not end"

    async def members(self, room_id: str, *, status: int = 200, **params: Any) -> Response:
        query = urlencode(params)
        answer = await self.call(
            "GET",
            f"/rooms/{room_id}/members" + (f"?{query}" if query else ""),
            status=status,
            schema="matrix/members.response",
        )
        if status == 200:
            check_events(answer["chunk"])
        return answer

    async def event(self, room_id: str, event_id: str, *, status: int = 200) -> Response:
        answer = await self.call(
            "GET", f"/rooms/{room_id}/event/{path_param(event_id)}", status=status, schema="events/event"
        )
        if status == 200:
            check_events([answer.body])
        return answer

    async def context(self, room_id: str, event_id: str, *, status: int = 200, **params: Any) -> Response:
        query = urlencode(params)
        answer = await self.call(
            "GET",
            f"/rooms/{room_id}/context/{path_param(event_id)}" + (f"?{query}" if query else ""),
            status=status,
            schema="matrix/context.response",
        )
        if status == 200:
            check_events([answer["event"], *answer["events_before"], *answer["events_after"], *answer["state"]])
        return answer

    async def joined_rooms(self) -> list[str]:
        return (await self.call("GET", "/joined_rooms", schema="matrix/joined_rooms.response"))["joined_rooms"]


async def register(api: ApiClient, *names: str) -> list[User]:
    """Registers the users together; each comes back logged in on one device."""
    answers = await asyncio.gather(*(api.register(name) for name in names))
    return [User(api, a["user_id"], a["access_token"], a["device_id"]) for a in answers]


async def another_device(user: User) -> User:
    login = await user.api.login(user.user_id)
    return User(user.api, user.user_id, login["access_token"], login["device_id"])


async def room_of(owner: User, *members: User, **create: Any) -> str:
    """A room ``owner`` creates (private by default) with ``members`` invited and joined."""
    room_id = await owner.create_room(invite=[m.user_id for m in members], **create)
    for member in members:
        await member.join(room_id)
    return room_id


async def stored_event_ids(dsn: str, room_id: str) -> list[str]:
    """The room's event ids as committed, in stream order."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id FROM events WHERE room_id = $1 ORDER BY stream", room_id)
    finally:
        await conn.close()
    return [row["event_id"] for row in rows]
