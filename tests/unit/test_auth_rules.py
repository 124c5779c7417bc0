# mypy: disable-error-code="arg-type"
# (The tables pass power-level and create-content keys that are not Python
# names, as **{"m.federate": False}: mypy matches such a dict against every
# keyword parameter. One case passes a join rule of the wrong type on purpose.)
"""Room authorization rules (Matrix room version 10) as tables of cases.

Pure functions over small hand-built room states: no database, no server.
Every case names who does what to whom, and either passes or is refused
with a reason that contains the expected words.

The cast of the standard room: Alice created it (100), Bob and Molly are
moderators (50), Carol is an ordinary member (0), Dave is a stranger and
Eve is whatever a case makes her.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from atomchat_server.events.auth import AuthError, auth_state_keys, check, membership_of, redaction_applies
from atomchat_server.events.power_levels import (
    EDIT_MEMBERS,
    action_level,
    default_power_levels,
    edits_members,
    event_level,
    user_level,
)

ROOM = "!room:hs"
ALICE, BOB, MOLLY, CAROL, DAVE, EVE = "@alice:hs", "@bob:hs", "@molly:hs", "@carol:hs", "@dave:hs", "@eve:hs"
PL = "m.room.power_levels"
CREATE_KEY = ("m.room.create", "")


def event(
    sender: str,
    event_type: str,
    content: dict[str, Any] | None = None,
    state_key: str | None = None,
    room_id: str = ROOM,
) -> dict[str, Any]:
    built = {"type": event_type, "room_id": room_id, "sender": sender, "content": content or {}}
    if state_key is not None:
        built["state_key"] = state_key
    return built


def state(sender: str, event_type: str, content: dict[str, Any], state_key: str = "") -> dict[str, Any]:
    return event(sender, event_type, content, state_key)


def member(sender: str, target: str, membership: str, **content: Any) -> dict[str, Any]:
    return state(sender, "m.room.member", {"membership": membership, **content}, target)


def message(sender: str, body: str = "hello") -> dict[str, Any]:
    return event(sender, "m.room.message", {"msgtype": "m.text", "body": body})


def create(sender: str = ALICE, room_id: str = ROOM, **content: Any) -> dict[str, Any]:
    return event(sender, "m.room.create", {"creator": sender, "room_version": "10", **content}, "", room_id)


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    """Apply changes in place; None removes a key."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def levels(users: dict[str, Any] | None = None, events: dict[str, Any] | None = None, **scalars: Any) -> dict:
    """Power levels content of the standard room, with changes."""
    content = default_power_levels(ALICE)
    _merge(content["users"], {BOB: 50, MOLLY: 50, **(users or {})})
    _merge(content["events"], events or {})
    _merge(content, scalars)
    return content


def room(
    join_rule: str | None = "invite",
    members: dict[str, str] | None = None,
    power_levels: dict[str, Any] | None = None,
    with_power_levels: bool = True,
    **create_content: Any,
) -> dict[tuple[str, str], dict[str, Any]]:
    """The standard room's current state. It also holds state no rule reads
    (name, topic), so the cases show that auth_state_keys is enough."""
    events = [create(**create_content)]
    if with_power_levels:
        events.append(state(ALICE, PL, levels() if power_levels is None else power_levels))
    if join_rule is not None:
        events.append(state(ALICE, "m.room.join_rules", {"join_rule": join_rule}))
    events += [state(ALICE, "m.room.name", {"name": "Tea"}), state(ALICE, "m.room.topic", {"topic": "Oolong"})]
    everyone = {ALICE: "join", BOB: "join", MOLLY: "join", CAROL: "join", **(members or {})}
    events += [member(user, user, membership) for user, membership in everyone.items()]
    return {(e["type"], e["state_key"]): e for e in events}


def case(case_id: str, room_state, ev, refusal: str | None = None, redacted: dict[str, Any] | None = None):
    """refusal: None when the event is allowed, else words of the reason."""
    return pytest.param(room_state, ev, redacted, refusal, id=case_id)


ONLY_CREATE = {CREATE_KEY: create()}
PUBLIC = room("public")
INVITE_ONLY = room("invite")

CREATE_CASES = [
    case("create/first-event", {}, create()),
    case("create/without-room-version", {}, event(ALICE, "m.room.create", {"creator": ALICE}, "")),
    case("create/other-room-version", {}, create(room_version="9"), "room version '9' is not supported"),
    case("create/unknown-room-version", {}, create(room_version="13"), "room version '13' is not supported"),
    case("create/second-create", INVITE_ONLY, create(), "only be the first event"),
    case(
        "create/without-creator", {}, event(ALICE, "m.room.create", {"room_version": "10"}, ""), "needs content.creator"
    ),
    case("create/creator-is-not-sender", {}, create(creator=BOB), "must be its sender"),
    case("create/user-of-another-server", {}, create("@mallory:elsewhere"), "server named in its room id"),
    case("create/non-empty-state-key", {}, event(ALICE, "m.room.create", {"creator": ALICE}, "x"), "empty state key"),
    case("create/message-before-create", {}, message(ALICE), "has no m.room.create"),
    case("create/join-before-create", {}, member(ALICE, ALICE, "join"), "has no m.room.create"),
    case("federate/foreign-user-joins-federated-room", PUBLIC, member("@zed:other", "@zed:other", "join")),
    case(
        "federate/foreign-user-joins-unfederated-room",
        room("public", **{"m.federate": False}),
        member("@zed:other", "@zed:other", "join"),
        "not federated",
    ),
    case(
        "federate/local-user-joins-unfederated-room",
        room("public", **{"m.federate": False}),
        member(DAVE, DAVE, "join"),
    ),
]

