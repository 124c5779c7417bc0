"""POST /createRoom: presets, the options that shape a new room, and the
initial events in the order the Matrix specification gives."""

import asyncio

import pytest

from ..support.room_steps import SERVER, register


async def timeline(user, room_id):
    """The whole room from its first event, oldest first."""
    events, _ = await user.all_messages(room_id, limit=100, dir="f")
    return events


async def power_levels(user, room_id):
    return (await user.get_state(room_id, "m.room.power_levels")).body


async def test_initial_events_come_in_the_spec_order(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await alice.create_room(
        room_version="10",
        preset="private_chat",
        name="Lounge",
        topic="Chat and tea",
        room_alias_name="lounge",
        invite=[bob.user_id, carol.user_id],
        is_direct=True,
        creation_content={"m.federate": False},
        initial_state=[
            {"type": "org.example.colour", "state_key": "wall", "content": {"colour": "teal"}},
            {"type": "org.example.colour", "content": {"colour": "grey"}},
        ],
    )
    events = await timeline(alice, room_id)
    assert [(e["type"], e.get("state_key")) for e in events] == [
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.canonical_alias", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("org.example.colour", "wall"),
        ("org.example.colour", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", bob.user_id),
        ("m.room.member", carol.user_id),
    ]
    assert {e["sender"] for e in events} == {alice.user_id}
    assert {e["room_id"] for e in events} == {room_id}
    create = events[0]["content"]
    assert create == {"m.federate": False, "creator": alice.user_id, "room_version": "10"}
    assert events[1]["content"]["membership"] == "join"
    assert events[3]["content"] == {"alias": f"#lounge:{SERVER}"}
    assert [e["content"] for e in events[7:11]] == [
        {"colour": "teal"},
        {"colour": "grey"},
        {"name": "Lounge"},
        {"topic": "Chat and tea"},
    ]
    for invite in events[11:]:
        assert invite["content"]["membership"] == "invite"
        assert invite["content"]["is_direct"] is True
    assert room_id.endswith(":" + SERVER)
    assert await alice.joined_rooms() == [room_id]


@pytest.mark.parametrize(
    "preset, join_rule, guest_access",
    [
        ("private_chat", "invite", "can_join"),
        ("trusted_private_chat", "invite", "can_join"),
        ("public_chat", "public", "forbidden"),
    ],
)
async def test_presets(api, preset, join_rule, guest_access):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset=preset, invite=[bob.user_id], room_version="10")
    assert (await alice.get_state(room_id, "m.room.join_rules")).body == {"join_rule": join_rule}
    assert (await alice.get_state(room_id, "m.room.history_visibility")).body == {"history_visibility": "shared"}
    assert (await alice.get_state(room_id, "m.room.guest_access")).body == {"guest_access": guest_access}
    levels = await power_levels(alice, room_id)
    expected_users = {alice.user_id: 100}
    if preset == "trusted_private_chat":
        expected_users[bob.user_id] = 100  # invitees are the creator's peers
    assert levels["users"] == expected_users
    assert (levels["users_default"], levels["events_default"], levels["state_default"]) == (0, 0, 50)
    assert (levels["kick"], levels["ban"], levels["redact"], levels["invite"]) == (50, 50, 50, 0)
    assert levels["events"]["m.room.power_levels"] == 100
    # The room is not listed in the directory unless asked.
    visibility = await api.request(
        "GET", f"/_matrix/client/v3/directory/list/room/{room_id}", schema="matrix/room_visibility.response"
    )
    assert visibility.body == {"visibility": "private"}


async def test_preset_follows_visibility_when_not_given(api):
    (alice,) = await register(api, "alice")
    for visibility, join_rule in (("public", "public"), ("private", "invite"), (None, "invite")):
        room_id = await alice.create_room(**({"visibility": visibility} if visibility else {}))
        assert (await alice.get_state(room_id, "m.room.join_rules")).body == {"join_rule": join_rule}
        answer = await api.request(
            "GET", f"/_matrix/client/v3/directory/list/room/{room_id}", schema="matrix/room_visibility.response"
        )
        assert answer["visibility"] == (visibility or "private")


async def test_initial_state_overrides_the_preset_and_name_overrides_initial_state(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room(
        preset="public_chat",
        name="From the name field",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
            {"type": "m.room.name", "content": {"name": "From initial_state"}},
        ],
    )
    events = await timeline(alice, room_id)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.guest_access",
        "m.room.history_visibility",
        "m.room.name",
        "m.room.name",
    ]
    visibility = await alice.get_state(room_id, "m.room.history_visibility")
    assert visibility.body == {"history_visibility": "world_readable"}
    assert (await alice.get_state(room_id, "m.room.join_rules")).body == {"join_rule": "public"}
    assert (await alice.get_state(room_id, "m.room.name")).body == {"name": "From the name field"}


