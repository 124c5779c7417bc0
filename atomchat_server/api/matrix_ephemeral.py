"""Matrix client-server API: typing, receipts, read markers and account data."""

from __future__ import annotations

from .base import BaseHandler
from .matrix_account import PREFIX
from .matrix_rooms import ROOM


class TypingHandler(BaseHandler):
    async def put(self, room_id: str, user_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/typing.request")
        await self.ctx.ephemeral.typing(requester, room_id, user_id, body["typing"],
                                        body.get("timeout", 30_000))
        self.send_json({})


class ReceiptHandler(BaseHandler):
    async def post(self, room_id: str, receipt_type: str, event_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/receipt.request")
        await self.ctx.ephemeral.receipt(requester, room_id, receipt_type, event_id, body.get("thread_id", ""))
        self.send_json({})


class ReadMarkersHandler(BaseHandler):
    async def post(self, room_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/read_markers.request")
        await self.ctx.ephemeral.read_markers(requester, room_id, body)
        self.send_json({})


class AccountDataHandler(BaseHandler):
    """GET/PUT /user/{userId}/account_data/{type} and the per-room form."""

    async def get(self, user_id: str, *rest: str) -> None:
        requester = await self.authenticate()
        room_id, data_type = rest if len(rest) == 2 else ("", rest[0])
        self.send_json(await self.ctx.ephemeral.account_data(requester, user_id, room_id, data_type))

    async def put(self, user_id: str, *rest: str) -> None:
        requester = await self.authenticate()
        room_id, data_type = rest if len(rest) == 2 else ("", rest[0])
        content = self.json_body()
        await self.ctx.ephemeral.set_account_data(requester, user_id, room_id, data_type, content)
        self.send_json({})


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + ROOM + r"/typing/([^/]+)", TypingHandler),
        (PREFIX + ROOM + r"/receipt/([^/]+)/([^/]+)", ReceiptHandler),
        (PREFIX + ROOM + r"/read_markers", ReadMarkersHandler),
        (PREFIX + r"/user/([^/]+)/account_data/([^/]+)", AccountDataHandler),
        (PREFIX + r"/user/([^/]+)/rooms/([^/]+)/account_data/([^/]+)", AccountDataHandler),
    ]
