"""Events as PDUs: the form rooms' events take between servers.

A PDU carries, beside what clients see, the ``prev_events`` and ``depth``
that place it in the room's graph, the ``auth_events`` that authorize it,
its content hash and its origin server's signatures. Its event id is not
in it: from room version 4 on, the id is the PDU's reference hash
(signing.event_id). Pure functions; the persister and the federation
service call them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from signedjson.types import SigningKey

from .room_versions import RoomVersion
from .signing import event_id, sign_event

# The top-level keys a PDU of versions 10 to 12 may carry beside content.
PDU_FIELDS = (
    "room_id",
    "sender",
    "type",
    "state_key",
    "content",
    "origin_server_ts",
    "depth",
    "prev_events",
    "auth_events",
    "redacts",
    "hashes",
    "signatures",
    "unsigned",
)
# Each server cites at most this many forward extremities in prev_events.
MAX_PREV_EVENTS = 10


def build_pdu(
    *,
    room_id: str,
    sender: str,
    event_type: str,
    content: Mapping[str, Any],
    state_key: str | None,
    redacts: str | None,
    origin_server_ts: int,
    depth: int,
    prev_events: Sequence[str],
    auth_events: Sequence[str],
    version: RoomVersion,
) -> dict[str, Any]:
    """The unsigned PDU. In version 12 the create event has no room id (the
    room id is made from it); from version 11 a redaction names its target
    in its content only."""
    pdu: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "content": dict(content),
        "origin_server_ts": origin_server_ts,
        "depth": depth,
        "prev_events": list(prev_events),
        "auth_events": list(auth_events),
    }
    if not (event_type == "m.room.create" and version.room_id_is_create_event_id):
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if version.updated_redaction_rules:
            pdu["content"]["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    return pdu


def finish_pdu(
    pdu: Mapping[str, Any], server_name: str, key: SigningKey, version: RoomVersion
) -> tuple[str, dict[str, Any]]:
    """(event id, the PDU hashed and signed by this server)."""
    signed = sign_event(pdu, server_name, key, version)
    return event_id(signed, version), signed


def redacts_of(pdu: Mapping[str, Any], version: RoomVersion) -> str | None:
    """The event a redaction PDU redacts, wherever its version puts it."""
    if pdu.get("type") != "m.room.redaction":
        return None
    content = pdu.get("content")
    target = (
        content.get("redacts")
        if version.updated_redaction_rules and isinstance(content, Mapping)
        else pdu.get("redacts")
    )
    return target if isinstance(target, str) else None


def as_event(pdu: Mapping[str, Any], event_id_: str, version: RoomVersion) -> dict[str, Any]:
    """The PDU with its event id, and in version 12 the create event with
    the room id it makes: the event dict the authorization rules and state
    resolution read."""
    event = {k: v for k, v in pdu.items() if k not in ("signatures", "unsigned", "hashes")}
    event["event_id"] = event_id_
    if "room_id" not in event and pdu.get("type") == "m.room.create" and version.room_id_is_create_event_id:
        event["room_id"] = "!" + event_id_[1:]
    redacts = redacts_of(pdu, version)
    if redacts is not None:
        event["redacts"] = redacts
    return event
