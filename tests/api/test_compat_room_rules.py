"""Member edits through the original API (/api) obey the room's own rules,
as a Matrix request of the same user would: in rooms made through the
Matrix API a member needs the power to kick (for a removal) or to invite
(for an addition), and an added user is invited, never joined on their
behalf. Rooms made through /api say in their power levels
(org.atomchat.edit_members at 0) that any member may edit the member list.
"""

from __future__ import annotations

from typing import Any

import pytest

from atomchat_server.errors import MatrixError
from atomchat_server.events.drafts import EventDraft
from atomchat_server.events.power_levels import EDIT_MEMBERS

from ..support.compat_client import NOT_ALLOWED, CompatClient, Person, people
from .test_session_revocation import sql


@pytest.fixture
def compat(server):
    return CompatClient(server.base_url)


async def number_of(someone: Person, room_id: str, api) -> int:
    """The /api number of a Matrix room ``someone`` is in, found by its name."""
    name = (await someone.on_matrix(api).get_state(room_id, "m.room.name")).body["name"]
    return next(room["id"] for room in await someone.rooms() if room["name"] == name)


async def membership(someone: Person, api, room_id: str, user: Person) -> str | None:
    state = (await someone.on_matrix(api).state(room_id)).body
    return next(
        (e["content"]["membership"] for e in state if e["type"] == "m.room.member" and e["state_key"] == user.user_id),
        None,
    )


async def matrix_room(owner: Person, api, *members: Person, **create: Any) -> str:
    matrix = owner.on_matrix(api)
    room_id = await matrix.create_room(name="Matrix made", invite=[m.user_id for m in members], **create)
    for member in members:
        await member.on_matrix(api).join(room_id)
    return room_id


async def test_a_member_without_power_cannot_remove_an_admin_through_api(compat, api):
    """The issue's case: kick at 0 and two admins; the member at 0 is
    refused on /api as on the Matrix API, and nothing changes."""
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    room_id = await matrix_room(
        alice,
        api,
        bob,
        carol,
        power_level_content_override={"kick": 0, "users": {alice.user_id: 100, bob.user_id: 100}},
    )
    await carol.on_matrix(api).act("kick", room_id, bob.user_id, status=403)
    number = await number_of(carol, room_id, api)
    before = (await carol.room(number)).body
    for users in ([carol.id, alice.id], [carol.id], [alice.id, bob.id, carol.id, 999]):
        answer = await carol.update_room(number, {"users": users}, status=(403, 400))
        assert answer.body in ({"detail": NOT_ALLOWED}, {"users": ['Invalid pk "999" - object does not exist.']})
    assert (await carol.room(number)).body == before
    assert await membership(alice, api, room_id, bob) == "join"
    # An admin may remove the member, as a kick would.
    assert (await alice.update_room(number, {"users": [alice.id, bob.id]})).body["users"] == [alice.id, bob.id]
    assert await membership(alice, api, room_id, carol) == "leave"


async def test_outside_api_rooms_an_added_user_is_invited_not_joined(compat, api):
    alice, bob, dave = await people(compat, "alice", "bob", "dave")
    room_id = await matrix_room(alice, api, bob, preset="private_chat")
    number = await number_of(bob, room_id, api)
    changed = (await bob.update_room(number, {"users": [alice.id, bob.id, dave.id]})).body
    assert changed["users"] == [alice.id, bob.id]  # dave is no member yet
    assert await membership(alice, api, room_id, dave) == "invite"
    assert room_id not in await dave.on_matrix(api).joined_rooms()
    # Asking again changes nothing; dave chooses to join.
    assert (await bob.update_room(number, {"users": [alice.id, bob.id, dave.id]})).body == changed
    await dave.on_matrix(api).join(room_id)
    assert (await dave.room(number)).body["users"] == [alice.id, bob.id, dave.id]


async def test_outside_api_rooms_adding_needs_the_invite_level(compat, api):
    alice, bob, dave = await people(compat, "alice", "bob", "dave")
    room_id = await matrix_room(alice, api, bob, power_level_content_override={"invite": 50})
    number = await number_of(bob, room_id, api)
    answer = await bob.update_room(number, {"users": [alice.id, bob.id, dave.id]}, status=403)
    assert answer.body == {"detail": NOT_ALLOWED}
    assert await membership(alice, api, room_id, dave) is None


