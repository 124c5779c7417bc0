"""Push rules (events/push_rules.py) as tables of cases: pure functions, no
database. The glob and property cases are the specification's examples
(event_match on content.topic and content.body, event_property_is on
m.federate, event_property_contains on alt_aliases); the rest are ours:
the default rules for messages, notices, mentions, invites, one-to-one
rooms and edits; keywords, muted rooms and senders; display names; edits
of a rule set."""

from __future__ import annotations

from typing import Any

import pytest

from atomchat_server.events import push_rules as rules
from atomchat_server.events.power_levels import POWER_LEVELS_KEY

ME = "@alice:hs"
BOB = "@bob:hs"
MOD = "@mod:hs"
ROOM = "!room:hs"
POWER = {POWER_LEVELS_KEY: {"content": {"users": {MOD: 50}, "users_default": 0}, "sender": MOD}}


def event(
    content: dict[str, Any] | None = None,
    *,
    type: str = "m.room.message",
    sender: str = BOB,
    state_key: str | None = None,
    room_id: str = ROOM,
) -> dict[str, Any]:
    return {
        "event_id": "$e",
        "room_id": room_id,
        "type": type,
        "sender": sender,
        "state_key": state_key,
        "content": content if content is not None else {"msgtype": "m.text", "body": "hello"},
    }


def judge(
    ev: dict[str, Any],
    *,
    members: int = 5,
    stored: dict | None = None,
    user: str = ME,
    display_name: str | None = "Alice Liddell",
) -> rules.Outcome:
    compiled = rules.DEFAULT_COMPILED if stored is None else rules.compile_rules(user, rules.ruleset(user, stored))
    facts = rules.EventFacts(ev, member_count=members, state=POWER)
    return compiled.evaluate(compiled.plan(facts), facts, rules.Member(user, display_name))


def condition_matches(condition: dict[str, Any], ev: dict[str, Any], **facts: Any) -> bool:
    """Whether a one-condition override rule of ours matches the event."""
    stored: dict[str, dict[str, list[dict[str, Any]]]] = {
        "global": {"override": [{"rule_id": "only", "conditions": [condition], "actions": ["notify"]}]}
    }
    stored["global"]["underride"] = [
        {"rule_id": r, "enabled": False, "default": True} for r in (".m.rule.message", ".m.rule.room_one_to_one")
    ]
    return judge(ev, stored=stored, **facts).notify


def outcome_of(result: rules.Outcome) -> str:
    return "highlight" if result.highlight else "notify" if result.notify else "silent"


# -- conditions: the specification's examples ------------------------------------------------

TOPIC = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}


@pytest.mark.parametrize(
    "topic, matches",
    [
        ("Lunch plans", True),
        ("LUNCH", True),
        (" lunch", False),
        ("lunc", False),
        (None, False),
        (42, False),
    ],
)
def test_event_match_globs_the_whole_value_case_insensitively(topic, matches):
    ev = event({"topic": topic}, type="m.room.topic", state_key="")
    assert condition_matches(TOPIC, ev) is matches


def test_event_match_on_an_absent_key_never_matches_even_a_star():
    assert condition_matches({"kind": "event_match", "key": "content.topic", "pattern": "*"}, event()) is False


BODY = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}


@pytest.mark.parametrize(
    "body, matches",
    [
        ("An example event.", True),
        ("exple", True),
        ("An exciting triple-whammy", True),
        ("examples", False),
        ("an_example", False),
        ("EXAMPLE!", True),
        ("ex ample", True),
        ("", False),
    ],
)
def test_event_match_on_the_body_matches_words(body, matches):
    assert condition_matches(BODY, event({"msgtype": "m.text", "body": body})) is matches


@pytest.mark.parametrize("value, matches", [(True, True), ("true", False), (1, False), (None, False)])
def test_event_property_is_compares_exactly(value, matches):
    create = event({"creator": BOB, "m.federate": value, "room_version": "1"}, type="m.room.create", state_key="")
    condition = {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    assert condition_matches(condition, create) is matches


@pytest.mark.parametrize(
    "aliases, matches",
    [
        (["#somewhere:example.org", "#myroom:example.com"], True),
        ([":example.com"], False),
        ("#myroom:example.com", False),
        ([["#myroom:example.com"]], False),
    ],
)
def test_event_property_contains_looks_for_an_exact_array_item(aliases, matches):
    ev = event({"alias": "#somewhere:localhost", "alt_aliases": aliases}, type="m.room.canonical_alias", state_key="")
    condition = {"kind": "event_property_contains", "key": "content.alt_aliases", "value": "#myroom:example.com"}
    assert condition_matches(condition, ev) is matches


@pytest.mark.parametrize(
    "is_, members, matches",
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<3", 2, True),
        ("<3", 3, False),
        (">2", 3, True),
        (">=3", 3, True),
        ("<=1", 2, False),
        ("two", 2, False),
    ],
)
def test_room_member_count(is_, members, matches):
    assert condition_matches({"kind": "room_member_count", "is": is_}, event(), members=members) is matches


