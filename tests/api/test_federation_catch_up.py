"""Two AtomChat servers over real HTTPS on 127.0.0.1: a server that missed
events while it was down catches up when the next event arrives. The
events it missed are not resent (as a sender that gave up on a long
outage does, Synapse sending only a room's newest event then): the
receiver fetches the gap with get_missing_events and the auth events the
gap's events cite with event_auth."""

from dataclasses import replace

from ..support.room_steps import bodies, register
from ..support.waiting import eventually
from .test_federation_transport import fast_retries


async def room_with_bob(a, b, *others):
    """Alice's public room on ``a``, which Bob of ``b`` (and ``others`` of ``a``) joined."""
    (alice, *locals_) = await register(a.api, "alice", *others)
    (bob,) = await register(b.api, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room_id}?server_name={a.name}", {}, schema="matrix/join.response")
    for user in locals_:
        await user.join(room_id)

    async def b_has_them():
        members = (
            await bob.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
        ).body["joined"]
        return len(members) == 2 + len(locals_)

    assert await eventually(b_has_them)
    return alice, bob, room_id, locals_


async def missed_by(a, b, send, clock=None) -> None:
    """Runs ``send`` while ``b`` is down; what ``a`` queued for it is then
    dropped (never resent), and ``b`` starts again (reading ``clock`` when
    one is given)."""
    fast_retries(a)
    await b.stop()
    await send()

    async def queued():
        return await a.ctx.pool.fetchval("SELECT count(*) FROM federation_outbox WHERE destination = $1", b.name)

    await eventually(queued)
    await eventually(lambda: _backing_off(a, b))
    await a.ctx.pool.execute("DELETE FROM federation_outbox WHERE destination = $1", b.name)
    if clock is not None:
        b.clock = clock
    await b.start()


async def _backing_off(a, b) -> bool:
    return a.ctx.outbox.backing_off(b.name)


async def test_a_server_back_from_an_outage_fetches_the_events_it_missed(federation_pair):
    a, b = federation_pair
    alice, bob, room_id, _ = await room_with_bob(a, b)

    async def say_three():
        for body in ("one", "two", "three"):
            await alice.say(room_id, body)

    await missed_by(a, b, say_three)
    bob = replace(bob, api=b.api)  # b's client port is a new one
    await alice.say(room_id, "four")  # the only one b is sent

    async def bob_has_all():
        events, _ = await bob.all_messages(room_id, limit=100, dir="f")
        return bodies(events)[-4:] == ["one", "two", "three", "four"]

    assert await eventually(bob_has_all)


async def test_a_gap_longer_than_one_answer_is_fetched_whole(federation_pair):
    """45 missed: more than one get_missing_events answer (20), so b asks
    again from the oldest it was given until the gap is closed."""
    a, b = federation_pair
    alice, bob, room_id, _ = await room_with_bob(a, b)

    async def say_many():
        for n in range(45):
            await alice.say(room_id, f"m{n}")

    await missed_by(a, b, say_many)
    bob = replace(bob, api=b.api)
    await alice.say(room_id, "last")

    async def bob_has_all():
        events, _ = await bob.all_messages(room_id, limit=100, dir="f")
        return "last" in bodies(events) and events

    events = await eventually(bob_has_all)
    assert bodies(events)[-46:] == [f"m{n}" for n in range(45)] + ["last"]


async def test_auth_events_beyond_the_fetched_gap_are_fetched_with_event_auth(federation_pair):
    """More missed than a batch fetches with get_missing_events (100): the
    power levels that let Carol set the topic lie beyond it, so b fetches
    them as the auth events the gap's events cite, and they become its
    current state."""
    a, b = federation_pair
    alice, bob, room_id, (carol,) = await room_with_bob(a, b, "carol")

    async def empower_then_chat():
        levels = (await alice.get_state(room_id, "m.room.power_levels")).body
        await alice.put_state(
            room_id, "m.room.power_levels", {**levels, "users": {**levels.get("users", {}), carol.user_id: 50}}
        )
        for n in range(105):
            await alice.say(room_id, f"m{n}")

    await missed_by(a, b, empower_then_chat)
    bob = replace(bob, api=b.api)
    await carol.put_state(room_id, "m.room.topic", {"topic": "set by Carol"})

    async def bob_sees_the_topic():
        state = (await bob.state(room_id)).body
        return any(e["type"] == "m.room.topic" and e["content"] == {"topic": "set by Carol"} for e in state)

    assert await eventually(bob_sees_the_topic)
    levels = (await bob.get_state(room_id, "m.room.power_levels")).body
    assert levels["users"][carol.user_id] == 50
    events, _ = await bob.all_messages(room_id, limit=200, dir="f")
    assert bodies(events)[-100:] == [f"m{n}" for n in range(5, 105)]


async def test_a_join_taken_in_is_relayed_to_the_rooms_other_servers(federation_trio):
    """Bob of b joins Alice's room through a, where Carl of c is already: a
    sends Bob's join on to c itself (a joining Synapse would not)."""
    a, b, c = federation_trio
    (alice,) = await register(a.api, "alice")
    (bob,) = await register(b.api, "bob")
    (carl,) = await register(c.api, "carl")
    room_id = await alice.create_room(preset="public_chat")
    await carl.call("POST", f"/join/{room_id}?server_name={a.name}", {}, schema="matrix/join.response")
    join = await bob.call("POST", f"/join/{room_id}?server_name={a.name}", {}, schema="matrix/join.response")
    assert join.body == {"room_id": room_id}
    bob_join = (await alice.get_state(room_id, "m.room.member", bob.user_id)).body
    assert bob_join["membership"] == "join"
    conn = a.ctx.pool
    join_id = await conn.fetchval(
        "SELECT event_id FROM memberships WHERE room_id = $1 AND user_id = $2", room_id, bob.user_id
    )

    async def c_heard_it_from_a():
        answers = await c.ctx.pool.fetch("SELECT response FROM federation_received_txns WHERE origin = $1", a.name)
        return any(join_id in answer["response"]["pdus"] for answer in answers)

    assert await eventually(c_heard_it_from_a)

    async def carl_sees_bob():
        members = await carl.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
        return bob.user_id in members.body["joined"]

    assert await eventually(carl_sees_bob)
