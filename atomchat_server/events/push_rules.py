"""Push rules: a user's rule set, its edits, and deciding which events notify whom.

Pure functions, no I/O. A user's rules are kept as the rule set a client
reads (``{"global": {kind: [rule, ...]}}``); ``ruleset`` lays the server's
default rules over whatever was stored, so new or changed defaults reach
every user while their own choices (extra rules, and the ``enabled`` and
``actions`` of default rules) are kept.

Evaluation is the hot path: every event is judged for every member of its
room. A rule set is compiled once (``compile_rules``) into conditions that
depend on the event and room alone and conditions that depend on the
member (their id, display name). For one event, ``Compiled.plan``
settles the event-level conditions once and leaves, per rule that may still
match, only the member-dependent checks. Every user without rules of their
own shares one compiled default set, and a member such an event does not
name fares as ``NOBODY`` does: an event in a room of fifty costs one plan,
one walk for NOBODY, and one for each member it names or who has rules of
their own.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .power_levels import POWER_LEVELS_KEY, StateMap, state_content, user_level

KINDS = ("override", "content", "room", "sender", "underride")
# Actions older rule sets carry that mean nothing now (ignored, stripped on evaluation).
HISTORICAL_ACTIONS = ("dont_notify", "coalesce")
MASTER = ".m.rule.master"
USER = "[user]"  # stands for the owner's Matrix ID in the defaults below

_SOUND = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> dict[str, str]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


# The server-default rules of the Matrix specification, in priority order.
_DEFAULT_OVERRIDE: list[tuple[str, bool, list[Any], list[Any]]] = [
    (MASTER, False, [], []),
    (".m.rule.suppress_notices", True, [_match("content.msgtype", "m.notice")], []),
    (
        ".m.rule.invite_for_me",
        True,
        [_match("type", "m.room.member"), _match("content.membership", "invite"), _match("state_key", USER)],
        ["notify", _SOUND],
    ),
    (".m.rule.member_event", True, [_match("type", "m.room.member")], []),
    (
        ".m.rule.is_user_mention",
        True,
        [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": USER}],
        ["notify", _SOUND, _HIGHLIGHT],
    ),
    (
        ".m.rule.is_room_mention",
        True,
        [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", _HIGHLIGHT],
    ),
    (".m.rule.tombstone", True, [_match("type", "m.room.tombstone"), _match("state_key", "")], ["notify", _HIGHLIGHT]),
    (".m.rule.reaction", True, [_match("type", "m.reaction")], []),
    (".m.rule.room.server_acl", True, [_match("type", "m.room.server_acl"), _match("state_key", "")], []),
    (
        ".m.rule.suppress_edits",
        True,
        [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}],
        [],
    ),
]
# The specification (v1.17) has dropped the content rule that matched the
# user's localpart in bodies: mentions are m.mentions now. Content rules are
# the user's keywords.
_DEFAULT_CONTENT: list[tuple[str, bool, str, list[Any]]] = []
_DEFAULT_UNDERRIDE: list[tuple[str, bool, list[Any], list[Any]]] = [
    (".m.rule.call", True, [_match("type", "m.call.invite")], ["notify", {"set_tweak": "sound", "value": "ring"}]),
    (
        ".m.rule.encrypted_room_one_to_one",
        True,
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
        ["notify", _SOUND],
    ),
    (
        ".m.rule.room_one_to_one",
        True,
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
        ["notify", _SOUND],
    ),
    (".m.rule.message", True, [_match("type", "m.room.message")], ["notify"]),
    (".m.rule.encrypted", True, [_match("type", "m.room.encrypted")], ["notify"]),
]


class RuleError(ValueError):
    """An edit that cannot be made; ``errcode`` says why (M_NOT_FOUND, M_INVALID_PARAM...)."""

    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode


def _fill(value: Any, user_id: str) -> Any:
    """A default rule's parts with the owner's id put in."""
    if isinstance(value, str):
        return value.replace(USER, user_id)
    if isinstance(value, list):
        return [_fill(item, user_id) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, user_id) for key, item in value.items()}
    return value


def default_rules(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The server-default rules of ``user_id``, by kind."""
    rules: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for rule_id, enabled, conditions, actions in _DEFAULT_OVERRIDE:
        rules["override"].append(
            {
                "rule_id": rule_id,
                "default": True,
                "enabled": enabled,
                "conditions": _fill(conditions, user_id),
                "actions": copy.deepcopy(actions),
            }
        )
    for rule_id, enabled, pattern, actions in _DEFAULT_CONTENT:
        rules["content"].append(
            {
                "rule_id": rule_id,
                "default": True,
                "enabled": enabled,
                "pattern": pattern,
                "actions": copy.deepcopy(actions),
            }
        )
    for rule_id, enabled, conditions, actions in _DEFAULT_UNDERRIDE:
        rules["underride"].append(
            {
                "rule_id": rule_id,
                "default": True,
                "enabled": enabled,
                "conditions": _fill(conditions, user_id),
                "actions": copy.deepcopy(actions),
            }
        )
    return rules


