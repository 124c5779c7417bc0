"""Sending and reading the timeline: whole conversations, idempotent sends,
/messages pagination both ways with exact order (checked against the
stored stream), its filters, tokens that outlive the server process, and
/event and /context."""

import asyncio
import json

import asyncpg

from atomchat_server.app import WRITER_NAME

from ..support.client import ApiClient
from ..support.room_steps import User, another_device, bodies, ids_of, register, room_of, stored_event_ids, text


async def test_a_whole_conversation(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="private_chat", name="Plans")
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    lines = [(alice, "hello bob"), (bob, "hi alice"), (alice, "lunch?"), (bob, "yes, at noon"), (alice, "see you")]
    sent = []
    for speaker, line in lines:
        sent.append(await speaker.say(room_id, line))
    for reader in (alice, bob):
        page = await reader.messages(room_id, limit=len(lines), dir="b")
        assert ids_of(page["chunk"]) == sent[::-1]
        assert bodies(page["chunk"]) == [line for _, line in lines][::-1]
        assert [e["sender"] for e in page["chunk"]] == [s.user_id for s, _ in lines][::-1]
        for event in page["chunk"]:
            assert event["room_id"] == room_id
            assert event["unsigned"]["age"] >= 0
            # The sending device alone sees its transaction id (local echo).
            assert ("transaction_id" in event["unsigned"]) == (event["sender"] == reader.user_id)
    joined = await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(joined["joined"]) == {alice.user_id, bob.user_id}
    assert await bob.joined_rooms() == [room_id]


