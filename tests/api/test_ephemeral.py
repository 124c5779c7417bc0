"""Typing notices, receipts, read markers, unread counts and account data,
set over real HTTP and seen through /sync: each reaches the clients that
may see it, once, and wakes their long-polls."""

import asyncio
from typing import Any

from ..support.client import path_param
from ..support.room_steps import register, room_of
from ..support.sync_steps import SyncLoop, ephemeral, long_polls_waiting, room, sync, timed

EMPTY = "matrix/empty.response"


async def typing(user, room_id, is_typing, *, timeout=None, target=None, status=200):
    body = {"typing": is_typing} if timeout is None else {"typing": is_typing, "timeout": timeout}
    return await user.call(
        "PUT", f"/rooms/{room_id}/typing/{path_param(target or user.user_id)}", body, status=status, schema=EMPTY
    )


async def receipt(user, room_id, event_id, receipt_type="m.read", *, status=200):
    return await user.call(
        "POST", f"/rooms/{room_id}/receipt/{receipt_type}/{path_param(event_id)}", {}, status=status, schema=EMPTY
    )


def account_data_path(user_id, data_type, room_id=None):
    where = f"/rooms/{room_id}" if room_id else ""
    return f"/user/{path_param(user_id)}{where}/account_data/{data_type}"


async def put_account_data(user, data_type, content, room_id=None, *, owner=None, status=200):
    return await user.call(
        "PUT", account_data_path(owner or user.user_id, data_type, room_id), content, status=status, schema=EMPTY
    )


async def get_account_data(user, data_type, room_id=None, *, owner=None, status=200):
    return await user.call(
        "GET",
        account_data_path(owner or user.user_id, data_type, room_id),
        status=status,
        schema="matrix/account_data.response",
    )


def typers(answer, room_id):
    """The user_ids of each m.typing event of the room in the answer."""
    return [content["user_ids"] for content in ephemeral(answer, room_id, "m.typing")]


def receipts(answer, room_id):
    """The room's m.receipt contents merged: {event_id: {type: {user_id: receipt}}}."""
    merged: dict[str, Any] = {}
    for content in ephemeral(answer, room_id, "m.receipt"):
        for event_id, by_type in content.items():
            for receipt_type, by_user in by_type.items():
                merged.setdefault(event_id, {}).setdefault(receipt_type, {}).update(by_user)
    return merged


def unread(answer, room_id):
    return room(answer, room_id)["unread_notifications"]["notification_count"]


def room_account_data(answer, room_id):
    found = room(answer, room_id)
    return found["account_data"]["events"] if found else []


# -- typing ----------------------------------------------------------------------------------


