"""Matrix client-server API: /sync (long-poll) and sync filters."""

from __future__ import annotations

import asyncio
import json

from ..errors import MatrixError, forbidden, not_found
from ..events.filters import FilterError, SyncFilter
from ..notifier import Listener
from ..storage import filters as filter_store
from ..sync import tokens
from .base import BaseHandler
from .matrix_account import PREFIX

MAX_TIMEOUT_MS = 120_000


class SyncHandler(BaseHandler):
    def initialize(self, ctx) -> None:
        super().initialize(ctx)
        self._gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self._gone.set()

    async def get(self) -> None:
        requester = await self.authenticate()
        since_token = self.get_query_argument("since", None)
        since = tokens.parse(since_token, "since") if since_token else None
        timeout = max(0, min(self.int_argument("timeout", 0), MAX_TIMEOUT_MS)) / 1000
        sync_filter = await load_filter(self, requester.user_id, self.get_query_argument("filter", None))
        full_state = self.get_query_argument("full_state", "false") == "true"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        notifier, builder = self.ctx.notifier, self.ctx.sync

        while True:
            upto = max(notifier.position, since or 0)
            result = await builder.sync(requester, since=since, upto=upto, sync_filter=sync_filter,
                                        full_state=full_state)
            remaining = deadline - loop.time()
            if not result.empty or since is None or remaining <= 0 or self._gone.is_set():
                break
            listener = Listener(requester.user_id, result.joined_rooms)
            notifier.add_listener(listener)
            try:
                if notifier.position <= upto:  # nothing slipped in while we were building
                    waiter = asyncio.ensure_future(listener.woken.wait())
                    gone = asyncio.ensure_future(self._gone.wait())
                    await asyncio.wait({waiter, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    gone.cancel()
            finally:
                notifier.remove_listener(listener)
            if self._gone.is_set():
                return
            if listener.revoked:  # the server is shutting down: answer with what we have
                break
            # A revocation wakes us too: the token must still be good.
            requester = await self.authenticate()
        if not self._gone.is_set():
            self.send_json(result.body)


async def load_filter(handler: BaseHandler, user_id: str, value: str | None) -> SyncFilter:
    """A sync filter given inline as JSON or by the id of an uploaded one."""
    if not value:
        return SyncFilter()
    try:
        if value.lstrip().startswith("{"):
            return SyncFilter.from_json(json.loads(value))
        if not value.isdigit():
            raise MatrixError(400, "M_INVALID_PARAM", "'filter' must be a filter id or a JSON object")
        definition = await filter_store.get_filter(handler.ctx.pool, user_id, int(value))
        if definition is None:
            raise not_found("Unknown filter")
        return SyncFilter.from_json(definition)
    except (FilterError, ValueError) as exc:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid filter: {exc}") from None


class FilterHandler(BaseHandler):
    async def post(self, user_id: str) -> None:
        requester = await self.authenticate()
        if user_id != requester.user_id:
            raise forbidden("You may only create filters for yourself")
        body = self.json_body("matrix/filter.request")
        try:
            SyncFilter.from_json(body)
        except FilterError as exc:
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid filter: {exc}") from None
        filter_id = await filter_store.create_filter(self.ctx.pool, user_id, body)
        self.send_json({"filter_id": str(filter_id)})


class FilterGetHandler(BaseHandler):
    async def get(self, user_id: str, filter_id: str) -> None:
        requester = await self.authenticate()
        if user_id != requester.user_id:
            raise forbidden("You may only read your own filters")
        definition = await filter_store.get_filter(self.ctx.pool, user_id, int(filter_id)) if filter_id.isdigit() else None
        if definition is None:
            raise not_found("Unknown filter")
        self.send_json(definition)


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/sync", SyncHandler),
        (PREFIX + r"/user/([^/]+)/filter", FilterHandler),
        (PREFIX + r"/user/([^/]+)/filter/([^/]+)", FilterGetHandler),
    ]
