"""Backfilled events are judged against the state before them, as live
ones are: B walks each answer oldest first, asking the answering server
(GET state_ids) for the state before the answer's oldest events; an event
its own auth events allow but that state forbids is rejected, and an
answer whose state cannot be had is not taken."""

import json

from atomchat_server.errors import MatrixError
from atomchat_server.events.room_versions import room_version
from atomchat_server.events.signing import event_id, sign_event
from atomchat_server.services.backfill import BATCH

from ..support.room_steps import bodies, ids_of, register
from .test_federation_backfill import join, rows

# More than one answer's worth: the first answer's oldest events cite
# events B does not hold, so the state before them is asked of A.
LATER = BATCH + 10


async def stored_pdu(server, event: str) -> dict:
    found = await rows(server.dsn, "SELECT pdu::text AS pdu FROM events WHERE event_id = $1", event)
    return json.loads(found[0]["pdu"])


async def banned_room(a):
    """A public room on A where Mallory joined, spoke, and was banned; then
    LATER messages of Alice, a topic changed among them."""
    alice, mallory = await register(a.api, "alice", "mallory")
    room_id = await alice.create_room(preset="public_chat")
    await mallory.join(room_id)
    await mallory.say(room_id, "before the ban")
    await alice.act("ban", room_id, mallory)
    # A topic B does not hold (not the current one) is part of the state
    # before the first answer's oldest events: B fetches it.
    await alice.put_state(room_id, "m.room.topic", {"topic": "first topic"})
    for n in range(LATER):
        await alice.say(room_id, f"later {n}")
        if n == LATER // 2:
            await alice.put_state(room_id, "m.room.topic", {"topic": "second topic"})
    on_a, _ = await alice.all_messages(room_id, limit=100, dir="b")
    return alice, mallory, room_id, on_a


async def forge(a, room_id: str, replaced: str, members: set[str], cited: list[str], **changes) -> str:
    """Replaces an event of A by one signed by A with ``changes``, whose auth
    events cite ``cited`` in place of its sender's membership (of
    ``members``): it keeps its place in A's graph under its own id (the
    room's newest events: Bob's join then cites it). Returns its id."""
    pdu = await stored_pdu(a, replaced)
    unsigned = {k: v for k, v in pdu.items() if k not in ("hashes", "signatures")}
    unsigned.update(auth_events=[*(i for i in pdu["auth_events"] if i not in members), *cited], **changes)
    version = room_version((await rows(a.dsn, "SELECT room_version FROM rooms WHERE room_id = $1", room_id))[0][0])
    forged = sign_event(unsigned, a.name, a.ctx.server_key, version)
    forged_id = event_id(forged, version)
    await rows(
        a.dsn,
        "UPDATE events SET event_id = $2, pdu = $3::text::jsonb WHERE event_id = $1",
        replaced,
        forged_id,
        json.dumps(forged),
    )
    await rows(
        a.dsn,
        "UPDATE rooms SET head_event_id = $2, extremities = array_replace(extremities, $1, $2) WHERE room_id = $3",
        replaced,
        forged_id,
        room_id,
    )
    return forged_id


def joined(events: list[dict], user_id: str) -> str:
    return next(
        e["event_id"]
        for e in events
        if e["type"] == "m.room.member" and e["state_key"] == user_id and e["content"]["membership"] == "join"
    )


async def refused_on(b, room_id: str) -> list[tuple[str, str, str]]:
    kept = await rows(b.dsn, "SELECT event_id, status, reason FROM refused_events WHERE room_id = $1", room_id)
    return sorted((r["event_id"], r["status"], r["reason"]) for r in kept)


async def test_a_backfilled_message_from_a_user_banned_by_then_is_refused(federation_pair):
    a, b = federation_pair
    _, mallory, room_id, on_a = await banned_room(a)
    members = {e["event_id"] for e in on_a if e["type"] == "m.room.member"}
    # Sent by Mallory after her ban, citing her join as its auth event: it
    # passes on its own auth events, not on the state before it.
    forged_id = await forge(
        a,
        room_id,
        on_a[0]["event_id"],
        members,
        [joined(on_a, mallory.user_id)],
        sender=mallory.user_id,
        content={"msgtype": "m.text", "body": "after the ban"},
    )
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    events, _ = await bob.all_messages(room_id, limit=20, dir="b")
    assert "after the ban" not in bodies(events)
    honest = [f"later {n}" for n in reversed(range(LATER - 1))] + ["before the ban"]
    assert bodies(events) == honest
    assert [e["content"]["topic"] for e in events if e["type"] == "m.room.topic"] == ["second topic", "first topic"]
    assert await refused_on(b, room_id) == [(forged_id, "rejected", f"{mallory.user_id} is not in the room")]


async def test_what_follows_a_rejected_backfilled_event_is_judged_without_it(federation_pair):
    """Mallory, banned, joins again (a forged join citing her first one) and
    speaks (citing that join): the join is rejected against the state
    before it, and the message, judged on the state without the join, too."""
    a, b = federation_pair
    _, mallory, room_id, on_a = await banned_room(a)
    members = {e["event_id"] for e in on_a if e["type"] == "m.room.member"}
    # The join cites the join rules and her first join: it passes on its own auth events.
    join_rules = next(e["event_id"] for e in on_a if e["type"] == "m.room.join_rules")
    first_join = joined(on_a, mallory.user_id)
    rejoin = await forge(
        a,
        room_id,
        on_a[1]["event_id"],
        members,
        [join_rules, first_join],
        sender=mallory.user_id,
        type="m.room.member",
        state_key=mallory.user_id,
        content={"membership": "join"},
    )
    message = await forge(
        a,
        room_id,
        on_a[0]["event_id"],
        members,
        [rejoin],
        sender=mallory.user_id,
        content={"msgtype": "m.text", "body": "back again"},
        prev_events=[rejoin],
    )
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    events, _ = await bob.all_messages(room_id, limit=20, dir="b")
    assert rejoin not in ids_of(events) and message not in ids_of(events)
    assert bodies(events) == [f"later {n}" for n in reversed(range(LATER - 2))] + ["before the ban"]
    assert [(i, status) for i, status, _ in await refused_on(b, room_id)] == sorted(
        [(rejoin, "rejected"), (message, "rejected")]
    )
    assert (await bob.get_state(room_id, "m.room.member", mallory.user_id)).body["membership"] == "ban"


async def test_a_server_that_cannot_give_the_state_before_its_answer_gives_nothing(federation_pair, monkeypatch):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat")
    for n in range(LATER):
        await alice.say(room_id, f"later {n}")
    asked = []

    async def failing(origin: str, room: str, event: str):
        asked.append(event)
        raise MatrixError(500, "M_UNKNOWN", "no state here today")

    monkeypatch.setattr(a.ctx.federation_rooms, "state_ids", failing)
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    events, _ = await bob.all_messages(room_id, limit=20, dir="b")
    assert asked, "B asked A for the state before its answer"
    assert [(e["type"], e.get("state_key")) for e in events] == [("m.room.member", bob.user_id)]
    taken = await rows(b.dsn, "SELECT count(*) AS n FROM events WHERE room_id = $1 AND stream < 0", room_id)
    assert taken[0]["n"] == 0
