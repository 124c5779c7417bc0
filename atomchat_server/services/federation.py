"""Federation, the server's side of what other servers ask and send:
transactions (PDUs handed to the PDU service, EDUs applied here), profile
and alias queries; and the client API's questions to other servers about
their users' profiles and their aliases."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from typing import Any

import asyncpg

from ..errors import MatrixError, not_found
from ..events.ids import server_of
from ..federation.remote import Remote, RemoteError, Unreachable, parse_server_name
from ..storage import federation as store
from .ephemeral import Ephemeral
from .federation_events import FederationEvents
from .profiles import Profiles
from .rooms import Rooms

PROFILE_FIELDS = ("displayname", "avatar_url")
REMOTE_QUERY_TIMEOUT = 10.0
PROFILE_CACHE_SECONDS = 60.0
PROFILE_CACHE_SIZE = 10_000


def is_server_name(value: str) -> bool:
    try:
        parse_server_name(value)
    except ValueError:
        return False
    return True


class Transactions:
    """``PUT /send/{txnId}``: applied once per (origin, transaction id); a
    repeat gets the first answer again."""

    def __init__(self, *, pool: asyncpg.Pool, ephemeral: Ephemeral, events: FederationEvents) -> None:
        self._pool = pool
        self._ephemeral = ephemeral
        self._events = events
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    async def receive(self, origin: str, txn_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("origin", origin) != origin:
            raise MatrixError(400, "M_INVALID_PARAM", "The transaction's origin is not the server that signed it")
        lock = self._locks.get((origin, txn_id))
        if lock is None:
            lock = self._locks[(origin, txn_id)] = asyncio.Lock()
        async with lock:
            answered = await store.received_response(self._pool, origin, txn_id)
            if answered is not None:
                return answered
            response = {"pdus": await self._events.receive_pdus(origin, list(body.get("pdus", [])))}
            for edu in body.get("edus", []):
                await self._apply_edu(origin, edu)
            await store.record_received(self._pool, origin, txn_id, response)
            return response

    async def _apply_edu(self, origin: str, edu: Mapping[str, Any]) -> None:
        """Applies a typing notice or receipt of a user of ``origin`` who is
        in the room; anything else (other types, malformed, other servers'
        users, rooms not shared) is ignored, as the specification asks."""
        content = edu.get("content")
        if not isinstance(content, Mapping):
            return
        if edu.get("edu_type") == "m.typing":
            room_id, user_id, typing = content.get("room_id"), content.get("user_id"), content.get("typing")
            if (
                isinstance(room_id, str)
                and isinstance(user_id, str)
                and isinstance(typing, bool)
                and server_of(user_id) == origin
            ):
                await self._ephemeral.remote_typing(room_id, user_id, typing)
        elif edu.get("edu_type") == "m.receipt":
            for room_id, by_type in content.items():
                if isinstance(by_type, Mapping):
                    for receipt_type, by_user in by_type.items():
                        if isinstance(by_user, Mapping):
                            for user_id, receipt in by_user.items():
                                await self._apply_receipt(origin, room_id, receipt_type, user_id, receipt)

    async def _apply_receipt(self, origin: str, room_id: str, receipt_type: str, user_id: str, receipt: Any) -> None:
        if server_of(user_id) != origin or not isinstance(receipt, Mapping):
            return
        event_ids, data = receipt.get("event_ids"), receipt.get("data", {})
        if (
            not isinstance(event_ids, list)
            or len(event_ids) != 1
            or not isinstance(event_ids[0], str)
            or not isinstance(data, Mapping)
        ):
            return
        ts = data.get("ts")
        thread = data.get("thread_id", "")
        await self._ephemeral.remote_receipt(
            room_id,
            user_id,
            receipt_type,
            event_ids[0],
            ts if isinstance(ts, int) and not isinstance(ts, bool) else int(time.time() * 1000),
            thread if isinstance(thread, str) else "",
        )


class Queries:
    """Profile and alias questions, both ways: answering other servers
    about this server's users and aliases, and asking other servers about
    theirs for local clients (profiles cached for a minute)."""

    def __init__(
        self, *, pool: asyncpg.Pool, rooms: Rooms, profiles: Profiles, client: Remote, server_name: str
    ) -> None:
        self._pool = pool
        self._rooms = rooms
        self._local_profiles = profiles
        self._client = client
        self._server_name = server_name
        self._profiles: dict[str, tuple[float, dict[str, Any]]] = {}

    def is_remote(self, identifier: str) -> bool:
        server = server_of(identifier)
        return bool(server) and server != self._server_name and is_server_name(server)

    async def profile(self, user_id: str) -> dict[str, Any]:
        """A user's profile for a local client: this server's, or asked of the user's server."""
        if self.is_remote(user_id):
            return await self.remote_profile(user_id)
        return await self._local_profiles.get(user_id)

    async def alias(self, alias: str) -> dict[str, Any]:
        """The room an alias names, and servers to join it through."""
        if self.is_remote(alias):
            return await self.remote_alias(alias)
        return await self.local_alias(alias)

    # -- answering other servers ------------------------------------------------

    async def local_profile(self, user_id: str, field: str | None) -> dict[str, Any]:
        if server_of(user_id) != self._server_name:
            raise not_found("The user is not one of this server's")
        if field is not None and field not in PROFILE_FIELDS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown profile field {field!r}")
        profile = await self._local_profiles.get(user_id)
        return {key: value for key, value in profile.items() if value is not None and (field is None or key == field)}

    async def local_alias(self, alias: str) -> dict[str, Any]:
        if server_of(alias) != self._server_name:
            raise not_found("The alias is not one of this server's")
        room_id = await self._rooms.lookup_alias(alias)
        others = [server for server in await store.joined_servers(self._pool, room_id) if server != self._server_name]
        return {"room_id": room_id, "servers": [self._server_name, *others]}

    # -- asking other servers ----------------------------------------------------

    async def _ask(self, server: str, path: str, query: Mapping[str, str]) -> Any:
        try:
            return await self._client.request(server, "GET", path, query=query, timeout=REMOTE_QUERY_TIMEOUT)
        except RemoteError as exc:
            if exc.status == 404:
                raise not_found(exc.message or "Not found on its server") from None
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered {exc.status} {exc.errcode}") from None
        except Unreachable:
            raise MatrixError(502, "M_UNKNOWN", f"{server} cannot be reached") from None

    async def remote_profile(self, user_id: str) -> dict[str, Any]:
        cached = self._profiles.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        server = server_of(user_id)
        assert server, "is_remote() said it has one"
        answer = await self._ask(server, "/_matrix/federation/v1/query/profile", {"user_id": user_id})
        if not isinstance(answer, Mapping):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered with no profile")
        profile = {field: answer.get(field) if isinstance(answer.get(field), str) else None for field in PROFILE_FIELDS}
        if len(self._profiles) >= PROFILE_CACHE_SIZE:
            self._profiles.clear()
        self._profiles[user_id] = (time.monotonic() + PROFILE_CACHE_SECONDS, profile)
        return profile

    async def remote_alias(self, alias: str) -> dict[str, Any]:
        server = server_of(alias)
        assert server, "is_remote() said it has one"
        answer = await self._ask(server, "/_matrix/federation/v1/query/directory", {"room_alias": alias})
        room_id = answer.get("room_id") if isinstance(answer, Mapping) else None
        servers = answer.get("servers") if isinstance(answer, Mapping) else None
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered with no room id")
        listed = [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []
        return {"room_id": room_id, "servers": listed or [server]}
