"""Matrix client-server API: typing, receipts, read markers and account data."""

from __future__ import annotations

from .base import BaseHandler
from .contract import OBJECT, Op
from .matrix_account import PREFIX
from .matrix_rooms import ROOM


class TypingHandler(BaseHandler):
    contract = {
        "put": Op(
            "Start or stop typing", {200: "matrix/empty.response"}, request="matrix/typing.request", errors=(403, 404)
        )
    }

    async def put(self, room_id: str, user_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/typing.request")
        await self.ctx.ephemeral.typing(requester, room_id, user_id, body["typing"], body.get("timeout", 30_000))
        self.send_json({})


class ReceiptHandler(BaseHandler):
    contract = {
        "post": Op(
            "Send a read receipt", {200: "matrix/empty.response"}, request="matrix/receipt.request", errors=(403, 404)
        )
    }

    async def post(self, room_id: str, receipt_type: str, event_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/receipt.request")
        await self.ctx.ephemeral.receipt(requester, room_id, receipt_type, event_id, body.get("thread_id", ""))
        self.send_json({})


class ReadMarkersHandler(BaseHandler):
    contract = {
        "post": Op(
            "Move the read markers",
            {200: "matrix/empty.response"},
            request="matrix/read_markers.request",
            errors=(403, 404),
        )
    }

    async def post(self, room_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/read_markers.request")
        await self.ctx.ephemeral.read_markers(requester, room_id, body)
        self.send_json({})


class AccountDataHandler(BaseHandler):
    """GET/PUT /user/{userId}/account_data/{type} and the per-room form
    (the global form's room is the empty string)."""

    contract = {
        "get": Op("Read account data", {200: "matrix/account_data.response"}, errors=(403, 404)),
        "put": Op("Write account data", {200: "matrix/empty.response"}, request=OBJECT, errors=(403, 404)),
    }

    async def get(self, user_id: str, data_type: str, room_id: str = "") -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.ephemeral.account_data(requester, user_id, room_id, data_type))

    async def put(self, user_id: str, data_type: str, room_id: str = "") -> None:
        requester = await self.authenticate()
        content = self.json_body()
        await self.ctx.ephemeral.set_account_data(requester, user_id, room_id, data_type, content)
        self.send_json({})


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + ROOM + r"/typing/([^/]+)", TypingHandler),
        (PREFIX + ROOM + r"/receipt/([^/]+)/([^/]+)", ReceiptHandler),
        (PREFIX + ROOM + r"/read_markers", ReadMarkersHandler),
        # Named groups: the two forms pass the room (or not) by name.
        (PREFIX + r"/user/(?P<user_id>[^/]+)/account_data/(?P<data_type>[^/]+)", AccountDataHandler),
        (
            PREFIX + r"/user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/account_data/(?P<data_type>[^/]+)",
            AccountDataHandler,
        ),
    ]
