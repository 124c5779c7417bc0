"""Who may put a room in the public directory, what the directory shows,
and what a suspended account may no longer do there.

Publishing and unpublishing (PUT /directory/list/room/{roomId}) need the
room's m.room.canonical_alias level (a moderator's, 50, by default) or a
server moderator; /publicRooms lists only rooms anyone may join or read,
so an invite-only room's name and topic never reach people who cannot
join it. A suspended account cannot create or delete aliases, publish, or
redact others' events.
"""

from __future__ import annotations

from ..support.client import MATRIX, path_param
from ..support.moderation_steps import block, moderator_and, refused
from ..support.room_steps import SERVER, register, room_of


def publish(user, room_id: str, visibility: str = "public", *, status: int = 200):
    return user.call(
        "PUT",
        f"/directory/list/room/{room_id}",
        {"visibility": visibility},
        status=status,
        schema="matrix/empty.response",
    )


async def listed(api) -> list[str]:
    """The room ids /publicRooms shows to anyone, unauthenticated."""
    answer = await api.request("GET", f"{MATRIX}/publicRooms", schema="matrix/publicRooms.response")
    return [entry["room_id"] for entry in answer["chunk"]]


async def visibility(api, room_id: str) -> str:
    answer = await api.request(
        "GET", f"{MATRIX}/directory/list/room/{room_id}", schema="matrix/room_visibility.response"
    )
    return answer["visibility"]


async def test_publishing_needs_the_canonical_alias_level(server, api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(
        alice,
        bob,
        carol,
        preset="public_chat",
        name="Hall",
        topic="secret plans",
        power_level_content_override={"users": {alice.user_id: 100, bob.user_id: 50}},
    )
    # Carol (0) can neither publish nor unpublish; nothing changes.
    answer = await publish(carol, room_id, status=403)
    assert answer["errcode"] == "M_FORBIDDEN" and "m.room.canonical_alias" in answer["error"]
    assert await visibility(api, room_id) == "private"
    await publish(bob, room_id)  # a room moderator may
    assert await visibility(api, room_id) == "public"
    await publish(carol, room_id, "private", status=403)
    assert await visibility(api, room_id) == "public"
    await publish(bob, room_id, "private")
    assert await visibility(api, room_id) == "private"
    # Where the room says so, a member at 0 may.
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    levels["events"]["m.room.canonical_alias"] = 0
    await alice.put_state(room_id, "m.room.power_levels", levels)
    await publish(carol, room_id)
    assert room_id in await listed(api)


async def test_a_server_moderator_publishes_without_joining(server, api):
    mod, alice = await moderator_and(server, api, "alice")
    room_id = await alice.create_room(preset="public_chat", name="Hall")
    await publish(mod, room_id)
    assert await listed(api) == [room_id]
    await publish(mod, room_id, "private")
    assert await listed(api) == []


async def test_the_directory_never_lists_an_invite_only_room(server, api):
    """The issue's case: an invite-only room published (once by a member at
    0, now by its admin) showed its name and topic to anyone."""
    alice, bob = await register(api, "alice", "bob")
    hidden = await room_of(alice, bob, name="Secret room", topic="the plan")
    await publish(bob, hidden, status=403)
    await publish(alice, hidden)
    assert await visibility(api, hidden) == "public"  # published, yet unlisted while invite-only
    answer = await api.request("GET", f"{MATRIX}/publicRooms", schema="matrix/publicRooms.response")
    assert answer.body == {"chunk": []}
    answer = await alice.call(
        "POST", "/publicRooms", {"filter": {"generic_search_term": "Secret"}}, schema="matrix/publicRooms.response"
    )
    assert answer.body == {"chunk": []}
    # Readable by anyone, or joinable by anyone: then it is listed.
    await alice.put_state(hidden, "m.room.history_visibility", {"history_visibility": "world_readable"})
    assert await listed(api) == [hidden]
    await alice.put_state(hidden, "m.room.history_visibility", {"history_visibility": "shared"})
    assert await listed(api) == []
    await alice.put_state(hidden, "m.room.join_rules", {"join_rule": "public"})
    assert await listed(api) == [hidden]


async def test_a_suspended_account_cannot_touch_the_directory_or_redact_others(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await room_of(alice, bob, preset="public_chat")
    alias = f"#mine:{SERVER}"
    await alice.call(
        "PUT", f"/directory/room/{path_param(alias)}", {"room_id": room_id}, schema="matrix/empty.response"
    )
    theirs = await bob.say(room_id, "bob's")
    own = await alice.say(room_id, "alice's")
    await block(mod, alice, "suspend")
    for method, path, body in (
        ("PUT", f"/directory/room/{path_param(f'#other:{SERVER}')}", {"room_id": room_id}),
        ("DELETE", f"/directory/room/{path_param(alias)}", None),
        ("PUT", f"/directory/list/room/{room_id}", {"visibility": "public"}),
        ("PUT", f"/rooms/{room_id}/redact/{path_param(theirs)}/r1", {}),
    ):
        await refused(alice, method, path, body, status=403, errcode="M_USER_SUSPENDED")
    assert await visibility(api, room_id) == "private"
    assert (await api.request("GET", f"{MATRIX}/directory/room/{path_param(alias)}", schema="matrix/alias.response"))[
        "room_id"
    ] == room_id
    # Their own events they may still redact, as the specification recommends.
    await alice.redact(room_id, own)
    await block(mod, alice, "suspend", on=False)
    await publish(alice, room_id)
