"""Redaction: what of an event survives when it is redacted, per room version.

A redacted event keeps its row and its place in the timeline; its content is
reduced to the keys that room authorization depends on. The same algorithm
("pruning") decides what event signatures and event ids cover, so it must
match the specification byte for byte for federation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .room_versions import DEFAULT_ROOM_VERSION, RoomVersion

# Per event type, the content keys a redaction keeps (room version 10).
_KEPT_CONTENT: dict[str, tuple[str, ...]] = {
    "m.room.member": ("membership", "join_authorised_via_users_server"),
    "m.room.create": ("creator",),
    "m.room.join_rules": ("join_rule", "allow"),
    "m.room.power_levels": (
        "ban",
        "events",
        "events_default",
        "kick",
        "redact",
        "state_default",
        "users",
        "users_default",
    ),
    "m.room.history_visibility": ("history_visibility",),
}
# Version 11 keeps a little more (see RoomVersion.updated_redaction_rules);
# m.room.create keeps everything, which is not a key list.
_KEPT_CONTENT_V11: dict[str, tuple[str, ...]] = {
    **_KEPT_CONTENT,
    "m.room.power_levels": (*_KEPT_CONTENT["m.room.power_levels"], "invite"),
    "m.room.redaction": ("redacts",),
}

_KEPT_TOP_LEVEL_V11 = (
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
)
_KEPT_TOP_LEVEL = (*_KEPT_TOP_LEVEL_V11, "origin", "membership", "prev_state")


def pruned_content(
    event_type: str, content: Mapping[str, Any], version: RoomVersion = DEFAULT_ROOM_VERSION
) -> dict[str, Any]:
    if not version.updated_redaction_rules:
        kept = _KEPT_CONTENT.get(event_type, ())
        return {key: content[key] for key in kept if key in content}
    if event_type == "m.room.create":
        return dict(content)
    pruned = {key: content[key] for key in _KEPT_CONTENT_V11.get(event_type, ()) if key in content}
    invite = content.get("third_party_invite")
    if event_type == "m.room.member" and isinstance(invite, Mapping):
        # An object stays, reduced to "signed" (empty without it), as the
        # other servers redact it: the event id depends on it.
        pruned["third_party_invite"] = {key: invite[key] for key in ("signed",) if key in invite}
    return pruned


def prune_event(event: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
    """The event as the redaction algorithm leaves it: only the top-level keys
    the version keeps (``unsigned`` goes too), with pruned content."""
    kept = _KEPT_TOP_LEVEL_V11 if version.updated_redaction_rules else _KEPT_TOP_LEVEL
    pruned = {key: event[key] for key in kept if key in event}
    content = event.get("content")
    pruned["content"] = pruned_content(event.get("type", ""), content if isinstance(content, Mapping) else {}, version)
    return pruned
