"""History visibility: what members, former members and strangers may read
of a room, through every endpoint that reads it."""

import pytest

from ..support.room_steps import bodies, ids_of, register, room_of, stored_event_ids


async def test_a_member_sees_all_of_a_shared_room(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(name="Shared")
    for line in ("before bob", "still before bob"):
        await alice.say(room_id, line)
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    await bob.say(room_id, "hello, I read everything")
    events, _ = await bob.all_messages(room_id, limit=4, dir="b")
    assert ids_of(events)[::-1] == await stored_event_ids(database_dsn, room_id)
    assert bodies(events)[::-1] == ["before bob", "still before bob", "hello, I read everything"]


async def test_someone_who_left_sees_up_to_their_leave(api, database_dsn):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, name="Before", preset="public_chat")
    early = await alice.say(room_id, "while bob is here")
    await bob.leave(room_id, reason="bye")
    stored_at_leave = await stored_event_ids(database_dsn, room_id)
    late = await alice.say(room_id, "after bob left")
    await alice.put_state(room_id, "m.room.name", {"name": "After"})
    await carol.join(room_id)
    await alice.call(
        "PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice Later"}, schema="matrix/empty.response"
    )

    # The newest event bob may see is his own leave; nothing after it.
    newest = await bob.messages(room_id, limit=1)
    assert newest["chunk"][0]["content"] == {"membership": "leave", "reason": "bye"}
    backwards, _ = await bob.all_messages(room_id, limit=5)
    assert ids_of(backwards)[::-1] == stored_at_leave
    forwards, _ = await bob.all_messages(room_id, limit=5, dir="f")
    assert ids_of(forwards) == stored_at_leave
    # Single events: before the leave yes, after it no.
    assert (await bob.event(room_id, early))["content"]["body"] == "while bob is here"
    hidden = await bob.event(room_id, late, status=404)
    assert hidden["errcode"] == "M_NOT_FOUND"
    hidden = await bob.context(room_id, late, status=404)
    assert hidden["errcode"] == "M_NOT_FOUND"
    around = await bob.context(room_id, early, limit=10)
    assert around["events_after"][-1]["event_id"] == stored_at_leave[-1]
    # The state is the room as it was when he left.
    assert (await bob.get_state(room_id, "m.room.name")).body == {"name": "Before"}
    state = {(e["type"], e["state_key"]): e for e in (await bob.state(room_id)).body}
    assert state[("m.room.name", "")]["content"] == {"name": "Before"}
    assert ("m.room.member", carol.user_id) not in state
    assert state[("m.room.member", alice.user_id)]["content"] == {"membership": "join"}
    members = await bob.members(room_id)
    assert {e["state_key"]: e["content"]["membership"] for e in members["chunk"]} == {
        alice.user_id: "join",
        bob.user_id: "leave",
    }
    # Lazy-loaded members are as they were too: no later display name.
    page = await bob.messages(room_id, limit=3, filter={"lazy_load_members": True})
    lazy = {e["state_key"]: e["content"] for e in page["state"]}
    assert lazy[alice.user_id] == {"membership": "join"}
    # Those still in the room see it all.
    assert (await carol.get_state(room_id, "m.room.name")).body == {"name": "After"}
    assert (await alice.event(room_id, late))["content"]["body"] == "after bob left"


@pytest.mark.parametrize("how", ["kick", "ban"])
async def test_a_removed_member_sees_up_to_the_removal(api, how):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await alice.say(room_id, "one")
    await alice.act(how, room_id, bob, reason="go")
    await alice.say(room_id, "two")
    page = await bob.messages(room_id, limit=2)
    assert page["chunk"][0]["content"] == {"membership": "leave" if how == "kick" else "ban", "reason": "go"}
    assert bodies(page["chunk"]) == ["one"]


async def test_a_stranger_reads_nothing(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, preset="public_chat")
    message = await alice.say(room_id, "members only")
    first_page = await alice.messages(room_id, limit=1)
    await alice.invite(room_id, carol)  # invited is not joined: shared history needs a join
    (dave,) = await register(api, "dave")
    for stranger in (carol, dave):
        for refused in (
            await stranger.messages(room_id, status=403),
            await stranger.messages(room_id, status=403, dir="f"),
            await stranger.messages(room_id, status=403, **{"from": first_page["start"]}),
            await stranger.state(room_id, status=403),
            await stranger.get_state(room_id, "m.room.create", status=403),
            await stranger.members(room_id, status=403),
            await stranger.event(room_id, message, status=403),
            await stranger.context(room_id, message, status=403),
            await stranger.call("GET", f"/rooms/{room_id}/joined_members", status=403),
        ):
            assert refused["errcode"] == "M_FORBIDDEN"


