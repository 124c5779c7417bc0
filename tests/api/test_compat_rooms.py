"""Rooms on the original API: creating (the creator and the listed users
become members at once, names unique), listing (a moderator sees every
room), reading, renaming and changing members (any member may, except
removing the room's creator; a moderator edits without joining), and
deleting (moderators only). Every room made here is a Matrix room, which
the Matrix API shows the same way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from ..support.compat_client import NOT_ALLOWED, NOT_FOUND, TIMESTAMP, CompatClient, Person, people, promote

REQUIRED = ["This field is required."]
NAME_TAKEN = ["room with this name already exists."]


@pytest.fixture
def compat(server):
    return CompatClient(server.base_url)


def members(room: dict[str, Any]) -> list[int]:
    return room["users"]


async def joined(someone: Person, api, room: dict[str, Any]) -> bool:
    """Whether the Matrix API shows ``someone`` joined to the room."""
    rooms = await someone.on_matrix(api).joined_rooms()
    return await matrix_room_id(someone, api, room) in rooms


async def matrix_room_id(someone: Person, api, room: dict[str, Any]) -> str:
    """The Matrix id of a room ``someone`` has joined, found by its name."""
    matrix = someone.on_matrix(api)
    for room_id in await matrix.joined_rooms():
        state = (await matrix.state(room_id)).body
        if any(e["type"] == "m.room.name" and e["content"].get("name") == room["name"] for e in state):
            return room_id
    raise AssertionError(f"{someone.username} is in no room named {room['name']!r}")


async def refused(someone: Person, method: str, path: str, body: Any = None, *, status: int) -> dict[str, Any]:
    return (await someone.call(method, path, body, status=status)).body


# -- creating ---------------------------------------------------------------------------


async def test_a_new_room_has_its_creator_and_listed_users_as_members(compat, api):
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    before = datetime.now(timezone.utc)
    room = await alice.create_room("Tea", [bob.id, alice.id, carol.id, bob.id])
    assert set(room) == {"id", "name", "is_private", "created_at", "users"}
    assert room["name"] == "Tea" and room["is_private"] is True
    assert members(room) == [alice.id, bob.id, carol.id]  # the creator once, each user once
    assert TIMESTAMP.match(room["created_at"])
    created = datetime.strptime(room["created_at"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert before - timedelta(seconds=1) <= created <= datetime.now(timezone.utc) + timedelta(seconds=1)
    # The listed users are members at once, with no invitation to accept.
    for someone in (alice, bob, carol):
        assert (await someone.room(room["id"])).body == room
        assert [r["id"] for r in await someone.rooms()] == [room["id"]]
        assert await joined(someone, api, room)
    # Without users, the creator alone; read-only fields are ignored.
    alone = (
        await bob.call(
            "POST",
            "/api/rooms",
            {"name": "Solo", "is_private": False, "id": 77, "created_at": "2001-01-01T00:00:00.000000Z"},
            status=201,
            schema="api/room.response",
        )
    ).body
    assert alone["is_private"] is True and alone["id"] != 77 and not alone["created_at"].startswith("2001")
    assert members(alone) == [bob.id]
    assert alone["id"] > room["id"]


async def test_room_names_are_unique(compat):
    alice, bob = await people(compat, "alice", "bob")
    await alice.create_room("Tea")
    for creator in (alice, bob):
        assert await refused(creator, "POST", "/api/rooms/", {"name": "Tea"}, status=400) == {"name": NAME_TAKEN}
    # Names compare exactly, as the original's database did.
    assert (await bob.create_room("tea"))["name"] == "tea"
    assert (await bob.create_room("Tea "))["name"] == "Tea "


async def test_an_api_name_is_refused_when_any_room_not_deleted_has_it_however_named(compat, api):
    """/api names are unique among all rooms that are not deleted, Matrix-made
    ones included; the Matrix API itself is not held to the rule."""
    alice, bob = await people(compat, "alice", "bob")
    matrix_alice = alice.on_matrix(api)
    garden = await matrix_alice.create_room(name="Garden")
    assert await refused(bob, "POST", "/api/rooms/", {"name": "Garden"}, status=400) == {"name": NAME_TAKEN}
    tea = await bob.create_room("Tea")
    assert (await bob.update_room(tea["id"], {"name": "Garden"}, status=400)).body == {"name": NAME_TAKEN}

    await matrix_alice.put_state(garden, "m.room.name", {"name": "Tea"})  # a Matrix rename may take any name
    assert (await matrix_alice.get_state(garden, "m.room.name")).body == {"name": "Tea"}
    assert (await bob.create_room("Garden"))["name"] == "Garden"  # its old name is free again


async def test_room_creation_refusals_name_each_field(compat, server):
    alice, bob = await people(compat, "alice", "bob")
    cases = [
        ({}, {"name": REQUIRED}),
        ({"users": [bob.id]}, {"name": REQUIRED}),
        ({"name": None}, {"name": ["This field may not be null."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "   "}, {"name": ["This field may not be blank."]}),
        ({"name": ["Tea"]}, {"name": ["Not a valid string."]}),
        ({"name": "Tea", "users": [999]}, {"users": ['Invalid pk "999" - object does not exist.']}),
        ({"name": "Tea", "users": [bob.id, 999]}, {"users": ['Invalid pk "999" - object does not exist.']}),
        # Number 0 is the server's own account, which no one can name.
        ({"name": "Tea", "users": [0]}, {"users": ['Invalid pk "0" - object does not exist.']}),
        ({"name": "Tea", "users": bob.id}, {"users": ['Expected a list of items but got type "int".']}),
        ({"name": "Tea", "users": {"id": bob.id}}, {"users": ['Expected a list of items but got type "dict".']}),
        ({"name": "Tea", "users": []}, {"users": ["This list may not be empty."]}),
        ({"name": "Tea", "users": [True]}, {"users": ["Incorrect type. Expected pk value, received bool."]}),
        ({"name": "Tea", "users": [{"id": 2}]}, {"users": ["Incorrect type. Expected pk value, received dict."]}),
        ({"name": "Tea", "users": [1.5]}, {"users": ["Incorrect type. Expected pk value, received float."]}),
        ({"name": "Tea", "users": [10**30]}, {"users": [f'Invalid pk "{10**30}" - object does not exist.']}),
        ({"name": "Tea", "users": ["1e3"]}, {"users": ["Incorrect type. Expected pk value, received str."]}),
        ({"users": []}, {"name": REQUIRED, "users": ["This list may not be empty."]}),
    ]
    for body, errors in cases:
        assert await refused(alice, "POST", "/api/rooms/", body, status=400) == errors, body
    assert await alice.rooms() == [] and await bob.rooms() == []


# -- listing and reading -------------------------------------------------------------------


async def test_each_sees_their_own_rooms_and_a_moderator_sees_every_room(compat, server, api):
    mod, alice, bob, carol = await people(compat, "mod", "alice", "bob", "carol")
    await promote(server, mod)
    tea = await alice.create_room("Tea", [bob.id])
    cake = await bob.create_room("Cake", [carol.id])
    alone = await carol.create_room("Alone")
    # A room made on the Matrix API is an /api room as well; an invitation is not membership.
    matrix_room = await alice.on_matrix(api).create_room(name="Matrix made", invite=[carol.user_id])
    made = [r for r in await alice.rooms() if r["name"] == "Matrix made"]
    assert [members(r) for r in made] == [[alice.id]]

    assert [r["id"] for r in await alice.rooms()] == [tea["id"], made[0]["id"]]
    assert [r["id"] for r in await bob.rooms()] == [tea["id"], cake["id"]]
    assert [r["id"] for r in await carol.rooms()] == [cake["id"], alone["id"]]
    everything = await mod.rooms()
    assert [r["id"] for r in everything] == [tea["id"], cake["id"], alone["id"], made[0]["id"]]
    assert everything[:3] == [tea, cake, alone]
    # Reading: members and moderators; others are refused.
    assert (await bob.room(tea["id"])).body == tea
    assert (await mod.room(tea["id"])).body == tea
    assert (await carol.room(tea["id"], status=403)).body == {"detail": NOT_ALLOWED}
    # Carol's invitation to the Matrix-made room is not membership either.
    assert (await carol.room(made[0]["id"], status=403)).body == {"detail": NOT_ALLOWED}
    await carol.on_matrix(api).join(matrix_room)
    assert members((await carol.room(made[0]["id"])).body) == [alice.id, carol.id]


async def test_missing_and_malformed_room_ids_are_404(compat, server):
    mod, alice = await people(compat, "mod", "alice")
    await promote(server, mod)
    room = await alice.create_room("Tea")
    for number in ("999", "0", "-1", "abc", "1.5", "1e3", "99999999999999999999999", "%20", "%E2%91%A0"):
        for someone in (alice, mod):
            for method, path, body in (
                ("GET", f"/api/rooms/{number}/", None),
                ("PUT", f"/api/rooms/{number}/", {"name": "x"}),
                ("PATCH", f"/api/rooms/{number}/", {"name": "x"}),
                ("DELETE", f"/api/rooms/{number}/", None),
                ("GET", f"/api/rooms/{number}/messages/", None),
                ("POST", f"/api/rooms/{number}/messages/", {"text": "hi"}),
            ):
                answer = await someone.call(method, path, body, status=404)
                assert answer.body == NOT_FOUND, (method, path)
    assert (await alice.room(room["id"])).body == room


async def test_the_moderation_policy_room_is_no_api_room(compat, server, api):
    """The policy room is the moderators' audit log, run by the server: not
    listed, not readable, not editable through /api, even by moderators."""
    mod, bob = await people(compat, "mod", "bob")
    await promote(server, mod)
    numbers = {r["id"] for r in await mod.rooms()}
    room = await mod.create_room("Visible")
    # Room numbers are consecutive: the ones below the first listed room belong to no user room.
    hidden = [n for n in range(1, room["id"]) if n not in numbers]
    assert hidden, "the policy room has a number"
    for number in hidden:
        assert (await mod.room(number, status=404)).body == NOT_FOUND
        await mod.update_room(number, {"users": [mod.id, bob.id]}, status=404)
        await mod.update_room(number, {"name": "Mine now"}, method="PATCH", status=404)
        await mod.call("POST", f"/api/rooms/{number}/messages/", {"text": "hi"}, status=404)
        await mod.call("GET", f"/api/rooms/{number}/messages/", status=404)
        await mod.call("DELETE", f"/api/rooms/{number}/", status=404)
    assert await bob.rooms() == []
    assert len(await bob.on_matrix(api).joined_rooms()) == 0


# -- renaming and changing members ------------------------------------------------------------


async def test_any_member_renames_and_omitted_fields_stay(compat, api):
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    room = await alice.create_room("Tea", [bob.id, carol.id])
    number = room["id"]
    renamed = (await bob.update_room(number, {"name": "Coffee"}, method="PATCH")).body
    assert renamed == {**room, "name": "Coffee"}
    renamed = (await carol.update_room(number, {"name": "Cocoa"}, method="PUT")).body
    assert renamed == {**room, "name": "Cocoa"}
    # The Matrix room has the new name, set by the member who renamed it.
    matrix_id = await matrix_room_id(alice, api, renamed)
    assert (await alice.on_matrix(api).get_state(matrix_id, "m.room.name")).body == {"name": "Cocoa"}
    # Nothing to change, or the same name again: unchanged.
    assert (await bob.update_room(number, {})).body == renamed
    assert (await bob.update_room(number, {"name": "Cocoa", "is_private": False})).body == renamed
    # The name must still be unique and valid.
    await alice.create_room("Taken")
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"name": "Taken"}, {"name": NAME_TAKEN}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": None}, {"name": ["This field may not be null."]}),
        ({"users": []}, {"users": ["This list may not be empty."]}),
        ({"users": [alice.id, 999]}, {"users": ['Invalid pk "999" - object does not exist.']}),
        ({"users": "1,2"}, {"users": ['Expected a list of items but got type "str".']}),
        (
            {"name": "Taken", "users": ["x"]},
            {"name": NAME_TAKEN, "users": ["Incorrect type. Expected pk value, received str."]},
        ),
    ]
    for body, errors in cases:
        for method in ("PUT", "PATCH"):
            assert (await bob.update_room(number, body, method=method, status=400)).body == errors, body
    assert (await alice.room(number)).body == renamed


async def test_members_add_and_remove_members_but_not_the_creator(compat, api):
    alice, bob, carol, dave = await people(compat, "alice", "bob", "carol", "dave")
    room = await alice.create_room("Tea", [bob.id, carol.id])
    number = room["id"]
    # A member adds someone: they are a member at once.
    changed = (await bob.update_room(number, {"users": [alice.id, bob.id, carol.id, dave.id]})).body
    assert members(changed) == [alice.id, bob.id, carol.id, dave.id] and changed["name"] == "Tea"
    assert await joined(dave, api, changed)
    # A member removes another member; a rename alone keeps the members.
    assert members((await bob.update_room(number, {"users": [alice.id, bob.id, dave.id]}, method="PATCH")).body) == [
        alice.id,
        bob.id,
        dave.id,
    ]
    assert (await carol.room(number, status=403)).body == {"detail": NOT_ALLOWED}
    assert members((await dave.update_room(number, {"name": "Coffee"})).body) == [alice.id, bob.id, dave.id]
    # Removing the creator is refused, and the refused request changes nothing.
    for method in ("PUT", "PATCH"):
        answer = await bob.update_room(
            number, {"users": [bob.id, dave.id, carol.id], "name": "Bob's"}, method=method, status=403
        )
        assert answer.body == {"detail": NOT_ALLOWED}
    unchanged = (await alice.room(number)).body
    assert members(unchanged) == [alice.id, bob.id, dave.id] and unchanged["name"] == "Coffee"
    # A member leaves by removing themselves.
    left = (await dave.update_room(number, {"users": [alice.id, bob.id]})).body
    assert members(left) == [alice.id, bob.id]
    assert (await dave.room(number, status=403)).body == {"detail": NOT_ALLOWED}
    assert await dave.rooms() == []
    await dave.update_room(number, {"users": [alice.id, bob.id, dave.id]}, status=403)
    # The creator may remove anyone, themselves included.
    assert members((await alice.update_room(number, {"users": [alice.id]})).body) == [alice.id]
    assert members((await alice.update_room(number, {"users": [alice.id, carol.id]})).body) == [alice.id, carol.id]
    assert members((await alice.update_room(number, {"users": [carol.id]})).body) == [carol.id]
    assert await alice.rooms() == []


async def test_non_members_cannot_edit(compat):
    alice, bob, eve = await people(compat, "alice", "bob", "eve")
    room = await alice.create_room("Tea", [bob.id])
    for method in ("PUT", "PATCH"):
        for body in ({"name": "Eve's"}, {"users": [alice.id, bob.id, eve.id]}, {}):
            answer = await eve.update_room(room["id"], body, method=method, status=403)
            assert answer.body == {"detail": NOT_ALLOWED}
    assert (await alice.room(room["id"])).body == room


async def test_a_moderator_edits_without_joining(compat, server, api):
    mod, alice, bob, carol = await people(compat, "mod", "alice", "bob", "carol")
    await promote(server, mod)
    room = await alice.create_room("Tea", [bob.id])
    number = room["id"]
    assert (await mod.update_room(number, {"name": "Moderated"}, method="PATCH")).body == {**room, "name": "Moderated"}
    changed = (await mod.update_room(number, {"users": [alice.id, bob.id, carol.id]})).body
    assert members(changed) == [alice.id, bob.id, carol.id]
    # Even the creator may be removed by a moderator.
    assert members((await mod.update_room(number, {"users": [bob.id, carol.id]})).body) == [bob.id, carol.id]
    assert mod.id not in members((await mod.room(number)).body)
    matrix_rooms = await mod.on_matrix(api).joined_rooms()
    assert await matrix_room_id(bob, api, changed) not in matrix_rooms


# -- deleting -------------------------------------------------------------------------------


async def test_only_moderators_delete_and_the_room_is_gone(compat, server, api):
    mod, alice, bob, eve = await people(compat, "mod", "alice", "bob", "eve")
    await promote(server, mod)
    room = await alice.create_room("Tea", [bob.id])
    number = room["id"]
    await alice.post(number, "hello")
    matrix_id = await matrix_room_id(alice, api, room)
    for someone in (alice, bob, eve):  # the creator too
        answer = await someone.call("DELETE", f"/api/rooms/{number}/", status=403)
        assert answer.body == {"detail": NOT_ALLOWED}
    assert (await alice.room(number)).body == room

    answer = await mod.call("DELETE", f"/api/rooms/{number}/", status=204)
    assert answer.body is None
    for someone in (alice, bob, mod):
        assert (await someone.room(number, status=404)).body == NOT_FOUND
        await someone.messages(number, status=404)
        await someone.post(number, "anyone?", status=404)
        await someone.update_room(number, {"name": "Back"}, status=404)
        assert await someone.rooms() == []
        assert matrix_id not in await someone.on_matrix(api).joined_rooms()
    await mod.call("DELETE", f"/api/rooms/{number}", status=404)
    # The name is free again.
    assert (await bob.create_room("Tea"))["id"] != number


async def test_an_original_client_sending_forms_works(compat):
    """The original read forms as well as JSON: a list repeats its key, and
    numbers arrive as strings, which it took as numbers in JSON too."""
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    form = [("name", "Tea"), ("users", str(bob.id)), ("users", str(carol.id))]
    created = await alice.call(
        "POST",
        "/api/rooms/",
        raw=urlencode(form),
        status=201,
        schema="api/room.response",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert members(created.body) == [alice.id, bob.id, carol.id]
    number = created["id"]
    changed = await bob.call(
        "PATCH", f"/api/rooms/{number}/", form={"users": str(alice.id), "name": "Coffee"}, schema="api/room.response"
    )
    assert changed.body == {**created.body, "name": "Coffee", "users": [alice.id]}
    assert members((await alice.update_room(number, {"users": [str(alice.id), str(carol.id)]})).body) == [
        alice.id,
        carol.id,
    ]
    posted = await carol.call(
        "POST", f"/api/rooms/{number}/messages/", form={"text": "formed"}, status=201, schema="api/message.response"
    )
    assert posted["author"] == carol.id
    sent = await alice.call(
        "POST",
        "/api/messages/",
        form={"text": "psst", "user_to": str(bob.id)},
        status=201,
        schema="api/direct_message.response",
    )
    assert sent["text"] == "psst"
    assert (await alice.direct(str(bob.id), "again")).status == 201
    refused = await alice.call("POST", "/api/rooms/", form={"name": "Other", "users": "bob"}, status=400)
    assert refused.body == {"users": ["Incorrect type. Expected pk value, received str."]}
    refused = await alice.call("POST", "/api/messages/", form={"text": "psst", "user_to": ""}, status=400)
    assert refused.body == {"user_to": ["Incorrect type. Expected pk value, received str."]}


@pytest.mark.settings(pool_max_size=4)
async def test_a_name_asked_for_at_once_goes_to_one_room(compat, more_servers):
    """Rooms created and renamed at the same moment, on two server
    processes, with the same name: one gets it, the others are told it is taken."""
    other = CompatClient((await more_servers()).base_url)
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    carol_elsewhere = Person(other, carol.id, carol.username, carol.token, carol.user_id)
    room = await carol.create_room("Carol's")
    for round_ in range(3):
        name = f"Tea {round_}"
        answers = await asyncio.gather(
            alice.call("POST", "/api/rooms/", {"name": name}, status=(201, 400), schema="api/room.response"),
            bob.call("POST", "/api/rooms/", {"name": name}, status=(201, 400), schema="api/room.response"),
            carol_elsewhere.call(
                "PUT", f"/api/rooms/{room['id']}/", {"name": name}, status=(200, 400), schema="api/room.response"
            ),
        )
        refused = [a.body for a in answers if a.status == 400]
        assert refused == [{"name": NAME_TAKEN}] * 2, [a.body for a in answers]
    names = {r["id"]: r["name"] for someone in (alice, bob, carol) for r in await someone.rooms()}
    assert sorted(names.values()).count("Tea 2") == 1
