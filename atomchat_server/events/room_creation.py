"""The initial events of a new room, in the order the spec gives for createRoom:
create, the creator's join, power levels, canonical alias, the preset's join
rules / history visibility / guest access, initial_state, name, topic, then
invites."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .drafts import EventDraft
from .power_levels import default_power_levels
from .room_versions import ROOM_VERSION, room_version

PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join"},
    "public_chat": {"join_rule": "public", "history_visibility": "shared", "guest_access": "forbidden"},
}


@dataclass(frozen=True)
class RoomRequest:
    """What createRoom was asked for, already checked against its schema."""

    preset: str
    name: str | None = None
    topic: str | None = None
    invite: tuple[str, ...] = ()
    is_direct: bool = False
    canonical_alias: str | None = None
    creation_content: dict[str, Any] = field(default_factory=dict)
    initial_state: tuple[dict[str, Any], ...] = ()
    power_level_content_override: dict[str, Any] = field(default_factory=dict)
    room_version: str = ROOM_VERSION


def preset_for(body: dict[str, Any]) -> str:
    if "preset" in body:
        return body["preset"]
    return "public_chat" if body.get("visibility") == "public" else "private_chat"


def create_content(creator: str, request: RoomRequest) -> dict[str, Any]:
    """The content of the room's m.room.create. ``creator`` is kept in every
    version: from version 11 on the sender is the creator and the key is
    only informative."""
    return {**request.creation_content, "creator": creator, "room_version": request.room_version}


def initial_events(
    room_id: str, creator: str, request: RoomRequest, creator_profile: dict[str, Any], create: EventDraft | None = None
) -> list[EventDraft]:
    """``create`` is the room's m.room.create when it is already made (in
    version 12, where it names the room)."""

    def state(event_type: str, content: dict[str, Any], state_key: str = "") -> EventDraft:
        return EventDraft(room_id=room_id, sender=creator, type=event_type, content=content, state_key=state_key)

    preset = PRESETS[request.preset]
    power_levels = default_power_levels(creator)
    if request.preset == "trusted_private_chat":
        for user in request.invite:
            power_levels["users"][user] = 100
    power_levels.update(request.power_level_content_override)
    if room_version(request.room_version).privileged_creators and isinstance(power_levels.get("users"), dict):
        # The creator's power is above any level and may not be listed: a
        # listing (the default's, or an override's written for older rooms)
        # is left out rather than refused.
        power_levels["users"] = {u: level for u, level in power_levels["users"].items() if u != creator}

    drafts = [
        create or state("m.room.create", create_content(creator, request)),
        state("m.room.member", {"membership": "join", **_profile(creator_profile)}, creator),
        state("m.room.power_levels", power_levels),
    ]
    if request.canonical_alias:
        drafts.append(state("m.room.canonical_alias", {"alias": request.canonical_alias}))
    drafts += [
        state("m.room.join_rules", {"join_rule": preset["join_rule"]}),
        state("m.room.history_visibility", {"history_visibility": preset["history_visibility"]}),
        state("m.room.guest_access", {"guest_access": preset["guest_access"]}),
    ]
    # initial_state overrides the alias and preset events of the same type and key.
    overridden = {(e["type"], e.get("state_key", "")) for e in request.initial_state}
    fixed, presettable = drafts[:3], drafts[3:]
    drafts = fixed + [d for d in presettable if (d.type, d.state_key) not in overridden]
    drafts += [state(e["type"], e["content"], e.get("state_key", "")) for e in request.initial_state]
    if request.name is not None:
        drafts.append(state("m.room.name", {"name": request.name}))
    if request.topic is not None:
        drafts.append(state("m.room.topic", {"topic": request.topic}))
    for user in request.invite:
        content: dict[str, Any] = {"membership": "invite"}
        if request.is_direct:
            content["is_direct"] = True
        drafts.append(state("m.room.member", content, user))
    return drafts


def _profile(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: profile[k] for k in ("displayname", "avatar_url") if profile.get(k) is not None}
