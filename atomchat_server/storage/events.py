"""Rooms' event logs: writing events in stream order, and reading them back.

Writers open their transaction with ``begin_locked``, which takes the stream
lock: it serialises every writer on the database, so stream positions are
handed out in commit order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from ..db import Database

EVENTS_CHANNEL = "atomchat_events"


class Event(NamedTuple):
    """An event as the events table holds it: what crosses into the
    notifier, sync and the services instead of a driver record, so its
    fields are typed. A named tuple rather than a frozen dataclass: every
    event read is made into one, and a tuple is made several times faster."""

    stream: int
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str
    content: dict[str, Any]
    origin_server_ts: int
    depth: int
    prev_events: list[str]
    unsigned: dict[str, Any]  # prev_content, prev_sender, replaces_state, redacted_because
    redacts: str | None
    redacted_by: str | None
    txn_device: str | None  # the sending device and its transaction id,
    txn_id: str | None  # echoed to that device only
    # Held without a place in the room's history (the state and auth chain
    # taken in on joining it): never a timeline event (migration 0020).
    outlier: bool = False
    # What push rules decided for it as it was written (services.push):
    # {"default": [highlight, actions] or None, "own": [[user, notify,
    # highlight, actions], ...]}; None where not known (read back by a query
    # other than sync.events_between).
    push: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """The state key of what is known to be a state event (a row of
        current state, a member event): that it has none is a bug."""
        assert self.state_key is not None, f"{self.event_id} is not a state event"
        return self.state_key


# The columns of an Event (but push), in its order, for every query that reads events whole.
EVENT_COLUMNS = ", ".join(Event._fields[:-1])


def as_event(row: Iterable[Any]) -> Event:
    """The Event of a row read with EVENT_COLUMNS, in that order."""
    return Event._make((*row, None))


def as_events(rows: Iterable[Iterable[Any]]) -> list[Event]:
    return [as_event(row) for row in rows]


def maybe_event(row: asyncpg.Record | None) -> Event | None:
    return as_event(row) if row is not None else None


def event_of(fields: Mapping[str, Any]) -> Event:
    """The Event of an event's fields by name (an event as JSON, a writer's
    row): the Event's fields are taken, anything else left."""
    return Event._make(map(fields.get, Event._fields))


def _columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in EVENT_COLUMNS.split(","))


# -- writing (inside the writer's transaction) ------------------------------


async def begin_locked(conn: Database) -> None:
    """Opens the writer's transaction and takes the stream lock, in one round
    trip. The lock's key, 1400140397 (0x5374726D, "Strm"), names the stream
    lock among advisory locks."""
    await conn.execute("BEGIN; SELECT pg_advisory_xact_lock(1400140397)")


async def commit(conn: Database) -> None:
    await conn.execute("COMMIT")


async def rollback(conn: Database) -> None:
    await conn.execute("ROLLBACK")