def _stored_rules(stored: Mapping[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    rules = ((stored or {}).get("global") or {}).get(kind) or []
    return [rule for rule in rules if isinstance(rule, dict) and isinstance(rule.get("rule_id"), str)]


def ruleset(user_id: str, stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's whole rule set: ``.m.rule.master`` first, then their own
    rules in their order, then the other server defaults, each default with
    the ``enabled`` and ``actions`` the user last gave it."""
    defaults = default_rules(user_id)
    merged: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        own = _stored_rules(stored, kind)
        chosen = {rule["rule_id"]: rule for rule in own if rule["rule_id"].startswith(".")}
        for rule in defaults[kind]:
            previous = chosen.get(rule["rule_id"])
            if previous is not None:
                rule["enabled"] = bool(previous.get("enabled", rule["enabled"]))
                if isinstance(previous.get("actions"), list):
                    rule["actions"] = previous["actions"]
        custom = [{**rule, "default": False} for rule in own if not rule["rule_id"].startswith(".")]
        head = [rule for rule in defaults[kind] if rule["rule_id"] == MASTER]
        merged[kind] = head + custom + [rule for rule in defaults[kind] if rule["rule_id"] != MASTER]
    return {"global": merged}


def find_rule(rules: Mapping[str, Any], kind: str, rule_id: str) -> dict[str, Any]:
    for rule in rules["global"][kind]:
        if rule["rule_id"] == rule_id:
            return rule
    raise RuleError("M_NOT_FOUND", f"No push rule {kind}/{rule_id}")


def put_rule(
    rules: dict[str, Any],
    kind: str,
    rule_id: str,
    body: Mapping[str, Any],
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """Adds or replaces a rule of the user's own (a rule set changed in place,
    also returned). ``before``/``after`` place it next to another rule of
    theirs; a replaced rule keeps its place unless told otherwise."""
    if rule_id.startswith("."):
        raise RuleError("M_INVALID_PARAM", "Server-default rules cannot be replaced; change 'enabled' or 'actions'")
    if "\\" in rule_id or not rule_id:
        raise RuleError("M_INVALID_PARAM", "A rule id may not be empty or contain a backslash")
    rule: dict[str, Any] = {"rule_id": rule_id, "default": False, "enabled": True, "actions": list(body["actions"])}
    if kind == "content":
        if not isinstance(body.get("pattern"), str):
            raise RuleError("M_MISSING_PARAM", "A content rule needs a 'pattern'")
        rule["pattern"] = body["pattern"]
    elif kind in ("override", "underride"):
        rule["conditions"] = list(body.get("conditions") or [])
    elif kind == "room" and not rule_id.startswith("!"):
        raise RuleError("M_INVALID_PARAM", "A room rule's id is the room's id")
    elif kind == "sender" and not rule_id.startswith("@"):
        raise RuleError("M_INVALID_PARAM", "A sender rule's id is the sender's user id")
    listed = rules["global"][kind]
    position = next((index for index, old in enumerate(listed) if old["rule_id"] == rule_id), None)
    if position is not None:
        rule["enabled"] = listed[position].get("enabled", True)
        del listed[position]
    anchor = before if before is not None else after
    if anchor is not None:
        if anchor.startswith("."):
            raise RuleError("M_INVALID_PARAM", "Rules cannot be placed relative to server-default rules")
        index = next((index for index, old in enumerate(listed) if old["rule_id"] == anchor), None)
        if index is None:
            raise RuleError("M_NOT_FOUND", f"No push rule {kind}/{anchor} to place this one next to")
        position = index if before is not None else index + 1
    if position is None:
        # New rules go first among the user's own (highest priority), as servers commonly do.
        position = next((index for index, old in enumerate(listed) if old["rule_id"] != MASTER), len(listed))
    listed.insert(position, rule)
    return rules


def delete_rule(rules: dict[str, Any], kind: str, rule_id: str) -> dict[str, Any]:
    rule = find_rule(rules, kind, rule_id)
    if rule.get("default"):
        raise RuleError("M_INVALID_PARAM", "Server-default rules cannot be deleted")
    rules["global"][kind].remove(rule)
    return rules


def set_enabled(rules: dict[str, Any], kind: str, rule_id: str, value: bool) -> dict[str, Any]:
    find_rule(rules, kind, rule_id)["enabled"] = value
    return rules


def set_actions(rules: dict[str, Any], kind: str, rule_id: str, value: list[Any]) -> dict[str, Any]:
    find_rule(rules, kind, rule_id)["actions"] = list(value)
    return rules


# -- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a matching rule does for one member: notify (and highlight) or not."""

    notify: bool
    highlight: bool
    actions_json: str  # the rule's actions without historical ones, as stored for /notifications


SILENT = Outcome(False, False, "[]")


def outcome(actions: list[Any]) -> Outcome:
    kept = [action for action in actions if action not in HISTORICAL_ACTIONS]
    highlight = any(
        isinstance(action, dict) and action.get("set_tweak") == "highlight" and action.get("value", True) is True
        for action in kept
    )
    notify = "notify" in kept
    return Outcome(notify, highlight and notify, json.dumps(kept, separators=(",", ":")))


@dataclass(frozen=True)
class Member:
    user_id: str
    display_name: str | None = None


# A member with the default rules whom no event can name (event bodies hold
# no NUL): their outcome is every such member's, stored once per event.
NOBODY = Member("\x00nobody")


def named_users(event: Mapping[str, Any]) -> list[str]:
    """The users an event names, who may fare otherwise than NOBODY: those
    in its m.mentions, and the user an invite is for."""
    content = event.get("content")
    if not isinstance(content, dict):  # events are decoded JSON; cheaper than the Mapping ABC
        return []
    named = []
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict) and isinstance(mentions.get("user_ids"), list):
        named = [user for user in mentions["user_ids"] if isinstance(user, str)]
    if (
        event.get("type") == "m.room.member"
        and content.get("membership") == "invite"
        and isinstance(event.get("state_key"), str)
    ):
        named.append(event["state_key"])
    return named


class EventFacts:
    """One event's properties as push rules read them (dot-separated paths,
    ``\\.`` for a dot inside a key), with its room's member count and the
    sender's power, made once per event."""

    def __init__(self, event: Mapping[str, Any], *, member_count: int, state: StateMap) -> None:
        self.event = event
        self.member_count = member_count
        self._state = state
        self._sender_level: float | None = None  # a creator's level is infinite
        content = event.get("content")
        body = content.get("body") if isinstance(content, dict) else None
        self.body = body if isinstance(body, str) else None
        self.memo: dict[int, bool] = {}  # event-level condition results, by condition
        self._values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        """The value at a dot-separated path (looked up once per event and key)."""
        found = self._values.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        value: Any = self.event
        for part in _split_key(key):
            # Events are plain dicts (decoded JSON): isinstance on dict is far
            # cheaper than on the Mapping ABC, and this runs for every rule.
            if not isinstance(value, dict) or part not in value:
                value = _ABSENT
                break
            value = value[part]
        self._values[key] = value
        return value

    def sender_may(self, notification: str) -> bool:
        if self._sender_level is None:
            self._sender_level = user_level(self._state, self.event["sender"])
        levels = state_content(self._state, POWER_LEVELS_KEY).get("notifications")
        needed = levels.get(notification, 50) if isinstance(levels, Mapping) else 50
        return isinstance(needed, int) and self._sender_level >= needed


_ABSENT = object()
_UNKNOWN = object()


@lru_cache(maxsize=256)
def _split_key(key: str) -> tuple[str, ...]:
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char if char in ".\\" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current) + ("\\" if escaped else ""))
    return tuple(parts)


