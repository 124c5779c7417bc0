"""AtomChat's moderation rules, on top of the room authorization rules.

Server-wide blocks are ``m.policy.rule.user`` state events in the moderation
policy room: the rule for a user says whether they are locked (the account
cannot be used), suspended (it can read but not act), or neither (empty
content: the block was lifted). ``m.policy.rule.server`` rules ban other
servers (a name or a glob): their requests and events are refused.

Moderators act in any room without being members: for the events they send
they count as joined, and for posting, redacting and membership changes
(kick, ban, unban, invite) their power counts as at least what kicking,
banning, redacting and the event itself need. Other state events (power
levels, name, topic, join rules...) are judged at their own level in the
room: the override is for moderating a room, not for running it. Both are
expressed as a view of the room state that the ordinary rules then judge,
so no rule is written twice.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from .power_levels import POWER_LEVELS_KEY, StateMap, action_level, edit_members_level, event_level, user_level

POLICY_RULE = "m.policy.rule.user"
LOCK = "m.ban"  # the spec's recommendation for keeping a user out
SUSPEND = "org.atomchat.suspend"
BLOCKS = {LOCK: "locked", SUSPEND: "suspended"}

# What a suspended user may still do: read, leave, redact (their own mess), log out.
SUSPENDED_MAY = frozenset({"leave", "redact"})


SERVER_RULE = "m.policy.rule.server"


def server_rule_state_key(server: str) -> str:
    return "server:" + server


def server_rule_content(server: str, blocked: bool, reason: str) -> dict[str, Any]:
    """The content of a server's rule: a ban (its entity may be a glob, as
    ``*.example.org``), or empty to lift it."""
    return {"entity": server, "recommendation": LOCK, "reason": reason} if blocked else {}


def banned_server(content: Mapping[str, Any]) -> str | None:
    """The server name or glob a server rule bans, else None."""
    entity, recommendation = content.get("entity"), content.get("recommendation")
    return entity if isinstance(entity, str) and entity and recommendation == LOCK else None


def server_matches(server: str, patterns: Iterable[str]) -> bool:
    """Whether a server name matches one of the banned names or globs (* and ?)."""
    return any(fnmatch.fnmatchcase(server, pattern) for pattern in patterns)


def rule_state_key(user_id: str) -> str:
    """The state key of a user's rule (state keys starting with '@' are
    reserved for the user they name, so the id is prefixed)."""
    return "user:" + user_id


def rule_content(user_id: str, block: str | None, reason: str) -> dict[str, Any]:
    """The content of a user's rule: a block, or empty to lift it."""
    if block is None:
        return {}
    recommendation = next(rec for rec, name in BLOCKS.items() if name == block)
    return {"entity": user_id, "recommendation": recommendation, "reason": reason}


def block_of(content: Mapping[str, Any]) -> tuple[str, str] | None:
    """(user id, "locked" or "suspended") for a rule that blocks, else None."""
    entity, recommendation = content.get("entity"), content.get("recommendation")
    if isinstance(entity, str) and isinstance(recommendation, str) and recommendation in BLOCKS:
        return entity, BLOCKS[recommendation]
    return None


def may_act(block: str | None, action: str) -> bool:
    """Whether a user with this block may take this action (join, send,
    invite, kick, state, create_room, profile, directory, leave, redact
    (their own events), redact_others)."""
    if block == "locked":
        return False
    if block == "suspended":
        return action in SUSPENDED_MAY
    return True


def moderator_view(state: StateMap, event: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """The state as the authorization rules should see it for an event a
    moderator sends: the moderator joined and, unless the event is room state
    other than a membership, with enough power for the action."""
    moderator = event["sender"]
    view = dict(state)
    levels = view.get(POWER_LEVELS_KEY)
    moderating = "state_key" not in event or event["type"] == "m.room.member"
    if levels is not None and moderating:
        needed = max(
            user_level(state, moderator),
            action_level(state, "kick"),
            action_level(state, "ban"),
            action_level(state, "redact"),
        )
        if "state_key" not in event:
            needed = max(needed, event_level(state, event["type"], False))
        elif (edit_level := edit_members_level(state)) is not None:
            # Where members edit the member list, a moderator may remove
            # anyone, the room's admins included, as in the original /api.
            needed = max(needed, edit_level, user_level(state, event["state_key"]))
        content = dict(levels["content"])
        content["users"] = {**content.get("users", {}), moderator: needed}
        view[POWER_LEVELS_KEY] = {**levels, "content": content}
    is_own_membership = event["type"] == "m.room.member" and event.get("state_key") == moderator
    if not is_own_membership:
        view[("m.room.member", moderator)] = {
            "type": "m.room.member",
            "state_key": moderator,
            "sender": moderator,
            "content": {"membership": "join"},
        }
    return view
