"""Matrix client-server API: /sync (long-poll) and sync filters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MatrixError, forbidden
from ..events.filters import CompiledFilter
from ..sync import tokens
from ..sync.session import SyncSession
from .base import BaseHandler, spend_request
from .contract import Op, Param
from .matrix_account import PREFIX

if TYPE_CHECKING:
    from ..app import AppContext

MAX_TIMEOUT_MS = 120_000


class SyncHandler(BaseHandler):
    contract = {
        "get": Op(
            "Long-poll for what happened since a token",
            {200: "matrix/sync.response"},
            errors=(404, 429),
            query=(
                Param("since", description="The next_batch of the previous answer"),
                Param("timeout", {"type": "integer"}, "Milliseconds to wait for news (at most 120000)"),
                Param("filter", description="A filter id or a filter as JSON"),
                Param("full_state", {"type": "string", "enum": ["true", "false"]}),
                Param(
                    "set_presence",
                    {"type": "string", "enum": ["online", "unavailable", "offline"]},
                    "What this sync says about the caller's presence (default online)",
                ),
            ),
        )
    }

    def initialize(self, ctx: AppContext) -> None:
        super().initialize(ctx)
        self._session: SyncSession | None = None

    def compute_etag(self) -> None:
        """No ETag: an answer moves the client on and is never asked for
        again, so hashing each one (every long-poll of every client) is waste."""
        return None

    def on_connection_close(self) -> None:
        if self._session is not None:
            self._session.client_gone()

    async def get(self) -> None:
        requester = await self.authenticate()
        since_token = self.get_query_argument("since", None)
        since, typing_mark = tokens.parse_sync(since_token) if since_token else (None, None)
        timeout = max(0, min(self.int_argument("timeout", 0), MAX_TIMEOUT_MS)) / 1000
        filter_param = self.get_query_argument("filter", None)
        full_state = self.bool_argument("full_state", False)
        set_presence = self.get_query_argument("set_presence", "online")
        if set_presence not in ("online", "unavailable", "offline"):
            raise MatrixError(400, "M_INVALID_PARAM", "'set_presence' is one of online, unavailable, offline")
        sessions = self.ctx.sync_sessions
        session = None if full_state else sessions.take(requester.session_id, since, typing_mark, filter_param)
        if session is None:
            sync_filter = await load_filter(self.ctx, requester.user_id, filter_param)
            assert self.claims is not None, "authenticate() read them"
            session = SyncSession(
                self.ctx,
                requester,
                self.claims,
                sync_filter,
                since,
                typing_mark=typing_mark,
                full_state=full_state,
                filter_key=filter_param,
            )
        else:
            session.requester = requester
        self._session = session
        waits = timeout > 0 and since is not None and not full_state
        if waits:
            try:
                self.ctx.long_polls.take(requester.user_id)
            except MatrixError:
                session.close()
                raise
            spend_request(self)  # everything is read from it: it waits without the token and the query
        try:
            await self.ctx.presence.seen(requester.user_id, set_presence)  # once nothing can refuse the request
            if since is not None:
                await session.acknowledge(since)
            result = await session.next(timeout)
        except MatrixError:
            session.close()
            raise
        finally:
            if waits:
                self.ctx.long_polls.give_back(requester.user_id)
        if result is None:  # the client went away
            session.close()
            return
        sessions.park(requester.session_id, session)
        self.finish(result.json())


async def load_filter(ctx: AppContext, user_id: str, value: str | None) -> CompiledFilter:
    """A sync filter given inline as JSON or by the id of an uploaded one."""
    return await ctx.filters.load(user_id, value)


class FilterHandler(BaseHandler):
    contract = {
        "post": Op("Upload a filter", {200: "matrix/filter.response"}, request="matrix/filter.request", errors=(403,))
    }

    async def post(self, user_id: str) -> None:
        requester = await self.authenticate()
        if user_id != requester.user_id:
            raise forbidden("You may only create filters for yourself")
        filter_id = await self.ctx.filters.upload(user_id, self.json_body("matrix/filter.request"))
        self.send_json({"filter_id": str(filter_id)})


class FilterGetHandler(BaseHandler):
    contract = {"get": Op("Download a filter", {200: "matrix/filter_definition.response"}, errors=(403, 404))}

    async def get(self, user_id: str, filter_id: str) -> None:
        requester = await self.authenticate()
        if user_id != requester.user_id:
            raise forbidden("You may only read your own filters")
        self.send_json(await self.ctx.filters.definition(user_id, filter_id))


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/sync", SyncHandler),
        (PREFIX + r"/user/([^/]+)/filter", FilterHandler),
        (PREFIX + r"/user/([^/]+)/filter/([^/]+)", FilterGetHandler),
    ]