_WORD = "A-Za-z0-9_"


@lru_cache(maxsize=4096)
def glob_regex(pattern: str, words: bool = False, literal: bool = False) -> re.Pattern:
    """A glob (``*`` any run, ``?`` one character; with ``literal`` plain
    text) as a case-insensitive regular expression: matching a whole value,
    or with ``words`` any part of one that starts and ends at word
    boundaries (content.body)."""
    if literal:
        body = re.escape(pattern)
    else:
        body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        return re.compile(f"(?<![{_WORD}]){body}(?![{_WORD}])", re.IGNORECASE | re.DOTALL)
    return re.compile(f"{body}\\Z", re.IGNORECASE | re.DOTALL)


def _glob_matches(pattern: str, value: str, words: bool) -> bool:
    regex = glob_regex(pattern, words)
    return (regex.search(value) if words else regex.match(value)) is not None


def _same(a: Any, b: Any) -> bool:
    """Exact JSON equality of scalars: true is not 1, "1" is not 1."""
    return type(a) is type(b) and a == b and isinstance(a, (str, int, bool, type(None)))


_MEMBER_COUNT = re.compile(r"\s*(==|<=|>=|<|>)?\s*([0-9]+)\s*\Z")
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}

EventCheck = Callable[[EventFacts], bool]
MemberCheck = Callable[[EventFacts, Member], bool]


