"""End-to-end encryption keys, device list changes and to-device messages.

Writes that take a stream position (a device list change, a to-device
message) run inside the persister's transaction under the stream lock and
return the position they took, as receipts do (storage/ephemeral.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..db import Database

# -- device keys ------------------------------------------------------------------


async def put_device_keys(conn: Database, *, user_id: str, device_id: str, keys: dict[str, Any]) -> int | None:
    """Stores a device's keys; a change takes a position in the device list
    stream (returned), an identical upload takes none (None)."""
    changed = await conn.fetchval(
        "INSERT INTO device_keys (user_id, device_id, keys)"
        " SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET keys = EXCLUDED.keys"
        " WHERE device_keys.keys IS DISTINCT FROM EXCLUDED.keys RETURNING true",
        user_id,
        device_id,
        keys,
    )
    return await device_list_changed(conn, user_id=user_id) if changed else None


async def device_list_changed(conn: Database, *, user_id: str) -> int:
    """Records that the user's devices or keys changed; returns the position."""
    return await conn.fetchval(
        "INSERT INTO device_list_changes (user_id, stream) VALUES ($1, nextval('event_stream')) RETURNING stream",
        user_id,
    )


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """The identity keys a device published, and the device's display name."""

    user_id: str
    device_id: str
    keys: dict[str, Any]
    display_name: str | None


async def device_keys_of(db: Database, users: dict[str, list[str]]) -> list[DeviceKeys]:
    """The device keys of the named devices (an empty list: all the user's
    devices), with each device's display name."""
    rows = await db.fetch(
        "SELECT k.user_id, k.device_id, k.keys, d.display_name FROM device_keys k"
        " JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
        " JOIN jsonb_each($1::jsonb) AS q(user_id, devices) ON q.user_id = k.user_id"
        " WHERE jsonb_array_length(q.devices) = 0 OR q.devices ? k.device_id"
        " ORDER BY k.user_id, k.device_id",
        users,
    )
    return [DeviceKeys(**dict(row)) for row in rows]


# -- one-time and fallback keys ------------------------------------------------------


async def add_one_time_keys(
    db: Database, *, user_id: str, device_id: str, keys: Sequence[tuple[str, str, Any]]
) -> None:
    """Adds (algorithm, key id, key) triples; a key id already held is kept as it was."""
    await db.execute(
        "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key)"
        " SELECT $1, $2, k.algorithm, k.key_id, k.key::jsonb"
        " FROM unnest($3::text[], $4::text[], $5::text[]) AS k(algorithm, key_id, key)"
        " WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2)"  # not one just deleted
        " ON CONFLICT DO NOTHING",
        user_id,
        device_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [_json(k[2]) for k in keys],
    )


async def put_fallback_keys(
    db: Database, *, user_id: str, device_id: str, keys: Sequence[tuple[str, str, Any]]
) -> None:
    """Replaces the device's fallback key of each algorithm given (unused
    again), unless it is the same key uploaded again."""
    await db.execute(
        "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key)"
        " SELECT $1, $2, k.algorithm, k.key_id, k.key::jsonb"
        " FROM unnest($3::text[], $4::text[], $5::text[]) AS k(algorithm, key_id, key)"
        " WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2)"  # not one just deleted
        " ON CONFLICT (user_id, device_id, algorithm) DO UPDATE"
        " SET key_id = EXCLUDED.key_id, key = EXCLUDED.key, used = false"
        " WHERE fallback_keys.key_id <> EXCLUDED.key_id OR fallback_keys.key <> EXCLUDED.key",
        user_id,
        device_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [_json(k[2]) for k in keys],
    )


