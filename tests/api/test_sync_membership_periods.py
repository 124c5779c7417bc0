"""Sync across changes of membership: a profile change is not a new joining,
and leaving and coming back between two syncs is not staying."""

from ..support.room_steps import bodies, register, room_of
from ..support.sync_steps import caught_up, room, sync, timeline


async def test_a_display_name_change_keeps_the_unread_count(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    for n in range(3):
        await alice.say(room_id, f"unread {n}")
    await caught_up(server)
    before = await sync(bob)
    assert room(before, room_id)["unread_notifications"]["notification_count"] == 3
    await bob.call(
        "PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bobby"}, schema="matrix/empty.response"
    )
    await caught_up(server)
    after = await sync(bob, before["next_batch"])
    assert room(after, room_id)["unread_notifications"]["notification_count"] == 3


async def test_leaving_and_rejoining_between_syncs_shows_only_what_visibility_allows(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, preset="public_chat")
    await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    await caught_up(server)
    start = await sync(bob)
    await bob.leave(room_id)
    await alice.say(room_id, "while bob was away")
    await bob.join(room_id)
    await alice.say(room_id, "bob is back")
    await caught_up(server)
    later = await sync(bob, start["next_batch"])
    seen = bodies(timeline(later, room_id))
    assert "bob is back" in seen
    assert "while bob was away" not in seen
