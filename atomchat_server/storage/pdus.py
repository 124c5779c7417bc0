"""Reads of rooms' PDUs for federation: the events other servers cite, the
state at a point of a room, auth chains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..db import Database


@dataclass(frozen=True, slots=True)
class PduRoom:
    """A room whose events are PDUs: what federation reads of it."""

    room_id: str
    room_version: str
    extremities: list[str]  # its forward extremities here
    head_stream: int


class StoredPdu(NamedTuple):
    """An event as federation serves and cites it: its signed PDU and where
    it sits here (a named tuple: made for every event of a state or an auth
    chain)."""

    event_id: str
    stream: int
    type: str
    state_key: str | None
    depth: int
    pdu: dict[str, Any]

    @property
    def key(self) -> str:
        """The state key of a row known to be a state event's."""
        assert self.state_key is not None, "a state event's row"
        return self.state_key


class RefusedPdu(NamedTuple):
    """An event this server rejected or soft-failed, kept apart from the timeline."""

    event_id: str
    status: str  # 'rejected' or 'soft_failed'
    reason: str
    pdu: dict[str, Any]


_PDU_COLUMNS = "event_id, stream, type, state_key, depth, pdu"


async def pdu_room(db: Database, room_id: str) -> PduRoom | None:
    """A room whose events are PDUs (not deleted), or None."""
    row = await db.fetchrow(
        "SELECT room_id, room_version, extremities, head_stream FROM rooms"
        " WHERE room_id = $1 AND pdus AND NOT stub AND NOT deleted",
        room_id,
    )
    return PduRoom(**dict(row)) if row is not None else None


async def stub_room(db: Database, room_id: str) -> bool:
    """Whether the room is known here only by a remote invite."""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM rooms WHERE room_id = $1 AND stub)", room_id))


async def unstub(db: Database, room_id: str) -> None:
    await db.execute("UPDATE rooms SET stub = false WHERE room_id = $1", room_id)


async def known_events(db: Database, event_ids: Sequence[str]) -> set[str]:
    rows = await db.fetch("SELECT event_id FROM events WHERE event_id = ANY($1::text[])", list(event_ids))
    return {row["event_id"] for row in rows}


async def server_in_room(db: Database, room_id: str, server_name: str) -> bool:
    """Whether a user of the server is joined to (or invited to) the room."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM memberships WHERE room_id = $1 AND membership IN ('join', 'invite')"
            " AND substr(user_id, strpos(user_id, ':') + 1) = $2)",
            room_id,
            server_name,
        )
    )


async def servers_in_room(db: Database, room_id: str) -> list[str]:
    """The servers with a user joined to the room."""
    rows = await db.fetch(
        "SELECT DISTINCT substr(user_id, strpos(user_id, ':') + 1) AS server FROM memberships"
        " WHERE room_id = $1 AND membership = 'join' ORDER BY 1",
        room_id,
    )
    return [row["server"] for row in rows]


async def rooms_with_remote_members(db: Database, server_name: str) -> list[str]:
    """The rooms where a user of another server has a membership of any kind."""
    rows = await db.fetch(
        "SELECT DISTINCT room_id FROM memberships WHERE substr(user_id, strpos(user_id, ':') + 1) <> $1", server_name
    )
    return [row["room_id"] for row in rows]


async def min_depth(db: Database, room_id: str, event_ids: Sequence[str]) -> int:
    return int(
        await db.fetchval(
            "SELECT COALESCE(min(depth), 0) FROM events WHERE room_id = $1 AND event_id = ANY($2::text[])",
            room_id,
            list(event_ids),
        )
    )


async def max_depth(db: Database, room_id: str, event_ids: Sequence[str]) -> int:
    return int(
        await db.fetchval(
            "SELECT COALESCE(max(depth), 0) FROM events WHERE room_id = $1 AND event_id = ANY($2::text[])",
            room_id,
            list(event_ids),
        )
    )


async def event_pdu(db: Database, event_id: str) -> tuple[str, StoredPdu] | None:
    """An event's room and PDU as other servers may read it: one of the
    timeline's, or a soft-failed one (never a rejected one), which has no
    place in the history and is given the room's newest position."""
    row = await db.fetchrow(
        f"SELECT room_id, {_PDU_COLUMNS} FROM events WHERE event_id = $1 AND pdu IS NOT NULL"
        " UNION ALL SELECT f.room_id, f.event_id, r.head_stream, f.pdu->>'type', f.pdu->>'state_key',"
        " COALESCE((f.pdu->>'depth')::bigint, 0), f.pdu FROM refused_events f JOIN rooms r USING (room_id)"
        " WHERE f.event_id = $1 AND f.status = 'soft_failed' LIMIT 1",
        event_id,
    )
    return (row["room_id"], StoredPdu(*list(row.values())[1:])) if row is not None else None


