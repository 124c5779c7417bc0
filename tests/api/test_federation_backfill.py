"""History from before a server joined a room, over real HTTPS federation:
a reader on B pages back past B's join and B asks A (GET /backfill),
checks what A answers, and puts it before everything B held; and A's
/backfill serves only what B's users may read."""

import asyncio
import base64
import json
from dataclasses import replace
from urllib.parse import quote

import asyncpg
import pytest

from atomchat_server.events.room_versions import room_version
from atomchat_server.events.signing import event_id, sign_event
from atomchat_server.federation.remote import RemoteError
from atomchat_server.services.backfill import QUIET_SECONDS

from ..support.clock import ShiftedClock
from ..support.room_steps import bodies, ids_of, register
from ..support.sync_steps import state, sync, timeline
from ..support.waiting import eventually
from .test_federation_catch_up import missed_by, room_with_bob

MESSAGES = 30


async def rows(dsn: str, query: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def room_with_history(a, b, count: int = MESSAGES, **create):
    """A public room on A with ``count`` messages, then joined by a user of B."""
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat", **create)
    for n in range(count):
        await alice.say(room_id, f"earlier {n}")
    return alice, room_id


async def join(user, a, room_id: str) -> None:
    """``user`` (of B) joins A's room through A."""
    await user.call("POST", f"/join/{room_id}?server_name={a.name}", {}, schema="matrix/join.response")


def said_before(events, count: int = MESSAGES) -> bool:
    return bodies(events) == [f"earlier {n}" for n in reversed(range(count))]


async def test_a_reader_pages_back_past_the_join_through_the_other_server(federation_pair):
    a, b = federation_pair
    alice, room_id = await room_with_history(a, b)
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    since = (await sync(bob))["next_batch"]
    first = await bob.messages(room_id, dir="b", limit=7)
    assert first["start"] and first["end"]
    events, pages = await bob.all_messages(room_id, limit=7, dir="b")
    assert said_before(events), bodies(events)
    assert pages >= MESSAGES // 7
    assert len(set(ids_of(events))) == len(events), "no event twice across pages"
    # The messages are exactly A's, in A's order, each once in B's history.
    on_a, _ = await alice.all_messages(room_id, limit=100, dir="b")
    assert [e["event_id"] for e in events if e["type"] == "m.room.message"] == [
        e["event_id"] for e in on_a if e["type"] == "m.room.message"
    ]
    stored = await rows(b.dsn, "SELECT stream FROM events WHERE room_id = $1 AND type = 'm.room.message'", room_id)
    assert len(stored) == MESSAGES and all(r["stream"] < 0 for r in stored)
    # The tokens lead back to the same pages: a token may be negative.
    again = await bob.messages(room_id, dir="b", limit=7, **{"from": first["end"]})
    assert ids_of(again["chunk"]) == ids_of(events[7:14])
    # From the start, the room's history begins with its create event.
    assert (await bob.messages(room_id, dir="f", limit=3))["chunk"][0]["type"] == "m.room.create"
    # Search reaches it, counted exactly, newest first.
    found = (
        await bob.call(
            "POST",
            "/search",
            {"search_categories": {"room_events": {"search_term": "earlier", "order_by": "recent"}}},
            schema="matrix/search.response",
        )
    ).body["search_categories"]["room_events"]
    assert found["count"] == MESSAGES
    assert [r["result"]["content"]["body"] for r in found["results"]] == bodies(events)[:10]
    # History is not news: /sync shows none of it.
    assert bodies(timeline(await sync(bob, since, timeout=0), room_id)) == []
    assert not any(b.startswith("earlier") for b in bodies(timeline(await sync(bob), room_id)))


async def test_backfilled_history_changes_neither_current_state_nor_the_rooms_head(federation_pair):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat", topic="first topic")
    for n in range(5):
        await alice.say(room_id, f"earlier {n}")
    await alice.put_state(room_id, "m.room.topic", {"topic": "second topic"})
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    head = "SELECT head_event_id, head_stream, extremities FROM rooms WHERE room_id = $1"
    before = await rows(b.dsn, head, room_id)
    events, _ = await bob.all_messages(room_id, limit=4, dir="b")
    topics = [e["content"]["topic"] for e in events if e["type"] == "m.room.topic"]
    assert "first topic" in topics and bodies(events) == [f"earlier {n}" for n in reversed(range(5))]
    assert await rows(b.dsn, head, room_id) == before
    assert (await bob.get_state(room_id, "m.room.topic")).body == {"topic": "second topic"}
    current = await rows(b.dsn, "SELECT stream FROM current_state WHERE room_id = $1", room_id)
    assert all(r["stream"] > 0 for r in current)
    # What Bob sends next follows the room's newest event, not its history.
    sent = await bob.say(room_id, "after the walk")
    pdu = await rows(b.dsn, "SELECT pdu->'prev_events' AS prev FROM events WHERE event_id = $1", sent)
    assert json.loads(pdu[0]["prev"]) == [before[0]["head_event_id"]]


async def test_a_backfilled_event_with_a_bad_signature_is_refused(federation_pair):
    a, b = federation_pair
    alice, room_id = await room_with_history(a, b)
    forged = (await alice.all_messages(room_id, limit=100, dir="b"))[0][10]["event_id"]
    stored = await rows(a.dsn, "SELECT pdu FROM events WHERE event_id = $1", forged)
    pdu = stored[0]["pdu"] if isinstance(stored[0]["pdu"], dict) else json.loads(stored[0]["pdu"])
    signatures = pdu["signatures"][a.name]
    key_id = next(iter(signatures))
    signatures[key_id] = base64.b64encode(b"\x01" * 64).decode().rstrip("=")
    await rows(a.dsn, "UPDATE events SET pdu = $2::text::jsonb WHERE event_id = $1", forged, json.dumps(pdu))
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    events, _ = await bob.all_messages(room_id, limit=10, dir="b")
    assert forged not in ids_of(events)
    assert bodies(events) == [f"earlier {n}" for n in reversed(range(MESSAGES)) if n != MESSAGES - 1 - 10]
    assert not await rows(b.dsn, "SELECT 1 FROM events WHERE event_id = $1", forged)


async def test_a_backfilled_event_the_rules_reject_is_kept_apart_and_not_shown(federation_pair):
    a, b = federation_pair
    alice, room_id = await room_with_history(a, b)
    replaced = (await alice.all_messages(room_id, limit=100, dir="b"))[0][10]["event_id"]
    stored = await rows(
        a.dsn,
        "SELECT e.pdu::text AS pdu, r.room_version FROM events e JOIN rooms r USING (room_id) WHERE e.event_id = $1",
        replaced,
    )
    # Signed by A, but sent by a user of A who never joined the room.
    pdu = json.loads(stored[0]["pdu"])
    unsigned = {k: v for k, v in pdu.items() if k not in ("hashes", "signatures")}
    unsigned.update(sender=a.user("mallory"), content={"msgtype": "m.text", "body": "from outside"})
    version = room_version(stored[0]["room_version"])
    forged = sign_event(unsigned, a.name, a.ctx.server_key, version)
    await rows(a.dsn, "UPDATE events SET pdu = $2::text::jsonb WHERE event_id = $1", replaced, json.dumps(forged))
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    events, _ = await bob.all_messages(room_id, limit=10, dir="b")
    assert "from outside" not in bodies(events)
    assert bodies(events) == [f"earlier {n}" for n in reversed(range(MESSAGES)) if n != MESSAGES - 1 - 10]
    kept = await rows(b.dsn, "SELECT event_id, status FROM refused_events WHERE room_id = $1", room_id)
    assert [(r["event_id"], r["status"]) for r in kept] == [(event_id(forged, version), "rejected")]


async def test_the_state_taken_in_on_joining_takes_its_place_in_the_backfilled_history(federation_pair):
    a, b = federation_pair
    alice, room_id = await room_with_history(a, b, count=12, name="Ordered", topic="first topic")
    await alice.put_state(room_id, "m.room.topic", {"topic": "second topic"})
    (bob,) = await register(b.api, "bob")
    since = (await sync(bob))["next_batch"]
    await join(bob, a, room_id)
    outliers = await rows(b.dsn, "SELECT event_id FROM events WHERE room_id = $1 AND outlier", room_id)
    assert len(outliers) >= 6, "the room's state and auth chain are held as outliers"
    # Sync shows the join alone in the timeline, the room's state as state.
    for answer in (await sync(bob), await sync(bob, since, timeout=0)):
        shown = timeline(answer, room_id)
        assert [(e["type"], e["state_key"]) for e in shown] == [("m.room.member", bob.user_id)]
        kinds = {(e["type"], e["state_key"]) for e in state(answer, room_id)}
        assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.name", "")} <= kinds
    events, _ = await bob.all_messages(room_id, limit=5, dir="b")
    on_a, _ = await alice.all_messages(room_id, limit=100, dir="b")
    # B's history is A's, event for event, each once, the create event last.
    assert ids_of(events) == ids_of(on_a)
    assert len(set(ids_of(events))) == len(events)
    assert events[-1]["type"] == "m.room.create" and events[-2]["type"] == "m.room.member"
    assert [e["content"]["topic"] for e in events if e["type"] == "m.room.topic"] == ["second topic", "first topic"]
    forwards, _ = await bob.all_messages(room_id, limit=5, dir="f")
    assert ids_of(forwards) == ids_of(events)[::-1]
    assert forwards[0]["type"] == "m.room.create"
    # Placed, they are history (below 0) and no longer outliers; the state
    # they make is unchanged, and they are still served one by one.
    placed = await rows(
        b.dsn, "SELECT stream, outlier FROM events WHERE event_id = ANY($1::text[])", [r["event_id"] for r in outliers]
    )
    assert all(r["stream"] < 0 and not r["outlier"] for r in placed)
    assert (await bob.get_state(room_id, "m.room.topic")).body == {"topic": "second topic"}
    assert (await bob.get_state(room_id, "m.room.name")).body == {"name": "Ordered"}
    create = events[-1]["event_id"]
    assert (await bob.event(room_id, create))["type"] == "m.room.create"
    # A client that syncs the join only now still gets the room's state.
    late = await sync(bob, since, timeout=0)
    assert [(e["type"], e["state_key"]) for e in timeline(late, room_id)] == [("m.room.member", bob.user_id)]
    kinds = {(e["type"], e["state_key"]) for e in state(late, room_id)}
    assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.topic", "")} <= kinds


async def test_two_readers_paging_at_once_insert_each_event_once(federation_pair):
    a, b = federation_pair
    _, room_id = await room_with_history(a, b)
    bob, carol = await register(b.api, "bob", "carol")
    await join(bob, a, room_id)
    await join(carol, a, room_id)
    (bobs, _), (carols, _) = await asyncio.gather(
        bob.all_messages(room_id, limit=5, dir="b"), carol.all_messages(room_id, limit=5, dir="b")
    )
    assert said_before(bobs) and said_before(carols)
    assert ids_of(bobs) == ids_of(carols)
    counted = await rows(
        b.dsn,
        "SELECT count(*) AS n, count(DISTINCT event_id) AS distinct_n FROM events WHERE room_id = $1 AND stream < 0",
        room_id,
    )
    assert counted[0]["n"] == counted[0]["distinct_n"] >= MESSAGES


async def test_with_the_other_server_down_a_reader_gets_what_is_held(federation_pair):
    a, b = federation_pair
    _, room_id = await room_with_history(a, b, count=5)
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    await bob.say(room_id, "after the join")
    await a.stop()
    events, _ = await bob.all_messages(room_id, limit=3, dir="b")
    assert bodies(events) == ["after the join"]
    # The state taken in on joining is no part of the history held: the
    # room's create event is not met before the history A would give.
    assert [(e["type"], e.get("state_key")) for e in events] == [
        ("m.room.message", None),
        ("m.room.member", bob.user_id),
    ]


async def backfill_as(server, of, room_id: str, start: str, limit: int):
    """GET /backfill of ``of``, signed by ``server``."""
    return await server.ctx.federation_client.request(
        of.name,
        "GET",
        f"/_matrix/federation/v1/backfill/{quote(room_id)}",
        query={"v": [start], "limit": str(limit)},
    )


async def test_backfill_is_refused_to_a_server_with_no_user_in_the_room(federation_pair):
    a, b = federation_pair
    alice, room_id = await room_with_history(a, b, count=3)
    newest = (await alice.messages(room_id, dir="b", limit=1))["chunk"][0]["event_id"]
    with pytest.raises(RemoteError) as refused:
        await backfill_as(b, a, room_id, newest, 10)
    assert refused.value.status == 403


async def test_backfill_serves_redacted_what_the_asking_servers_users_may_not_read(federation_pair):
    a, b = federation_pair
    joined_only = {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
    alice, room_id = await room_with_history(a, b, count=3, initial_state=[joined_only])
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    await alice.say(room_id, "after the join")
    newest = (await alice.messages(room_id, dir="b", limit=1))["chunk"][0]["event_id"]
    answer = await backfill_as(b, a, room_id, newest, 500)
    messages = [p for p in answer["pdus"] if p["type"] == "m.room.message"]
    assert [p["content"].get("body") for p in messages] == ["after the join", None, None, None]
    # The limit is capped.
    for n in range(100):
        await alice.say(room_id, f"more {n}")
    many = (await alice.messages(room_id, dir="b", limit=1))["chunk"][0]["event_id"]
    assert len((await backfill_as(b, a, room_id, many, 500))["pdus"]) == 100


async def test_a_gap_after_the_join_is_never_taken_in_as_older_history(federation_pair):
    """B misses more after its join than get_missing_events fills (100): the
    oldest it missed stay a gap of the forward history. Paging back to the
    room's start must not fetch them as history from before the join (they
    would sit below the create event and never reach the room's state)."""
    a, b = federation_pair
    alice, bob, room_id, _ = await room_with_bob(a, b)

    async def say_many():
        for n in range(105):
            await alice.say(room_id, f"m{n}")

    clock = ShiftedClock()
    await missed_by(a, b, say_many, clock)
    bob = replace(bob, api=b.api)
    await alice.say(room_id, "last")

    async def bob_has_last():
        events, _ = await bob.all_messages(room_id, limit=100, dir="b")
        return "last" in bodies(events)

    await eventually(bob_has_last)
    clock.advance(QUIET_SECONDS + 1)  # past the pause after a fill that found nothing
    events, _ = await bob.all_messages(room_id, limit=20, dir="b")
    assert bodies(events) == ["last"] + [f"m{n}" for n in range(104, 4, -1)]
    assert events[-1]["type"] == "m.room.create"
    stored = await rows(
        b.dsn, "SELECT count(*) AS n FROM events WHERE room_id = $1 AND stream < 0 AND type = 'm.room.message'", room_id
    )
    assert stored[0]["n"] == 0


async def test_when_the_rooms_servers_fail_a_server_that_was_in_it_earlier_is_asked(federation_trio):
    """Carol's server C held the room's history and knew Bob joined; Carol
    has left. With A, the only server still in the room, down, B's reader
    still gets the history before B's join: from C."""
    a, b, c = federation_trio
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat")
    (carol,) = await register(c.api, "carol")
    await join(carol, a, room_id)
    for n in range(5):
        await alice.say(room_id, f"earlier {n}")
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    member = "SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2 AND membership = $3"
    await eventually(lambda: rows(c.dsn, member, room_id, bob.user_id, "join"), what="C knows Bob joined")
    await carol.leave(room_id)
    await eventually(lambda: rows(b.dsn, member, room_id, carol.user_id, "leave"), what="B knows Carol left")
    await a.stop()
    events, _ = await bob.all_messages(room_id, limit=3, dir="b")
    assert said_before([e for e in events if e["type"] == "m.room.message"], 5)
    assert events[-1]["type"] == "m.room.create"
