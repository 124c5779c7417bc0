"""A client of the original AtomChat REST API (/api) for the tests, and the
steps the /api tests share.

It talks as the original API's clients do: `Authorization: Token <key>`,
JSON or form bodies, paths with the trailing slash. Every answer is checked
against its schema in schemas/api/: successes against the schema a call
names, errors against the original API's error shapes ({"detail"} or field
errors), and a 401 must carry `WWW-Authenticate: Token`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .client import DEFAULT_PASSWORD, MATRIX, ApiClient, Response, check_schema
from .room_steps import User

DETAIL_ERROR = "api/error.detail"
ANY_ERROR = "api/error"
NOT_ALLOWED = "You do not have permission to perform this action."
NOT_FOUND = {"detail": "Not found."}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class CompatClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        status: int | tuple[int, ...] = 200,
        schema: str | None = None,
        form: dict[str, str] | None = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> Response:
        """One request; ``schema`` names the body of the expected success.
        ``status`` may list several, for races whose winner is unknown. With
        ``stream`` the body is read as it arrives (a streamed list)."""
        all_headers = {"Content-Type": "application/json"}
        if token is not None:
            all_headers["Authorization"] = f"Token {token}"
        if form is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            payload: Any = urlencode(form)
        elif raw is not None:
            payload = raw
        elif body is not None:
            payload = json.dumps(body)
        else:
            payload = b"" if method in ("POST", "PUT", "PATCH") else None
        all_headers.update(headers or {})
        chunks: list[bytes] = []
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers=all_headers,
            body=payload,
            allow_nonstandard_methods=True,
            request_timeout=60,
            streaming_callback=chunks.append if stream else None,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        data = b"".join(chunks) if stream else response.body
        text = data.decode() if data else ""
        expected = status if isinstance(status, tuple) else (status,)
        assert response.code in expected, f"{method} {path}: expected {status}, got {response.code}: {text}"
        if response.code == 204:
            assert text == ""
            return Response(204, response.headers, None)
        assert response.headers.get("Content-Type", "").startswith("application/json"), (path, text[:200])
        decoded = json.loads(text)
        if response.code >= 400:
            check_schema(ANY_ERROR if response.code == 400 else DETAIL_ERROR, decoded)
            if response.code == 401:
                assert response.headers.get("WWW-Authenticate") == "Token"
        else:
            assert schema is not None, f"{method} {path}: name the schema of the {response.code} body"
            check_schema(schema, decoded)
        return Response(response.code, response.headers, decoded)

    # -- steps ---------------------------------------------------------------------------

    async def register(self, username: str, password: str = DEFAULT_PASSWORD, **extra: Any) -> Response:
        return await self.request(
            "POST",
            "/api/users/",
            {"username": username, "password": password, **extra},
            status=201,
            schema="api/users.response",
        )

    async def token(self, username: str, password: str = DEFAULT_PASSWORD) -> str:
        answer = await self.request(
            "POST", "/api/auth/tokens/", {"username": username, "password": password}, schema="api/tokens.response"
        )
        return answer["token"]


@dataclass
class Person:
    """Someone using the original API: account number, name and token."""

    client: CompatClient
    id: int
    username: str
    token: str
    user_id: str  # the Matrix user id, as the Matrix API shows it

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int | tuple[int, ...] = 200,
        schema: str | None = None,
        **kwargs: Any,
    ) -> Response:
        return await self.client.request(method, path, body, token=self.token, status=status, schema=schema, **kwargs)

    def on_matrix(self, api: ApiClient) -> User:
        """The same session on the Matrix API (the /api token is a Bearer token there)."""
        return User(api, self.user_id, self.token, "")

    # -- rooms -------------------------------------------------------------------------

    async def create_room(self, name: str, users: list[int] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if users is not None:
            body["users"] = users
        return (await self.call("POST", "/api/rooms/", body, status=201, schema="api/room.response")).body

    async def room(self, number: int, *, status: int = 200) -> Response:
        return await self.call("GET", f"/api/rooms/{number}/", status=status, schema="api/room.response")

    async def rooms(self) -> list[dict[str, Any]]:
        return (await self.call("GET", "/api/rooms/", schema="api/rooms.response")).body

    async def update_room(
        self, number: int, body: dict[str, Any], *, method: str = "PUT", status: int | tuple[int, ...] = 200
    ) -> Response:
        return await self.call(method, f"/api/rooms/{number}/", body, status=status, schema="api/room.response")

    # -- messages ----------------------------------------------------------------------

    async def post(self, number: int, text: str, *, status: int = 201) -> Response:
        return await self.call(
            "POST", f"/api/rooms/{number}/messages/", {"text": text}, status=status, schema="api/message.response"
        )

    async def messages(self, number: int, *, status: int = 200, **query: Any) -> Response:
        """GET a room's messages, read as it is streamed."""
        suffix = "?" + urlencode(query) if query else ""
        return await self.call(
            "GET", f"/api/rooms/{number}/messages/{suffix}", status=status, schema="api/messages.response", stream=True
        )

    async def direct(self, user_to: Any, text: str, *, status: int = 201) -> Response:
        return await self.call(
            "POST",
            "/api/messages/",
            {"text": text, "user_to": user_to},
            status=status,
            schema="api/direct_message.response",
        )


async def person(client: CompatClient, username: str, password: str = DEFAULT_PASSWORD) -> Person:
    """Registers on /api, takes a token, and learns the account's number and Matrix id."""
    await client.register(username, password)
    token = await client.token(username, password)
    me = await client.request("GET", "/api/users/me/", token=token, schema="api/me.response")
    assert me["username"] == username
    whoami = await ApiClient(client.base_url).request(
        "GET", f"{MATRIX}/account/whoami", token=token, schema="matrix/whoami.response"
    )
    return Person(client, me["id"], username, token, whoami["user_id"])


async def people(client: CompatClient, *names: str) -> list[Person]:
    return [await person(client, name) for name in names]


async def promote(server, someone: Person) -> None:
    """Makes someone a moderator as `atomchat user promote` does."""
    await server.atomchat.ctx.moderation.set_moderator(None, someone.user_id, True)


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]
