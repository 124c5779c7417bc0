"""The original AtomChat REST API (/api/...), unchanged for its clients:
same paths (the trailing slash optional), same JSON shapes and status codes,
`Authorization: Token <key>`, errors in its own shapes rather than Matrix's."""

from __future__ import annotations

import json
import math
import re
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import tornado.web

from ..api import base
from ..api.base import BaseHandler, authorization_token, client_address
from ..api.contract import Op, Param
from ..auth.sessions import Requester
from ..errors import MatrixError, not_found
from .service import FieldErrors

PERMISSION_DENIED = "You do not have permission to perform this action."
# ASCII digits only (str.isdigit also takes digits int() cannot read, such as
# '①'), few enough for a bigint.
_NUMBER = re.compile(r"[0-9]{1,18}")
# Fields that are lists: a form repeats the key for each item (users=1&users=2).
_LIST_FIELDS = frozenset({"users"})


class CompatHandler(BaseHandler):
    error_schema = "api/error"
    security = ("token",)

    def access_token(self) -> str | None:
        # The header only (never a query parameter), Token as the original
        # named it and Bearer as Matrix clients send it.
        return authorization_token(
            self, ("token", "bearer"), MatrixError(401, "M_UNKNOWN_TOKEN", "Invalid token header.")
        )

    async def authenticate(self, *, allow_locked: bool = False) -> Requester:
        if self.access_token() is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "Authentication credentials were not provided.")
        return await super().authenticate(allow_locked=allow_locked)

    def body(self) -> dict[str, Any]:
        """The request body: JSON, or a form (the original accepted both)."""
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            return {
                name: self.get_body_arguments(name) if name in _LIST_FIELDS else self.get_body_argument(name)
                for name in self.request.body_arguments
            }
        return self.json_body()

    def number(self, value: str) -> int:
        """An object number from the path; anything else names no object."""
        if not _NUMBER.fullmatch(value):
            raise not_found("Not found.")
        return int(value)

    def send_data(self, body: Any, status: int = 200) -> None:
        self.send_json(body, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = self.failure(kwargs)
        body: dict[str, Any]
        if isinstance(error, FieldErrors):
            status_code, body = 400, error.errors
        elif isinstance(error, MatrixError):
            status_code, body = error.status, self._detail(error)
        elif isinstance(error, tornado.web.HTTPError) and status_code == 405:
            self.allow()
            body = {"detail": f'Method "{self.request.method}" not allowed.'}
        elif status_code == 404:
            body = {"detail": "Not found."}
        elif status_code < 500:
            body = {"detail": self._reason}
        else:
            body = {"detail": "A server error occurred."}
        self.set_status(status_code)
        if status_code == 401:
            self.set_header("WWW-Authenticate", "Token")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(value, FieldErrors):
            return  # a refusal, already in the request log line
        super().log_exception(typ, value, tb)

    def _detail(self, error: MatrixError) -> dict[str, Any]:
        if error.status == 401:
            if error.errcode == "M_USER_LOCKED":
                return {"detail": "User inactive or deleted."}
            if error.errcode == "M_MISSING_TOKEN":
                return {"detail": "Authentication credentials were not provided."}
            return {"detail": "Invalid token."}
        if error.status == 403:
            return {"detail": PERMISSION_DENIED if error.errcode == "M_FORBIDDEN" else error.error}
        if error.status == 404:
            return {"detail": "Not found."}
        if error.status == 429:
            seconds = math.ceil(error.extra.get("retry_after_ms", 1000) / 1000)
            self.set_header("Retry-After", str(seconds))
            return {"detail": f"Request was throttled. Expected available in {seconds} seconds."}
        if error.errcode == "M_NOT_JSON":
            return {"detail": "JSON parse error - the body is not valid JSON."}
        if error.status == 400:
            return {"non_field_errors": [error.error]}
        return {"detail": error.error}


class UsersHandler(CompatHandler):
    contract = {
        "post": Op(
            "Register an account", {201: "api/users.response"}, request="api/users.request", auth="none", errors=(429,)
        )
    }

    async def post(self) -> None:
        self.send_data(await self.ctx.compat.register(self.body(), client_address(self)), 201)


class MeHandler(CompatHandler):
    contract = {"get": Op("The caller's account", {200: "api/me.response"})}

    async def get(self) -> None:
        self.send_data(await self.ctx.compat.me(await self.authenticate()))


class BlockHandler(CompatHandler):
    contract = {
        "put": Op(
            "Block or unblock an account (moderators)",
            {200: "api/block.response"},
            request="api/block.request",
            errors=(403, 404),
        )
    }

    async def put(self, number: str) -> None:
        requester = await self.authenticate()
        self.send_data(await self.ctx.compat.block(requester, self.number(number), self.body()))


class TokensHandler(CompatHandler):
    contract = {
        "post": Op(
            "Log in: the key for Authorization: Token",
            {200: "api/tokens.response"},
            request="api/tokens.request",
            auth="none",
            errors=(429,),
        )
    }

    async def post(self) -> None:
        self.send_data({"token": await self.ctx.compat.token(self.body(), client_address(self))})


class RoomsHandler(CompatHandler):
    contract = {
        "get": Op("The caller's rooms", {200: "api/rooms.response"}),
        "post": Op("Create a room", {201: "api/room.response"}, request="api/rooms.request", errors=(403,)),
    }

    async def get(self) -> None:
        self.send_data(await self.ctx.compat.rooms(await self.authenticate()))

    async def post(self) -> None:
        requester = await self.authenticate()
        self.send_data(await self.ctx.compat.create_room(requester, self.body()), 201)


class RoomHandler(CompatHandler):
    contract = {
        "get": Op("One room", {200: "api/room.response"}, errors=(403, 404)),
        "put": Op("Change a room", {200: "api/room.response"}, request="api/room.request", errors=(403, 404)),
        "patch": Op("Change a room", {200: "api/room.response"}, request="api/room.request", errors=(403, 404)),
        "delete": Op("Delete a room", {204: None}, errors=(403, 404)),
    }

    async def get(self, number: str) -> None:
        requester = await self.authenticate()
        self.send_data(await self.ctx.compat.room(requester, self.number(number)))

    async def put(self, number: str) -> None:
        requester = await self.authenticate()
        self.send_data(await self.ctx.compat.update_room(requester, self.number(number), self.body()))

    patch = put  # every field is optional either way: omitted fields stay as they are

    async def delete(self, number: str) -> None:
        requester = await self.authenticate()
        await self.ctx.compat.delete_room(requester, self.number(number))
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class RoomMessagesHandler(CompatHandler):
    contract = {
        "get": Op(
            "A room's messages, oldest first",
            {200: "api/messages.response"},
            errors=(403, 404),
            query=(
                Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "One page of this many"),
                Param("before", description="The cursor from the Link header of the previous page"),
            ),
        ),
        "post": Op("Post a message", {201: "api/message.response"}, request="api/message.request", errors=(403, 404)),
    }

    async def get(self, number: str) -> None:
        """The room's messages, oldest first. The whole list is streamed page
        by page; with ?limit=N (and ?before=<cursor>) just one page, and a
        Link header (rel="next") names the page of older messages."""
        requester = await self.authenticate()
        limit = self.get_query_argument("limit", None)
        before = self.get_query_argument("before", None)
        if limit is not None and (not _NUMBER.fullmatch(limit) or not 1 <= int(limit) <= 1000):
            raise FieldErrors({"limit": ["Ensure this value is an integer between 1 and 1000."]})
        if before is not None and (not before.startswith("m") or not _NUMBER.fullmatch(before[1:])):
            raise FieldErrors({"before": ["Invalid cursor."]})
        pages, older = await self.ctx.compat.message_pages(
            requester,
            self.number(number),
            limit=int(limit) if limit else None,
            before=int(before[1:]) if before else None,
        )
        if older is not None:
            query = urlencode({"limit": limit, "before": f"m{older}"})
            self.set_header("Link", f'<{self.request.path}?{query}>; rel="next"')
        self.write("[")
        first = True
        async for page in pages:
            for message in page:
                self.write(("" if first else ",") + json.dumps(message, ensure_ascii=False))
                first = False
            await self.flush()
        self.finish("]")

    async def post(self, number: str) -> None:
        requester = await self.authenticate()
        self.send_data(await self.ctx.compat.post_message(requester, self.number(number), self.body()), 201)


class DirectMessagesHandler(CompatHandler):
    contract = {
        "post": Op(
            "Message one user (in your one-to-one room)",
            {201: "api/direct_message.response"},
            request="api/direct_message.request",
            errors=(403, 404),
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        self.send_data(await self.ctx.compat.direct_message(requester, self.body()), 201)


class HeadersTooLargeHandler(base.HeadersTooLargeHandler, CompatHandler):
    """The 414 / 431 of an /api request, in the original API's shape."""


class UnknownHandler(CompatHandler):
    def prepare(self) -> None:
        super().prepare()
        raise not_found("Not found.")


def routes() -> list[tuple[str, type]]:
    return [
        (r"/api/users/?", UsersHandler),
        (r"/api/users/me/?", MeHandler),
        (r"/api/users/([^/]+)/block/?", BlockHandler),
        (r"/api/auth/tokens/?", TokensHandler),
        (r"/api/rooms/?", RoomsHandler),
        (r"/api/rooms/([^/]+)/?", RoomHandler),
        (r"/api/rooms/([^/]+)/messages/?", RoomMessagesHandler),
        (r"/api/messages/?", DirectMessagesHandler),
        (r"/api(?:/.*)?", UnknownHandler),
    ]
