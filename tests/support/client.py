"""An HTTP client for the tests that checks every answer against its schema.

Every call states the status it expects and, for a successful JSON answer,
the schema of its body; error bodies are always checked against the shared
error schema. A test thus cannot read a response that breaks the protocol.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from atomchat_server.validation import schemas

MATRIX = "/_matrix/client/v3"
ERROR_SCHEMA = "common/error"
DEFAULT_PASSWORD = "a long password 42"


def check_schema(name: str, body: Any) -> None:
    errors = sorted(schemas().validator(name).iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"response breaks schema {name}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
    )


def path_param(value: str) -> str:
    """Percent-encodes an identifier for use in a path, as mautrix does."""
    return quote(value, safe="")


class Response:
    def __init__(self, status: int, headers, body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __getitem__(self, key):
        return self.body[key]

    def get(self, key, default=None):
        return self.body.get(key, default)


class ApiClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    @property
    def http(self) -> AsyncHTTPClient:
        return AsyncHTTPClient()  # one per running loop, made on first use

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        status: int = 200,
        schema: str | None = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = {"Content-Type": "application/json"}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        payload: bytes | str | None
        if raw is not None:
            payload = raw
        elif body is not None:
            payload = json.dumps(body)
        else:
            payload = b"" if method in ("POST", "PUT") else None
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers=all_headers,
            body=payload,
            allow_nonstandard_methods=True,
            request_timeout=60,
        )
        response = await self.http.fetch(request, raise_error=False)
        text = response.body.decode() if response.body else ""
        decoded = json.loads(text) if text else None
        assert response.code == status, f"{method} {path}: expected {status}, got {response.code}: {text}"
        if response.code >= 400:
            check_schema(schema or ERROR_SCHEMA, decoded)
        elif decoded is not None:
            assert response.headers.get("Content-Type", "").startswith("application/json")
            assert schema is not None, f"{method} {path}: name the schema of the {response.code} body"
            check_schema(schema, decoded)
        return Response(response.code, response.headers, decoded)

    # -- conveniences for the steps most tests take --------------------------

    async def register(self, username: str, password: str = DEFAULT_PASSWORD, **extra: Any) -> Response:
        body = {"username": username, "password": password, "auth": {"type": "m.login.dummy"}, **extra}
        return await self.request("POST", f"{MATRIX}/register", body, schema="matrix/register.response")

    async def login(self, user: str, password: str = DEFAULT_PASSWORD, **extra: Any) -> Response:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            **extra,
        }
        return await self.request("POST", f"{MATRIX}/login", body, schema="matrix/login.response")


def password_auth(user: str, password: str = DEFAULT_PASSWORD, session: str | None = None) -> dict[str, Any]:
    """The ``auth`` field of a request that user-interactive authentication
    guards, answering its m.login.password stage."""
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    if session is not None:
        auth["session"] = session
    return auth
