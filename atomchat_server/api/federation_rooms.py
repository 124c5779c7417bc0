"""Matrix server-server API: the room protocol other servers speak to this
one (services/federation_rooms.py): joining and leaving through it, inviting
its users, and reading the rooms it shares with them."""

from __future__ import annotations

from ..errors import MatrixError
from .contract import Op, Param
from .federation_base import FederationHandler

V1 = r"/_matrix/federation/v1"
V2 = r"/_matrix/federation/v2"
_SEEN = "The asking server must have a user in the room (403 otherwise); rooms this server does not share are 404."
_AS_OF = (
    " Each event is judged as of that event: the room's history visibility then and the asking server's users'"
    " membership then."
)
_REFUSED = _SEEN + _AS_OF + " An event the asking server may not see is 403 M_FORBIDDEN."
_REDACTED = _SEEN + _AS_OF + " An event the asking server may not see is served redacted."


class MakeJoinHandler(FederationHandler):
    contract = {
        "get": Op(
            "A join event for a user of the asking server to sign",
            {200: "federation/make_membership.response"},
            errors=(400, 403, 404),
            query=(
                Param(
                    "ver",
                    description="A room version the asking server supports (repeated); without any, "
                    "version 1 only, which no room here has.",
                ),
            ),
            description="A template citing the room's forward extremities and current state. The room's version "
            "must be among `ver` (400 M_INCOMPATIBLE_ROOM_VERSION with `room_version` otherwise); "
            "a join the room's rules refuse now is 403.",
        )
    }

    async def get(self, room_id: str, user_id: str) -> None:
        self.send_json(
            await self.ctx.federation_rooms.make_join(
                self.origin, room_id, user_id, self.get_query_arguments("ver") or ["1"]
            )
        )


class MakeLeaveHandler(FederationHandler):
    contract = {
        "get": Op(
            "A leave event for a user of the asking server to sign",
            {200: "federation/make_membership.response"},
            errors=(403, 404),
        )
    }

    async def get(self, room_id: str, user_id: str) -> None:
        self.send_json(await self.ctx.federation_rooms.make_leave(self.origin, room_id, user_id))


class SendJoinHandler(FederationHandler):
    contract = {
        "put": Op(
            "Join a room through this server",
            {200: "federation/send_join.response"},
            request="federation/pdu.request",
            errors=(400, 403, 404),
            query=(
                Param(
                    "omit_members",
                    {"type": "string", "enum": ["true", "false"]},
                    "Ignored: the whole state is always sent.",
                ),
            ),
            description="The signed join, checked as any received event, then the state before it and its auth chain.",
        )
    }

    async def put(self, room_id: str, event_id: str) -> None:
        body = self.json_body("federation/pdu.request")
        self.send_json(await self.ctx.federation_rooms.send_join(self.origin, room_id, event_id, body))


class SendLeaveHandler(FederationHandler):
    contract = {
        "put": Op(
            "Leave a room through this server",
            {200: "matrix/empty.response"},
            request="federation/pdu.request",
            errors=(400, 403, 404),
        )
    }

    async def put(self, room_id: str, event_id: str) -> None:
        body = self.json_body("federation/pdu.request")
        self.send_json(await self.ctx.federation_rooms.send_leave(self.origin, room_id, event_id, body))


class InviteHandler(FederationHandler):
    contract = {
        "put": Op(
            "Invite one of this server's users",
            {200: "federation/invite.response"},
            request="federation/invite.request",
            errors=(400, 403, 404),
            description="The invite, signed by the inviting server, comes back signed by this one too; the user "
            "sees it in /sync.",
        )
    }

    async def put(self, room_id: str, event_id: str) -> None:
        body = self.json_body("federation/invite.request")
        self.send_json(await self.ctx.federation_rooms.invite(self.origin, room_id, event_id, body))


