"""To-device messages over real HTTP and the WebSocket stream: delivered to
the devices named, repeated until the device acknowledges them by coming
back with a later token, then never again; once per transaction id; and
each exactly once, in each sender's order, under concurrent senders."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ..support.client import ApiClient
from ..support.e2ee_steps import device_keys, send_to_device, upload
from ..support.room_steps import User, another_device, bodies, register, room_of
from ..support.stream_steps import Stream
from ..support.sync_steps import SyncLoop, held_then_woken, on, sync, timeline
from ..support.waiting import eventually


def received(answer) -> list[tuple[str, str, dict]]:
    return [(m["sender"], m["type"], m["content"]) for m in answer["to_device"]["events"]]


async def test_delivered_until_acknowledged_then_deleted(api, server):
    alice, bob = await register(api, "alice", "bob")
    bob_loop = SyncLoop(bob, server)
    first = await bob_loop.sync()
    assert first["to_device"]["events"] == []
    t1 = bob_loop.since

    message = {"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": {"k": {"type": 0, "body": "b"}}}
    answer, elapsed = await held_then_woken(
        bob_loop, lambda: send_to_device(alice, {bob.user_id: {bob.device_id: message}}, event_type="m.room.encrypted")
    )
    assert received(answer) == [(alice.user_id, "m.room.encrypted", message)]
    assert elapsed < 5
    t2 = bob_loop.since
    # Not acknowledged yet: a retry from the older token gets it again.
    assert received(await sync(bob, t1)) == [(alice.user_id, "m.room.encrypted", message)]
    # Coming back with the later token acknowledges it: gone for good.
    assert received(await sync(bob, t2)) == []
    assert received(await sync(bob, t1)) == []
    assert received(await sync(bob)) == []


async def test_named_devices_star_and_transaction_ids(api, server):
    alice, bob = await register(api, "alice", "bob")
    bob_phone = await another_device(bob)
    alice_phone = await another_device(alice)
    loops = {
        name: SyncLoop(user, server)
        for name, user in (("bob", bob), ("bob_phone", bob_phone), ("alice_phone", alice_phone))
    }
    for loop in loops.values():
        await loop.sync()
    await send_to_device(
        alice, {bob.user_id: {"*": {"n": 1}}, alice.user_id: {alice_phone.device_id: {"n": 2}}}, txn_id="t1"
    )
    await send_to_device(alice, {bob.user_id: {"*": {"n": 1}}}, txn_id="t1")  # a retry: nothing new
    await send_to_device(
        alice,
        {
            bob.user_id: {bob_phone.device_id: {"n": 3}, "NO_SUCH_DEVICE": {"n": 4}},
            "@ghost:test.local": {"*": {"n": 5}},
            "@far:elsewhere.org": {"X": {"n": 6}},
        },
        txn_id="t2",
    )
    # The same transaction id from another device is another request.
    await send_to_device(alice_phone, {bob.user_id: {bob.device_id: {"n": 7}}}, txn_id="t1")
    contents = {name: [m[2]["n"] for m in received(await loop.sync())] for name, loop in loops.items()}
    assert contents == {"bob": [1, 7], "bob_phone": [1, 3], "alice_phone": [2]}


async def test_bad_requests_send_nothing(api, server):
    alice, bob = await register(api, "alice", "bob")
    bob_loop = SyncLoop(bob, server)
    await bob_loop.sync()
    refused: tuple[dict[str, Any], ...] = (
        {},
        {"messages": []},
        {"messages": {bob.user_id: {bob.device_id: "text"}}},
        {"messages": {bob.user_id: []}},
        {"messages": {bob.user_id: {"": {}}}},
    )
    for body in refused:
        await alice.call("PUT", "/sendToDevice/org.example/tx", body, status=400)
    await alice.api.request(
        "PUT",
        "/_matrix/client/v3/sendToDevice/org.example/tx",
        {"messages": {bob.user_id: {bob.device_id: {}}}},
        status=401,
    )
    assert received(await bob_loop.sync()) == []


async def test_exactly_once_in_sender_order_under_concurrent_senders(api, server):
    bob, *senders = await register(api, "bob", *(f"s{i}" for i in range(5)))
    per_sender = 12
    loop = SyncLoop(bob, server)
    await loop.sync()
    got: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def follow():
        while not done.is_set() or len(got) < per_sender * len(senders):
            answer = await loop.sync(timeout=1000)
            got.extend((m[0], m[2]["seq"]) for m in received(answer))

    async def send_all(sender):
        for seq in range(per_sender):
            await send_to_device(sender, {bob.user_id: {bob.device_id: {"seq": seq}}})

    follower = asyncio.ensure_future(follow())
    await asyncio.gather(*(send_all(sender) for sender in senders))
    done.set()
    await asyncio.wait_for(follower, 30)
    assert len(got) == len(set(got)) == per_sender * len(senders), "a message missed or repeated"
    for sender in senders:
        assert [seq for who, seq in got if who == sender.user_id] == list(range(per_sender))
    assert received(await loop.sync()) == []


async def test_the_stream_delivers_each_once_across_a_reconnect(api, server):
    alice, bob = await register(api, "alice", "bob")
    stream = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()  # the initial sync
    await send_to_device(alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    frames = await stream.sync_until(lambda fs: any(f["to_device"]["events"] for f in fs))
    assert [m["content"] for f in frames for m in f["to_device"]["events"]] == [{"n": 1}]
    resume = stream.next_batch
    assert resume is not None
    await stream.close()
    again = await Stream.open(server.base_url, token=bob.access_token, since=resume)
    await send_to_device(alice, {bob.user_id: {bob.device_id: {"n": 2}}})
    frames = await again.sync_until(lambda fs: any(f["to_device"]["events"] for f in fs))
    assert [m["content"] for f in frames for m in f["to_device"]["events"]] == [{"n": 2}]
    await again.close()


async def waiting_messages(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM to_device_messages")
    finally:
        await conn.close()


async def test_a_stream_acknowledges_what_it_received_by_answering_a_ping(api, server, database_dsn, clock):
    alice, bob = await register(api, "alice", "bob")
    stream = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()
    await send_to_device(alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    assert await waiting_messages(database_dsn) == 1
    await stream.sync_until(lambda fs: any(f["to_device"]["events"] for f in fs))
    assert await waiting_messages(database_dsn) == 1  # not before the ping is answered
    # The next beat pings; the client's WebSocket layer answers by itself.
    clock.advance(server.atomchat.settings.websocket_ping_seconds)

    async def acknowledged():
        return await waiting_messages(database_dsn) == 0

    await eventually(acknowledged, what="the acknowledgement")
    await stream.close()


async def test_two_servers_wake_each_other_for_to_device_and_device_lists(api, more_servers):
    """As behind a load balancer: what is written through one server reaches
    long-polls held on the other at once (LISTEN/NOTIFY), each message once."""
    second = ApiClient((await more_servers()).base_url)
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    bob_there = SyncLoop(on(bob, second))
    await bob_there.sync()
    answer, elapsed = await held_then_woken(
        bob_there, lambda: send_to_device(alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    )
    assert [m[2] for m in received(answer)] == [{"n": 1}] and elapsed < 2
    answer, elapsed = await held_then_woken(bob_there, lambda: upload(alice, {"device_keys": device_keys(alice)}))
    assert answer["device_lists"]["changed"] == [alice.user_id] and elapsed < 2

    # Senders on both servers at once, the receiver following its tokens on both in turn.
    got: list[int] = []
    loops = [SyncLoop(bob), SyncLoop(on(bob, second))]
    loops[0].since = loops[1].since = bob_there.since

    async def send_all(sender: User, first: int) -> None:
        for n in range(first, first + 15):
            await send_to_device(sender, {bob.user_id: {bob.device_id: {"n": n}}})

    senders = asyncio.gather(send_all(alice, 100), send_all(on(alice, second), 200))
    turn = 0
    while not senders.done() or len(got) < 30:
        loop, other = loops[turn % 2], loops[(turn + 1) % 2]
        answer = await loop.sync(timeout=500)
        other.since = loop.since
        got.extend(m[2]["n"] for m in received(answer))
        turn += 1
        assert turn < 500, got
    await senders
    assert sorted(got) == [*range(100, 115), *range(200, 215)]
    assert [n for n in got if n < 200] == list(range(100, 115))
    assert [n for n in got if n >= 200] == list(range(200, 215))


async def test_many_waiting_messages_come_a_hundred_at_a_time_in_one_order(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    loop = SyncLoop(bob, server)
    await loop.sync()
    for n in range(130):  # one after another: their positions follow n
        await send_to_device(alice, {bob.user_id: {bob.device_id: {"n": n}}})
        if n == 110:
            await alice.say(room_id, "after the 110th")
    first = await loop.sync()
    assert [m[2]["n"] for m in received(first)] == list(range(100))
    # The answer stops at the 100th message: the room's later message is in the next one.
    assert bodies(timeline(first, room_id)) == []
    second = await loop.sync()
    assert [m[2]["n"] for m in received(second)] == list(range(100, 130))
    assert bodies(timeline(second, room_id)) == ["after the 110th"]
    assert received(await loop.sync()) == []


async def test_the_stream_sends_many_waiting_messages_in_frames_of_a_hundred(api, server):
    alice, bob = await register(api, "alice", "bob")
    await asyncio.gather(*(send_to_device(alice, {bob.user_id: {bob.device_id: {"n": n}}}) for n in range(150)))
    stream = await Stream.open(server.base_url, token=bob.access_token)
    frames = await stream.sync_until(lambda fs: sum(len(f["to_device"]["events"]) for f in fs) >= 150)
    assert [len(f["to_device"]["events"]) for f in frames] == [100, 50]
    assert sorted(m["content"]["n"] for f in frames for m in f["to_device"]["events"]) == list(range(150))
    await stream.close()