async def key_state(db: Database, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
    """The device's unclaimed one-time keys per algorithm, and the algorithms
    of its fallback keys not yet handed out (one round trip)."""
    rows = await db.fetch(
        "SELECT algorithm, count(*) AS n, false AS fallback FROM one_time_keys"
        " WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm"
        " UNION ALL SELECT algorithm, 0, true FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used"
        " ORDER BY fallback, algorithm",
        user_id,
        device_id,
    )
    return (
        {row["algorithm"]: row["n"] for row in rows if not row["fallback"]},
        [row["algorithm"] for row in rows if row["fallback"]],
    )


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    """A one-time (or fallback) key handed out: its id and the key, a bare
    key string or a signed key object, as the device uploaded it."""

    key_id: str
    key: str | dict[str, Any]


async def claim_key(db: Database, user_id: str, device_id: str, algorithm: str) -> ClaimedKey | None:
    """Takes one one-time key of the algorithm, which no other claim can then
    get (concurrent claimers skip each other's locked rows); when none is
    left, the fallback key, which stays and is marked used. None when neither exists."""
    row = await db.fetchrow(
        "DELETE FROM one_time_keys WHERE (user_id, device_id, key_id) = ("
        " SELECT user_id, device_id, key_id FROM one_time_keys"
        " WHERE user_id = $1 AND device_id = $2 AND algorithm = $3"
        " ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING key_id, key",
        user_id,
        device_id,
        algorithm,
    )
    if row is None:
        row = await db.fetchrow(
            "UPDATE fallback_keys SET used = true WHERE user_id = $1 AND device_id = $2 AND algorithm = $3"
            " RETURNING key_id, key",
            user_id,
            device_id,
            algorithm,
        )
    return ClaimedKey(**dict(row)) if row is not None else None


# -- cross-signing keys and signatures ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrossSigningKey:
    """One of a user's cross-signing keys (key_type master, self_signing or user_signing)."""

    user_id: str
    key_type: str
    keys: dict[str, Any]


async def cross_signing_keys_of(db: Database, user_ids: Sequence[str]) -> list[CrossSigningKey]:
    rows = await db.fetch(
        "SELECT user_id, key_type, keys FROM cross_signing_keys WHERE user_id = ANY($1::text[])"
        " ORDER BY user_id, key_type",
        list(user_ids),
    )
    return [CrossSigningKey(**dict(row)) for row in rows]


async def put_cross_signing_keys(conn: Database, *, user_id: str, keys: dict[str, Any]) -> int | None:
    """Stores the given cross-signing keys (by key type); returns the device
    list position the change took, or None if nothing changed."""
    changed = await conn.fetchval(
        "WITH up AS (INSERT INTO cross_signing_keys (user_id, key_type, keys)"
        " SELECT $1, k.key_type, k.keys FROM jsonb_each($2::jsonb) AS k(key_type, keys)"
        " ON CONFLICT (user_id, key_type) DO UPDATE SET keys = EXCLUDED.keys"
        " WHERE cross_signing_keys.keys IS DISTINCT FROM EXCLUDED.keys RETURNING 1)"
        " SELECT count(*) FROM up",
        user_id,
        keys,
    )
    return await device_list_changed(conn, user_id=user_id) if changed else None


async def add_signatures(
    conn: Database, *, signer_user: str, signatures: Sequence[tuple[str, str, str, str]], notify: Sequence[str]
) -> int | None:
    """Stores (target user, target key id, signer key id, signature) rows by
    one signer; the users in ``notify`` get a device list change. Returns
    the last position taken, if any."""
    await conn.execute(
        "INSERT INTO key_signatures (target_user, target_key_id, signer_user, signer_key_id, signature)"
        " SELECT s.target_user, s.target_key_id, $1, s.signer_key_id, s.signature"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])"
        "   AS s(target_user, target_key_id, signer_key_id, signature)"
        " ON CONFLICT (target_user, target_key_id, signer_user, signer_key_id)"
        " DO UPDATE SET signature = EXCLUDED.signature",
        signer_user,
        [s[0] for s in signatures],
        [s[1] for s in signatures],
        [s[2] for s in signatures],
        [s[3] for s in signatures],
    )
    position = None
    for user_id in notify:
        position = await device_list_changed(conn, user_id=user_id)
    return position


@dataclass(frozen=True, slots=True)
class KeySignature:
    """A signature uploaded on its own, of a device key or cross-signing key
    (``target_key_id``: the device id, or the key's public key)."""

    target_user: str
    target_key_id: str
    signer_user: str
    signer_key_id: str
    signature: str


async def signatures_for(db: Database, target_users: Sequence[str], reader: str) -> list[KeySignature]:
    """Uploaded signatures on the users' keys that ``reader`` may see: the
    owners' own, and the reader's."""
    rows = await db.fetch(
        "SELECT target_user, target_key_id, signer_user, signer_key_id, signature FROM key_signatures"
        " WHERE target_user = ANY($1::text[]) AND (signer_user = target_user OR signer_user = $2)",
        list(target_users),
        reader,
    )
    return [KeySignature(**dict(row)) for row in rows]


# -- device lists ---------------------------------------------------------------------------


async def users_sharing_rooms(db: Database, user_id: str, among: Sequence[str]) -> set[str]:
    """Those of ``among`` joined to a room the user is joined to, the user included."""
    rows = await db.fetch(
        "SELECT DISTINCT o.user_id FROM memberships m JOIN memberships o ON o.room_id = m.room_id"
        " WHERE m.user_id = $1 AND m.membership = 'join' AND o.membership = 'join' AND o.user_id = ANY($2::text[])",
        user_id,
        list(among),
    )
    return {row["user_id"] for row in rows} | {user_id}


