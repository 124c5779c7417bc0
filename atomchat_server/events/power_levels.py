"""Power levels of a room (room versions 10 to 12), read from its current state.

A room's ``m.room.power_levels`` state event says how much power each user
has and how much each action needs. Every lookup here falls back to the
defaults the Matrix specification gives for missing keys, and to the
"creator has 100, everyone else 0" rule for a room that has no power levels
event yet (the few events between ``m.room.create`` and the first power
levels event).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS, RoomVersion

# (event type, state key) -> event dict; the rooms' current state, or the part
# of it that authorization needs.
StateMap = Mapping[tuple[str, str], Mapping[str, Any]]

CREATE_KEY = ("m.room.create", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")

CREATOR_LEVEL = 100
# Room version 12: the creators' level, above any integer a power levels
# event can hold.
INFINITE_LEVEL = math.inf

# Values the spec assumes when a power levels event leaves a key out, or when
# the room has none.
DEFAULT_USERS_LEVEL = 0
DEFAULT_EVENTS_LEVEL = 0
DEFAULT_STATE_LEVEL = 50
DEFAULT_ACTION_LEVELS = {"invite": 0, "kick": 50, "ban": 50, "redact": 50}
# AtomChat's own power level: a room that has it lets anyone at that level
# edit the member list as the original /api did (add people at once, remove
# anyone not above them). Rooms made through /api have it at 0; a room
# without it follows the Matrix rules alone.
EDIT_MEMBERS = "org.atomchat.edit_members"

# State that changes who governs the room, or how the room works for every
# member, is for admins; what the room looks like is for moderators.
_ADMIN_EVENTS = (
    "m.room.power_levels",
    "m.room.history_visibility",
    "m.room.tombstone",
    "m.room.server_acl",
    "m.room.encryption",
)
_MODERATOR_EVENTS = ("m.room.name", "m.room.avatar", "m.room.canonical_alias")


def default_power_levels(creator: str) -> dict[str, Any]:
    """Content of the power levels event createRoom sends: the creator is the
    only admin, everyone may talk and invite, moderators kick, ban, redact
    and dress up the room. A fresh dict each call, so callers may apply
    overrides in place."""
    events = {event_type: 100 for event_type in _ADMIN_EVENTS}
    events.update({event_type: 50 for event_type in _MODERATOR_EVENTS})
    return {
        "users": {creator: CREATOR_LEVEL},
        "users_default": DEFAULT_USERS_LEVEL,
        "events": events,
        "events_default": DEFAULT_EVENTS_LEVEL,
        "state_default": DEFAULT_STATE_LEVEL,
        **DEFAULT_ACTION_LEVELS,
        "notifications": {"room": 50},
    }


def state_event(state: StateMap, key: tuple[str, str]) -> Mapping[str, Any] | None:
    """The state event at ``key``; callers may map missing entries to None."""
    return state.get(key) or None


def state_content(state: StateMap, key: tuple[str, str]) -> Mapping[str, Any]:
    """The content of the state event at ``key``, empty when there is none."""
    event = state_event(state, key)
    content = event.get("content") if event else None
    return content if isinstance(content, Mapping) else {}


def state_room_version(state: StateMap) -> RoomVersion:
    """The room version the create event names. A create event naming none,
    or one this server does not know, reads as the version the server
    creates: authorization refuses such create events, so only rooms made
    before versions were recorded have them."""
    version = state_content(state, CREATE_KEY).get("room_version")
    return KNOWN_ROOM_VERSIONS.get(version, DEFAULT_ROOM_VERSION) if isinstance(version, str) else DEFAULT_ROOM_VERSION


def room_creator(state: StateMap) -> str | None:
    """The creator named by the create event (``content.creator`` up to room
    version 10), or its sender when the content does not say; from version
    11 on, always its sender."""
    create = state_event(state, CREATE_KEY)
    if create is None:
        return None
    creator = state_content(state, CREATE_KEY).get("creator")
    if isinstance(creator, str) and not state_room_version(state).implicit_room_creator:
        return creator
    return create.get("sender")


def room_creators(state: StateMap) -> set[str]:
    """The users with a creator's power: from room version 12 the create
    event's sender and its ``additional_creators``, before it the creator alone."""
    creator = room_creator(state)
    creators = {creator} if creator is not None else set()
    additional = state_content(state, CREATE_KEY).get("additional_creators")
    if state_room_version(state).privileged_creators and isinstance(additional, list):
        creators.update(user for user in additional if isinstance(user, str))
    return creators


def user_level(state: StateMap, user_id: str) -> int | float:
    """The user's power level; INFINITE_LEVEL for a creator of a room of
    version 12 or later."""
    if state_room_version(state).privileged_creators and user_id in room_creators(state):
        return INFINITE_LEVEL
    if state_event(state, POWER_LEVELS_KEY) is None:
        return CREATOR_LEVEL if user_id == room_creator(state) else DEFAULT_USERS_LEVEL
    levels = state_content(state, POWER_LEVELS_KEY)
    users = levels.get("users")
    if isinstance(users, Mapping) and user_id in users:
        return users[user_id]
    return levels.get("users_default", DEFAULT_USERS_LEVEL)


def event_level(state: StateMap, event_type: str, is_state: bool) -> int:
    """Level needed to send an event of this type: the ``events`` map first,
    then ``state_default`` or ``events_default``."""
    levels = state_content(state, POWER_LEVELS_KEY)
    events = levels.get("events")
    if isinstance(events, Mapping) and event_type in events:
        return events[event_type]
    if is_state:
        return levels.get("state_default", DEFAULT_STATE_LEVEL)
    return levels.get("events_default", DEFAULT_EVENTS_LEVEL)


def action_level(state: StateMap, action: str) -> int:
    """Level needed to invite, kick, ban, or redact someone else's event."""
    if action not in DEFAULT_ACTION_LEVELS:
        raise ValueError(f"unknown power level action {action!r}")
    return state_content(state, POWER_LEVELS_KEY).get(action, DEFAULT_ACTION_LEVELS[action])


def edit_members_level(state: StateMap) -> int | None:
    """The room's EDIT_MEMBERS level, or None when the room does not let
    members edit its member list."""
    level = state_content(state, POWER_LEVELS_KEY).get(EDIT_MEMBERS)
    return level if isinstance(level, int) and not isinstance(level, bool) else None


def edits_members(state: StateMap, user_id: str) -> bool:
    """Whether the room lets this user edit its member list (see EDIT_MEMBERS)."""
    needed = edit_members_level(state)
    return needed is not None and user_level(state, user_id) >= needed


def edits_directory(state: StateMap, user_id: str) -> bool:
    """Whether the user may publish the room in the directory, take it out,
    or delete others' aliases of it: the level of m.room.canonical_alias,
    as the specification's servers ask."""
    return user_level(state, user_id) >= event_level(state, "m.room.canonical_alias", True)