JOIN_CASES = [
    case("join/creator-right-after-create", ONLY_CREATE, member(ALICE, ALICE, "join")),
    case("join/other-user-right-after-create", ONLY_CREATE, member(BOB, BOB, "join"), "no valid join rule"),
    case(
        "join/creator-after-leaving-invite-only-room",
        room("invite", {ALICE: "leave"}),
        member(ALICE, ALICE, "join"),
        "invite-only",
    ),
    case("join/stranger-public-room", PUBLIC, member(DAVE, DAVE, "join")),
    case("join/stranger-invite-only-room", INVITE_ONLY, member(DAVE, DAVE, "join"), "invite-only"),
    case("join/invited-invite-only-room", room("invite", {DAVE: "invite"}), member(DAVE, DAVE, "join")),
    case("join/member-updates-profile", INVITE_ONLY, member(CAROL, CAROL, "join", displayname="C")),
    case(
        "join/left-member-invite-only-room",
        room("invite", {CAROL: "leave"}),
        member(CAROL, CAROL, "join"),
        "invite-only",
    ),
    case("join/left-member-public-room", room("public", {CAROL: "leave"}), member(CAROL, CAROL, "join")),
    case("join/banned-public-room", room("public", {EVE: "ban"}), member(EVE, EVE, "join"), "is banned"),
    case("join/banned-invite-only-room", room("invite", {EVE: "ban"}), member(EVE, EVE, "join"), "is banned"),
    case("join/on-behalf-of-someone-else", PUBLIC, member(ALICE, DAVE, "join"), "on behalf of someone else"),
    case("join/no-join-rules", room(None), member(DAVE, DAVE, "join"), "no valid join rule"),
    case("join/join-rule-not-a-string", room(["public"]), member(DAVE, DAVE, "join"), "no valid join rule"),
    case("join/private-join-rule", room("private"), member(DAVE, DAVE, "join"), "lets nobody join"),
    case("join/knock-room-invited", room("knock", {DAVE: "invite"}), member(DAVE, DAVE, "join")),
    case("join/knock-room-stranger", room("knock"), member(DAVE, DAVE, "join"), "knocking is not supported"),
    case(
        "join/restricted-room-stranger",
        room("restricted"),
        member(DAVE, DAVE, "join"),
        "restricted joins are not supported",
    ),
    case(
        "join/authorised-via-another-server",
        PUBLIC,
        member(DAVE, DAVE, "join", join_authorised_via_users_server=ALICE),
        "restricted joins are not supported",
    ),
    case("knock/any-room", room("knock"), member(DAVE, DAVE, "knock"), "knocking is not supported"),
    case("member/unknown-membership", PUBLIC, member(DAVE, DAVE, "wibble"), "unknown membership 'wibble'"),
    case("member/without-membership", PUBLIC, state(DAVE, "m.room.member", {}, DAVE), "needs content.membership"),
    case("member/state-key-not-a-user", PUBLIC, member(DAVE, "dave", "join"), "user id as state key"),
]

INVITE_CASES = [
    case("invite/member-at-default-invite-level", INVITE_ONLY, member(CAROL, DAVE, "invite")),
    case(
        "invite/below-invite-level",
        room(power_levels=levels(invite=50)),
        member(CAROL, DAVE, "invite"),
        "invite needs power level 50; @carol:hs has 0",
    ),
    case("invite/at-invite-level", room(power_levels=levels(invite=50)), member(BOB, DAVE, "invite")),
    case("invite/by-stranger", INVITE_ONLY, member(DAVE, EVE, "invite"), "@dave:hs is not in the room"),
    case(
        "invite/by-invited-user",
        room("invite", {DAVE: "invite"}),
        member(DAVE, EVE, "invite"),
        "@dave:hs is not in the room",
    ),
    case("invite/target-already-joined", INVITE_ONLY, member(ALICE, CAROL, "invite"), "already in the room"),
    case("invite/target-banned", room("invite", {EVE: "ban"}), member(ALICE, EVE, "invite"), "is banned"),
    case("invite/target-already-invited", room("invite", {DAVE: "invite"}), member(CAROL, DAVE, "invite")),
    case("invite/target-left", room("invite", {EVE: "leave"}), member(CAROL, EVE, "invite")),
    case(
        "invite/third-party",
        INVITE_ONLY,
        member(ALICE, DAVE, "invite", third_party_invite={"signed": {}}),
        "third-party invites are not supported",
    ),
]

