"""The room versions this server understands, and what differs between them.

Rules elsewhere in ``events/`` ask a ``RoomVersion`` instead of comparing
version strings, so a rule that changed in some version is written once with
the flag that says which behaviour applies. Versions 10 to 12 are known
and created; this module is the one place that says which version a new
room gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    # v11 (MSC2174, MSC2176, MSC3821, MSC3989): the redaction algorithm keeps
    # every key of m.room.create, "invite" of power levels, "redacts" of
    # redactions and third_party_invite.signed of members, and drops
    # "origin", "membership" and "prev_state" from the top level.
    updated_redaction_rules: bool
    # v11 (MSC2175): m.room.create has no "creator"; its sender is the creator.
    implicit_room_creator: bool
    # v12 (MSC4291): the room id is the create event's reference hash with
    # "!" for "$", and the create event is never one of the auth events.
    room_id_is_create_event_id: bool
    # v12 (MSC4289): the creators (create sender and additional_creators)
    # have infinite power and cannot appear in power levels' "users".
    privileged_creators: bool
    # v12 (MSC4297): state resolution v2.1 — iterative auth checks start
    # from an empty state, and the conflicted state subgraph is resolved too.
    state_res_v2_1: bool


V10 = RoomVersion(
    "10",
    updated_redaction_rules=False,
    implicit_room_creator=False,
    room_id_is_create_event_id=False,
    privileged_creators=False,
    state_res_v2_1=False,
)
V11 = RoomVersion(
    "11",
    updated_redaction_rules=True,
    implicit_room_creator=True,
    room_id_is_create_event_id=False,
    privileged_creators=False,
    state_res_v2_1=False,
)
V12 = RoomVersion(
    "12",
    updated_redaction_rules=True,
    implicit_room_creator=True,
    room_id_is_create_event_id=True,
    privileged_creators=True,
    state_res_v2_1=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {v.identifier: v for v in (V10, V11, V12)}
# The version createRoom makes unless asked for another, and those it makes.
ROOM_VERSION = V12.identifier
CREATABLE_VERSIONS = tuple(KNOWN_ROOM_VERSIONS)
# The version of the rooms this server keeps to itself
# (protocol/federation.md): the moderation policy room, whose id is fixed in
# advance (which version 12 does not allow), and the original /api's rooms,
# whose member-list rule (org.atomchat.edit_members) no other server knows.
LOCAL_ROOM_VERSION = V10.identifier
# The rules read where no version is named: a create event without
# room_version, a state map without a create event.
DEFAULT_ROOM_VERSION = V10


class UnknownRoomVersion(ValueError):
    """A room version this server does not implement."""


def room_version(identifier: Any) -> RoomVersion:
    if not isinstance(identifier, str) or identifier not in KNOWN_ROOM_VERSIONS:
        raise UnknownRoomVersion(f"room version {identifier!r} is not supported")
    return KNOWN_ROOM_VERSIONS[identifier]


def version_of_create(content: Mapping[str, Any]) -> RoomVersion:
    """The version named by an m.room.create content; "1" when it names none,
    which is unknown here."""
    return room_version(content.get("room_version", "1"))