async def batch_context(
    conn: Database,
    room_ids: Sequence[str],
    state_keys: Sequence[tuple[str, str, str]],
    txn_keys: Sequence[tuple[str, str, str]],
    named: Sequence[str] = (),
) -> list[asyncpg.Record]:
    """What a writer's batch needs to know, in one round trip: the highest
    stream position taken so far (under the stream lock, every position up to
    it belongs to a finished transaction), the rooms' heads, the state
    entries (room, type, state key) that authorize its events, and the events
    its transaction ids already made; and for judging its events by push
    rules, each room's joined member count ('joined') and the joined members
    who may fare otherwise than one with the default rules whom the events do
    not name ('member': those with push rules of their own, and those of
    ``named``, with their display name and the position of their rules).
    Rows are (kind, k1, k2, k3, data) with the row itself as JSON in ``data``."""
    return await conn.fetch(
        "SELECT 'floor' AS kind, NULL AS k1, NULL AS k2, NULL AS k3,"
        "       to_jsonb(CASE WHEN is_called THEN last_value ELSE 0 END) AS data FROM event_stream"
        " UNION ALL"
        " SELECT 'head', room_id, NULL, NULL,"
        "       jsonb_build_object('head_event_id', head_event_id, 'head_depth', head_depth,"
        "                          'room_version', room_version, 'pdus', pdus, 'extremities', extremities) AS data"
        "  FROM rooms WHERE room_id = ANY($1::text[]) AND NOT deleted"
        " UNION ALL"
        " SELECT 'state', cs.room_id, cs.type, cs.state_key, to_jsonb(e)"
        "  FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
        "  WHERE (cs.room_id, cs.type, cs.state_key) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]))"
        " UNION ALL"
        " SELECT 'txn', t.user_id, t.device_id, t.txn_id, to_jsonb(e)"
        "  FROM event_txns t JOIN events e ON e.event_id = t.event_id"
        "  WHERE (t.user_id, t.device_id, t.txn_id) IN (SELECT * FROM unnest($5::text[], $6::text[], $7::text[]))"
        " UNION ALL"
        " SELECT 'joined', room_id, NULL, NULL, to_jsonb(count(*))"
        "  FROM memberships WHERE room_id = ANY($1::text[]) AND membership = 'join' GROUP BY room_id"
        " UNION ALL"
        " SELECT 'member', m.room_id, m.user_id, NULL,"
        "       jsonb_build_object('display_name', (SELECT e.content->'displayname' FROM events e"
        "                                           WHERE e.event_id = m.event_id), 'rules_stream', ad.stream)"
        "  FROM memberships m"
        "  LEFT JOIN account_data ad ON ad.user_id = m.user_id AND ad.room_id = '' AND ad.type = 'm.push_rules'"
        "  WHERE m.room_id = ANY($1::text[]) AND m.membership = 'join'"
        "  AND (ad.stream IS NOT NULL OR m.user_id = ANY($8::text[]))",
        list(room_ids),
        [k[0] for k in state_keys],
        [k[1] for k in state_keys],
        [k[2] for k in state_keys],
        [k[0] for k in txn_keys],
        [k[1] for k in txn_keys],
        [k[2] for k in txn_keys],
        list(named),
    )


async def existing_events(conn: Database, event_ids: Sequence[str]) -> set[str]:
    """Which of the event ids are stored already."""
    rows = await conn.fetch("SELECT event_id FROM events WHERE event_id = ANY($1::text[])", list(event_ids))
    return {row["event_id"] for row in rows}


async def room_exists(conn: Database, room_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM rooms WHERE room_id = $1)", room_id))


async def insert_room(conn: Database, *, room_id: str, room_version: str, creator: str, stub: bool = False) -> None:
    """A new room, whose events are PDUs; a stub holds only a remote invite."""
    await conn.execute(
        "INSERT INTO rooms (room_id, room_version, creator, pdus, stub) VALUES ($1, $2, $3, true, $4)",
        room_id,
        room_version,
        creator,
        stub,
    )


