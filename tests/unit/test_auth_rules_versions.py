"""What the authorization rules of room versions 11 and 12 change from
version 10 (tests/unit/test_auth_rules.py holds the version 10 table): the
creator is the create event's sender (11), and (12) the room id is made
from the create event, which has none, and the creators — its sender and
``additional_creators`` — have infinite power.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from atomchat_server.events import signing
from atomchat_server.events.auth import AuthError, auth_event_keys, check, check_auth_events
from atomchat_server.events.power_levels import room_creator, room_creators, user_level
from atomchat_server.events.room_versions import V10, V11, V12

from .test_auth_rules import ALICE, BOB, CAROL, DAVE, EVE, PL, ROOM, event, levels, member

V11_CREATE = event(ALICE, "m.room.create", {"room_version": "11"}, "")


def v12_create(**content: Any) -> dict[str, Any]:
    create = {
        "type": "m.room.create",
        "state_key": "",
        "sender": ALICE,
        "origin_server_ts": 1,
        "content": {"room_version": "12", **content},
        "prev_events": [],
        "auth_events": [],
    }
    return {**create, "event_id": signing.event_id(create, V12)}


CREATE12 = v12_create(additional_creators=[EVE])
ROOM12 = "!" + CREATE12["event_id"][1:]


def in12(
    sender: str, event_type: str, content: dict[str, Any], state_key: str | None = None, room_id: str = ROOM12
) -> dict[str, Any]:
    return event(sender, event_type, content, state_key, room_id)


def room12(
    users: dict[str, int] | None = None, members: dict[str, str] | None = None, create: dict[str, Any] = CREATE12
):
    """A version 12 room: Alice created it with Eve as additional creator,
    Bob is at 100 (the top a power levels event can give), Carol at 0."""
    content = levels(users={ALICE: None, BOB: 100, **(users or {})})
    events = [create, in12(ALICE, PL, content, ""), in12(ALICE, "m.room.join_rules", {"join_rule": "invite"}, "")]
    everyone = {ALICE: "join", BOB: "join", CAROL: "join", EVE: "join", **(members or {})}
    events += [in12(user, "m.room.member", {"membership": m}, user) for user, m in everyone.items()]
    return {(e["type"], e["state_key"]): e for e in events}


V11_ONLY_CREATE = {("m.room.create", ""): V11_CREATE}
V12_ONLY_CREATE = {("m.room.create", ""): CREATE12}


def case(case_id: str, state, ev, refusal: str | None = None):
    return pytest.param(state, ev, refusal, id=case_id)


CASES = [
    case("v11/create-without-creator", {}, V11_CREATE),
    case(
        "v11/create-creator-key-is-ignored",
        {},
        event(ALICE, "m.room.create", {"room_version": "11", "creator": BOB}, ""),
    ),
    case(
        "v11/create-by-user-of-another-server",
        {},
        event("@m:elsewhere", "m.room.create", {"room_version": "11"}, ""),
        "server named in its room id",
    ),
    case("v11/sender-joins-right-after-create", V11_ONLY_CREATE, member(ALICE, ALICE, "join")),
    case(
        "v11/creator-key-does-not-make-a-creator",
        {("m.room.create", ""): event(ALICE, "m.room.create", {"room_version": "11", "creator": BOB}, "")},
        member(BOB, BOB, "join"),
        "no valid join rule",
    ),
    case("v12/create", {}, v12_create()),
    case("v12/create-with-room-id", {}, {**v12_create(), "room_id": ROOM}, "has no room_id"),
    case("v12/create-with-prev-events", {}, {**v12_create(), "prev_events": ["$x"]}, "first event"),
    case("v12/create-additional-creators", {}, v12_create(additional_creators=[BOB, "@x:other"])),
    case(
        "v12/create-additional-creators-not-user-ids", {}, v12_create(additional_creators=["bob"]), "list of user ids"
    ),
    case("v12/create-additional-creators-not-a-list", {}, v12_create(additional_creators=BOB), "list of user ids"),
    case("v12/create-additional-creators-not-strings", {}, v12_create(additional_creators=[1]), "list of user ids"),
    case(
        "v12/sender-joins-right-after-create",
        V12_ONLY_CREATE,
        in12(ALICE, "m.room.member", {"membership": "join"}, ALICE),
    ),
    case("v12/event-in-room-named-by-create", room12(), in12(CAROL, "m.room.message", {"body": "hi"})),
    case(
        "v12/event-with-other-room-id",
        room12(),
        in12(CAROL, "m.room.message", {"body": "hi"}, room_id=ROOM),
        "not the id of the room's m.room.create",
    ),
    case(
        "v12/power-levels-listing-creator",
        room12(),
        in12(ALICE, PL, levels(users={ALICE: 100, BOB: 100}), ""),
        "cannot be listed in power levels",
    ),
    case(
        "v12/power-levels-listing-additional-creator",
        room12(),
        in12(ALICE, PL, levels(users={ALICE: None, BOB: 100, EVE: 100}), ""),
        "cannot be listed",
    ),
    case(
        "v12/creator-sets-any-level",
        room12(),
        in12(EVE, PL, levels(users={ALICE: None, BOB: 100, CAROL: 99}, ban=1000), ""),
    ),
    case("v12/creator-kicks-top-level-user", room12(), in12(ALICE, "m.room.member", {"membership": "leave"}, BOB)),
    case(
        "v12/additional-creator-bans-top-level-user", room12(), in12(EVE, "m.room.member", {"membership": "ban"}, BOB)
    ),
    case(
        "v12/top-level-user-cannot-kick-creator",
        room12(),
        in12(BOB, "m.room.member", {"membership": "leave"}, EVE),
        "needs more power than the target's",
    ),
    case(
        "v12/creator-cannot-kick-other-creator",
        room12(),
        in12(ALICE, "m.room.member", {"membership": "ban"}, EVE),
        "needs more power than the target's",
    ),
    case(
        "v12/top-level-user-capped-at-own-level",
        room12(),
        in12(BOB, PL, levels(users={ALICE: None, BOB: 100, DAVE: 100}, ban=101), ""),
        "above your level 100",
    ),
]


@pytest.mark.parametrize("state, ev, refusal", CASES)
def test_rule(state, ev, refusal):
    if refusal is None:
        check(ev, state)
    else:
        with pytest.raises(AuthError, match=re.escape(refusal)):
            check(ev, state)


def test_creator_join_after_create_by_prev_events():
    """During state resolution the state may hold more than the create
    event; the creator's first join is recognised by its prev_events."""
    state = room12(members={ALICE: "leave"})
    del state[("m.room.join_rules", "")]
    join = {**in12(ALICE, "m.room.member", {"membership": "join"}, ALICE), "prev_events": [CREATE12["event_id"]]}
    check(join, state)
    with pytest.raises(AuthError, match="no valid join rule"):
        check({**join, "prev_events": ["$other"]}, state)