def _never(*_args: Any) -> bool:
    return False


def _compile_condition(condition: Any, owner: str) -> tuple[EventCheck | None, MemberCheck | None]:
    """One condition as an event-level check or a member-level one. Values
    naming the owner (their id) become
    checks against whichever member is evaluated, so the same compiled rules
    serve every member who has them. Unknown or malformed conditions never match."""
    if not isinstance(condition, Mapping):
        return _never, None
    kind = condition.get("kind")
    key = condition.get("key")
    if kind == "event_match" and isinstance(key, str) and isinstance(condition.get("pattern"), str):
        pattern = condition["pattern"]
        words = key == "content.body"
        if pattern == owner and not words:
            return (
                None,
                lambda facts, member: (
                    isinstance(value := facts.get(key), str) and value.lower() == member.user_id.lower()
                ),
            )
        if not words and "*" not in pattern and "?" not in pattern:
            lowered = pattern.lower()  # no glob: a plain comparison, the common case
            return (lambda facts: isinstance(value := facts.get(key), str) and value.lower() == lowered), None
        return (lambda facts: isinstance(value := facts.get(key), str) and _glob_matches(pattern, value, words)), None
    if kind == "event_property_is" and isinstance(key, str) and "value" in condition:
        expected = condition["value"]
        if expected == owner and isinstance(expected, str):
            return None, lambda facts, member: _same(facts.get(key), member.user_id)
        return (lambda facts: _same(facts.get(key), expected)), None
    if kind == "event_property_contains" and isinstance(key, str) and "value" in condition:
        expected = condition["value"]
        if expected == owner and isinstance(expected, str):
            return (
                None,
                lambda facts, member: (
                    isinstance(found := facts.get(key), list) and any(_same(item, member.user_id) for item in found)
                ),
            )
        return (
            lambda facts: isinstance(found := facts.get(key), list) and any(_same(item, expected) for item in found)
        ), None
    if kind == "contains_display_name":
        return None, _contains_display_name
    if kind == "room_member_count" and isinstance(condition.get("is"), str):
        parsed = _MEMBER_COUNT.match(condition["is"])
        if parsed is None:
            return _never, None
        compare, number = _COMPARE[parsed.group(1) or "=="], int(parsed.group(2))
        return (lambda facts: compare(facts.member_count, number)), None
    if kind == "sender_notification_permission" and isinstance(key, str):
        return (lambda facts: facts.sender_may(key)), None
    return _never, None


