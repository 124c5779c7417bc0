"""Matrix server-server API: what other servers read of this one. For now
the server's published signing key (see federation/keys.py)."""

from __future__ import annotations

import time

from ..federation.keys import key_document
from .base import BaseHandler
from .contract import Op


class ServerKeyHandler(BaseHandler):
    contract = {"get": Op(
        "This server's signing keys", {200: "federation/server_key.response"}, auth="none",
        description="The server's ed25519 verify keys, signed by the server itself, with the time until which "
                    "other servers may cache them. Other servers check this server's events and requests "
                    "against them.")}

    def get(self) -> None:
        self.send_json(key_document(self.ctx.settings.server_name, self.ctx.server_key, int(time.time() * 1000)))


def routes() -> list[tuple[str, type]]:
    return [(r"/_matrix/key/v2/server/?", ServerKeyHandler)]
