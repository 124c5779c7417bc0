"""The checks a PDU received from another server must pass, in the order
the server-server API gives: its format, its signatures, its content hash
(a mismatch means the event is kept redacted), then authorization against
its own auth_events and against the state before it.

Pure functions: the federation service (services/federation_events.py)
fetches the keys and the events they need and passes them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from signedjson.types import VerifyKey

from .auth import AuthError, check, check_auth_events
from .drafts import MAX_EVENT_BYTES
from .ids import is_room_id, server_of, split_user_id
from .redaction import prune_event
from .room_versions import RoomVersion
from .signing import SignatureError, canonical_json, has_valid_content_hash, verify_event

StateMap = Mapping[tuple[str, str], Mapping[str, Any]]


class PduError(ValueError):
    """A PDU to refuse outright: nothing of it is stored."""


_EVENT_ID_LISTS = ("prev_events", "auth_events")
_MAX_REFERENCES = 20  # prev_events and auth_events each; more is abuse, not a room


def check_format(pdu: Any, version: RoomVersion, *, limit_references: bool = True) -> None:
    """The fields every later check reads, with the types it assumes.
    ``limit_references`` off for history (backfill), which the specification
    says must not be held to the limits on prev_events and auth_events: a
    room's old events may predate them."""
    if not isinstance(pdu, Mapping):
        raise PduError("a PDU must be an object")
    if len(canonical_json(pdu)) > MAX_EVENT_BYTES:
        raise PduError(f"the PDU is larger than {MAX_EVENT_BYTES} bytes")
    for field in ("type", "sender"):
        if not isinstance(pdu.get(field), str):
            raise PduError(f"the PDU needs a string {field}")
    if split_user_id(pdu["sender"]) is None:
        raise PduError("the sender is not a user id")
    is_create = pdu["type"] == "m.room.create"
    has_room_id = isinstance(pdu.get("room_id"), str) and is_room_id(pdu["room_id"])
    if not has_room_id and not (is_create and version.room_id_is_create_event_id):
        raise PduError("the PDU needs a room id")
    if not isinstance(pdu.get("content"), Mapping):
        raise PduError("the PDU content must be an object")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise PduError("the state key must be a string")
    depth, ts = pdu.get("depth"), pdu.get("origin_server_ts")
    for name, value in (("depth", depth), ("origin_server_ts", ts)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise PduError(f"the PDU needs a non-negative integer {name}")
    for name in _EVENT_ID_LISTS:
        ids = pdu.get(name)
        if not isinstance(ids, list) or not all(isinstance(i, str) and i.startswith("$") for i in ids):
            raise PduError(f"{name} must be a list of event ids")
        if limit_references and len(ids) > _MAX_REFERENCES:
            raise PduError(f"{name} cites more than {_MAX_REFERENCES} events")
    if not isinstance(pdu.get("hashes"), Mapping) or not isinstance(pdu["hashes"].get("sha256"), str):
        raise PduError("the PDU needs hashes.sha256")
    if not isinstance(pdu.get("signatures"), Mapping):
        raise PduError("the PDU needs signatures")


def required_signers(pdu: Mapping[str, Any]) -> list[str]:
    """The servers whose signatures the PDU must carry: its sender's."""
    return [server_of(pdu["sender"])]


def signature_key_ids(pdu: Mapping[str, Any], server_name: str) -> list[str]:
    """The ed25519 key ids ``server_name`` signed the PDU with."""
    signatures = pdu.get("signatures", {}).get(server_name)
    if not isinstance(signatures, Mapping):
        return []
    return sorted(k for k in signatures if isinstance(k, str) and k.startswith("ed25519:"))


def check_signatures(pdu: Mapping[str, Any], version: RoomVersion, keys: Mapping[tuple[str, str], VerifyKey]) -> None:
    """Raise PduError unless every required server signed the PDU with one
    of the keys given for it ((server, key id) -> verify key)."""
    for server in required_signers(pdu):
        key_ids = [k for k in signature_key_ids(pdu, server) if (server, k) in keys]
        if not key_ids:
            raise PduError(f"the PDU carries no signature of {server} by a key known here")
        for key_id in key_ids:
            try:
                verify_event(pdu, server, keys[(server, key_id)], version)
                break
            except SignatureError:
                continue
        else:
            raise PduError(f"the signature of {server} does not match the PDU")


def with_checked_hash(pdu: Mapping[str, Any], version: RoomVersion) -> tuple[dict[str, Any], bool]:
    """(the PDU to keep, whether it was redacted): a PDU whose content hash
    does not match is kept in its redacted form."""
    if has_valid_content_hash(pdu):
        return dict(pdu), False
    return prune_event(pdu, version), True


def auth_state(events: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The state the given state events make, keyed by (type, state key)."""
    return {(e["type"], e["state_key"]): e for e in events if isinstance(e.get("state_key"), str)}


def check_against_auth_events(
    event: Mapping[str, Any],
    auth_events: Sequence[Mapping[str, Any]],
    version: RoomVersion,
    create: Mapping[str, Any] | None,
) -> None:
    """Raise AuthError unless the event passes the rules on the state its own
    auth_events make (with, from version 12, the create event its room id
    names, given as ``create``)."""
    if event.get("type") == "m.room.create":
        # A version-12 create event has no room id of its own (as_event adds the one it makes).
        own = {k: v for k, v in event.items() if not (k == "room_id" and version.room_id_is_create_event_id)}
        check(own, {})
        return
    check_auth_events(event, auth_events, version)
    state = auth_state(auth_events)
    if version.room_id_is_create_event_id:
        if create is None:
            raise AuthError("the room's create event is unknown")
        state[("m.room.create", "")] = create
    check(event, state, received=True)
