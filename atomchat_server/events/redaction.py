"""Redaction: what of an event survives when it is redacted (room version 10).

A redacted event keeps its row and its place in the timeline; its content is
reduced to the keys that room authorization depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Per event type, the content keys a redaction keeps.
_KEPT_CONTENT: dict[str, tuple[str, ...]] = {
    "m.room.member": ("membership", "join_authorised_via_users_server"),
    "m.room.create": ("creator",),
    "m.room.join_rules": ("join_rule", "allow"),
    "m.room.power_levels": ("ban", "events", "events_default", "kick", "redact", "state_default",
                            "users", "users_default"),
    "m.room.history_visibility": ("history_visibility",),
}


def pruned_content(event_type: str, content: Mapping[str, Any]) -> dict[str, Any]:
    kept = _KEPT_CONTENT.get(event_type, ())
    return {key: content[key] for key in kept if key in content}