@dataclass(frozen=True, slots=True)
class DeviceListEvent:
    """Something that may change a user's device lists: ``member``'s devices
    or keys changed (room_id and membership None), or ``member``'s
    membership of ``room_id`` changed (stream 0 for a device change)."""

    room_id: str | None
    member: str
    membership: str | None
    stream: int


async def device_list_events_between(db: Database, user_id: str, after: int, upto: int) -> list[DeviceListEvent]:
    """What in (after, upto] may change the user's device lists, in one
    round trip: (NULL, user, NULL) for each user whose devices changed
    (anyone's), and (room, member, membership) for each member event in the
    rooms the user has a membership in, in stream order."""
    rows = await db.fetch(
        "SELECT DISTINCT NULL AS room_id, user_id AS member, NULL AS membership, 0::bigint AS stream"
        " FROM device_list_changes WHERE stream > $2 AND stream <= $3"
        " UNION ALL SELECT e.room_id, e.state_key, e.content->>'membership', e.stream"
        " FROM memberships m JOIN events e ON e.room_id = m.room_id AND e.type = 'm.room.member'"
        " AND e.stream > $2 AND e.stream <= $3 WHERE m.user_id = $1 ORDER BY stream",
        user_id,
        after,
        upto,
    )
    return [DeviceListEvent(**dict(row)) for row in rows]


async def joined_members_of(db: Database, room_ids: Sequence[str]) -> list[str]:
    rows = await db.fetch(
        "SELECT DISTINCT user_id FROM memberships WHERE room_id = ANY($1::text[]) AND membership = 'join'",
        list(room_ids),
    )
    return [row["user_id"] for row in rows]


# -- to-device messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserDevice:
    """A device, by its user and id."""

    user_id: str
    device_id: str


async def devices_of(db: Database, user_ids: Sequence[str]) -> list[UserDevice]:
    rows = await db.fetch("SELECT user_id, device_id FROM devices WHERE user_id = ANY($1::text[])", list(user_ids))
    return [UserDevice(**dict(row)) for row in rows]


async def put_to_device(
    conn: Database, *, sender: str, sender_device: str, txn_id: str, type: str, messages: Sequence[tuple[str, str, Any]]
) -> int | None:
    """Queues (user, device, content) messages, all at one new position, once
    per transaction id: a retried one queues nothing and returns None.
    Messages for devices that do not exist are dropped."""
    first = await conn.fetchval(
        "INSERT INTO to_device_txns (user_id, device_id, txn_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        sender,
        sender_device,
        txn_id,
    )
    if not first or not messages:
        return None
    return await conn.fetchval(
        "WITH pos AS (SELECT nextval('event_stream') AS stream),"
        " ins AS (INSERT INTO to_device_messages (user_id, device_id, stream, sender, type, content)"
        " SELECT m.user_id, m.device_id, pos.stream, $1, $2, m.content::jsonb"
        " FROM unnest($3::text[], $4::text[], $5::text[]) AS m(user_id, device_id, content)"
        " CROSS JOIN pos JOIN devices d ON d.user_id = m.user_id AND d.device_id = m.device_id"
        " ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT pos.stream FROM pos WHERE EXISTS (SELECT 1 FROM ins)",
        sender,
        type,
        [m[0] for m in messages],
        [m[1] for m in messages],
        [_json(m[2]) for m in messages],
    )


@dataclass(frozen=True, slots=True)
class ToDeviceMessage:
    """A message queued for one device, at its position in the stream."""

    stream: int
    sender: str
    type: str
    content: dict[str, Any]


async def to_device_between(
    db: Database, user_id: str, device_id: str, after: int | None, upto: int, limit: int
) -> list[ToDeviceMessage]:
    """The device's first ``limit`` messages in (after, upto], oldest first."""
    rows = await db.fetch(
        "SELECT stream, sender, type, content FROM to_device_messages"
        " WHERE user_id = $1 AND device_id = $2 AND ($3::bigint IS NULL OR stream > $3) AND stream <= $4"
        " ORDER BY stream LIMIT $5",
        user_id,
        device_id,
        after,
        upto,
        limit,
    )
    return [ToDeviceMessage(**dict(row)) for row in rows]


async def acknowledge_to_device(db: Database, user_id: str, device_id: str, upto: int) -> None:
    """The device has what is at or below ``upto``: delete it."""
    await db.execute(
        "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND stream <= $3",
        user_id,
        device_id,
        upto,
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