async def test_power_level_content_override(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await alice.create_room(
        room_version="10",
        preset="trusted_private_chat",
        invite=[bob.user_id, carol.user_id],
        power_level_content_override={
            "events_default": 50,
            "users": {alice.user_id: 100, bob.user_id: 50},
            "events": {"m.room.topic": 0},
        },
    )
    levels = await power_levels(alice, room_id)
    # The override replaces whole keys and keeps the rest of the defaults.
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 50}
    assert levels["events"] == {"m.room.topic": 0}
    assert levels["events_default"] == 50
    assert (levels["kick"], levels["ban"], levels["state_default"]) == (50, 50, 50)
    await bob.join(room_id)
    await carol.join(room_id)
    await bob.say(room_id, "moderators may talk")
    refused = await carol.send(room_id, {"msgtype": "m.text", "body": "members may not"}, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    await carol.put_state(room_id, "m.room.topic", {"topic": "but anyone may set the topic"})


async def test_creator_profile_is_in_the_first_join(api):
    (alice,) = await register(api, "alice")
    await alice.call(
        "PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice A."}, schema="matrix/empty.response"
    )
    room_id = await alice.create_room()
    member = await alice.get_state(room_id, "m.room.member", alice.user_id)
    assert member.body == {"membership": "join", "displayname": "Alice A."}


async def test_a_taken_alias_is_refused_and_no_room_is_made(api):
    alice, bob = await register(api, "alice", "bob")
    first = await alice.create_room(room_alias_name="hall")
    taken = await bob.call("POST", "/createRoom", {"room_alias_name": "hall"}, status=400)
    assert taken["errcode"] == "M_ROOM_IN_USE"
    assert await bob.joined_rooms() == []
    resolved = await api.request(
        "GET", f"/_matrix/client/v3/directory/room/%23hall:{SERVER}", schema="matrix/alias.response"
    )
    assert resolved.body == {"room_id": first, "servers": [SERVER]}


async def test_bad_requests_make_no_room(api):
    (alice,) = await register(api, "alice")
    for body, status, errcode in [
        ({"preset": "party"}, 400, "M_BAD_JSON"),
        ({"invite": ["bob"]}, 400, "M_BAD_JSON"),
        ({"invite": [f"@nobody:{SERVER}"]}, 404, "M_NOT_FOUND"),
        ({"room_alias_name": "has:colon"}, 400, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.create", "content": {}}]}, 400, "M_BAD_JSON"),
        (
            {"initial_state": [{"type": "m.room.member", "state_key": "@x:y", "content": {"membership": "join"}}]},
            400,
            "M_BAD_JSON",
        ),
        ({"room_version": "9"}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"name": 5}, 400, "M_BAD_JSON"),
        ({"power_level_content_override": {"users": {"not a user": 10}}}, 400, "M_INVALID_PARAM"),
        ({"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]}, 400, "M_INVALID_PARAM"),
    ]:
        refused = await alice.call("POST", "/createRoom", body, status=status)
        assert refused["errcode"] == errcode, body
    assert await alice.joined_rooms() == []


async def test_create_room_needs_a_token(api):
    missing = await api.request("POST", "/_matrix/client/v3/createRoom", {}, status=401)
    assert missing["errcode"] == "M_MISSING_TOKEN"


async def test_rooms_created_at_once_alike_each_get_their_own_id(api):
    """From version 12 a room's id is its create event's hash: one user
    making many rooms alike at the same moment (a bot, a double click) gets
    a room each, never a 500 for an id already taken."""
    (alice,) = await register(api, "alice")
    room_ids = await asyncio.gather(*(alice.create_room(preset="private_chat") for _ in range(20)))
    assert len(set(room_ids)) == 20
    for room_id in room_ids:
        events = await timeline(alice, room_id)
        assert events[0]["type"] == "m.room.create"
        assert events[0]["room_id"] == room_id
        assert room_id == "!" + events[0]["event_id"][1:]
        assert [e["type"] for e in events].count("m.room.create") == 1