async def state_events(conn: Database, room_id: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Event]:
    keys = list(keys)
    rows = await conn.fetch(
        f"SELECT {_columns('e')} FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.room_id = $1 AND (cs.type, cs.state_key) IN"
        " (SELECT * FROM unnest($2::text[], $3::text[]))",
        room_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    events = as_events(rows)
    return {(event.type, event.key): event for event in events}


async def transaction_event(db: Database, user_id: str, device_id: str, txn_id: str) -> str | None:
    return await db.fetchval(
        "SELECT event_id FROM event_txns WHERE user_id = $1 AND device_id = $2 AND txn_id = $3",
        user_id,
        device_id,
        txn_id,
    )


# One statement (one round trip) appends a run of events and keeps every
# derived table in step: transaction ids, the rooms' heads, current state and
# membership. The events come as one JSON array, in order. Positions are taken
# from the sequence and then paired with the events in that order, whatever
# order PostgreSQL evaluates nextval() in. A run holds at most one event per
# state key (the caller flushes before a second), so no row is changed twice.
_APPEND_EVENTS = """
WITH input AS (
    SELECT value AS ev, row_number() OVER (ORDER BY ord) AS n
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(value, ord)
), taken AS (
    SELECT stream, row_number() OVER (ORDER BY stream) AS n
    FROM (SELECT nextval('event_stream') AS stream FROM input) s
), ev AS (
    INSERT INTO events (stream, event_id, room_id, type, state_key, sender, content, origin_server_ts,
                        depth, prev_events, unsigned, redacts, txn_device, txn_id, outlier,
                        push_actions, push_highlight, pdu)
    SELECT taken.stream, ev->>'event_id', ev->>'room_id', ev->>'type', ev->>'state_key', ev->>'sender',
           ev->'content', (ev->>'origin_server_ts')::bigint, (ev->>'depth')::bigint,
           ARRAY(SELECT jsonb_array_elements_text(ev->'prev_events')), ev->'unsigned', ev->>'redacts',
           ev->>'txn_device', ev->>'txn_id', COALESCE((ev->>'outlier')::boolean, false),
           -- push rules' outcome for a member with the default rules whom the event
           -- does not name (services.push): [highlight, actions], or null
           (ev->'push'->'default'->>1)::jsonb, COALESCE((ev->'push'->'default'->>0)::boolean, false),
           NULLIF(ev->'pdu', 'null'::jsonb)
    FROM input JOIN taken USING (n)
    RETURNING stream, event_id, room_id, type, state_key, sender, content, depth, txn_device, txn_id
), txn AS (
    INSERT INTO event_txns (user_id, device_id, txn_id, event_id)
    SELECT sender, txn_device, txn_id, event_id FROM ev WHERE txn_id IS NOT NULL
), head AS (
    -- The room's newest event, its greatest depth, and its forward
    -- extremities as the last event leaves them (the writer works them out).
    UPDATE rooms r SET head_event_id = h.event_id, head_depth = GREATEST(r.head_depth, h.depth),
        head_stream = h.stream,
        extremities = CASE WHEN jsonb_typeof(h.extremities) = 'array'
                           THEN ARRAY(SELECT jsonb_array_elements_text(h.extremities)) ELSE r.extremities END
    FROM (SELECT DISTINCT ON (i.ev->>'room_id') i.ev->>'room_id' AS room_id, i.ev->>'event_id' AS event_id,
                 (i.ev->>'depth')::bigint AS depth, t.stream, i.ev->'extremities' AS extremities
          FROM input i JOIN taken t USING (n) ORDER BY i.ev->>'room_id', t.stream DESC) h
    WHERE r.room_id = h.room_id
), not_current AS (
    -- Received state events that state resolution left out of the room's
    -- current state (services.federation_events): stored, but not current.
    SELECT ev->>'event_id' AS event_id FROM input WHERE (ev->>'not_current')::boolean
), state AS (
    INSERT INTO current_state (room_id, type, state_key, event_id, stream)
    SELECT room_id, type, state_key, event_id, stream FROM ev WHERE state_key IS NOT NULL
    AND event_id NOT IN (SELECT event_id FROM not_current)
    ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = EXCLUDED.event_id, stream = EXCLUDED.stream
), member AS (
    INSERT INTO memberships (room_id, user_id, membership, event_id, stream, since_stream)
    SELECT room_id, state_key, content->>'membership', event_id, stream, stream FROM ev
    WHERE type = 'm.room.member' AND state_key IS NOT NULL AND event_id NOT IN (SELECT event_id FROM not_current)
    ON CONFLICT (room_id, user_id) DO UPDATE SET membership = EXCLUDED.membership,
        event_id = EXCLUDED.event_id, stream = EXCLUDED.stream, forgotten = false,
        since_stream = CASE WHEN memberships.membership = EXCLUDED.membership
                            THEN memberships.since_stream ELSE EXCLUDED.stream END
), push_own AS (
    -- What push rules decided for the members who fare otherwise than one with
    -- the default rules (services.push): [user id, notify, highlight, actions].
    INSERT INTO event_push_actions (user_id, room_id, stream, notify, highlight, actions)
    SELECT o->>0, ev->>'room_id', taken.stream, (o->>1)::boolean, (o->>2)::boolean, (o->>3)::jsonb
    FROM input JOIN taken USING (n)
    CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(ev->'push'->'own') = 'array'
                                                 THEN ev->'push'->'own' ELSE '[]'::jsonb END) AS o
), announce AS (
    -- Delivered when the transaction commits: every process learns the position.
    SELECT pg_notify($2, (SELECT max(stream) FROM ev)::text)
)
SELECT ev.stream FROM ev, announce ORDER BY ev.stream
"""


async def append_events(conn: Database, events: Sequence[dict]) -> list[int]:
    """Appends the events (dicts with the events table's columns but
    ``stream``, and optionally ``push``: what push rules decided, as
    services.push makes it) at the next stream positions, in order; returns
    the positions."""
    rows = await conn.fetch(
        _APPEND_EVENTS,
        [
            {
                **{column: event[column] for column in _APPENDED},
                "push": event.get("push"),
                "pdu": event.get("pdu"),
                "not_current": event.get("not_current", False),
                "extremities": event.get("extremities"),
            }
            for event in events
        ],
        EVENTS_CHANNEL,
    )
    return [row["stream"] for row in rows]


_APPENDED = (
    "event_id",
    "room_id",
    "type",
    "state_key",
    "sender",
    "content",
    "origin_server_ts",
    "depth",
    "prev_events",
    "unsigned",
    "redacts",
    "txn_device",
    "txn_id",
    "outlier",
)


async def redact(conn: Database, event_id: str, pruned_content: dict, redacted_because: dict) -> None:
    await conn.execute(
        "UPDATE events SET content = $2, redacted_by = $3, pdu = jsonb_set(pdu, '{content}', $2),"
        " unsigned = (unsigned - 'prev_content') || jsonb_build_object('redacted_because', $4::jsonb)"
        " WHERE event_id = $1",
        event_id,
        pruned_content,
        redacted_because["event_id"],
        redacted_because,
    )
    # The state event that replaced a redacted one carries a copy of its
    # content as unsigned.prev_content: prune that copy too.
    await conn.execute(
        "UPDATE events e SET unsigned = jsonb_set(e.unsigned, '{prev_content}', $2::jsonb)"
        " FROM events t WHERE t.event_id = $1 AND t.state_key IS NOT NULL"
        " AND e.room_id = t.room_id AND e.type = t.type AND e.state_key = t.state_key AND e.stream > t.stream"
        " AND e.unsigned->>'replaces_state' = $1",
        event_id,
        pruned_content,
    )


async def announce(conn: Database, stream: int) -> None:
    """Tells every listening process that events up to ``stream`` are committed
    (delivered by PostgreSQL only when the transaction commits)."""
    await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, str(stream))