@pytest.mark.parametrize(
    "state, user, level",
    [
        (room12(), ALICE, math.inf),
        (room12(), EVE, math.inf),
        (room12(), BOB, 100),
        (room12(), CAROL, 0),
        (room12(), DAVE, 0),
        (V12_ONLY_CREATE, ALICE, math.inf),
        (V12_ONLY_CREATE, EVE, math.inf),
        (V12_ONLY_CREATE, BOB, 0),
        (V11_ONLY_CREATE, ALICE, 100),
        ({("m.room.create", ""): event(ALICE, "m.room.create", {"room_version": "11", "creator": BOB}, "")}, BOB, 0),
        ({("m.room.create", ""): event(ALICE, "m.room.create", {"room_version": "10", "creator": BOB}, "")}, BOB, 100),
    ],
    ids=[
        "v12-creator",
        "v12-additional-creator",
        "v12-listed",
        "v12-listed-zero",
        "v12-stranger",
        "v12-no-levels-creator",
        "v12-no-levels-additional",
        "v12-no-levels-other",
        "v11-no-levels-sender",
        "v11-creator-key-ignored",
        "v10-creator-key",
    ],
)
def test_user_level_by_version(state, user, level):
    assert user_level(state, user) == level


def test_room_creators():
    assert room_creators(room12()) == {ALICE, EVE}
    assert room_creators(V11_ONLY_CREATE) == {ALICE}
    # Before version 12 additional_creators means nothing.
    v11 = {
        ("m.room.create", ""): event(ALICE, "m.room.create", {"room_version": "11", "additional_creators": [EVE]}, "")
    }
    assert room_creators(v11) == {ALICE} and room_creator(v11) == ALICE
    assert room_creators({}) == set()


