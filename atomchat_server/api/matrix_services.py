"""Matrix client-server API: what clients ask about at start-up for services
this server does not run (TURN, bridges to third-party networks, third-party
identifiers, server-side key backup), answered the way the specification
has a server without them answer, and the client discovery document."""

from __future__ import annotations

from ..errors import not_found
from .base import BaseHandler
from .matrix_account import PREFIX


class WellKnownClientHandler(BaseHandler):
    """The base URL clients should use: the one this request came in on."""

    def get(self) -> None:
        self.send_json({"m.homeserver": {"base_url": f"{self.request.protocol}://{self.request.host}"}})


class TurnServerHandler(BaseHandler):
    """No TURN server: an empty object, so clients call without relays."""

    async def get(self) -> None:
        await self.authenticate()
        self.send_json({})


class ThirdPartyProtocolsHandler(BaseHandler):
    async def get(self) -> None:
        await self.authenticate()
        self.send_json({})


class ThreePidsHandler(BaseHandler):
    async def get(self) -> None:
        await self.authenticate()
        self.send_json({"threepids": []})


class RoomKeysVersionHandler(BaseHandler):
    """No key backup is kept: 404 M_NOT_FOUND, which clients read as "none yet"."""

    async def get(self) -> None:
        await self.authenticate()
        raise not_found("No current backup version")


def routes() -> list[tuple[str, type]]:
    return [
        (r"/\.well-known/matrix/client", WellKnownClientHandler),
        (PREFIX + r"/voip/turnServer", TurnServerHandler),
        (PREFIX + r"/thirdparty/protocols", ThirdPartyProtocolsHandler),
        (PREFIX + r"/account/3pid", ThreePidsHandler),
        (PREFIX + r"/room_keys/version", RoomKeysVersionHandler),
    ]