# -- reading -----------------------------------------------------------------


async def max_stream(db: Database) -> int:
    """The highest committed position, of an event or of any other write that
    takes one: a process starting (or listening again) after a to-device
    message or a receipt must count it as committed."""
    return await db.fetchval(
        "SELECT GREATEST((SELECT COALESCE(max(stream), 0) FROM events),"
        " (SELECT COALESCE(max(stream), 0) FROM receipts),"
        " (SELECT COALESCE(max(stream), 0) FROM account_data),"
        " (SELECT COALESCE(max(stream), 0) FROM to_device_messages),"
        " (SELECT COALESCE(max(stream), 0) FROM device_list_changes))"
    )


async def get_event(db: Database, event_id: str) -> Event | None:
    return maybe_event(await db.fetchrow(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1", event_id))


@dataclass(frozen=True)
class Room:
    """A room as the rooms table holds it: what crosses into the services
    instead of a driver record, so its fields are typed."""

    id: int  # the original /api names rooms by this number
    room_id: str
    room_version: str
    creator: str
    created_at: datetime
    published: bool  # listed in the public room directory
    deleted: bool  # by a server moderator
    stub: bool  # known only by a local user's invite from another server
    pdus: bool  # its events are PDUs (made since federation)
    head_event_id: str | None
    head_depth: int
    head_stream: int
    extremities: list[str]


_ROOM_COLUMNS = (
    "id, room_id, room_version, creator, created_at, published, deleted, stub, pdus, head_event_id,"
    " head_depth, head_stream, extremities"
)


async def get_room(db: Database, room_id: str) -> Room | None:
    row = await db.fetchrow(f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE room_id = $1", room_id)
    return Room(**dict(row)) if row is not None else None


async def current_state(db: Database, room_id: str) -> list[Event]:
    rows = await db.fetch(
        f"SELECT {_columns('e')} FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.room_id = $1 ORDER BY e.stream",
        room_id,
    )
    return as_events(rows)


async def state_at(db: Database, room_id: str, stream: int) -> list[Event]:
    """The room's state as it was once the event at ``stream`` had happened."""
    rows = await db.fetch(
        f"SELECT * FROM (SELECT DISTINCT ON (type, state_key) {EVENT_COLUMNS} FROM events"
        " WHERE room_id = $1 AND state_key IS NOT NULL AND stream <= $2"
        " ORDER BY type, state_key, stream DESC) s ORDER BY stream",
        room_id,
        stream,
    )
    return as_events(rows)


async def state_event(
    db: Database, room_id: str, type: str, state_key: str, at_stream: int | None = None
) -> Event | None:
    if at_stream is None:
        return (await state_events(db, room_id, [(type, state_key)])).get((type, state_key))
    row = await db.fetchrow(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE room_id = $1 AND type = $2 AND state_key = $3"
        " AND stream <= $4 ORDER BY stream DESC LIMIT 1",
        room_id,
        type,
        state_key,
        at_stream,
    )
    return maybe_event(row)


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's current membership of a room, as the memberships table holds it."""

    room_id: str
    user_id: str
    membership: str
    event_id: str  # the member event that made it
    stream: int  # that event's position
    forgotten: bool


MEMBERSHIP_COLUMNS = "room_id, user_id, membership, event_id, stream, forgotten"


async def membership(db: Database, room_id: str, user_id: str) -> Membership | None:
    row = await db.fetchrow(
        f"SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE room_id = $1 AND user_id = $2", room_id, user_id
    )
    return Membership(**dict(row)) if row is not None else None


async def is_joined(db: Database, room_id: str, user_id: str) -> bool:
    """Whether the user is a joined member of the room now: the check
    behind every "you must be in the room" refusal."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2 AND membership = 'join')",
            room_id,
            user_id,
        )
    )


@dataclass(frozen=True, slots=True)
class ReadAccess:
    """What decides a user's reading of a room."""

    room_id: str
    head_stream: int
    deleted: bool
    membership: str | None  # None: never a member
    forgotten: bool | None  # None: never a member
    settings: list[tuple[int, str]]  # the room's history_visibility events (stream, setting), oldest first
    history: list[tuple[int, str]]  # the user's memberships (stream, membership), oldest first

    @classmethod
    def of(cls, row: asyncpg.Record) -> ReadAccess:
        fields = dict(row)
        fields["settings"] = visibility_settings(row["settings"])
        fields["history"] = [(int(stream), str(membership)) for stream, membership in row["history"]]
        return cls(**fields)


def visibility_settings(pairs: Sequence[Sequence[Any]]) -> list[tuple[int, str]]:
    """(stream, setting) pairs as the queries below aggregate them; a
    setting without a valid value reads as the spec's default, "shared"."""
    return [(int(stream), setting if isinstance(setting, str) else "shared") for stream, setting in pairs]


# The room's history_visibility events as [stream, setting] pairs, oldest
# first (the index events_history_visibility serves it); ``{room}`` is the
# room id's expression.
VISIBILITY_SETTINGS = (
    "COALESCE((SELECT jsonb_agg(jsonb_build_array(v.stream, v.content->>'history_visibility') ORDER BY v.stream)"
    "   FROM events v WHERE v.room_id = {room} AND v.type = 'm.room.history_visibility' AND v.state_key = ''),"
    "   '[]'::jsonb)"
)


# The query of ReadAccess; ``{user}`` is the placeholder of the user's parameter.
_READ_ACCESS = (
    "SELECT r.room_id, r.head_stream, r.deleted, m.membership, m.forgotten,"
    f" {VISIBILITY_SETTINGS.format(room='r.room_id')} AS settings,"
    " COALESCE((SELECT jsonb_agg(jsonb_build_array(e.stream, e.content->>'membership') ORDER BY e.stream)"
    "   FROM events e WHERE e.room_id = r.room_id AND e.type = 'm.room.member' AND e.state_key = {user}),"
    "   '[]'::jsonb) AS history"
)


async def read_access(db: Database, room_id: str, user_id: str) -> ReadAccess | None:
    """Everything that decides what a user may read of a room, in one round
    trip. None for an unknown room."""
    row = await db.fetchrow(
        _READ_ACCESS.format(user="$2")
        + " FROM rooms r LEFT JOIN memberships m ON m.room_id = r.room_id AND m.user_id = $2 WHERE r.room_id = $1",
        room_id,
        user_id,
    )
    return ReadAccess.of(row) if row is not None else None


async def read_access_of_member(db: Database, user_id: str) -> list[ReadAccess]:
    """read_access of every room the user has a membership in (joined, left,
    invited, banned...), in one round trip."""
    rows = await db.fetch(
        _READ_ACCESS.format(user="$1") + " FROM memberships m JOIN rooms r ON r.room_id = m.room_id"
        " WHERE m.user_id = $1 AND NOT r.deleted",
        user_id,
    )
    return [ReadAccess.of(row) for row in rows]


async def membership_history(db: Database, room_id: str, user_id: str) -> list[tuple[int, str]]:
    rows = await db.fetch(
        "SELECT stream, content->>'membership' AS membership FROM events"
        " WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2 ORDER BY stream",
        room_id,
        user_id,
    )
    return [(row["stream"], row["membership"]) for row in rows]


async def member_events(
    db: Database,
    room_id: str,
    *,
    memberships: Sequence[str] | None = None,
    not_memberships: Sequence[str] | None = None,
) -> list[Event]:
    rows = await db.fetch(
        f"SELECT {_columns('e')} FROM memberships m JOIN events e ON e.event_id = m.event_id"
        " WHERE m.room_id = $1 AND ($2::text[] IS NULL OR m.membership = ANY($2))"
        " AND ($3::text[] IS NULL OR NOT m.membership = ANY($3)) ORDER BY e.stream",
        room_id,
        memberships,
        not_memberships,
    )
    return as_events(rows)


async def member_events_of(
    db: Database, room_id: str, user_ids: Sequence[str], *, at_stream: int | None = None
) -> list[Event]:
    """The member events of some users in a room: current, or as they were
    once the event at ``at_stream`` had happened."""
    if at_stream is None:
        rows = await db.fetch(
            f"SELECT {_columns('e')} FROM memberships m JOIN events e ON e.event_id = m.event_id"
            " WHERE m.room_id = $1 AND m.user_id = ANY($2::text[]) ORDER BY e.stream",
            room_id,
            list(user_ids),
        )
    else:
        rows = await db.fetch(
            f"SELECT * FROM (SELECT DISTINCT ON (state_key) {EVENT_COLUMNS} FROM events"
            " WHERE room_id = $1 AND type = 'm.room.member' AND state_key = ANY($2::text[]) AND stream <= $3"
            " ORDER BY state_key, stream DESC) s ORDER BY stream",
            room_id,
            list(user_ids),
            at_stream,
        )
    return as_events(rows)


async def joined_members(db: Database, room_id: str) -> list[Event]:
    return await member_events(db, room_id, memberships=["join"])


async def rooms_of(db: Database, user_id: str, membership: str = "join") -> list[str]:
    rows = await db.fetch(
        "SELECT room_id FROM memberships WHERE user_id = $1 AND membership = $2 ORDER BY stream", user_id, membership
    )
    return [row["room_id"] for row in rows]


async def set_forgotten(db: Database, room_id: str, user_id: str) -> None:
    await db.execute("UPDATE memberships SET forgotten = true WHERE room_id = $1 AND user_id = $2", room_id, user_id)


async def page(
    db: Database,
    room_id: str,
    *,
    after: int | None,
    before: int | None,
    backwards: bool,
    limit: int,
    ranges: Sequence[tuple[int, int | None]],
    types: Sequence[str] | None = None,
    not_types: Sequence[str] | None = None,
    senders: Sequence[str] | None = None,
    not_senders: Sequence[str] | None = None,
) -> list[Event]:
    """Up to ``limit`` events of a room with after < stream <= before (each
    bound optional), inside the visible ``ranges``, newest first when
    ``backwards``. Type filters are SQL LIKE patterns. A missing bound is
    the extreme position rather than a test for NULL, so that both bound the
    index range scan in any plan of the statement (a page far back in
    history starts there, not at the room's newest event)."""
    order = "DESC" if backwards else "ASC"
    rows = await db.fetch(
        f"SELECT {EVENT_COLUMNS} FROM events"
        " WHERE room_id = $1 AND stream > COALESCE($2::bigint, '-9223372036854775808'::bigint)"
        " AND stream <= COALESCE($3::bigint, '9223372036854775807'::bigint)"
        " AND EXISTS (SELECT 1 FROM unnest($4::bigint[], $5::bigint[]) r(lo, hi)"
        "             WHERE stream >= r.lo AND (r.hi IS NULL OR stream <= r.hi))"
        " AND ($6::text[] IS NULL OR type LIKE ANY($6))"
        " AND ($7::text[] IS NULL OR NOT type LIKE ANY($7))"
        " AND ($8::text[] IS NULL OR sender = ANY($8))"
        " AND ($9::text[] IS NULL OR NOT sender = ANY($9)) AND NOT outlier"
        f" ORDER BY stream {order} LIMIT $10",
        room_id,
        after,
        before,
        [r[0] for r in ranges],
        [r[1] for r in ranges],
        types,
        not_types,
        senders,
        not_senders,
        limit,
    )
    return as_events(rows)


async def events_around(
    db: Database, room_id: str, stream: int, *, before: int, after: int, ranges: Sequence[tuple[int, int | None]]
) -> tuple[list[Event], list[Event]]:
    earlier = await page(db, room_id, after=None, before=stream - 1, backwards=True, limit=before, ranges=ranges)
    later = await page(db, room_id, after=stream, before=None, backwards=False, limit=after, ranges=ranges)
    return earlier, later