class EventHandler(FederationHandler):
    contract = {
        "get": Op(
            "One event",
            {200: "federation/pdus.response"},
            errors=(403, 404),
            description=_REFUSED + " A state event is served redacted instead.",
        )
    }

    async def get(self, event_id: str) -> None:
        self.send_json(await self.ctx.federation_rooms.event(self.origin, event_id))


def _event_id(handler: FederationHandler) -> str:
    return handler.required_query("event_id")


class StateHandler(FederationHandler):
    contract = {
        "get": Op(
            "A room's state before an event, with its auth chain",
            {200: "federation/state.response"},
            errors=(400, 403, 404),
            description=_REFUSED,
            query=(Param("event_id", required=True, description="The event."),),
        )
    }

    async def get(self, room_id: str) -> None:
        self.send_json(await self.ctx.federation_rooms.state(self.origin, room_id, _event_id(self)))


class StateIdsHandler(FederationHandler):
    contract = {
        "get": Op(
            "The ids of a room's state before an event and of its auth chain",
            {200: "federation/state_ids.response"},
            errors=(400, 403, 404),
            description=_REFUSED,
            query=(Param("event_id", required=True, description="The event."),),
        )
    }

    async def get(self, room_id: str) -> None:
        self.send_json(await self.ctx.federation_rooms.state_ids(self.origin, room_id, _event_id(self)))


class EventAuthHandler(FederationHandler):
    contract = {
        "get": Op(
            "An event's auth chain", {200: "federation/event_auth.response"}, errors=(403, 404), description=_SEEN
        )
    }

    async def get(self, room_id: str, event_id: str) -> None:
        self.send_json(await self.ctx.federation_rooms.event_auth(self.origin, room_id, event_id))


class BackfillHandler(FederationHandler):
    contract = {
        "get": Op(
            "Earlier events of a room",
            {200: "federation/pdus.response"},
            errors=(400, 403, 404),
            description=_REDACTED,
            query=(
                Param("v", required=True, description="An event to go back from (repeated)."),
                Param("limit", {"type": "integer"}, "At most this many events (at most 100)."),
            ),
        )
    }

    async def get(self, room_id: str) -> None:
        start = self.get_query_arguments("v")
        if not start:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing query parameter 'v'")
        limit = self.get_query_argument("limit", "10")
        if not limit.isdigit():
            raise MatrixError(400, "M_INVALID_PARAM", "limit must be a non-negative integer")
        self.send_json(await self.ctx.federation_rooms.backfill(self.origin, room_id, start, int(limit[:6])))


class MissingEventsHandler(FederationHandler):
    contract = {
        "post": Op(
            "The events between what the asking server has and what it was sent",
            {200: "federation/get_missing_events.response"},
            request="federation/get_missing_events.request",
            errors=(400, 403, 404),
            description=_REDACTED,
        )
    }

    async def post(self, room_id: str) -> None:
        body = self.json_body("federation/get_missing_events.request")
        self.send_json(await self.ctx.federation_rooms.get_missing_events(self.origin, room_id, body))


def routes() -> list[tuple[str, type]]:
    return [
        (V1 + r"/make_join/([^/]+)/([^/]+)", MakeJoinHandler),
        (V1 + r"/make_leave/([^/]+)/([^/]+)", MakeLeaveHandler),
        (V2 + r"/send_join/([^/]+)/([^/]+)", SendJoinHandler),
        (V2 + r"/send_leave/([^/]+)/([^/]+)", SendLeaveHandler),
        (V2 + r"/invite/([^/]+)/([^/]+)", InviteHandler),
        (V1 + r"/event/([^/]+)", EventHandler),
        (V1 + r"/state/([^/]+)", StateHandler),
        (V1 + r"/state_ids/([^/]+)", StateIdsHandler),
        (V1 + r"/event_auth/([^/]+)/([^/]+)", EventAuthHandler),
        (V1 + r"/backfill/([^/]+)", BackfillHandler),
        (V1 + r"/get_missing_events/([^/]+)", MissingEventsHandler),
    ]
