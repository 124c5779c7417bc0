"""Search: room events by full text (POST /search) and the user directory
(POST /user_directory/search).

A search looks only at what the caller could read with /messages: the
rooms they have a membership in, each limited to the stretches of its
history their membership and the room's history visibility open to them
(``Rooms.readable_rooms``, the same rule /messages applies), so nobody
finds what they could not read. Context events come from the same
stretches.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import bad_json, invalid_param
from ..events.filters import FilterError, RoomEventFilter
from ..events.format import client_event
from ..events.visibility import Range
from ..paging import fetch_page
from ..storage import backfill as backfill_store
from ..storage import events as event_store
from ..storage import search as search_store
from ..storage.events import Event
from ..storage.search import SearchHit
from ..sync import tokens
from .rooms import Rooms

# Each searchable key and the one event type it is searched in.
KEY_TYPES = {"content.body": "m.room.message", "content.name": "m.room.name", "content.topic": "m.room.topic"}
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 50
# History is searched newest first in windows of stream positions, each at
# least four times the one before and sized from the density of matches seen
# so far, so that a page costs about as much as the matches in the windows it
# reads, not all matches. Results by rank are ranked within a block: a window
# widened until it holds RANK_BLOCK matches (or reaches the oldest readable
# event); within small histories that is all of them.
FIRST_WINDOW = 10_000
RANK_BLOCK = 200
# When the matches seen so far promise no more than this many in the rest of
# history, the rest is read at once: the GIN index finds them all cheaply.
FEW_MATCHES = 5_000
DIRECTORY_LIMIT = 10
MAX_DIRECTORY_LIMIT = 100


@dataclass(frozen=True)
class Position:
    """Where a page of results starts: ``top``, the newest position when the
    first page was asked for (the count is of matches up to it), the block
    being read, and the (rank, stream) of the last result in it (rank is
    None in recency order)."""

    top: int
    block: tuple[int, int] | None = None
    after: tuple[float | None, int | None] = (None, None)

    def token(self) -> str:
        assert self.block is not None, "a next page starts in a block"
        kind = "recent" if self.after[0] is None else "rank"
        rank = "" if self.after[0] is None else f":{self.after[0]!r}"
        return f"{kind}:{self.top}:{self.block[0]}:{self.block[1]}:{self.after[1]}{rank}"

    @classmethod
    def parse(cls, token: str, by_rank: bool) -> Position:
        parts = token.split(":")
        if parts[0] == ("rank" if by_rank else "recent") and len(parts) == (6 if by_rank else 5):
            try:
                top, lo, hi, stream = (int(part) for part in parts[1:5])
                rank = float(parts[5]) if by_rank else None
            except ValueError:
                pass
            else:
                if lo < hi <= top and lo < stream <= hi:
                    return cls(top, (lo, hi), (rank, stream))
        raise invalid_param("Invalid 'next_batch' token (or it belongs to another order_by)")


def highlights(term: str) -> list[str]:
    """The words of the search term, for clients to highlight in results."""
    words = [w.lower() for w in re.findall(r"\w+", term)]
    return list(dict.fromkeys(w for w in words if w != "or"))


class Search:
    def __init__(self, *, pool: asyncpg.Pool, rooms: Rooms) -> None:
        self._pool = pool
        self._rooms = rooms

    async def room_events(
        self, requester: Requester, criteria: dict[str, Any], next_batch: str | None
    ) -> dict[str, Any]:
        """The room_events category of POST /search."""
        try:
            event_filter = RoomEventFilter.from_json(criteria.get("filter", {}))
        except FilterError as exc:
            raise bad_json(str(exc)) from None
        room_filter = criteria.get("filter", {})
        by_rank = criteria.get("order_by", "rank") == "rank"
        position = Position.parse(next_batch, by_rank) if next_batch is not None else None
        types = [KEY_TYPES[key] for key in criteria.get("keys", list(KEY_TYPES))]
        types = [t for t in dict.fromkeys(types) if event_filter.wants_type(t)]
        readable = await self._rooms.readable_rooms(requester)
        wanted = room_filter.get("rooms")
        visible = [
            (room_id, lo, hi)
            for room_id, ranges in readable.items()
            if (wanted is None or room_id in wanted) and room_id not in room_filter.get("not_rooms", ())
            for lo, hi in ranges
        ]
        limit = min(event_filter.limit or DEFAULT_LIMIT, MAX_LIMIT)
        search = partial(
            search_store.search_events,
            self._pool,
            query=criteria["search_term"],
            visible=visible,
            types=types,
            senders=list(event_filter.senders) if event_filter.senders is not None else None,
            not_senders=list(event_filter.not_senders) or None,
            by_rank=by_rank,
        )
        total, rows, following = await self._scan(search, visible, by_rank, position, limit)
        context = criteria.get("event_context")
        contexts = (
            await asyncio.gather(
                *(self._context(requester, hit.event, readable[hit.event.room_id], context) for hit in rows)
            )
            if context is not None
            else [None] * len(rows)
        )
        results = []
        for hit, around in zip(rows, contexts, strict=True):
            result: dict[str, Any] = {"rank": hit.rank, "result": client_event(hit.event, device=_device(requester))}
            if around is not None:
                result["context"] = around
            results.append(result)
        answer: dict[str, Any] = {"count": total, "highlights": highlights(criteria["search_term"]), "results": results}
        if following is not None:
            answer["next_batch"] = following.token()
        if criteria.get("include_state"):
            room_ids = list(dict.fromkeys(hit.event.room_id for hit in rows))
            states = await asyncio.gather(*(self._rooms.state(requester, room_id) for room_id in room_ids))
            answer["state"] = dict(zip(room_ids, states, strict=True))
        group_by = [group["key"] for group in criteria.get("groupings", {}).get("group_by", [])]
        if group_by:
            answer["groups"] = {key: _groups(rows, key) for key in dict.fromkeys(group_by)}
        return answer

    async def _scan(
        self,
        search: Callable[..., Awaitable[tuple[int, list[SearchHit]]]],
        visible: list[tuple[str, int, int | None]],
        by_rank: bool,
        position: Position | None,
        limit: int,
    ) -> tuple[int, list[SearchHit], Position | None]:
        """Reads matches newest window first (see FIRST_WINDOW) from
        ``position`` until a page is full: returns the count of matches (exact
        when every window down to the oldest readable event was read or when
        the windows read promise few matches, else extrapolated from those
        read, as the specification allows), the page, and where the next page
        starts (None at the end)."""
        if not visible:
            return 0, [], None
        # Below the lowest position held, nothing: ranges that open on the
        # room's past (visibility.EARLIEST) start there (backfilled history).
        lowest = min(await backfill_store.earliest_position(self._pool), 0)
        bottom = max(min(lo for _, lo, _ in visible), lowest) - 1
        if position is None:
            position = Position(top=await event_store.max_stream(self._pool))
        start = position.block[1] if position.block else position.top
        block, after = position.block, position.after
        hi, window, counted, reached = start, FIRST_WINDOW, 0, start
        page: list[tuple[SearchHit, tuple[int, int]]] = []
        while len(page) <= limit:
            fresh = block is None
            if block is None:
                if hi <= bottom:
                    break
                block, after = (max(bottom, hi - window), hi), (None, None)
            matches, rows = await search(window=block, after=after, limit=limit + 1 - len(page))
            size = block[1] - block[0]
            if matches * (block[1] - bottom) // size <= FEW_MATCHES:
                window = block[1] - bottom  # few matches in all: read them in one go (by the GIN index alone)
            else:
                needed = RANK_BLOCK if by_rank else limit + 1 - len(page) - len(rows)
                window = max(4 * window, size * 3 * needed // (2 * max(1, matches)))
            if by_rank and fresh and matches < RANK_BLOCK and block[0] > bottom:
                block = None  # too few to rank together: widen the block and rank again
                continue
            counted += matches
            page += [(row, block) for row in rows]
            reached = hi = block[0]
            block = None
        following = None
        if len(page) > limit:
            last, last_block = page[limit - 1]
            following = Position(position.top, last_block, (last.rank if by_rank else None, last.event.stream))
        # The stretches of (bottom, top] this page did not read: older than
        # the last window, and newer than where the page started.
        unread = [w for w in ((bottom, reached), (start, position.top)) if w[0] < w[1]]
        total = counted
        if unread:
            total = counted * (position.top - bottom) // max(1, start - max(reached, bottom))
            if total <= FEW_MATCHES:
                # Few matches are promised: the GIN index counts the rest
                # exactly at little cost, where extrapolating from one window
                # of a sparse history (a small room among much activity
                # elsewhere) would be far off.
                counts = await asyncio.gather(*(search(window=w, after=(None, None), limit=0) for w in unread))
                total = counted + sum(matches for matches, _ in counts)
        return total, [row for row, _ in page[:limit]], following

    async def _context(
        self, requester: Requester, row: Event, ranges: list[Range], context: dict[str, Any]
    ) -> dict[str, Any]:
        before = min(context.get("before_limit", DEFAULT_CONTEXT), MAX_CONTEXT)
        after = min(context.get("after_limit", DEFAULT_CONTEXT), MAX_CONTEXT)
        earlier, later = await event_store.events_around(
            self._pool, row.room_id, row.stream, before=before, after=after, ranges=ranges
        )
        device = _device(requester)
        around: dict[str, Any] = {
            "events_before": [client_event(r, device=device) for r in earlier],
            "events_after": [client_event(r, device=device) for r in later],
            "start": tokens.make((earlier[-1].stream if earlier else row.stream) - 1),
            "end": tokens.make(later[-1].stream if later else row.stream),
        }
        if context.get("include_profile"):
            # The senders' profiles as their member events said when the result was sent.
            senders = sorted({r.sender for r in (row, *earlier, *later)})
            members = await event_store.member_events_of(self._pool, row.room_id, senders, at_stream=row.stream)
            around["profile_info"] = {
                m.key: {k: m.content[k] for k in ("displayname", "avatar_url") if isinstance(m.content.get(k), str)}
                for m in members
            }
        return around

    async def users(self, requester: Requester, term: str, limit: int | None) -> dict[str, Any]:
        """POST /user_directory/search: users who share a room with the
        requester or are in a public room, by id or display name."""
        limit = max(1, min(limit or DIRECTORY_LIMIT, MAX_DIRECTORY_LIMIT))
        rows, more = await fetch_page(
            lambda n: search_store.search_users(self._pool, user_id=requester.user_id, term=term, limit=n), limit
        )
        results = []
        for row in rows:
            result = {"user_id": row.user_id}
            if row.displayname is not None:
                result["display_name"] = row.displayname
            if row.avatar_url is not None:
                result["avatar_url"] = row.avatar_url
            results.append(result)
        return {"limited": more, "results": results}


def _device(requester: Requester) -> tuple[str, str]:
    return requester.user_id, requester.device_id


def _groups(rows: Sequence[SearchHit], key: str) -> dict[str, dict[str, Any]]:
    """The page's results grouped by room or sender, in order of first result."""
    groups: dict[str, dict[str, Any]] = {}
    for hit in rows:
        group = groups.setdefault(
            hit.event.room_id if key == "room_id" else hit.event.sender, {"order": len(groups) + 1, "results": []}
        )
        group["results"].append(hit.event.event_id)
    return groups
