"""Matrix server-server API: what other servers read of and send to this
one. Served on the federation listener (HTTPS, its own port) and, as the
same handlers, on the client port; every endpoint but the key and version
documents needs the caller's X-Matrix signature (federation_base.py)."""

from __future__ import annotations

import time

from .. import __version__
from ..federation.keys import key_document
from . import federation_rooms
from .base import BaseHandler
from .contract import Op, Param
from .federation_base import FederationHandler

PREFIX = "/_matrix/federation/v1"


class ServerKeyHandler(BaseHandler):
    contract = {
        "get": Op(
            "This server's signing keys",
            {200: "federation/server_key.response"},
            auth="none",
            description="The server's ed25519 verify keys, signed by the server itself, with the time until which "
            "other servers may cache them. Other servers check this server's events and requests "
            "against them.",
        )
    }

    def get(self) -> None:
        self.send_json(key_document(self.ctx.settings.server_name, self.ctx.server_key, int(time.time() * 1000)))


class VersionHandler(BaseHandler):
    contract = {"get": Op("This server's software and version", {200: "federation/version.response"}, auth="none")}

    def get(self) -> None:
        self.send_json({"server": {"name": "AtomChat", "version": __version__}})


class TransactionHandler(FederationHandler):
    contract = {
        "put": Op(
            "Receive a transaction of PDUs and EDUs",
            {200: "federation/transaction.response"},
            request="federation/transaction.request",
            errors=(403,),
            description="Another server's room events (checked together, each answered on its own: {} when "
            "accepted or soft-failed, an error when refused) and "
            "ephemeral events (typing notices and read receipts of its users in rooms shared with "
            "this server). A transaction id is applied once per origin server: a retry gets the "
            "first answer again. More than 50 PDUs or 100 EDUs are refused with 400.",
        )
    }

    async def put(self, txn_id: str) -> None:
        body = self.json_body("federation/transaction.request")
        self.send_json(await self.ctx.federation_transactions.receive(self.origin, txn_id, body))


class QueryProfileHandler(FederationHandler):
    contract = {
        "get": Op(
            "A profile of one of this server's users",
            {200: "federation/query_profile.response"},
            errors=(403, 404),
            query=(
                Param("user_id", required=True, description="The user, one of this server's."),
                Param(
                    "field",
                    {"type": "string", "enum": ["displayname", "avatar_url"]},
                    "Only this field (default: both).",
                ),
            ),
        )
    }

    async def get(self) -> None:
        self.send_json(
            await self.ctx.federation_queries.local_profile(
                self.required_query("user_id"), self.get_query_argument("field", None)
            )
        )


class QueryDirectoryHandler(FederationHandler):
    contract = {
        "get": Op(
            "The room one of this server's aliases names",
            {200: "federation/query_directory.response"},
            errors=(403, 404),
            query=(Param("room_alias", required=True, description="The alias, one of this server's."),),
        )
    }

    async def get(self) -> None:
        self.send_json(await self.ctx.federation_queries.local_alias(self.required_query("room_alias")))


def routes() -> list[tuple[str, type]]:
    return [
        (r"/_matrix/key/v2/server/?", ServerKeyHandler),
        (PREFIX + r"/version", VersionHandler),
        (PREFIX + r"/send/([^/]+)", TransactionHandler),
        (PREFIX + r"/query/profile", QueryProfileHandler),
        (PREFIX + r"/query/directory", QueryDirectoryHandler),
    ] + federation_rooms.routes()