@pytest.mark.parametrize(
    "name, body, matches",
    [
        ("Alice Liddell", "ask alice liddell about it", True),
        ("Alice Liddell", "Alice Liddellson", False),
        ("A*", "A* is a search", True),
        ("A*", "Ab", False),
        (None, "anything", False),
        ("", "anything", False),
    ],
)
def test_contains_display_name_looks_for_the_members_own_name(name, body, matches):
    ev = event({"msgtype": "m.text", "body": body})
    assert condition_matches({"kind": "contains_display_name"}, ev, display_name=name) is matches


@pytest.mark.parametrize("sender, matches", [(MOD, True), (BOB, False)])
def test_sender_notification_permission_reads_the_power_levels(sender, matches):
    condition = {"kind": "sender_notification_permission", "key": "room"}
    assert condition_matches(condition, event(sender=sender)) is matches


@pytest.mark.parametrize(
    "condition",
    [
        {"kind": "unknown_kind"},
        {"kind": "event_match", "key": "type"},
        {"kind": "room_member_count"},
        "text",
    ],
)
def test_unknown_or_malformed_conditions_never_match(condition):
    assert condition_matches(condition, event()) is False


def test_keys_with_escaped_dots_and_backslashes():
    ev = event({"a.b": {"c\\d": "x"}, "a": {"b": "y"}})
    assert condition_matches({"kind": "event_match", "key": "content.a\\.b.c\\\\d", "pattern": "x"}, ev)
    assert condition_matches({"kind": "event_match", "key": "content.a.b", "pattern": "y"}, ev)


# -- the default rules -------------------------------------------------------------------------


