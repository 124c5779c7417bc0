"""The moderation (admin) API, /_atomchat/admin/v1/..., for moderators only,
and the Matrix spec's lock and suspend endpoints (/_matrix/client/v1/admin/...)."""

from __future__ import annotations

from ..auth.sessions import Requester
from ..errors import invalid_param, not_found
from ..events import ids
from .base import BaseHandler
from .contract import OBJECT, Op, Param
from .matrix_rooms import MESSAGES_QUERY, messages_body

ADMIN = r"/_atomchat/admin/v1"
MAX_PAGE = 500
PAGE_QUERY = (
    Param("from", description="The next_token of the previous page"),
    Param("limit", {"type": "integer"}, f"Rows per page, 1 to {MAX_PAGE} (default 100)"),
)


class AdminHandler(BaseHandler):
    async def moderator(self) -> Requester:
        requester = await self.authenticate()
        self.ctx.moderation.require_moderator(requester)
        return requester

    def page_arguments(self) -> tuple[int, int]:
        start = self.int_argument("from", 0)
        if start < 0:
            raise invalid_param("'from' must be a token from a previous page")
        return start, max(1, min(self.int_argument("limit", 100), MAX_PAGE))


class UsersHandler(AdminHandler):
    contract = {
        "get": Op(
            "Every account, paged",
            {200: "admin/users.response"},
            errors=(403,),
            query=(
                Param("search", description="A part of the user id or display name"),
                Param("filter", {"type": "string", "enum": ["locked", "suspended", "moderators"]}),
                *PAGE_QUERY,
            ),
        )
    }

    async def get(self) -> None:
        await self.moderator()
        only = self.get_query_argument("filter", None)
        if only not in (None, "locked", "suspended", "moderators"):
            raise invalid_param("'filter' is one of locked, suspended, moderators")
        after, limit = self.page_arguments()
        self.send_json(
            await self.ctx.admin.users(
                search=self.get_query_argument("search", None), only=only, after=after, limit=limit
            )
        )


class UserHandler(AdminHandler):
    contract = {"get": Op("One account", {200: "admin/user.response"}, errors=(403, 404))}

    async def get(self, user_id: str) -> None:
        await self.moderator()
        self.send_json(await self.ctx.admin.user(user_id))


class UserBlockHandler(AdminHandler):
    """PUT /users/{userId}/lock {"locked", "reason"} and /suspend {"suspended", "reason"}."""

    contract = {
        "put": Op(
            "Set or lift a {kind}", {200: "admin/{kind}.response"}, request="admin/{kind}.request", errors=(403, 404)
        )
    }

    async def put(self, user_id: str, kind: str) -> None:
        requester = await self.moderator()
        body = self.json_body(f"admin/{kind}.request")
        key = "locked" if kind == "lock" else "suspended"
        await self.ctx.moderation.set_block(
            requester.user_id, user_id, key if body[key] else None, body.get("reason", "")
        )
        self.send_json({key: body[key]})


class UserModeratorHandler(AdminHandler):
    contract = {
        "put": Op(
            "Grant or revoke the moderator role",
            {200: "admin/moderator.response"},
            request="admin/moderator.request",
            errors=(403, 404),
        )
    }

    async def put(self, user_id: str) -> None:
        requester = await self.moderator()
        body = self.json_body("admin/moderator.request")
        await self.ctx.moderation.set_moderator(requester.user_id, user_id, body["moderator"])
        self.send_json({"moderator": body["moderator"]})


class UserRedactHandler(AdminHandler):
    contract = {
        "post": Op(
            "Redact every event of an account",
            {200: "admin/redact.response"},
            request="admin/redact.request",
            errors=(403, 404),
        )
    }

    async def post(self, user_id: str) -> None:
        requester = await self.moderator()
        body = self.json_body("admin/redact.request")
        count = await self.ctx.moderation.redact_all(requester.user_id, user_id, body.get("reason", ""))
        self.send_json({"redacted": count})


class UserLogoutHandler(AdminHandler):
    contract = {
        "post": Op("Log an account out everywhere", {200: "matrix/empty.response"}, request=OBJECT, errors=(403, 404))
    }

    async def post(self, user_id: str) -> None:
        await self.moderator()
        self.json_body()
        await self.ctx.admin.log_out(user_id)
        self.send_json({})


class RoomsHandler(AdminHandler):
    contract = {
        "get": Op(
            "Every room, paged",
            {200: "admin/rooms.response"},
            errors=(403,),
            query=(Param("search", description="A part of the room id, name or alias"), *PAGE_QUERY),
        )
    }

    async def get(self) -> None:
        await self.moderator()
        after, limit = self.page_arguments()
        self.send_json(
            await self.ctx.admin.rooms(search=self.get_query_argument("search", None), after=after, limit=limit)
        )


class RoomHandler(AdminHandler):
    contract = {
        "get": Op("One room", {200: "admin/room.response"}, errors=(403, 404)),
        "delete": Op(
            "Delete (and optionally purge) a room",
            {200: "matrix/empty.response"},
            request="admin/delete_room.request",
            errors=(403, 404),
        ),
    }

    async def get(self, room_id: str) -> None:
        await self.moderator()
        self.send_json(await self.ctx.admin.room(room_id))

    async def delete(self, room_id: str) -> None:
        requester = await self.moderator()
        body = self.json_body("admin/delete_room.request")
        await self.ctx.moderation.delete_room(
            requester.user_id, room_id, purge=body.get("purge", False), reason=body.get("reason", "")
        )
        self.send_json({})


