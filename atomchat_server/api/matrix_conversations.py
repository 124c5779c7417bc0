"""Matrix client-server API: relations and threads (under /v1), room tags,
presence and reporting content."""

from __future__ import annotations

from ..errors import MatrixError
from .base import BaseHandler
from .matrix_account import PREFIX
from .matrix_rooms import ROOM

PREFIX_V1 = r"/_matrix/client/v1"


def _direction(handler: BaseHandler) -> bool:
    """Whether the request pages backwards (``dir``, default ``b``)."""
    direction = handler.get_query_argument("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", "'dir' must be 'b' or 'f'")
    return direction == "b"


def _flag(handler: BaseHandler, name: str) -> bool | None:
    value = handler.get_query_argument(name, None)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise MatrixError(400, "M_INVALID_PARAM", f"'{name}' must be 'true' or 'false'")
    return value == "true"


class RelationsHandler(BaseHandler):
    """GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]."""

    async def get(self, room_id: str, event_id: str, rel_type: str | None = None,
                  event_type: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.relations.children(
            requester, room_id, event_id, rel_type=rel_type, event_type=event_type,
            from_token=self.get_query_argument("from", None), to_token=self.get_query_argument("to", None),
            backwards=_direction(self), limit=self.int_argument("limit", 50), recurse=_flag(self, "recurse")))


class ThreadsHandler(BaseHandler):
    async def get(self, room_id: str) -> None:
        requester = await self.authenticate()
        include = self.get_query_argument("include", "all")
        if include not in ("all", "participated"):
            raise MatrixError(400, "M_INVALID_PARAM", "'include' must be 'all' or 'participated'")
        self.send_json(await self.ctx.relations.threads(
            requester, room_id, include=include, from_token=self.get_query_argument("from", None),
            limit=self.int_argument("limit", 50)))


class TagsHandler(BaseHandler):
    async def get(self, user_id: str, room_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.ephemeral.tags(requester, user_id, room_id))


class TagHandler(BaseHandler):
    async def put(self, user_id: str, room_id: str, tag: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/tag.request")
        await self.ctx.ephemeral.set_tag(requester, user_id, room_id, tag, body)
        self.send_json({})

    async def delete(self, user_id: str, room_id: str, tag: str) -> None:
        requester = await self.authenticate()
        await self.ctx.ephemeral.set_tag(requester, user_id, room_id, tag, None)
        self.send_json({})


class ReportEventHandler(BaseHandler):
    async def post(self, room_id: str, event_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/report_event.request")
        await self.ctx.reports.report_event(requester, room_id, event_id, body.get("reason", ""), body.get("score"))
        self.send_json({})


class ReportRoomHandler(BaseHandler):
    async def post(self, room_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/report.request")
        await self.ctx.reports.report_room(requester, room_id, body["reason"])
        self.send_json({})


class ReportUserHandler(BaseHandler):
    async def post(self, user_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/report.request")
        await self.ctx.reports.report_user(requester, user_id, body["reason"])
        self.send_json({})


class PresenceHandler(BaseHandler):
    async def get(self, user_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.presence.status(requester, user_id))

    async def put(self, user_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/presence.request")
        await self.ctx.presence.set_status(requester, user_id, body["presence"], body.get("status_msg"),
                                           keep_status="status_msg" not in body)
        self.send_json({})


def routes() -> list[tuple[str, type]]:
    relations = PREFIX_V1 + ROOM + r"/relations/([^/]+)"
    return [
        (relations, RelationsHandler),
        (relations + r"/([^/]+)", RelationsHandler),
        (relations + r"/([^/]+)/([^/]+)", RelationsHandler),
        (PREFIX_V1 + ROOM + r"/threads", ThreadsHandler),
        (PREFIX + ROOM + r"/report/([^/]+)", ReportEventHandler),
        (PREFIX + ROOM + r"/report", ReportRoomHandler),
        (PREFIX + r"/users/([^/]+)/report", ReportUserHandler),
        (PREFIX + r"/presence/([^/]+)/status", PresenceHandler),
        (PREFIX + r"/user/([^/]+)" + ROOM + r"/tags", TagsHandler),
        (PREFIX + r"/user/([^/]+)" + ROOM + r"/tags/([^/]+)", TagHandler),
    ]
