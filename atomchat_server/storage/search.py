"""Full-text search of room events (the event_search table, migration 0012)
and of the user directory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg

from ..db import Database
from ..patterns import like_escape
from .events import Event, _columns, as_event


class SearchHit(NamedTuple):
    """An event that matches a search, and how well."""

    rank: float
    event: Event


# Matches of the query among the events of the visible stretches (room,
# first stream, last stream or NULL) inside the window of positions
# ($12, $13], ranked; then one page of them after the keyset of the previous
# page, joined to their events. The first row always exists and carries the
# number of matches in the window; a page without matches has NULL events.
_SEARCH = f"""
WITH q AS (SELECT websearch_to_tsquery('english', $1) AS q),
visible AS (SELECT * FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS v(room_id, lo, hi)),
hits AS MATERIALIZED (
    SELECT s.stream, ts_rank(s.vector, q.q) AS rank
      FROM event_search s CROSS JOIN q
      JOIN visible v ON v.room_id = s.room_id AND s.stream >= v.lo AND (v.hi IS NULL OR s.stream <= v.hi)
     WHERE s.vector @@ q.q AND s.stream > $12 AND s.stream <= $13 AND s.type = ANY($5::text[])
       AND ($6::text[] IS NULL OR s.sender = ANY($6::text[]))
       AND ($7::text[] IS NULL OR NOT s.sender = ANY($7::text[]))
), page AS (
    SELECT * FROM hits
     WHERE CASE WHEN $8 THEN $9::real IS NULL OR (rank, stream) < ($9::real, $10::bigint)
                ELSE $10::bigint IS NULL OR stream < $10::bigint END
     ORDER BY CASE WHEN $8 THEN rank END DESC, stream DESC
     LIMIT $11
)
SELECT {_columns("e")}, p.rank, t.total
  FROM (SELECT count(*) AS total FROM hits) t
  LEFT JOIN (page p JOIN events e ON e.stream = p.stream) ON true
 ORDER BY CASE WHEN $8 THEN p.rank END DESC, e.stream DESC
"""


async def search_events(
    pool: asyncpg.Pool,
    *,
    query: str,
    visible: Sequence[tuple[str, int, int | None]],
    types: Sequence[str],
    senders: Sequence[str] | None,
    not_senders: Sequence[str] | None,
    by_rank: bool,
    window: tuple[int, int],
    after: tuple[float | None, int | None],
    limit: int,
) -> tuple[int, list[SearchHit]]:
    """The number of events matching ``query`` (PostgreSQL web search syntax)
    inside the ``visible`` stretches with ``window[0] < stream <=
    window[1]``, and up to ``limit`` of them (with ``rank``): by rank, then
    newest first (``by_rank``), or newest first, after the (rank, stream) of
    the previous page's last."""
    async with pool.acquire() as conn, conn.transaction():
        # The planner underestimates what testing a tsvector costs per row and
        # would read a window through the primary key, testing every event in
        # it; with bitmap scans it intersects the window with the GIN index.
        # Each window is planned for its own bounds: a generic plan made for
        # a narrow window would read a wide one through the primary key too.
        await conn.execute("SET LOCAL enable_indexscan = off; SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await conn.fetch(
            _SEARCH,
            query,
            [v[0] for v in visible],
            [v[1] for v in visible],
            [v[2] for v in visible],
            list(types),
            senders,
            not_senders,
            by_rank,
            after[0],
            after[1],
            limit,
            window[0],
            window[1],
        )
    total = rows[0]["total"] if rows else 0
    return total, [SearchHit(row["rank"], as_event(tuple(row)[:_RANK_AT])) for row in rows if row["stream"] is not None]


_RANK_AT = len(Event._fields) - 1  # the event's columns come first


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user as the user directory shows them."""

    user_id: str
    displayname: str | None
    avatar_url: str | None


async def search_users(db: Database, *, user_id: str, term: str, limit: int) -> list[DirectoryUser]:
    """Users whose id or display name contains ``term`` (any case) and who
    share a room with ``user_id`` or are joined to a public room: up to
    ``limit`` of them, exact and prefix matches of the name first."""
    pattern = "%" + like_escape(term) + "%"
    rows = await db.fetch(
        """
        WITH mine AS (SELECT room_id FROM memberships WHERE user_id = $1 AND membership = 'join'),
        public AS (
            SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id
             WHERE cs.type = 'm.room.join_rules' AND cs.state_key = '' AND e.content->>'join_rule' = 'public'
        ),
        visible AS (
            SELECT DISTINCT m.user_id FROM memberships m
             WHERE m.membership = 'join'
               AND (m.room_id IN (SELECT room_id FROM mine) OR m.room_id IN (SELECT room_id FROM public))
        )
        SELECT u.user_id, u.displayname, u.avatar_url
          FROM visible v JOIN users u ON u.user_id = v.user_id
         WHERE u.user_id ILIKE $2 OR u.displayname ILIKE $2
         ORDER BY (lower(u.displayname) = lower($3) OR lower(u.localpart) = lower($3)) DESC,
                  (u.displayname ILIKE $4 OR u.localpart ILIKE $4) DESC, u.user_id
         LIMIT $5
        """,
        user_id,
        pattern,
        term,
        pattern[1:],
        limit,
    )
    return [DirectoryUser(**dict(row)) for row in rows]
