"""Matrix client-server API: relations and threads (under /v1), room tags,
presence and reporting content."""

from __future__ import annotations

from ..errors import invalid_param
from .base import BaseHandler
from .contract import Op, Param
from .matrix_account import PREFIX
from .matrix_rooms import ROOM

PREFIX_V1 = r"/_matrix/client/v1"


def _direction(handler: BaseHandler) -> bool:
    """Whether the request pages backwards (``dir``, default ``b``)."""
    direction = handler.get_query_argument("dir", "b")
    if direction not in ("b", "f"):
        raise invalid_param("'dir' must be 'b' or 'f'")
    return direction == "b"


class RelationsHandler(BaseHandler):
    """GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]."""

    contract = {
        "get": Op(
            "The events that relate to an event, paged",
            {200: "matrix/relations.response"},
            errors=(403, 404),
            query=(
                Param("dir", {"type": "string", "enum": ["b", "f"]}, "b (default): newest first; f: oldest first"),
                Param("from", description="The next_batch of the previous page"),
                Param("to", description="A token to stop at"),
                Param("limit", {"type": "integer"}, "Events per page, 1 to 1000 (default 50)"),
                Param(
                    "recurse",
                    {"type": "string", "enum": ["true", "false"]},
                    "true: relations of relations too, three levels deep",
                ),
            ),
        )
    }

    async def get(
        self, room_id: str, event_id: str, rel_type: str | None = None, event_type: str | None = None
    ) -> None:
        requester = await self.authenticate()
        self.send_json(
            await self.ctx.relations.children(
                requester,
                room_id,
                event_id,
                rel_type=rel_type,
                event_type=event_type,
                from_token=self.get_query_argument("from", None),
                to_token=self.get_query_argument("to", None),
                backwards=_direction(self),
                limit=self.int_argument("limit", 50),
                # Absent and false differ: only a given 'recurse' is answered with recursion_depth.
                recurse=(
                    self.bool_argument("recurse", False)
                    if self.get_query_argument("recurse", None) is not None
                    else None
                ),
            )
        )


class ThreadsHandler(BaseHandler):
    contract = {
        "get": Op(
            "The room's threads, latest activity first",
            {200: "matrix/threads.response"},
            errors=(403, 404),
            query=(
                Param("include", {"type": "string", "enum": ["all", "participated"]}),
                Param("from", description="The next_batch of the previous page"),
                Param("limit", {"type": "integer"}, "Thread roots per page, 1 to 1000 (default 50)"),
            ),
        )
    }

    async def get(self, room_id: str) -> None:
        requester = await self.authenticate()
        include = self.get_query_argument("include", "all")
        if include not in ("all", "participated"):
            raise invalid_param("'include' must be 'all' or 'participated'")
        self.send_json(
            await self.ctx.relations.threads(
                requester,
                room_id,
                include=include,
                from_token=self.get_query_argument("from", None),
                limit=self.int_argument("limit", 50),
            )
        )


class TagsHandler(BaseHandler):
    contract = {"get": Op("The user's tags on a room", {200: "matrix/tags.response"}, errors=(403, 404))}

    async def get(self, user_id: str, room_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.ephemeral.tags(requester, user_id, room_id))


class TagHandler(BaseHandler):
    contract = {
        "put": Op("Tag a room", {200: "matrix/empty.response"}, request="matrix/tag.request", errors=(403, 404)),
        "delete": Op("Remove a room's tag", {200: "matrix/empty.response"}, errors=(403, 404)),
    }

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
    contract = {
        "post": Op(
            "Report an event to the moderators",
            {200: "matrix/empty.response"},
            request="matrix/report_event.request",
            errors=(404,),
        )
    }

    async def post(self, room_id: str, event_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/report_event.request")
        await self.ctx.reports.report_event(requester, room_id, event_id, body.get("reason", ""), body.get("score"))
        self.send_json({})


class ReportRoomHandler(BaseHandler):
    contract = {
        "post": Op(
            "Report a room to the moderators",
            {200: "matrix/empty.response"},
            request="matrix/report.request",
            errors=(404,),
        )
    }

    async def post(self, room_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/report.request")
        await self.ctx.reports.report_room(requester, room_id, body["reason"])
        self.send_json({})


class ReportUserHandler(BaseHandler):
    contract = {
        "post": Op(
            "Report a user to the moderators",
            {200: "matrix/empty.response"},
            request="matrix/report.request",
            errors=(404,),
        )
    }

    async def post(self, user_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/report.request")
        await self.ctx.reports.report_user(requester, user_id, body["reason"])
        self.send_json({})


class PresenceHandler(BaseHandler):
    contract = {
        "get": Op("A user's presence", {200: "matrix/presence.response"}, errors=(403, 404)),
        "put": Op(
            "Choose one's presence", {200: "matrix/empty.response"}, request="matrix/presence.request", errors=(403,)
        ),
    }

    async def get(self, user_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.presence.status(requester, user_id))

    async def put(self, user_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/presence.request")
        await self.ctx.presence.set_status(
            requester, user_id, body["presence"], body.get("status_msg"), keep_status="status_msg" not in body
        )
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
