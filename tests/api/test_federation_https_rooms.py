"""Two AtomChat servers sharing a room over real HTTPS federation on
127.0.0.1: an invite, a join, and messages both ways, each server's own
events reaching the other through its outbox."""

from ..support.room_steps import bodies, register
from ..support.sync_steps import sync
from ..support.waiting import eventually


async def test_an_invite_a_join_and_messages_cross_over_https(federation_pair):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    (bob,) = await register(b.api, "bob")
    assert bob.user_id == b.user("bob")
    room_id = await alice.create_room(preset="private_chat", name="Over HTTPS")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id}, schema="matrix/empty.response")
    invited = (await sync(bob)).body["rooms"]["invite"]
    assert room_id in invited
    assert (await bob.join(room_id)).body == {"room_id": room_id}
    assert (await bob.get_state(room_id, "m.room.name")).body == {"name": "Over HTTPS"}
    await alice.say(room_id, "hello Bob")

    async def bob_sees():
        events, _ = await bob.all_messages(room_id, limit=100, dir="f")
        return "hello Bob" in bodies(events)

    assert await eventually(bob_sees)
    await bob.say(room_id, "hello Alice")

    async def alice_sees():
        events, _ = await alice.all_messages(room_id, limit=100, dir="f")
        return bodies(events)[-2:] == ["hello Bob", "hello Alice"]

    assert await eventually(alice_sees)


async def test_a_user_joins_another_servers_room_by_its_alias(federation_pair):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    (bob,) = await register(b.api, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Lobby", room_alias_name="lobby")
    # No server named: B asks A's directory which room the alias names and
    # which servers are in it, and joins through them.
    assert (await bob.join(f"#lobby:{a.name}")).body == {"room_id": room_id}
    assert (await bob.get_state(room_id, "m.room.name")).body == {"name": "Lobby"}
    members = await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(members.body["joined"]) == {alice.user_id, bob.user_id}
    for unknown in (f"#nowhere:{a.name}", "#nowhere:", "#nowhere:not a server"):
        assert (await bob.join(unknown, status=404)).body["errcode"] == "M_NOT_FOUND"
    rooms = await bob.call("GET", "/joined_rooms", schema="matrix/joined_rooms.response")
    assert rooms.body == {"joined_rooms": [room_id]}
