"""Relations and threads: the children of an event, a room's threads, and
the aggregations (``unsigned.m.relations``) every reading endpoint bundles
into the events it serves.

Everything read here is limited to the stretches of the room the reader
may see (history visibility): a child the reader may not see counts for
nothing, in the aggregations as in the lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import MatrixError
from ..events import relations as rules
from ..events.format import client_event
from ..events.visibility import Range
from ..paging import fetch_page
from ..storage import events as event_store
from ..storage import relations as store
from ..storage.events import Event
from ..sync import tokens

if TYPE_CHECKING:
    from .rooms import Rooms  # which imports bundle from here

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


async def bundle(
    pool: asyncpg.Pool, requester: Requester, room_id: str, rows: Sequence[Event], ranges: Sequence[Range]
) -> list[dict[str, Any]]:
    """The client form of ``rows`` (events of one room), each non-state
    event with its aggregations, in one round trip for them all (two when
    there are threads: a thread's latest event comes with its latest edit,
    so a thread's summary shows the edited text)."""
    device = (requester.user_id, requester.device_id)
    found = await _aggregated(
        pool, requester, room_id, [row for row in rows if row.state_key is None], rules.AGGREGATED, ranges
    )
    events = [client_event(row, device=device) for row in rows]
    for event in events:
        relations = found.get(event["event_id"])
        if relations:
            event["unsigned"]["m.relations"] = relations
    return events


async def _aggregated(
    pool: asyncpg.Pool,
    requester: Requester,
    room_id: str,
    parents: Sequence[Event],
    rel_types: Sequence[str],
    ranges: Sequence[Range],
) -> dict[str, dict[str, Any]]:
    """``m.relations`` per parent event id (parents: stored rows)."""
    if not parents:
        return {}
    aggregates = await store.aggregates(
        pool,
        room_id,
        [row.event_id for row in parents],
        rel_types=rel_types,
        ranges=ranges,
        user_id=requester.user_id,
    )
    latest = [row["event"] for row in aggregates if row["rel_type"] == rules.THREAD]
    edits = await _aggregated(pool, requester, room_id, latest, (rules.REPLACE,), ranges) if latest else {}
    device = (requester.user_id, requester.device_id)

    def formatted(row: Event) -> dict[str, Any]:
        event = client_event(row, device=device)
        if row.event_id in edits:
            event["unsigned"]["m.relations"] = edits[row.event_id]
        return event

    return rules.bundle(aggregates, formatted)


async def check_relation(pool: asyncpg.Pool, room_id: str, content: dict[str, Any]) -> None:
    """Refuses an event that starts a thread from an event that relates to
    another one (threads do not nest), as the spec asks of servers."""
    relation = rules.relation_of(content)
    if relation is None or relation[0] != rules.THREAD:
        return
    root = await event_store.get_event(pool, relation[1])
    if root is None or root.room_id != room_id:
        return  # a root this server does not know: clients render the thread as best they can
    refusal = rules.thread_root_refusal(root.content)
    if refusal is not None:
        raise MatrixError(400, "M_UNKNOWN", refusal)


class Relations:
    def __init__(self, *, pool: asyncpg.Pool, rooms: Rooms) -> None:
        self._pool = pool
        self._rooms = rooms

    async def children(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_token: str | None,
        to_token: str | None,
        backwards: bool,
        limit: int,
        recurse: bool | None,
    ) -> dict[str, Any]:
        """GET /relations: a page of the events relating to ``event_id``."""
        _, ranges = await self._rooms.readable_event(requester, room_id, event_id)
        limit = max(1, min(limit, MAX_LIMIT))
        position = tokens.parse(from_token) if from_token else None
        bound = tokens.parse(to_token, "to") if to_token else None
        depth = rules.MAX_RECURSION_DEPTH if recurse else 1
        after, before = (bound, position) if backwards else (position, bound)
        rows, more = await fetch_page(
            lambda n: store.children(
                self._pool,
                room_id,
                event_id,
                rel_type=rel_type,
                event_type=event_type,
                after=after,
                before=before,
                backwards=backwards,
                limit=n,
                ranges=ranges,
                depth=depth,
            ),
            limit,
        )
        body: dict[str, Any] = {"chunk": await bundle(self._pool, requester, room_id, rows, ranges)}
        if more:
            body["next_batch"] = tokens.make(rows[-1].stream - 1 if backwards else rows[-1].stream)
        if from_token:
            body["prev_batch"] = from_token
        if recurse is not None:
            body["recursion_depth"] = depth
        return body

    async def threads(
        self, requester: Requester, room_id: str, *, include: str, from_token: str | None, limit: int
    ) -> dict[str, Any]:
        """GET /threads: the room's thread roots, latest activity first,
        each with its thread summary."""
        ranges = await self._rooms.readable_ranges(requester, room_id)
        limit = max(1, min(limit, MAX_LIMIT))
        before = tokens.parse(from_token) if from_token else None
        participant = requester.user_id if include == "participated" else None
        rows, more = await fetch_page(
            lambda n: store.thread_roots(
                self._pool, room_id, before=before, limit=n, ranges=ranges, participant=participant
            ),
            limit,
        )
        roots = [root.event for root in rows]
        body: dict[str, Any] = {"chunk": await bundle(self._pool, requester, room_id, roots, ranges)}
        if more:
            body["next_batch"] = tokens.make(rows[-1].activity - 1)
        return body
