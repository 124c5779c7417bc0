"""Matrix client-server API: server-side search of room events and the user directory."""

from __future__ import annotations

from .base import BaseHandler
from .contract import Op, Param
from .matrix_account import PREFIX


class SearchHandler(BaseHandler):
    contract = {
        "post": Op(
            "Search the room events you may read",
            {200: "matrix/search.response"},
            request="matrix/search.request",
            query=(Param("next_batch", description="the next_batch of the previous page"),),
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/search.request")
        categories = {}
        criteria = body["search_categories"].get("room_events")
        if criteria is not None:
            categories["room_events"] = await self.ctx.search.room_events(
                requester, criteria, self.get_query_argument("next_batch", None)
            )
        self.send_json({"search_categories": categories})


class UserDirectoryHandler(BaseHandler):
    contract = {
        "post": Op(
            "Find users who share a room with you or are in a public room",
            {200: "matrix/user_directory.response"},
            request="matrix/user_directory.request",
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/user_directory.request")
        self.send_json(await self.ctx.search.users(requester, body["search_term"], body.get("limit")))


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/search", SearchHandler),
        (PREFIX + r"/user_directory/search", UserDirectoryHandler),
    ]
