"""AtomChat's moderation rules (events/moderation.py) as tables of cases.

Pure functions, no database: what a blocked user may do, how a block is
written as a policy rule and read back, and the moderator's override of the
room authorization rules. The override is judged through the ordinary rules
(events/auth.py) on the view ``moderator_view`` makes, so each case here runs
the real ``check`` on it, with only the state entries the persister loads.

The room is the standard one of test_auth_rules: Alice created it (100), Bob
and Molly are its moderators (50), Carol is a member (0), Dave a stranger.
Mod is a server moderator who is not in the room unless a case says so.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from atomchat_server.events import moderation as rules
from atomchat_server.events.auth import AuthError, auth_state_keys, check

from .test_auth_rules import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    EVE,
    INVITE_ONLY,
    MOLLY,
    PL,
    PUBLIC,
    levels,
    member,
    message,
    original,
    redaction,
    room,
    state,
)

MOD = "@mod:hs"
ACTIONS = ("join", "send", "invite", "state", "create_room", "profile", "leave", "redact")


# -- blocks: what a blocked user may still do ------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_an_unblocked_user_may_do_everything(action):
    assert rules.may_act(None, action)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_locked_user_may_do_nothing(action):
    assert not rules.may_act("locked", action)


@pytest.mark.parametrize(
    "action, allowed",
    [
        ("join", False),
        ("send", False),
        ("invite", False),
        ("state", False),
        ("create_room", False),
        ("profile", False),
        ("leave", True),
        ("redact", True),
    ],
)
def test_a_suspended_user_may_only_leave_and_redact(action, allowed):
    assert rules.may_act("suspended", action) is allowed


# -- blocks as policy rules ------------------------------------------------------------


def test_a_rule_is_keyed_by_the_user_it_names():
    # Not the bare user id: state keys starting with '@' belong to the user they name.
    assert rules.rule_state_key("@bob:hs") == "user:@bob:hs"


@pytest.mark.parametrize("block, recommendation", [("locked", "m.ban"), ("suspended", "org.atomchat.suspend")])
def test_a_block_is_written_as_a_recommendation_and_read_back(block, recommendation):
    content = rules.rule_content("@bob:hs", block, "spam")
    assert content == {"entity": "@bob:hs", "recommendation": recommendation, "reason": "spam"}
    assert rules.block_of(content) == ("@bob:hs", block)


def test_lifting_a_block_empties_the_rule():
    assert rules.rule_content("@bob:hs", None, "forgiven") == {}
    assert rules.block_of({}) is None


@pytest.mark.parametrize(
    "content",
    [
        {"recommendation": "m.ban", "reason": "no entity"},
        {"entity": 42, "recommendation": "m.ban"},
        {"entity": "@bob:hs"},
        {"entity": "@bob:hs", "recommendation": "m.mute"},
        {"entity": "@bob:hs", "recommendation": "org.matrix.mjolnir.ban"},
        {"entity": "@bob:hs", "recommendation": ["m.ban"]},
    ],
    ids=[
        "no-entity",
        "entity-not-a-string",
        "no-recommendation",
        "unknown-recommendation",
        "unstable-ban-recommendation",
        "recommendation-not-a-string",
    ],
)
def test_a_rule_that_is_not_understood_blocks_nobody(content):
    assert rules.block_of(content) is None


# -- the moderator's override of the room rules -------------------------------------------


def case(case_id: str, room_state, ev, refusal: str | None = None, redacted: dict[str, Any] | None = None):
    """refusal: None when the moderator may send the event, else words of the reason."""
    return pytest.param(room_state, ev, redacted, refusal, id=case_id)


def judged(ev: dict[str, Any], room_state, redacted: dict[str, Any] | None = None) -> None:
    """Checks a moderator's event as the persister does: on the view of the
    state entries it loads (those the rules read, and the event's own key)."""
    keys = auth_state_keys(ev) + ([(ev["type"], ev["state_key"])] if "state_key" in ev else [])
    loaded = {key: room_state[key] for key in keys if key in room_state}
    check(ev, rules.moderator_view(loaded, ev), redacted_event=redacted)


# Mod is a member of this room, at level 0.
MOD_MEMBER = room("invite", {MOD: "join"})
# Mod is a member of this room, and one of its admins.
MOD_ADMIN = room("invite", {MOD: "join"}, power_levels=levels(users={MOD: 100}))
# Like the moderation policy room: every member may write rules.
POLICY_LIKE = room("invite", power_levels=levels(users_default=50))

OVERRIDE_CASES = [
    case("post/message", INVITE_ONLY, message(MOD)),
    case("post/announcement-only-room", room("invite", power_levels=levels(events_default=100)), message(MOD)),
    case(
        "post/type-at-admin-level",
        room("invite", power_levels=levels(events={"org.example.alert": 100})),
        {**message(MOD), "type": "org.example.alert"},
    ),
    case("redact/member-event", INVITE_ONLY, redaction(MOD), redacted=original(CAROL)),
    case("redact/admin-event", INVITE_ONLY, redaction(MOD), redacted=original(ALICE)),
    case(
        "redact/redact-level-100",
        room("invite", power_levels=levels(redact=100)),
        redaction(MOD),
        redacted=original(ALICE),
    ),
    case("kick/member", INVITE_ONLY, member(MOD, CAROL, "leave")),
    case("kick/invited", room("invite", {DAVE: "invite"}), member(MOD, DAVE, "leave")),
    case(
        "kick/room-moderator-at-the-kick-level",
        INVITE_ONLY,
        member(MOD, BOB, "leave"),
        "needs more power than the target's",
    ),
    case(
        "kick/room-moderator-below-the-ban-level",
        room("invite", power_levels=levels(ban=75)),
        member(MOD, BOB, "leave"),
    ),
    case(
        "kick/room-moderator-below-the-redact-level",
        room("invite", power_levels=levels(redact=60)),
        member(MOD, BOB, "leave"),
    ),
    case("kick/admin", INVITE_ONLY, member(MOD, ALICE, "leave"), "needs more power than the target's"),
    case(
        "kick/admin-when-kicking-needs-100",
        room("invite", power_levels=levels(kick=100)),
        member(MOD, ALICE, "leave"),
        "needs more power than the target's",
    ),
    case("ban/member", INVITE_ONLY, member(MOD, CAROL, "ban")),
    case("ban/stranger", INVITE_ONLY, member(MOD, DAVE, "ban")),
    case("ban/room-moderator", INVITE_ONLY, member(MOD, MOLLY, "ban"), "needs more power than the target's"),
    case("ban/admin", INVITE_ONLY, member(MOD, ALICE, "ban"), "needs more power than the target's"),
    case("unban/banned", room("invite", {EVE: "ban"}), member(MOD, EVE, "leave")),
    case(
        "unban/banned-at-the-ban-level",
        room("invite", {EVE: "ban"}, power_levels=levels(users={EVE: 50})),
        member(MOD, EVE, "leave"),
        "needs more power than the target's",
    ),
    case("invite/stranger", INVITE_ONLY, member(MOD, DAVE, "invite")),
    case("invite/banned", room("invite", {EVE: "ban"}), member(MOD, EVE, "invite"), "is banned"),
    # The override is for moderating, not for running the room: state stays
    # with the room's own levels, whatever the kick, ban and redact levels are.
    case("state/power-levels", INVITE_ONLY, state(MOD, PL, levels(users={MOD: 100})), "needs power level 100"),
    case("state/power-levels-lowering-kick", INVITE_ONLY, state(MOD, PL, levels(kick=0)), "needs power level 100"),
    case(
        "state/power-levels-when-the-actions-need-100",
        room("invite", power_levels=levels(kick=100, ban=100, redact=100)),
        state(MOD, PL, levels(kick=50, ban=50, redact=50)),
        "needs power level 100",
    ),
    case(
        "state/history-visibility",
        INVITE_ONLY,
        state(MOD, "m.room.history_visibility", {"history_visibility": "world_readable"}),
        "needs power level 100",
    ),
    case(
        "state/history-visibility-when-banning-needs-100",
        room("invite", power_levels=levels(ban=100)),
        state(MOD, "m.room.history_visibility", {"history_visibility": "joined"}),
        "needs power level 100",
    ),
    case(
        "state/join-rules",
        INVITE_ONLY,
        state(MOD, "m.room.join_rules", {"join_rule": "public"}),
        "needs power level 50",
    ),
    case("state/name", INVITE_ONLY, state(MOD, "m.room.name", {"name": "Mine now"}), "needs power level 50"),
    case("state/topic", INVITE_ONLY, state(MOD, "m.room.topic", {"topic": "Mine now"}), "needs power level 50"),
    case("state/as-member-at-level-0", MOD_MEMBER, state(MOD, "m.room.topic", {"topic": "x"}), "needs power level 50"),
    case("state/as-one-of-the-rooms-admins", MOD_ADMIN, state(MOD, PL, levels(users={MOD: 100}, kick=60))),
    case(
        "state/someone-elses-state-key",
        POLICY_LIKE,
        state(MOD, "org.example.note", {}, CAROL),
        "may only be set by that user",
    ),
    case(
        "state/policy-rule-where-members-may-write-rules",
        POLICY_LIKE,
        state(MOD, rules.POLICY_RULE, rules.rule_content(CAROL, "locked", "spam"), rules.rule_state_key(CAROL)),
    ),
    case("member/kick-as-member-at-level-0", MOD_MEMBER, member(MOD, CAROL, "leave")),
    case("member/ban-as-admin-keeps-the-admin-level", MOD_ADMIN, member(MOD, BOB, "ban")),
    # Their own membership follows the ordinary rules.
    case("own/join-invite-only", INVITE_ONLY, member(MOD, MOD, "join"), "invite-only"),
    case("own/join-public", PUBLIC, member(MOD, MOD, "join")),
    case("own/leave-a-room-never-joined", INVITE_ONLY, member(MOD, MOD, "leave"), "is not in the room"),
    case("own/leave-a-joined-room", MOD_MEMBER, member(MOD, MOD, "leave")),
]


@pytest.mark.parametrize("room_state, ev, redacted, refusal", OVERRIDE_CASES)
def test_override(room_state, ev, redacted, refusal):
    if refusal is None:
        judged(ev, room_state, redacted)
    else:
        with pytest.raises(AuthError, match=re.escape(refusal)):
            judged(ev, room_state, redacted)


@pytest.mark.parametrize(
    "room_state, ev, redacted, refusal",
    [p for p in OVERRIDE_CASES if p.values[3] is None and not p.id.startswith(("own/", "state/as-", "member/"))],
)
def test_without_the_override_a_stranger_is_refused_the_same_events(room_state, ev, redacted, refusal):
    loaded = {key: room_state[key] for key in auth_state_keys(ev) if key in room_state}
    with pytest.raises(AuthError):
        check(ev, loaded, redacted_event=redacted)


def test_the_view_changes_only_the_moderators_membership_and_level():
    before = {key: dict(value) for key, value in INVITE_ONLY.items()}
    view = rules.moderator_view(INVITE_ONLY, member(MOD, CAROL, "ban"))
    assert before == INVITE_ONLY, "the state given was changed"
    assert view[("m.room.member", MOD)]["content"] == {"membership": "join"}
    assert view[(PL, "")]["content"]["users"] == {**levels()["users"], MOD: 50}
    changed = {key for key in view if view[key] != INVITE_ONLY.get(key)}
    assert changed == {("m.room.member", MOD), (PL, "")}


def test_the_view_never_lowers_a_moderators_own_level():
    view = rules.moderator_view(MOD_ADMIN, message(MOD))
    assert view[(PL, "")]["content"]["users"][MOD] == 100


def test_a_moderators_own_membership_is_not_made_up():
    view = rules.moderator_view(INVITE_ONLY, member(MOD, MOD, "join"))
    assert ("m.room.member", MOD) not in view
