"""Matrix client-server API: rooms, membership, sending, state, history and
the room directory."""

from __future__ import annotations

from ..auth.sessions import Requester
from ..errors import MatrixError, invalid_param
from ..events.filters import FilterError, RoomEventFilter
from ..events.room_creation import RoomRequest, preset_for
from ..events.room_versions import CREATABLE_VERSIONS, ROOM_VERSION
from ..validation import load_json, schemas
from .base import BaseHandler
from .contract import OBJECT, Op, Param
from .matrix_account import PREFIX

ROOM = r"/rooms/([^/]+)"


class CreateRoomHandler(BaseHandler):
    contract = {
        "post": Op(
            "Create a room", {200: "matrix/createRoom.response"}, request="matrix/createRoom.request", errors=(403, 404)
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body()
        # Checked before the schema: the spec gives this refusal its own code.
        version = body.get("room_version", ROOM_VERSION)
        if version not in CREATABLE_VERSIONS:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"This server makes room versions {', '.join(CREATABLE_VERSIONS)}"
            )
        schemas().check_request("matrix/createRoom.request", body)
        for event in body.get("initial_state", []):
            schemas().check_content(event["type"], event["content"])
        request = RoomRequest(
            preset=preset_for(body),
            name=body.get("name"),
            topic=body.get("topic"),
            invite=tuple(dict.fromkeys(body.get("invite", []))),
            is_direct=body.get("is_direct", False),
            creation_content=body.get("creation_content", {}),
            initial_state=tuple(body.get("initial_state", [])),
            power_level_content_override=body.get("power_level_content_override", {}),
            room_version=version,
        )
        room_id = await self.ctx.rooms.create_room(
            requester, request, alias_localpart=body.get("room_alias_name"), publish=body.get("visibility") == "public"
        )
        self.send_json({"room_id": room_id})


class JoinHandler(BaseHandler):
    """POST /join/{roomIdOrAlias} and POST /rooms/{roomId}/join."""

    contract = {
        "post": Op(
            "Join a room",
            {200: "matrix/join.response"},
            request="matrix/membership.request",
            errors=(403, 404),
            query=(
                Param("server_name", description="A server to join a remote room through (repeatable)"),
                Param("via", description="The same as server_name"),
            ),
        )
    }

    async def post(self, room_id_or_alias: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/membership.request")
        servers = self.get_query_arguments("server_name") + self.get_query_arguments("via")
        room_id = await self.ctx.rooms.join(requester, room_id_or_alias, body.get("reason"), servers=servers)
        self.send_json({"room_id": room_id})


class MembershipHandler(BaseHandler):
    """POST /rooms/{roomId}/{invite,leave,kick,ban,unban}."""

    contract = {
        "post": lambda action: Op(
            f"{action.capitalize()} a member" if action != "leave" else "Leave a room",
            {200: "matrix/empty.response"},
            request="matrix/membership.request" if action == "leave" else "matrix/membership_target.request",
            errors=(403, 404),
        )
    }

    async def post(self, room_id: str, action: str) -> None:
        requester = await self.authenticate()
        rooms = self.ctx.rooms
        if action == "leave":
            body = self.json_body("matrix/membership.request")
            await rooms.set_membership(requester, room_id, requester.user_id, "leave", body.get("reason"))
        else:
            body = self.json_body("matrix/membership_target.request")
            target, reason = body["user_id"], body.get("reason")
            if action == "invite":
                await rooms.invite(requester, room_id, target, reason)
            else:
                await rooms.moderate(requester, room_id, action, target, reason)
        self.send_json({})


class ForgetHandler(BaseHandler):
    contract = {"post": Op("Forget a room left", {200: "matrix/empty.response"}, request=OBJECT, errors=(403, 404))}

    async def post(self, room_id: str) -> None:
        requester = await self.authenticate()
        self.json_body()
        await self.ctx.rooms.forget(requester, room_id)
        self.send_json({})


class SendHandler(BaseHandler):
    contract = {
        "put": Op(
            "Send an event (idempotent per transaction id)",
            {200: "matrix/event_id.response"},
            request=OBJECT,
            errors=(403, 404),
        )
    }

    async def put(self, room_id: str, event_type: str, txn_id: str) -> None:
        requester = await self.authenticate()
        content = self.json_body()
        schemas().check_content(event_type, content)
        event_id = await self.ctx.rooms.send(requester, room_id, event_type, content, txn_id)
        self.send_json({"event_id": event_id})


class RoomStateHandler(BaseHandler):
    contract = {"get": Op("A room's current state", {200: "matrix/room_state.response"}, errors=(403, 404))}

    async def get(self, room_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.rooms.state(requester, room_id))


class StateEventHandler(BaseHandler):
    """GET/PUT /rooms/{roomId}/state/{eventType}[/{stateKey}]; a missing or
    empty state key is the empty string."""

    contract = {
        "get": Op("One state event's content", {200: "matrix/state_content.response"}, errors=(403, 404)),
        "put": Op("Set a state event", {200: "matrix/event_id.response"}, request=OBJECT, errors=(403, 404)),
    }

    async def get(self, room_id: str, event_type: str, state_key: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.rooms.state_content(requester, room_id, event_type, state_key or ""))

    async def put(self, room_id: str, event_type: str, state_key: str | None = None) -> None:
        requester = await self.authenticate()
        content = self.json_body()
        schemas().check_content(event_type, content)
        event_id = await self.ctx.rooms.set_state(requester, room_id, event_type, state_key or "", content)
        self.send_json({"event_id": event_id})


class RedactHandler(BaseHandler):
    contract = {
        "put": Op(
            "Redact an event", {200: "matrix/event_id.response"}, request="matrix/redact.request", errors=(403, 404)
        )
    }

    async def put(self, room_id: str, event_id: str, txn_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/redact.request")
        redaction_id = await self.ctx.rooms.redact(requester, room_id, event_id, txn_id, body.get("reason"))
        self.send_json({"event_id": redaction_id})


class MembersHandler(BaseHandler):
    contract = {
        "get": Op(
            "A room's member events",
            {200: "matrix/members.response"},
            errors=(403, 404),
            query=(
                Param("membership", {"type": "string", "enum": ["join", "invite", "knock", "leave", "ban"]}),
                Param("not_membership", {"type": "string", "enum": ["join", "invite", "knock", "leave", "ban"]}),
            ),
        )
    }

    async def get(self, room_id: str) -> None:
        requester = await self.authenticate()
        members = await self.ctx.rooms.members(
            requester,
            room_id,
            membership=self.get_query_argument("membership", None),
            not_membership=self.get_query_argument("not_membership", None),
        )
        self.send_json({"chunk": members})


class JoinedMembersHandler(BaseHandler):
    contract = {"get": Op("A room's joined members", {200: "matrix/joined_members.response"}, errors=(403, 404))}

    async def get(self, room_id: str) -> None:
        requester = await self.authenticate()
        self.send_json({"joined": await self.ctx.rooms.joined_members(requester, room_id)})


class EventHandler(BaseHandler):
    contract = {"get": Op("One event", {200: "events/event"}, errors=(403, 404))}

    async def get(self, room_id: str, event_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.rooms.event(requester, room_id, event_id))


class ContextHandler(BaseHandler):
    contract = {
        "get": Op(
            "Events around one event",
            {200: "matrix/context.response"},
            errors=(403, 404),
            query=(Param("limit", {"type": "integer"}),),
        )
    }

    async def get(self, room_id: str, event_id: str) -> None:
        requester = await self.authenticate()
        limit = self.int_argument("limit", 10)
        self.send_json(await self.ctx.rooms.context(requester, room_id, event_id, limit))


class JoinedRoomsHandler(BaseHandler):
    contract = {"get": Op("The rooms the caller has joined", {200: "matrix/joined_rooms.response"})}

    async def get(self) -> None:
        requester = await self.authenticate()
        self.send_json({"joined_rooms": await self.ctx.rooms.joined_rooms(requester)})


MESSAGES_QUERY = (
    Param("dir", {"type": "string", "enum": ["b", "f"]}, "b (default): older events first; f: newer first"),
    Param("from", description="A token to start from (default: the end the direction starts at)"),
    Param("to", description="A token to stop at"),
    Param("limit", {"type": "integer", "minimum": 0}),
    Param("filter", description="A RoomEventFilter as JSON"),
)


async def messages_body(handler: BaseHandler, requester: Requester, room_id: str) -> dict:
    """A /messages page from the request's query arguments; shared with the
    admin API's room history, which pages exactly the same way."""
    direction = handler.get_query_argument("dir", "b")
    if direction not in ("b", "f"):
        raise invalid_param("'dir' must be 'b' or 'f'")
    filter_text = handler.get_query_argument("filter", None)
    try:
        event_filter = (
            RoomEventFilter.from_json(load_json(filter_text, "The filter", "M_INVALID_PARAM"))
            if filter_text
            else RoomEventFilter()
        )
    except FilterError as exc:
        raise invalid_param(str(exc)) from None
    limit = handler.int_argument("limit", 10)
    if limit < 0:
        raise invalid_param("'limit' must not be negative")
    page = await handler.ctx.rooms.messages(
        requester,
        room_id,
        from_token=handler.get_query_argument("from", None),
        to_token=handler.get_query_argument("to", None),
        backwards=direction == "b",
        limit=limit,
        event_filter=event_filter,
    )
    body = {"chunk": page.chunk, "start": page.start}
    if page.end is not None:
        body["end"] = page.end
    if page.state:
        body["state"] = page.state
    return body


class MessagesHandler(BaseHandler):
    contract = {
        "get": Op(
            "Page through a room's history", {200: "matrix/messages.response"}, errors=(403, 404), query=MESSAGES_QUERY
        )
    }

    async def get(self, room_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await messages_body(self, requester, room_id))


class AliasHandler(BaseHandler):
    contract = {
        "get": Op(
            "Resolve a room alias",
            {200: "matrix/alias.response"},
            auth="none",
            errors=(404, 502),
            description="A remote alias is asked of its server (502 when it cannot answer).",
        ),
        "put": Op(
            "Create a room alias",
            {200: "matrix/empty.response"},
            request="matrix/alias.request",
            errors=(403, 404, 409),
        ),
        "delete": Op("Delete a room alias", {200: "matrix/empty.response"}, errors=(403, 404)),
    }

    async def get(self, alias: str) -> None:
        self.send_json(await self.ctx.federation_queries.alias(alias))

    async def put(self, alias: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/alias.request")
        await self.ctx.rooms.create_alias(requester, alias, body["room_id"])
        self.send_json({})

    async def delete(self, alias: str) -> None:
        requester = await self.authenticate()
        await self.ctx.rooms.delete_alias(requester, alias)
        self.send_json({})


class RoomVisibilityHandler(BaseHandler):
    contract = {
        "get": Op(
            "Whether a room is in the public directory",
            {200: "matrix/room_visibility.response"},
            auth="none",
            errors=(404,),
        ),
        "put": Op(
            "Publish or unpublish a room",
            {200: "matrix/empty.response"},
            request="matrix/room_visibility.request",
            errors=(403, 404),
        ),
    }

    async def get(self, room_id: str) -> None:
        self.send_json({"visibility": await self.ctx.rooms.visibility(room_id)})

    async def put(self, room_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/room_visibility.request")
        await self.ctx.rooms.set_visibility(requester, room_id, body.get("visibility", "public"))
        self.send_json({})


class PublicRoomsHandler(BaseHandler):
    contract = {
        "get": Op(
            "The public room directory",
            {200: "matrix/publicRooms.response"},
            auth="none",
            query=(Param("limit", {"type": "integer"}), Param("since")),
        ),
        "post": Op(
            "Search the public room directory",
            {200: "matrix/publicRooms.response"},
            request="matrix/publicRooms.request",
        ),
    }

    async def get(self) -> None:
        self.send_json(
            await self.ctx.rooms.public_rooms(
                limit=self.int_argument("limit", 100), since=self.get_query_argument("since", None), search=None
            )
        )

    async def post(self) -> None:
        await self.authenticate()
        body = self.json_body("matrix/publicRooms.request")
        search = (body.get("filter") or {}).get("generic_search_term")
        self.send_json(
            await self.ctx.rooms.public_rooms(
                limit=body.get("limit", 100), since=body.get("since"), search=search or None
            )
        )


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/createRoom", CreateRoomHandler),
        (PREFIX + r"/join/([^/]+)", JoinHandler),
        (PREFIX + ROOM + r"/join", JoinHandler),
        (PREFIX + ROOM + r"/(invite|leave|kick|ban|unban)", MembershipHandler),
        (PREFIX + ROOM + r"/forget", ForgetHandler),
        (PREFIX + ROOM + r"/send/([^/]+)/([^/]+)", SendHandler),
        (PREFIX + ROOM + r"/state", RoomStateHandler),
        (PREFIX + ROOM + r"/state/([^/]+)/?", StateEventHandler),
        (PREFIX + ROOM + r"/state/([^/]+)/([^/]+)", StateEventHandler),
        (PREFIX + ROOM + r"/redact/([^/]+)/([^/]+)", RedactHandler),
        (PREFIX + ROOM + r"/members", MembersHandler),
        (PREFIX + ROOM + r"/joined_members", JoinedMembersHandler),
        (PREFIX + ROOM + r"/event/([^/]+)", EventHandler),
        (PREFIX + ROOM + r"/context/([^/]+)", ContextHandler),
        (PREFIX + ROOM + r"/messages", MessagesHandler),
        (PREFIX + r"/joined_rooms", JoinedRoomsHandler),
        (PREFIX + r"/directory/room/([^/]+)", AliasHandler),
        (PREFIX + r"/directory/list/room/([^/]+)", RoomVisibilityHandler),
        (PREFIX + r"/publicRooms", PublicRoomsHandler),
    ]