async def test_typing_shows_in_sync_until_it_stops(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    await loop.sync()
    poll = asyncio.ensure_future(timed(loop.sync(timeout=10_000)))
    await long_polls_waiting(server, 1)
    await typing(alice, room_id, True, timeout=30_000)
    answer, elapsed = await poll
    assert elapsed < 3  # the notice ends the long-poll
    assert typers(answer, room_id) == [[alice.user_id]]
    assert room(answer, room_id)["timeline"]["events"] == []
    assert (await loop.sync())["rooms"]["join"] == {}  # told once

    await typing(bob, room_id, True, timeout=30_000)
    assert typers(await loop.sync(), room_id) == [sorted([alice.user_id, bob.user_id])]
    assert typers(await sync(alice), room_id) == [sorted([alice.user_id, bob.user_id])]
    await typing(alice, room_id, False)
    assert typers(await loop.sync(), room_id) == [[bob.user_id]]
    await typing(bob, room_id, False)
    assert typers(await loop.sync(), room_id) == [[]]
    assert typers(await sync(bob), room_id) == []  # an initial sync shows no one typing


async def test_a_notice_set_while_an_answer_is_built_is_told_once(api, server):
    """An answer built from the database holds the typers of one moment and
    the typing position of that same moment: a notice set while it is
    being built is told in the next answer, at once (the new session
    followed no room yet, so the notice flagged nothing), and not in this
    one under a position from before it (which made the next tell it again)."""
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    since = (await sync(bob))["next_batch"]
    builder = server.atomchat.ctx.sync
    original = builder._ephemeral

    async def with_a_notice_meanwhile(*args, **kwargs):
        builder._ephemeral = original
        await typing(alice, room_id, True, timeout=30_000)
        return await original(*args, **kwargs)

    builder._ephemeral = with_a_notice_meanwhile
    # A filter the parked session was not made with: this answer is built from the database.
    built = await sync(bob, since, filter={"room": {}})
    assert builder._ephemeral is original, "the answer was not built from the database"
    resumed = await sync(bob, built["next_batch"], filter={"room": {}}, timeout=0)
    assert typers(built, room_id) + typers(resumed, room_id) == [[alice.user_id]]


async def test_typing_lapses_by_itself_after_its_timeout(api, server, clock):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    await loop.sync()
    await typing(alice, room_id, True, timeout=30_000)
    assert typers(await loop.sync(), room_id) == [[alice.user_id]]
    clock.advance(29)
    assert typers(await loop.sync(timeout=0), room_id) == []  # not yet: nothing changed
    # Nobody writes anything more: the server ends the notice and wakes the long-poll.
    poll = asyncio.ensure_future(loop.sync(timeout=10_000))
    await long_polls_waiting(server, 1)
    clock.advance(1)
    answer, elapsed = await timed(poll)
    assert typers(answer, room_id) == [[]]
    assert elapsed < 3.5
    assert (await loop.sync())["rooms"]["join"] == {}


async def test_renewed_typing_does_not_lapse_at_the_first_timeout(api, server, clock):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await typing(alice, room_id, True, timeout=800)
    clock.advance(0.5)
    await typing(alice, room_id, True, timeout=5000)
    clock.advance(0.6)  # past the first timeout
    assert typers(await sync(bob), room_id) == [[alice.user_id]]
    clock.advance(4.5)  # past the second
    assert typers(await sync(bob), room_id) == []


async def test_typing_refusals(api):
    alice, bob, eve = await register(api, "alice", "bob", "eve")
    room_id = await room_of(alice, bob)
    assert (await typing(eve, room_id, True, status=403))["errcode"] == "M_FORBIDDEN"
    assert (await typing(alice, room_id, True, target=bob.user_id, status=403))["errcode"] == "M_FORBIDDEN"
    assert (await typing(alice, "!nowhere:test.local", True, status=404))["errcode"] == "M_NOT_FOUND"
    await alice.call("PUT", f"/rooms/{room_id}/typing/{path_param(alice.user_id)}", {"timeout": 5}, status=400)
    await bob.leave(room_id)
    assert (await typing(bob, room_id, True, status=403))["errcode"] == "M_FORBIDDEN"
    assert typers(await sync(alice), room_id) == []


# -- receipts and read markers -------------------------------------------------------------


async def test_read_receipts_reach_the_room_and_private_ones_only_their_owner(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    first = await alice.say(room_id, "one")
    second = await alice.say(room_id, "two")
    alices = SyncLoop(alice, server)
    await alices.sync()

    poll = asyncio.ensure_future(timed(alices.sync(timeout=10_000)))
    await long_polls_waiting(server, 1)
    await receipt(bob, room_id, first)
    answer, elapsed = await poll
    assert elapsed < 3
    seen = receipts(answer, room_id)
    assert list(seen) == [first] and list(seen[first]) == ["m.read"] and list(seen[first]["m.read"]) == [bob.user_id]
    assert isinstance(seen[first]["m.read"][bob.user_id]["ts"], int)

    await receipt(bob, room_id, second, "m.read.private")
    assert (await alices.sync())["rooms"]["join"] == {}  # not for alice's eyes
    assert receipts(await sync(alice), room_id) == {first: seen[first]}
    own = receipts(await sync(bob), room_id)
    assert set(own[second]["m.read.private"]) == {bob.user_id}
    assert set(own[first]["m.read"]) == {bob.user_id}


async def test_receipts_never_move_backwards(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    first = await alice.say(room_id, "one")
    second = await alice.say(room_id, "two")
    await receipt(bob, room_id, second)
    alices = SyncLoop(alice, server)
    await alices.sync()
    await receipt(bob, room_id, first)  # accepted, but bob has read further already
    assert (await alices.sync())["rooms"]["join"] == {}
    seen = receipts(await sync(alice), room_id)
    assert list(seen) == [second] and set(seen[second]["m.read"]) == {bob.user_id}
    assert unread(await sync(bob), room_id) == 0


async def test_receipt_refusals(api):
    alice, bob, eve = await register(api, "alice", "bob", "eve")
    room_id = await room_of(alice, bob)
    other_room = await room_of(alice)
    event_id = await alice.say(room_id, "hello")
    elsewhere = await alice.say(other_room, "elsewhere")
    unknown_event = "$" + "x" * 43
    assert (await receipt(bob, room_id, unknown_event, status=404))["errcode"] == "M_NOT_FOUND"
    assert (await receipt(alice, room_id, elsewhere, status=404))["errcode"] == "M_NOT_FOUND"
    assert (await receipt(eve, room_id, event_id, status=403))["errcode"] == "M_FORBIDDEN"
    await receipt(bob, room_id, event_id, "m.nonsense", status=400)
    markers = await bob.call("POST", f"/rooms/{room_id}/read_markers", {"m.fully_read": unknown_event}, status=404)
    assert markers["errcode"] == "M_NOT_FOUND"
    assert receipts(await sync(alice), room_id) == {}


async def test_read_markers_set_the_fully_read_marker_and_the_receipt(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    first = await alice.say(room_id, "one")
    second = await alice.say(room_id, "two")
    bobs, alices = SyncLoop(bob, server), SyncLoop(alice, server)
    await asyncio.gather(bobs.sync(), alices.sync())
    await bob.call("POST", f"/rooms/{room_id}/read_markers", {"m.fully_read": first, "m.read": second}, schema=EMPTY)

    for_bob = await bobs.sync()
    assert room(for_bob, room_id)["account_data"]["events"] == [
        {"type": "m.fully_read", "content": {"event_id": first}}
    ]
    assert set(receipts(for_bob, room_id)[second]["m.read"]) == {bob.user_id}
    assert (await get_account_data(bob, "m.fully_read", room_id)).body == {"event_id": first}
    for_alice = await alices.sync()
    assert room_account_data(for_alice, room_id) == []  # the marker is bob's own
    assert set(receipts(for_alice, room_id)[second]["m.read"]) == {bob.user_id}

    # The receipt endpoint moves the marker too.
    await receipt(bob, room_id, second, "m.fully_read")
    assert room_account_data(await bobs.sync(), room_id) == [{"type": "m.fully_read", "content": {"event_id": second}}]
    assert (await bobs.sync())["rooms"]["join"] == {}


async def test_unread_counts_follow_the_read_receipt(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    bobs = SyncLoop(bob, server)
    assert unread(await bobs.sync(), room_id) == 0  # the room's setup is not unread
    mine = [await alice.say(room_id, f"m{n}") for n in range(3)]
    await bob.say(room_id, "my own")  # a reader's own messages do not count
    assert unread(await bobs.sync(), room_id) == 3
    await receipt(bob, room_id, mine[1])
    assert unread(await bobs.sync(), room_id) == 1
    await receipt(bob, room_id, mine[2])
    assert unread(await bobs.sync(), room_id) == 0
    await alice.say(room_id, "more")
    assert unread(await bobs.sync(), room_id) == 1
    assert unread(await sync(bob), room_id) == 1
    assert unread(await sync(alice), room_id) == 1  # bob's message, after alice's own sends


# -- account data ----------------------------------------------------------------------------


async def test_account_data_global_and_per_room_reaches_its_owner_once(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    bobs, alices = SyncLoop(bob, server), SyncLoop(alice, server)
    await asyncio.gather(bobs.sync(), alices.sync())

    poll = asyncio.ensure_future(timed(bobs.sync(timeout=10_000)))
    await long_polls_waiting(server, 1)
    await put_account_data(bob, "org.example.settings", {"theme": "dark"})
    answer, elapsed = await poll
    assert elapsed < 3
    assert answer["account_data"]["events"] == [{"type": "org.example.settings", "content": {"theme": "dark"}}]
    assert (await get_account_data(bob, "org.example.settings")).body == {"theme": "dark"}

    await put_account_data(bob, "org.example.pinned", {"pinned": ["x"]}, room_id)
    answer = await bobs.sync()
    assert answer["account_data"]["events"] == []
    assert room_account_data(answer, room_id) == [{"type": "org.example.pinned", "content": {"pinned": ["x"]}}]
    assert room(answer, room_id)["timeline"]["events"] == []
    assert (await get_account_data(bob, "org.example.pinned", room_id)).body == {"pinned": ["x"]}
    # Global and per-room data of one type are separate.
    await get_account_data(bob, "org.example.pinned", status=404)

    again = await bobs.sync()
    assert again["account_data"]["events"] == [] and again["rooms"]["join"] == {}
    await put_account_data(bob, "org.example.settings", {"theme": "light"})
    assert (await bobs.sync())["account_data"]["events"] == [
        {"type": "org.example.settings", "content": {"theme": "light"}}
    ]

    initial = await sync(bob)
    assert initial["account_data"]["events"] == [{"type": "org.example.settings", "content": {"theme": "light"}}]
    assert room_account_data(initial, room_id) == [{"type": "org.example.pinned", "content": {"pinned": ["x"]}}]
    # Nothing of it reaches alice.
    for_alice = await alices.sync()
    assert for_alice["account_data"]["events"] == [] and for_alice["rooms"]["join"] == {}
    assert (await sync(alice))["account_data"]["events"] == []


async def test_account_data_refusals(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    for managed in ("m.fully_read", "m.push_rules"):
        for where in (None, room_id):
            refused = await put_account_data(bob, managed, {"event_id": "$x"}, where, status=405)
            assert refused["errcode"] == "M_BAD_JSON"
    assert (await get_account_data(bob, "org.example.never", status=404))["errcode"] == "M_NOT_FOUND"
    assert (await get_account_data(bob, "org.example.never", room_id, status=404))["errcode"] == "M_NOT_FOUND"
    await put_account_data(bob, "org.example.mine", {"a": 1})
    assert (await get_account_data(alice, "org.example.mine", owner=bob.user_id, status=403))[
        "errcode"
    ] == "M_FORBIDDEN"
    assert (await put_account_data(alice, "org.example.mine", {"a": 2}, owner=bob.user_id, status=403))[
        "errcode"
    ] == "M_FORBIDDEN"
    await put_account_data(bob, "org.example.mine", {"a": 1}, "!nowhere:test.local", status=404)
    await bob.call("PUT", account_data_path(bob.user_id, "org.example.mine"), raw="[1, 2]", status=400)
    assert (await get_account_data(bob, "org.example.mine")).body == {"a": 1}
