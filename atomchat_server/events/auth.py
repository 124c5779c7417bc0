"""Authorization rules for room events, as in Matrix room versions 10 to 12.

``check`` decides whether one event may be appended to a room, given the
room's current state before it. It is pure: the caller loads the state
entries ``auth_state_keys`` names and passes them in.

The federation parts of the room version rules are out of scope, and the
features that only make sense with them are refused with a reason instead
of being half supported: third-party invites, knocking, and restricted
joins (``join_authorised_via_users_server``). Signatures and the choice of
``auth_events`` are also federation matters; here the authorizing state is
always this server's current state of the room.

Redactions get one rule on top of the room version's: the spec applies a
redaction only if its sender has the redact level or sent the redacted event
(the "handling redactions" section); a local server knows both when the
client asks, so it refuses up front instead of storing a redaction that
would never apply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .ids import server_of, split_user_id
from .power_levels import (
    CREATE_KEY,
    EDIT_MEMBERS,
    POWER_LEVELS_KEY,
    StateMap,
    action_level,
    edits_members,
    event_level,
    room_creator,
    room_creators,
    state_content,
    state_event,
    state_room_version,
    user_level,
)
from .room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS, RoomVersion, UnknownRoomVersion, room_version

JOIN_RULES_KEY = ("m.room.join_rules", "")
MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")

_SCALAR_LEVELS = ("users_default", "events_default", "state_default", "ban", "redact", "kick", "invite", EDIT_MEMBERS)
_MAP_LEVELS = ("events", "notifications")
# Canonical JSON only carries integers in this range.
_MAX_LEVEL = 2**53 - 1

_UNSUPPORTED_JOIN_RULES = {
    "knock": "knocking is not supported",
    "restricted": "restricted joins are not supported",
    "knock_restricted": "knocking and restricted joins are not supported",
}


class AuthError(Exception):
    """An event the rules refuse; ``str(exc)`` says why, for people."""


def membership_of(state: StateMap, user_id: str) -> str:
    """The user's membership in the room; "leave" for someone never there."""
    membership = state_content(state, ("m.room.member", user_id)).get("membership")
    return membership if membership in MEMBERSHIPS else "leave"


