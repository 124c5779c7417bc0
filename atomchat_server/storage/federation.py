"""Federation transport: remote servers' keys, the outgoing queue per
destination and the transactions received."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..db import Database


@dataclass(frozen=True)
class StoredKey:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int


@dataclass(frozen=True)
class QueuedItem:
    id: int
    kind: str  # "pdu" or "edu"
    body: dict[str, Any]
    txn_id: str | None


# -- remote keys ---------------------------------------------------------------


async def get_key(db: Database, server_name: str, key_id: str) -> StoredKey | None:
    row = await db.fetchrow(
        "SELECT server_name, key_id, verify_key, valid_until_ts FROM federation_server_keys"
        " WHERE server_name = $1 AND key_id = $2",
        server_name,
        key_id,
    )
    return (
        None if row is None else StoredKey(row["server_name"], row["key_id"], row["verify_key"], row["valid_until_ts"])
    )


async def put_keys(db: Database, keys: Iterable[StoredKey], fetched_ts: int) -> None:
    """Stores keys; a key already known keeps the later of the two validities."""
    await db.executemany(
        "INSERT INTO federation_server_keys (server_name, key_id, verify_key, valid_until_ts, fetched_ts)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server_name, key_id) DO UPDATE SET"
        " verify_key = EXCLUDED.verify_key, fetched_ts = EXCLUDED.fetched_ts,"
        " valid_until_ts = GREATEST(federation_server_keys.valid_until_ts, EXCLUDED.valid_until_ts)",
        [(key.server_name, key.key_id, key.verify_key, key.valid_until_ts, fetched_ts) for key in keys],
    )


# -- the outgoing queue --------------------------------------------------------


async def enqueue(db: Database, destinations: Sequence[str], kind: str, bodies: Sequence[Mapping[str, Any]]) -> None:
    """One row per destination and body, committed together, in the bodies' order."""
    await db.executemany(
        "INSERT INTO federation_outbox (destination, kind, body) VALUES ($1, $2, $3::jsonb)",
        [(destination, kind, dict(body)) for destination in destinations for body in bodies],
    )


async def pending_destinations(db: Database) -> list[str]:
    rows = await db.fetch("SELECT DISTINCT destination FROM federation_outbox ORDER BY destination")
    return [row["destination"] for row in rows]


def _item(row: Any) -> QueuedItem:
    return QueuedItem(row["id"], row["kind"], row["body"], row["txn_id"])


async def next_batch(
    db: Database, destination: str, new_txn_id: str, max_pdus: int, max_edus: int
) -> tuple[str, list[QueuedItem]] | None:
    """The batch to send next to ``destination``: the one already formed and
    not yet accepted (same transaction id), else the oldest rows up to the
    limits, marked with ``new_txn_id``. None when nothing waits. One
    statement (atomic by itself): the sender pays one round trip for it.

    Only the next rows that fit are taken: where a kind would pass its
    limit the batch ends, so that the order of everything sent stays the
    order queued (the running counts only grow, so the rows within both
    limits are exactly that prefix)."""
    rows = await db.fetch(
        "WITH formed AS ("
        "  SELECT id, kind, body, txn_id FROM federation_outbox WHERE destination = $1 AND txn_id IS NOT NULL"
        "), following AS ("
        "  SELECT id, count(*) FILTER (WHERE kind = 'pdu') OVER w AS pdus,"
        "         count(*) FILTER (WHERE kind = 'edu') OVER w AS edus"
        "    FROM (SELECT id, kind FROM federation_outbox WHERE destination = $1 AND txn_id IS NULL"
        "          ORDER BY id LIMIT $3::int + $4::int) AS oldest"
        "  WINDOW w AS (ORDER BY id)"
        "), marked AS ("
        "  UPDATE federation_outbox SET txn_id = $2"
        "   WHERE id IN (SELECT id FROM following WHERE pdus <= $3::int AND edus <= $4::int)"
        "     AND NOT EXISTS (SELECT 1 FROM formed)"
        "  RETURNING id, kind, body, txn_id"
        ")"
        " SELECT id, kind, body, txn_id FROM formed UNION ALL SELECT id, kind, body, txn_id FROM marked ORDER BY id",
        destination,
        new_txn_id,
        max_pdus,
        max_edus,
    )
    if not rows:
        return None
    return rows[0]["txn_id"], [_item(row) for row in rows]


async def delete_batch(db: Database, destination: str, txn_id: str) -> None:
    await db.execute("DELETE FROM federation_outbox WHERE destination = $1 AND txn_id = $2", destination, txn_id)


async def queued_count(db: Database, destination: str) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM federation_outbox WHERE destination = $1", destination)
    return count


# -- transactions received -----------------------------------------------------


async def received_response(db: Database, origin: str, txn_id: str) -> dict[str, Any] | None:
    value = await db.fetchval(
        "SELECT response FROM federation_received_txns WHERE origin = $1 AND txn_id = $2", origin, txn_id
    )
    return value


async def record_received(db: Database, origin: str, txn_id: str, response: Mapping[str, Any]) -> None:
    await db.execute(
        "INSERT INTO federation_received_txns (origin, txn_id, response) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (origin, txn_id) DO NOTHING",
        origin,
        txn_id,
        dict(response),
    )


async def joined_servers(db: Database, room_id: str) -> list[str]:
    """The servers with a user joined to the room (the part of each user id after its first colon)."""
    rows = await db.fetch(
        "SELECT DISTINCT substring(user_id FROM position(':' IN user_id) + 1) AS server"
        " FROM memberships WHERE room_id = $1 AND membership = 'join' ORDER BY 1",
        room_id,
    )
    return [row["server"] for row in rows]