CREATE, LEVELS, RULES = ("m.room.create", ""), (PL, ""), ("m.room.join_rules", "")
INVITE_3PID = {"membership": "invite", "third_party_invite": {"display_name": "d", "signed": {"token": "tok"}}}


@pytest.mark.parametrize(
    "ev, selected",
    [
        (event(ALICE, "m.room.create", {}, ""), []),
        (event(CAROL, "m.room.message", {"body": "hi"}), [CREATE, LEVELS, ("m.room.member", CAROL)]),
        (member(CAROL, CAROL, "join"), [CREATE, LEVELS, ("m.room.member", CAROL), RULES]),
        (member(BOB, CAROL, "invite"), [CREATE, LEVELS, ("m.room.member", BOB), ("m.room.member", CAROL), RULES]),
        (member(DAVE, DAVE, "knock"), [CREATE, LEVELS, ("m.room.member", DAVE), RULES]),
        (member(BOB, CAROL, "leave"), [CREATE, LEVELS, ("m.room.member", BOB), ("m.room.member", CAROL)]),
        (member(BOB, CAROL, "ban"), [CREATE, LEVELS, ("m.room.member", BOB), ("m.room.member", CAROL)]),
        (member(CAROL, CAROL, "leave"), [CREATE, LEVELS, ("m.room.member", CAROL)]),
        (
            event(BOB, "m.room.member", INVITE_3PID, CAROL),
            [
                CREATE,
                LEVELS,
                ("m.room.member", BOB),
                ("m.room.member", CAROL),
                RULES,
                ("m.room.third_party_invite", "tok"),
            ],
        ),
        (
            member(DAVE, DAVE, "join", join_authorised_via_users_server=BOB),
            [CREATE, LEVELS, ("m.room.member", DAVE), RULES, ("m.room.member", BOB)],
        ),
        (
            member(DAVE, DAVE, "join", join_authorised_via_users_server=DAVE),
            [CREATE, LEVELS, ("m.room.member", DAVE), RULES],
        ),
    ],
    ids=[
        "create",
        "message",
        "join",
        "invite",
        "knock",
        "kick",
        "ban",
        "own-leave",
        "third-party-invite",
        "restricted-join",
        "restricted-join-authorised-by-self",
    ],
)
def test_auth_events_selection(ev, selected):
    assert auth_event_keys(ev, V10) == auth_event_keys(ev, V11) == selected
    assert auth_event_keys(ev, V12) == [key for key in selected if key != CREATE]


def _auth(event_type: str, state_key: str, room_id: str = ROOM) -> dict[str, Any]:
    return event(ALICE, event_type, {}, state_key, room_id)


@pytest.mark.parametrize(
    "version, ev, auth_events, refusal",
    [
        (
            V10,
            member(CAROL, CAROL, "join"),
            [_auth("m.room.create", ""), _auth(PL, ""), _auth("m.room.join_rules", "")],
            None,
        ),
        (V10, member(CAROL, CAROL, "join"), [], None),
        (V10, member(CAROL, CAROL, "join"), [_auth(PL, ""), _auth(PL, "")], "two events for"),
        (V10, member(CAROL, CAROL, "leave"), [_auth("m.room.join_rules", "")], "does not use"),
        (V10, member(CAROL, CAROL, "join"), [_auth("m.room.name", "")], "does not use"),
        (V10, member(CAROL, CAROL, "join"), [_auth(PL, "", "!other:hs")], "belongs to another room"),
        (V12, in12(CAROL, "m.room.message", {}), [in12(ALICE, PL, {}, "")], None),
        (V12, in12(CAROL, "m.room.message", {}), [CREATE12], "does not use"),
        (V11, event(ALICE, "m.room.create", {}, ""), [_auth(PL, "")], "does not use"),
    ],
    ids=[
        "selected",
        "none",
        "duplicate",
        "join-rules-for-a-leave",
        "unrelated-state",
        "other-room",
        "v12-without-create",
        "v12-with-create",
        "create-with-auth-events",
    ],
)
def test_check_auth_events(version, ev, auth_events, refusal):
    if refusal is None:
        check_auth_events(ev, auth_events, version)
    else:
        with pytest.raises(AuthError, match=refusal):
            check_auth_events(ev, auth_events, version)