LEAVE_CASES = [
    case("leave/member-leaves", INVITE_ONLY, member(CAROL, CAROL, "leave")),
    case("leave/invited-rejects-invite", room("invite", {DAVE: "invite"}), member(DAVE, DAVE, "leave")),
    case("leave/stranger", INVITE_ONLY, member(DAVE, DAVE, "leave"), "@dave:hs is not in the room"),
    case("leave/already-left", room("invite", {EVE: "leave"}), member(EVE, EVE, "leave"), "not in the room"),
    case(
        "leave/banned-user-unbans-self",
        room("invite", {EVE: "ban"}),
        member(EVE, EVE, "leave"),
        "only an unban lifts a ban",
    ),
    case("kick/moderator-kicks-member", INVITE_ONLY, member(BOB, CAROL, "leave")),
    case(
        "kick/moderator-kicks-equal",
        INVITE_ONLY,
        member(BOB, MOLLY, "leave"),
        "needs more power than the target's: @molly:hs has 50",
    ),
    case("kick/moderator-kicks-admin", INVITE_ONLY, member(BOB, ALICE, "leave"), "needs more power"),
    case("kick/admin-kicks-moderator", INVITE_ONLY, member(ALICE, BOB, "leave")),
    case(
        "kick/member-kicks-member",
        room("invite", {EVE: "join"}),
        member(CAROL, EVE, "leave"),
        "kick needs power level 50; @carol:hs has 0",
    ),
    case(
        "kick/just-below-kick-level",
        room(power_levels=levels(kick=51)),
        member(BOB, CAROL, "leave"),
        "kick needs power level 51",
    ),
    case("kick/exactly-kick-level", room(power_levels=levels(kick=50)), member(BOB, CAROL, "leave")),
    case("kick/rescind-invite", room("invite", {DAVE: "invite"}), member(BOB, DAVE, "leave")),
    case(
        "kick/by-moderator-who-left",
        room("invite", {BOB: "leave"}),
        member(BOB, CAROL, "leave"),
        "@bob:hs is not in the room",
    ),
    case("unban/moderator", room("invite", {EVE: "ban"}), member(BOB, EVE, "leave")),
    case("unban/member", room("invite", {EVE: "ban"}), member(CAROL, EVE, "leave"), "ban needs power level 50"),
    case(
        "unban/kick-level-without-ban-level",
        room("invite", {EVE: "ban"}, levels(kick=0, ban=75)),
        member(BOB, EVE, "leave"),
        "ban needs power level 75",
    ),
    case(
        "unban/ban-level-without-kick-level",
        room("invite", {EVE: "ban"}, levels(kick=75, ban=50)),
        member(BOB, EVE, "leave"),
        "kick needs power level 75",
    ),
    case("unban/banned-equal", room("invite", {MOLLY: "ban"}), member(BOB, MOLLY, "leave"), "needs more power"),
    case("unban/banned-user-rejoins-after-unban", room("public", {EVE: "leave"}), member(EVE, EVE, "join")),
]

BAN_CASES = [
    case("ban/moderator-bans-member", INVITE_ONLY, member(BOB, CAROL, "ban")),
    case("ban/moderator-bans-equal", INVITE_ONLY, member(BOB, MOLLY, "ban"), "needs more power"),
    case("ban/moderator-bans-admin", INVITE_ONLY, member(BOB, ALICE, "ban"), "needs more power"),
    case("ban/admin-bans-moderator", INVITE_ONLY, member(ALICE, BOB, "ban")),
    case("ban/member-bans-member", INVITE_ONLY, member(CAROL, BOB, "ban"), "ban needs power level 50"),
    case("ban/stranger-never-in-room", INVITE_ONLY, member(BOB, DAVE, "ban")),
    case("ban/self", INVITE_ONLY, member(ALICE, ALICE, "ban"), "needs more power"),
    case(
        "ban/by-moderator-not-in-room",
        room("invite", {BOB: "leave"}),
        member(BOB, CAROL, "ban"),
        "@bob:hs is not in the room",
    ),
    case(
        "ban/just-below-ban-level",
        room(power_levels=levels(ban=51)),
        member(BOB, CAROL, "ban"),
        "ban needs power level 51",
    ),
    case("ban/already-banned-again", room("invite", {EVE: "ban"}), member(BOB, EVE, "ban")),
]

