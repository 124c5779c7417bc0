"""/sync over real HTTP: what an initial sync shows (joined rooms, invites,
left rooms), what an incremental one adds (only what changed, newly joined
and left rooms, limited timelines whose prev_batch /messages accepts, full
state), filters inline and uploaded, transaction ids for the sending device,
and the long-poll (held for its timeout, ended at once by an event or a
logout, each event delivered once across successive tokens)."""

import asyncio
import json
from urllib.parse import quote

from ..support.client import MATRIX
from ..support.room_steps import another_device, bodies, ids_of, register, room_of, stored_event_ids, text
from ..support.sync_steps import (
    SyncLoop,
    held_then_woken,
    long_polls_waiting,
    members,
    room,
    state,
    state_keys,
    sync,
    timed,
    timeline,
)

ROOM_STATE = {
    ("m.room.create", ""),
    ("m.room.power_levels", ""),
    ("m.room.join_rules", ""),
    ("m.room.history_visibility", ""),
    ("m.room.name", ""),
    ("m.room.topic", ""),
}


async def say_all(user, room_id, count, prefix="m"):
    return [await user.say(room_id, f"{prefix}{n}") for n in range(count)]


async def current_state(user, room_id):
    return {(e["type"], e["state_key"]): e["event_id"] for e in (await user.state(room_id)).body}


# -- initial sync --------------------------------------------------------------------------


async def test_initial_sync_gives_joined_rooms_their_state_and_newest_events(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, name="Lounge", topic="Tea and talk")
    await say_all(alice, room_id, 25)
    stored = await stored_event_ids(database_dsn, room_id)

    answer = await sync(bob)
    assert isinstance(answer["next_batch"], str)
    assert set(answer["rooms"]["join"]) == {room_id}
    assert answer["rooms"]["invite"] == {} and answer["rooms"]["leave"] == {}
    lounge = room(answer, room_id)
    assert ids_of(lounge["timeline"]["events"]) == stored[-20:]  # the default limit, oldest first
    assert lounge["timeline"]["limited"] is True
    # The state before the timeline, which here is the whole current state.
    assert {(e["type"], e["state_key"]): e["event_id"] for e in state(answer, room_id)} == await current_state(
        bob, room_id
    )
    assert state_keys(state(answer, room_id)) >= ROOM_STATE | {
        ("m.room.member", alice.user_id),
        ("m.room.member", bob.user_id),
    }
    assert lounge["summary"]["m.joined_member_count"] == 2
    assert lounge["unread_notifications"]["notification_count"] == 25  # bob has read nothing yet

    limited = await sync(bob, filter={"room": {"timeline": {"limit": 3}}})
    assert ids_of(timeline(limited, room_id)) == stored[-3:]
    assert room(limited, room_id)["timeline"]["limited"] is True