def auth_state_keys(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The current-state entries ``check`` reads for this event: the
    specification's auth events selection, with the create event always
    (see auth_event_keys for what a PDU's ``auth_events`` may hold)."""
    keys = [CREATE_KEY, POWER_LEVELS_KEY]
    sender = event.get("sender")
    if isinstance(sender, str):
        keys.append(("m.room.member", sender))
    target, content = event.get("state_key"), event.get("content")
    if event.get("type") == "m.room.member" and isinstance(target, str) and isinstance(content, Mapping):
        if target != sender:
            keys.append(("m.room.member", target))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            keys.append(JOIN_RULES_KEY)
        invite = content.get("third_party_invite")
        signed = invite.get("signed") if isinstance(invite, Mapping) else None
        if membership == "invite" and isinstance(signed, Mapping) and isinstance(signed.get("token"), str):
            keys.append(("m.room.third_party_invite", signed["token"]))
        authorising = content.get("join_authorised_via_users_server")
        if membership == "join" and isinstance(authorising, str):
            keys.append(("m.room.member", authorising))
    return list(dict.fromkeys(keys))


def auth_event_keys(event: Mapping[str, Any], version: RoomVersion) -> list[tuple[str, str]]:
    """The state entries a PDU's ``auth_events`` may come from: none for the
    create event, and from version 12 never the create event (the room id
    names it)."""
    if event.get("type") == "m.room.create":
        return []
    return [key for key in auth_state_keys(event) if not (key == CREATE_KEY and version.room_id_is_create_event_id)]


def check_auth_events(event: Mapping[str, Any], auth_events: Sequence[Mapping[str, Any]], version: RoomVersion) -> None:
    """The rules on a received PDU's ``auth_events`` themselves: no two for
    one state entry, none the selection does not name, all of its room.
    (That none was rejected is for the caller, who knows.)"""
    allowed, seen = set(auth_event_keys(event, version)), set()
    for auth_event in auth_events:
        key = (auth_event.get("type"), auth_event.get("state_key"))
        if key in seen:
            raise AuthError(f"auth_events holds two events for {key}")
        seen.add(key)
        if key not in allowed:
            raise AuthError(f"auth_events holds {key}, which this event's authorization does not use")
        if auth_event.get("room_id") != event.get("room_id"):
            raise AuthError(f"the auth event for {key} belongs to another room")


def check(
    event: Mapping[str, Any],
    state: StateMap,
    *,
    redacted_event: Mapping[str, Any] | None = None,
    received: bool = False,
) -> None:
    """Raise AuthError unless ``event`` may follow ``state``.

    ``redacted_event`` is the target of an ``m.room.redaction`` when the
    server has it: its sender may redact it without the redact level.
    ``received``: a PDU from another server, judged by the room version's
    rules alone, which accept a redaction whatever it names; whether it
    takes effect is decided apart (redaction_applies, and the persister's
    check of it against the target when it is committed).
    """
    if event.get("type") == "m.room.create":
        _check_create(event, state)
        return
    _check_shape(event)
    event_type, sender = event["type"], event["sender"]
    create = state_event(state, CREATE_KEY)
    if create is None:
        raise AuthError("the room does not exist: it has no m.room.create event")
    if (
        state_room_version(state).room_id_is_create_event_id
        and event["room_id"] != "!" + str(create.get("event_id", ""))[1:]
    ):
        raise AuthError("the room id is not the id of the room's m.room.create event")
    for key in auth_state_keys(event):
        entry = state_event(state, key)
        if entry is not None and entry.get("room_id", event["room_id"]) != event["room_id"]:
            raise AuthError(f"the room state given for {key[0]} belongs to another room")
    federated = state_content(state, CREATE_KEY).get("m.federate", True)
    if federated is False and server_of(sender) != server_of(create.get("sender", "")):
        raise AuthError("this room is not federated: only users of its creator's server may take part")
    if event_type == "m.room.member":
        _check_membership(event, state)
        return

    if membership_of(state, sender) != "join":
        raise AuthError(f"{sender} is not in the room")
    if event_type == "m.room.third_party_invite":
        raise AuthError("third-party invites are not supported")
    level = user_level(state, sender)
    state_key = event.get("state_key")
    needed = event_level(state, event_type, state_key is not None)
    if level < needed:
        raise AuthError(f"sending {event_type} needs power level {needed}; {sender} has {level}")
    if state_key is not None and state_key.startswith("@") and state_key != sender:
        raise AuthError(f"a state key that is a user id ({state_key}) may only be set by that user")
    if event_type == "m.room.power_levels":
        _check_power_levels(event, state, level)
    elif event_type == "m.room.join_rules":
        rule = event["content"].get("join_rule")
        if isinstance(rule, str) and rule in _UNSUPPORTED_JOIN_RULES:
            raise AuthError(f"join rule {rule!r}: {_UNSUPPORTED_JOIN_RULES[rule]}")
    elif event_type == "m.room.redaction" and not received:
        _check_redaction(event, state, level, redacted_event)


def _check_shape(event: Mapping[str, Any], fields: tuple[str, ...] = ("type", "room_id", "sender")) -> None:
    """The fields every rule reads, with the types they assume."""
    for field in fields:
        if not isinstance(event.get(field), str):
            raise AuthError(f"the event needs a string {field}")
    if split_user_id(event["sender"]) is None:
        raise AuthError(f"the sender {event['sender']!r} is not a user id")
    if not isinstance(event.get("content"), Mapping):
        raise AuthError("the event content must be an object")
    if "state_key" in event and not isinstance(event["state_key"], str):
        raise AuthError("the state key must be a string")


def _check_create(event: Mapping[str, Any], state: StateMap) -> None:
    """The create event's own rules. A create event naming no version is
    read with DEFAULT_ROOM_VERSION's rules (see state_room_version)."""
    content = event.get("content")
    declared = content.get("room_version") if isinstance(content, Mapping) else None
    if declared is None:
        declared = DEFAULT_ROOM_VERSION.identifier
    try:
        version = room_version(declared)
    except UnknownRoomVersion as exc:
        raise AuthError(f"{exc}; this server knows versions {', '.join(KNOWN_ROOM_VERSIONS)}") from None
    # Version 12 create events have no room id: the room id is made from them.
    _check_shape(event, ("type", "sender") if version.room_id_is_create_event_id else ("type", "room_id", "sender"))
    if any(state_event(state, key) is not None for key in state) or event.get("prev_events"):
        raise AuthError("m.room.create can only be the first event of a room")
    if event.get("state_key") != "":
        raise AuthError("m.room.create needs an empty state key")
    content, sender = event["content"], event["sender"]
    if version.room_id_is_create_event_id:
        if "room_id" in event:
            raise AuthError("in room version 12 m.room.create has no room_id: the room id is made from it")
        additional = content.get("additional_creators", [])
        if not isinstance(additional, list) or not all(
            isinstance(user, str) and split_user_id(user) is not None for user in additional
        ):
            raise AuthError("additional_creators of m.room.create must be a list of user ids")
        return
    if not version.implicit_room_creator:
        if "creator" not in content:
            raise AuthError("m.room.create needs content.creator")
        if content["creator"] != sender:
            raise AuthError("content.creator of m.room.create must be its sender")
    if server_of(event["room_id"]) != server_of(sender):
        raise AuthError("a room can only be created by a user of the server named in its room id")


def _check_membership(event: Mapping[str, Any], state: StateMap) -> None:
    target, content, sender = event.get("state_key"), event["content"], event["sender"]
    if target is None or split_user_id(target) is None:
        raise AuthError("m.room.member needs a user id as state key")
    membership = content.get("membership")
    if not isinstance(membership, str):
        raise AuthError("m.room.member needs content.membership")
    if "join_authorised_via_users_server" in content:
        raise AuthError(_UNSUPPORTED_JOIN_RULES["restricted"])
    if membership == "join":
        _check_join(event, state)
    elif membership == "invite":
        _check_invite(sender, target, content, state)
    elif membership == "leave":
        _check_leave(sender, target, state)
    elif membership == "ban":
        _require_power_over(sender, target, state, "ban")
    elif membership == "knock":
        raise AuthError(_UNSUPPORTED_JOIN_RULES["knock"])
    else:
        raise AuthError(f"unknown membership {membership!r}")


def _check_join(event: Mapping[str, Any], state: StateMap) -> None:
    sender, target = event["sender"], event["state_key"]
    if sender != target:
        raise AuthError("nobody can join a room on behalf of someone else")
    # The creator's join right after the create event: the room has no join
    # rules or power levels yet, and nobody else could be let in before it.
    # The state shows it, or (when a fork is resolved against a later state)
    # the event's only prev_event being the create event.
    only_create = all(key == CREATE_KEY for key in state if state_event(state, key) is not None)
    create_id = (state_event(state, CREATE_KEY) or {}).get("event_id")
    after_create = create_id is not None and event.get("prev_events") == [create_id]
    if (only_create or after_create) and target == room_creator(state):
        return
    current = membership_of(state, sender)
    if current == "ban":
        raise AuthError(f"{sender} is banned from the room")
    rule = state_content(state, JOIN_RULES_KEY).get("join_rule")
    if not isinstance(rule, str):
        raise AuthError("the room has no valid join rule: nobody can join")
    if rule == "public":
        return
    if rule in ("invite", *_UNSUPPORTED_JOIN_RULES) and current in ("invite", "join"):
        return
    if rule == "invite":
        raise AuthError(f"the room is invite-only and {sender} is not invited")
    if rule in _UNSUPPORTED_JOIN_RULES:
        raise AuthError(f"{sender} is not invited, and {_UNSUPPORTED_JOIN_RULES[rule]}")
    raise AuthError(f"the room's join rule ({rule!r}) lets nobody join")


def _check_invite(sender: str, target: str, content: Mapping[str, Any], state: StateMap) -> None:
    if "third_party_invite" in content:
        raise AuthError("third-party invites are not supported")
    if membership_of(state, sender) != "join":
        raise AuthError(f"{sender} is not in the room")
    current = membership_of(state, target)
    if current == "join":
        raise AuthError(f"{target} is already in the room")
    if current == "ban":
        raise AuthError(f"{target} is banned from the room")
    _require_level(sender, state, "invite")


def _check_leave(sender: str, target: str, state: StateMap) -> None:
    if sender == target:
        current = membership_of(state, sender)
        if current == "ban":
            raise AuthError(f"{sender} is banned; only an unban lifts a ban")
        if current not in ("invite", "join", "knock"):
            raise AuthError(f"{sender} is not in the room")
        return
    # Someone else's leave: rescinding an invite, kicking, or unbanning.
    if membership_of(state, target) == "ban":
        _require_power_over(sender, target, state, "ban")
    elif (
        membership_of(state, sender) == "join"
        and edits_members(state, sender)
        and user_level(state, target) <= user_level(state, sender)
    ):
        return  # the room lets its members remove their equals (EDIT_MEMBERS)
    _require_power_over(sender, target, state, "kick")


def _require_level(sender: str, state: StateMap, action: str) -> float:
    """The sender's level, if it reaches the level of ``action``."""
    level, needed = user_level(state, sender), action_level(state, action)
    if level < needed:
        raise AuthError(f"{action} needs power level {needed}; {sender} has {level}")
    return level


def _require_power_over(sender: str, target: str, state: StateMap, action: str) -> None:
    """Kicks and bans: a joined sender with the action's level, above the target."""
    if membership_of(state, sender) != "join":
        raise AuthError(f"{sender} is not in the room")
    level = _require_level(sender, state, action)
    target_level = user_level(state, target)
    if target_level >= level:
        raise AuthError(
            f"{action} needs more power than the target's: {target} has {target_level}, {sender} has {level}"
        )


def _is_level(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -_MAX_LEVEL <= value <= _MAX_LEVEL


def _check_power_levels(event: Mapping[str, Any], state: StateMap, level: float) -> None:
    new = event["content"]
    for key in _SCALAR_LEVELS:
        if key in new and not _is_level(new[key]):
            raise AuthError(f"power level {key} must be an integer, not {new[key]!r}")
    for key in (*_MAP_LEVELS, "users"):
        if key in new and not isinstance(new[key], Mapping):
            raise AuthError(f"power levels {key} must be an object")
        for name, value in new.get(key, {}).items():
            if not _is_level(value):
                raise AuthError(f"power level {key}[{name!r}] must be an integer, not {value!r}")
    for user in new.get("users", {}):
        if split_user_id(user) is None:
            raise AuthError(f"power levels users has a key that is not a user id: {user!r}")
    if state_room_version(state).privileged_creators:
        listed = sorted(room_creators(state) & set(new.get("users", {})))
        if listed:
            raise AuthError(f"room creators have infinite power and cannot be listed in power levels: {listed}")
    if state_event(state, POWER_LEVELS_KEY) is None:
        return

    old, sender = state_content(state, POWER_LEVELS_KEY), event["sender"]
    changes = list(
        _changes({k: old[k] for k in _SCALAR_LEVELS if k in old}, {k: new[k] for k in _SCALAR_LEVELS if k in new})
    )
    for key in _MAP_LEVELS:
        changes += [
            (f"{key}[{name!r}]", before, after) for name, before, after in _changes(old.get(key, {}), new.get(key, {}))
        ]
    # Levels of rules: you can touch only what is within your own power.
    for name, before, after in changes:
        if before is not None and before > level:
            raise AuthError(f"cannot change {name}: it is {before}, above your level {level}")
        if after is not None and after > level:
            raise AuthError(f"cannot set {name} to {after}, above your level {level}")
    # Levels of users: you can lower yourself, but not your peers or superiors,
    # and nobody can be raised above you.
    for user, before, after in _changes(old.get("users", {}), new.get("users", {})):
        if user != sender and before is not None and before >= level:
            raise AuthError(f"cannot change the level of {user}: {before} is not below your level {level}")
        if after is not None and after > level:
            raise AuthError(f"cannot raise {user} to {after}, above your level {level}")


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(key, old value or None, new value or None) for each key added,
    removed or changed between two maps."""
    for key in old.keys() | new.keys():
        before, after = old.get(key), new.get(key)
        if key not in old or key not in new or before != after:
            yield key, before, after


def redaction_applies(redaction: Mapping[str, Any], target: Mapping[str, Any], state: StateMap) -> bool:
    """Whether a redaction the rules accepted takes effect on its target
    (the spec's "handling redactions", room versions 3 and later): the two
    are of one room, and the redaction's sender has the redact level in
    ``state`` (the state it was sent in) or is of the target's sender's
    server. One that does not waits, for a target that may still come."""
    if redaction.get("room_id") != target.get("room_id"):
        return False
    if server_of(str(redaction["sender"])) == server_of(str(target["sender"])):
        return True
    return user_level(state, str(redaction["sender"])) >= action_level(state, "redact")


def _check_redaction(
    event: Mapping[str, Any], state: StateMap, level: float, redacted_event: Mapping[str, Any] | None
) -> None:
    if redacted_event is not None and redacted_event.get("room_id", event["room_id"]) != event["room_id"]:
        raise AuthError("the event to redact is in another room")
    if redacted_event is not None and redacted_event.get("sender") == event["sender"]:
        return
    needed = action_level(state, "redact")
    if level < needed:
        raise AuthError(
            f"redacting an event not known to be your own needs power level {needed}; {event['sender']} has {level}"
        )