# A room made through /api: any member (level 0) may edit the member list,
# removing their equals but nobody above them.
EDITABLE = room("invite", {DAVE: "join"}, levels(users={CAROL: 0, DAVE: 0}, kick=0, **{EDIT_MEMBERS: 0}))
EDIT_MEMBERS_CASES = [
    case("edit-members/member-removes-equal", EDITABLE, member(CAROL, DAVE, "leave")),
    case("edit-members/member-removes-admin", EDITABLE, member(CAROL, ALICE, "leave"), "needs more power"),
    case("edit-members/member-removes-moderator", EDITABLE, member(CAROL, BOB, "leave"), "needs more power"),
    case("edit-members/admin-removes-member", EDITABLE, member(ALICE, CAROL, "leave")),
    case(
        "edit-members/below-the-level",
        room("invite", {DAVE: "join"}, levels(kick=0, **{EDIT_MEMBERS: 10})),
        member(CAROL, DAVE, "leave"),
        "needs more power",
    ),
    case(
        "edit-members/not-in-room",
        room("invite", {CAROL: "leave", DAVE: "join"}, levels(kick=0, **{EDIT_MEMBERS: 0})),
        member(CAROL, DAVE, "leave"),
        "not in the room",
    ),
    case(
        "edit-members/no-unban",
        room("invite", {DAVE: "ban"}, levels(kick=0, **{EDIT_MEMBERS: 0})),
        member(CAROL, DAVE, "leave"),
        "ban needs power level 50",
    ),
    # Without the key, kick level 0 lets a member remove only those below them.
    case(
        "edit-members/kick-0-alone-is-not-enough",
        room("invite", {DAVE: "join"}, levels(kick=0)),
        member(CAROL, DAVE, "leave"),
        "needs more power",
    ),
    case(
        "edit-members/level-must-be-integer",
        INVITE_ONLY,
        state(ALICE, PL, levels(**{EDIT_MEMBERS: "0"})),
        "must be an integer",
    ),
    case(
        "edit-members/member-cannot-add-key",
        room(power_levels=levels(events={PL: 0})),
        state(CAROL, PL, levels(events={PL: 0}, **{EDIT_MEMBERS: 50})),
        "above your level",
    ),
    case(
        "edit-members/moderator-cannot-lower-admins-key",
        room(power_levels=levels(events={PL: 50}, **{EDIT_MEMBERS: 100})),
        state(BOB, PL, levels(events={PL: 50}, **{EDIT_MEMBERS: 0})),
        "cannot change",
    ),
]

NO_POWER_LEVELS = room("invite", with_power_levels=False)
EVENT_CASES = [
    case("message/member", INVITE_ONLY, message(CAROL)),
    case("message/stranger", INVITE_ONLY, message(DAVE), "@dave:hs is not in the room"),
    case("message/invited", room("invite", {DAVE: "invite"}), message(DAVE), "not in the room"),
    case("message/left", room("invite", {CAROL: "leave"}), message(CAROL), "not in the room"),
    case("message/banned", room("invite", {EVE: "ban"}), message(EVE), "not in the room"),
    case(
        "message/below-events-default",
        room(power_levels=levels(events_default=10)),
        message(CAROL),
        "sending m.room.message needs power level 10; @carol:hs has 0",
    ),
    case(
        "message/events-map-beats-default",
        room(power_levels=levels(events_default=10, events={"m.room.message": 0})),
        message(CAROL),
    ),
    case("message/custom-type", INVITE_ONLY, event(CAROL, "org.example.ping", {"n": 1})),
    case(
        "state/member-below-state-default",
        INVITE_ONLY,
        state(CAROL, "m.room.topic", {"topic": "x"}),
        "sending m.room.topic needs power level 50",
    ),
    case("state/moderator-at-state-default", INVITE_ONLY, state(BOB, "m.room.topic", {"topic": "x"})),
    case("state/moderator-names-room", INVITE_ONLY, state(BOB, "m.room.name", {"name": "x"})),
    case(
        "state/moderator-admin-only-type",
        INVITE_ONLY,
        state(BOB, "m.room.history_visibility", {"history_visibility": "joined"}),
        "needs power level 100",
    ),
    case(
        "state/admin-admin-only-type",
        INVITE_ONLY,
        state(ALICE, "m.room.history_visibility", {"history_visibility": "joined"}),
    ),
    case("state/stranger", PUBLIC, state(DAVE, "m.room.topic", {"topic": "x"}), "not in the room"),
    case(
        "state-key/own-user-id",
        room(power_levels=levels(events={"org.example.status": 0})),
        state(CAROL, "org.example.status", {"s": "busy"}, CAROL),
    ),
    case(
        "state-key/other-user-id",
        room(power_levels=levels(events={"org.example.status": 0})),
        state(CAROL, "org.example.status", {"s": "busy"}, BOB),
        "may only be set by that user",
    ),
    case(
        "state-key/admin-other-user-id",
        INVITE_ONLY,
        state(ALICE, "org.example.status", {"s": "busy"}, BOB),
        "may only be set by that user",
    ),
    case("state-key/at-inside-not-first", INVITE_ONLY, state(ALICE, "org.example.status", {}, "x@bob:hs")),
    case(
        "third-party-invite/any",
        INVITE_ONLY,
        state(ALICE, "m.room.third_party_invite", {}, "token"),
        "third-party invites are not supported",
    ),
    case("join-rules/admin-makes-public", INVITE_ONLY, state(ALICE, "m.room.join_rules", {"join_rule": "public"})),
    case(
        "join-rules/member-makes-public",
        INVITE_ONLY,
        state(CAROL, "m.room.join_rules", {"join_rule": "public"}),
        "needs power level 50",
    ),
    case("join-rules/not-a-string", INVITE_ONLY, state(ALICE, "m.room.join_rules", {"join_rule": ["public"]})),
    case(
        "join-rules/knock",
        INVITE_ONLY,
        state(ALICE, "m.room.join_rules", {"join_rule": "knock"}),
        "knocking is not supported",
    ),
    case(
        "join-rules/knock-restricted",
        INVITE_ONLY,
        state(ALICE, "m.room.join_rules", {"join_rule": "knock_restricted"}),
        "not supported",
    ),
    case("no-power-levels/creator-sets-state", NO_POWER_LEVELS, state(ALICE, "m.room.topic", {"topic": "x"})),
    case(
        "no-power-levels/member-sets-state",
        NO_POWER_LEVELS,
        state(BOB, "m.room.topic", {"topic": "x"}),
        "needs power level 50; @bob:hs has 0",
    ),
    case("no-power-levels/member-sends-message", NO_POWER_LEVELS, message(BOB)),
    case("no-power-levels/member-kicks", NO_POWER_LEVELS, member(BOB, CAROL, "leave"), "kick needs power level 50"),
    case("no-power-levels/creator-kicks", NO_POWER_LEVELS, member(ALICE, CAROL, "leave")),
    case("shape/content-not-object", INVITE_ONLY, {**message(CAROL), "content": []}, "content must be an object"),
    case("shape/sender-not-user-id", INVITE_ONLY, {**message(CAROL), "sender": "carol"}, "is not a user id"),
    case("shape/state-key-not-string", INVITE_ONLY, {**message(CAROL), "state_key": 5}, "must be a string"),
    case("shape/state-from-another-room", room("public", room_id="!other:hs"), message(CAROL), "another room"),
]