def mentions(user_ids=(), room=False, body="hi"):
    return {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": list(user_ids), "room": room}}


@pytest.mark.parametrize(
    "ev, members, expected",
    [
        (event(), 5, "notify"),  # .m.rule.message
        (event(), 2, "notify"),  # .m.rule.room_one_to_one
        (event({"msgtype": "m.notice", "body": "bot"}), 5, "silent"),  # suppress_notices
        (event(mentions([ME])), 5, "highlight"),  # is_user_mention
        (event(mentions([BOB])), 5, "notify"),  # someone else's
        (event(mentions(room=True)), 5, "notify"),  # bob may not @room
        (event(mentions(room=True), sender=MOD), 5, "highlight"),  # is_room_mention
        (event({"msgtype": "m.text", "body": "alice: hi"}), 5, "notify"),  # no body mentions
        (event({"algorithm": "m.megolm.v1.aes-sha2"}, type="m.room.encrypted"), 5, "notify"),
        (event({"algorithm": "m.megolm.v1.aes-sha2"}, type="m.room.encrypted"), 2, "notify"),
        (event({"membership": "invite"}, type="m.room.member", state_key=ME), 5, "notify"),  # invite_for_me
        (event({"membership": "invite"}, type="m.room.member", state_key=MOD), 5, "silent"),  # member_event
        (event({"membership": "join"}, type="m.room.member", state_key=BOB), 5, "silent"),
        (event({"body": "new", "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}), 5, "silent"),
        (
            event({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "+1"}}, type="m.reaction"),
            5,
            "silent",
        ),
        (
            event({"body": "moved", "replacement_room": "!new:hs"}, type="m.room.tombstone", state_key=""),
            5,
            "highlight",
        ),
        (event({"name": "x"}, type="m.room.name", state_key=""), 5, "silent"),
        (event({}, type="m.call.invite"), 5, "notify"),
    ],
)
def test_default_rules(ev, members, expected):
    assert outcome_of(judge(ev, members=members)) == expected


def test_default_actions_reach_the_outcome():
    assert (
        judge(event(mentions([ME]))).actions_json
        == '["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]'
    )
    assert judge(event()).actions_json == '["notify"]'


def test_the_default_set_has_the_specifications_rules_in_order():
    listed = rules.ruleset(ME, None)["global"]
    assert [r["rule_id"] for r in listed["override"]] == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.is_room_mention",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in listed["underride"]] == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]
    assert listed["content"] == listed["room"] == listed["sender"] == []
    invite = listed["override"][2]
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key", "pattern": ME}
    assert all(r["default"] for kind in rules.KINDS for r in listed[kind])


# -- the user's own rules ------------------------------------------------------------------------


def edited(*edits) -> dict[str, Any]:
    current = rules.ruleset(ME, None)
    for edit, kwargs in edits:
        edit(current, **kwargs)
    return current


def test_a_keyword_highlights_and_a_muted_room_or_sender_silences():
    keyword = (
        rules.put_rule,
        dict(
            kind="content",
            rule_id="cake",
            body={"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight", "value": True}]},
        ),
    )
    mute_room = (rules.put_rule, dict(kind="room", rule_id=ROOM, body={"actions": []}))
    mute_bot = (rules.put_rule, dict(kind="sender", rule_id="@bot:hs", body={"actions": ["dont_notify"]}))
    stored = edited(keyword)
    assert outcome_of(judge(event({"msgtype": "m.text", "body": "Cake time"}), stored=stored)) == "highlight"
    assert outcome_of(judge(event({"msgtype": "m.text", "body": "cakes"}), stored=stored)) == "notify"
    stored = edited(keyword, mute_room, mute_bot)
    # Content rules come before room rules: a keyword still highlights in a muted room.
    assert outcome_of(judge(event({"msgtype": "m.text", "body": "cake"}), stored=stored)) == "highlight"
    assert outcome_of(judge(event(), stored=stored)) == "silent"
    assert outcome_of(judge(event(room_id="!other:hs"), stored=stored)) == "notify"
    assert outcome_of(judge(event(sender="@bot:hs", room_id="!other:hs"), stored=stored)) == "silent"
    # A mention overrides the muted room (override rules come first).
    assert outcome_of(judge(event(mentions([ME])), stored=stored)) == "highlight"


def test_the_master_rule_silences_everything_and_disabling_a_default_turns_it_off():
    stored = edited((rules.set_enabled, dict(kind="override", rule_id=".m.rule.master", value=True)))
    assert outcome_of(judge(event(mentions([ME])), stored=stored)) == "silent"
    stored = edited((rules.set_enabled, dict(kind="override", rule_id=".m.rule.suppress_notices", value=False)))
    assert outcome_of(judge(event({"msgtype": "m.notice", "body": "bot"}), stored=stored)) == "notify"
    stored = edited((rules.set_actions, dict(kind="underride", rule_id=".m.rule.message", value=[])))
    assert outcome_of(judge(event(), stored=stored)) == "silent"
    assert outcome_of(judge(event(), members=2, stored=stored)) == "notify"


def test_placing_rules_before_and_after_others():
    def put(rule_id, **where):
        return (rules.put_rule, dict(kind="override", rule_id=rule_id, body={"actions": []}, **where))

    listed = edited(put("a"), put("b"), put("c", after="b"), put("d", before="a"), put("a", after="c"))
    ids = [r["rule_id"] for r in listed["global"]["override"]]
    assert ids[:5] == [".m.rule.master", "b", "c", "a", "d"]
    assert ids[5] == ".m.rule.suppress_notices"
    # Stored and read back, the order and the defaults' choices are kept.
    listed["global"]["override"][1]["enabled"] = False
    again = rules.ruleset(ME, listed)
    assert [r["rule_id"] for r in again["global"]["override"]] == ids
    assert again["global"]["override"][1]["enabled"] is False and again["global"]["override"][1]["default"] is False


@pytest.mark.parametrize(
    "edit, kwargs, errcode",
    [
        (rules.put_rule, dict(kind="override", rule_id=".m.rule.message", body={"actions": []}), "M_INVALID_PARAM"),
        (rules.put_rule, dict(kind="override", rule_id="x", body={"actions": []}, before="nope"), "M_NOT_FOUND"),
        (
            rules.put_rule,
            dict(kind="override", rule_id="x", body={"actions": []}, after=".m.rule.master"),
            "M_INVALID_PARAM",
        ),
        (rules.put_rule, dict(kind="content", rule_id="x", body={"actions": []}), "M_MISSING_PARAM"),
        (rules.put_rule, dict(kind="room", rule_id="notaroom", body={"actions": []}), "M_INVALID_PARAM"),
        (rules.put_rule, dict(kind="sender", rule_id="nobody", body={"actions": []}), "M_INVALID_PARAM"),
        (rules.put_rule, dict(kind="override", rule_id="a\\b", body={"actions": []}), "M_INVALID_PARAM"),
        (rules.delete_rule, dict(kind="override", rule_id=".m.rule.master"), "M_INVALID_PARAM"),
        (rules.delete_rule, dict(kind="override", rule_id="nope"), "M_NOT_FOUND"),
        (rules.set_enabled, dict(kind="content", rule_id="nope", value=True), "M_NOT_FOUND"),
        (rules.set_actions, dict(kind="room", rule_id=ROOM, value=[]), "M_NOT_FOUND"),
    ],
)
def test_edits_that_cannot_be_made(edit, kwargs, errcode):
    current = rules.ruleset(ME, None)
    before = repr(current)
    with pytest.raises(rules.RuleError) as refused:
        edit(current, **kwargs)
    assert refused.value.errcode == errcode
    assert repr(current) == before  # nothing changed


def test_one_compiled_default_set_serves_every_member():
    ev = event(mentions([ME, "@carol:hs"]))
    facts = rules.EventFacts(ev, member_count=10, state=POWER)
    plan = rules.DEFAULT_COMPILED.plan(facts)
    results = {
        user: outcome_of(rules.Compiled.evaluate(plan, facts, rules.Member(user)))
        for user in (ME, "@carol:hs", "@dave:hs")
    }
    assert results == {ME: "highlight", "@carol:hs": "highlight", "@dave:hs": "notify"}
