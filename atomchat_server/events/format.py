"""Events as clients see them, built from stored rows."""

from __future__ import annotations

import time
from typing import Any, Protocol


class StoredEvent(Protocol):
    """A stored event's fields (storage.events.Event, which this pure
    package may not import), as client_event reads them."""

    @property
    def event_id(self) -> str: ...
    @property
    def room_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def state_key(self) -> str | None: ...
    @property
    def sender(self) -> str: ...
    @property
    def content(self) -> dict[str, Any]: ...
    @property
    def origin_server_ts(self) -> int: ...
    @property
    def unsigned(self) -> dict[str, Any]: ...
    @property
    def redacts(self) -> str | None: ...
    @property
    def txn_device(self) -> str | None: ...
    @property
    def txn_id(self) -> str | None: ...


def client_event(
    row: StoredEvent, *, device: tuple[str, str] | None = None, now_ms: int | None = None
) -> dict[str, Any]:
    """The client-server form of a stored event. ``device`` is the (user id,
    device id) it is sent to: the sending device alone sees its transaction id."""
    event: dict[str, Any] = {
        "event_id": row.event_id,
        "room_id": row.room_id,
        "sender": row.sender,
        "type": row.type,
        "content": row.content,
        "origin_server_ts": row.origin_server_ts,
    }
    if row.state_key is not None:
        event["state_key"] = row.state_key
    if row.redacts is not None:
        event["redacts"] = row.redacts
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    unsigned = dict(row.unsigned or {})
    unsigned["age"] = max(0, now_ms - row.origin_server_ts)
    if device is not None and row.txn_id is not None and (row.sender, row.txn_device) == device:
        unsigned["transaction_id"] = row.txn_id
    event["unsigned"] = unsigned
    return event


def stripped_state(row: StoredEvent) -> dict[str, Any]:
    """The stripped form of a state event given to invitees."""
    return {"type": row.type, "state_key": row.state_key, "sender": row.sender, "content": row.content}