# Moderators may edit power levels in this room, so the cases can probe
# what the level-change rules let them touch.
MOD_EDITS = {PL: 50}
MOD_ROOM = room(power_levels=levels(events=MOD_EDITS))


def edit(sender: str, users=None, events=None, **scalars: Any) -> dict[str, Any]:
    """A power levels event from ``sender`` changing MOD_ROOM's levels."""
    return state(sender, PL, levels(users=users, events={**MOD_EDITS, **(events or {})}, **scalars))


POWER_LEVEL_CASES = [
    case("pl-type/string-scalar", INVITE_ONLY, state(ALICE, PL, levels(ban="50")), "ban must be an integer"),
    case("pl-type/float-scalar", INVITE_ONLY, state(ALICE, PL, levels(kick=50.0)), "kick must be an integer"),
    case("pl-type/bool-scalar", INVITE_ONLY, state(ALICE, PL, levels(invite=True)), "invite must be an integer"),
    case("pl-type/too-large", INVITE_ONLY, state(ALICE, PL, levels(users_default=2**53)), "must be an integer"),
    case("pl-type/largest-integer", INVITE_ONLY, state(ALICE, PL, levels(users={CAROL: -(2**53) + 1}))),
    case(
        "pl-type/string-user-level",
        INVITE_ONLY,
        state(ALICE, PL, levels(users={CAROL: "10"})),
        "users['@carol:hs'] must be an integer",
    ),
    case(
        "pl-type/string-event-level",
        INVITE_ONLY,
        state(ALICE, PL, levels(events={"m.room.name": "50"})),
        "events['m.room.name'] must be an integer",
    ),
    case(
        "pl-type/string-notification-level",
        INVITE_ONLY,
        state(ALICE, PL, levels(notifications={"room": "50"})),
        "notifications['room'] must be an integer",
    ),
    case("pl-type/users-not-object", INVITE_ONLY, state(ALICE, PL, {"users": [ALICE]}), "users must be an object"),
    case(
        "pl-type/events-not-object",
        INVITE_ONLY,
        state(ALICE, PL, levels(events=None) | {"events": 5}),
        "events must be an object",
    ),
    case(
        "pl-type/user-key-not-user-id",
        INVITE_ONLY,
        state(ALICE, PL, levels(users={"carol": 10})),
        "not a user id: 'carol'",
    ),
    case(
        "pl-type/string-level-in-first-event", NO_POWER_LEVELS, state(ALICE, PL, levels(ban="50")), "must be an integer"
    ),
    case("pl/first-event-by-creator", NO_POWER_LEVELS, state(ALICE, PL, levels())),
    case("pl/first-event-by-member", NO_POWER_LEVELS, state(BOB, PL, levels()), "needs power level 50"),
    case(
        "pl/moderator-without-pl-rights",
        INVITE_ONLY,
        state(BOB, PL, levels(users={CAROL: 10})),
        "sending m.room.power_levels needs power level 100; @bob:hs has 50",
    ),
    case("pl/member-promotes-self", MOD_ROOM, edit(CAROL, users={CAROL: 50}), "needs power level 50"),
    case("pl/moderator-unchanged", MOD_ROOM, edit(BOB)),
    case(
        "pl/moderator-raises-self-above-own",
        MOD_ROOM,
        edit(BOB, users={BOB: 51}),
        "cannot raise @bob:hs to 51, above your level 50",
    ),
    case("pl/moderator-raises-member-to-own-level", MOD_ROOM, edit(BOB, users={CAROL: 50})),
    case("pl/moderator-raises-member-above-own", MOD_ROOM, edit(BOB, users={CAROL: 60}), "cannot raise @carol:hs"),
    case(
        "pl/moderator-lowers-equal",
        MOD_ROOM,
        edit(BOB, users={MOLLY: 0}),
        "cannot change the level of @molly:hs: 50 is not below your level 50",
    ),
    case("pl/moderator-removes-equal", MOD_ROOM, edit(BOB, users={MOLLY: None}), "cannot change the level of"),
    case("pl/moderator-lowers-admin", MOD_ROOM, edit(BOB, users={ALICE: 0}), "cannot change the level of @alice:hs"),
    case("pl/moderator-removes-admin", MOD_ROOM, edit(BOB, users={ALICE: None}), "cannot change the level of"),
    case("pl/moderator-lowers-self", MOD_ROOM, edit(BOB, users={BOB: 10})),
    case("pl/moderator-removes-self", MOD_ROOM, edit(BOB, users={BOB: None})),
    case(
        "pl/moderator-lowers-member",
        room(power_levels=levels(events=MOD_EDITS, users={CAROL: 10})),
        edit(BOB, users={CAROL: 0}),
    ),
    case("pl/admin-demotes-moderator", MOD_ROOM, edit(ALICE, users={BOB: 0})),
    case(
        "pl/admin-demotes-other-admin",
        room(power_levels=levels(events=MOD_EDITS, users={EVE: 100})),
        edit(ALICE, users={EVE: 0}),
        "cannot change the level of @eve:hs: 100 is not below your level 100",
    ),
    case("pl/moderator-lowers-scalar", MOD_ROOM, edit(BOB, ban=40)),
    case("pl/moderator-scalar-to-own-level", MOD_ROOM, edit(BOB, invite=50)),
    case("pl/moderator-scalar-above-own", MOD_ROOM, edit(BOB, ban=60), "cannot set ban to 60, above your level 50"),
    case("pl/moderator-users-default-above-own", MOD_ROOM, edit(BOB, users_default=51), "cannot set users_default"),
    case("pl/moderator-removes-scalar-at-own-level", MOD_ROOM, edit(BOB, kick=None)),
    case(
        "pl/moderator-removes-scalar-above-own",
        room(power_levels=levels(events=MOD_EDITS, redact=75)),
        edit(BOB, redact=None),
        "cannot change redact: it is 75, above your level 50",
    ),
    case(
        "pl/moderator-lowers-scalar-above-own",
        room(power_levels=levels(events=MOD_EDITS, redact=75)),
        edit(BOB, redact=50),
        "cannot change redact",
    ),
    case(
        "pl/moderator-lowers-admin-event",
        MOD_ROOM,
        edit(BOB, events={"m.room.history_visibility": 50}),
        "cannot change events['m.room.history_visibility']: it is 100",
    ),
    case(
        "pl/moderator-removes-admin-event",
        MOD_ROOM,
        edit(BOB, events={"m.room.tombstone": None}),
        "cannot change events['m.room.tombstone']",
    ),
    case("pl/moderator-adds-event-at-own-level", MOD_ROOM, edit(BOB, events={"org.example.poll": 50})),
    case(
        "pl/moderator-adds-event-above-own",
        MOD_ROOM,
        edit(BOB, events={"org.example.poll": 51}),
        "cannot set events['org.example.poll'] to 51",
    ),
    case(
        "pl/moderator-raises-own-pl-rule",
        MOD_ROOM,
        edit(BOB, events={PL: 100}),
        "cannot set events['m.room.power_levels'] to 100",
    ),
    case(
        "pl/moderator-notification-above-own",
        MOD_ROOM,
        edit(BOB, notifications={"room": 60}),
        "cannot set notifications['room'] to 60",
    ),
]