async def test_unknown_event_types_are_stored_as_sent(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    content = {"nested": {"list": [1, 2.5, None, True], "text": "ünïcødé ✓"}, "n": -3}
    event_id = (await alice.send(room_id, content, event_type="org.example.custom"))["event_id"]
    event = await alice.event(room_id, event_id)
    assert (event["type"], event["content"], event["sender"]) == ("org.example.custom", content, alice.user_id)
    assert "state_key" not in event.body


async def test_a_retried_transaction_stores_one_event(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    before = len(await stored_event_ids(database_dsn, room_id))
    first = await alice.send(room_id, text("once"), txn_id="txn-1")
    again = await alice.send(room_id, text("once"), txn_id="txn-1")
    assert again["event_id"] == first["event_id"]
    # Another user may use the same transaction id: it is theirs alone.
    other_user = await bob.send(room_id, text("mine"), txn_id="txn-1")
    assert other_user["event_id"] != first["event_id"]
    # So may the same user from another device.
    laptop = await another_device(alice)
    other_device = await laptop.send(room_id, text("once"), txn_id="txn-1")
    assert other_device["event_id"] != first["event_id"]
    stored = await stored_event_ids(database_dsn, room_id)
    assert stored[before:] == [first["event_id"], other_user["event_id"], other_device["event_id"]]
    # Each device sees the transaction id of its own send only.
    for device, own in ((alice, first), (laptop, other_device)):
        page = await device.messages(room_id, limit=3)
        echoed = {e["event_id"]: e["unsigned"].get("transaction_id") for e in page["chunk"]}
        assert echoed == {e["event_id"]: ("txn-1" if e["event_id"] == own["event_id"] else None) for e in page["chunk"]}


async def test_concurrent_retries_of_one_transaction_store_one_event(api, database_dsn):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    before = len(await stored_event_ids(database_dsn, room_id))
    answers = await asyncio.gather(*(alice.send(room_id, text("hurried"), txn_id="same") for _ in range(20)))
    assert len({a["event_id"] for a in answers}) == 1
    assert (await stored_event_ids(database_dsn, room_id))[before:] == [answers[0]["event_id"]]


async def writer_pids(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", WRITER_NAME
        )
        return [row["pid"] for row in rows]
    finally:
        await conn.close()


async def test_sends_after_the_writer_lost_its_connection_are_each_committed_once(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    first = await alice.say(room_id, "before")
    (old,) = await writer_pids(database_dsn)
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", old)
    finally:
        await conn.close()
    later = [await alice.say(room_id, f"after {n}") for n in range(3)]
    events, _ = await bob.all_messages(room_id, limit=50, dir="f")
    messages = [e for e in events if e["type"] == "m.room.message"]
    assert ids_of(messages) == [first, *later]
    assert bodies(messages) == ["before", "after 0", "after 1", "after 2"]
    assert (await writer_pids(database_dsn)) not in ([], [old])


async def test_sending_needs_membership(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    refused = await bob.send(room_id, text("let me in"), status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    not_object = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/t1", raw="[1, 2]", status=400)
    assert not_object["errcode"] == "M_BAD_JSON"
    not_json = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/t2", raw="{oops", status=400)
    assert not_json["errcode"] == "M_NOT_JSON"


async def send_many(users: list[User], room_id: str, count: int, batch: int) -> list[str]:
    """Sends ``count`` messages in concurrent batches, the users taking turns."""
    sent = []
    for start in range(0, count, batch):
        sent += await asyncio.gather(
            *(users[i % len(users)].say(room_id, f"message {i}") for i in range(start, min(start + batch, count)))
        )
    return sent


async def test_pagination_over_hundreds_of_messages_both_ways(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    sent = await send_many([alice, bob], room_id, 300, batch=50)
    stored = await stored_event_ids(database_dsn, room_id)
    assert len(stored) == 308 and set(sent) <= set(stored)  # 8 events made the room and let bob in

    # Backwards from the newest event: exact stream order, every event once.
    backwards, pages = await bob.all_messages(room_id, limit=50, dir="b")
    assert ids_of(backwards) == stored[::-1]
    assert pages == 7
    # Forwards from the first event.
    forwards, pages = await alice.all_messages(room_id, limit=50, dir="f")
    assert ids_of(forwards) == stored
    assert pages == 7
    # When the last page is full, it still has no `end`: no empty page follows.
    for direction, expected in (("b", stored[::-1]), ("f", stored)):
        walked, pages = await bob.all_messages(room_id, limit=44, dir=direction)
        assert ids_of(walked) == expected
        assert pages == 308 // 44

    # A backwards token also reads forwards: the two pages just read, in order.
    first = await bob.messages(room_id, limit=50, dir="b")
    second = await bob.messages(room_id, limit=50, dir="b", **{"from": first["end"]})
    again, _ = await bob.all_messages(room_id, limit=30, dir="f", **{"from": second["end"]})
    assert ids_of(again) == stored[-100:]

    # `to` bounds a walk in either direction at the same point.
    newest = await bob.messages(room_id, limit=1000, dir="b", to=second["end"])
    assert ids_of(newest["chunk"]) == stored[-100:][::-1]
    assert "end" not in newest.body
    oldest, _ = await bob.all_messages(room_id, limit=60, dir="f", to=second["end"])
    assert ids_of(oldest) == stored[:-100]
    # Starting from a forward page's `end` goes on where it stopped.
    page = await alice.messages(room_id, limit=100, dir="f")
    rest, _ = await alice.all_messages(room_id, limit=100, dir="f", **{"from": page["end"]})
    assert ids_of(page["chunk"]) + ids_of(rest) == stored


async def test_default_page_is_ten_newest(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    sent = [await alice.say(room_id, f"m{i}") for i in range(12)]
    page = await alice.messages(room_id)
    assert ids_of(page["chunk"]) == sent[::-1][:10]
    assert "end" in page.body


async def test_filters(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    said = {}
    for speaker, line in [(alice, "a1"), (bob, "b1"), (carol, "c1"), (bob, "b2"), (alice, "a2")]:
        said[line] = await speaker.say(room_id, line)
    custom = (await carol.send(room_id, {"x": 1}, event_type="org.example.ping"))["event_id"]
    await alice.put_state(room_id, "m.room.topic", {"topic": "filters"})

    async def walk(event_filter, **params):
        events, _ = await bob.all_messages(room_id, limit=3, dir="f", filter=json.dumps(event_filter), **params)
        return events

    messages = await walk({"types": ["m.room.message"]})
    assert bodies(messages) == ["a1", "b1", "c1", "b2", "a2"] and len(messages) == 5
    assert ids_of(await walk({"types": ["org.example.*"]})) == [custom]
    everything_but = await walk({"not_types": ["m.room.message", "m.room.member"]})
    assert "m.room.message" not in {e["type"] for e in everything_but}
    assert [e["type"] for e in everything_but][-2:] == ["org.example.ping", "m.room.topic"]
    wildcard = await walk({"types": ["m.room.*"], "not_types": ["m.room.member", "m.room.message"]})
    assert all(e["type"].startswith("m.room.") for e in wildcard) and wildcard[-1]["type"] == "m.room.topic"
    from_bob = await walk({"types": ["m.room.message"], "senders": [bob.user_id]})
    assert bodies(from_bob) == ["b1", "b2"]
    not_bob = await walk({"types": ["m.room.message"], "not_senders": [bob.user_id, carol.user_id]})
    assert bodies(not_bob) == ["a1", "a2"]
    nobody = await walk({"senders": []})
    assert nobody == []
    # A limit in the filter caps the page.
    page = await bob.messages(room_id, dir="b", filter={"limit": 2, "types": ["m.room.message"]})
    assert bodies(page["chunk"]) == ["a2", "b2"]


async def test_lazy_loaded_members_come_with_the_page(api):
    alice, bob, carol, dave = await register(api, "alice", "bob", "carol", "dave")
    room_id = await room_of(alice, bob, carol, dave)
    await bob.say(room_id, "from bob")
    await carol.say(room_id, "from carol")
    page = await dave.messages(room_id, limit=2, filter={"lazy_load_members": True})
    assert bodies(page["chunk"]) == ["from carol", "from bob"]
    state = {e["state_key"]: e for e in page["state"]}
    assert set(state) == {bob.user_id, carol.user_id}
    assert all(e["type"] == "m.room.member" and e["content"]["membership"] == "join" for e in state.values())
    # Without the option, no state.
    plain = await dave.messages(room_id, limit=2)
    assert "state" not in plain.body
    # With a filter on types, the members are still the senders of what is shown.
    only_carol = await dave.messages(room_id, limit=1, filter={"lazy_load_members": True, "senders": [carol.user_id]})
    assert [e["state_key"] for e in only_carol["state"]] == [carol.user_id]


async def test_tokens_stay_valid_after_a_restart(api, server, more_servers, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    sent = await send_many([alice, bob], room_id, 40, batch=20)
    newest = await bob.messages(room_id, limit=15)
    forward = await bob.messages(room_id, limit=15, dir="f")
    before_restart = [
        await bob.messages(room_id, limit=15, **{"from": newest["end"]}),
        await bob.messages(room_id, limit=15, dir="f", **{"from": forward["end"]}),
    ]

    await server.stop()
    restarted = await more_servers()
    bob_again = User(ApiClient(restarted.base_url), bob.user_id, bob.access_token, bob.device_id)
    after_restart = [
        await bob_again.messages(room_id, limit=15, **{"from": newest["end"]}),
        await bob_again.messages(room_id, limit=15, dir="f", **{"from": forward["end"]}),
    ]
    for before, after in zip(before_restart, after_restart, strict=True):
        assert ids_of(after["chunk"]) == ids_of(before["chunk"])
        assert (after["start"], after.get("end")) == (before["start"], before.get("end"))
    stored = await stored_event_ids(database_dsn, room_id)
    assert ids_of(after_restart[0]["chunk"]) == stored[-30:-15][::-1]
    assert ids_of(after_restart[1]["chunk"]) == stored[15:30]
    # The log goes on from where it was.
    new_id = await bob_again.say(room_id, "after the restart")
    assert (await stored_event_ids(database_dsn, room_id))[-1] == new_id
    assert set(sent) < set(stored)


async def test_bad_parameters_are_refused(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    for params in (
        {"from": "garbage"},
        {"from": "s--1"},
        {"from": "s" + "9" * 30},
        {"to": "nonsense"},
        {"limit": "ten"},
        {"limit": "-5"},
        {"dir": "up"},
        {"filter": "{not json"},
        {"filter": "[]"},
        {"filter": '{"types": "m.room.message"}'},
        {"filter": '{"limit": 0}'},
        {"filter": '{"lazy_load_members": "yes"}'},
    ):
        refused = await alice.messages(room_id, status=400, **params)
        assert refused["errcode"] == "M_INVALID_PARAM", params


async def test_event_and_context(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    sent = [await (alice if i % 2 else bob).say(room_id, f"line {i}") for i in range(9)]
    event = await bob.event(room_id, sent[4])
    assert (event["event_id"], event["content"]["body"], event["room_id"]) == (sent[4], "line 4", room_id)

    context = await bob.context(room_id, sent[4], limit=4)
    assert context["event"]["event_id"] == sent[4]
    assert ids_of(context["events_before"]) == [sent[3], sent[2]]
    assert ids_of(context["events_after"]) == [sent[5], sent[6]]
    assert {(e["type"], e["state_key"]) for e in context["state"]} >= {
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.member", bob.user_id),
    }
    # Its tokens paginate on from either edge of the window.
    earlier = await bob.messages(room_id, limit=2, dir="b", **{"from": context["start"]})
    assert ids_of(earlier["chunk"]) == [sent[1], sent[0]]
    later = await bob.messages(room_id, limit=10, dir="f", **{"from": context["end"]})
    assert ids_of(later["chunk"]) == sent[7:]
    # At the newest event there is nothing after it.
    last = await bob.context(room_id, sent[-1], limit=2)
    assert ids_of(last["events_before"]) == [sent[-2]] and last["events_after"] == []

    missing = await bob.event(room_id, "$doesnotexist", status=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    missing = await bob.context(room_id, "$doesnotexist", status=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    other_room = await alice.create_room()
    wrong_room = await alice.event(other_room, sent[0], status=404)
    assert wrong_room["errcode"] == "M_NOT_FOUND"