class RoomMessagesHandler(AdminHandler):
    """A room's history for moderators, paged exactly like /messages."""

    contract = {
        "get": Op(
            "Page through any room's history",
            {200: "matrix/messages.response"},
            errors=(403, 404),
            query=MESSAGES_QUERY,
        )
    }

    async def get(self, room_id: str) -> None:
        requester = await self.moderator()
        self.send_json(await messages_body(self, requester, room_id))


class ReportsHandler(AdminHandler):
    contract = {
        "get": Op(
            "Reports of events, rooms and users, newest first, paged",
            {200: "admin/reports.response"},
            errors=(403,),
            query=(
                Param("status", {"type": "string", "enum": ["open", "resolved", "dismissed", "all"]}, "open (default)"),
                *PAGE_QUERY,
            ),
        )
    }

    async def get(self) -> None:
        await self.moderator()
        status = self.get_query_argument("status", "open")
        if status not in ("open", "resolved", "dismissed", "all"):
            raise invalid_param("'status' is one of open, resolved, dismissed, all")
        before, limit = self.page_arguments()
        self.send_json(
            await self.ctx.reports.reports(
                status=None if status == "all" else status, before=before or None, limit=limit
            )
        )


class ReportHandler(AdminHandler):
    contract = {
        "get": Op("One report", {200: "admin/report.response"}, errors=(403, 404)),
        "put": Op(
            "Resolve, dismiss or reopen a report",
            {200: "admin/report.response"},
            request="admin/report.request",
            errors=(403, 404),
        ),
    }

    async def get(self, report_id: str) -> None:
        await self.moderator()
        self.send_json(await self.ctx.reports.report(_report_id(report_id)))

    async def put(self, report_id: str) -> None:
        """Resolves or dismisses the report, or opens it again."""
        requester = await self.moderator()
        body = self.json_body("admin/report.request")
        self.send_json(
            await self.ctx.reports.handle(requester.user_id, _report_id(report_id), body["status"], body.get("note"))
        )


def _report_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise not_found("Unknown report")
    return int(value)


class MatrixBlockHandler(AdminHandler):
    """GET/PUT /_matrix/client/v1/admin/{lock,suspend}/{userId} (MSC4323)."""

    contract = {
        "get": Op("Whether an account is under {kind}", {200: "admin/{kind}.response"}, errors=(403, 404)),
        "put": Op(
            "Set or lift a {kind}", {200: "admin/{kind}.response"}, request="admin/{kind}.request", errors=(403, 404)
        ),
    }

    def require_local(self, user_id: str) -> None:
        """The spec tells a user of another server (400) from an unknown one (404)."""
        parts = ids.split_user_id(user_id)
        if parts is None or parts[1] != self.ctx.settings.server_name:
            raise invalid_param(f"{user_id!r} is not a user id of this server")

    async def get(self, kind: str, user_id: str) -> None:
        await self.moderator()
        self.require_local(user_id)
        user = await self.ctx.admin.user(user_id)
        key = "locked" if kind == "lock" else "suspended"
        self.send_json({key: user[key]})

    async def put(self, kind: str, user_id: str) -> None:
        requester = await self.moderator()
        self.require_local(user_id)
        key = "locked" if kind == "lock" else "suspended"
        body = self.json_body(f"admin/{kind}.request")
        await self.ctx.moderation.set_block(
            requester.user_id, user_id, key if body[key] else None, body.get("reason", "")
        )
        self.send_json({key: body[key]})


class ServerBanHandler(AdminHandler):
    """Another server (or every server a glob such as ``*.example.org``
    matches) banned by an m.policy.rule.server rule: its requests get 403
    and events from its users are refused, also when another server relays
    them."""

    contract = {
        "get": Op("Whether a server is banned", {200: "admin/server_ban.response"}, errors=(400, 403)),
        "put": Op(
            "Ban a server or lift its ban",
            {200: "admin/server_ban.response"},
            request="admin/server_ban.request",
            errors=(400, 403),
        ),
    }

    def server(self, server: str) -> str:
        if not server or len(server) > 255 or any(c.isspace() or c in "/@#!" for c in server):
            raise invalid_param("Not a server name or server glob")
        if server == self.ctx.settings.server_name:
            raise invalid_param("This server cannot ban itself")
        return server

    async def get(self, server: str) -> None:
        await self.moderator()
        self.send_json({"banned": self.ctx.moderation.blocks.server_banned(self.server(server))})

    async def put(self, server: str) -> None:
        requester = await self.moderator()
        body = self.json_body("admin/server_ban.request")
        await self.ctx.moderation.set_server_ban(
            requester.user_id, self.server(server), body["banned"], body.get("reason", "")
        )
        self.send_json({"banned": body["banned"]})


def routes() -> list[tuple[str, type]]:
    return [
        (ADMIN + r"/users", UsersHandler),
        (ADMIN + r"/users/([^/]+)", UserHandler),
        (ADMIN + r"/users/([^/]+)/(lock|suspend)", UserBlockHandler),
        (ADMIN + r"/users/([^/]+)/moderator", UserModeratorHandler),
        (ADMIN + r"/users/([^/]+)/redact", UserRedactHandler),
        (ADMIN + r"/users/([^/]+)/logout", UserLogoutHandler),
        (ADMIN + r"/rooms", RoomsHandler),
        (ADMIN + r"/rooms/([^/]+)", RoomHandler),
        (ADMIN + r"/rooms/([^/]+)/messages", RoomMessagesHandler),
        (ADMIN + r"/servers/([^/]+)/ban", ServerBanHandler),
        (ADMIN + r"/reports", ReportsHandler),
        (ADMIN + r"/reports/([^/]+)", ReportHandler),
        (r"/_matrix/client/v1/admin/(lock|suspend)/([^/]+)", MatrixBlockHandler),
    ]