REDACTION = "m.room.redaction"


def redaction(sender: str) -> dict[str, Any]:
    return {**event(sender, REDACTION, {"reason": "oops"}), "redacts": "$target"}


def original(sender: str, room_id: str = ROOM) -> dict[str, Any]:
    return {**message(sender), "room_id": room_id, "event_id": "$target"}


REDACTION_CASES = [
    case("redact/own-event", INVITE_ONLY, redaction(CAROL), redacted=original(CAROL)),
    case(
        "redact/others-event-as-member",
        INVITE_ONLY,
        redaction(CAROL),
        "needs power level 50; @carol:hs has 0",
        redacted=original(BOB),
    ),
    case("redact/others-event-at-redact-level", INVITE_ONLY, redaction(BOB), redacted=original(CAROL)),
    case(
        "redact/others-event-below-redact-level",
        room(power_levels=levels(redact=60)),
        redaction(BOB),
        "needs power level 60",
        redacted=original(CAROL),
    ),
    case("redact/unknown-event-as-member", INVITE_ONLY, redaction(CAROL), "not known to be your own"),
    case("redact/unknown-event-as-moderator", INVITE_ONLY, redaction(BOB)),
    case(
        "redact/own-event-after-leaving",
        room("invite", {CAROL: "leave"}),
        redaction(CAROL),
        "@carol:hs is not in the room",
        redacted=original(CAROL),
    ),
    case(
        "redact/own-event-redactions-restricted",
        room(power_levels=levels(events={REDACTION: 50})),
        redaction(CAROL),
        "sending m.room.redaction needs power level 50",
        redacted=original(CAROL),
    ),
    case(
        "redact/event-of-another-room",
        INVITE_ONLY,
        redaction(BOB),
        "in another room",
        redacted=original(CAROL, "!other:hs"),
    ),
]


