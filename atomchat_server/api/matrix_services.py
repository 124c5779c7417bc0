"""Matrix client-server API: what clients ask about at start-up for services
this server does not run (TURN, bridges to third-party networks, third-party
identifiers), answered the way the specification has a server without them
answer, and the client discovery document. (Key backup, which clients ask
about at start-up too, is served by matrix_keys.)"""

from __future__ import annotations

from .base import BaseHandler
from .contract import Op
from .matrix_account import PREFIX


class WellKnownClientHandler(BaseHandler):
    """The base URL clients should use: the one this request came in on."""

    contract = {
        "get": Op(
            "Where clients find this server's client API", {200: "matrix/well_known_client.response"}, auth="none"
        )
    }

    def get(self) -> None:
        self.send_json({"m.homeserver": {"base_url": f"{self.request.protocol}://{self.request.host}"}})


class TurnServerHandler(BaseHandler):
    """No TURN server: an empty object, so clients call without relays."""

    contract = {"get": Op("TURN servers for calls (none)", {200: "matrix/turnServer.response"})}

    async def get(self) -> None:
        await self.authenticate()
        self.send_json({})


class ThirdPartyProtocolsHandler(BaseHandler):
    contract = {"get": Op("Third-party networks bridged (none)", {200: "matrix/thirdparty_protocols.response"})}

    async def get(self) -> None:
        await self.authenticate()
        self.send_json({})


class ThreePidsHandler(BaseHandler):
    contract = {"get": Op("Third-party identifiers of the account (none)", {200: "matrix/threepids.response"})}

    async def get(self) -> None:
        await self.authenticate()
        self.send_json({"threepids": []})


def routes() -> list[tuple[str, type]]:
    return [
        (r"/\.well-known/matrix/client", WellKnownClientHandler),
        (PREFIX + r"/voip/turnServer", TurnServerHandler),
        (PREFIX + r"/thirdparty/protocols", ThirdPartyProtocolsHandler),
        (PREFIX + r"/account/3pid", ThreePidsHandler),
    ]
