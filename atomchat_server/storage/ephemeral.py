"""Receipts and account data: small rows that each take a stream position.
Writers run inside the persister's transaction (under the stream lock) and
return the position they took. Typing notices are not stored: they are
announced to every server process (announce_typing), which keeps them in
memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..db import Database

# Typing notices, to every server process: JSON {"origin", "room_id", "user_id", "expires_ms"}.
TYPING_CHANNEL = "atomchat_typing"

# -- writes (inside the persister's transaction) ---------------------------------


async def put_receipt(
    conn: Database,
    *,
    room_id: str,
    user_id: str,
    receipt_type: str,
    thread_id: str,
    event_id: str,
    event_stream: int,
    ts: int,
) -> int | None:
    """Moves a receipt forward; returns its new position, or None when the
    user had already read further (receipts never move back)."""
    return await conn.fetchval(
        "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_stream, ts, stream)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('event_stream'))"
        " ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE"
        " SET event_id = EXCLUDED.event_id, event_stream = EXCLUDED.event_stream, ts = EXCLUDED.ts,"
        " stream = EXCLUDED.stream WHERE receipts.event_stream < EXCLUDED.event_stream"
        " RETURNING stream",
        room_id,
        user_id,
        receipt_type,
        thread_id,
        event_id,
        event_stream,
        ts,
    )


async def put_account_data(conn: Database, *, user_id: str, room_id: str, type: str, content: dict[str, Any]) -> int:
    return await conn.fetchval(
        "INSERT INTO account_data (user_id, room_id, type, content, stream)"
        " VALUES ($1, $2, $3, $4, nextval('event_stream'))"
        " ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = EXCLUDED.content,"
        " stream = EXCLUDED.stream RETURNING stream",
        user_id,
        room_id,
        type,
        content,
    )


async def put_tag(conn: Database, *, user_id: str, room_id: str, tag: str, content: dict[str, Any] | None) -> int:
    """Sets (or with ``content`` None, removes) one tag of the user's
    ``m.tag`` room account data, in place: concurrent changes of different
    tags all stick. Tags that are not an object (set through the generic
    account data endpoint) start afresh."""
    return await conn.fetchval(
        "WITH old AS (SELECT COALESCE((SELECT CASE WHEN jsonb_typeof(content->'tags') = 'object'"
        "                                         THEN content->'tags' END"
        "   FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = 'm.tag'), '{}'::jsonb) AS tags)"
        " INSERT INTO account_data (user_id, room_id, type, content, stream)"
        " SELECT $1, $2, 'm.tag', jsonb_build_object('tags', CASE WHEN $4::jsonb IS NULL THEN old.tags - $3::text"
        "        ELSE old.tags || jsonb_build_object($3::text, $4::jsonb) END), nextval('event_stream') FROM old"
        " ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = EXCLUDED.content, stream = EXCLUDED.stream"
        " RETURNING stream",
        user_id,
        room_id,
        tag,
        content,
    )


# -- reads ---------------------------------------------------------------------------


async def get_account_data(db: Database, user_id: str, room_id: str, type: str) -> dict[str, Any] | None:
    return await db.fetchval(
        "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3", user_id, room_id, type
    )


@dataclass(frozen=True, slots=True)
class AccountData:
    """One type of a user's account data: global (room_id '') or of a room."""

    room_id: str
    type: str
    content: dict[str, Any]
    stream: int


async def account_data_since(db: Database, user_id: str, after: int | None, upto: int) -> list[AccountData]:
    rows = await db.fetch(
        "SELECT room_id, type, content, stream FROM account_data"
        " WHERE user_id = $1 AND ($2::bigint IS NULL OR stream > $2) AND stream <= $3 ORDER BY stream",
        user_id,
        after,
        upto,
    )
    return [AccountData(**dict(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class Receipt:
    """How far one user has read a room (or a thread of it), by one receipt type."""

    room_id: str
    user_id: str
    receipt_type: str
    thread_id: str  # '' for the room as a whole
    event_id: str
    ts: int
    stream: int


async def receipts_since(db: Database, room_ids: Sequence[str], after: int | None, upto: int) -> list[Receipt]:
    rows = await db.fetch(
        "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream FROM receipts"
        " WHERE room_id = ANY($1::text[]) AND ($2::bigint IS NULL OR stream > $2) AND stream <= $3 ORDER BY stream",
        list(room_ids),
        after,
        upto,
    )
    return [Receipt(**dict(row)) for row in rows]


class Wake(NamedTuple):
    """Whom a change that is not an event wakes: everyone following a room
    (``user_id`` None), or one user."""

    room_id: str | None
    user_id: str | None


async def updates_between(db: Database, after: int, upto: int) -> list[Wake]:
    """Who to wake for the receipts, account data, presence
    changes, to-device messages and device list changes with after < stream
    <= upto. A presence or device list change wakes its user and everyone in
    a room with them."""
    rows = await db.fetch(
        "SELECT room_id, NULL AS user_id FROM receipts WHERE stream > $1 AND stream <= $2"
        " UNION ALL SELECT NULL, user_id FROM account_data WHERE stream > $1 AND stream <= $2"
        " UNION ALL SELECT m.room_id, NULL FROM presence p JOIN memberships m"
        "   ON m.user_id = p.user_id AND m.membership = 'join' WHERE p.stream > $1 AND p.stream <= $2"
        " UNION ALL SELECT NULL, user_id FROM presence WHERE stream > $1 AND stream <= $2"
        " UNION ALL SELECT NULL, user_id FROM to_device_messages WHERE stream > $1 AND stream <= $2"
        " UNION ALL SELECT NULL, user_id FROM device_list_changes WHERE stream > $1 AND stream <= $2"
        " UNION ALL SELECT m.room_id, NULL FROM device_list_changes c JOIN memberships m"
        "   ON m.user_id = c.user_id AND m.membership = 'join' WHERE c.stream > $1 AND c.stream <= $2",
        after,
        upto,
    )
    return [Wake(row["room_id"], row["user_id"]) for row in rows]


async def announce_typing(db: Database, payload: str) -> None:
    """Tells every server process listening of a typing notice (nothing is stored)."""
    await db.execute("SELECT pg_notify($1, $2)", TYPING_CHANNEL, payload)