async def test_an_initial_timeline_and_its_prev_batch_cover_the_whole_history(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await say_all(bob, room_id, 12)
    answer = await sync(bob, filter={"room": {"timeline": {"limit": 5}}})
    prev_batch = room(answer, room_id)["timeline"]["prev_batch"]
    earlier, _ = await bob.all_messages(room_id, limit=4, dir="b", **{"from": prev_batch})
    assert ids_of(earlier[::-1]) + ids_of(timeline(answer, room_id)) == await stored_event_ids(database_dsn, room_id)


async def test_a_short_room_is_not_limited_and_its_state_excludes_the_timeline(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, name="Small")
    answer = await sync(bob)
    lounge = room(answer, room_id)
    assert lounge["timeline"]["limited"] is False
    assert ids_of(lounge["timeline"]["events"]) == await stored_event_ids(database_dsn, room_id)
    assert state(answer, room_id) == []  # every state event is in the timeline


async def test_an_invite_comes_with_stripped_state(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="private_chat", name="Plans", topic="Secret")
    await alice.invite(room_id, bob)
    answer = await sync(bob)
    assert answer["rooms"]["join"] == {}
    invite_state = room(answer, room_id, "invite")["invite_state"]["events"]
    by_key = {(e["type"], e["state_key"]): e for e in invite_state}
    assert {
        ("m.room.create", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.member", alice.user_id),
        ("m.room.member", bob.user_id),
    } <= set(by_key)
    invite = by_key[("m.room.member", bob.user_id)]
    assert (invite["sender"], invite["content"]["membership"]) == (alice.user_id, "invite")
    assert by_key[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    assert by_key[("m.room.name", "")]["content"] == {"name": "Plans"}
    assert by_key[("m.room.join_rules", "")]["content"]["join_rule"] == "invite"


async def test_left_rooms_show_in_an_initial_sync_only_with_include_leave(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await bob.say(room_id, "bye")
    await bob.leave(room_id)
    plain = await sync(bob)
    assert plain["rooms"] == {"join": {}, "invite": {}, "leave": {}}
    with_leave = await sync(bob, filter={"room": {"include_leave": True}})
    left = timeline(with_leave, room_id, "leave")
    assert bodies(left) == ["bye"]
    assert (left[-1]["type"], left[-1]["state_key"], left[-1]["content"]["membership"]) == (
        "m.room.member",
        bob.user_id,
        "leave",
    )


# -- incremental sync ----------------------------------------------------------------------


async def test_an_incremental_sync_gives_only_what_changed(api, server):
    alice, bob = await register(api, "alice", "bob")
    quiet = await room_of(alice, bob)
    busy = await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    await loop.sync()
    event_id = await alice.say(busy, "news")
    answer = await loop.sync()
    assert set(answer["rooms"]["join"]) == {busy}
    assert ids_of(timeline(answer, busy)) == [event_id]
    assert room(answer, busy)["timeline"]["limited"] is False
    assert state(answer, busy) == []
    assert room(answer, busy)["unread_notifications"]["notification_count"] == 1
    again = await loop.sync()
    assert again["rooms"] == {"join": {}, "invite": {}, "leave": {}}
    assert quiet not in answer["rooms"]["join"]


async def test_a_room_joined_since_the_token_arrives_with_name_topic_and_members(api, server):
    alice, bob = await register(api, "alice", "bob")
    loop = SyncLoop(bob, server)
    await loop.sync()
    room_id = await alice.create_room(preset="private_chat", name="Welcome", topic="Introductions")
    await alice.say(room_id, "hello")
    await alice.invite(room_id, bob)
    assert room_id in (await loop.sync())["rooms"]["invite"]
    await bob.join(room_id)
    answer = await loop.sync()
    assert room_id not in answer["rooms"]["invite"]
    seen = state(answer, room_id) + timeline(answer, room_id)
    contents = {(e["type"], e["state_key"]): e["content"] for e in seen if "state_key" in e}
    assert contents[("m.room.name", "")] == {"name": "Welcome"}
    assert contents[("m.room.topic", "")]["topic"] == "Introductions"
    assert contents[("m.room.member", alice.user_id)]["membership"] == "join"
    assert contents[("m.room.member", bob.user_id)]["membership"] == "join"
    assert "hello" in bodies(timeline(answer, room_id))


async def test_leaving_shows_the_leave_in_the_left_rooms_timeline_once(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    await loop.sync()
    await alice.say(room_id, "before")
    await bob.leave(room_id)
    await alice.say(room_id, "after")
    answer = await loop.sync()
    assert room_id not in answer["rooms"]["join"]
    left = timeline(answer, room_id, "leave")
    assert bodies(left) == ["before"]
    assert (left[-1]["type"], left[-1]["state_key"], left[-1]["content"]["membership"]) == (
        "m.room.member",
        bob.user_id,
        "leave",
    )
    assert (await loop.sync())["rooms"]["leave"] == {}


async def test_a_limited_timeline_and_its_prev_batch_cover_the_gap_exactly(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, name="Old name")
    loop = SyncLoop(bob, server, filter={"room": {"timeline": {"limit": 3}}})
    await loop.sync()
    since = loop.since
    sent = await say_all(alice, room_id, 4, "a")
    renamed = (await alice.put_state(room_id, "m.room.name", {"name": "New name"}))["event_id"]
    sent += [renamed] + await say_all(alice, room_id, 4, "b")

    answer = await loop.sync()
    section = room(answer, room_id)
    assert section["timeline"]["limited"] is True
    delivered = ids_of(section["timeline"]["events"])
    assert delivered == sent[-3:]
    # The state change the timeline skipped is in the state section.
    assert [e["event_id"] for e in section["state"]["events"]] == [renamed]
    skipped, _ = await bob.all_messages(
        room_id, limit=2, dir="b", to=since, **{"from": section["timeline"]["prev_batch"]}
    )
    assert ids_of(skipped[::-1]) + delivered == sent  # no gap, no overlap
    first_page = await bob.messages(room_id, limit=1, dir="b", **{"from": section["timeline"]["prev_batch"]})
    assert ids_of(first_page["chunk"]) == [sent[-4]]


async def test_full_state_sends_every_rooms_state_but_only_new_events(api, server):
    alice, bob = await register(api, "alice", "bob")
    busy = await room_of(alice, bob, name="Busy")
    quiet = await room_of(alice, bob, name="Quiet")
    await say_all(alice, busy, 3, "old")
    loop = SyncLoop(bob, server)
    await loop.sync()
    news = await alice.say(busy, "new")
    # full_state answers at once: the timeout does not apply.
    answer, elapsed = await timed(loop.sync(full_state=True, timeout=5000))
    assert elapsed < 2
    assert set(answer["rooms"]["join"]) == {busy, quiet}
    assert ids_of(timeline(answer, busy)) == [news]
    assert timeline(answer, quiet) == []
    for room_id in (busy, quiet):
        keys = state_keys(state(answer, room_id))
        assert keys >= {
            ("m.room.create", ""),
            ("m.room.name", ""),
            ("m.room.member", alice.user_id),
            ("m.room.member", bob.user_id),
        }
        assert keys == set(await current_state(bob, room_id))
    assert (await loop.sync())["rooms"]["join"] == {}  # nothing was left to deliver


async def test_full_state_is_true_or_false_and_nothing_else(api):
    """Found by fuzzing: any other value was read as false, silently."""
    (bob,) = await register(api, "bob")
    for value in ("1", "yes", "True", ""):
        answer = await sync(bob, full_state=value, status=400)
        assert answer["errcode"] == "M_INVALID_PARAM" and "full_state" in answer["error"]
    assert "next_batch" in (await sync(bob, full_state=False)).body


# -- filters -------------------------------------------------------------------------------


async def test_uploaded_filters_are_read_back_and_used_by_id(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    definition = {"room": {"timeline": {"limit": 2, "types": ["m.room.message"]}, "include_leave": False}}
    created = await bob.call("POST", f"/user/{quote(bob.user_id)}/filter", definition, schema="matrix/filter.response")
    filter_id = created["filter_id"]
    read = await bob.call(
        "GET", f"/user/{quote(bob.user_id)}/filter/{filter_id}", schema="matrix/filter_definition.response"
    )
    assert read.body == definition
    await say_all(alice, room_id, 4)
    answer = await sync(bob, filter=filter_id)
    assert bodies(timeline(answer, room_id)) == ["m2", "m3"]
    assert {e["type"] for e in timeline(answer, room_id)} == {"m.room.message"}

    # A filter belongs to the user who made it.
    denied = await alice.call("GET", f"/user/{quote(bob.user_id)}/filter/{filter_id}", status=403)
    assert denied["errcode"] == "M_FORBIDDEN"
    assert (await sync(alice, filter=filter_id, status=404))["errcode"] == "M_NOT_FOUND"
    await alice.call("GET", f"/user/{quote(alice.user_id)}/filter/{filter_id}", status=404)
    await alice.call("POST", f"/user/{quote(bob.user_id)}/filter", definition, status=403)
    await bob.call("GET", f"/user/{quote(bob.user_id)}/filter/999999", status=404)
    await bob.call("GET", f"/user/{quote(bob.user_id)}/filter/nope", status=404)


async def test_bad_filters_are_refused(api):
    (bob,) = await register(api, "bob")
    for bad in (
        {"room": {"timeline": {"limit": 0}}},
        {"room": "all"},
        {"room": {"rooms": "!a:b"}},
        {"room": {"timeline": {"types": [1]}}},
    ):
        answer = await bob.call("POST", f"/user/{quote(bob.user_id)}/filter", bad, status=400)
        assert answer["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM")
        answer = await sync(bob, filter=json.dumps(bad), status=400)
        assert answer["errcode"] == "M_INVALID_PARAM"
    for raw in ("{not json", "abc", "[1]"):
        assert (await sync(bob, filter=raw, status=400))["errcode"] == "M_INVALID_PARAM"


async def test_timeline_type_filters(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await alice.say(room_id, "one")
    note = (await alice.send(room_id, {"n": 1}, event_type="org.example.note"))["event_id"]
    await alice.put_state(room_id, "m.room.topic", {"topic": "t"})
    await alice.say(room_id, "two")
    wide = {"limit": 50}

    only_messages = await sync(bob, filter={"room": {"timeline": {**wide, "types": ["m.room.message"]}}})
    assert bodies(timeline(only_messages, room_id)) == ["one", "two"]
    assert {e["type"] for e in timeline(only_messages, room_id)} == {"m.room.message"}

    no_room_types = await sync(bob, filter={"room": {"timeline": {**wide, "not_types": ["m.room.*"]}}})
    assert ids_of(timeline(no_room_types, room_id)) == [note]

    some = await sync(
        bob,
        filter={
            "room": {"timeline": {**wide, "types": ["m.room.*"], "not_types": ["m.room.member", "m.room.message"]}}
        },
    )
    types = [e["type"] for e in timeline(some, room_id)]
    assert "m.room.topic" in types and "m.room.create" in types
    assert not {"m.room.member", "m.room.message", "org.example.note"} & set(types)


async def test_room_filters(api, server):
    alice, bob = await register(api, "alice", "bob")
    first = await room_of(alice, bob)
    second = await room_of(alice, bob)
    invited = await alice.create_room(invite=[bob.user_id])
    only = await sync(bob, filter={"room": {"rooms": [first, invited]}})
    assert set(only["rooms"]["join"]) == {first} and set(only["rooms"]["invite"]) == {invited}
    without = await sync(bob, filter={"room": {"not_rooms": [first, invited]}})
    assert set(without["rooms"]["join"]) == {second} and without["rooms"]["invite"] == {}
    loop = SyncLoop(bob, server, filter={"room": {"not_rooms": [first]}})
    await loop.sync()
    await alice.say(first, "filtered out")
    await alice.say(second, "kept")
    answer = await loop.sync()
    assert set(answer["rooms"]["join"]) == {second}


async def test_lazy_loading_sends_only_the_member_events_the_timeline_needs(api, server):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    await carol.say(room_id, "earlier")
    await bob.say(room_id, "latest")
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    full = await sync(alice, filter={"room": {"timeline": {"limit": 1}}})
    assert members(state(full, room_id)) == {alice.user_id, bob.user_id, carol.user_id}
    loop = SyncLoop(alice, server, filter=lazy)
    answer = await loop.sync()
    assert members(state(answer, room_id)) == {alice.user_id, bob.user_id}  # the sender and the reader
    assert state_keys(state(answer, room_id)) >= ROOM_STATE - {("m.room.name", ""), ("m.room.topic", "")}

    # Carol speaks again: her member event comes with it, as she is new to this client.
    await carol.say(room_id, "again")
    answer = await loop.sync()
    assert bodies(timeline(answer, room_id)) == ["again"]
    assert members(state(answer, room_id)) == {carol.user_id}


async def test_the_transaction_id_goes_to_the_sending_device_only(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    phone = await another_device(alice)
    sent = (await alice.send(room_id, text("local echo"), txn_id="txn-42"))["event_id"]
    for reader, expected in ((alice, "txn-42"), (phone, None), (bob, None)):
        event = next(e for e in timeline(await sync(reader), room_id) if e["event_id"] == sent)
        assert event["unsigned"].get("transaction_id") == expected


async def test_bad_tokens_and_parameters_are_refused(api):
    (bob,) = await register(api, "bob")
    for since in ("nope", "s", "s-1", "s1x", "s" + "9" * 30):
        assert (await sync(bob, since, status=400))["errcode"] == "M_INVALID_PARAM"
    assert (await sync(bob, timeout="soon", status=400))["errcode"] == "M_INVALID_PARAM"
    missing = await api.request("GET", f"{MATRIX}/sync", status=401)
    assert missing["errcode"] == "M_MISSING_TOKEN"
    unknown = await api.request("GET", f"{MATRIX}/sync", token="not-a-token", status=401)
    assert unknown["errcode"] == "M_UNKNOWN_TOKEN"


# -- long-poll -----------------------------------------------------------------------------


async def test_a_long_poll_with_nothing_new_is_held_for_its_timeout(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    # An initial sync answers at once whatever its timeout.
    _, elapsed = await timed(loop.sync(timeout=5000))
    assert elapsed < 2
    answer, elapsed = await timed(loop.sync(timeout=1000, set_presence="online"))
    assert 0.8 <= elapsed <= 2.0, elapsed
    assert answer["rooms"] == {"join": {}, "invite": {}, "leave": {}}
    assert answer["presence"]["events"] == []
    for presence in ("unavailable", "offline"):
        answer, elapsed = await timed(loop.sync(timeout=0, set_presence=presence))
        assert elapsed < 1
        assert answer["rooms"] == {"join": {}, "invite": {}, "leave": {}}


async def test_a_new_event_ends_a_long_poll_at_once(api, server):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob)
    bobs, carols = SyncLoop(bob, server), SyncLoop(carol, server)
    await asyncio.gather(bobs.sync(), carols.sync())
    polls = [asyncio.ensure_future(timed(loop.sync(timeout=20_000))) for loop in (bobs, carols)]
    await long_polls_waiting(server, 2)
    assert not any(p.done() for p in polls)
    event_id = await alice.say(room_id, "wake up")
    await alice.invite(room_id, carol)  # carol is in no room: her invite wakes her
    (for_bob, bob_waited), (for_carol, carol_waited) = await asyncio.gather(*polls)
    assert bob_waited < 3 and carol_waited < 3
    assert ids_of(timeline(for_bob, room_id))[0] == event_id
    assert room_id in for_carol["rooms"]["invite"]


async def test_logout_ends_a_pending_long_poll(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    await loop.sync()
    answer, elapsed = await held_then_woken(
        loop, lambda: bob.call("POST", "/logout", schema="matrix/empty.response"), status=401
    )
    assert elapsed < 2, elapsed
    assert answer["errcode"] == "M_UNKNOWN_TOKEN"


async def test_successive_long_polls_deliver_each_event_once_in_order(api, server, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    wide = {"room": {"timeline": {"limit": 100}}}
    loops = {user.user_id: SyncLoop(user, server, filter=wide) for user in (alice, bob)}
    for loop in loops.values():
        await loop.sync()
    start = len(await stored_event_ids(database_dsn, room_id))

    async def talk():
        for n in range(30):
            speaker = alice if n % 2 else bob
            if n % 10 == 9:
                await speaker.put_state(room_id, "m.room.topic", {"topic": f"topic {n}"})
            else:
                await speaker.say(room_id, f"line {n}")
            await asyncio.sleep(0.01 * (n % 3))  # kept: writes spread among the receivers' long-polls

    async def receive(loop):
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(seen) < 30 and asyncio.get_running_loop().time() < deadline:
            answer = await loop.sync(timeout=2000)
            assert room(answer, room_id) is None or room(answer, room_id)["timeline"]["limited"] is False
            seen += ids_of(timeline(answer, room_id))
        return seen

    _, *received = await asyncio.gather(talk(), *(receive(loop) for loop in loops.values()))
    expected = (await stored_event_ids(database_dsn, room_id))[start:]
    assert len(expected) == 30
    for seen in received:
        assert seen == expected
    for loop in loops.values():
        assert (await loop.sync())["rooms"]["join"] == {}