def _contains_display_name(facts: EventFacts, member: Member) -> bool:
    name = member.display_name
    return bool(name) and facts.body is not None and glob_regex(name, True, True).search(facts.body) is not None


@dataclass(frozen=True)
class _Rule:
    event_checks: tuple[EventCheck, ...]
    member_checks: tuple[MemberCheck, ...]
    outcome: Outcome


class Compiled:
    """A rule set ready to evaluate. ``plan`` is per event; ``evaluate`` per member."""

    def __init__(self, rules: tuple[_Rule, ...]) -> None:
        self._rules = rules

    def plan(self, facts: EventFacts) -> tuple[tuple[tuple[MemberCheck, ...], Outcome], ...]:
        """The rules that may still match this event, reduced to their member
        checks, up to the first one that matches whoever the member is."""
        steps = []
        memo = facts.memo
        for rule in self._rules:
            matched = True
            for check in rule.event_checks:
                known = memo.get(id(check))
                if known is None:
                    known = memo[id(check)] = check(facts)
                if not known:
                    matched = False
                    break
            if not matched:
                continue
            steps.append((rule.member_checks, rule.outcome))
            if not rule.member_checks:
                break
        return tuple(steps)

    @staticmethod
    def evaluate(
        plan: tuple[tuple[tuple[MemberCheck, ...], Outcome], ...], facts: EventFacts, member: Member
    ) -> Outcome:
        for checks, result in plan:
            if all(check(facts, member) for check in checks):
                return result
        return SILENT


def compile_rules(user_id: str, rules: Mapping[str, Any]) -> Compiled:
    """Compiles a whole rule set (as ``ruleset`` returns it) of ``user_id``."""
    compiled = []
    for kind in KINDS:
        for rule in rules["global"][kind]:
            if not rule.get("enabled", True):
                continue
            actions = rule.get("actions") if isinstance(rule.get("actions"), list) else []
            checks: list[tuple[EventCheck | None, MemberCheck | None]]
            if kind == "content":
                pattern = rule.get("pattern")
                checks = [
                    _compile_condition(_match("content.body", pattern), user_id)
                    if isinstance(pattern, str)
                    else (_never, None)
                ]
            elif kind == "room":
                checks = [_compile_condition(_match("room_id", rule["rule_id"]), user_id)]
            elif kind == "sender":
                checks = [_compile_condition(_match("sender", rule["rule_id"]), user_id)]
            else:
                conditions = rule.get("conditions")
                checks = [_compile_condition(c, user_id) for c in conditions] if isinstance(conditions, list) else []
            compiled.append(
                _Rule(
                    tuple(c for c, _ in checks if c is not None),
                    tuple(m for _, m in checks if m is not None),
                    outcome(actions),
                )
            )
    return Compiled(tuple(compiled))


# Every user with no rules of their own evaluates with this one compiled set:
# its owner-relative conditions read the member's id, whoever that is.
_DEFAULT_OWNER = "@\x00default:\x00"
DEFAULT_COMPILED = compile_rules(_DEFAULT_OWNER, ruleset(_DEFAULT_OWNER, None))