@pytest.mark.parametrize(
    "room_state, ev, redacted, refusal",
    CREATE_CASES
    + JOIN_CASES
    + INVITE_CASES
    + LEAVE_CASES
    + BAN_CASES
    + EVENT_CASES
    + POWER_LEVEL_CASES
    + REDACTION_CASES
    + EDIT_MEMBERS_CASES,
)
def test_rule(room_state, ev, redacted, refusal):
    # The rules see the same with only the entries auth_state_keys names,
    # which is all that storage loads.
    needed = {key: room_state[key] for key in auth_state_keys(ev) if key in room_state}
    for given in (room_state, needed):
        if refusal is None:
            check(ev, given, redacted_event=redacted)
        else:
            with pytest.raises(AuthError, match=re.escape(refusal)):
                check(ev, given, redacted_event=redacted)


def test_room_creation_sequence_passes_in_order():
    """createRoom's events, each checked against the state the previous ones made."""
    sequence = [
        create(),
        member(ALICE, ALICE, "join"),
        state(ALICE, PL, default_power_levels(ALICE)),
        state(ALICE, "m.room.join_rules", {"join_rule": "invite"}),
        state(ALICE, "m.room.history_visibility", {"history_visibility": "shared"}),
        state(ALICE, "m.room.name", {"name": "Tea"}),
        member(ALICE, BOB, "invite", is_direct=True),
        member(BOB, BOB, "join"),
        message(BOB),
    ]
    current: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in sequence:
        check(ev, current)
        if "state_key" in ev:
            current[(ev["type"], ev["state_key"])] = ev
    with pytest.raises(AuthError, match="only be the first event"):
        check(create(), current)


@pytest.mark.parametrize(
    "room_state, user, expected",
    [
        pytest.param(INVITE_ONLY, ALICE, "join", id="joined"),
        pytest.param(room("invite", {DAVE: "invite"}), DAVE, "invite", id="invited"),
        pytest.param(room("invite", {EVE: "ban"}), EVE, "ban", id="banned"),
        pytest.param(room("invite", {EVE: "leave"}), EVE, "leave", id="left"),
        pytest.param(INVITE_ONLY, DAVE, "leave", id="never-there"),
    ],
)
def test_membership_of(room_state, user, expected):
    assert membership_of(room_state, user) == expected


def test_auth_state_keys():
    assert auth_state_keys(message(CAROL)) == [CREATE_KEY, (PL, ""), ("m.room.member", CAROL)]
    assert auth_state_keys(member(BOB, CAROL, "ban")) == [
        CREATE_KEY,
        (PL, ""),
        ("m.room.member", BOB),
        ("m.room.member", CAROL),
    ]
    assert auth_state_keys(member(BOB, CAROL, "invite")) == [
        CREATE_KEY,
        (PL, ""),
        ("m.room.member", BOB),
        ("m.room.member", CAROL),
        ("m.room.join_rules", ""),
    ]
    assert auth_state_keys(member(DAVE, DAVE, "join")) == [
        CREATE_KEY,
        (PL, ""),
        ("m.room.member", DAVE),
        ("m.room.join_rules", ""),
    ]


@pytest.mark.parametrize(
    "room_state, user, expected",
    [
        pytest.param(ONLY_CREATE, ALICE, 100, id="no-power-levels-creator"),
        pytest.param(ONLY_CREATE, BOB, 0, id="no-power-levels-other"),
        pytest.param(INVITE_ONLY, BOB, 50, id="users-map"),
        pytest.param(INVITE_ONLY, CAROL, 0, id="users-default"),
        pytest.param(room(power_levels=levels(users_default=5)), DAVE, 5, id="users-default-set"),
        pytest.param(room(power_levels={}), ALICE, 0, id="empty-power-levels-creator-loses-power"),
    ],
)
def test_user_level(room_state, user, expected):
    assert user_level(room_state, user) == expected


