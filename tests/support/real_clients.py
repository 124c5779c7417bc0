# mypy: disable-error-code="arg-type"
# (mautrix types its arguments with NewTypes, JSON, UserID, SyncToken, which
# these helpers, feeding it the server's raw JSON and plain ids, would have to
# wrap at every call.)
"""nio and mautrix, two real client libraries, driven against the test's
server: making their clients and users, and their syncs checked. Shared by
the real-client and E2EE tests (tests/api/); the ``clients`` fixture is in
tests/api/conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import nio
from mautrix.api import HTTPAPI, Method, Path
from mautrix.client import Client
from mautrix.types import (
    AccountDataEvent,
    EphemeralEvent,
    Event,
    MessageEvent,
    StateEvent,
    StrippedStateEvent,
)
from nio import AsyncClient

from .client import DEFAULT_PASSWORD as PASSWORD

SERVER = "test.local"
SYNC_MS = 2_000  # long-poll timeout of the syncs that wait for something
WAIT = 15.0  # seconds a test waits for what must arrive
BAD_EVENTS = (nio.BadEvent, nio.UnknownBadEvent)


def user_id(localpart: str) -> str:
    return f"@{localpart}:{SERVER}"


def ok(response: Any, expected: type) -> Any:
    """nio answers failures with an error response: fail with its details."""
    assert isinstance(response, expected), f"expected {expected.__name__}, got {response!r}"
    return response


class Clients:
    """Makes nio and mautrix clients for the test's server; closes them all after the test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._nio: list[nio.AsyncClient] = []
        self._mautrix: list[Client] = []

    def nio(self, user: str = "") -> nio.AsyncClient:
        # Bounded retries: a 429 or a timeout fails the call instead of retrying for ever.
        config = nio.AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
        client = nio.AsyncClient(self.base_url, user, config=config)
        self._nio.append(client)
        return client

    def mautrix(self, mxid: str = "", token: str = "") -> Client:
        client = Client(mxid=mxid, api=HTTPAPI(self.base_url, token, default_retry_count=0))
        self._mautrix.append(client)
        return client

    async def nio_user(self, localpart: str) -> AsyncClient:  # (in this class, "nio" is the method above)
        """A user registered through nio (one request, dummy auth), logged in on that client."""
        client = self.nio()
        registered = ok(await client.register(localpart, PASSWORD, "nio register"), nio.RegisterResponse)
        assert registered.user_id == user_id(localpart)
        assert client.access_token == registered.access_token and client.user_id == registered.user_id
        return client

    async def mautrix_user(self, localpart: str) -> Client:
        """A user registered through mautrix's HTTP API (it has no register call
        of its own), then logged in with the full user id."""
        client = self.mautrix()
        registered = await register_with_mautrix(client, localpart)
        assert registered["user_id"] == user_id(localpart)
        login = await client.login(identifier=user_id(localpart), password=PASSWORD, device_name="mautrix")
        assert login.user_id == user_id(localpart)
        assert login.device_id != registered["device_id"]  # each login is a new device
        return client

    async def close(self) -> None:
        for client in self._nio:
            await client.close()
        for client in self._mautrix:
            await client.api.session.close()


