"""Events as clients see them, built from stored rows."""

from __future__ import annotations

import time
from typing import Any, Protocol

CLIENT_FIELDS = ("event_id", "room_id", "sender", "type", "content", "origin_server_ts")


class Row(Protocol):
    """A stored event's fields by name: a dict, or a database record (which
    is not a Mapping)."""

    def __getitem__(self, key: str, /) -> Any: ...


def client_event(row: Row, *, device: tuple[str, str] | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """The client-server form of a stored event. ``device`` is the (user id,
    device id) it is sent to: the sending device alone sees its transaction id."""
    event = {name: row[name] for name in CLIENT_FIELDS}
    if row["state_key"] is not None:
        event["state_key"] = row["state_key"]
    if row["redacts"] is not None:
        event["redacts"] = row["redacts"]
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    unsigned = dict(row["unsigned"] or {})
    unsigned["age"] = max(0, now_ms - row["origin_server_ts"])
    if device is not None and row["txn_id"] is not None and (row["sender"], row["txn_device"]) == device:
        unsigned["transaction_id"] = row["txn_id"]
    event["unsigned"] = unsigned
    return event


def stripped_state(row: Row) -> dict[str, Any]:
    """The stripped form of a state event given to invitees."""
    return {"type": row["type"], "state_key": row["state_key"], "sender": row["sender"], "content": row["content"]}
