"""Matrix client-server API: profiles."""

from __future__ import annotations

from .base import BaseHandler
from .contract import Op
from .matrix_account import PREFIX


class ProfileHandler(BaseHandler):
    contract = {
        "get": Op(
            "A user's profile",
            {200: "matrix/profile.response"},
            auth="none",
            errors=(404, 502),
            description="A remote user's profile is asked of their server (502 when it cannot "
            "answer) and kept for a minute.",
        )
    }

    async def get(self, user_id: str) -> None:
        profile = await self.ctx.federation_queries.profile(user_id)
        self.send_json({k: v for k, v in profile.items() if v is not None})


class ProfileFieldHandler(BaseHandler):
    contract = {
        "get": Op("A user's {field}", {200: "matrix/profile_{field}.response"}, auth="none", errors=(404, 502)),
        "put": Op(
            "Set your {field}",
            {200: "matrix/empty.response"},
            request="matrix/profile_{field}.request",
            errors=(403, 404),
        ),
    }

    async def get(self, user_id: str, field: str) -> None:
        profile = await self.ctx.federation_queries.profile(user_id)
        # The key is always present (null when unset): clients rely on it.
        self.send_json({field: profile[field]})

    async def put(self, user_id: str, field: str) -> None:
        requester = await self.authenticate()
        body = self.json_body(f"matrix/profile_{field}.request")
        await self.ctx.profiles.set(requester, user_id, field, body.get(field))
        self.send_json({})


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/profile/([^/]+)", ProfileHandler),
        (PREFIX + r"/profile/([^/]+)/(displayname|avatar_url)", ProfileFieldHandler),
    ]