async def seen_events(db: Database, event_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Which of the events this server has judged already: event id ->
    ('accepted', '') for the timeline's, or (status, reason) for those kept
    in refused_events."""
    rows = await db.fetch(
        "SELECT event_id, 'accepted' AS status, '' AS reason FROM events WHERE event_id = ANY($1::text[])"
        " UNION ALL SELECT event_id, status, reason FROM refused_events WHERE event_id = ANY($1::text[])",
        list(event_ids),
    )
    return {row["event_id"]: (row["status"], row["reason"]) for row in rows}


async def refused(db: Database, room_id: str, event_ids: Sequence[str]) -> list[RefusedPdu]:
    """The named events of the room that were rejected or soft-failed here."""
    rows = await db.fetch(
        "SELECT event_id, status, reason, pdu FROM refused_events WHERE room_id = $1 AND event_id = ANY($2::text[])",
        room_id,
        list(event_ids),
    )
    return [RefusedPdu(*row) for row in rows]


async def keep_refused(
    db: Database, room_id: str, status: str, events: Sequence[tuple[str, str, dict]], now_ms: int
) -> None:
    """Keeps rejected or soft-failed events ((event id, reason, PDU)) apart
    from the timeline; an event kept already stays as it was."""
    await db.execute(
        "INSERT INTO refused_events (event_id, room_id, status, reason, pdu, received_ts)"
        " SELECT e->>0, $1, $2, e->>1, e->2, $4 FROM jsonb_array_elements($3::jsonb) AS e"
        " ON CONFLICT (event_id) DO NOTHING",
        room_id,
        status,
        [list(e) for e in events],
        now_ms,
    )


async def has_event(db: Database, event_id: str) -> bool:
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)", event_id))


async def pdus(db: Database, room_id: str, event_ids: Sequence[str]) -> list[StoredPdu]:
    """The named events of the room that this server has, with their PDUs, in stream order."""
    rows = await db.fetch(
        f"SELECT {_PDU_COLUMNS} FROM events WHERE room_id = $1 AND event_id = ANY($2::text[])"
        " AND pdu IS NOT NULL ORDER BY stream",
        room_id,
        list(event_ids),
    )
    return [StoredPdu(*row) for row in rows]


async def state_ids_after(db: Database, room_id: str, stream: int) -> dict[tuple[str, str], str]:
    """(type, state key) -> event id of the room's state once the event at
    ``stream`` had happened, in this server's stream order."""
    rows = await db.fetch(
        "SELECT DISTINCT ON (type, state_key) type, state_key, event_id FROM events"
        " WHERE room_id = $1 AND state_key IS NOT NULL AND stream <= $2"
        " ORDER BY type, state_key, stream DESC",
        room_id,
        stream,
    )
    return {(row["type"], row["state_key"]): row["event_id"] for row in rows}


async def auth_chain(
    db: Database, room_id: str, event_ids: Sequence[str], *, include_self: bool = True, limit: int = 50000
) -> list[StoredPdu]:
    """The events reachable from ``event_ids`` through auth_events (and the
    events themselves when ``include_self``), in stream order."""
    rows = await db.fetch(
        "WITH RECURSIVE chain(event_id) AS ("
        "   SELECT a.value FROM events e, jsonb_array_elements_text(e.pdu->'auth_events') a"
        "   WHERE e.room_id = $1 AND e.event_id = ANY($2::text[])"
        "   UNION"
        "   SELECT a.value FROM chain c JOIN events e ON e.event_id = c.event_id,"
        "          jsonb_array_elements_text(e.pdu->'auth_events') a"
        " )"
        f" SELECT {_PDU_COLUMNS} FROM events WHERE room_id = $1 AND pdu IS NOT NULL"
        " AND (event_id IN (SELECT event_id FROM chain) OR ($3 AND event_id = ANY($2::text[])))"
        " ORDER BY stream LIMIT $4",
        room_id,
        list(event_ids),
        include_self,
        limit,
    )
    return [StoredPdu(*row) for row in rows]


async def is_ancestor(db: Database, room_id: str, event_id: str, from_ids: Sequence[str]) -> bool:
    """Whether ``event_id`` is one of ``from_ids`` or reachable from them
    through prev_events (the walk stops below its depth)."""
    return bool(
        await db.fetchval(
            "WITH RECURSIVE target AS (SELECT depth FROM events WHERE event_id = $2),"
            " walk(event_id) AS ("
            "   SELECT unnest($3::text[])"
            "   UNION"
            "   SELECT p.value FROM walk w JOIN events e ON e.event_id = w.event_id AND e.room_id = $1,"
            "          jsonb_array_elements_text(e.pdu->'prev_events') p"
            "   WHERE e.depth > (SELECT depth FROM target)"
            " )"
            " SELECT EXISTS (SELECT 1 FROM walk WHERE event_id = $2)",
            room_id,
            event_id,
            list(from_ids),
        )
    )


async def current_state_ids(db: Database, room_id: str) -> dict[tuple[str, str], str]:
    rows = await db.fetch("SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room_id)
    return {(row["type"], row["state_key"]): row["event_id"] for row in rows}


async def current_state_pdus(db: Database, room_id: str) -> list[StoredPdu]:
    rows = await db.fetch(
        f"SELECT {', '.join('e.' + c.strip() for c in _PDU_COLUMNS.split(','))}"
        " FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.room_id = $1 AND e.pdu IS NOT NULL ORDER BY e.stream",
        room_id,
    )
    return [StoredPdu(*row) for row in rows]


async def state_pdus_after(db: Database, room_id: str, stream: int) -> list[StoredPdu]:
    """The PDUs of the room's state once the event at ``stream`` had happened."""
    rows = await db.fetch(
        f"SELECT * FROM (SELECT DISTINCT ON (type, state_key) {_PDU_COLUMNS} FROM events"
        " WHERE room_id = $1 AND state_key IS NOT NULL AND stream <= $2 AND pdu IS NOT NULL"
        " ORDER BY type, state_key, stream DESC) s ORDER BY stream",
        room_id,
        stream,
    )
    return [StoredPdu(*row) for row in rows]


async def missing_events(
    db: Database, room_id: str, earliest: Sequence[str], latest: Sequence[str], limit: int, min_depth: int
) -> list[StoredPdu]:
    """Up to ``limit`` events reachable from ``latest`` through prev_events
    without passing ``earliest``, newest first (get_missing_events)."""
    rows = await db.fetch(
        "WITH RECURSIVE walk(event_id, n) AS ("
        "   SELECT p.value, 1 FROM events e, jsonb_array_elements_text(e.pdu->'prev_events') p"
        "   WHERE e.room_id = $1 AND e.event_id = ANY($3::text[])"
        "   UNION"
        "   SELECT p.value, w.n + 1 FROM walk w JOIN events e ON e.event_id = w.event_id,"
        "          jsonb_array_elements_text(e.pdu->'prev_events') p"
        "   WHERE NOT w.event_id = ANY($2::text[]) AND w.n < $4"
        " )"
        f" SELECT {_PDU_COLUMNS} FROM events WHERE room_id = $1 AND pdu IS NOT NULL AND depth >= $5"
        " AND event_id IN (SELECT event_id FROM walk) AND NOT event_id = ANY($2::text[])"
        " ORDER BY stream DESC LIMIT $4",
        room_id,
        list(earliest),
        list(latest),
        limit,
        min_depth,
    )
    return [StoredPdu(*row) for row in rows]


async def backfill(db: Database, room_id: str, from_ids: Sequence[str], limit: int) -> list[StoredPdu]:
    """Up to ``limit`` events at or before the newest of ``from_ids`` in this
    server's order, newest first."""
    rows = await db.fetch(
        f"SELECT {_PDU_COLUMNS} FROM events WHERE room_id = $1 AND pdu IS NOT NULL"
        " AND stream <= (SELECT max(stream) FROM events WHERE room_id = $1 AND event_id = ANY($2::text[]))"
        " ORDER BY stream DESC LIMIT $3",
        room_id,
        list(from_ids),
        limit,
    )
    return [StoredPdu(*row) for row in rows]