async def register_with_mautrix(client: Client, localpart: str) -> dict[str, Any]:
    return await client.api.request(
        Method.POST, Path.v3.register, {"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    )


# -- syncing, checked ----------------------------------------------------------


def nio_events(response: nio.SyncResponse) -> list[Any]:
    """Every event of a nio sync response, whatever its section."""
    events: list[Any] = []
    for room in response.rooms.join.values():
        events += room.timeline.events + room.state + room.ephemeral + room.account_data
    for room in response.rooms.invite.values():
        events += room.invite_state
    for room in response.rooms.leave.values():
        events += room.timeline.events + room.state
    return events + response.presence_events + response.account_data_events


async def nio_sync(client: nio.AsyncClient, timeout_ms: int = 0, **kwargs: Any) -> nio.SyncResponse:
    """One nio sync from the client's last token; no event may be a bad one."""
    response = ok(await client.sync(timeout=timeout_ms, **kwargs), nio.SyncResponse)
    bad = [event for event in nio_events(response) if isinstance(event, BAD_EVENTS)]
    assert not bad, f"nio could not parse: {bad}"
    return response


async def nio_sync_until(
    client: nio.AsyncClient, done: Callable[[list[nio.SyncResponse]], bool], timeout: float = WAIT
) -> list[nio.SyncResponse]:
    """nio long-polls until ``done`` holds for the responses so far."""
    responses: list[nio.SyncResponse] = []
    deadline = time.monotonic() + timeout
    while not done(responses):
        assert time.monotonic() < deadline, "nio did not get what it waited for"
        responses.append(await nio_sync(client, SYNC_MS))
    return responses


def nio_timeline(responses: list[nio.SyncResponse], room_id: str, kind: type = nio.Event) -> list[Any]:
    return [
        event
        for response in responses
        if room_id in response.rooms.join
        for event in response.rooms.join[room_id].timeline.events
        if isinstance(event, kind)
    ]


def nio_ephemeral(responses: list[nio.SyncResponse], room_id: str, kind: type) -> list[Any]:
    return [
        event
        for response in responses
        if room_id in response.rooms.join
        for event in response.rooms.join[room_id].ephemeral
        if isinstance(event, kind)
    ]


class MautrixSync:
    """One /sync answer as mautrix sees it, every event parsed strictly by
    mautrix's classes (a SerializerError fails the test)."""

    def __init__(self, data: dict[str, Any], mxid: str) -> None:
        assert isinstance(data["next_batch"], str)
        self.raw = data
        self.next_batch = data["next_batch"]
        self.timeline: dict[str, list[Any]] = {}
        self.state: dict[str, list[StateEvent]] = {}
        self.ephemeral: dict[str, list[Any]] = {}
        self.invites: dict[str, tuple[StateEvent, list[StrippedStateEvent]]] = {}
        self.left: dict[str, list[Any]] = {}
        for raw in data.get("account_data", {}).get("events", []):
            AccountDataEvent.deserialize(raw)
        rooms = data.get("rooms", {})
        for room_id, room in rooms.get("join", {}).items():
            self.state[room_id] = [
                StateEvent.deserialize({**raw, "room_id": room_id}) for raw in room.get("state", {}).get("events", [])
            ]
            self.timeline[room_id] = [
                Event.deserialize({**raw, "room_id": room_id}) for raw in room.get("timeline", {}).get("events", [])
            ]
            self.ephemeral[room_id] = [
                EphemeralEvent.deserialize({**raw, "room_id": room_id})
                for raw in room.get("ephemeral", {}).get("events", [])
            ]
        for room_id, room in rooms.get("invite", {}).items():
            raw_events = room["invite_state"]["events"]
            [own] = [raw for raw in raw_events if raw["type"] == "m.room.member" and raw["state_key"] == mxid]
            invite = StateEvent.deserialize({"event_id": None, "origin_server_ts": 0, **own, "room_id": room_id})
            self.invites[room_id] = (invite, [StrippedStateEvent.deserialize(raw) for raw in raw_events])
        for room_id, room in rooms.get("leave", {}).items():
            self.left[room_id] = [Event.deserialize({**raw, "room_id": room_id}) for raw in room["timeline"]["events"]]

    def messages(self, room_id: str) -> list[MessageEvent]:
        return [e for e in self.timeline.get(room_id, []) if isinstance(e, MessageEvent)]


async def mautrix_sync(client: Client, since: str | None = None, timeout_ms: int = 0, **kwargs: Any) -> MautrixSync:
    return MautrixSync(await client.sync(since=since, timeout=timeout_ms, **kwargs), client.mxid)


async def mautrix_sync_until(
    client: Client, since: str | None, done: Callable[[list[MautrixSync]], bool], timeout: float = WAIT, **kwargs: Any
) -> list[MautrixSync]:
    syncs: list[MautrixSync] = []
    deadline = time.monotonic() + timeout
    while not done(syncs):
        assert time.monotonic() < deadline, "mautrix did not get what it waited for"
        syncs.append(await mautrix_sync(client, since, SYNC_MS, **kwargs))
        since = syncs[-1].next_batch
    return syncs


def bodies_of(events: list[Any]) -> list[str]:
    return [event.body if isinstance(event, nio.RoomMessageText) else event.content.body for event in events]


def joined_section(syncs: list[MautrixSync], room_id: str, part: str = "timeline") -> list[Any]:
    return [event for sync in syncs for event in getattr(sync, part).get(room_id, [])]


async def shared_room(alice: nio.AsyncClient, bob: Client, **create: Any) -> str:
    """A room nio's alice creates with mautrix's bob invited and joined."""
    room_id = ok(await alice.room_create(invite=[bob.mxid], **create), nio.RoomCreateResponse).room_id
    assert await bob.join_room(room_id, max_retries=0) == room_id
    return room_id


# -- accounts ------------------------------------------------------------------