async def test_joined_visibility_hides_history_from_before_the_join(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}]
    )
    secret = await alice.say(room_id, "before bob")
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    after = await alice.say(room_id, "with bob")
    events, _ = await bob.all_messages(room_id, limit=1)
    assert [e["type"] for e in events] == ["m.room.message", "m.room.member"]
    assert events[1]["state_key"] == bob.user_id and events[1]["content"]["membership"] == "join"
    assert ids_of(events)[0] == after
    hidden = await bob.event(room_id, secret, status=404)
    assert hidden["errcode"] == "M_NOT_FOUND"
    around = await bob.context(room_id, after, limit=10)
    assert ids_of(around["events_before"]) == [events[1]["event_id"]]
    # A second stay adds to what is seen, the time away stays hidden.
    await bob.leave(room_id)
    away = await alice.say(room_id, "while bob is away")
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    back = await alice.say(room_id, "bob is back")
    events, _ = await bob.all_messages(room_id, limit=3, dir="f")
    assert bodies(events) == ["with bob", "bob is back"]
    assert away not in ids_of(events) and back in ids_of(events)
    assert [e["content"]["membership"] for e in events if e["type"] == "m.room.member"] == ["join", "leave", "join"]


async def test_invited_visibility_shows_history_from_the_invite(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "invited"}}]
    )
    await alice.say(room_id, "before the invite")
    await alice.invite(room_id, bob)
    await alice.say(room_id, "after the invite")
    # Invited but not joined: the invite opens the history.
    events, _ = await bob.all_messages(room_id, limit=10)
    assert bodies(events) == ["after the invite"]
    assert events[-1]["content"]["membership"] == "invite"


async def test_world_readable_rooms_are_readable_by_anyone(api):
    alice, dave = await register(api, "alice", "dave")
    room_id = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}],
    )
    message = await alice.say(room_id, "for everyone")
    assert bodies((await dave.messages(room_id))["chunk"]) == ["for everyone"]
    assert (await dave.event(room_id, message))["content"]["body"] == "for everyone"
    assert (await dave.get_state(room_id, "m.room.history_visibility")).body == {"history_visibility": "world_readable"}
    # Reading is not joining.
    refused = await dave.send(room_id, {"msgtype": "m.text", "body": "me too"}, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"


async def test_each_event_is_read_under_the_setting_in_force_when_it_was_sent(api):
    """A room that was "joined" and became "shared": what was said under
    "joined" stays hidden from a later member, on every read; what was said
    after the change is theirs to read, and so is the change itself."""
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}]
    )
    secret = await alice.say(room_id, "said while joined-only")
    change = (await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": "shared"}))["event_id"]
    open_ = await alice.say(room_id, "said while shared")
    await alice.invite(room_id, bob)
    await bob.join(room_id)

    events, _ = await bob.all_messages(room_id, limit=2)
    assert secret not in ids_of(events)
    assert change in ids_of(events) and open_ in ids_of(events)
    assert (await bob.event(room_id, secret, status=404))["errcode"] == "M_NOT_FOUND"
    await bob.event(room_id, open_)
    around = await bob.context(room_id, open_, limit=10)
    assert secret not in ids_of(around["events_before"]) and change in ids_of(around["events_before"])
    found = await bob.call(
        "POST",
        "/search",
        {"search_categories": {"room_events": {"search_term": "said"}}},
        schema="matrix/search.response",
    )
    hits = [r["result"]["event_id"] for r in found["search_categories"]["room_events"]["results"]]
    assert hits == [open_]
    timeline = (
        await bob.call("GET", "/sync?filter=" + '{"room":{"timeline":{"limit":50}}}', schema="matrix/sync.response")
    )["rooms"]["join"][room_id]["timeline"]["events"]
    assert secret not in ids_of(timeline) and open_ in ids_of(timeline)
    # Alice, there all along, reads both.
    events, _ = await alice.all_messages(room_id, limit=5)
    assert {secret, open_} <= set(ids_of(events))


async def test_a_room_that_closes_its_history_keeps_what_it_shared_before(api):
    """ "shared" then "joined": a later member reads what was shared before
    the change, and nothing said after it before they joined."""
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room()
    shared = await alice.say(room_id, "said while shared")
    await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    closed = await alice.say(room_id, "said while joined-only")
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    events, _ = await bob.all_messages(room_id, limit=3)
    assert shared in ids_of(events) and closed not in ids_of(events)