@pytest.mark.parametrize(
    "room_state, event_type, is_state, expected",
    [
        pytest.param(ONLY_CREATE, "m.room.message", False, 0, id="no-power-levels-message"),
        pytest.param(ONLY_CREATE, "m.room.topic", True, 50, id="no-power-levels-state"),
        pytest.param(INVITE_ONLY, "m.room.name", True, 50, id="events-map"),
        pytest.param(INVITE_ONLY, PL, True, 100, id="events-map-admin"),
        pytest.param(room(power_levels=levels(state_default=20)), "m.room.topic", True, 20, id="state-default"),
        pytest.param(room(power_levels=levels(events_default=7)), "m.room.message", False, 7, id="events-default"),
        pytest.param(room(power_levels={}), "m.room.topic", True, 50, id="empty-power-levels-state"),
    ],
)
def test_event_level(room_state, event_type, is_state, expected):
    assert event_level(room_state, event_type, is_state) == expected


@pytest.mark.parametrize(
    "room_state, action, expected",
    [
        pytest.param(room(power_levels={}), "invite", 0, id="invite-default"),
        pytest.param(room(power_levels={}), "kick", 50, id="kick-default"),
        pytest.param(ONLY_CREATE, "ban", 50, id="ban-without-power-levels"),
        pytest.param(room(power_levels={}), "redact", 50, id="redact-default"),
        pytest.param(room(power_levels=levels(kick=30)), "kick", 30, id="kick-set"),
    ],
)
def test_action_level(room_state, action, expected):
    assert action_level(room_state, action) == expected


@pytest.mark.parametrize(
    "room_state, user, expected",
    [
        (EDITABLE, CAROL, True),
        (EDITABLE, DAVE, True),
        (room(power_levels=levels(**{EDIT_MEMBERS: 50})), CAROL, False),
        (room(power_levels=levels(**{EDIT_MEMBERS: 50})), BOB, True),
        (room(power_levels=levels(**{EDIT_MEMBERS: True})), ALICE, False),  # not a level
        (INVITE_ONLY, ALICE, False),  # a room without the key: nobody, its admin neither
    ],
)
def test_edits_members(room_state, user, expected):
    assert edits_members(room_state, user) is expected


def test_action_level_refuses_unknown_action():
    with pytest.raises(ValueError, match="unknown power level action"):
        action_level(INVITE_ONLY, "mute")


def test_default_power_levels():
    content = default_power_levels(ALICE)
    assert content["users"] == {ALICE: 100}
    assert (content["users_default"], content["events_default"], content["state_default"]) == (0, 0, 50)
    assert (content["ban"], content["kick"], content["redact"], content["invite"]) == (50, 50, 50, 0)
    assert content["notifications"] == {"room": 50}
    for admin_only in (PL, "m.room.history_visibility", "m.room.tombstone", "m.room.server_acl", "m.room.encryption"):
        assert content["events"][admin_only] == 100
    for moderated in ("m.room.name", "m.room.avatar", "m.room.canonical_alias"):
        assert content["events"][moderated] == 50
    # Each call is a fresh copy: createRoom edits it in place.
    content["users"][BOB] = 100
    content["events"]["m.room.name"] = 0
    assert default_power_levels(ALICE)["users"] == {ALICE: 100}
    assert default_power_levels(ALICE)["events"]["m.room.name"] == 50


# Whether an accepted redaction takes effect on its target (the spec's
# "handling redactions"): the redact level in the state it was sent in, or
# a sender of the target's sender's server. Remote servers' users are of
# other.example.
REMOTE_CAROL, REMOTE_DAVE = "@carol:other.example", "@dave:other.example"


@pytest.mark.parametrize(
    ("case_id", "room_state", "sender", "target", "applies"),
    [
        ("own-event", INVITE_ONLY, CAROL, original(CAROL), True),
        ("same-server-other-user", INVITE_ONLY, CAROL, original(DAVE), True),
        ("remote-same-server", INVITE_ONLY, REMOTE_CAROL, original(REMOTE_DAVE), True),
        ("remote-other-server-no-level", INVITE_ONLY, REMOTE_CAROL, original(CAROL), False),
        (
            "moderator-of-other-server",
            room(power_levels=levels(users={REMOTE_CAROL: 50})),
            REMOTE_CAROL,
            original(CAROL),
            True,
        ),
        (
            "below-a-raised-redact-level",
            room(power_levels=levels(users={REMOTE_CAROL: 50}, redact=60)),
            REMOTE_CAROL,
            original(CAROL),
            False,
        ),
        ("another-room", INVITE_ONLY, BOB, original(BOB, "!elsewhere:hs"), False),
    ],
)
def test_redaction_applies(case_id, room_state, sender, target, applies):
    assert redaction_applies(redaction(sender), target, room_state) is applies, case_id


def test_a_received_redaction_is_accepted_whatever_it_names_but_still_needs_its_event_level():
    """Room versions 3 and later take the redact level out of the rules: a
    received redaction is accepted, and applied or not apart."""
    with pytest.raises(AuthError, match="not known to be your own"):
        check(redaction(CAROL), INVITE_ONLY)
    check(redaction(CAROL), INVITE_ONLY, received=True)
    with pytest.raises(AuthError, match="sending m.room.redaction needs power level 50"):
        check(redaction(CAROL), room(power_levels=levels(events={REDACTION: 50})), received=True)
    with pytest.raises(AuthError, match="not in the room"):
        check(redaction(DAVE), INVITE_ONLY, received=True)