async def test_api_rooms_say_in_their_power_levels_that_members_edit_members(compat, api):
    alice, bob, carol, dave = await people(compat, "alice", "bob", "carol", "dave")
    room = await alice.create_room("Tea", [bob.id, carol.id])
    room_id = next(iter(await bob.on_matrix(api).joined_rooms()))
    levels = (await bob.on_matrix(api).get_state(room_id, "m.room.power_levels")).body
    assert levels[EDIT_MEMBERS] == 0 and levels["users"] == {alice.user_id: 100}
    # Bob (0) adds dave at once and removes carol, his equal, but not alice (100).
    changed = (await bob.update_room(room["id"], {"users": [alice.id, bob.id, dave.id]})).body
    assert changed["users"] == [alice.id, bob.id, dave.id]
    assert (await bob.update_room(room["id"], {"users": [bob.id, dave.id]}, status=403)).body == {"detail": NOT_ALLOWED}
    # The same rule on the Matrix API: bob may not kick alice there either.
    await bob.on_matrix(api).act("kick", room_id, alice.user_id, status=403)
    # Once the room's admin takes the key away, members are back to the Matrix rules.
    del levels[EDIT_MEMBERS]
    await alice.on_matrix(api).put_state(room_id, "m.room.power_levels", levels)
    assert (await bob.update_room(room["id"], {"users": [alice.id, bob.id]}, status=403)).body == {
        "detail": NOT_ALLOWED
    }
    changed = (await bob.update_room(room["id"], {"users": [alice.id, bob.id, dave.id, carol.id]})).body
    assert changed["users"] == [alice.id, bob.id, dave.id]
    assert await membership(alice, api, room_id, carol) == "invite"


async def test_a_join_in_an_added_users_name_is_judged_under_the_lock(compat, api, server):
    """The one event /api writes in someone else's name, an added user's
    join (``added_by``, compat/service.py), is allowed by the persister
    under the stream lock only where the room lets the adder edit its
    member list: written straight to the persister, past the service's own
    check, it is refused with the whole edit, and accepted once the room
    has the level."""
    alice, bob, dave = await people(compat, "alice", "bob", "dave")
    room_id = await matrix_room(alice, api, bob, preset="private_chat")
    persister = server.atomchat._persister

    def added() -> list[EventDraft]:
        return [
            EventDraft(
                room_id=room_id,
                sender=bob.user_id,
                type="m.room.member",
                content={"membership": "invite"},
                state_key=dave.user_id,
            ),
            EventDraft(
                room_id=room_id,
                sender=dave.user_id,
                type="m.room.member",
                content={"membership": "join"},
                state_key=dave.user_id,
                added_by=bob.user_id,
            ),
        ]

    with pytest.raises(MatrixError) as refused:
        await persister.write(added())
    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
    assert await membership(alice, api, room_id, dave) is None  # the invite was refused with it
    levels = (await alice.on_matrix(api).get_state(room_id, "m.room.power_levels")).body
    await alice.on_matrix(api).put_state(room_id, "m.room.power_levels", {**levels, EDIT_MEMBERS: 0})
    await persister.write(added())
    assert await membership(alice, api, room_id, dave) == "join"


async def test_rooms_made_through_api_before_the_level_get_it_from_their_creator(
    compat, api, database_dsn, more_servers
):
    """Migration 0008 lists the rooms that exist when it runs; the server
    then gives those made with /api's old power levels the level, as their
    creator, where the rules let the creator."""
    alice, bob, carol, dave = await people(compat, "alice", "bob", "carol", "dave")
    old_levels = {"kick": 0, "invite": 0, "events": {"m.room.name": 0}}
    old = await matrix_room(alice, api, bob, carol, power_level_content_override=old_levels)
    creator_gone = await matrix_room(bob, api, alice, power_level_content_override=old_levels)
    await bob.on_matrix(api).leave(creator_gone)
    kick_only = await matrix_room(alice, api, bob, power_level_content_override={"kick": 0})
    await sql(
        database_dsn, "INSERT INTO api_rooms_to_upgrade (room_id) VALUES ($1), ($2), ($3)", old, creator_gone, kick_only
    )

    await more_servers()  # a server start runs the upgrade
    assert await sql(database_dsn, "SELECT * FROM api_rooms_to_upgrade") == []
    levels = (await alice.on_matrix(api).get_state(old, "m.room.power_levels")).body
    assert levels == {**levels, EDIT_MEMBERS: 0, "kick": 0}
    for room_id in (creator_gone, kick_only):
        assert EDIT_MEMBERS not in (await alice.on_matrix(api).get_state(room_id, "m.room.power_levels")).body
    # In the upgraded room bob (0) adds dave at once and removes carol, as before.
    number = await number_of(bob, old, api)
    changed = (await bob.update_room(number, {"users": [alice.id, bob.id, dave.id]})).body
    assert changed["users"] == [alice.id, bob.id, dave.id]
    # A second start finds nothing to do.
    await more_servers()
    assert (
        len(
            [
                e
                for e in (await alice.on_matrix(api).messages(old, dir="b", limit=100)).body["chunk"]
                if e["type"] == "m.room.power_levels"
            ]
        )
        == 2
    )
